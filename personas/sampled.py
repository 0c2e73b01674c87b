"""HDGI on server-side samples: the client's memory follows the batch, not the graph.

Each step takes a batch of target users, asks the store for a random-walk-with-restart sample
of the training projection around them (Neo4j GDS ``gds.graph.sample.rwr``:
:meth:`~kgrec.kg.store.GraphStore.sampled_projections`), builds the meta-path graphs and the
users' features inside that sample, and trains on the targets (the DGI corruption shuffles the
sample's rows). Personas are embedded the same way, a sample per batch of users.

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

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from kgrec.errors import ConfigError, DataError
from kgrec.kg.store import GraphStore

from .data import GraphArrays
from .features import UserFeaturizer
from .metapaths import MetaPathGraph, MetaPathSpec, build_metapath_graphs
from .projection import sampled_graph_arrays


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
        return replace(self.featurizer, item_factors=np.zeros((arrays.n_items, 0), dtype=np.float32)).users(arrays)


def train_sampled(model: Any, source: SampledSource, *, epochs: int, lr: float, patience: int, seed: int,
                  device: str = "cpu", on_epoch: Callable[[int, float], None] | None = None) -> Any:
    """Train ``model`` with the DGI objective, one step per sample; early stopping on the mean
    training loss of an epoch, as the full-graph trainer does. Returns its ``TrainResult``."""
    from .train import fit_batches

    return fit_batches(model, lambda epoch: source.batches(epoch), epochs=epochs, lr=lr, patience=patience,
                       seed=seed, device=device, on_epoch=on_epoch)


def embed_sampled(model: Any, source: SampledSource) -> tuple[list[str], np.ndarray, list[str]]:
    """``(user ids, personas, users no sample reached)`` with the model's stored attention."""
    from .train import embed_batches

    ids, z, missing = embed_batches(model, source.batches(None))
    if not ids:
        raise DataError("no user was reached by its sample: nothing to embed")
    return ids, z, missing
