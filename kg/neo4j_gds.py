"""GDS projections, streams and samples through the official ``graphdatascience`` client (2.x).

The client streams over Arrow Flight where the server offers it (Enterprise, Aura; the
``gds_arrow`` setting turns it off), and falls back to Cypher procedure calls where it does
not (the open-source GDS that ``make neo4j`` assembles). Either way kgrec gets pandas frames
keyed by GDS node ids, which are joined back to kgrec keys here:

- a whole projection through one ``MATCH`` per label (``cypher/neo4j/gds_node_keys.cypher``);
- a sampled subgraph through ``gds.util.asNode`` on just the ids the sample holds, so that the
  client's memory follows the sample, not the graph.

Every in-memory graph is dropped in ``finally`` by the caller's ``with`` block.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np
from neo4j.exceptions import Neo4jError

from kgrec.errors import StoreError
from kgrec.kg import schema
from kgrec.kg.store import NodeArrays, Projection, RelArrays

if TYPE_CHECKING:
    from kgrec.kg.neo4j_store import Neo4jStore

log = logging.getLogger(__name__)


class GdsProjections:
    """The GDS side of :class:`~kgrec.kg.neo4j_store.Neo4jStore`: one client per store, made on
    first use from the store's own driver."""

    def __init__(self, store: Neo4jStore, auth: tuple[str, str], arrow: bool) -> None:
        self._store, self._auth, self._arrow = store, auth, arrow
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from graphdatascience import GraphDataScience

            # auth is given only for Arrow (the client opens its own Flight connection with it)
            self._client = GraphDataScience(self._store.driver, auth=self._auth if self._arrow else None,
                                            database=self._store.database, arrow=self._arrow,
                                            show_progress=False)
        return self._client

    @property
    def arrow(self) -> bool:
        """Whether streams go over Arrow Flight (False: Cypher, as on OpenGDS)."""
        return self.client._arrow_client is not None

    def close(self) -> None:
        if self._client is not None and self._client._arrow_client is not None:
            self._client._arrow_client.close()
        self._client = None

    # --- graphs -------------------------------------------------------------------------
    @contextmanager
    def projected(self, name: str, nodes: dict[str, list[str]], rels: dict[str, list[str]], *,
                  orientation: str = "NATURAL") -> Iterator[Any]:
        """``gds.graph.project`` of the typed subgraph; dropped on exit, whatever happens.
        ``UNDIRECTED`` lets a sample's random walks go from items back to other users."""
        node_spec = {lb: {"label": lb, "properties": ps} for lb, ps in nodes.items()}
        rel_spec = {t: {"type": t, "orientation": orientation, "properties": ps} for t, ps in rels.items()}
        try:
            graph, _ = self.client.graph.project.native(name, node_spec, rel_spec)
        except Neo4jError as e:
            wanted = {lb: ps for lb, ps in nodes.items() if ps}
            raise StoreError(f"GDS could not project {sorted(nodes)} / {sorted(rels)} with the node properties "
                             f"{wanted} (each must exist and be numeric or a numeric array): "
                             f"{str(getattr(e, 'message', e)).splitlines()[0]}") from e
        with self._dropping(graph):
            yield graph

    @contextmanager
    def sampled(self, graph: Any, name: str, start_keys: Sequence[str], start_label: str, *,
                sampling_ratio: float, restart_probability: float, seed: int) -> Iterator[Any]:
        """``gds.graph.sample.rwr`` of ``graph`` seeded at the nodes of ``start_keys``; dropped on exit."""
        ids = self._node_ids(start_label, start_keys)
        sample, _ = self.client.graph.sample.rwr(
            graph, name, start_nodes=ids, sampling_ratio=min(1.0, sampling_ratio),
            restart_probability=restart_probability, random_seed=seed, concurrency=1)
        with self._dropping(sample):
            yield sample

    @contextmanager
    def _dropping(self, graph: Any) -> Iterator[None]:
        try:
            yield
        finally:
            try:
                self.client.graph.drop(graph, fail_if_missing=False)
            except Neo4jError as e:  # never hide the original error; a later run cleans up
                log.warning("could not drop the in-memory graph %s: %s", graph.name(), e)

    # --- streams ------------------------------------------------------------------------
    def stream(self, graph: Any, nodes: dict[str, list[str]], rels: dict[str, list[str]]) -> Projection:
        """The whole projection as arrays keyed by kgrec keys (labels sorted by key)."""
        keys = {lb: self._key_frame(lb) for lb in nodes}
        key_of = {lb: dict(zip(f["nodeId"].tolist(), f["id"].tolist())) for lb, f in keys.items()}
        out_nodes = {lb: self._node_arrays(graph, lb, ps, keys[lb]) for lb, ps in nodes.items()}
        out_rels = {t: self._rel_arrays(graph, t, ps, key_of) for t, ps in rels.items()}
        return Projection(out_nodes, out_rels)

    def stream_sample(self, sample: Any, nodes: dict[str, list[str]], rels: dict[str, list[str]]) -> Projection:
        """A sampled subgraph as arrays: the relationships it holds, their endpoints' keys looked
        up for just those ids, and the requested node properties of the sampled nodes."""
        present = set(sample.relationship_types())  # a small sample may hold no edge of a type
        frames = {t: self._rel_frame(sample, t, ps) if t in present else _empty_rels(ps) for t, ps in rels.items()}
        ids = np.unique(np.concatenate([np.concatenate([f["sourceNodeId"].to_numpy(), f["targetNodeId"].to_numpy()])
                                        for f in frames.values()] or [np.zeros(0, dtype=np.int64)]))
        key_of: dict[str, dict[int, str]] = {lb: {} for lb in nodes}
        for r in self._store.run("gds_sample_keys", {"ids": ids.tolist(), "key_of": dict(schema.NODE_KEYS)},
                                 read_only=True):
            label = next((lb for lb in r["labels"] if lb in key_of), None)
            if label is not None:
                key_of[label][int(r["nodeId"])] = r["id"]
        import pandas as pd

        out_nodes = {}
        for lb, ps in nodes.items():
            frame = pd.DataFrame({"nodeId": list(key_of[lb]), "id": list(key_of[lb].values())})
            out_nodes[lb] = self._node_arrays(sample, lb, ps, frame)
        out_rels = {t: _rel_arrays_of(_one_way(f, t), t, rels[t], key_of) for t, f in frames.items()}
        return Projection(out_nodes, out_rels)

    def _key_frame(self, label: str) -> Any:
        stmt = self._store.cypher.one("gds_node_keys", label=label, key=schema.key_of(label))
        return self.client.run_cypher(stmt, database=self._store.database)

    def _node_ids(self, label: str, keys: Sequence[str]) -> list[int]:
        rows = self._store.run("gds_node_ids", {"keys": list(keys)}, read_only=True,
                               label=schema.check_label(label), key=schema.key_of(label))
        return [int(r["nodeId"]) for r in rows]

    def _node_arrays(self, graph: Any, label: str, props: list[str], keys: Any) -> NodeArrays:
        """Keys sorted; ``None`` where GDS has no value (NaN, or an empty array default)."""
        frame = keys.sort_values("id", kind="stable")
        out = NodeArrays(label, [str(k) for k in frame["id"].tolist()], {})
        if not props or frame.empty:
            out.properties = {p: [None] * len(out.ids) for p in props}
            return out
        values = self.client.graph.node_properties.stream(graph, props, node_labels=[label])
        values = frame[["nodeId"]].merge(values, on="nodeId", how="left")
        out.properties = {p: [_none_if_missing(v) for v in values[p].tolist()] for p in props}
        return out

    def _rel_frame(self, graph: Any, rel_type: str, props: list[str]) -> Any:
        return self.client.graph.relationships.stream(graph, [rel_type], props or None)

    def _rel_arrays(self, graph: Any, rel_type: str, props: list[str],
                    key_of: dict[str, dict[int, str]]) -> RelArrays:
        return _rel_arrays_of(self._rel_frame(graph, rel_type, props), rel_type, props, key_of)


def _rel_arrays_of(frame: Any, rel_type: str, props: list[str], key_of: dict[str, dict[int, str]]) -> RelArrays:
    src_label, dst_label = schema.REL_ENDPOINTS[rel_type]
    src_keys, dst_keys = key_of.get(src_label, {}), key_of.get(dst_label, {})
    src = [src_keys.get(i) for i in frame["sourceNodeId"].tolist()]
    dst = [dst_keys.get(i) for i in frame["targetNodeId"].tolist()]
    keep = [k for k, (s, d) in enumerate(zip(src, dst)) if s is not None and d is not None]
    columns = {p: frame[p].tolist() for p in props}
    return RelArrays(rel_type, [src[k] for k in keep], [dst[k] for k in keep],
                     {p: [_none_if_missing(columns[p][k]) for k in keep] for p in props})


def _empty_rels(props: list[str]) -> Any:
    import pandas as pd

    return pd.DataFrame({c: pd.Series(dtype="int64") for c in ("sourceNodeId", "targetNodeId")}
                        | {p: pd.Series(dtype="float64") for p in props})


def _one_way(frame: Any, rel_type: str) -> Any:
    """An undirected sample streams each relationship both ways. Between two labels the wrong
    way is dropped by the key lookup; between one label (``CO_OCCURS``) keep one row a pair."""
    src_label, dst_label = schema.REL_ENDPOINTS[rel_type]
    if src_label != dst_label:
        return frame
    return frame[frame["sourceNodeId"] <= frame["targetNodeId"]]


def _none_if_missing(v: Any) -> Any:
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, np.ndarray):
        return v.tolist() if v.size else None
    return v
