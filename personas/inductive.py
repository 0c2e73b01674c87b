"""Personas for anonymous sessions, without retraining.

A session (list of item indices) becomes a temporary user node whose features are the
mean embedding of its items (:func:`~kgrec.personas.data.session_features`, zero-padded
when training used extra user features). Through each meta-path it is linked to existing
users (walked from its items with the same ``max_fanout``/``max_neighbors`` caps as in
training), and the trained encoders run on that small subgraph — the new node plus its
neighbours, whose features come from the training arrays — combined with the trained
global meta-path weights (``model.attention``). With mean-GCN or GAT encoders the result
is exactly what the model would give that node inside the full graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from kgrec.errors import ConfigError

from .data import GraphArrays, session_features, user_features
from .hdgi import HDGI
from .metapaths import MetaPathSpec, RelationIndex, parse_metapaths, sample_from_items


class InductivePersonas:
    """Reusable inductive encoder (relation index and user features built once)."""

    def __init__(
        self,
        model: HDGI,
        arrays: GraphArrays,
        metapaths: Sequence[MetaPathSpec | str | dict],
        *,
        user_x: np.ndarray | torch.Tensor | None = None,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.arrays = arrays
        self.specs = parse_metapaths(metapaths)
        if len(self.specs) != model.num_metapaths:
            raise ConfigError(f"model has {model.num_metapaths} meta-paths, {len(self.specs)} specs given")
        ux = user_features(arrays) if user_x is None else user_x
        self.user_x = torch.as_tensor(
            np.asarray(ux, dtype=np.float32) if isinstance(ux, np.ndarray) else ux
        ).float()
        if self.user_x.shape != (arrays.n_users, model.in_channels):
            raise ConfigError(
                f"user features {list(self.user_x.shape)} do not match {arrays.n_users} users × "
                f"{model.in_channels} model inputs"
            )
        self.extra_dim = model.in_channels - arrays.emb_dim
        if self.extra_dim < 0:
            raise ConfigError(
                f"model expects {model.in_channels} inputs but item embeddings have {arrays.emb_dim}"
            )
        self.index = RelationIndex(arrays)
        self.seed = seed

    def neighbours(self, items: Sequence[int] | np.ndarray, seed: int | None = None) -> list[np.ndarray]:
        """Per meta-path, the existing users linked to a session with these items."""
        s = self.seed if seed is None else seed
        return [sample_from_items(self.index, spec, items, seed=s)[0] for spec in self.specs]

    def infer_many(
        self, sessions: Sequence[Sequence[int] | np.ndarray], seed: int | None = None
    ) -> np.ndarray:
        """Persona vectors ``[len(sessions), hidden]`` (float32), all sessions in one subgraph."""
        if len(sessions) == 0:
            return np.zeros((0, self.model.hidden_channels), dtype=np.float32)
        n_new = len(sessions)
        feats = np.stack([session_features(self.arrays, s, self.extra_dim) for s in sessions])
        per_path: list[list[tuple[int, np.ndarray]]] = [[] for _ in self.specs]
        for j, items in enumerate(sessions):
            for p, nbr in enumerate(self.neighbours(items, seed)):
                per_path[p].append((j, nbr))
        all_nbr = [nbr for path in per_path for _, nbr in path]
        nodes = np.unique(np.concatenate(all_nbr)) if all_nbr else np.zeros(0, np.int64)
        pos = {int(u): n_new + i for i, u in enumerate(nodes.tolist())}
        eil = []
        for path in per_path:
            src = [pos[int(u)] for _, nbr in path for u in nbr.tolist()]
            dst = [j for j, nbr in path for _ in range(len(nbr))]
            eil.append(torch.tensor([src, dst], dtype=torch.long).view(2, -1))
        device = self.model.attention.device
        x = torch.cat([torch.from_numpy(feats), self.user_x[torch.from_numpy(nodes).long()]]).to(device)
        z = self.model.embed(x, [e.to(device) for e in eil], weights=self.model.attention, target_size=n_new)
        return z.cpu().numpy().astype(np.float32)

    def infer(self, items: Sequence[int] | np.ndarray, seed: int | None = None) -> np.ndarray:
        """Persona vector ``[hidden]`` of one session."""
        return self.infer_many([items], seed)[0]


def infer_persona(
    model: HDGI,
    arrays: GraphArrays,
    items: Sequence[int] | np.ndarray,
    metapaths: Sequence[MetaPathSpec | str | dict],
    *,
    user_x: np.ndarray | torch.Tensor | None = None,
    seed: int = 0,
) -> np.ndarray:
    """One-off :meth:`InductivePersonas.infer` (build the class once for many sessions)."""
    return InductivePersonas(model, arrays, metapaths, user_x=user_x, seed=seed).infer(items)
