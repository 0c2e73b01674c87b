import numpy as np
import pandas as pd
import pytest

from kgrec.errors import NotFoundError
from kgrec.recommender import data as D


def _frame(rows):
    return pd.DataFrame(rows, columns=["user", "item", "ts", "order", "rating", "session"])


def test_vocab_padding_and_unknown():
    v = D.ItemVocab(["a", "b", "a", "c"])
    assert v.ids == ["<pad>", "a", "b", "c"] and len(v) == 4
    assert v.encode(["c", "a"]).tolist() == [3, 1]
    with pytest.raises(NotFoundError, match="'zz'"):
        v.encode(["a", "zz"])


def test_eval_examples_predict_every_item_of_heldout_session():
    train = _frame([("u", "a", 1, 0, None, "s0"), ("u", "b", 2, 1, None, "s0")])
    valid = _frame([("u", "c", 3, 2, None, "s1")])
    test = _frame([("u", "d", 5, 3, None, "s2"), ("u", "e", 6, 4, None, "s2"), ("u", "f", 7, 5, None, "s2")])
    v = D.ItemVocab.from_frames(train, valid, test)
    ex = D.eval_examples([train, valid], test, v, max_len=4)
    assert len(ex) == 3
    assert v.decode(ex.targets) == ["d", "e", "f"]
    assert ex.session_pos.tolist() == [0, 1, 2]
    # left padded, history (train + valid) then earlier held-out items, truncated to max_len
    assert ex.seqs[0].tolist() == [0] + v.encode(["a", "b", "c"]).tolist()
    assert ex.seqs[2].tolist() == v.encode(["b", "c", "d", "e"]).tolist()
    # valid: history is train only
    exv = D.eval_examples([train], valid, v, max_len=4)
    assert exv.seqs[0].tolist() == [0, 0] + v.encode(["a", "b"]).tolist()


def test_order_data_one_example_per_user():
    train = _frame([("u1", "a", np.nan, 0, None, "u1"), ("u1", "b", np.nan, 1, None, "u1"),
                    ("u2", "b", np.nan, 0, None, "u2")])
    test = _frame([("u1", "c", np.nan, 2, None, "u1"), ("u2", "a", np.nan, 1, None, "u2")])
    v = D.ItemVocab.from_frames(train, test)
    ex = D.eval_examples([train], test, v, max_len=3)
    assert ex.users == ["u1", "u2"] and v.decode(ex.targets) == ["c", "a"]


def test_training_windows_cover_all_prefixes_once():
    seqs = {"u": np.arange(1, 13), "w": np.array([3, 4]), "x": np.array([5])}
    w = D.training_windows(seqs, max_len=5)
    n_targets = int((w.targets != 0).sum())
    assert n_targets == (12 - 1) + (2 - 1)
    pairs = set()
    for inp, tgt in zip(w.inputs, w.targets, strict=True):
        for t in range(len(tgt)):
            if tgt[t]:
                pairs.add((int(inp[t]), int(tgt[t])))
    assert {(i, i + 1) for i in range(1, 12)} <= pairs and (3, 4) in pairs
    assert len(D.training_prefixes(seqs, 5)) == 12
    assert w.inputs.shape == (len(w), 5)


def test_align_embeddings_and_personas():
    v = D.ItemVocab(["a", "b"])
    emb = np.array([[1.0, 0], [0, 1.0], [5, 5]], np.float32)
    t = D.align_item_embeddings(v, emb, ["b", "a", "zz"])
    assert t.shape == (3, 2) and t[0].tolist() == [0, 0] and t[1].tolist() == [0, 1] and t[2].tolist() == [1, 0]
    p = D.persona_matrix(["x", "y"], {"x": np.ones(3)})
    assert p.tolist() == [[1, 1, 1], [0, 0, 0]]


def test_import_is_light():
    import subprocess
    import sys

    code = ("import sys; import kgrec.recommender.data, kgrec.recommender.metrics, kgrec.recommender.evaluate, "
            "kgrec.recommender.rerank, kgrec.recommender.service, kgrec.recommender.baselines; "
            "print(any(m in sys.modules for m in ('torch', 'faiss', 'matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
