"""What each protocol lets a model see, asserted on tiny frames."""

import numpy as np
import pandas as pd
import pytest
import torch

from kgrec.errors import ConfigError
from kgrec.recommender import data as D
from kgrec.recommender import protocols as P
from kgrec.recommender.metrics import RankingAccumulator
from kgrec.recommender.recipe import prepare


def _frame(rows):
    return pd.DataFrame(rows, columns=["user", "item", "ts", "order", "rating", "session"])


@pytest.fixture
def split():
    # user u: train sessions [a b] [c], valid [d e], test [f g h]; user w: train [b c], valid [a], test [d e]
    train = _frame([("u", "a", 1, 0, None, "u#0"), ("u", "b", 2, 1, None, "u#0"), ("u", "c", 10, 2, None, "u#1"),
                    ("w", "b", 1, 0, None, "w#0"), ("w", "c", 2, 1, None, "w#0")])
    valid = _frame([("u", "d", 20, 3, None, "u#2"), ("u", "e", 21, 4, None, "u#2"),
                    ("w", "a", 20, 2, None, "w#1")])
    test = _frame([("u", "f", 30, 5, None, "u#3"), ("u", "g", 31, 6, None, "u#3"), ("u", "h", 32, 7, None, "u#3"),
                   ("w", "d", 30, 3, None, "w#2"), ("w", "e", 31, 4, None, "w#2")])
    vocab = D.ItemVocab.from_frames(train, valid, test)
    return train, valid, test, vocab


def _items(vocab, row):
    return vocab.decode([i for i in row if i])


def test_session_inputs_are_the_session_prefix_only(split):
    train, valid, test, v = split
    ex = P.session_examples(train, valid, test, v, max_len=4).test
    assert ex.users == ["u", "u", "u", "w", "w"]
    assert v.decode(ex.targets) == ["f", "g", "h", "d", "e"]
    assert ex.prefix_len.tolist() == [0, 1, 2, 0, 1]
    # the model sees nothing of the past, only the earlier items of the same held-out session
    assert [_items(v, r) for r in ex.seqs] == [[], ["f"], ["f", "g"], [], ["d"]]
    # what --exclude-seen removes: the user's train + valid items and the prefix
    assert v.decode(ex.seen(2)) == ["a", "b", "c", "d", "e", "f", "g"]
    va = P.session_examples(train, valid, test, v, max_len=4).valid
    assert [_items(v, r) for r in va.seqs] == [[], ["d"], []] and v.decode(va.seen(1)) == ["a", "b", "c", "d"]


def test_session_training_windows_are_prefixes_inside_training_sessions(split):
    train, valid, test, v = split
    w = P.session_examples(train, valid, test, v, max_len=4).windows
    pairs = set()
    for user, inp, tgt in zip(w.users, w.inputs, w.targets, strict=True):
        for t in np.flatnonzero(tgt):
            pairs.add((user, tuple(_items(v, inp[:t + 1])), v.ids[tgt[t]]))
    # every prefix of every training session, the empty one included, and nothing across sessions
    assert pairs == {("u", (), "a"), ("u", ("a",), "b"), ("u", (), "c"), ("w", (), "b"), ("w", ("b",), "c")}
    held = set(valid["item"]) | set(test["item"])
    assert not ({v.ids[i] for i in w.inputs.ravel() if i} & held - set(train["item"]))


def test_loo_is_leave_last_out_over_the_full_history(split):
    train, valid, test, v = split
    data = P.loo_examples(train, valid, test, v, max_len=4)
    assert v.decode(data.test.targets) == ["h", "e"] and v.decode(data.valid.targets) == ["g", "d"]
    assert _items(v, data.test.seqs[0]) == ["d", "e", "f", "g"]  # the last max_len items before the target
    assert v.decode(data.test.seen(0)) == ["a", "b", "c", "d", "e", "f", "g"]
    assert _items(v, data.valid.seqs[1]) == ["b", "c", "a"]
    targets = {(u, v.ids[t]) for u, row in zip(data.windows.users, data.windows.targets, strict=True)
               for t in row if t}
    # no validation or test target (nor anything after it) is a training target
    assert ("u", "g") not in targets and ("u", "h") not in targets and ("w", "d") not in targets
    assert ("u", "f") in targets  # earlier items of the held-out session are the past under loo
    only_u = P.loo_examples(train, valid, test, v, max_len=4, eval_users=["u"])
    assert only_u.test.users == ["u"] and ("w", "e") in {
        (u, v.ids[t]) for u, row in zip(only_u.windows.users, only_u.windows.targets, strict=True) for t in row if t}


def test_no_heldout_interaction_reaches_the_graph_side(split):
    """The graph and the personas are built from ``train`` only. Under both protocols no evaluated
    target is a training interaction, also for a user whom the split kept wholly in train (x: under
    loo their last item is in the graph, so they are not evaluated)."""
    train, valid, test, _ = split
    train = pd.concat([train, _frame([("x", i, 40 + k, k, None, "x#0") for k, i in enumerate("abcde")])])
    frames = {"train": train, "valid": valid, "test": test}
    emb = np.eye(8, dtype=np.float32)
    personas = {u: np.ones(3, np.float32) for u in ("u", "w", "x")}
    graph = set(zip(train["user"], train["item"], strict=True))
    for protocol in P.PROTOCOLS:
        prep = prepare(frames, emb, personas, protocol=protocol, max_len=8, item_ids=list("abcdefgh"))
        for ex in (prep.valid, prep.test):
            pairs = {(u, prep.vocab.ids[t]) for u, t in zip(ex.users, ex.targets, strict=True)}
            assert pairs and not pairs & graph, protocol
            assert "x" not in ex.users


def test_unknown_protocol_lists_the_choices():
    with pytest.raises(ConfigError, match="session, loo"):
        P.check_protocol("nonsense")


def test_prefix_length_breakdown():
    pl = np.array([0, 0, 1, 2, 4, 5, 9])
    assert P.prefix_bucket(pl).tolist() == ["0", "0", "1", "2-4", "2-4", "5+", "5+"]
    acc = RankingAccumulator(5)
    acc.add_ranks(np.array([1, 20, 3, 200, 1, 11, 2]), np.ones(7, int), np.ones((7, 1), int), pl)
    bd = acc.breakdown()
    assert [bd[k]["n"] for k in ("0", "1", "2-4", "5+")] == [2, 1, 2, 2]
    assert bd["0"]["HR@10"] == 0.5 and bd["1"]["HR@10"] == 1.0 and bd["2-4"]["HR@100"] == 0.5
    assert bd["5+"]["NDCG@10"] == pytest.approx((0 + 1 / np.log2(3)) / 2)


def test_exclude_seen_removes_known_items_from_the_ranking(split):
    train, valid, test, v = split
    ex = P.session_examples(train, valid, test, v, max_len=4).test
    # a scorer that loves the user's past items: a, b, c score above everything else
    scores = torch.zeros(len(ex), len(v))
    for name, s in (("a", 9.0), ("b", 8.0), ("c", 7.0), ("d", 6.0)):
        scores[:, v.index[name]] = s
    targets = torch.as_tensor(ex.targets)
    kept = RankingAccumulator(len(v)).update(scores, targets, None, ex.prefix_len)
    dropped = RankingAccumulator(len(v)).update(scores, targets, ex.seen_matrix(slice(0, len(ex))), ex.prefix_len)
    assert (dropped < kept).all()
    # u's test target f at prefix 0: a b c d e are known, so f ties with g and h (ties count against it)
    assert int(dropped[0]) == 3 and int(kept[0]) == len(v) - 1


@pytest.mark.parametrize("protocol", ["session", "loo"])
def test_no_target_is_in_the_past_its_persona_is_built_from(tiny, protocol):
    """No training target is in the past row its persona and history vector are built from, and a
    held-out target's past is exactly what its user had before it; under ``session`` a training session's past is the user's
    earlier sessions only, the validation past is train, the test past train + valid."""
    from kgrec.recommender.recipe import prepare

    split, emb, personas = tiny
    prep = prepare(split, emb, personas, max_len=12, protocol=protocol)
    w, hist = prep.windows, prep.histories
    assert w.context is not None and len(w.context) == len(w)
    for i in range(len(w)):
        past = set(hist.items(int(w.context[i])).tolist())
        targets = set(w.targets[i][w.targets[i] != 0].tolist())
        assert hist.users[int(w.context[i])] == w.users[i]
        assert not past & targets, (w.users[i], past & targets)
    for ex in (prep.valid, prep.test):  # a held-out past is exactly what came before the target
        for i in range(len(ex)):
            row = int(ex.context[i])
            prefix = ex.seqs[i][ex.seqs[i] != 0] if protocol == "session" else np.zeros(0, np.int64)
            assert hist.users[row] == ex.users[i]
            assert np.array_equal(np.concatenate([hist.items(row), prefix]), ex.seen(i))
    # the vectors really are functions of the past row: the history-user vector is its mean
    hv = prep.persona_rows("history_user", w)
    i = int(np.flatnonzero(np.array([len(hist.items(int(c))) for c in w.context]) > 0)[0])
    items = np.unique(hist.items(int(w.context[i])))
    assert np.allclose(hv[i], prep.item_table[items].mean(0), atol=1e-6)
    if protocol == "session":
        vocab = prep.vocab
        train = split["train"].sort_values(["user", "ts"])
        for i in range(len(w)):
            u = w.users[i]
            mine = train[train["user"] == u]
            first_target = int(w.targets[i][w.targets[i] != 0][0])
            sess = mine[mine["item"] == vocab.ids[first_target]]["session"].iloc[0]
            earlier = mine[mine["ts"] < mine[mine["session"] == sess]["ts"].min()]
            assert sorted(hist.items(int(w.context[i])).tolist()) == sorted(vocab.encode(earlier["item"]).tolist())
        first = [int(c) for c in w.context if not len(hist.items(int(c)))]
        assert first  # first sessions have an empty past: the learned no-persona state
        v_rows = {int(c) for c in prep.valid.context}
        for r in v_rows:
            u = hist.users[r]
            assert sorted(hist.items(r).tolist()) == sorted(vocab.encode(split["train"][split["train"]["user"] == u]
                                                                         ["item"]).tolist())
        for r in {int(c) for c in prep.test.context}:
            u = hist.users[r]
            both = [split[n][split[n]["user"] == u]["item"] for n in ("train", "valid")]
            assert sorted(hist.items(r).tolist()) == sorted(vocab.encode(list(both[0]) + list(both[1])).tolist())
