"""The shared training losses and the length-bucketed batches of the training loop."""

import pytest
import torch
import torch.nn.functional as F

from kgrec.recommender.losses import sampled_softmax, uniform_negatives
from kgrec.recommender.retriever import PersonaRetriever
from kgrec.recommender.training import epoch_batches


def test_sampled_softmax_with_every_item_as_negative_is_the_full_softmax():
    torch.manual_seed(0)
    table = torch.randn(7, 4)
    q, t = torch.randn(5, 4), torch.tensor([1, 3, 6, 2, 3])
    full = (q @ table.T)
    full[:, 0] = -torch.inf  # padding
    every = torch.arange(1, 7)  # the target is among them and masked as an accidental hit
    assert float(sampled_softmax(q, table, t, every)) == pytest.approx(float(F.cross_entropy(full, t)), rel=1e-5)


def test_sampled_softmax_masks_accidental_hits_and_has_gradients():
    table = torch.zeros(4, 2, requires_grad=True)
    q = torch.ones(1, 2, requires_grad=True)
    # the only negative is the target itself: nothing to contrast, loss 0
    assert float(sampled_softmax(q, table, torch.tensor([2]), torch.tensor([2]))) == pytest.approx(0.0)
    loss = sampled_softmax(q, table, torch.tensor([2]), torch.tensor([1, 3]))
    assert float(loss) == pytest.approx(float(torch.log(torch.tensor(3.0))))
    loss.backward()
    assert table.grad[2].abs().sum() > 0 and table.grad[0].abs().sum() == 0


def test_uniform_negatives_never_draw_padding():
    neg = uniform_negatives(5, 1000, "cpu", torch.Generator().manual_seed(0))
    assert neg.min() >= 1 and neg.max() <= 4 and len(neg.unique()) == 4


def test_retriever_sampled_loss_falls_and_round_trips_config(prepared, train_loss):
    n = len(prepared.vocab)
    torch.manual_seed(0)
    m = PersonaRetriever(n, prepared.item_table, hidden=16, max_len=12, dropout=0.0, fusion="none",
                         loss_type="sampled", num_negatives=8)
    losses = train_loss(m, prepared)
    assert losses[-1] < 0.8 * losses[0]
    cfg = m.config()
    assert cfg["loss_type"] == "sampled" and cfg["num_negatives"] == 8


def test_epoch_batches_cover_every_window_once_and_bucketing_cuts_padding():
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 51, (1000,), generator=g)
    plain = epoch_batches(lengths, 32, torch.Generator().manual_seed(1))
    # no bucketing: the old loop (one permutation, cut in order)
    assert torch.equal(torch.cat(plain), torch.randperm(1000, generator=torch.Generator().manual_seed(1)))
    bucketed = epoch_batches(lengths, 32, torch.Generator().manual_seed(1), bucket_batches=10)
    assert sorted(torch.cat(bucketed).tolist()) == list(range(1000))
    width = lambda bs: sum(int(lengths[b].max()) * len(b) for b in bs)
    assert width(bucketed) < 0.7 * width(plain)


def test_popularity_proposal_draws_by_count_and_needs_the_counts():
    from kgrec.errors import ConfigError
    from kgrec.recommender.losses import SampledSoftmax

    s = SampledSoftmax(5, 4000, "popularity", alpha=1.0)
    q, table, t = torch.ones(2, 3), torch.randn(5, 3), torch.tensor([1, 2])
    with pytest.raises(ConfigError, match="set_item_counts"):
        s(q, table, t)
    s.set_item_counts([0, 99, 0, 0, 9])  # (count + 1) ** alpha: 100, 1, 1, 10; padding never
    assert s.probs[0] == 0 and s.probs[1] == pytest.approx(100 / 112)
    drawn = torch.multinomial(s.probs, 4000, replacement=True, generator=torch.Generator().manual_seed(0))
    assert drawn.min() >= 1 and (drawn == 1).float().mean() > 0.8
    assert torch.isfinite(s(q, table, t, torch.Generator().manual_seed(0)))
    # a popular negative's logit is lowered by log Q: its contribution shrinks relative to uniform
    assert "probs" not in s.state_dict()  # counts are data, not weights
    with pytest.raises(ConfigError):
        SampledSoftmax(5, 4, "zipf")


def test_log_q_correction_with_a_uniform_proposal_changes_nothing():
    torch.manual_seed(0)
    table, q, t = torch.randn(6, 4), torch.randn(3, 4), torch.tensor([1, 2, 5])
    neg = torch.tensor([1, 3, 4, 4])
    flat = torch.full((6,), -float(torch.log(torch.tensor(5.0))))
    assert float(sampled_softmax(q, table, t, neg, flat)) == pytest.approx(float(sampled_softmax(q, table, t, neg)))
