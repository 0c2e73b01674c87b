"""Two-stage pipeline: persona retriever top-K candidates, SASRec reranks them.

Final score of a candidate: ``alpha * z(sasrec) + (1 - alpha) * z(retriever)``, z =
standardisation over the example's K candidates; ``alpha = 1`` is "SASRec score
only". ``alpha`` is chosen on the **validation** set by grid search
(:func:`tune_alpha`) and then applied unchanged to test.

Full ranking used for the metrics: the K reranked candidates first, then the rest
of the catalogue in retriever order. So a target outside the candidates keeps its
retriever rank (> K): HR@100 of the pipeline equals the retriever's HR@K for K = 100,
while NDCG@10 and MRR reflect the rerank.

With a ``prior`` (persona neighbours, :mod:`kgrec.recommender.neighbours`) the last
``union`` candidate slots go to the prior's top items that the retriever's top ``K - union``
lack, and the final score gains ``+ beta * z(prior)``; ``alpha`` and ``beta`` are tuned
together on validation (:func:`tune_alpha`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kgrec.recommender.data import EvalExamples
from kgrec.recommender.metrics import RankingAccumulator, metrics_from_ranks, ranks_from_scores

DEFAULT_ALPHA_GRID = tuple(round(a, 2) for a in np.linspace(0.0, 1.0, 11))


@dataclass
class CandidateSet:
    cands: np.ndarray  # [N, K] item indices, retriever order
    retr: np.ndarray  # [N, K] retriever scores
    sas: np.ndarray  # [N, K] SASRec scores
    targets: np.ndarray  # [N]
    retr_rank: np.ndarray  # [N] target rank in the retriever's full ranking
    prefix_len: np.ndarray | None = None  # [N] prefix length of each example (for the breakdown)
    prior: np.ndarray | None = None  # [N, K] prior (persona-neighbour) scores of the candidates


def zscore(x, eps: float = 1e-6):
    """Row-wise standardisation (torch or numpy); -inf entries stay -inf."""
    import torch

    t = torch.as_tensor(x, dtype=torch.float32)
    finite = torch.isfinite(t)
    z = torch.where(finite, t, torch.zeros_like(t))
    n = finite.sum(1, keepdim=True).clamp_min(1)
    mu = z.sum(1, keepdim=True) / n
    var = (torch.where(finite, (z - mu) ** 2, torch.zeros_like(t))).sum(1, keepdim=True) / n
    out = (z - mu) / (var.sqrt() + eps)
    return torch.where(finite, out, torch.full_like(t, -torch.inf))


def blend(sas, retr, alpha: float, prior=None, beta: float = 0.0):
    """``alpha * z(sas) + (1 - alpha) * z(retr) [+ beta * z(prior)]`` over the candidates of each row."""
    zs, zr = zscore(sas), zscore(retr)
    if alpha >= 1.0:
        out = zs
    elif alpha <= 0.0:
        out = zr
    else:
        out = alpha * zs + (1.0 - alpha) * zr
    if prior is not None and beta:
        import torch

        zp = zscore(prior)
        out = out + beta * torch.where(torch.isfinite(zp), zp, torch.zeros_like(zp))
    return out


def _union(full, prior, k: int, union: int):
    """Top ``k - union`` of ``full`` plus the ``union`` best ``prior`` items not among them."""
    import torch

    keep = full.topk(k - union, dim=1).indices
    if not union:
        return keep
    taken = torch.zeros_like(prior, dtype=torch.bool).scatter_(1, keep, True)
    extra = prior.masked_fill(taken, -torch.inf).topk(union, dim=1).indices
    return torch.cat([keep, extra], 1)


def build_candidates(retriever, sasrec, examples: EvalExamples, persona: np.ndarray | None = None, *,
                     k: int = 100, batch_size: int = 512, device: str = "cpu",
                     exclude_seen: bool = False, prior=None, union: int = 0) -> CandidateSet:
    """Retriever top-K per example plus SASRec scores of those candidates (computed once).

    ``prior(users) -> [B, num_items]`` adds prior scores and ``union`` prior-chosen slots."""
    import torch

    retriever.eval()
    sasrec.eval()
    out = {"cands": [], "retr": [], "sas": [], "retr_rank": [], "prior": []}
    with torch.inference_mode():
        for s in range(0, len(examples), batch_size):
            sl = slice(s, s + batch_size)
            seqs = torch.as_tensor(examples.seqs[sl], device=device)
            tg = torch.as_tensor(examples.targets[sl], device=device)
            if getattr(retriever, "fusion", "none") == "none" or persona is None:
                full = retriever.score(seqs)
            else:
                full = retriever.score(seqs, torch.as_tensor(persona[sl], device=device))
            seen = torch.as_tensor(examples.seen_matrix(sl), device=device) if exclude_seen else None
            if seen is not None:
                full = full.clone()
                full.scatter_(1, seen, -torch.inf)
                full[:, 0] = -torch.inf
            rr = ranks_from_scores(full, tg)
            kk = min(k, full.shape[1] - 1)
            pr = None
            if prior is not None:
                pr = torch.as_tensor(prior(examples.users[sl]), device=device)
                pr[:, 0] = -torch.inf
                if seen is not None:
                    pr.scatter_(1, seen, -torch.inf)
            c = _union(full, pr, kk, min(union, kk) if pr is not None else 0) if pr is not None else \
                full.topk(kk, dim=1).indices
            v = full.gather(1, c)
            sas = sasrec.score_candidates(seqs, c)
            for key, val in (("cands", c), ("retr", v), ("sas", sas), ("retr_rank", rr)):
                out[key].append(val.cpu().numpy())
            if pr is not None:
                out["prior"].append(pr.gather(1, c).cpu().numpy())
    cat = {key: np.concatenate(v) if v else np.zeros((0, k)) for key, v in out.items()}
    return CandidateSet(cat["cands"], cat["retr"], cat["sas"], examples.targets.copy(), cat["retr_rank"],
                        examples.prefix_len.copy(), cat["prior"] if prior is not None else None)


def pipeline_ranks(cs: CandidateSet, alpha: float, beta: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(1-based target ranks in the reranked full ranking, top-10 item indices)."""
    import torch

    scores = blend(cs.sas, cs.retr, alpha, cs.prior, beta)
    cands = torch.as_tensor(cs.cands)
    tg = torch.as_tensor(cs.targets)
    hit = cands == tg.unsqueeze(1)
    inside = hit.any(1)
    # rank among candidates: ties count against the target (as in metrics.ranks_from_scores)
    t_score = torch.where(hit, scores, torch.full_like(scores, -torch.inf)).max(1, keepdim=True).values
    r_in = 1 + (scores > t_score).sum(1) + (scores == t_score).sum(1) - 1
    k = cs.cands.shape[1]
    r_out = torch.as_tensor(np.maximum(cs.retr_rank, k + 1))
    ranks = torch.where(inside, r_in, r_out).numpy()
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :10]
    top10 = cands.gather(1, order).numpy()
    return ranks, top10


DEFAULT_BETA_GRID = (0.0, 0.25, 0.5, 1.0, 2.0)


def tune_alpha(valid: CandidateSet, grid=DEFAULT_ALPHA_GRID, metric: str = "NDCG@10",
               beta_grid=DEFAULT_BETA_GRID) -> tuple[float, dict]:
    """Best ``alpha`` on the **validation** candidates (first of the grid on ties). With a prior,
    ``beta`` is tuned with it and the result is ``((alpha, beta), table)``."""
    betas = beta_grid if valid.prior is not None else (0.0,)
    table, best, best_val = {}, None, float("-inf")
    for b in betas:
        for a in grid:
            r, _ = pipeline_ranks(valid, float(a), float(b))
            v = metrics_from_ranks(r)[metric]
            key = float(a) if valid.prior is None else (float(a), float(b))
            table[key if valid.prior is None else f"{a},{b}"] = v
            if v > best_val + 1e-12:
                best, best_val = key, v
    return best, table


def evaluate_pipeline(cs: CandidateSet, alpha, num_items: int,
                      head_mask: np.ndarray | None = None) -> tuple[dict[str, float], dict]:
    """(metrics, prefix-length breakdown) of the reranked candidates; ``alpha`` may be
    ``(alpha, beta)`` for a candidate set with a prior."""
    a, b = alpha if isinstance(alpha, tuple) else (alpha, 0.0)
    acc = RankingAccumulator(num_items, head_mask)
    r, top10 = pipeline_ranks(cs, a, b)
    acc.add_ranks(r, cs.targets, top10, cs.prefix_len)
    return acc.compute(), acc.breakdown()
