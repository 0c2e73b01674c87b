"""Persona neighbours: the items of a user's nearest users in persona space, as a catalogue score.

``score(u, i) = sum over the k users v most similar to u (cosine of the persona vectors, v != u,
similarity > 0) of sim(u, v) * [v had i in training]``. Only training interactions enter (the same
ones the graph holds), so this adds no leakage. The full pipeline unions the top items of this
score with the retriever's candidates and blends it into the rerank (:mod:`kgrec.recommender.rerank`);
it is how a user's long-term taste reaches a session whose prefix says little, above all an empty
one. The same class over the history-user vectors gives the ablation its own neighbours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from kgrec.errors import ConfigError


class PersonaNeighbours:
    def __init__(self, vectors: Mapping[str, np.ndarray], train_seqs: Mapping[str, np.ndarray], num_items: int,
                 k: int = 50):
        from scipy import sparse

        if k < 1:
            raise ConfigError(f"neighbours must be >= 1, got {k}")
        self.users = [u for u in vectors if u in train_seqs and len(train_seqs[u])]
        self.index = {u: i for i, u in enumerate(self.users)}
        self.k, self.num_items = min(k, max(1, len(self.users) - 1)), num_items
        p = np.stack([np.asarray(vectors[u], dtype=np.float32).reshape(-1) for u in self.users]) if self.users \
            else np.zeros((0, 1), np.float32)
        self.p = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-8)
        rows = np.concatenate([np.full(len(train_seqs[u]), i) for i, u in enumerate(self.users)]) if self.users \
            else np.zeros(0, np.int64)
        cols = np.concatenate([train_seqs[u] for u in self.users]) if self.users else np.zeros(0, np.int64)
        x = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(self.users), num_items))
        x.data[:] = 1.0  # a repeated pair counts once
        self.x = x

    def scores(self, users: Sequence[str], vectors: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """[len(users), num_items] float32; a user with no vector (and not in the index) gets zeros."""
        from scipy import sparse

        q = np.zeros((len(users), self.p.shape[1]), np.float32)
        own = np.full(len(users), -1)
        for j, u in enumerate(users):
            i = self.index.get(u)
            if i is not None:
                q[j], own[j] = self.p[i], i
            elif vectors is not None and u in vectors:
                v = np.asarray(vectors[u], dtype=np.float32).reshape(-1)
                q[j] = v / max(float(np.linalg.norm(v)), 1e-8)
        if not len(self.users):
            return np.zeros((len(users), self.num_items), np.float32)
        sim = q @ self.p.T
        has = own >= 0
        sim[np.flatnonzero(has), own[has]] = -np.inf  # not one's own neighbour
        top = np.argpartition(-sim, self.k - 1, axis=1)[:, :self.k]
        w = np.take_along_axis(sim, top, 1)
        w = np.where(np.isfinite(w) & (w > 0), w, 0.0).astype(np.float32)
        wm = sparse.csr_matrix((w.ravel(), (np.repeat(np.arange(len(users)), self.k), top.ravel())),
                               shape=(len(users), len(self.users)))
        return np.asarray((wm @ self.x).todense(), dtype=np.float32)
