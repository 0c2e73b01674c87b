"""Two-stage pipeline: persona retriever top-K candidates, SASRec reranks them.

Final score of a candidate: ``alpha * z(sasrec) + (1 - alpha) * z(retriever)``, z =
standardisation over the example's K candidates; ``alpha = 1`` is "SASRec score
only". ``alpha`` is chosen on the **validation** set by grid search
(:func:`tune_alpha`) and then applied unchanged to test.

Full ranking used for the metrics: the K reranked candidates first, then the rest
of the catalogue in retriever order. So a target outside the candidates keeps its
retriever rank (> K): HR@100 of the pipeline equals the retriever's HR@K for K = 100,
while NDCG@10 and MRR reflect the rerank.
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


def blend(sas, retr, alpha: float):
    """``alpha * z(sas) + (1 - alpha) * z(retr)`` over the candidates of each row."""
    zs, zr = zscore(sas), zscore(retr)
    if alpha >= 1.0:
        return zs
    if alpha <= 0.0:
        return zr
    return alpha * zs + (1.0 - alpha) * zr


def build_candidates(retriever, sasrec, examples: EvalExamples, persona: np.ndarray | None = None, *,
                     k: int = 100, batch_size: int = 512, device: str = "cpu",
                     exclude_seen: bool = False) -> CandidateSet:
    """Retriever top-K per example plus SASRec scores of those candidates (computed once)."""
    import torch

    retriever.eval()
    sasrec.eval()
    out = {"cands": [], "retr": [], "sas": [], "retr_rank": []}
    with torch.inference_mode():
        for s in range(0, len(examples), batch_size):
            sl = slice(s, s + batch_size)
            seqs = torch.as_tensor(examples.seqs[sl], device=device)
            tg = torch.as_tensor(examples.targets[sl], device=device)
            if getattr(retriever, "fusion", "none") == "none" or persona is None:
                full = retriever.score(seqs)
            else:
                full = retriever.score(seqs, torch.as_tensor(persona[sl], device=device))
            if exclude_seen:
                full = full.clone()
                full.scatter_(1, torch.as_tensor(examples.seen_matrix(sl), device=device), -torch.inf)
                full[:, 0] = -torch.inf
            rr = ranks_from_scores(full, tg)
            kk = min(k, full.shape[1] - 1)
            v, c = full.topk(kk, dim=1)
            sas = sasrec.score_candidates(seqs, c)
            for key, val in (("cands", c), ("retr", v), ("sas", sas), ("retr_rank", rr)):
                out[key].append(val.cpu().numpy())
    cat = {key: np.concatenate(v) if v else np.zeros((0, k)) for key, v in out.items()}
    return CandidateSet(cat["cands"], cat["retr"], cat["sas"], examples.targets.copy(), cat["retr_rank"],
                        examples.prefix_len.copy())


def pipeline_ranks(cs: CandidateSet, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """(1-based target ranks in the reranked full ranking, top-10 item indices)."""
    import torch

    scores = blend(cs.sas, cs.retr, alpha)
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


def tune_alpha(valid: CandidateSet, grid=DEFAULT_ALPHA_GRID, metric: str = "NDCG@10") -> tuple[float, dict]:
    """Best ``alpha`` on the **validation** candidates (first of the grid on ties)."""
    table = {}
    best, best_val = float(grid[0]), float("-inf")
    for a in grid:
        r, _ = pipeline_ranks(valid, float(a))
        v = metrics_from_ranks(r)[metric]
        table[float(a)] = v
        if v > best_val + 1e-12:
            best, best_val = float(a), v
    return best, table


def evaluate_pipeline(cs: CandidateSet, alpha: float, num_items: int,
                      head_mask: np.ndarray | None = None) -> tuple[dict[str, float], dict]:
    """(metrics, prefix-length breakdown) of the reranked candidates."""
    acc = RankingAccumulator(num_items, head_mask)
    r, top10 = pipeline_ranks(cs, alpha)
    acc.add_ranks(r, cs.targets, top10, cs.prefix_len)
    return acc.compute(), acc.breakdown()
