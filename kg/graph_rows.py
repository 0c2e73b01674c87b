"""Turn canonical tables (a preprocessed split) into graph rows for the store's upserts.

Only the **training** interactions become ``INTERACTED`` and ``CO_OCCURS`` edges; the
valid/test interactions never enter the graph.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from kgrec.kg.schema import ENTITY_TARGET_TYPE
from kgrec.kg.tables import FEATURE_COLUMNS, FEATURE_KIND, ItemGraph

MAX_TEXT_CHARS = 1000


def _clean(value: Any) -> Any:
    """A scalar fit for a graph property (no NaN, numpy scalars as Python scalars)."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    if value is pd.NA:
        return None
    return value


def _as_list(value: Any) -> list[Any]:
    if value is None or value is pd.NA:
        return []
    if isinstance(value, (list, tuple, np.ndarray)):
        return [v for v in value if _clean(v) not in (None, "")]
    v = _clean(value)
    return [] if v in (None, "") else [v]


def item_features(row: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, value) pairs of one item row, e.g. ("genre", "Comedy"), ("year", "1995")."""
    out: list[tuple[str, str]] = []
    for col in FEATURE_COLUMNS:
        kind = FEATURE_KIND.get(col, col)
        for v in _as_list(row.get(col)):
            text = str(int(v)) if kind == "year" and isinstance(v, (int, float)) else str(v).strip()
            if text:
                out.append((kind, text))
    return list(dict.fromkeys(out))


def feature_id(kind: str, value: str) -> str:
    return f"{kind}:{value}"


def item_text(row: dict[str, Any]) -> str:
    """The text the LLM encoder sees: title, then features, then (a bounded) description."""
    title = str(_clean(row.get("title")) or "").strip()
    parts = [title] if title else []
    feats = item_features(row)
    if feats:
        parts.append("; ".join(f"{k}: {v}" for k, v in feats if k != "year"))
        years = [v for k, v in feats if k == "year"]
        if years and years[0] not in title:
            parts.append(f"year: {years[0]}")
    desc = str(_clean(row.get("description")) or "").strip()
    if desc:
        parts.append(desc[:MAX_TEXT_CHARS])
    text = ". ".join(p for p in parts if p)
    return text or f"item {row['item']}"


def item_records(items: pd.DataFrame) -> list[dict[str, Any]]:
    return items.to_dict("records")


def item_node_rows(records: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for row in records:
        props = {"title": str(_clean(row.get("title")) or ""), "text": item_text(row)}
        year = _clean(row.get("year"))
        if year is not None:
            props["year"] = int(year)
        yield {"key": str(row["item"]), "props": props}


def feature_rows(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Feature nodes and HAS_FEATURE edges."""
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, Any]] = []
    for row in records:
        for kind, value in item_features(row):
            fid = feature_id(kind, value)
            nodes.setdefault(fid, {"key": fid, "props": {"kind": kind, "value": value}})
            edges.append({"src": str(row["item"]), "dst": fid, "props": {}})
    return list(nodes.values()), edges


def interaction_rows(train: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """One time-independent INTERACTED edge per (user, item) of the training split."""
    g = train.groupby(["user", "item"], sort=False)
    agg = g.agg(count=("item", "size"), rating=("rating", "mean"), first_ts=("ts", "min"),
                last_ts=("ts", "max")).reset_index()
    # lists: zip over the Series themselves took 0.89 s instead of 0.18 s for 652k pairs (Arrow strings)
    columns = [agg[c].tolist() for c in ("user", "item", "count", "rating", "first_ts", "last_ts")]
    for u, i, c, r, f, last in zip(*columns):
        props: dict[str, Any] = {"count": int(c)}
        for name, value in (("rating", r), ("first_ts", f), ("last_ts", last)):
            value = _clean(value)
            if value is not None:
                props[name] = float(value)
        yield {"src": str(u), "dst": str(i), "props": props}


def cooccurrence_rows(train: pd.DataFrame, items: pd.DataFrame, known: set[str], *,
                      ordered: bool = True) -> list[dict[str, Any]]:
    """Item→item edges: consecutive items of a training session (weight = how often), plus
    the metadata's related items (also_bought / also_viewed) where both ends exist.
    Data with no order (``ordered=False``, e.g. KGAT) has no consecutive items."""
    weights: dict[tuple[str, str], float] = {}
    if ordered and "session" in train.columns and len(train):
        t = train.sort_values(["session", "ts", "order"], kind="stable")
        sess = t["session"].to_numpy()
        it = t["item"].astype(str).to_numpy()
        same = sess[1:] == sess[:-1]
        a, b = it[:-1][same], it[1:][same]
        keep = a != b
        pairs = pd.DataFrame({"a": a[keep], "b": b[keep]})
        for (x, y), w in pairs.value_counts().items():
            weights[(x, y)] = float(w)
    if "related" in items.columns:
        for item, rel in zip(items["item"], items["related"]):
            for other in _as_list(rel):
                o = str(other)
                if o in known and o != str(item):
                    weights[(str(item), o)] = weights.get((str(item), o), 0.0) + 1.0
    return [{"src": a, "dst": b, "props": {"weight": w}} for (a, b), w in weights.items()]


def item_graph_rows(graph: ItemGraph, known: set[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                              dict[str, list[dict[str, Any]]]]:
    """A shipped knowledge graph (RecBole ``.link``/``.kg``) restricted to the catalogue:
    ``Entity`` nodes, ``SAME_AS`` edges of known items, and the typed facts one hop from a
    linked entity (as DBpedia linking brings in), by relationship type."""
    links = graph.links[graph.links["item"].astype(str).isin(known)]
    linked = set(links["entity"])
    facts = graph.triples[graph.triples["head"].isin(linked)].drop_duplicates()
    rels: dict[str, list[dict[str, Any]]] = {}
    for h, t, tail in zip(facts["head"], facts["rel_type"], facts["tail"]):
        rels.setdefault(str(t), []).append({"src": h, "dst": tail, "props": {"source": "recbole"}})
    types = {e: "Work" for e in linked}
    for t, tail in zip(facts["rel_type"], facts["tail"]):
        types.setdefault(tail, ENTITY_TARGET_TYPE.get(str(t), "Resource"))
    nodes = [{"key": e, "props": {"label": graph.labels.get(e, e), "type": typ}} for e, typ in sorted(types.items())]
    same_as = [{"src": str(i), "dst": e, "props": {"method": "recbole_link", "confidence": 1.0}}
               for i, e in zip(links["item"], links["entity"])]
    return nodes, same_as, rels
