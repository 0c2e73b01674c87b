"""The recipe's early-stopping sample of validation."""

import dataclasses

import numpy as np

from kgrec.recommender.recipe import prepare


def test_early_stopping_scores_a_fixed_sample_of_validation_with_its_pasts(tiny):
    split, emb, personas = tiny
    full = prepare(split, emb, personas, max_len=12)
    assert full.stop is full.valid  # small validation: all of it
    capped = dataclasses.replace(prepare(split, emb, personas, max_len=12), early_stop_examples=40)
    stop = capped.stop
    assert len(stop) == 40 < len(capped.valid) and capped.stop is stop  # computed once
    # a subset of validation rows, each with its own target, input, seen items and past row
    rows = {(u, t, tuple(s), c) for u, t, s, c in zip(capped.valid.users, capped.valid.targets,
                                                      map(tuple, capped.valid.seqs), capped.valid.context)}
    assert {(u, t, tuple(s), c) for u, t, s, c in zip(stop.users, stop.targets, map(tuple, stop.seqs),
                                                      stop.context)} <= rows
    again = dataclasses.replace(prepare(split, emb, personas, max_len=12), early_stop_examples=40).stop
    assert np.array_equal(again.targets, stop.targets) and np.array_equal(again.context, stop.context)
    assert np.array_equal(capped.persona_rows("persona", stop), capped.persona_table("persona")[stop.context])
