"""Next-item training losses shared by the session models (:mod:`~kgrec.recommender.sasrec`,
:mod:`~kgrec.recommender.retriever`).

``"ce"`` is the full softmax over the catalogue. ``"sampled"`` is a sampled softmax: every
position's positive against ``num_negatives`` items drawn uniformly once per batch and shared by
all its positions (one ``[N, k]`` matmul instead of ``[N, num_items]``); a negative that is the
position's own target is masked out. With uniform proposals the log-Q correction is the same
constant for every candidate and cancels, so the loss is the softmax over ``1 + k`` candidates.
It is what makes a large catalogue affordable on a CPU; its validation quality against the full
softmax is measured in ``benchmarks/loss_ab.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("ce", "sampled")


def uniform_negatives(num_items: int, k: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
    """[k] item indices drawn uniformly from ``1 .. num_items - 1`` (0 is padding)."""
    return torch.randint(1, num_items, (k,), generator=generator, device=device)


def sampled_softmax(q: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each row of ``q`` [N, H] over its target (``targets`` [N]) and the
    shared ``negatives`` [k] of ``table`` [num_items, H]; accidental hits are masked."""
    pos = (q * table[targets]).sum(-1, keepdim=True)  # [N, 1]
    neg = q @ table[negatives].T  # [N, k]
    neg = neg.masked_fill(negatives.unsqueeze(0) == targets.unsqueeze(1), -torch.inf)
    logits = torch.cat([pos, neg], 1)
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))
