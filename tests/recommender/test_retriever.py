import numpy as np
import pytest
import torch

from kgrec.errors import ConfigError
from kgrec.recommender import data as D
from kgrec.recommender.retriever import PersonaRetriever, build_faiss_index, topk
from kgrec.recommender.training import evaluate_scorer, fit


@pytest.mark.parametrize("fusion", ["prefix", "gate", "none"])
def test_retriever_fusions(prepared, fusion, train_loss):
    n = len(prepared.vocab)
    pers = prepared.persona_rows("persona", prepared.windows)
    torch.manual_seed(0)
    r = PersonaRetriever(n, prepared.item_table, persona_dim=pers.shape[1], hidden=16, max_len=12,
                         dropout=0.0, fusion=fusion)
    seqs = torch.as_tensor(prepared.test.seqs[:4])
    p = torch.as_tensor(prepared.persona_rows("persona", prepared.test)[:4])
    s = r.score(seqs, p)
    assert s.shape == (4, n) and torch.isinf(s[:, 0]).all()
    # frozen projection: the base table is a buffer, the residual is trainable
    assert "base" in dict(r.named_buffers()) and "base" not in dict(r.named_parameters())
    losses = train_loss(r, prepared, persona=None if fusion == "none" else pers)
    assert losses[-1] < 0.8 * losses[0]
    if fusion != "none":  # the persona changes the ranking
        r.eval()
        assert not torch.allclose(r.score(seqs, p), r.score(seqs, torch.zeros_like(p)))


def test_persona_helps_on_planted_groups(prepared):
    """Groups walk with step 1 or 2: with only the first item known, the persona tells which."""
    res = {}
    for fusion in ("none", "gate"):
        torch.manual_seed(0)
        r = PersonaRetriever(len(prepared.vocab), prepared.item_table, persona_dim=8, hidden=16, max_len=12,
                             dropout=0.0, fusion=fusion)
        src = "none" if fusion == "none" else "persona"
        fit(r, prepared.windows, prepared.valid, train_persona=prepared.persona_rows(src, prepared.windows),
            valid_persona=prepared.persona_rows(src, prepared.valid), epochs=25, lr=5e-3, seed=0)
        ex = prepared.test
        one = ex.subset(np.arange(len(ex)))
        one.seqs = D.pad_left([s[s != 0][-1:] for s in ex.seqs], 12)  # only the last item
        res[fusion] = evaluate_scorer(r, one, prepared.persona_rows(src, ex))["MRR"]
    print(res)
    assert res["gate"] > res["none"]


def test_topk_backends_agree():
    g = torch.Generator().manual_seed(0)
    table = torch.randn(501, 16, generator=g)
    q = torch.randn(3, 16, generator=g)
    vt, it = topk(q, table, 20, "torch")
    vf, if_ = topk(q, table, 20, "faiss", index=build_faiss_index(table))
    assert torch.equal(it, if_) and torch.allclose(vt, vf, atol=1e-4)
    assert (it > 0).all()
    with pytest.raises(ConfigError):
        topk(q, table, 5, "annoy")


@pytest.mark.parametrize("fusion", ["prefix", "gate", "none"])
def test_empty_prefix_and_trimmed_batches(prepared, fusion):
    """An empty session is answered (by the persona where there is one), and dropping all-padding
    leading columns (what fit() does per batch) changes no score."""
    torch.manual_seed(0)
    r = PersonaRetriever(len(prepared.vocab), prepared.item_table, persona_dim=8, hidden=16, max_len=12,
                         dropout=0.0, fusion=fusion).eval()
    p = torch.as_tensor(prepared.personas.encode(["u0", "u1"], [[], []]))
    empty = torch.zeros(2, 12, dtype=torch.long)
    s = r.score(empty, p)
    assert torch.isfinite(s[:, 1:]).all()
    if fusion != "none":  # two users of different groups: different cold-start rankings
        assert not torch.allclose(s[0], s[1])
    seqs = torch.as_tensor(prepared.test.seqs[prepared.test.prefix_len == 2][:2])
    assert (seqs[:, :-2] == 0).all()
    assert torch.allclose(r.score(seqs, p), r.score(seqs[:, -3:], p), atol=1e-5)
