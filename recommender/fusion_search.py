"""Choosing the kernel's per-bucket settings on validation (:func:`choose_plan`).

The grid search reads each validation example's pool once (:class:`PoolStats`): every candidate of
every setting is among the parts' top-``k``, so it ranks within those columns with the kernel's
own :func:`~kgrec.recommender.fusion.candidate_mask` and :func:`~kgrec.recommender.fusion.blend_z`,
and the metrics it gives for ranks ≤ ``k`` (NDCG@10, HR@10, HR@100 for ``k = 100``) are exactly the
kernel's (a test asserts it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kgrec.errors import ConfigError
from kgrec.recommender.fusion import (
    ENDPOINTS,
    PERSONA_ONLY,
    SELECTION_METRICS,
    Plan,
    Setting,
    blend_z,
    candidate_mask,
    to_numpy,
    top_indices,
    top_values,
)


@dataclass
class PoolStats:
    """Per setting and bucket, the sums of the selection metrics over validation examples."""

    grid: list[Setting]
    n: np.ndarray  # [n_buckets]
    sums: dict[str, np.ndarray]  # metric -> [n_settings, n_buckets]

    def means(self, metric: str) -> np.ndarray:
        return self.sums[metric] / np.maximum(self.n, 1)[None, :]


def _target_ranks(blend: np.ndarray, chosen: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based rank of each target within the candidates (ties count against it); inf outside."""
    t_blend = np.take_along_axis(blend, targets[:, None], 1)
    inside = np.take_along_axis(chosen, targets[:, None], 1)[:, 0] & np.isfinite(t_blend[:, 0])
    cand_blend = np.where(chosen, blend, -np.inf)
    higher = (cand_blend > t_blend).sum(1)
    ties = (cand_blend == t_blend).sum(1) - 1
    return np.where(inside, (1 + higher + ties).astype(np.float64), np.inf)


def _pool_columns(z: np.ndarray, targets: np.ndarray, k: int):
    """``z`` cut to the pool (every part's top-``k``, deduplicated) plus the target's column, and the
    target's position there: every candidate of every setting is in the pool, so the grid search
    needs no other column (``[P, B, 3k + 1]`` instead of ``[P, B, N]``)."""
    cols = np.concatenate([top_indices(z[p], k) for p in range(z.shape[0])] + [targets[:, None]], 1)
    order = np.argsort(cols, axis=1, kind="stable")
    srt = np.take_along_axis(cols, order, 1)
    dup_sorted = np.zeros(srt.shape, dtype=bool)
    dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
    dup = np.zeros_like(dup_sorted)
    np.put_along_axis(dup, order, dup_sorted, axis=1)
    local = np.take_along_axis(z, np.broadcast_to(cols, (z.shape[0], *cols.shape)), 2)
    local = np.where(dup[None], -np.inf, local).astype(np.float32)
    at = ((cols == targets[:, None]) & ~dup).argmax(1)
    return local, at


def pool_stats(kernel_parts_scores: Callable, batches, plan_buckets, k: int, grid: Sequence[Setting]) -> PoolStats:
    """Evaluate every setting of ``grid`` on validation batches ``(z [P,B,N], targets, prefix_len)``
    from ``kernel_parts_scores``; z is computed once per batch."""
    dummy = Plan(k, tuple(plan_buckets), {})
    nb = len(plan_buckets)
    sums = {m: np.zeros((len(grid), nb)) for m in SELECTION_METRICS}
    n = np.zeros(nb)
    for batch in batches:
        z, targets, prefix_len = kernel_parts_scores(batch)
        targets = to_numpy(targets).astype(np.int64)
        kk = min(k, z.shape[2] - 1)
        bucket = dummy.bucket_of(np.asarray(prefix_len))
        n += np.bincount(bucket, minlength=nb)
        top = top_values(z, kk)
        z, targets = _pool_columns(z, targets, kk)
        for i, setting in enumerate(grid):
            blend = blend_z(z, setting.weights)
            r = _target_ranks(blend, candidate_mask(z, setting, kk, blend, top), targets)
            with np.errstate(divide="ignore"):
                ndcg = np.where(r <= 10, 1.0 / np.log2(r + 1.0), 0.0)
            for m, val in (("NDCG@10", ndcg), ("HR@10", (r <= 10).astype(np.float64)),
                           ("HR@100", (r <= 100).astype(np.float64))):
                sums[m][i] += np.bincount(bucket, weights=val, minlength=nb)
    return PoolStats(list(grid), n, sums)


def choose_plan(stats: PoolStats, buckets, k: int, metric: str = "NDCG@10", guard: str | None = "HR@100",
                eps: float = 1e-9) -> Plan:
    """Per bucket, the best setting on ``metric``. A setting other than the endpoints replaces the
    better endpoint only when it beats both endpoints on ``metric`` by more than ``eps`` **and** is
    not below any single part on ``guard``: either endpoint or, where the grid has it,
    :data:`PERSONA_ONLY` (so a gain in NDCG@10 is never bought with the HR@100 of any part); ties
    keep the endpoint, then the grid order. ``guard=None`` selects on ``metric`` alone."""
    for m in (metric, guard):
        if m is not None and m not in SELECTION_METRICS:
            raise ConfigError(f"selection metric must be one of {SELECTION_METRICS}, got {m!r}")
    means = stats.means(metric)
    floor = stats.means(guard) if guard is not None else None
    ends = [stats.grid.index(e) for e in ENDPOINTS]
    floors = ends + ([stats.grid.index(PERSONA_ONLY)] if PERSONA_ONLY in stats.grid else [])
    settings, table = {}, {}
    for b, (label, *_r) in enumerate(buckets):
        col = means[:, b]
        best_end = max(ends, key=lambda i: (col[i], -i))
        ok = col > col[best_end] + eps
        if floor is not None:
            ok &= floor[:, b] >= max(floor[i, b] for i in floors) - eps
        pick = int(np.flatnonzero(ok)[np.argmax(col[ok])]) if ok.any() else best_end  # first on ties
        settings[label] = stats.grid[pick]
        table[label] = {"n": int(stats.n[b]), "chosen": stats.grid[pick].to_dict(), metric: float(col[pick]),
                        "sasrec": float(col[ends[0]]), "session": float(col[ends[1]]),
                        "best_persona": float(max((col[i] for i, s in enumerate(stats.grid) if s.uses_persona),
                                                  default=math.nan))}
        if floor is not None:
            table[label] |= {f"{guard} chosen": float(floor[pick, b]), f"{guard} sasrec": float(floor[ends[0], b]),
                             f"{guard} session": float(floor[ends[1], b])}
            if len(floors) > 2:
                table[label][f"{guard} persona"] = float(floor[floors[2], b])
    return Plan(k, tuple(buckets), settings, metric, table)


def settings_table(stats: PoolStats, buckets, metric: str = "NDCG@10") -> list[dict]:
    """Every setting with its validation ``metric`` per bucket (for the report's validation table)."""
    means = stats.means(metric)
    return [{**s.to_dict(), **{label: float(means[i, b]) for b, (label, *_r) in enumerate(buckets)}}
            for i, s in enumerate(stats.grid)]


