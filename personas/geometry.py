"""How much of a persona space is one shared direction: the numbers ``kgrec train personas``
prints and the persona probe reports.

* ``cos_to_mean``: the mean cosine of each persona to the mean persona (1 = all alike);
* ``pc1_share``: the share of the variance (uncentred: of the second moment) on the first
  principal direction;
* ``effective_rank``: ``exp`` of the entropy of the normalised singular values (Roy & Vetterli
  2007), between 1 and the dimension;
* each raw and centred (the mean persona subtracted), and the mean cosine to the 5 nearest
  other personas (``knn5_cos``), the issue's collapse check.
"""

from __future__ import annotations

import numpy as np


def _singular(x: np.ndarray) -> np.ndarray:
    return np.linalg.svd(np.asarray(x, dtype=np.float64), compute_uv=False)


def effective_rank(x: np.ndarray, s: np.ndarray | None = None) -> float:
    """``s``: the singular values of ``x`` when already computed."""
    s = _singular(x) if s is None else s
    if not s.size or s.sum() <= 0:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def pc1_share(x: np.ndarray, s: np.ndarray | None = None) -> float:
    s2 = (_singular(x) if s is None else s) ** 2
    return float(s2[0] / s2.sum()) if s2.size and s2.sum() > 0 else 0.0


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def knn_cosine(x: np.ndarray, k: int = 5, sample: int = 2000, seed: int = 0) -> float:
    """Mean cosine of (a sample of) the rows to their ``k`` nearest other rows."""
    u = _unit(np.asarray(x, dtype=np.float64))
    rows = np.random.default_rng(seed).choice(len(u), size=min(sample, len(u)), replace=False)
    k = min(k, len(u) - 1)
    if k <= 0:
        return float("nan")
    top = []
    for start in range(0, len(rows), 256):  # 256 rows at a time: 2,000 x 70k users at once took 2 GB
        r = rows[start : start + 256]
        sim = u[r] @ u.T
        sim[np.arange(len(r)), r] = -np.inf
        top.append(np.partition(sim, -k, axis=1)[:, -k:].copy())  # a view would keep the whole block
    return float(np.concatenate(top).mean())


def geometry(z: np.ndarray) -> dict[str, float]:
    """The collapse diagnostics of the persona rows ``z`` (users × dims), raw and centred."""
    z = np.asarray(z, dtype=np.float64)
    z = z[np.abs(z).sum(1) > 0]
    if len(z) < 2:
        return {}
    centred = z - z.mean(0, keepdims=True)
    mean = _unit(z.mean(0, keepdims=True))[0]
    sv, svc = _singular(z), _singular(centred)  # one SVD per matrix
    return {"n": len(z), "dim": int(z.shape[1]), "cos_to_mean": float((_unit(z) @ mean).mean()),
            "pc1_share": pc1_share(z, sv), "effective_rank": effective_rank(z, sv), "knn5_cos": knn_cosine(z),
            "pc1_share_centred": pc1_share(centred, svc), "effective_rank_centred": effective_rank(centred, svc),
            "knn5_cos_centred": knn_cosine(centred)}
