"""benchmarks/recbole_compare.py: the loo split and its RecBole export are exactly our examples.

(RecBole itself is not installed here; the benchmark runs it in its own venv.)
"""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kgrec.recommender import data as D
from kgrec.recommender.protocols import loo_examples

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"


@pytest.fixture(scope="module")
def rc():
    spec = importlib.util.spec_from_file_location("recbole_compare", ROOT / "benchmarks" / "recbole_compare.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def test_loo_split_holds_out_last_and_second_to_last_in_time(rc):
    frames, stats = rc.loo_split("movielens", FIXTURES / "ml-mini", k_core=2, users=None, seed=0)
    raw = pd.read_csv(FIXTURES / "ml-mini" / "ratings.csv")
    assert stats["ordering"] == "order" and len(frames["test"]) == frames["test"]["user"].nunique() > 0
    for u, g in frames["test"].groupby("user"):
        mine = pd.concat([frames[k][frames[k]["user"] == u] for k in ("train", "valid", "test")])
        assert g["ts"].iloc[0] == mine["ts"].max()  # test = the latest interaction
        v = frames["valid"][frames["valid"]["user"] == u]
        assert len(v) == 1 and v["ts"].iloc[0] >= frames["train"][frames["train"]["user"] == u]["ts"].max()
    assert set(frames["test"]["user"].astype(int)) <= set(raw["userId"])


def test_export_rows_are_our_examples(rc, tmp_path):
    frames, _ = rc.loo_split("movielens", FIXTURES / "ml-mini", k_core=2, users=None, seed=0)
    counts = rc.export_atomic(frames, tmp_path, max_len=5)
    vocab = D.ItemVocab.from_frames(frames["train"], frames["valid"], frames["test"], items=frames["items"])
    test = loo_examples(frames["train"], frames["valid"], frames["test"], vocab, 5).test
    rows = _read(tmp_path / "kgrec.test.inter")
    assert list(rows.columns) == ["user_id:token", "item_id_list:token_seq", "item_id:token"]
    assert counts["test"] == len(test) == len(rows) and counts["catalogue"] == len(vocab) - 1
    for (u, hist, target), users, seq, t in zip(rows.itertuples(index=False), test.users, test.seqs, test.targets,
                                                strict=True):
        assert u == users and target == vocab.ids[t]
        assert hist.split() == vocab.decode(seq[seq != 0])  # full history, cut to max_len
        # the validation item is the last input of the test row
        assert hist.split()[-1] in set(frames["valid"][frames["valid"]["user"] == u]["item"].astype(str))
    train = _read(tmp_path / "kgrec.train.inter")
    seqs = D.user_sequences(frames["train"], vocab)
    assert len(train) == sum(len(s) - 1 for s in seqs.values())  # every prefix once, as RecBole augments
    assert set(train["item_id:token"]) <= set(frames["train"]["item"].astype(str))
    items = _read(tmp_path / "kgrec.item")["item_id:token"]
    assert items.tolist() == vocab.ids[1:]


def test_subsample_keeps_the_catalogue(rc):
    frames, _ = rc.loo_split("recbole", FIXTURES / "recbole-games", k_core=1, users=3, seed=0)
    full, _ = rc.loo_split("recbole", FIXTURES / "recbole-games", k_core=1, users=None, seed=0)
    assert frames["test"]["user"].nunique() == 3
    assert len(frames["items"]) == len(full["items"])
    assert np.isin(frames["train"]["user"].unique(), frames["test"]["user"].unique()).all()


def test_budget_stops_before_an_epoch_that_would_end_late(rc):
    import time

    assert not rc.Budget(None)(1e9)
    b = rc.Budget(time.time() + 100)
    assert not b(10) and b(200)
    assert rc.parse_deadline(None) is None
    assert abs(rc.parse_deadline("00:00") % 86400) < 1
