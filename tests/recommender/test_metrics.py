import math

import numpy as np
import pytest
import torch
import torchmetrics.functional.retrieval as TMF

from kgrec.recommender.metrics import RankingAccumulator, head_items, metrics_from_ranks, ranks_from_scores


def _scores_with_target_at(rank: int, n: int = 200, target: int = 7) -> torch.Tensor:
    # column 0 = padding; items 1..n-1 get distinct scores; place target at `rank`
    others = [i for i in range(1, n) if i != target]
    s = torch.full((n,), -1.0)
    order = others[: rank - 1] + [target] + others[rank - 1:]
    for pos, item in enumerate(order):
        s[item] = float(n - pos)
    return s


def test_hand_computed_ranks_1_3_150():
    scores = torch.stack([_scores_with_target_at(r) for r in (1, 3, 150)])
    targets = torch.tensor([7, 7, 7])
    ranks = ranks_from_scores(scores, targets).tolist()
    assert ranks == [1, 3, 150]
    m = metrics_from_ranks(np.array(ranks))
    assert m["HR@10"] == pytest.approx(2 / 3)
    assert m["HR@100"] == pytest.approx(2 / 3)
    assert m["NDCG@10"] == pytest.approx((1.0 + 1.0 / math.log2(4)) / 3)  # (1 + 0.5) / 3
    assert m["MRR"] == pytest.approx((1 + 1 / 3 + 1 / 150) / 3)  # full ranking, not cut


def test_ties_count_against_target_and_padding_ignored():
    s = torch.tensor([[100.0, 1.0, 1.0, 1.0, 0.5]])
    assert ranks_from_scores(s, torch.tensor([2])).item() == 3
    assert ranks_from_scores(s, torch.tensor([4])).item() == 4


def test_against_torchmetrics_small_case():
    g = torch.Generator().manual_seed(0)
    # positive scores: torchmetrics 1.9 reciprocal_rank drops relevant items scored <= 0
    scores = torch.rand(6, 40, generator=g) + 0.1
    targets = torch.randint(1, 40, (6,), generator=g)
    ranks = ranks_from_scores(scores, targets)
    m = metrics_from_ranks(ranks.numpy())
    hr, nd, rr = [], [], []
    for i in range(6):
        p = scores[i, 1:]
        t = torch.zeros(39, dtype=torch.bool)
        t[targets[i] - 1] = True
        hr.append(TMF.retrieval_hit_rate(p, t, top_k=10))
        nd.append(TMF.retrieval_normalized_dcg(p, t, top_k=10))
        rr.append(TMF.retrieval_reciprocal_rank(p, t))
    assert m["HR@10"] == pytest.approx(float(torch.stack(hr).mean()))
    assert m["NDCG@10"] == pytest.approx(float(torch.stack(nd).mean()), abs=1e-6)
    assert m["MRR"] == pytest.approx(float(torch.stack(rr).mean()), abs=1e-6)


def test_long_tail_definition():
    counts = np.array([0, 50, 40, 30, 20, 10, 5, 4, 3, 2, 1, 0])  # 10 items seen in training, 1 unseen
    head = head_items(counts)
    assert head.tolist() == [False, True, True] + [False] * 9  # top 20 % of 10 = 2 items
    acc = RankingAccumulator(len(counts), head)
    acc.add_ranks(np.array([1, 200, 50, 150]), np.array([1, 2, 5, 11]), np.array([[1, 2]]))
    out = acc.compute()
    assert out["LT-HR@100"] == pytest.approx(0.5)  # items 5 (rank 50 hit) and 11 (rank 150 miss)
    assert out["HR@100"] == pytest.approx(0.5)
    assert out["coverage"] == pytest.approx(2 / 11)


def test_exclude_seen_option():
    s = torch.tensor([[0.0, 9.0, 8.0, 7.0]])
    seen = torch.tensor([[0, 1]])
    assert RankingAccumulator(4).update(s, torch.tensor([2])).tolist() == [2]
    assert RankingAccumulator(4).update(s, torch.tensor([2]), seen).tolist() == [1]
