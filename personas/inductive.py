"""Personas for anonymous sessions, without retraining.

A session (list of item indices) becomes a temporary user node whose features come from
its items exactly as a training user's do (:meth:`UserFeaturizer.sessions
<kgrec.personas.features.UserFeaturizer.sessions>`; without a featurizer, the mean embedding
of its items, zero-padded when training used extra user features). Through each meta-path it is linked to existing
users (walked from its items with the same ``max_fanout``/``max_neighbors`` caps as in
training), and the trained encoders run on that small subgraph — the new node plus its
neighbours, whose features come from the training arrays — combined with the trained
global meta-path weights (``model.attention``); edges carry their path counts as in training. With mean-GCN or GAT encoders the result
is exactly what the model would give that node inside the full graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from kgrec.errors import ConfigError

from .data import GraphArrays, session_features, user_features
from .features import UserFeaturizer
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
        featurizer: UserFeaturizer | None = None,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.arrays = arrays
        self.featurizer = featurizer
        self.specs = parse_metapaths(metapaths)
        if len(self.specs) != model.num_metapaths:
            raise ConfigError(f"model has {model.num_metapaths} meta-paths, {len(self.specs)} specs given")
        if user_x is not None:
            ux = user_x
        else:
            ux = featurizer.users(arrays) if featurizer is not None else user_features(arrays)
        self.user_x = torch.as_tensor(
            np.asarray(ux, dtype=np.float32) if isinstance(ux, np.ndarray) else ux
        ).float()
        if self.user_x.shape != (arrays.n_users, model.in_channels):
            raise ConfigError(
                f"user features {list(self.user_x.shape)} do not match {arrays.n_users} users × "
                f"{model.in_channels} model inputs"
            )
        self.extra_dim = model.in_channels - arrays.emb_dim
        if featurizer is None and self.extra_dim < 0:
            raise ConfigError(
                f"model expects {model.in_channels} inputs but item embeddings have {arrays.emb_dim}"
            )
        self.index = RelationIndex(arrays)
        self.seed = seed

    def neighbours(
        self, items: Sequence[int] | np.ndarray, seed: int | None = None, exclude_user: int | None = None
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per meta-path, ``(users, path-count weights)`` linked to a session with these items
        (never ``exclude_user``)."""
        s = self.seed if seed is None else seed
        return [sample_from_items(self.index, spec, items, seed=s, exclude_user=exclude_user)
                for spec in self.specs]

    def infer_many(
        self, sessions: Sequence[Sequence[int] | np.ndarray], seed: int | None = None,
        exclude_users: Sequence[int | None] | None = None,
    ) -> np.ndarray:
        """Persona vectors ``[len(sessions), hidden]`` (float32), all sessions in one subgraph.
        ``exclude_users[j]``: a user index that session ``j`` must not link to (its own user)."""
        if len(sessions) == 0:
            return np.zeros((0, self.model.hidden_channels), dtype=np.float32)
        if exclude_users is None:
            exclude_users = [None] * len(sessions)
        n_new = len(sessions)
        if self.featurizer is not None:
            feats = self.featurizer.sessions(self.arrays, [np.asarray(s, dtype=np.int64) for s in sessions])
        else:
            feats = np.stack([session_features(self.arrays, s, self.extra_dim) for s in sessions])
        per_path: list[list[tuple[int, np.ndarray, np.ndarray]]] = [[] for _ in self.specs]
        for j, items in enumerate(sessions):
            for p, (nbr, w) in enumerate(self.neighbours(items, seed, exclude_users[j])):
                per_path[p].append((j, nbr, w))
        all_nbr = [nbr for path in per_path for _, nbr, _ in path]
        nodes = np.unique(np.concatenate(all_nbr)) if all_nbr else np.zeros(0, np.int64)
        pos = {int(u): n_new + i for i, u in enumerate(nodes.tolist())}
        eil, ewl = [], []
        for path in per_path:
            src = [pos[int(u)] for _, nbr, _ in path for u in nbr.tolist()]
            dst = [j for j, nbr, _ in path for _ in range(len(nbr))]
            eil.append(torch.tensor([src, dst], dtype=torch.long).view(2, -1))
            ws = [w for _, _, w in path]
            ewl.append(torch.from_numpy(np.concatenate(ws).astype(np.float32)) if ws else torch.zeros(0))
        device = self.model.attention.device
        x = torch.cat([torch.from_numpy(feats), self.user_x[torch.from_numpy(nodes).long()]]).to(device)
        z = self.model.embed(x, [e.to(device) for e in eil], weights=self.model.attention, target_size=n_new,
                             edge_weight_list=[w.to(device) for w in ewl])
        return z.cpu().numpy().astype(np.float32)

    def infer(self, items: Sequence[int] | np.ndarray, seed: int | None = None) -> np.ndarray:
        """Persona vector ``[hidden]`` of one session."""
        return self.infer_many([items], seed)[0]

    def encode_pasts(
        self, users: Sequence[str], pasts: Sequence[Sequence[int] | np.ndarray], *, batch: int = 1024,
        advance=None,
    ) -> np.ndarray:
        """``[len(pasts), hidden]`` personas of users' pasts (item indices of ``arrays``): each as an
        inductive node that never links to its own user (:meth:`infer_many`), so that it is built
        from that past alone. An empty past gives a zero row ("no persona")."""
        pos = {u: i for i, u in enumerate(self.arrays.user_ids)}
        out = np.zeros((len(pasts), self.model.hidden_channels), dtype=np.float32)
        rows = [j for j, p in enumerate(pasts) if len(p)]
        for s in range(0, len(rows), batch):
            chunk = rows[s:s + batch]
            out[chunk] = self.infer_many([np.asarray(pasts[j], dtype=np.int64) for j in chunk],
                                         exclude_users=[pos.get(str(users[j])) for j in chunk])
            if advance is not None:
                advance(len(chunk))
        return out
