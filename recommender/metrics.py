"""Ranking metrics computed from the target's rank in the full catalogue.

Definitions (one example = one target item; metrics are means over examples):

* rank: 1 + number of catalogue items scored **strictly higher** than the target +
  number of *other* items scored **equal** to it (ties count against the target, a
  conservative choice that matters for the popularity baseline). The padding
  column 0 is never ranked.
* ``HR@k``   = 1 if rank <= k.
* ``NDCG@10`` = 1 / log2(rank + 1) if rank <= 10 else 0 (one relevant item, so IDCG = 1).
* ``MRR``    = 1 / rank over the **full** ranking (not cut at 100).
* ``LT-HR@100``: HR@100 over the examples whose target is a long-tail item, i.e. not
  among the top 20 % most popular items of the training set (see :func:`head_items`).
* ``coverage``: share of the catalogue (items 1..n) that appears in at least one
  top-10 list over the evaluated examples.

With ``--exclude-seen`` the items the user is known to have had before the target
(:attr:`kgrec.recommender.data.EvalExamples.seen_items`) are scored -inf before ranking.

These are validated against ``torchmetrics.functional.retrieval_*`` in the tests;
torchmetrics is not used here because its per-query API is slow on full catalogues.
"""

from __future__ import annotations

import math

import numpy as np

METRICS = ("HR@10", "HR@100", "NDCG@10", "MRR", "LT-HR@100", "coverage")


def head_items(counts: np.ndarray, share: float = 0.2) -> np.ndarray:
    """Boolean mask [num_items]: the ceil(share * #items-with-train-interactions) most popular.

    ``counts`` is the training interaction count per vocabulary index (index 0 =
    padding). Ties at the cut are broken by index (lower index first), deterministically.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n_train = int((counts[1:] > 0).sum())
    k = math.ceil(share * n_train)
    mask = np.zeros(len(counts), dtype=bool)
    if k:
        idx = np.arange(1, len(counts))
        order = idx[np.lexsort((idx, -counts[1:]))]
        mask[order[:k]] = True
    return mask


def ranks_from_scores(scores, targets):
    """1-based rank of each target (torch tensors in, LongTensor out). See module docstring.

    ``scores`` [B, C] (column 0 = padding, ignored), ``targets`` [B].
    """
    import torch

    scores = scores.float().clone()
    scores[:, 0] = -torch.inf
    t = scores.gather(1, targets.view(-1, 1))
    higher = (scores > t).sum(1)
    ties = (scores == t).sum(1) - 1
    return (1 + higher + ties).long()


def metrics_from_ranks(ranks: np.ndarray) -> dict[str, float]:
    """HR@10, HR@100, NDCG@10, MRR from 1-based ranks (means over examples)."""
    r = np.asarray(ranks, dtype=np.float64)
    if not len(r):
        return {"HR@10": math.nan, "HR@100": math.nan, "NDCG@10": math.nan, "MRR": math.nan}
    return {
        "HR@10": float((r <= 10).mean()),
        "HR@100": float((r <= 100).mean()),
        "NDCG@10": float(np.where(r <= 10, 1.0 / np.log2(r + 1.0), 0.0).mean()),
        "MRR": float((1.0 / r).mean()),
    }


class RankingAccumulator:
    """Collects ranks and top-10 lists batch by batch; :meth:`compute` gives all six metrics and
    :meth:`breakdown` the ranking metrics per prefix-length bucket."""

    def __init__(self, num_items: int, head_mask: np.ndarray | None = None):
        self.num_items = num_items
        self.head_mask = head_mask
        self.ranks: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []
        self.prefix_len: list[np.ndarray] = []
        self.covered = np.zeros(num_items, dtype=bool)

    def update(self, scores, targets, seen=None, prefix_len: np.ndarray | None = None) -> np.ndarray:
        """Full-catalogue ``scores`` [B, C] (torch); ``seen`` [B, S] item indices to exclude
        (0 = padding) or None; returns the batch ranks."""
        import torch

        s = scores.float().clone()
        if seen is not None:
            s.scatter_(1, torch.as_tensor(seen, device=s.device), -torch.inf)
        s[:, 0] = -torch.inf
        ranks = ranks_from_scores(s, targets)
        top = s.topk(min(10, s.shape[1] - 1), dim=1).indices
        self.add_ranks(ranks.cpu().numpy(), targets.cpu().numpy(), top.cpu().numpy(), prefix_len)
        return ranks.cpu().numpy()

    def add_ranks(self, ranks: np.ndarray, targets: np.ndarray, top10: np.ndarray,
                  prefix_len: np.ndarray | None = None) -> None:
        """For scorers that compute ranks themselves."""
        self.ranks.append(np.asarray(ranks))
        self.targets.append(np.asarray(targets))
        self.prefix_len.append(np.full(len(ranks), -1) if prefix_len is None else np.asarray(prefix_len))
        self.covered[np.asarray(top10).reshape(-1)] = True

    def compute(self) -> dict[str, float]:
        r = np.concatenate(self.ranks) if self.ranks else np.zeros(0)
        t = np.concatenate(self.targets) if self.targets else np.zeros(0, dtype=np.int64)
        out = metrics_from_ranks(r)
        if self.head_mask is not None and len(r):
            lt = ~self.head_mask[t]
            out["LT-HR@100"] = float((r[lt] <= 100).mean()) if lt.any() else math.nan
        else:
            out["LT-HR@100"] = math.nan
        cov = self.covered.copy()
        cov[0] = False
        out["coverage"] = float(cov.sum() / max(1, self.num_items - 1))
        return out

    def breakdown(self) -> dict[str, dict[str, float]]:
        """``bucket -> {n, HR@10, HR@100, NDCG@10, MRR}`` over the prefix-length buckets
        (:data:`kgrec.recommender.protocols.PREFIX_BUCKETS`); examples without a prefix length
        are left out."""
        from kgrec.recommender.protocols import PREFIX_BUCKETS, prefix_bucket

        r = np.concatenate(self.ranks) if self.ranks else np.zeros(0)
        pl = np.concatenate(self.prefix_len) if self.prefix_len else np.zeros(0, dtype=np.int64)
        known = pl >= 0
        labels = prefix_bucket(pl[known])
        out = {}
        for label, *_ in PREFIX_BUCKETS:
            m = labels == label
            out[label] = {"n": float(m.sum()), **metrics_from_ranks(r[known][m])}
        return out
