"""HDGI on server-side samples: the client's memory follows the batch, not the graph.

Each step takes a batch of target users, asks the store for a random-walk-with-restart sample
of the training projection around them (Neo4j GDS ``gds.graph.sample.rwr``:
:meth:`~kgrec.kg.store.GraphStore.sampled_projections`), builds the meta-path graphs and the
users' features inside that sample, and trains on the targets (the DGI corruption shuffles the
sample's rows: :func:`kgrec.personas.train.fit_batches`). Personas are embedded the same way, a
sample per batch of users (:func:`~kgrec.personas.train.embed_batches`).

What a sample cannot give, and so this mode leaves out:

- the ``cf`` feature block (an SVD of the whole user–item matrix): features are the ``mean``
  block, scaled on the first sample;
- the arrays of the inductive past encoder (the whole graph's): a model trained here writes
  ``User.persona`` and saves its weights, but a persona of a user's past or of an anonymous
  session needs a model trained on the whole projection;
- persona groups, whose labels count items over the whole graph.

A target that its sample does not reach (no sampled edge) is skipped in training and gets the
mean persona of its batch; the count is reported.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kgrec.errors import ConfigError, DataError
from kgrec.kg.store import SAMPLES_NEED, GraphStore
from kgrec.progress import ProgressReporter
from kgrec.settings import Settings

from .data import GraphArrays
from .features import UserFeaturizer
from .geometry import geometry
from .metapaths import MetaPathGraph, MetaPathSpec, build_metapath_graphs, parse_metapaths
from .projection import sampled_graph_arrays
from .workflow import (
    ARRAYS_FILE,
    FEATURES_FILE,
    SUMMARY_FILE,
    HDGIConfig,
    PersonaSummary,
    StageTimer,
    model_dir,
    persona_version,
    save_centre,
    training_hparams,
    write_personas,
)


@dataclass(frozen=True)
class SampleSettings:
    """How big each server-side sample is and how its walks run."""

    batch_users: int
    nodes_per_user: int = 20
    #: high, so that the walks stay near their start users and (nearly) every target gets a
    #: sampled edge: on the MovieLens demo at 0.15 two thirds of a batch's users were never reached
    restart_probability: float = 0.8

    def __post_init__(self) -> None:
        if self.batch_users < 1 or self.nodes_per_user < 1:
            raise ConfigError("sampled training needs batch_size ≥ 1 and nodes_per_user ≥ 1")
        if not 0.0 < self.restart_probability < 1.0:
            raise ConfigError(f"restart_probability must be in (0, 1), got {self.restart_probability}")


@dataclass
class SampleBatch:
    """One sample ready for HDGI: features and meta-path graphs, the batch's targets first."""

    x: np.ndarray
    graphs: list[MetaPathGraph]
    target_ids: list[str]
    missing: list[str]  # targets the sample did not reach

    @property
    def n_targets(self) -> int:
        return len(self.target_ids)


class SampledSource:
    """Batches of users → samples → :class:`SampleBatch` es, for one store and meta-path list."""

    def __init__(self, store: GraphStore, user_ids: Sequence[str], specs: Sequence[MetaPathSpec],
                 sample: SampleSettings, seed: int) -> None:
        self.store, self.user_ids, self.specs, self.sample, self.seed = store, list(user_ids), list(specs), sample, seed
        self.featurizer: UserFeaturizer | None = None
        self.max_sample_users = 0

    def batches(self, epoch: int | None) -> Iterator[SampleBatch]:
        """Every user once: shuffled by epoch in training, in order for embedding (``None``)."""
        n, size = len(self.user_ids), self.sample.batch_users
        order = np.arange(n) if epoch is None else np.random.default_rng([self.seed, epoch]).permutation(n)
        keys = [[self.user_ids[i] for i in order[s : s + size]] for s in range(0, n, size)]
        salt = 1_000_003 * (0 if epoch is None else epoch + 1)
        relations = {r for spec in self.specs for r in spec.relations}
        samples = sampled_graph_arrays(self.store, keys, relations=relations, nodes_per_user=self.sample.nodes_per_user,
                                       restart_probability=self.sample.restart_probability, seed=self.seed + salt)
        for targets, arrays in zip(keys, samples, strict=True):
            yield self._batch(targets, arrays)

    def _batch(self, targets: list[str], arrays: GraphArrays) -> SampleBatch:
        self.max_sample_users = max(self.max_sample_users, arrays.n_users)
        pos = {u: i for i, u in enumerate(arrays.user_ids)}
        reached = [u for u in targets if u in pos]
        first = np.asarray([pos[u] for u in reached], dtype=np.int64)
        rest = np.setdiff1d(np.arange(arrays.n_users), first)
        order = np.concatenate([first, rest])
        new_of = np.empty(arrays.n_users, dtype=np.int64)
        new_of[order] = np.arange(arrays.n_users)
        graphs = [MetaPathGraph(g.name, new_of[g.edge_index], g.weight, g.num_nodes)
                  for g in build_metapath_graphs(arrays, self.specs, seed=self.seed)]
        x = self._features(arrays)[order]
        return SampleBatch(x, graphs, reached, [u for u in targets if u not in pos])

    def _features(self, arrays: GraphArrays) -> np.ndarray:
        """The ``mean`` block, scaled once on the first sample (every later one reuses it)."""
        if self.featurizer is None:
            self.featurizer = UserFeaturizer.fit(arrays, "mean")
        return self.featurizer.users(arrays)


def train_personas_sampled(store: GraphStore, settings: Settings, cfg: HDGIConfig, seed: int,
                           progress: ProgressReporter) -> PersonaSummary:
    """:func:`~kgrec.personas.workflow.train_personas` on server-side samples (the module doc says
    what this mode leaves out): model and ``User.persona`` are written, groups are not."""
    from .hdgi import HDGI
    from .train import embed_batches, fit_batches

    if not store.samples:
        raise ConfigError(SAMPLES_NEED)
    timer = StageTimer()
    specs = parse_metapaths(cfg.metapaths, max_neighbors=cfg.max_neighbors)
    user_ids = store.stream_nodes("User").ids
    source = SampledSource(store, user_ids, specs, SampleSettings(int(cfg.batch_size), cfg.nodes_per_user,
                                                                  cfg.restart_probability), seed)
    dims = store.run("item_emb_dim", read_only=True)
    if not dims:
        raise DataError(f"{store.uri} has no item embeddings; rebuild with embeddings on")
    emb_dim = int(dims[0]["dim"])
    model = HDGI(emb_dim, cfg.hidden, len(specs), encoder=cfg.encoder, var_weight=cfg.var_weight,
                 cov_weight=cfg.cov_weight, reg_normalize=cfg.reg_normalize)
    with timer("train"), progress.stage(f"train HDGI-{cfg.encoder} on GDS samples", total=cfg.epochs) as advance:
        result = fit_batches(model, source.batches, epochs=cfg.epochs, lr=cfg.lr, patience=cfg.patience, seed=seed,
                             device=cfg.device, on_epoch=lambda _e, loss: advance(1, info=f"loss {loss:.4f}"))
    with timer("embed"), progress.stage("embed personas on GDS samples") as advance:
        ids, z, missing = embed_batches(model, source.batches(None))
        if not ids:
            raise DataError("no user was reached by its sample: nothing to embed")
        advance(1)
    with timer("write"):
        out_dir = model_dir(settings)
        version = save_sampled_model(out_dir, model, cfg, seed, result, specs)
        centre = save_centre(out_dir, z, version)
        write_personas(store, ids, (z - centre).astype(np.float32), version, progress)
    names = [s.name for s in specs]
    summary = PersonaSummary(
        version=version, n_users=len(ids), dim=int(z.shape[1]), encoder=cfg.encoder, metapaths=names, dropped={},
        attention={n: round(float(a), 4) for n, a in zip(names, model.attention.tolist(), strict=True)},
        losses=[float(v) for v in result.losses], best_epoch=result.best_epoch, seconds=timer.seconds, groups=[],
        model_dir=str(out_dir), geometry=geometry(z),
        notes=[(f"trained on GDS samples of {cfg.batch_size} users (largest sample: {source.max_sample_users} "
                "users); no persona groups and no inductive arrays in this mode")]
        + ([f"{len(missing)} users not reached by their sample got their batch's mean persona"] if missing else [])
        + ([f"stopped early at epoch {result.epochs_run}"] if result.stopped_early else []))
    (out_dir / SUMMARY_FILE).write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


def save_sampled_model(out_dir: Path, model: Any, cfg: HDGIConfig, seed: int, result: Any, specs: list[Any]) -> str:
    """The weights of a sampled run; the inductive arrays of an earlier whole-graph run are
    removed, since they no longer match the model."""
    from .persistence import save_model

    hparams = training_hparams(cfg, seed, result) | {"sampled": True, "nodes_per_user": cfg.nodes_per_user,
                                             "restart_probability": cfg.restart_probability}
    mhash = save_model(out_dir, model, hparams, specs)
    for name in (ARRAYS_FILE, FEATURES_FILE):
        (out_dir / name).unlink(missing_ok=True)
    return persona_version(mhash)
