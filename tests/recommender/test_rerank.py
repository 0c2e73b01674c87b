import numpy as np
import pytest

from kgrec.recommender.rerank import (
    CandidateSet,
    blend,
    evaluate_pipeline,
    pipeline_ranks,
    tune_alpha,
    zscore,
)


def _cs(sas_good: bool, n: int = 20) -> CandidateSet:
    """Target = candidate 3 of 5; either SASRec or the retriever ranks it first."""
    cands = np.tile(np.arange(1, 6), (n, 1))
    targets = np.full(n, 4)
    good = np.array([1.0, 2.0, 3.0, 10.0, 0.0])
    bad = np.array([10.0, 9.0, 8.0, 1.0, 0.0])
    sas = np.tile(good if sas_good else bad, (n, 1))
    retr = np.tile(bad if sas_good else good, (n, 1))
    return CandidateSet(cands, retr, sas, targets, np.full(n, 4))


def test_zscore_and_blend():
    z = zscore(np.array([[1.0, 2.0, 3.0]])).numpy()
    assert z.mean() == pytest.approx(0.0, abs=1e-6) and z.std() == pytest.approx(1.0, abs=1e-4)
    b = blend(np.array([[1.0, 2.0]]), np.array([[2.0, 1.0]]), 1.0).numpy()
    assert b[0, 1] > b[0, 0]


def test_alpha_tuned_on_validation_only():
    valid_sas_good, test_retr_good = _cs(True), _cs(False)
    alpha, table = tune_alpha(valid_sas_good)
    assert alpha >= 0.5 and table[alpha] == pytest.approx(1.0) and table[0.0] < 1.0
    alpha, _ = tune_alpha(valid_sas_good, grid=(0.0, 1.0))
    assert alpha == 1.0
    # the test set would prefer alpha = 0, but tuning never sees it
    assert tune_alpha(test_retr_good, grid=(0.0, 1.0))[0] == 0.0
    m, _ = evaluate_pipeline(test_retr_good, alpha, num_items=6)
    assert m["HR@10"] == 1.0 and m["MRR"] == pytest.approx(1 / 4)


def test_target_outside_candidates_keeps_retriever_rank():
    cs = _cs(True, n=2)
    cs.targets = np.array([4, 9])
    cs.retr_rank = np.array([4, 37])
    ranks, top10 = pipeline_ranks(cs, 1.0)
    assert ranks.tolist() == [1, 37]
    assert top10.shape == (2, 5) and top10[0, 0] == 4


def test_neighbour_prior_fills_union_slots_and_scores():
    import torch

    from kgrec.recommender.neighbours import PersonaNeighbours
    from kgrec.recommender.rerank import _union

    seqs = {"a": np.array([1, 2]), "b": np.array([2, 3]), "c": np.array([4])}
    vec = {"a": np.array([1.0, 0.0]), "b": np.array([0.9, 0.1]), "c": np.array([0.0, 1.0])}
    nb = PersonaNeighbours(vec, seqs, num_items=6, k=1)
    s = nb.scores(["a", "zz"], {"zz": np.array([0.1, 1.0])})
    # a's nearest other user is b (items 2, 3); a user outside the index uses the given vector (-> c)
    assert s[0].nonzero()[0].tolist() == [2, 3] and s[1].nonzero()[0].tolist() == [4]
    full = torch.tensor([[0.0, 5, 4, 3, 2, 1]])
    prior = torch.tensor([[0.0, 0, 0, 0, 0, 9]])
    assert _union(full, prior, 3, 1).tolist() == [[1, 2, 5]]
