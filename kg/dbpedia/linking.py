"""Link catalogue items to DBpedia resources and pull their 1-hop facts into the graph.

Strategies, tried in order per item (the winner is recorded on ``SAME_AS`` as ``method`` and
``confidence``):

1. **mapping** — a TSV ``item id <TAB> title <TAB> IRI`` (``movielens-to-dbpedia.tsv``,
   ``librarything-to-dbpedia.tsv``): confidence 1.0, no query needed to link.
2. **label** — the title is turned into a few exact label strings (``"Matrix, The"`` →
   ``"The Matrix"``; alternate titles in parentheses; the part before a ``:`` subtitle), looked
   up in batches (``VALUES ?label {…}``) against ``rdfs:label`` with ``rdf:type`` ``dbo:Film`` /
   ``dbo:Book``. Candidates are scored by string similarity of normalised titles, the year that
   DBpedia IRIs often carry (``…_(1999_film)``: match +0.1, off by more than a year: rejected),
   the expected type (a film for items with a director, a book for items with an author), and
   shared people (a candidate whose facts name one of the item's author/director features
   +0.15); a near-tie between two resources halves the confidence. Accepted at
   ``confidence ≥ label_threshold``.
3. **person / organisation** — people and organisations named in item metadata
   (``(:Item)-[:HAS_FEATURE]->(:Feature {kind: author|director|publisher|brand})``) are matched
   by exact label to ``dbo:Person`` / ``dbo:Company`` resources. Design: these never link the
   *item* (``SAME_AS`` means "is the same thing as", and an item is not its author). For an item
   that strategies 1–2 linked to a work entity W, the matched resource P becomes an ``Entity``
   and ``W -[:DIRECTOR|AUTHOR|PUBLISHER {source:'feature', method:'person'|'organisation',
   confidence}]-> P`` (skipped when DBpedia's own facts already hold that edge). For an unlinked
   item nothing is written: the schema has no Feature→Entity relationship, so the feature stays
   a plain ``Feature`` (counted in ``LinkSummary.feature_entities_skipped``).

Enrichment: for every linked resource, the allow-listed predicates (:data:`PREDICATES`) are
fetched in batches (``VALUES ?s {…}``) with the objects' labels and types, and written as
``(:Entity {iri, label, type})`` nodes and one typed relationship per predicate.

Failures never abort: a dead, slow or erroring endpoint makes the affected items ``failed``
(listed with the reason in ``reports/dbpedia_unlinked.tsv`` under the home) and the run goes on;
after a few consecutive failures the client fails fast (circuit breaker). Every query goes
through :class:`~kgrec.kg.dbpedia.sparql.SparqlClient`'s disk cache, so a second run sends no
query, and all writes are MERGEs, so it leaves the graph counts unchanged.

This module holds the strategies' order and the graph writes; the SPARQL side (vocabulary,
candidate lookup and scoring, fact fetching) is :mod:`kgrec.kg.dbpedia.linker`.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgrec.errors import ConfigError, DataError, SparqlError
from kgrec.kg.dbpedia.linker import (
    FEATURE_KINDS,
    IMPLIED_TYPE,
    PREDICATES,
    WORK_CLASSES,
    Candidate,
    ItemRecord,
    Link,
    Linker,
    feature_variants,
    pick_type,
)
from kgrec.kg.dbpedia.sparql import SparqlClient, validate_iri
from kgrec.kg.dbpedia.titles import iri_label
from kgrec.kg.store import GraphStore
from kgrec.settings import Settings

DEFAULT_LABEL_THRESHOLD = 0.85

Progress = Callable[[int, int, int], None]


@dataclass
class LinkSummary:
    """What one :func:`link_items` run did."""

    items: int = 0
    linked: dict[str, int] = field(default_factory=dict)  # by method
    unlinked: int = 0  # no acceptable match
    failed: int = 0  # could not be decided: the endpoint failed
    enrich_failed: int = 0  # linked, but its facts could not be fetched
    entities: int = 0
    relationships: int = 0  # SAME_AS + entity relationships written
    feature_entities: int = 0
    feature_entities_skipped: int = 0
    queries_sent: int = 0
    cache_hits: int = 0
    query_failures: int = 0
    endpoint: str = ""
    report: Path | None = None

    @property
    def linked_total(self) -> int:
        return sum(self.linked.values())

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items()}
        d["report"] = str(self.report) if self.report else None
        d["linked_total"] = self.linked_total
        return d

    def describe(self) -> str:
        """One line for a person: what was linked, written and queried."""
        return (f"DBpedia: {self.linked_total}/{self.items} items linked {self.linked}, "
                f"{self.unlinked} unlinked, {self.failed} failed; {self.entities} entities, "
                f"{self.relationships} relationships; {self.queries_sent} queries sent, "
                f"{self.cache_hits} from cache"
                + (f"; unlinked items listed in {self.report}" if self.report else ""))


# --- mapping file -----------------------------------------------------------------------------


def read_mapping(path: Path) -> tuple[dict[str, str], list[str]]:
    """``item id → IRI`` from a 3-column TSV; returns it and the problems (``file:line: reason``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: mapping file not found")
    out: dict[str, str] = {}
    problems: list[str] = []
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        for lineno, row in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 3:
                problems.append(f"{path}:{lineno}: expected 3 tab-separated columns, got {len(row)}")
                continue
            item, resource = row[0].strip(), row[-1].strip()
            if lineno == 1 and not resource.startswith("http"):
                continue  # a header
            try:
                out[item] = validate_iri(resource)
            except ConfigError:
                problems.append(f"{path}:{lineno}: invalid IRI {resource!r}")
    return out, problems


# --- entry point ------------------------------------------------------------------------------


def _read_items(store: GraphStore) -> list[ItemRecord]:
    nodes = store.stream_nodes("Item", ["title", "year"])
    items = []
    for i, key in enumerate(nodes.ids):
        title = nodes.properties["title"][i]
        year = nodes.properties["year"][i]
        try:
            year = int(year) if year is not None else None
        except (TypeError, ValueError):
            year = None
        items.append(ItemRecord(str(key), str(title) if title is not None else "", year))
    by_id = {it.id: it for it in items}
    for r in store.run("dbpedia_item_features", {"kinds": list(FEATURE_KINDS)}, read_only=True):
        it = by_id.get(str(r["item"]))
        if it is not None and r.get("value"):
            it.features.setdefault(r["kind"], []).append(str(r["value"]))
    return items


def match_items(items: Sequence[ItemRecord], linker: Linker, *, mapped: dict[str, str],
                use_labels: bool = True, progress: Progress | None = None,
                ) -> tuple[dict[str, Link], list[tuple[str, str, str, str, str]], dict[str, int]]:
    """Strategies 1–2 for ``items`` (no graph writes): links by item id, report rows
    ``(item, title, year, status, reason)`` and the counts ``linked/unlinked/failed``."""
    links: dict[str, Link] = {}
    report: list[tuple[str, str, str, str, str]] = []
    counts = {"linked": 0, "unlinked": 0, "failed": 0}

    def tick() -> None:
        if progress:
            progress(counts["linked"], counts["unlinked"], counts["failed"])

    def unlinked(it: ItemRecord, status: str, reason: str) -> None:
        counts["unlinked" if status == "unlinked" else "failed"] += 1
        report.append((it.id, it.title, "" if it.year is None else str(it.year), status, reason))

    pending: list[ItemRecord] = []
    for it in items:
        if it.id in mapped:
            links[it.id] = Link(it.id, mapped[it.id], "mapping", 1.0)
            counts["linked"] += 1
        elif use_labels and it.title.strip():
            pending.append(it)
        else:
            unlinked(it, "unlinked", "not_in_mapping" if not use_labels else "no_title")
    tick()

    size = linker.batch_size
    for i in range(0, len(pending), size):
        batch = pending[i:i + size]
        try:
            got, reasons = linker.link_batch(batch)
        except SparqlError as e:
            for it in batch:
                unlinked(it, "failed", f"sparql_error: {e}")
            tick()
            continue
        for link in got:
            links[link.item] = link
        counts["linked"] += len(got)
        for it in batch:
            if it.id in reasons:
                unlinked(it, "unlinked", reasons[it.id])
        tick()
    return links, report, counts


@dataclass
class _Facts:
    """What linking writes: entities by IRI and typed relationships ``(subject, object) → props``."""

    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    rels: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))


def link_items(store: GraphStore, settings: Settings, *, mapping: Path | None = None,
               endpoint: str | None = None, use_labels: bool = True, progress: Progress | None = None,
               client: SparqlClient | None = None,
               label_threshold: float = DEFAULT_LABEL_THRESHOLD,
               work_types: Sequence[str] = WORK_CLASSES) -> LinkSummary:
    """Link every ``Item`` of ``store`` to DBpedia and write entities and facts (see module doc).

    ``endpoint`` overrides ``settings.sparql_endpoint`` (default: public DBpedia); ``client``
    replaces the SPARQL client altogether (tests tune retries/timeouts through it).
    Never raises on endpoint failures: they are counted and reported.
    """
    client = client or SparqlClient.from_settings(settings, endpoint)
    linker = Linker(client, settings.sparql_batch_size, label_threshold, work_types)
    summary = LinkSummary(endpoint=client.endpoint)
    before = (client.stats.queries_sent, client.stats.cache_hits, client.stats.failures)

    items = _read_items(store)
    mapped = read_mapping(mapping)[0] if mapping is not None else {}
    links, report, counts = match_items(items, linker, mapped=mapped, use_labels=use_labels,
                                        progress=progress)
    facts, unenriched = enrich(linker, links)
    titles = {it.id: it.title for it in items}
    for lk in sorted(links.values(), key=lambda x: x.item):
        if lk.iri in unenriched:
            summary.enrich_failed += 1
            report.append((lk.item, titles[lk.item], "", "enrich_failed",
                           f"sparql_error: {client.last_error or 'unknown'}"))
    link_people(items, links, linker, facts, summary)
    n_rel = write_links(store, links, facts)
    summary.report = write_report(settings.reports_dir / "dbpedia_unlinked.tsv", report)
    summary.items = len(items)
    for lk in links.values():
        summary.linked[lk.method] = summary.linked.get(lk.method, 0) + 1
    summary.unlinked, summary.failed = counts["unlinked"], counts["failed"]
    summary.entities, summary.relationships = len(facts.entities), n_rel
    summary.queries_sent = client.stats.queries_sent - before[0]
    summary.cache_hits = client.stats.cache_hits - before[1]
    summary.query_failures = client.stats.failures - before[2]
    return summary


def enrich(linker: Linker, links: dict[str, Link]) -> tuple[_Facts, set[str]]:
    """The linked resources as entities, and their allow-listed 1-hop facts (typed edges to
    entities that are created on the way); also the resources whose description or facts
    could not be fetched."""
    subjects = sorted({lk.iri for lk in links.values()})
    described, describe_failed = linker.describe(subjects)
    linker.fetch_facts(subjects)
    facts = _Facts()
    link_type = {lk.iri: lk.type for lk in links.values() if lk.type}
    for s in subjects:
        lab, typ = described.get(s, (None, None))
        facts.entities[s] = {"label": lab or iri_label(s), "type": typ or link_type.get(s) or "Resource"}
    for s in subjects:
        for row in linker.facts.get(s, []):
            rtype, o = PREDICATES.get(row["p"]), row["o"]
            if rtype is None or not _valid_iri(o):
                continue
            typ = row.get("type", "").rsplit("/", 1)[-1] or None
            prev = facts.entities.get(o)
            best_type = pick_type([t for t in (typ, prev and prev["type"]) if t]) or (
                prev["type"] if prev else IMPLIED_TYPE[rtype])
            facts.entities[o] = {"label": (prev and prev["label"] != iri_label(o) and prev["label"])
                                 or row.get("label") or iri_label(o), "type": best_type}
            facts.rels[rtype][(s, o)] = {"source": "dbpedia"}
    return facts, describe_failed | (linker.facts_failed & set(subjects))


def _valid_iri(text: str) -> bool:
    try:
        validate_iri(text)
    except ConfigError:
        return False
    return True


def link_people(items: Sequence[ItemRecord], links: dict[str, Link], linker: Linker, facts: _Facts,
                summary: LinkSummary) -> None:
    """Strategy 3: people and organisations named in item metadata become entities tied to the
    linked work (``W -[:DIRECTOR|AUTHOR|PUBLISHER {source:'feature'}]-> P``), unless DBpedia
    already states it or the name is ambiguous. Features of unlinked items are only counted."""
    rows: list[tuple[str, str, tuple[str, ...], str, str]] = []
    for it in items:
        for kind, values in it.features.items():
            classes, rtype, method = FEATURE_KINDS[kind]
            if it.id not in links:
                summary.feature_entities_skipped += len(values)
                continue
            rows.extend((it.id, v, classes, rtype, method) for v in values)
    found = _people_candidates(linker, rows)
    for item_id, v, classes, rtype, method in rows:
        work = links[item_id].iri
        cands = {c.iri: c for lab in feature_variants(v) for c in found[classes].get(lab, [])}
        known = {o for (s, o) in facts.rels[rtype] if s == work}
        if len(cands) != 1 or any(c in known for c in cands):
            continue  # none, ambiguous (skip rather than guess), or DBpedia already states it
        c = next(iter(cands.values()))
        facts.entities.setdefault(c.iri, {"label": c.label, "type": c.type or "Person"})
        facts.rels[rtype][(work, c.iri)] = {"source": "feature", "method": method, "confidence": 0.9}
        summary.feature_entities += 1


def _people_candidates(linker: Linker, rows: Sequence[tuple[str, str, tuple[str, ...], str, str]],
                       ) -> dict[tuple[str, ...], dict[str, list[Candidate]]]:
    """Exact-label candidates per class tuple for every name variant in ``rows``, in batches; a
    failed batch just finds nothing."""
    by_classes: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for _, v, classes, _, _ in rows:
        by_classes[classes].extend(feature_variants(v))
    found: dict[tuple[str, ...], dict[str, list[Candidate]]] = {}
    for classes, labels in by_classes.items():
        labels = list(dict.fromkeys(labels))
        found[classes] = {}
        for j in range(0, len(labels), linker.batch_size):
            try:
                found[classes].update(linker.candidates(labels[j:j + linker.batch_size], classes))
            except SparqlError:
                continue
    return found


def write_links(store: GraphStore, links: dict[str, Link], facts: _Facts) -> int:
    """Entities, ``SAME_AS`` (replacing a stale one of the same item) and the typed facts;
    returns the relationships written."""
    store.upsert_nodes("Entity", ({"key": k, "props": v} for k, v in sorted(facts.entities.items())))
    same_as = [{"src": lk.item, "dst": lk.iri,
                "props": {"method": lk.method, "confidence": float(lk.confidence)}}
               for lk in sorted(links.values(), key=lambda x: x.item)]
    if same_as:
        store.run("dbpedia_delete_stale_same_as", {"rows": [{"item": r["src"], "iri": r["dst"]}
                                                           for r in same_as]})
    n_rel = store.upsert_relationships("SAME_AS", same_as)
    for rtype, pairs in sorted(facts.rels.items()):
        n_rel += store.upsert_relationships(
            rtype, ({"src": s, "dst": o, "props": p} for (s, o), p in sorted(pairs.items())))
    return n_rel


def write_report(path: Path, report: Sequence[tuple[str, str, str, str, str]]) -> Path:
    """The unlinked / failed items as a TSV (``item, title, year, status, reason``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, delimiter="\t", lineterminator="\n")
        w.writerow(["item", "title", "year", "status", "reason"])
        for row in report:
            w.writerow([" ".join(str(x).split()) for x in row])
    return path
