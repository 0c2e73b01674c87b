import torch

from kgrec.recommender.baselines import LLMSeqSim, Popularity


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
