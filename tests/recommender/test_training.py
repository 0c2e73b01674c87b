"""SASRec through the shared training loop (the SASRec-vs-RecBole tests live in test_sasrec.py)."""

import pytest
import torch

from kgrec.errors import ConfigError
from kgrec.recommender.sasrec import SASRec, gbce_beta
from kgrec.recommender.training import fit


@pytest.mark.parametrize("loss_type", ["ce", "sampled", "gbce"])
def test_sasrec_shapes_and_loss_falls(prepared, loss_type, train_loss):
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
    losses = train_loss(m, prepared)
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


def test_persona_residual_starts_as_plain_sasrec_and_round_trips(prepared, train_loss, tmp_path):
    from kgrec.recommender.fusion import Plan
    from kgrec.recommender.protocols import PREFIX_BUCKETS
    from kgrec.recommender.sasrec import PersonaSASRec
    from kgrec.recommender.service import Recommender, _build

    n = len(prepared.vocab)
    torch.manual_seed(0)
    base = SASRec(n, hidden=16, num_blocks=1, max_len=12, dropout=0.0, item_init=prepared.item_table,
                  loss_type="sampled", num_negatives=8).eval()
    pers = torch.as_tensor(prepared.persona_rows("persona", prepared.test)[:6])
    seqs = torch.as_tensor(prepared.test.seqs[:6])
    m = PersonaSASRec(base, pers.shape[1], persona_dropout=0.5).eval()
    # zero-initialised: exactly SASRec, with or without a persona
    assert torch.equal(m.score(seqs, pers), base.score(seqs)) and torch.equal(m.score(seqs), base.score(seqs))
    train_loss(m.train(), prepared, persona=prepared.persona_rows("persona", prepared.windows))
    m.eval()
    assert not torch.allclose(m.score(seqs, pers), m.score(seqs, torch.zeros_like(pers)))
    # an all-zero persona row (no past) adds nothing: that row scores like the wrapped SASRec
    assert torch.allclose(m.score(seqs, torch.zeros_like(pers)), m.sasrec.score(seqs))
    # saved as the kernel's persona part and loaded back
    back = _build("persona", m.config())
    back.load_state_dict(m.state_dict())
    assert torch.equal(back.eval().score(seqs, pers), m.score(seqs, pers))
    rec = Recommender(prepared.vocab, {"sasrec": base, "session": base, "persona": m}, Plan(5, PREFIX_BUCKETS, {}))
    assert rec.persona_dim == pers.shape[1]
    with pytest.raises(ConfigError):
        PersonaSASRec(base, 4, persona_dropout=1.0)


def test_score_initial_keeps_the_starting_state_when_training_cannot_beat_it(prepared):
    torch.manual_seed(0)
    m = SASRec(len(prepared.vocab), hidden=16, num_blocks=1, max_len=12, item_init=prepared.item_table)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    res = fit(m, prepared.windows, prepared.valid, epochs=2, lr=1e-12, seed=0, score_initial=True)
    assert res.history[0]["epoch"] == -1 and res.best_epoch in (-1, 0, 1)
    if res.best_epoch == -1:
        assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert res.best_valid_ndcg >= res.history[0]["valid_NDCG@10"]
