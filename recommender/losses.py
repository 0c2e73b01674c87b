"""Next-item training losses shared by the session models (:mod:`~kgrec.recommender.sasrec`,
:mod:`~kgrec.recommender.retriever`).

``"ce"`` is the full softmax over the catalogue. ``"sampled"`` is a sampled softmax: every
position's positive against ``num_negatives`` items drawn once per batch and shared by all its
positions (one ``[N, k]`` matmul instead of ``[N, num_items]``); a negative that is the position's
own target is masked out. Proposals (:class:`SampledSoftmax`):

* ``"uniform"``: the log-Q correction is the same constant for every candidate and cancels;
* ``"popularity"``: drawn with probability proportional to ``(training count + 1) ** alpha``, every
  candidate's logit (the positive's too) corrected by ``- log Q(item)`` (Jean et al. 2015; Yi et
  al. 2019), so the loss estimates the full softmax instead of one that under-penalises popular
  items.

It is what makes a large catalogue affordable on a CPU; its validation quality against the full
softmax is measured in ``benchmarks/loss_ab.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("ce", "sampled")
PROPOSALS = ("uniform", "popularity")


def uniform_negatives(num_items: int, k: int, device, generator: torch.Generator | None = None) -> torch.Tensor:
    """[k] item indices drawn uniformly from ``1 .. num_items - 1`` (0 is padding)."""
    return torch.randint(1, num_items, (k,), generator=generator, device=device)


def sampled_softmax(q: torch.Tensor, table: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor,
                    log_q: torch.Tensor | None = None) -> torch.Tensor:
    """Mean cross-entropy of each row of ``q`` [N, H] over its target (``targets`` [N]) and the
    shared ``negatives`` [k] of ``table`` [num_items, H]; accidental hits are masked. ``log_q``
    [num_items]: the proposal's log-probabilities, subtracted from every candidate's logit."""
    pos = (q * table[targets]).sum(-1, keepdim=True)  # [N, 1]
    neg = q @ table[negatives].T  # [N, k]
    if log_q is not None:
        pos, neg = pos - log_q[targets].unsqueeze(1), neg - log_q[negatives].unsqueeze(0)
    neg = neg.masked_fill(negatives.unsqueeze(0) == targets.unsqueeze(1), -torch.inf)
    logits = torch.cat([pos, neg], 1)
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


class SampledSoftmax(torch.nn.Module):
    """The sampled softmax of a model: ``num_negatives`` shared negatives from the ``proposal``.

    ``"popularity"`` needs the training counts (:meth:`set_item_counts`, done by the recipe before
    training); they live in a non-persistent buffer, so saved weights do not depend on them and a
    loaded model needs them only to be trained again.
    """

    def __init__(self, num_items: int, num_negatives: int, proposal: str = "uniform", alpha: float = 0.75):
        super().__init__()
        from kgrec.errors import ConfigError

        if proposal not in PROPOSALS:
            raise ConfigError(f"proposal must be one of {PROPOSALS}, got {proposal!r}")
        if num_negatives < 1:
            raise ConfigError(f"num_negatives must be >= 1, got {num_negatives}")
        self.num_items, self.num_negatives = num_items, int(min(num_negatives, max(num_items - 1, 1)))
        self.proposal, self.alpha = proposal, float(alpha)
        self.register_buffer("probs", None, persistent=False)
        self.register_buffer("log_q", None, persistent=False)

    def set_item_counts(self, counts) -> None:
        """Proposal probabilities from training counts per vocabulary index (padding 0 never drawn)."""
        if self.proposal == "uniform":
            return
        c = torch.as_tensor(counts, dtype=torch.float64).reshape(-1)
        if len(c) != self.num_items:
            from kgrec.errors import ConfigError

            raise ConfigError(f"item counts have {len(c)} rows, expected num_items={self.num_items}")
        w = (c + 1.0) ** self.alpha
        w[0] = 0.0
        p = (w / w.sum()).float()
        self.probs, self.log_q = p, torch.log(p.clamp_min(1e-30))

    def draw(self, device, generator: torch.Generator | None = None) -> torch.Tensor:
        """[k] negative item indices from the proposal."""
        if self.proposal == "uniform":
            return uniform_negatives(self.num_items, self.num_negatives, device, generator)
        if self.probs is None:
            from kgrec.errors import ConfigError

            raise ConfigError("the popularity proposal needs set_item_counts(training counts) before training")
        return torch.multinomial(self.probs, self.num_negatives, replacement=True, generator=generator)

    def forward(self, q: torch.Tensor, table: torch.Tensor, targets: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        return sampled_softmax(q, table, targets, self.draw(q.device, generator), self.log_q)


def sub_table_ids(*index_tensors: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The sorted distinct item indices of ``index_tensors`` (padding 0 always first) and each tensor
    re-indexed into them: a loss over a few thousand rows instead of the whole catalogue, for a model
    whose item table is costly to compute in full (SASRec's LLM projection)."""
    flat = [t.reshape(-1) for t in index_tensors]
    zero = torch.zeros(1, dtype=flat[0].dtype, device=flat[0].device)
    ids, inv = torch.unique(torch.cat([zero, *flat]), return_inverse=True)
    out, at = [], 1
    for t, f in zip(index_tensors, flat, strict=True):
        out.append(inv[at:at + len(f)].view_as(t))
        at += len(f)
    return ids, out
