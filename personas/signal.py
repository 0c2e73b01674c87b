"""Does a persona space carry signal? Nearest neighbours by cosine should share training
items more than random users do. numpy / scipy only."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from kgrec.errors import ConfigError


@dataclass
class OverlapResult:
    knn: float  # mean Jaccard of training items, user vs. its k nearest neighbours
    random: float  # same against k random users
    n_users: int  # sampled users
    k: int

    @property
    def lift(self) -> float:
        return self.knn / self.random if self.random > 0 else float("inf") if self.knn > 0 else 1.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "lift": self.lift}


def _jaccard(ui, a: np.ndarray, b: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    inter = np.asarray(ui[a].multiply(ui[b]).sum(axis=1)).ravel()
    union = sizes[a] + sizes[b] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def neighbour_overlap(
    vectors: np.ndarray,
    user_item_edges: np.ndarray,
    k: int = 10,
    sample: int = 1000,
    seed: int = 0,
    chunk: int = 512,
) -> OverlapResult:
    """Mean Jaccard of training items between each of ``sample`` users (with ≥ 1 item) and
    its ``k`` nearest neighbours by cosine among users with items, versus ``k`` random ones."""
    import scipy.sparse as sp

    v = np.asarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise ConfigError(f"vectors must be [n_users, d], got {list(v.shape)}")
    n = v.shape[0]
    e = np.asarray(user_item_edges, dtype=np.int64).reshape(2, -1)
    if e.size and (e[0].max() >= n or e.min() < 0):
        raise ConfigError("user_item_edges refer to users outside vectors")
    n_items = int(e[1].max()) + 1 if e.size else 1
    ui = sp.csr_matrix((np.ones(e.shape[1]), (e[0], e[1])), shape=(n, n_items))
    ui.data[:] = 1.0
    ui.sum_duplicates()
    ui.data[:] = 1.0
    sizes = np.asarray(ui.sum(axis=1)).ravel()
    eligible = np.flatnonzero(sizes > 0)
    if len(eligible) <= k:
        raise ConfigError(f"need more than k={k} users with training items, have {len(eligible)}")
    rng = np.random.default_rng(seed)
    users = rng.choice(eligible, size=min(sample, len(eligible)), replace=False)
    unit = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    cand = unit[eligible]
    knn_a, knn_b = [], []
    for start in range(0, len(users), chunk):
        batch = users[start : start + chunk]
        sim = unit[batch] @ cand.T
        sim[batch[:, None] == eligible[None, :]] = -np.inf
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        knn_a.append(np.repeat(batch, k))
        knn_b.append(eligible[top].ravel())
    a, b = np.concatenate(knn_a), np.concatenate(knn_b)
    ra = np.repeat(users, k)
    # random partners, never the user itself: draw among the other eligible users
    pos = np.searchsorted(eligible, ra)
    idx = rng.integers(0, len(eligible) - 1, size=len(ra))
    idx = idx + (idx >= pos)
    rb = eligible[idx]
    return OverlapResult(
        knn=float(_jaccard(ui, a, b, sizes).mean()),
        random=float(_jaccard(ui, ra, rb, sizes).mean()),
        n_users=len(users),
        k=k,
    )
