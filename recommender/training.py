"""Shared training loop with early stopping on **validation** NDCG@10.

A model here is any ``nn.Module`` with ``training_loss(seqs, targets, persona=None,
generator=None)`` and ``score(seqs[, persona]) -> [B, num_items]``.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from kgrec.recommender.data import EvalExamples, TrainWindows
from kgrec.recommender.metrics import RankingAccumulator


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _call_score(model, seqs, persona):
    if persona is None:
        return model.score(seqs)
    return model.score(seqs, persona)


def score_examples(model, examples: EvalExamples, persona: np.ndarray | None = None, *,
                   batch_size: int = 512, device: str = "cpu"):
    """Yield (batch slice, scores [B, num_items]) under ``inference_mode`` with the model in eval()."""
    import torch

    was = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for s in range(0, len(examples), batch_size):
                sl = slice(s, s + batch_size)
                seqs = torch.as_tensor(examples.seqs[sl], device=device)
                p = None if persona is None else torch.as_tensor(persona[sl], device=device)
                yield sl, _call_score(model, seqs, p)
    finally:
        model.train(was)


def evaluate_scorer(model, examples: EvalExamples, persona: np.ndarray | None = None, *,
                    head_mask: np.ndarray | None = None, exclude_seen: bool = False,
                    batch_size: int = 512, device: str = "cpu", breakdown: bool = False):
    """All metrics of a full-catalogue scorer on ``examples`` (``breakdown``: also the
    prefix-length table, returned as ``(metrics, breakdown)``)."""
    import torch

    acc = None
    for sl, scores in score_examples(model, examples, persona, batch_size=batch_size, device=device):
        if acc is None:
            acc = RankingAccumulator(scores.shape[1], head_mask)
        seen = examples.seen_matrix(sl) if exclude_seen else None
        acc.update(scores.cpu(), torch.as_tensor(examples.targets[sl]), seen, examples.prefix_len[sl])
    acc = acc or RankingAccumulator(2)
    return (acc.compute(), acc.breakdown()) if breakdown else acc.compute()


def _trim(inputs, targets):
    """Drop the leading columns that are padding in every row of a batch (left-padded windows:
    positions are counted from the right, so the result is unchanged and much cheaper for the
    short windows of the session protocol)."""
    used = (inputs != 0) | (targets != 0)
    cols = used.any(0).nonzero()
    start = int(cols[0]) if len(cols) else inputs.shape[1] - 1
    return inputs[:, start:], targets[:, start:]


def epoch_batches(lengths, batch_size: int, generator, bucket_batches: int = 0) -> list:
    """One epoch's batches of window indices, in random order.

    ``bucket_batches = 0``: a random permutation cut into batches. ``> 0``: the permutation is cut
    into chunks of ``bucket_batches`` batches, each chunk sorted by window length before it is cut,
    and the batches are shuffled: every window still appears exactly once per epoch, and a batch
    holds windows of similar length, so :func:`_trim` removes most of the padding (the windows of
    the session protocol are mostly short)."""
    import torch

    perm = torch.randperm(len(lengths), generator=generator)
    if bucket_batches <= 0:
        return list(perm.split(batch_size))
    batches = []
    for chunk in perm.split(batch_size * bucket_batches):
        batches += list(chunk[torch.argsort(lengths[chunk], stable=True)].split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator)]


@dataclass
class FitResult:
    best_epoch: int = -1
    best_valid_ndcg: float = float("-inf")
    history: list[dict] = field(default_factory=list)
    stopped: bool = False  # ended by ``should_stop`` (not by patience)


def _train_epoch(model, opt, batches, inputs, targets, persona, device: str, generator) -> float:
    """One pass of Adam steps over ``batches`` of window indices; the mean training loss."""
    import torch

    model.train()
    total, n = 0.0, 0
    for idx in batches:
        kw = {} if persona is None else {"persona": persona[idx].to(device)}
        x, y = _trim(inputs[idx], targets[idx])
        loss = model.training_loss(x.to(device), y.to(device), generator=generator, **kw)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        total += float(loss.detach()) * len(idx)
        n += len(idx)
    return total / max(n, 1)


def fit(model, windows: TrainWindows, valid: EvalExamples, *, train_persona: np.ndarray | None = None,
        valid_persona: np.ndarray | None = None, epochs: int = 50, batch_size: int = 128,
        lr: float = 1e-3, weight_decay: float = 0.0, patience: int = 5, seed: int = 0,
        device: str = "cpu", progress: Callable[[str], None] | None = None,
        name: str = "model", exclude_seen: bool = False,
        should_stop: Callable[[int], bool] | None = None, bucket_batches: int = 0,
        score_initial: bool = False) -> FitResult:
    """Adam training; after every epoch evaluate NDCG@10 on ``valid`` and keep the best weights.

    ``bucket_batches``: batches of similar-length windows (:func:`epoch_batches`).
    ``score_initial``: the untrained state is a candidate too (``epoch -1``), e.g. a fine-tune that
    starts from a trained model and must not end below it.

    Stops after ``patience`` epochs without improvement, or when ``should_stop(epoch)``
    (asked before each epoch after the first, e.g. a time budget) returns True; the model ends
    with the best validation state loaded. Fully determined by ``seed`` on CPU.
    """
    import torch

    seed_everything(seed)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    dgen = torch.Generator(device=device).manual_seed(seed) if device != "cpu" else gen
    inputs = torch.as_tensor(windows.inputs)
    targets = torch.as_tensor(windows.targets)
    lengths = ((inputs != 0) | (targets != 0)).sum(1)
    pers = None if train_persona is None else torch.as_tensor(train_persona)
    res = FitResult()
    best_state = copy.deepcopy(model.state_dict())
    bad = 0
    if score_initial:
        ndcg = evaluate_scorer(model, valid, valid_persona, device=device, exclude_seen=exclude_seen)["NDCG@10"]
        res.history.append({"epoch": -1, "loss": float("nan"), "valid_NDCG@10": ndcg})
        res.best_valid_ndcg = ndcg
        if progress:
            progress(f"{name} before training: valid NDCG@10 {ndcg:.4f}")
    for epoch in range(epochs):
        if epoch and should_stop is not None and should_stop(epoch):
            res.stopped = True
            break
        loss = _train_epoch(model, opt, epoch_batches(lengths, batch_size, gen, bucket_batches), inputs, targets,
                            pers, device, dgen)
        ndcg = evaluate_scorer(model, valid, valid_persona, device=device, exclude_seen=exclude_seen)["NDCG@10"]
        res.history.append({"epoch": epoch, "loss": loss, "valid_NDCG@10": ndcg})
        if progress:
            progress(f"{name} epoch {epoch}: loss {loss:.4f} valid NDCG@10 {ndcg:.4f}")
        if ndcg > res.best_valid_ndcg:
            res.best_valid_ndcg, res.best_epoch, bad = ndcg, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
            if bad >= patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return res
