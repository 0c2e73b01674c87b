"""``kgrec build``: data files → canonical tables → split → the knowledge graph.

Every write is an idempotent MERGE, so a second build, or a build re-run after being
killed half-way, ends with the same counts as one clean build. ``bulk`` (``kgrec build --bulk``)
writes the same rows as CSV files instead and loads them with ``neo4j-admin database import``
into the home's local Neo4j (:mod:`kgrec.kg.bulk_import`): a first load, into an empty database.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kgrec.errors import ConfigError, DataError
from kgrec.kg import graph_rows
from kgrec.kg.artefacts import (
    drop_item_embeddings,
    load_split,
    read_build_meta,
    save_item_embeddings,
    save_split,
    split_dir,
    write_build_meta,
)
from kgrec.kg.store import GraphStore, Progress
from kgrec.progress import NullProgress, ProgressReporter
from kgrec.settings import Settings

#: re-exported for callers written before kgrec.kg.artefacts existed; new code imports that module
__all__ = ["BuildOptions", "BuildSummary", "build", "load_split", "read_build_meta", "split_dir"]


@dataclass
class BuildOptions:
    kind: str
    data: Path
    k_core: int = 5
    session_gap_s: float = 24 * 3600.0
    session_len: int | None = None  # order-only data: items per session (None: leave-last-out)
    embeddings: bool = True
    embedding_model: str | None = None
    strict: bool = False
    fresh: bool = False
    #: load through neo4j-admin import into the home's local Neo4j (empty, or replaced with fresh)
    bulk: bool = False

    def validate(self) -> BuildOptions:
        """Fail fast, before a database is opened, on options that cannot work."""
        from kgrec.kg.loaders import LOADERS

        if self.kind not in LOADERS:
            raise ConfigError(f"unknown dataset kind {self.kind!r}; choose one of {', '.join(sorted(LOADERS))}")
        if not Path(self.data).exists():
            raise DataError(f"{self.data}: no such file or directory")
        if self.session_gap_s <= 0:
            raise ConfigError(f"--session-gap must be positive, got {self.session_gap_s / 3600:g} hours")
        return self


@dataclass
class BuildSummary:
    dataset: str
    data: str
    split: dict[str, Any]
    malformed: int
    malformed_examples: list[str]
    counts: dict[str, dict[str, int]]
    written: dict[str, int] = field(default_factory=dict)
    embedded: int = 0
    embeddings_from_cache: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    relations_skipped: dict[str, int] = field(default_factory=dict)  # data set KG relations not allowed

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build(store: GraphStore, settings: Settings, options: BuildOptions,
          progress: ProgressReporter | None = None) -> BuildSummary:
    """Load, preprocess and split the data set, then write the graph from the training split
    (and the data set's own knowledge graph, and the item embeddings, when there are)."""
    options.validate()
    progress = progress or NullProgress()
    server = None
    if options.bulk:  # refused before anything is loaded: not the local Neo4j, or not empty
        from kgrec.kg.bulk_import import check_target

        server = check_target(store, settings, fresh=options.fresh)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    ds, split = load_and_split(options, progress, timings)
    _replace_or_refuse(store, settings, options, split.fingerprint(), progress)
    save_split(settings, split)
    if server is None:
        written, skipped = write_merged(store, ds, split, progress, timings)
    else:
        written, skipped = write_bulk(store, server, ds, split, progress, timings)
    embedded = cached = 0
    drop_item_embeddings(settings)
    if options.embeddings:
        t = time.perf_counter()
        embedded, cached = write_item_embeddings(store, split, settings, progress,
                                                 options.embedding_model or settings.embedding_model)
        timings["embeddings"] = time.perf_counter() - t
    counts = store.counts()
    timings["total"] = time.perf_counter() - t0
    write_build_meta(settings, {
        "dataset": options.kind, "data": str(options.data), "fingerprint": split.fingerprint(),
        "k_core": options.k_core, "session_gap_s": options.session_gap_s, "session_len": options.session_len,
        "embedding_model": (options.embedding_model or settings.embedding_model) if options.embeddings else None,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "counts": counts,
    })
    return BuildSummary(
        dataset=options.kind, data=str(options.data), split=dict(split.stats),
        malformed=ds.report.malformed, malformed_examples=list(ds.report.examples), counts=counts,
        written=written, embedded=embedded, embeddings_from_cache=cached,
        seconds={k: round(v, 2) for k, v in timings.items()}, relations_skipped=skipped)


def load_and_split(options: BuildOptions, progress: ProgressReporter, timings: dict[str, float]) -> tuple[Any, Any]:
    """The loaded :class:`~kgrec.kg.tables.Dataset` and its train/valid/test split."""
    from kgrec.kg.loaders import load_dataset
    from kgrec.kg.preprocess import preprocess

    t = time.perf_counter()
    with progress.stage(f"load {options.kind}") as advance:
        ds = load_dataset(options.kind, options.data, strict=options.strict, progress=advance)
    timings["load"] = time.perf_counter() - t
    t = time.perf_counter()
    with progress.stage("preprocess (dedupe, k-core, sessions, split)") as advance:
        split = preprocess(ds, k_core=options.k_core, session_gap_s=options.session_gap_s,
                           session_len=options.session_len)
        advance(1)
    timings["preprocess"] = time.perf_counter() - t
    return ds, split


def _replace_or_refuse(store: GraphStore, settings: Settings, options: BuildOptions, fingerprint: str,
                       progress: ProgressReporter) -> None:
    """A graph that holds another build is cleared with ``--fresh`` and refused without it."""
    meta = read_build_meta(settings)
    if meta and meta.get("fingerprint") != fingerprint and not options.fresh and store.counts()["nodes"]:
        raise ConfigError(
            f"{store.uri} already holds a different build ({meta.get('dataset')} from {meta.get('data')}); "
            "rerun with --fresh to replace it")
    if options.fresh and not options.bulk:  # the import replaces the database anyway
        with progress.stage("clear the graph") as advance:
            store.clear()
            advance(1)


class RowSink(Protocol):
    """Where the build's rows go: the store (MERGE) or :class:`kgrec.kg.bulk_import.ImportWriter`."""

    def upsert_nodes(self, label: str, rows: Iterable[dict[str, Any]], *, batch_size: int | None = None,
                     progress: Progress | None = None) -> int: ...

    def upsert_relationships(self, rel_type: str, rows: Iterable[dict[str, Any]], *,
                             batch_size: int | None = None, progress: Progress | None = None,
                             fresh: bool = False) -> int: ...


def write_merged(store: GraphStore, ds: Any, split: Any, progress: ProgressReporter,
                 timings: dict[str, float]) -> tuple[dict[str, int], dict[str, int]]:
    """The MERGE path: constraints first, then every row upserted; (written per label/type,
    data set KG relations left out)."""
    t = time.perf_counter()
    store.ensure_schema()
    timings["schema"] = time.perf_counter() - t
    present = store.counts()["relationships"]
    return write_rows(store, ds, split, progress, timings, fresh={t for t in DISTINCT_ROWS if not present.get(t)})


def write_bulk(store: GraphStore, server: Any, ds: Any, split: Any, progress: ProgressReporter,
               timings: dict[str, float]) -> tuple[dict[str, int], dict[str, int]]:
    """The bulk path: the same rows into CSV files (``nodes``/``relationships`` timings), then
    stop → ``neo4j-admin database import full`` → restart (``bulk import``), then the constraints."""
    from kgrec.kg import bulk_import

    with bulk_import.ImportWriter(bulk_import.import_dir(server)) as writer:
        written, skipped = write_rows(writer, ds, split, progress, timings)
    for rel_type, n in sorted(writer.dangling.items()):
        progress.note(f"{n:,} {rel_type} rows name a node that is not in the graph: left out, as MERGE does")
    t = time.perf_counter()
    run = bulk_import.import_files(server, writer, progress)
    timings["bulk import"] = time.perf_counter() - t
    for step, seconds in run.seconds.items():  # stop, neo4j-admin, start
        timings[f"bulk import ({step})"] = seconds
    t = time.perf_counter()
    store.ensure_schema()
    timings["schema"] = time.perf_counter() - t
    return written, skipped


def write_rows(sink: RowSink, ds: Any, split: Any, progress: ProgressReporter, timings: dict[str, float], *,
               fresh: set[str] | frozenset[str] = frozenset()) -> tuple[dict[str, int], dict[str, int]]:
    """Every row of the build into ``sink``: the training graph, then the data set's own KG;
    (written per label/type, data set KG relations left out)."""
    written = write_graph(sink, split, progress, timings, fresh=fresh)
    known = {str(i) for i in split.items["item"]}
    skipped = write_item_graph(sink, ds.graph, known, progress, written) if ds.graph is not None else {}
    return written, skipped


def write_item_graph(store: RowSink, graph: Any, known: set[str], progress: ProgressReporter,
                     written: dict[str, int]) -> dict[str, int]:
    """The data set's own knowledge graph (RecBole ``.link``/``.kg``): ``Entity`` nodes,
    ``SAME_AS`` and typed facts under the allow-list; returns the relations left out."""
    nodes, same_as, rels = graph_rows.item_graph_rows(graph, known)
    with progress.stage("nodes: Entity (data set KG)", len(nodes)) as advance:
        written["Entity"] = store.upsert_nodes("Entity", nodes, progress=advance)
    with progress.stage("relationships: SAME_AS + KG facts", len(same_as) + sum(map(len, rels.values()))) as advance:
        written["SAME_AS"] = store.upsert_relationships("SAME_AS", same_as, progress=advance)
        for rel_type, rows in sorted(rels.items()):
            written[rel_type] = store.upsert_relationships(rel_type, rows, progress=advance)
    return dict(graph.skipped)


#: relationship types whose build rows are distinct (src, dst) pairs (one per user–item pair, one
#: per consecutive or related item pair), so a graph without them yet gets them by CREATE
DISTINCT_ROWS = ("INTERACTED", "CO_OCCURS")


def write_graph(store: RowSink, split: Any, progress: ProgressReporter, timings: dict[str, float], *,
                fresh: set[str] | frozenset[str] = frozenset()) -> dict[str, int]:
    """Nodes, then relationships, all from the training split (the schema is the caller's).
    The types in ``fresh`` (of :data:`DISTINCT_ROWS`, not yet in the graph) are CREATEd, the rest
    MERGEd: a build killed half-way and run again MERGEs what it had begun."""
    written: dict[str, int] = {}
    records = graph_rows.item_records(split.items)
    known_items = {str(r["item"]) for r in records}
    users = sorted(split.train["user"].astype(str).unique())

    t = time.perf_counter()
    with progress.stage("nodes: User", len(users)) as advance:
        written["User"] = store.upsert_nodes("User", ({"key": u, "props": {}} for u in users), progress=advance)
    with progress.stage("nodes: Item", len(records)) as advance:
        written["Item"] = store.upsert_nodes("Item", graph_rows.item_node_rows(records), progress=advance)
    feat_nodes, feat_edges = graph_rows.feature_rows(records)
    with progress.stage("nodes: Feature", len(feat_nodes)) as advance:
        written["Feature"] = store.upsert_nodes("Feature", feat_nodes, progress=advance)
    timings["nodes"] = time.perf_counter() - t

    t = time.perf_counter()
    n_pairs = int(split.train.groupby(["user", "item"]).ngroups) if len(split.train) else 0
    with progress.stage("relationships: INTERACTED (train only)", n_pairs) as advance:
        written["INTERACTED"] = store.upsert_relationships(
            "INTERACTED", graph_rows.interaction_rows(split.train), progress=advance, fresh="INTERACTED" in fresh)
    with progress.stage("relationships: HAS_FEATURE", len(feat_edges)) as advance:
        written["HAS_FEATURE"] = store.upsert_relationships("HAS_FEATURE", feat_edges, progress=advance)
    from kgrec.kg.tables import Ordering

    co = graph_rows.cooccurrence_rows(split.train, split.items, known_items,
                                      ordered=Ordering(split.ordering) != Ordering.NONE)
    with progress.stage("relationships: CO_OCCURS", len(co)) as advance:
        written["CO_OCCURS"] = store.upsert_relationships("CO_OCCURS", co, progress=advance,
                                                          fresh="CO_OCCURS" in fresh)
    timings["relationships"] = time.perf_counter() - t
    return written


def write_item_embeddings(store: GraphStore, split: Any, settings: Settings, progress: ProgressReporter,
                          model_name: str) -> tuple[int, int]:
    """Encode every item's text (cached by text hash), write ``Item.emb`` and its vector index.
    Returns (vectors written, vectors served from the cache)."""
    from kgrec.kg.embed import embed_texts

    records = graph_rows.item_records(split.items)
    ids = [str(r["item"]) for r in records]
    texts = [graph_rows.item_text(r) for r in records]
    with progress.stage(f"embed items ({model_name})", len(texts)) as advance:
        vectors, encoded = embed_texts(texts, model_name=model_name, cache_root=settings.cache_dir,
                                       batch_size=settings.embedding_batch_size, progress=advance)
    with progress.stage("write Item.emb", len(ids)) as advance:
        store.write_vectors("Item", "emb", ids, vectors, progress=advance)
    store.create_vector_index("Item", "emb", int(vectors.shape[1]))
    save_item_embeddings(settings, ids, vectors, split.fingerprint())
    return len(ids), len(ids) - encoded
