"""Persona training end to end against the graph store, and the inductive path.

:func:`train_personas` streams the training projection, builds the meta-path graphs,
trains HDGI, saves the model (+ the arrays inductive inference needs) under
``settings.models_dir / "personas"``, writes ``User.persona`` (with ``persona_version``)
and its vector index, clusters users into ``Persona`` groups and replaces the old ones.
:func:`load_inductive` maps a list of item ids to a persona vector without retraining;
:func:`persona_attention` reads the saved meta-path weights. Heavy imports are lazy.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from kgrec.errors import ConfigError, DataError, ModelError, NotFoundError
from kgrec.kg.store import GraphStore
from kgrec.progress import NullProgress, ProgressReporter
from kgrec.settings import Settings, apply_torch_threads

ARRAYS_FILE = "arrays.npz"
FEATURES_FILE = "features.npz"
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
    groups: list[dict[str, Any]]  # {"id", "size", "label"}
    model_dir: str
    metapath_edges: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _missing_relation(arrays: Any, name: str) -> str | None:
    """Why meta-path ``name`` is empty on these arrays by construction, or None."""
    needs = [k for k in ("EE", "II") if k in name] + [c for c in ("F", "E") if c in name]
    for k in needs:
        if getattr(arrays, _NEEDS[k]).shape[1] == 0:
            return f"no {_NEEDS[k].replace('_', '–')} edges in the graph"
    return None


def _advance_with_info(advance: Callable[..., Any]) -> Callable[[int, str], None]:
    """``advance(n, info=...)`` where the reporter supports it (RichProgress), else ``advance(n)``."""
    def call(n: int, info: str) -> None:
        try:
            advance(n, info=info)
        except TypeError:
            advance(n)
    return call


def train_personas(
    store: GraphStore,
    settings: Settings,
    *,
    encoder: str = "gcn",
    epochs: int = 200,
    metapaths: Sequence[str] = ("UIU", "UIFIU", "UIEIU"),
    hidden: int = 256,
    lr: float = 1e-4,
    patience: int = 20,
    features: str = "mean+cf",
    cf_dim: int = 64,
    batch_size: int | None = None,
    k: int | None = None,
    max_neighbors: int = 20,
    device: str = "cpu",
    seed: int | None = None,
    progress: ProgressReporter | None = None,
) -> PersonaSummary:
    """Train HDGI personas on the stored graph and write them back (see the module doc)."""

    from .data import item_feature_lists, item_neighbour_entity_lists
    from .features import FEATURE_KINDS, UserFeaturizer
    from .groups import cluster_personas, label_groups
    from .hdgi import HDGI
    from .metapaths import RelationIndex, build_metapath_graph, parse_metapaths
    from .persistence import save_model
    from .projection import graph_arrays
    from .train import embed_personas, train_hdgi

    if encoder not in ("gcn", "gat") or hidden < 1:
        raise ConfigError(f"encoder must be 'gcn' or 'gat' (got {encoder!r}) and hidden ≥ 1 (got {hidden})")
    if features not in FEATURE_KINDS:
        raise ConfigError(f"features must be one of {', '.join(FEATURE_KINDS)} (got {features!r})")
    progress = progress or NullProgress()
    seed = settings.seed if seed is None else int(seed)
    apply_torch_threads(settings)
    seconds: dict[str, float] = {}

    t = time.perf_counter()
    with progress.stage("stream training graph") as advance:
        arrays = graph_arrays(store)
        advance(1)
    seconds["stream"] = time.perf_counter() - t

    t = time.perf_counter()
    specs = parse_metapaths(metapaths, max_neighbors=max_neighbors)
    index = RelationIndex(arrays)
    kept, graphs, dropped, n_edges = [], [], {}, {}
    with progress.stage("meta-path graphs", total=len(specs)) as advance:
        for spec in specs:
            why = _missing_relation(arrays, spec.name)
            if why is None:
                g = build_metapath_graph(index, spec, seed=seed)
                if g.num_edges == 0:
                    why = "no user pairs connected by this path"
                else:
                    kept.append(spec)
                    graphs.append(g)
                    n_edges[spec.name] = g.num_edges
            if why is not None:
                dropped[spec.name] = why
                progress.note(f"meta-path {spec.name} dropped: {why}")
            advance(1)
    if not kept:
        raise DataError(f"every meta-path is empty on this graph ({dropped}); nothing to train on")
    seconds["metapaths"] = time.perf_counter() - t

    t = time.perf_counter()
    with progress.stage(f"user features ({features})") as advance:
        featurizer = UserFeaturizer.fit(arrays, features, cf_dim=cf_dim, seed=seed)
        x = featurizer.users(arrays)
        advance(1)
    seconds["features"] = time.perf_counter() - t

    t = time.perf_counter()
    model = HDGI(x.shape[1], hidden, len(kept), encoder=encoder)
    with progress.stage(f"train HDGI-{encoder}", total=epochs) as advance:
        step = _advance_with_info(advance)
        result = train_hdgi(
            model, x, graphs, epochs=epochs, lr=lr, patience=patience, seed=seed, device=device,
            batch_size=batch_size, num_neighbors=max_neighbors if batch_size else None,
            on_epoch=lambda _e, loss: step(1, f"loss {loss:.4f}"),
        )
    z = embed_personas(model, x, graphs, batch_size=batch_size, use_stored_attention=True)
    seconds["train"] = time.perf_counter() - t

    t = time.perf_counter()
    out_dir = model_dir(settings)
    hparams = {"epochs": epochs, "lr": lr, "patience": patience, "batch_size": batch_size,
               "max_neighbors": max_neighbors, "seed": seed, "best_epoch": result.best_epoch,
               "features": features, "cf_dim": int(featurizer.item_factors.shape[1])}
    mhash = save_model(out_dir, model, hparams, kept)
    arrays.save(out_dir / ARRAYS_FILE)
    featurizer.save(out_dir / FEATURES_FILE)
    version = f"{mhash}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    with progress.stage("write User.persona", total=arrays.n_users) as advance:
        store.write_vectors("User", "persona", arrays.user_ids, z, progress=advance,
                            extra={"persona_version": version})
    store.create_vector_index("User", "persona", int(z.shape[1]))

    with progress.stage("persona groups") as advance:
        clusters = cluster_personas(z, k, k_range=range(4, 13), seed=seed)
        title_rows = store.stream_nodes("Item", ["title"])
        title_of = dict(zip(title_rows.ids, title_rows.properties["title"], strict=True))
        labels = label_groups(clusters.assignments, arrays.user_item, item_feature_lists(arrays),
                              item_neighbour_entity_lists(arrays),
                              item_titles=[title_of.get(i) for i in arrays.item_ids])
        advance(1)
    order = sorted(range(clusters.k), key=lambda g: (-labels[g].size, g))  # p0 = the biggest
    pid = {g: f"p{r}" for r, g in enumerate(order)}
    names = [s.name for s in kept]
    att = [float(a) for a in result.attention]
    store.delete_relationships("HAS_PERSONA")
    store.run("personas_delete")
    store.upsert_nodes("Persona", [
        {"key": pid[g], "props": {
            "size": labels[g].size, "label": labels[g].label,
            "top_features": [t.name for t in labels[g].top_features],
            "top_entities": [t.display for t in labels[g].top_entities],
            "persona_version": version, "metapaths": names, "attention": att}}
        for g in order if labels[g].size > 0])
    store.upsert_relationships("HAS_PERSONA", (
        {"src": u, "dst": pid[int(g)], "props": {"persona_version": version}}
        for u, g in zip(arrays.user_ids, clusters.assignments.tolist(), strict=True)))
    seconds["write"] = time.perf_counter() - t

    summary = PersonaSummary(
        version=version, n_users=arrays.n_users, dim=int(z.shape[1]), encoder=encoder,
        metapaths=names, dropped=dropped, attention=dict(zip(names, att, strict=True)),
        losses=[float(v) for v in result.losses], best_epoch=result.best_epoch, seconds=seconds,
        groups=[{"id": pid[g], "size": labels[g].size, "label": labels[g].label}
                for g in order if labels[g].size > 0],
        model_dir=str(out_dir), metapath_edges=n_edges,
        notes=[f"meta-path {n} dropped: {why}" for n, why in dropped.items()]
        + ([f"stopped early at epoch {result.epochs_run}"] if result.stopped_early else []),
    )
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


def load_inductive(store: GraphStore, settings: Settings) -> Callable[[list[str]], np.ndarray]:
    """A function mapping a session (item ids known to the trained model) to a persona vector.

    Raises :class:`ModelError` when no model is saved or the graph's personas come from
    another model; the returned function raises :class:`NotFoundError` for an unknown item.
    """
    from .data import GraphArrays
    from .features import UserFeaturizer
    from .inductive import InductivePersonas
    from .metapaths import MetaPathSpec
    from .persistence import load_model

    path = model_dir(settings)
    model, config = load_model(path)
    if not (path / ARRAYS_FILE).is_file():
        raise ModelError(f"{path}: missing {ARRAYS_FILE}; retrain the personas")
    written = next((r["version"] for r in store.run("personas_version", read_only=True)), None)
    if written is not None and not str(written).startswith(config["model_hash"]):
        raise ModelError(f"the graph's personas ({written}) were written by another model than "
                         f"{path} ({config['model_hash']}); retrain the personas")
    if not (path / FEATURES_FILE).is_file():
        raise ModelError(f"{path}: missing {FEATURES_FILE}; retrain the personas")
    arrays = GraphArrays.load(path / ARRAYS_FILE)
    featurizer = UserFeaturizer.load(path / FEATURES_FILE)
    specs = [MetaPathSpec.from_dict(d) for d in config["metapaths"]]
    encoder = InductivePersonas(model, arrays, specs, featurizer=featurizer,
                                seed=int(config["hparams"].get("seed", 0)))
    pos = {iid: i for i, iid in enumerate(arrays.item_ids)}

    def infer(item_ids: list[str]) -> np.ndarray:
        idx = []
        for iid in item_ids:
            if str(iid) not in pos:
                raise NotFoundError(f"item {iid!r} is not in the persona model's graph")
            idx.append(pos[str(iid)])
        return encoder.infer(np.asarray(idx, dtype=np.int64))

    return infer


def persona_attention(settings: Settings) -> dict[str, float]:
    """The saved global meta-path weights, e.g. ``{"UIU": 0.5, "UIFIU": 0.3, "UIEIU": 0.2}``."""
    from .persistence import ATTENTION_FILE

    path = model_dir(settings) / ATTENTION_FILE
    try:
        return {str(k): float(v) for k, v in json.loads(path.read_text()).items()}
    except FileNotFoundError as e:
        raise ModelError(f"no persona model at {path.parent}; train the personas first") from e
    except (OSError, ValueError, AttributeError) as e:
        raise ModelError(f"cannot read {path}: {e}") from e
