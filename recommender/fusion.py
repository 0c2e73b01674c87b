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

The grid search that chooses the settings on validation is :mod:`kgrec.recommender.fusion_search`. The evaluated ``full_pipeline``, ``kgrec recommend`` and ``kgrec serve`` all call
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
# Plain numpy from here on: a part is an encoder (torch) that gives query vectors and an item table,
# and everything after ``queries @ tables.T`` is arrays, so a known user's cached query (no torch
# at all) and a batch of evaluation sessions go through the same functions.
def top_values(x: np.ndarray, k: int) -> np.ndarray:
    """``[..., k]`` the ``k`` largest entries of the last axis, best first."""
    part = np.partition(x, x.shape[-1] - k, axis=-1)[..., -k:]
    return np.flip(np.sort(part, axis=-1), axis=-1)


def top_indices(x: np.ndarray, k: int) -> np.ndarray:
    """``[B, k]`` indices of each row's ``k`` largest entries, best first (ties: lower index first)."""
    idx = np.argpartition(-x, k - 1, axis=1)[:, :k] if k < x.shape[1] else np.tile(np.arange(x.shape[1]),
                                                                                   (len(x), 1))
    order = np.lexsort((idx, -np.take_along_axis(x, idx, 1)), axis=1)
    return np.take_along_axis(idx, order, 1)


def standardise(scores: np.ndarray) -> np.ndarray:
    """Z-scores over the finite entries of the last axis; -inf stays -inf."""
    finite = np.isfinite(scores)
    z = np.where(finite, scores, 0).astype(np.float32)
    n = np.maximum(finite.sum(-1, keepdims=True), 1)
    mu = z.sum(-1, keepdims=True) / n
    var = np.where(finite, (z - mu) ** 2, 0).sum(-1, keepdims=True) / n
    return np.where(finite, (z - mu) / (np.sqrt(var) + 1e-6), -np.inf).astype(np.float32)


def score_parts(queries: Sequence[np.ndarray], tables: Sequence[np.ndarray], seen: np.ndarray | None = None):
    """[P, B, N] standardised scores ``queries[p] @ tables[p].T``; ``seen`` [B, S] item indices
    (0 = padding) and the padding column are -inf."""
    out = []
    for q, t in zip(queries, tables, strict=True):
        s = np.ascontiguousarray((t @ np.asarray(q, dtype=np.float32).T).T)  # [N, H] @ [H, B]: BLAS's fast layout
        if seen is not None:
            np.put_along_axis(s, np.asarray(seen, dtype=np.int64), -np.inf, axis=1)
        s[:, 0] = -np.inf
        out.append(standardise(s))
    return np.stack(out)


def blend_z(z: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """``sum_p w_p z_p`` over the parts with a weight (z: [P, B, N]); a zero weight is skipped so
    that -inf never meets 0."""
    out = None
    for p, w in enumerate(weights):
        if w > 0:
            out = z[p] * np.float32(w) if out is None else out + z[p] * np.float32(w)
    return out


def candidate_mask(z: np.ndarray, setting: Setting, k: int, blend: np.ndarray, top=None) -> np.ndarray:
    """[B, N] bool: the candidates of ``setting`` (its shares, then the pool filled in blend order);
    ``top`` [P, B, k]: each part's top-``k`` z-scores, when already known."""
    top = top_values(z, k) if top is None else top
    chosen = np.zeros(z.shape[1:], dtype=bool)
    pool = np.zeros_like(chosen)
    for p, n in enumerate(setting.counts(k)):
        pool |= z[p] >= top[p, :, k - 1:k]
        if n:
            chosen |= z[p] >= top[p, :, n - 1:n]
    chosen &= np.isfinite(blend)
    need = np.maximum(k - chosen.sum(1), 0)
    if need.max(initial=0) > 0:
        rest = np.where(chosen | ~pool, -np.inf, blend)
        order = top_indices(rest, k)
        take = (np.arange(k)[None, :] < need[:, None]) & np.isfinite(np.take_along_axis(rest, order, 1))
        # an index already chosen can come back with a -inf value; keep it chosen
        np.put_along_axis(chosen, order, take | np.take_along_axis(chosen, order, 1), axis=1)
    return chosen


def lift_candidates(blend: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """``blend`` with the candidates shifted (per row) just above every other finite item, so one
    score vector gives the whole ranking; the shift keeps float32 precision (no large offset)."""
    finite = np.isfinite(blend)
    rest_max = np.where(chosen | ~finite, -np.inf, blend).max(1, keepdims=True)
    cand_min = np.where(~chosen | ~finite, np.inf, blend).min(1, keepdims=True)
    with np.errstate(invalid="ignore"):  # inf - inf where a row has no candidate or no rest
        gap = rest_max - cand_min
    shift = np.where(np.isfinite(gap) & (gap >= 0), gap + 1.0, 0.0).astype(blend.dtype)
    return np.where(chosen, blend + shift, blend)


def fuse(plan: Plan, z: np.ndarray, prefix_len) -> np.ndarray:
    """[B, N] full-catalogue scores from the parts' standardised scores ``z`` [P, B, N]: per row,
    its bucket's setting; candidates (blend, lifted by :func:`lift_candidates`) before the rest
    (blend); known items -inf."""
    out = np.empty(z.shape[1:], dtype=np.float32)
    buckets = plan.bucket_of(np.asarray(prefix_len))
    k = min(plan.k, z.shape[2] - 1)
    for b, (label, *_rest) in enumerate(plan.buckets):
        rows = np.flatnonzero(buckets == b)
        if not len(rows):
            continue
        setting = plan.settings[label]
        zb = z[:, rows]
        blend = blend_z(zb, setting.weights)
        out[rows] = lift_candidates(blend, candidate_mask(zb, setting, k, blend))
    return out


def item_tables(parts: Mapping[str, object]) -> list[np.ndarray]:
    """Each part's item table as float32 numpy, in :data:`PARTS` order."""
    import torch

    with torch.inference_mode():
        return [np.ascontiguousarray(parts[name].item_table().detach().float().cpu().numpy()) for name in PARTS]


class Kernel:
    """The trained parts and the :class:`Plan`: ``final_scores`` is the one scoring path.

    ``parts`` is a mapping of the three trained encoders, or a function that loads them (then they
    are loaded on the first :meth:`queries`); ``tables`` the parts' item tables when they are
    already known (:func:`item_tables` of the parts otherwise)."""

    def __init__(self, parts: Mapping[str, object] | Callable[[], Mapping[str, object]], plan: Plan,
                 tables: Sequence[np.ndarray] | None = None):
        self.plan = plan
        self._load, self._loaded = (parts, None) if callable(parts) else (None, self._checked(parts))
        self._tables = None if tables is None else [np.asarray(t, dtype=np.float32) for t in tables]

    @staticmethod
    def _checked(parts: Mapping[str, object]) -> dict[str, object]:
        missing = [p for p in PARTS if p not in parts]
        if missing:
            raise ConfigError(f"the kernel needs the parts {PARTS}, missing {missing}")
        return dict(parts)

    @property
    def parts(self) -> dict[str, object]:
        if self._loaded is None:
            self._loaded = self._checked(self._load())
            self.eval()
        return self._loaded

    @property
    def tables(self) -> list[np.ndarray]:
        if self._tables is None:
            self._tables = item_tables(self.parts)
        return self._tables

    @property
    def num_items(self) -> int:
        return int(self.tables[0].shape[0])

    def queries(self, seqs, persona) -> list[np.ndarray]:
        """Each part's [B, H] query vectors for ``seqs`` (torch, [B, L]); the persona part gets
        ``persona`` ([B, D], or None: the no-persona state)."""
        import torch

        out = []
        with torch.inference_mode():
            for name in PARTS:
                model = self.parts[name]
                q = model.query_vectors(seqs, persona) if name == "persona" and persona is not None \
                    else model.query_vectors(seqs)
                out.append(q.float().cpu().numpy())
        return out

    def part_scores(self, seqs, persona, seen=None) -> np.ndarray:
        """[P, B, N] standardised scores of every part (:func:`score_parts`); ``seen`` [B, S]."""
        return score_parts(self.queries(seqs, persona), self.tables, None if seen is None else to_numpy(seen))

    def final_scores(self, seqs, persona, prefix_len: np.ndarray, seen=None) -> np.ndarray:
        """[B, N] full-catalogue scores whose order is the pipeline's ranking (:func:`fuse`)."""
        return fuse(self.plan, self.part_scores(seqs, persona, seen), prefix_len)

    def eval(self):
        for m in (self._loaded or {}).values():
            m.eval()
        return self


def to_numpy(x) -> np.ndarray:
    return x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)
