"""User-kNN over any user space: the items of a query's nearest training users, as a catalogue score.

``score(q, i) = sum over the k training users v most similar to q (cosine; v is never the query's
own user; similarity > 0) of sim(q, v) * [v had i in training]``. Only training interactions enter
(the ones the graph holds). ``benchmarks/persona_probe.py`` scores persona spaces with it, without
training any recommender: a space whose neighbours share the user's next items carries taste.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from kgrec.errors import ConfigError


class UserKNN:
    """``users`` (ids) with ``vectors`` [n, d] and their training item sequences."""

    def __init__(self, users: Sequence[str], vectors: np.ndarray, train_seqs: Mapping[str, np.ndarray],
                 num_items: int, k: int = 50):
        from scipy import sparse

        if k < 1:
            raise ConfigError(f"neighbours must be >= 1, got {k}")
        keep = [j for j, u in enumerate(users) if len(train_seqs.get(u, ()))]
        self.users = [str(users[j]) for j in keep]
        self.index = {u: i for i, u in enumerate(self.users)}
        self.k, self.num_items = min(k, max(1, len(self.users) - 1)), num_items
        p = np.asarray(vectors, dtype=np.float32)[keep]
        self.p = p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-8)
        rows = np.concatenate([np.full(len(train_seqs[u]), i) for i, u in enumerate(self.users)]) if self.users \
            else np.zeros(0, np.int64)
        cols = np.concatenate([train_seqs[u] for u in self.users]) if self.users else np.zeros(0, np.int64)
        x = sparse.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(self.users), num_items))
        x.data[:] = 1.0  # a repeated pair counts once
        self.x = x

    def scores(self, queries: np.ndarray, own: Sequence[str | None]) -> np.ndarray:
        """[len(queries), num_items] float32; ``own[j]`` (the query's user) is never its neighbour; a
        zero query gets zeros."""
        q = np.asarray(queries, dtype=np.float32)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-8)
        if not len(self.users):
            return np.zeros((len(q), self.num_items), np.float32)
        return self.scores_from_similarity(q @ self.p.T, own)

    def scores_from_similarity(self, sim: np.ndarray, own: Sequence[str | None]) -> np.ndarray:
        """The same scores from a precomputed ``[n_queries, len(self.users)]`` similarity (e.g. a
        sparse cosine); ``sim`` is modified in place."""
        from scipy import sparse

        mine = np.asarray([self.index.get(str(u), -1) if u is not None else -1 for u in own])
        has = mine >= 0
        sim[np.flatnonzero(has), mine[has]] = -np.inf  # not one's own neighbour
        top = np.argpartition(-sim, self.k - 1, axis=1)[:, :self.k]
        w = np.take_along_axis(sim, top, 1)
        w = np.where(np.isfinite(w) & (w > 0), w, 0.0).astype(np.float32)
        wm = sparse.csr_matrix((w.ravel(), (np.repeat(np.arange(len(sim)), self.k), top.ravel())),
                               shape=(len(sim), len(self.users)))
        return np.asarray((wm @ self.x).todense(), dtype=np.float32)
