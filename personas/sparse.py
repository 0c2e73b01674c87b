"""Sparse adjacency and per-source sampling: the primitives that meta-path composition
(:mod:`.metapaths`) and the mini-batch sub-graph sampler (:mod:`.train`) share. numpy only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Sampling = Literal["weighted", "uniform", "topk"]


@dataclass
class CSR:
    """Row-compressed adjacency: neighbours of row ``r`` are ``indices[indptr[r]:indptr[r+1]]``."""

    indptr: np.ndarray
    indices: np.ndarray
    n_cols: int
    data: np.ndarray | None = None  # per-entry weights, aligned with ``indices`` (optional)

    def degree(self, rows: np.ndarray | None = None) -> np.ndarray:
        d = np.diff(self.indptr)
        return d if rows is None else d[rows]


def csr_from_edges(
    src: np.ndarray, dst: np.ndarray, n_src: int, n_dst: int, weight: np.ndarray | None = None
) -> CSR:
    """Deduplicated CSR of ``src → dst`` (neighbours sorted; weights of duplicates summed)."""
    src = np.asarray(src, dtype=np.int64)
    dst = np.asarray(dst, dtype=np.int64)
    data = None
    if src.size:
        key, inv = np.unique(src * np.int64(max(n_dst, 1)) + dst, return_inverse=True)
        if weight is not None:
            data = np.bincount(inv.ravel(), weights=np.asarray(weight, np.float64), minlength=len(key))
        src, dst = key // max(n_dst, 1), key % max(n_dst, 1)
    elif weight is not None:
        data = np.zeros(0)
    indptr = np.zeros(n_src + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n_src), out=indptr[1:])
    return CSR(indptr=indptr, indices=np.ascontiguousarray(dst), n_cols=n_dst,
               data=None if data is None else data.astype(np.float32))


def cap_per_source(
    src: np.ndarray, weight: np.ndarray, cap: int, rng: np.random.Generator, mode: Sampling
) -> np.ndarray:
    """Boolean mask keeping at most ``cap`` entries per source: a weighted sample without
    replacement (Efraimidis–Spirakis keys), a uniform sample, or the ``topk`` weights."""
    n = len(src)
    if n == 0:
        return np.zeros(0, dtype=bool)
    counts = np.bincount(src)
    if counts.max() <= cap:
        return np.ones(n, dtype=bool)
    if mode == "weighted":
        key = rng.exponential(size=n) / np.maximum(weight, 1e-12)
    elif mode == "uniform":
        key = rng.random(n)
    else:
        key = -weight
    order = np.lexsort((key, src))  # by source, then key (stable: ties keep their position)
    s_sorted = src[order]
    rank = np.arange(n) - np.searchsorted(s_sorted, s_sorted, side="left")
    mask = np.zeros(n, dtype=bool)
    mask[order[rank < cap]] = True
    return mask
