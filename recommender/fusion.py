"""The one retrieve → fuse → rank kernel, and its per-bucket settings chosen on validation.

Parts (:data:`PARTS`): ``sasrec`` (SASRec on the session), ``session`` (the retriever without a
persona) and ``persona`` (the retriever with the persona of the user's past). Each part scores the
whole catalogue; the user's known items and padding are set to -inf, and each part's scores are
standardised over the catalogue (z-scores, a monotone map per example, so one part alone keeps
its own ranking exactly).

A :class:`Setting` says, for one prefix-length bucket:

* ``shares``: how many of the ``k`` candidate slots come from each part's top list (the items
  scoring at least the part's ``n``-th best z-score); the slots left after the union are filled
  from the **pool** (the union of every part's top-``k``) in blend order;
* ``weights``: the blend ``sum_p w_p z_p`` that orders the candidates.

The final ranking is the candidates in blend order, then every other item in blend order, so it
is a full-catalogue ranking (:meth:`Kernel.final_scores`). ``shares = weights = (1, 0, 0)`` is
exactly SASRec's ranking, ``(0, 1, 0)`` exactly the session retriever's: both endpoints are in
every grid, and any other setting is kept in a bucket only when it beats both endpoints there on
validation NDCG@10 without falling below either on HR@100 (:func:`choose_plan`), so on validation
the chosen kernel is never below either session model in any bucket.

The grid search reads each validation example's pool once (:class:`PoolStats`); the metrics it
gives for ranks ≤ ``k`` (NDCG@10, HR@10, HR@100 for ``k = 100``) are exactly the kernel's (a test
asserts it). The evaluated ``full_pipeline``, ``kgrec recommend`` and ``kgrec serve`` all call
:meth:`Kernel.final_scores`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from kgrec.errors import ConfigError, ModelError

PARTS = ("sasrec", "session", "persona")
SELECTION_METRICS = ("NDCG@10", "HR@10", "HR@100")


@dataclass(frozen=True)
class Setting:
    weights: tuple[float, float, float]
    shares: tuple[float, float, float]

    def __post_init__(self):
        for name, v in (("weights", self.weights), ("shares", self.shares)):
            if len(v) != len(PARTS) or any(x < 0 for x in v) or not math.isclose(sum(v), 1.0, abs_tol=1e-6):
                raise ConfigError(f"fusion {name} must be {len(PARTS)} non-negative numbers summing to 1, got {v}")

    @property
    def uses_persona(self) -> bool:
        return self.weights[2] > 0 or self.shares[2] > 0

    def counts(self, k: int) -> list[int]:
        """Candidate slots per part (largest remainder, summing to ``k``)."""
        raw = [s * k for s in self.shares]
        n = [math.floor(r + 1e-9) for r in raw]
        for i in sorted(range(len(raw)), key=lambda i: -(raw[i] - n[i]))[: k - sum(n)]:
            n[i] += 1
        return n

    def to_dict(self) -> dict:
        return {"weights": list(self.weights), "shares": list(self.shares)}

    @classmethod
    def from_dict(cls, d: Mapping) -> Setting:
        return cls(tuple(float(x) for x in d["weights"]), tuple(float(x) for x in d["shares"]))


SASREC_ONLY = Setting((1.0, 0.0, 0.0), (1.0, 0.0, 0.0))
SESSION_ONLY = Setting((0.0, 1.0, 0.0), (0.0, 1.0, 0.0))
ENDPOINTS = (SASREC_ONLY, SESSION_ONLY)
#: the persona part alone: not an endpoint (it is never kept unless it beats both on the metric), but
#: a floor of the guard, so that a blend is never below any of the three parts on HR@100
PERSONA_ONLY = Setting((0.0, 0.0, 1.0), (0.0, 0.0, 1.0))


def simplex(step: float) -> list[tuple[float, float, float]]:
    n = round(1 / step)
    if not math.isclose(n * step, 1.0):
        raise ConfigError(f"grid step must divide 1, got {step}")
    return [(a / n, b / n, (n - a - b) / n) for a in range(n, -1, -1) for b in range(n - a, -1, -1)]


def default_grid(weight_step: float = 0.25, share_step: float = 0.5) -> list[Setting]:
    """The endpoints first (so ties keep them), then every (weights, shares) pair of the simplices."""
    rest = [Setting(w, s) for w, s in itertools.product(simplex(weight_step), simplex(share_step))]
    return list(ENDPOINTS) + [s for s in rest if s not in ENDPOINTS]


@dataclass
class Plan:
    """Per prefix-length bucket, the chosen :class:`Setting`; ``buckets`` are ``(label, lo, hi)``
    (``hi`` None = open), ``k`` the candidate count, ``valid`` the validation table."""

    k: int
    buckets: tuple[tuple[str, int, int | None], ...]
    settings: dict[str, Setting]
    metric: str = "NDCG@10"
    valid: dict = field(default_factory=dict)

    def bucket_of(self, prefix_len: np.ndarray) -> np.ndarray:
        out = np.full(len(prefix_len), -1, dtype=np.int64)
        for b, (_label, lo, hi) in enumerate(self.buckets):
            m = (prefix_len >= lo) if hi is None else (prefix_len >= lo) & (prefix_len <= hi)
            out[m] = b
        if (out < 0).any():
            raise ConfigError(f"prefix lengths {sorted(set(prefix_len[out < 0].tolist()))[:5]} fall in no "
                              f"bucket of {self.buckets}")
        return out

    def valid_score(self) -> float:
        """The chosen settings' validation ``metric`` over all validation examples (bucket means
        weighted by their sizes)."""
        rows = [r for r in self.valid.values() if r.get("n")]
        n = sum(r["n"] for r in rows)
        return float(sum(r["n"] * r[self.metric] for r in rows) / n) if n else math.nan

    def to_dict(self) -> dict:
        return {"k": self.k, "metric": self.metric, "buckets": [list(b) for b in self.buckets],
                "settings": {b: s.to_dict() for b, s in self.settings.items()}, "valid": self.valid}

    @classmethod
    def from_dict(cls, d: Mapping) -> Plan:
        try:
            return cls(int(d["k"]), tuple((str(b[0]), int(b[1]), None if b[2] is None else int(b[2]))
                                          for b in d["buckets"]),
                       {b: Setting.from_dict(s) for b, s in d["settings"].items()}, d.get("metric", "NDCG@10"),
                       dict(d.get("valid", {})))
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ModelError(f"fusion plan is malformed: {e}") from e


def parse_buckets(spec: str) -> tuple[tuple[str, int, int | None], ...]:
    """``"0,1,2-4,5+"`` → buckets; they must cover 0.. without gaps."""
    out, expect = [], 0
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        try:
            if part.endswith("+"):
                lo, hi = int(part[:-1]), None
            elif "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
            else:
                lo = hi = int(part)
        except ValueError as e:
            raise ConfigError(f"bucket {part!r} in {spec!r} is not N, N-M or N+") from e
        if lo != expect or (hi is not None and hi < lo):
            raise ConfigError(f"buckets {spec!r} must run from 0 upwards without gaps (at {part!r})")
        out.append((part, lo, hi))
        if hi is None:
            break
        expect = hi + 1
    if not out or out[-1][2] is not None:
        raise ConfigError(f"buckets {spec!r} must end with an open bucket such as '5+'")
    return tuple(out)


# ---------------------------------------------------------------------------------------- kernel
def standardise(scores):
    """Row-wise z-scores over the finite entries (torch); -inf stays -inf."""
    import torch

    finite = torch.isfinite(scores)
    z = torch.where(finite, scores, torch.zeros_like(scores))
    n = finite.sum(1, keepdim=True).clamp_min(1)
    mu = z.sum(1, keepdim=True) / n
    var = torch.where(finite, (z - mu) ** 2, torch.zeros_like(z)).sum(1, keepdim=True) / n
    return torch.where(finite, (z - mu) / (var.sqrt() + 1e-6), torch.full_like(z, -torch.inf))


def blend_z(z, weights: Sequence[float]):
    """``sum_p w_p z_p`` over the parts with a weight (z: [P, B, N]); a zero weight is skipped so
    that -inf never meets 0."""
    out = None
    for p, w in enumerate(weights):
        if w > 0:
            out = z[p] * w if out is None else out + z[p] * w
    return out


def _thresholds(z, k: int):
    """[P, B, k] each part's top-``k`` z-scores, best first."""
    return z.topk(k, dim=2).values


def candidate_mask(z, setting: Setting, k: int, blend, top=None):
    """[B, N] bool: the candidates of ``setting`` (its shares, then the pool filled in blend order)."""
    import torch

    top = _thresholds(z, k) if top is None else top
    chosen = torch.zeros(z.shape[1:], dtype=torch.bool, device=z.device)
    pool = torch.zeros_like(chosen)
    for p, n in enumerate(setting.counts(k)):
        pool |= z[p] >= top[p, :, k - 1:k]
        if n:
            chosen |= z[p] >= top[p, :, n - 1:n]
    chosen &= torch.isfinite(blend)
    need = (k - chosen.sum(1)).clamp_min(0)
    if int(need.max()) > 0:
        rest = blend.masked_fill(chosen | ~pool, -torch.inf)
        order = rest.topk(k, dim=1)
        take = (torch.arange(k, device=z.device).unsqueeze(0) < need.unsqueeze(1)) & torch.isfinite(order.values)
        # an index already chosen can come back with a -inf value; keep it chosen
        chosen.scatter_(1, order.indices, take | chosen.gather(1, order.indices))
    return chosen


def lift_candidates(blend, chosen):
    """``blend`` with the candidates shifted (per row) just above every other finite item, so one
    score vector gives the whole ranking; the shift keeps float32 precision (no large offset)."""
    import torch

    finite = torch.isfinite(blend)
    rest_max = blend.masked_fill(chosen | ~finite, -torch.inf).max(1, keepdim=True).values
    cand_min = blend.masked_fill(~chosen | ~finite, torch.inf).min(1, keepdim=True).values
    gap = rest_max - cand_min
    shift = torch.where(torch.isfinite(gap) & (gap >= 0), gap + 1.0, torch.zeros_like(gap))
    return torch.where(chosen, blend + shift, blend)


class Kernel:
    """The trained parts and the :class:`Plan`: ``final_scores`` is the one scoring path."""

    def __init__(self, parts: Mapping[str, object], plan: Plan):
        missing = [p for p in PARTS if p not in parts]
        if missing:
            raise ConfigError(f"the kernel needs the parts {PARTS}, missing {missing}")
        self.parts, self.plan = dict(parts), plan
        self.num_items = parts["sasrec"].num_items

    def part_scores(self, seqs, persona, seen=None):
        """[P, B, N] standardised scores of every part; ``seen`` [B, S] (0 = padding) and the padding
        column are -inf."""
        import torch

        out = []
        for name in PARTS:
            model = self.parts[name]
            if name == "persona":
                s = model.score(seqs, persona) if persona is not None else model.score(seqs)
            else:
                s = model.score(seqs)
            s = s.float().clone()
            if seen is not None:
                s.scatter_(1, seen, -torch.inf)
            s[:, 0] = -torch.inf
            out.append(standardise(s))
        return torch.stack(out)

    def final_scores(self, seqs, persona, prefix_len: np.ndarray, seen=None):
        """[B, N] full-catalogue scores whose order is the pipeline's ranking: candidates (blend,
        lifted by :func:`lift_candidates`) before the rest (blend); known items -inf."""
        import torch

        z = self.part_scores(seqs, persona, seen)
        out = torch.empty(z.shape[1:], dtype=z.dtype, device=z.device)
        buckets = self.plan.bucket_of(np.asarray(prefix_len))
        k = min(self.plan.k, z.shape[2] - 1)
        for b, (label, *_rest) in enumerate(self.plan.buckets):
            rows = torch.as_tensor(np.flatnonzero(buckets == b), device=z.device)
            if not len(rows):
                continue
            setting = self.plan.settings[label]
            zb = z[:, rows]
            blend = blend_z(zb, setting.weights)
            chosen = candidate_mask(zb, setting, k, blend)
            out[rows] = lift_candidates(blend, chosen)
        return out

    def eval(self):
        for m in self.parts.values():
            m.eval()
        return self


# ------------------------------------------------------------------------- choosing on validation
@dataclass
class PoolStats:
    """Per setting and bucket, the sums of the selection metrics over validation examples."""

    grid: list[Setting]
    n: np.ndarray  # [n_buckets]
    sums: dict[str, np.ndarray]  # metric -> [n_settings, n_buckets]

    def means(self, metric: str) -> np.ndarray:
        return self.sums[metric] / np.maximum(self.n, 1)[None, :]


def _target_ranks(z, blend, chosen, targets):
    """1-based rank of each target within the candidates (ties count against it); inf outside."""
    import torch

    t_blend = blend.gather(1, targets.view(-1, 1))
    inside = chosen.gather(1, targets.view(-1, 1)).squeeze(1) & torch.isfinite(t_blend.squeeze(1))
    cand_blend = blend.masked_fill(~chosen, -torch.inf)
    higher = (cand_blend > t_blend).sum(1)
    ties = (cand_blend == t_blend).sum(1) - 1
    r = (1 + higher + ties).double()
    return torch.where(inside, r, torch.full_like(r, math.inf))


def _pool_columns(z, targets, k: int):
    """``z`` cut to the pool (every part's top-``k``, deduplicated) plus the target's column, and the
    target's position there: every candidate of every setting is in the pool, so the grid search
    needs no other column (``[P, B, 3k + 1]`` instead of ``[P, B, N]``)."""
    import torch

    cols = torch.cat([z[p].topk(k, dim=1).indices for p in range(z.shape[0])] + [targets.view(-1, 1)], 1)
    srt, order = cols.sort(dim=1, stable=True)
    dup_sorted = torch.zeros_like(srt, dtype=torch.bool)
    dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
    dup = torch.zeros_like(dup_sorted).scatter_(1, order, dup_sorted)
    local = z.gather(2, cols.unsqueeze(0).expand(z.shape[0], -1, -1)).masked_fill(dup.unsqueeze(0), -torch.inf)
    at = ((cols == targets.view(-1, 1)) & ~dup).int().argmax(1)
    return local, at


def pool_stats(kernel_parts_scores: Callable, batches, plan_buckets, k: int, grid: Sequence[Setting]) -> PoolStats:
    """Evaluate every setting of ``grid`` on validation batches ``(z [P,B,N], targets, prefix_len)``
    from ``kernel_parts_scores``; z is computed once per batch."""
    import torch

    dummy = Plan(k, tuple(plan_buckets), {})
    nb = len(plan_buckets)
    sums = {m: np.zeros((len(grid), nb)) for m in SELECTION_METRICS}
    n = np.zeros(nb)
    for batch in batches:
        z, targets, prefix_len = kernel_parts_scores(batch)
        kk = min(k, z.shape[2] - 1)
        bucket = dummy.bucket_of(np.asarray(prefix_len))
        n += np.bincount(bucket, minlength=nb)
        top = _thresholds(z, kk)
        z, targets = _pool_columns(z, targets, kk)
        bt = torch.as_tensor(bucket)
        for i, setting in enumerate(grid):
            blend = blend_z(z, setting.weights)
            r = _target_ranks(z, blend, candidate_mask(z, setting, kk, blend, top), targets)
            for m, val in (("NDCG@10", torch.where(r <= 10, 1.0 / torch.log2(r + 1.0), torch.zeros_like(r))),
                           ("HR@10", (r <= 10).double()), ("HR@100", (r <= 100).double())):
                sums[m][i] += torch.zeros(nb, dtype=torch.float64).index_add_(0, bt, val.cpu()).numpy()
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


