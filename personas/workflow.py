"""Persona training end to end against the graph store, and the inductive path.

:func:`train_personas` streams the training projection, builds the meta-path graphs,
trains HDGI, saves the model (+ the arrays inductive inference needs) under
``settings.models_dir / "personas"``, writes ``User.persona`` (with ``persona_version``)
and its vector index, clusters users into ``Persona`` groups and replaces the old ones.
Loading the saved model for inference (an anonymous session's inductive persona, the persona
of a user's past) lives in :mod:`kgrec.personas.saved`.
Each step of the training has a name (:func:`stream_arrays`, :func:`metapath_graphs`,
:func:`fit_hdgi`, :func:`save_artefacts`, :func:`write_personas`, :func:`write_groups`).
torch loads only inside :func:`fit_hdgi`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from kgrec.choices import Encoder, Features, Projection, choice
from kgrec.errors import ConfigError, DataError, ModelError, NotFoundError
from kgrec.kg.store import GraphStore
from kgrec.progress import NullProgress, ProgressReporter
from kgrec.settings import Settings, apply_torch_threads

from .data import GraphArrays, item_term_lists
from .features import UserFeaturizer
from .geometry import geometry
from .groups import cluster_personas, label_groups
from .metapaths import build_metapath_graphs, parse_metapaths
from .projection import graph_arrays

ARRAYS_FILE = "arrays.npz"
FEATURES_FILE = "features.npz"
#: the training users' mean persona (and covariance), saved with the persona version
CENTRE_FILE = "centre.npz"
SUMMARY_FILE = "summary.json"
#: edge arrays a relation letter pair needs (empty → the meta-path cannot have edges)
_NEEDS = {"F": "item_feature", "E": "item_entity", "EE": "entity_entity", "II": "item_item"}


def model_dir(settings: Settings) -> Path:
    return settings.models_dir / "personas"


@dataclass
class PersonaSummary:
    version: str
    n_users: int
    dim: int
    encoder: str
    metapaths: list[str]
    dropped: dict[str, str]  # meta-path → why it was dropped
    attention: dict[str, float]
    losses: list[float]
    best_epoch: int
    seconds: dict[str, float]
    groups: list[dict[str, Any]]  # {"id", "size", "label", "top_genres", "top_people", "top_items"}
    model_dir: str
    metapath_edges: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    geometry: dict[str, float] = field(default_factory=dict)  # personas.geometry: collapse diagnostics

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _missing_relation(arrays: Any, name: str) -> str | None:
    """Why meta-path ``name`` is empty on these arrays by construction, or None."""
    needs = [k for k in ("EE", "II") if k in name] + [c for c in ("F", "E") if c in name]
    for k in needs:
        if getattr(arrays, _NEEDS[k]).shape[1] == 0:
            return f"no {_NEEDS[k].replace('_', '–')} edges in the graph"
    return None


@dataclass
class HDGIConfig:
    """The hyper-parameters of one persona training run (validated on construction)."""

    encoder: str = "gcn"
    epochs: int = 200
    metapaths: Sequence[str] = ("UIU", "UIFIU", "UIEIU")
    hidden: int = 256
    lr: float = 1e-4
    patience: int = 20
    features: str = "mean+cf"
    cf_dim: int = 64
    batch_size: int | None = None
    max_neighbors: int = 20
    device: str = "cpu"
    #: VICReg-style regulariser added to the DGI loss (:func:`~kgrec.personas.hdgi.vicreg_penalty`)
    var_weight: float = 0.0
    cov_weight: float = 0.0
    reg_normalize: bool = False
    #: train and embed on server-side samples of ``batch_size`` users each (Neo4j GDS,
    #: :mod:`kgrec.personas.sampled`), so that the client's memory follows the batch
    sampled: bool = False
    nodes_per_user: int = 20
    restart_probability: float = 0.8

    def __post_init__(self) -> None:
        self.encoder = choice(Encoder, self.encoder, "encoder")
        self.features = choice(Features, self.features, "features")
        if self.hidden < 1:
            raise ConfigError(f"hidden must be ≥ 1 (got {self.hidden})")
        if self.var_weight < 0 or self.cov_weight < 0:
            raise ConfigError(f"var_weight and cov_weight must be ≥ 0 (got {self.var_weight}, {self.cov_weight})")
        if self.sampled and (self.batch_size is None or self.features != Features.mean):
            raise ConfigError("sampled training needs --batch-size (users per sample) and --features mean "
                              "(the cf block is an SVD of the whole user–item matrix)")


@dataclass
class MetaPathGraphs:
    """The meta-paths kept for training (with their user–user graphs) and the dropped ones."""

    specs: list[Any]
    graphs: list[Any]
    dropped: dict[str, str]
    edges: dict[str, int]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]


class StageTimer:
    """``with timer("stage"):`` adds the block's wall time to ``seconds["stage"]``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t = time.perf_counter()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t


def train_personas(store: GraphStore, settings: Settings, *, k: int | None = None, seed: int | None = None,
                   progress: ProgressReporter | None = None, **hparams: Any) -> PersonaSummary:
    """Train HDGI personas on the stored graph and write them back (see the module doc).
    ``hparams`` are :class:`HDGIConfig` fields (encoder, epochs, metapaths, hidden, ...)."""
    try:
        cfg = HDGIConfig(**hparams)
    except TypeError as e:  # an unknown keyword
        raise ConfigError(f"train_personas: {e}") from e
    progress = progress or NullProgress()
    seed = settings.seed if seed is None else int(seed)
    apply_torch_threads(settings)
    if cfg.sampled:
        from .sampled import train_personas_sampled

        return train_personas_sampled(store, settings, cfg, seed, progress)
    timer = StageTimer()
    with timer("stream"):
        arrays = stream_arrays(store, settings, progress)
    with timer("metapaths"):
        paths = metapath_graphs(arrays, cfg.metapaths, cfg.max_neighbors, seed, progress)
    with timer("features"), progress.stage(f"user features ({cfg.features})") as advance:
        featurizer = UserFeaturizer.fit(arrays, cfg.features, cf_dim=cfg.cf_dim, seed=seed)
        x = featurizer.users(arrays)
        advance(1)
    with timer("train"):
        model, result, z = fit_hdgi(x, paths.graphs, cfg, seed, progress)
    with timer("write"):
        out_dir = model_dir(settings)
        version = save_artefacts(out_dir, model, cfg, seed, result, paths, arrays, featurizer)
        centre = save_centre(out_dir, z, version)
        stored = (z - centre).astype(np.float32)  # the raw personas share one dominant direction
        write_personas(store, arrays.user_ids, stored, version, progress)
        groups = write_groups(store, arrays, stored, version, paths.names, [round(float(a), 4) for a in result.attention],
                              k=k, seed=seed, progress=progress)
    summary = PersonaSummary(
        version=version, n_users=arrays.n_users, dim=int(z.shape[1]), encoder=cfg.encoder,
        metapaths=paths.names, dropped=paths.dropped,
        attention={n: round(float(a), 4) for n, a in zip(paths.names, result.attention, strict=True)},
        losses=[float(v) for v in result.losses], best_epoch=result.best_epoch, seconds=timer.seconds,
        groups=groups, model_dir=str(out_dir), metapath_edges=paths.edges, geometry=geometry(z),
        notes=[f"meta-path {n} dropped: {why}" for n, why in paths.dropped.items()]
        + ([f"stopped early at epoch {result.epochs_run}"] if result.stopped_early else []),
    )
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


def stream_arrays(store: GraphStore, settings: Settings, progress: ProgressReporter) -> GraphArrays:
    """The training projection of the graph as :class:`GraphArrays` (item vectors from the
    build's copy of ``Item.emb`` when it has one)."""
    from kgrec.kg.artefacts import load_item_embeddings

    with progress.stage("stream training graph") as advance:
        arrays = graph_arrays(store, load_item_embeddings(settings))
        advance(1)
    return arrays


def metapath_graphs(arrays: GraphArrays, metapaths: Sequence[str], max_neighbors: int, seed: int,
                    progress: ProgressReporter) -> MetaPathGraphs:
    """One sampled user–user graph per meta-path; a path with no edges is dropped (and said so).
    Raises :class:`DataError` when every path is empty."""
    specs = parse_metapaths(metapaths, max_neighbors=max_neighbors)
    out = MetaPathGraphs([], [], {}, {})
    with progress.stage("meta-path graphs", total=len(specs)) as advance:
        possible = []
        for spec in specs:
            why = _missing_relation(arrays, spec.name)
            if why is None:
                possible.append(spec)
            else:
                out.dropped[spec.name] = why
        for spec, g in zip(possible, build_metapath_graphs(arrays, possible, seed=seed), strict=True):
            if g.num_edges == 0:
                out.dropped[spec.name] = "no user pairs connected by this path"
            else:
                out.specs.append(spec)
                out.graphs.append(g)
                out.edges[spec.name] = g.num_edges
        advance(len(specs))
    for name, why in out.dropped.items():
        progress.note(f"meta-path {name} dropped: {why}")
    if not out.specs:
        raise DataError(f"every meta-path is empty on this graph ({out.dropped}); nothing to train on")
    return out


def fit_hdgi(x: np.ndarray, graphs: list[Any], cfg: HDGIConfig, seed: int,
             progress: ProgressReporter) -> tuple[Any, Any, np.ndarray]:
    """Train an :class:`~kgrec.personas.hdgi.HDGI` on ``x`` over ``graphs``; returns the model,
    its training result and the persona matrix."""
    from .hdgi import HDGI
    from .train import embed_personas, train_hdgi

    model = HDGI(x.shape[1], cfg.hidden, len(graphs), encoder=cfg.encoder, var_weight=cfg.var_weight,
                 cov_weight=cfg.cov_weight, reg_normalize=cfg.reg_normalize)
    with progress.stage(f"train HDGI-{cfg.encoder}", total=cfg.epochs) as advance:
        result = train_hdgi(
            model, x, graphs, epochs=cfg.epochs, lr=cfg.lr, patience=cfg.patience, seed=seed,
            device=cfg.device, batch_size=cfg.batch_size,
            num_neighbors=cfg.max_neighbors if cfg.batch_size else None,
            on_epoch=lambda _e, loss: advance(1, info=f"loss {loss:.4f}"),
        )
    z = embed_personas(model, x, graphs, batch_size=cfg.batch_size, use_stored_attention=True)
    return model, result, z


def save_artefacts(out_dir: Path, model: Any, cfg: HDGIConfig, seed: int, result: Any, paths: MetaPathGraphs,
                   arrays: GraphArrays, featurizer: UserFeaturizer) -> str:
    """The model, the arrays and the featurizer that inductive inference needs; returns the
    persona version (model hash + time)."""
    from .persistence import save_model

    hparams = training_hparams(cfg, seed, result) | {"cf_dim": int(featurizer.item_factors.shape[1])}
    mhash = save_model(out_dir, model, hparams, paths.specs)
    arrays.save(out_dir / ARRAYS_FILE)
    featurizer.save(out_dir / FEATURES_FILE)
    return persona_version(mhash)


def persona_version(model_hash: str) -> str:
    """A persona version: the model hash and the time it was saved."""
    return f"{model_hash}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"


def training_hparams(cfg: HDGIConfig, seed: int, result: Any) -> dict[str, Any]:
    return {"epochs": cfg.epochs, "lr": cfg.lr, "patience": cfg.patience, "batch_size": cfg.batch_size,
            "max_neighbors": cfg.max_neighbors, "seed": seed, "best_epoch": result.best_epoch,
            "features": str(cfg.features)}


def save_centre(out_dir: Path, z: np.ndarray, version: str) -> np.ndarray:
    """Save (and return) the mean, with the covariance, of the training users' raw personas, tagged
    with their version. ``User.persona`` holds the centred personas, and the past encoder centres
    every persona it builds with the same mean (raw personas share one dominant direction: on the
    MovieLens demo cosine to the mean .98, mean 5-NN cosine .985; centred .55)."""
    z = np.asarray(z, dtype=np.float64)
    np.savez(out_dir / CENTRE_FILE, mean=z.mean(0), cov=np.cov(z.T), version=np.asarray(version))
    return z.mean(0)


def write_personas(store: GraphStore, user_ids: Sequence[str], z: np.ndarray, version: str,
                   progress: ProgressReporter) -> None:
    """``User.persona`` (+ ``persona_version``) and its vector index."""
    with progress.stage("write User.persona", total=len(user_ids)) as advance:
        store.write_vectors("User", "persona", user_ids, z, progress=advance,
                            extra={"persona_version": version})
    store.create_vector_index("User", "persona", int(z.shape[1]))


def write_groups(store: GraphStore, arrays: GraphArrays, z: np.ndarray, version: str, names: list[str],
                 attention: list[float], *, k: int | None, seed: int,
                 progress: ProgressReporter) -> list[dict[str, Any]]:
    """Cluster the personas, label the groups and replace the graph's ``Persona`` nodes and
    ``HAS_PERSONA`` edges; returns the groups, biggest (``p0``) first."""
    with progress.stage("persona groups") as advance:
        clusters = cluster_personas(z, k, k_range=range(4, 13), seed=seed)
        labels = label_groups(clusters.assignments, arrays.user_item, item_term_lists(arrays),
                              item_titles=item_titles(store, arrays))
        advance(1)
    order = sorted((g for g in range(clusters.k) if labels[g].size > 0), key=lambda g: (-labels[g].size, g))
    pid = {g: f"p{r}" for r, g in enumerate(order)}
    store.delete_relationships("HAS_PERSONA")
    store.run("personas_delete")
    store.upsert_nodes("Persona", [
        {"key": pid[g], "props": labels[g].properties() | {
            "persona_version": version, "metapaths": names, "attention": attention}}
        for g in order])
    store.run("personas_size_labels")
    weight = clusters.typicality(z)
    store.upsert_relationships("HAS_PERSONA", (
        {"src": u, "dst": pid[int(g)], "props": {"persona_version": version, "weight": w}}
        for u, g, w in zip(arrays.user_ids, clusters.assignments.tolist(), weight, strict=True)))
    return [{"id": pid[g]} | labels[g].row() for g in order]


def item_titles(store: GraphStore, arrays: GraphArrays) -> list[str | None]:
    rows = store.stream_nodes("Item", ["title"])
    title_of = dict(zip(rows.ids, rows.properties["title"], strict=True))
    return [title_of.get(i) for i in arrays.item_ids]


def show_personas(store: GraphStore) -> list[dict[str, Any]]:
    """The persona table (``kgrec personas show``): id, size, label, top genres, people, items."""
    rows = store.run("browser/persona_overview", read_only=True)
    if not rows:
        raise NotFoundError("no persona groups in the graph; run `kgrec train personas` first")
    return rows


def nearest_users(store: GraphStore, user: str, k: int = 10) -> list[dict[str, Any]]:
    """The ``k`` users whose personas are nearest to ``user``'s (cosine, through the store's
    vector index on ``User.persona``), with their persona group and training-item count."""
    if k < 1:
        raise ConfigError(f"k must be ≥ 1, got {k}")
    rows = store.run("recommend_user", {"user": user}, read_only=True)
    if not rows:
        raise NotFoundError(f"unknown user id {user!r}")
    if rows[0]["persona"] is None:
        raise ModelError(f"user {user!r} has no persona; run `kgrec train personas` first")
    hits = [(u, score) for u, score in store.knn("User", "persona", rows[0]["persona"], k + 1) if u != user][:k]
    about = {r["user"]: r for r in store.run("persona_neighbours", {"ids": [u for u, _ in hits]}, read_only=True)}
    return [{"user": u, "similarity": round(score, 4), "persona": about.get(u, {}).get("persona"),
             "label": about.get(u, {}).get("label"), "items": about.get(u, {}).get("items")} for u, score in hits]


def plot_personas(store: GraphStore, settings: Settings, *, out: Path | None = None,
                  html: Path | None = None, method: str = "tsne", sample: int = 3000) -> list[Path]:
    """The persona map (``kgrec personas plot``) from one 2-D projection: a PNG (``out``, by
    default under the reports dir, unless only ``html`` is asked for) and, with ``html``, the
    interactive self-contained HTML page. Returns the paths written."""
    from .plot import draw_png, persona_map, persona_table, write_html

    pm = persona_map(store, method=choice(Projection, method, "method"), sample=sample, seed=settings.seed)
    paths = []
    if out is not None or html is None:
        labels = {r["persona"]: r["label"] for r in persona_table(store)}
        paths.append(draw_png(pm, labels, out or settings.reports_dir / "personas.png"))
    if html is not None:
        paths.append(write_html(store, pm, html))
    return paths
