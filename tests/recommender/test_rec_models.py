import numpy as np
import pytest
import torch

from kgrec.errors import ConfigError
from kgrec.recommender import data as D
from kgrec.recommender.baselines import LLMSeqSim, Popularity
from kgrec.recommender.retriever import PersonaRetriever, build_faiss_index, topk
from kgrec.recommender.sasrec import SASRec, gbce_beta
from kgrec.recommender.training import evaluate_scorer, fit


@pytest.fixture(scope="module")
def prepared(tiny):
    from kgrec.recommender.recipe import prepare

    split, emb, personas = tiny
    return prepare(split, emb, personas, max_len=12)


def _train_loss(model, prep, steps=30, persona=None, seed=0):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.as_tensor(prep.windows.inputs)
    y = torch.as_tensor(prep.windows.targets)
    kw = {} if persona is None else {"persona": torch.as_tensor(persona)}
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        loss = model.training_loss(x, y, generator=g, **kw)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


@pytest.mark.parametrize("loss_type", ["ce", "gbce"])
def test_sasrec_shapes_and_loss_falls(prepared, loss_type):
    n = len(prepared.vocab)
    torch.manual_seed(0)
    m = SASRec(n, hidden=16, num_blocks=1, max_len=12, dropout=0.0, item_init=prepared.item_table,
               loss_type=loss_type, num_negatives=8)
    seqs = torch.as_tensor(prepared.test.seqs[:5])
    assert m(seqs).shape == (5, 12, n)
    s = m.score(seqs)
    assert s.shape == (5, n) and torch.isinf(s[:, 0]).all()
    cand = torch.tensor([[1, 2, 3]] * 5)
    sc = m.score_candidates(seqs, cand)
    assert sc.shape == (5, 3)
    m.eval()
    assert torch.allclose(m.score_candidates(seqs, cand), m.score(seqs).gather(1, cand), atol=1e-5)
    m.train()
    losses = _train_loss(m, prepared)
    assert losses[-1] < 0.8 * losses[0]


def test_sasrec_loss_alone():
    m = SASRec(5, hidden=8, num_blocks=1, max_len=4)
    logits = torch.tensor([[0.0, 2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    # padding column is excluded from the softmax: 4 real items
    expect = -torch.log_softmax(torch.tensor([2.0, 0, 0, 0]), 0)[0]
    assert float(m.loss(logits[:1], torch.tensor([1]))) == pytest.approx(float(expect), rel=1e-5)
    # padding target ignored
    assert float(m.loss(logits, torch.tensor([1, 0]))) == pytest.approx(float(expect), rel=1e-5)
    g = SASRec(5, hidden=8, num_blocks=1, max_len=4, loss_type="gbce", num_negatives=2)
    beta = gbce_beta(2, 5, 0.75)
    lg = torch.tensor([[1.0, -1.0, 0.5]])
    want = -(beta * torch.nn.functional.logsigmoid(torch.tensor(1.0))
             + torch.nn.functional.logsigmoid(torch.tensor(1.0)) + torch.nn.functional.logsigmoid(torch.tensor(-0.5)))
    assert float(g.loss(lg, torch.tensor([3]))) == pytest.approx(float(want), rel=1e-5)
    assert gbce_beta(4, 5, 0.0) == pytest.approx(1.0)  # t = 0: plain BCE
    with pytest.raises(ConfigError):
        SASRec(5, loss_type="bpr")


def test_sasrec_fixed_seed_reproduces(prepared):
    def run():
        torch.manual_seed(1)
        m = SASRec(len(prepared.vocab), hidden=16, num_blocks=1, max_len=12, item_init=prepared.item_table)
        res = fit(m, prepared.windows, prepared.valid, epochs=2, seed=3)
        return res.history, m.score(torch.as_tensor(prepared.test.seqs[:3]))

    (h1, s1), (h2, s2) = run(), run()
    assert h1 == h2 and torch.equal(s1, s2)


@pytest.mark.parametrize("fusion", ["prefix", "gate", "none"])
def test_retriever_fusions(prepared, fusion):
    n = len(prepared.vocab)
    pers = prepared.persona_rows("persona", prepared.windows.users)
    torch.manual_seed(0)
    r = PersonaRetriever(n, prepared.item_table, persona_dim=pers.shape[1], hidden=16, max_len=12,
                         dropout=0.0, fusion=fusion)
    seqs = torch.as_tensor(prepared.test.seqs[:4])
    p = torch.as_tensor(prepared.persona_rows("persona", prepared.test.users[:4]))
    s = r.score(seqs, p)
    assert s.shape == (4, n) and torch.isinf(s[:, 0]).all()
    # frozen projection: the base table is a buffer, the residual is trainable
    assert "base" in dict(r.named_buffers()) and "base" not in dict(r.named_parameters())
    losses = _train_loss(r, prepared, persona=None if fusion == "none" else pers)
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
        fit(r, prepared.windows, prepared.valid, train_persona=prepared.persona_rows(src, prepared.windows.users),
            valid_persona=prepared.persona_rows(src, prepared.valid.users), epochs=25, lr=5e-3, seed=0)
        ex = prepared.test
        one = ex.subset(np.arange(len(ex)))
        one.seqs = D.pad_left([s[s != 0][-1:] for s in ex.seqs], 12)  # only the last item
        res[fusion] = evaluate_scorer(r, one, prepared.persona_rows(src, ex.users))["MRR"]
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


def test_baselines(prepared):
    n = len(prepared.vocab)
    seqs = torch.as_tensor(prepared.test.seqs[prepared.test.prefix_len > 0][:3])
    pop = Popularity(prepared.counts).score(seqs)
    assert pop.shape == (3, n) and torch.isinf(pop[:, 0]).all()
    sim = LLMSeqSim(prepared.item_table, "last")
    s = sim.score(seqs)
    # the last item is most similar to itself
    assert (s.argmax(1) == seqs[:, -1]).all()
    assert LLMSeqSim(prepared.item_table, "mean", 5).score(seqs).shape == (3, n)
