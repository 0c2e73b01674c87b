import numpy as np
import pandas as pd
import pytest

from kgrec.errors import ConfigError, NotFoundError
from kgrec.recommender import data as D


def _frame(rows):
    return pd.DataFrame(rows, columns=["user", "item", "ts", "order", "rating", "session"])


def test_vocab_padding_and_unknown():
    v = D.ItemVocab(["a", "b", "a", "c"])
    assert v.ids == ["<pad>", "a", "b", "c"] and len(v) == 4
    assert v.encode(["c", "a"]).tolist() == [3, 1]
    with pytest.raises(NotFoundError, match="'zz'"):
        v.encode(["a", "zz"])


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
    assert w.inputs.shape == (len(w), 5)
    # with the empty prefix, each sequence's first item is a target of a padding input
    e = D.training_windows([("u", np.array([3, 4])), ("u", np.array([7]))], max_len=3, empty_prefix=True)
    assert e.inputs.tolist() == [[0, 0, 3], [0, 0, 0]] and e.targets.tolist() == [[0, 3, 4], [0, 0, 7]]


@pytest.mark.parametrize("stride", [1, 2, 3, 5])
def test_strided_windows_train_each_target_once_with_context(stride):
    seq = np.arange(1, 13)  # targets 2..12, each predicted from the items before it
    w = D.training_windows({"u": seq}, max_len=5, stride=stride)
    seen: list[int] = []
    for inp, tgt in zip(w.inputs, w.targets, strict=True):
        for t in np.nonzero(tgt)[0]:
            context = inp[:t + 1][inp[:t + 1] != 0]
            # the input up to the target is the items just before it
            assert context.tolist() == list(range(int(tgt[t]) - len(context), int(tgt[t])))
            # at least max_len - stride items of context, or all that precede the target
            assert len(context) >= min(5 - stride + 1, int(tgt[t]) - 1)
            seen.append(int(tgt[t]))
    assert sorted(seen) == list(range(2, 13))
    assert len(w) == -(-11 // stride)
    with pytest.raises(ConfigError, match="stride"):
        D.training_windows({"u": seq}, max_len=5, stride=6)


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
            "kgrec.recommender.fusion, kgrec.recommender.service, kgrec.recommender.baselines, "
            "kgrec.recommender.recipe, kgrec.recommender.protocols, kgrec.recommender.workflow; "
            "print(any(m in sys.modules for m in ('torch', 'faiss', 'matplotlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_production_training_does_not_import_the_evaluation_harness():
    import subprocess
    import sys

    code = ("import sys, kgrec.recommender.workflow, kgrec.recommender.recipe, kgrec.recommender.service; "
            "print('kgrec.recommender.evaluate' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    import inspect

    from kgrec.recommender import recipe, workflow

    for src in (inspect.getsource(recipe), inspect.getsource(workflow.train)):
        assert "from kgrec.recommender.evaluate" not in src and "import evaluate" not in src
