"""The graph-store port: the only way kgrec code touches a database.

Two real adapters implement it: :class:`kgrec.kg.falkordb_store.FalkorDBStore`
(embedded default, or a remote ``falkordb://`` server) and
:class:`kgrec.kg.neo4j_store.Neo4jStore` (Neo4j 5 + GDS). Statements come from
``cypher/`` by name; labels, types and property names in templates come only from
the allow-lists in :mod:`kgrec.kg.schema`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, Self

import numpy as np

from kgrec.cypher import CypherLibrary
from kgrec.errors import ConfigError, DataError, KgrecError
from kgrec.kg import schema
from kgrec.settings import Settings

Progress = Callable[[int], None]


def batched(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class NodeArrays:
    """One label of a projection: the node keys and the requested properties, index-aligned."""

    label: str
    ids: list[str]
    properties: dict[str, list[Any]] = field(default_factory=dict)
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def index(self) -> dict[str, int]:
        """key → position, built once (and again only if ``ids`` grew)."""
        if len(self._index) != len(self.ids):
            self._index = {k: i for i, k in enumerate(self.ids)}
        return self._index


@dataclass
class RelArrays:
    """One relationship type of a projection as parallel arrays of endpoint keys."""

    rel_type: str
    src: list[str]
    dst: list[str]
    properties: dict[str, list[Any]] = field(default_factory=dict)


@dataclass
class Projection:
    nodes: dict[str, NodeArrays]
    relationships: dict[str, RelArrays]

    def edge_index(self, rel_type: str) -> np.ndarray:
        """A ``[2, E]`` int64 array of (source, target) positions into the endpoint labels' ids."""
        rel = self.relationships[rel_type]
        src_label, dst_label = schema.REL_ENDPOINTS[rel_type]
        s_idx, d_idx = self.nodes[src_label].index(), self.nodes[dst_label].index()
        pairs = [(s_idx[s], d_idx[d]) for s, d in zip(rel.src, rel.dst) if s in s_idx and d in d_idx]
        return np.asarray(pairs, dtype=np.int64).reshape(-1, 2).T


def _checked_key(label: str, row: dict[str, Any]) -> dict[str, Any]:
    """Node keys are non-empty strings without surrounding whitespace. (FalkorDB 4.16 crashes
    when a uniquely-constrained string property starts or ends with whitespace, and such ids
    are a data error anyway.)"""
    key = row.get("key")
    if not isinstance(key, str) or not key or key != key.strip():
        raise DataError(f"invalid {label} key {key!r}: keys must be non-empty strings without "
                        "leading or trailing whitespace")
    return row


class GraphStore(ABC):
    """The port. Adapters implement :meth:`execute` and the backend-specific hooks."""

    backend: str = ""
    #: whether :meth:`sampled_projections` works here (Neo4j with GDS)
    samples: bool = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.cypher = CypherLibrary(self.backend)

    # --- core -------------------------------------------------------------------------
    @abstractmethod
    def execute(self, statement: str, params: dict[str, Any] | None = None, *,
                read_only: bool = False) -> list[dict[str, Any]]:
        """Run one Cypher statement with parameters; rows as dicts keyed by column name."""

    @abstractmethod
    def close(self) -> None: ...

    @property
    @abstractmethod
    def uri(self) -> str:
        """Where this store lives, for messages (never includes secrets)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def run(self, name: str, params: dict[str, Any] | None = None, *, read_only: bool = False,
            **template: str) -> list[dict[str, Any]]:
        """Run the named statement(s) from ``cypher/``; returns the rows of the last one."""
        rows: list[dict[str, Any]] = []
        for stmt in self.cypher.statements(name, **template):
            rows = self.execute(stmt, params, read_only=read_only)
        return rows

    # --- schema -----------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Uniqueness constraints / indexes on every node key, before any load."""
        for label, key in schema.NODE_KEYS.items():
            self.ensure_unique(label, key)

    @abstractmethod
    def ensure_unique(self, label: str, key: str) -> None: ...

    # --- batched upserts ----------------------------------------------------------------
    def upsert_nodes(self, label: str, rows: Iterable[dict[str, Any]], *, batch_size: int | None = None,
                     progress: Progress | None = None) -> int:
        """MERGE nodes by key. Each row: ``{"key": ..., "props": {...}}``. Idempotent."""
        label = schema.check_label(label)
        return self._upsert("upsert_nodes", "n", (_checked_key(label, r) for r in rows), batch_size, progress,
                            label=label, key=schema.key_of(label))

    def upsert_relationships(self, rel_type: str, rows: Iterable[dict[str, Any]], *,
                             batch_size: int | None = None, progress: Progress | None = None,
                             fresh: bool = False) -> int:
        """MERGE relationships between existing nodes. Each row: ``{"src", "dst", "props"}``.
        ``fresh``: the graph holds no relationship of this type yet and the rows are distinct
        (src, dst) pairs (the caller's promise, as the build's own rows are), so they are
        CREATEd, without MERGE's look for an existing one on every endpoint."""
        rel_type = schema.check_rel_type(rel_type)
        src, dst = schema.REL_ENDPOINTS[rel_type]
        name = "create_relationships" if fresh else "upsert_relationships"
        return self._upsert(name, "r", rows, batch_size, progress, rel_type=rel_type,
                            src_label=src, dst_label=dst, src_key=schema.key_of(src), dst_key=schema.key_of(dst))

    def _upsert(self, name: str, var: str, rows: Iterable[dict[str, Any]], batch_size: int | None,
                progress: Progress | None, **template: str) -> int:
        """Run upsert statement ``name`` per batch, once per run of consecutive rows with the same
        property keys (so rows still apply in order): ``{{set_clause}}`` gets static assignments of
        those keys to ``var``, for the backends whose file uses it (Neo4j plans ``SET x += row.props``
        with an Eager step). A missing key is left alone and a ``None`` value removes the property,
        as with ``+=``."""
        n = 0
        for batch in batched(rows, batch_size or self.settings.batch_size):
            for keys, run in groupby(batch, key=lambda r: tuple(sorted(r.get("props") or {}))):
                self.execute(self.cypher.one(name, set_clause=set_clause(var, "row.props", keys), **template),
                             {"rows": list(run)})
            n += len(batch)
            if progress:
                progress(len(batch))
        return n

    def _unwind(self, stmt: str, rows: Iterable[dict[str, Any]], batch_size: int | None,
                progress: Progress | None, params: dict[str, Any] | None = None) -> int:
        """Run ``stmt`` once per batch of ``rows`` (as ``$rows``, beside ``params``)."""
        n = 0
        for batch in batched(rows, batch_size or self.settings.batch_size):
            self.execute(stmt, {**(params or {}), "rows": batch})
            n += len(batch)
            if progress:
                progress(len(batch))
        return n

    def delete_relationships(self, rel_type: str, where_prop: str | None = None, value: Any = None) -> None:
        rel_type = schema.check_rel_type(rel_type)
        if where_prop is None:
            self.run("delete_relationships", rel_type=rel_type)
        else:
            self.run("delete_relationships_where", {"value": value}, rel_type=rel_type,
                     prop=schema.check_property(where_prop))

    # --- projection streaming -------------------------------------------------------------
    def stream_nodes(self, label: str, properties: Sequence[str] = (), *,
                     batch_size: int | None = None) -> NodeArrays:
        label = schema.check_label(label)
        key = schema.key_of(label)
        props = [schema.check_property(p) for p in properties]
        ret = ", ".join(f"n.{p} AS {p}" for p in props)
        stmt = self.cypher.one("stream_nodes", label=label, key=key, props=(", " + ret) if ret else "")
        out = NodeArrays(label, [], {p: [] for p in props})
        after: Any = ""
        size = batch_size or self.settings.batch_size
        while True:
            rows = self.execute(stmt, {"after": after, "limit": size}, read_only=True)
            for r in rows:
                out.ids.append(r["id"])
                for p in props:
                    out.properties[p].append(r[p])
            if len(rows) < size:
                return out
            after = rows[-1]["id"]

    def stream_relationships(self, rel_type: str, properties: Sequence[str] = (), *,
                             src_ids: Sequence[str] | None = None,
                             batch_size: int | None = None) -> RelArrays:
        rel_type = schema.check_rel_type(rel_type)
        src_label, dst_label = schema.REL_ENDPOINTS[rel_type]
        props = [schema.check_property(p) for p in properties]
        ret = ", ".join(f"r.{p} AS {p}" for p in props)
        stmt = self.cypher.one("stream_relationships", rel_type=rel_type, src_label=src_label,
                               dst_label=dst_label, src_key=schema.key_of(src_label),
                               dst_key=schema.key_of(dst_label), props=(", " + ret) if ret else "")
        if src_ids is None:
            src_ids = self.stream_nodes(src_label).ids
        out = RelArrays(rel_type, [], [], {p: [] for p in props})
        size = max(1, (batch_size or self.settings.batch_size) // 4)
        for batch in batched(src_ids, size):
            for r in self.execute(stmt, {"ids": batch}, read_only=True):
                out.src.append(r["src"])
                out.dst.append(r["dst"])
                for p in props:
                    out.properties[p].append(r[p])
        return out

    def stream_projection(self, node_properties: dict[str, Sequence[str]],
                          rel_properties: dict[str, Sequence[str]]) -> Projection:
        """Stream a typed projection: the labels in ``node_properties`` and the types in
        ``rel_properties``, each with the listed properties. Adapters may override
        (Neo4j uses GDS)."""
        nodes = {label: self.stream_nodes(label, props) for label, props in node_properties.items()}
        rels = {}
        for rel_type, props in rel_properties.items():
            src_label = schema.REL_ENDPOINTS[schema.check_rel_type(rel_type)][0]
            src_ids = nodes[src_label].ids if src_label in nodes else None
            rels[rel_type] = self.stream_relationships(rel_type, props, src_ids=src_ids)
        return Projection(nodes, rels)

    def sampled_projections(self, node_properties: dict[str, Sequence[str]],
                            rel_properties: dict[str, Sequence[str]], batches: Iterable[Sequence[str]], *,
                            seed_label: str = "User", nodes_per_seed: int = 20, restart_probability: float = 0.8,
                            seed: int = 0) -> Iterator[Projection]:
        """One server-side sample of the projection per batch of ``seed_label`` keys (random
        walks with restart from them, about ``nodes_per_seed`` nodes per seed), streamed one at
        a time so that the client's memory follows the batch, not the graph. Only Neo4j (GDS
        ``gds.graph.sample.rwr``) has it; the embedded store keeps the in-memory path."""
        raise ConfigError(SAMPLES_NEED)

    # --- vectors ------------------------------------------------------------------------
    def write_vectors(self, label: str, prop: str, ids: Sequence[str], vectors: np.ndarray, *,
                      batch_size: int = 2000, progress: Progress | None = None,
                      extra: dict[str, Any] | None = None) -> int:
        """Write one vector per node into ``label.prop`` (a vector property with an index).
        ``extra`` sets the same scalar properties on every written node (e.g. a version)."""
        label = schema.check_label(label)
        if prop not in schema.VECTOR_PROPERTIES.get(label, ()):
            raise ConfigError(f"{label}.{prop} is not a vector property")
        if len(ids) != len(vectors):
            raise ConfigError(f"{len(ids)} ids but {len(vectors)} vectors")
        stmt = self.cypher.one("write_vectors", label=label, key=schema.key_of(label), prop=prop,
                               set_clause=set_clause("n", "$extra", sorted(extra or {})))  # static keys: see _upsert
        vecs = np.asarray(vectors, dtype=np.float32)
        rows = ({"id": i, "v": v.tolist()} for i, v in zip(ids, vecs))
        return self._unwind(stmt, rows, batch_size, progress, {"extra": extra or {}})

    @abstractmethod
    def create_vector_index(self, label: str, prop: str, dim: int) -> None: ...

    @abstractmethod
    def knn(self, label: str, prop: str, vector: Sequence[float], k: int) -> list[tuple[str, float]]:
        """The ``k`` nearest nodes as (key, cosine similarity in [-1, 1], higher is closer)."""

    # --- counts -------------------------------------------------------------------------
    def counts(self) -> dict[str, dict[str, int]]:
        nodes = {r["label"]: int(r["n"]) for r in self.run("count_nodes", read_only=True)}
        rels = {r["type"]: int(r["n"]) for r in self.run("count_relationships", read_only=True)}
        return {"nodes": dict(sorted(nodes.items())), "relationships": dict(sorted(rels.items()))}

    def clear(self) -> None:
        """Delete everything (tests and `build --fresh`)."""
        self.run("clear")


SAMPLES_NEED = "sampled projections need Neo4j with GDS; this store streams the whole projection (train without --sampled)"


def set_clause(var: str, source: str, keys: Iterable[str]) -> str:
    """``SET var.k = source.k, ...`` for allow-checked property ``keys`` (empty: no clause)."""
    sets = ", ".join(f"{var}.{k} = {source}.{k}" for k in map(schema.check_property, keys))
    return f"SET {sets}" if sets else ""


def redact_uri(uri: str) -> str:
    """``uri`` with any password in its user-info replaced by ``***`` (for messages and logs)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
        if parts.password is None:
            return uri
        user = parts.username or ""
        host = parts.netloc.rsplit("@", 1)[1]
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:  # unparsable (e.g. a bad port): drop everything between :// and @
        head, sep, rest = uri.partition("://")
        return f"{head}{sep}***@{rest.rsplit('@', 1)[1]}" if "@" in rest else uri


def open_store(settings: Settings) -> GraphStore:
    """Open the store that ``settings.graph_uri`` names (unset: the embedded FalkorDB).
    A password embedded in the URI never appears in the error raised here."""
    from urllib.parse import urlsplit

    try:
        return _open_store(settings)
    except KgrecError as e:
        try:
            secret = urlsplit(settings.graph_uri or "").password
        except ValueError:
            secret = None
        if secret and secret in str(e):
            # the original error (and its driver cause) carry the secret: do not chain them
            raise type(e)(str(e).replace(secret, "***")) from None
        raise


def _open_store(settings: Settings) -> GraphStore:
    uri = settings.graph_uri
    if not uri or uri.startswith("falkordb://"):
        from kgrec.kg.falkordb_store import FalkorDBStore

        return FalkorDBStore(settings)
    if uri.split("://", 1)[0] in {"neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc"}:
        from kgrec.kg.neo4j_store import Neo4jStore

        return Neo4jStore(settings)
    raise ConfigError(f"unsupported graph URI {redact_uri(uri)!r}: use neo4j://, bolt://, falkordb:// or leave it unset")
