"""Preprocessing: dedupe, iterative k-core, sessions, splits, save/load."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kgrec.errors import ConfigError, DataError
from kgrec.kg.loaders import load_dataset
from kgrec.kg.loaders._io import interactions_frame, items_frame
from kgrec.kg.preprocess import SPLIT_COLUMNS, Split, k_core_mask, preprocess, sessionise
from kgrec.kg.tables import Dataset, Ordering

FIX = Path(__file__).resolve().parents[1] / "fixtures"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
DAY = 86400.0


def make_ds(rows: list[tuple], ordering: Ordering = Ordering.TIMESTAMP, ratings: bool = False) -> Dataset:
    """rows: (user, item, ts[, rating]) in file order."""
    users = [r[0] for r in rows]
    items = [r[1] for r in rows]
    ts = [r[2] for r in rows]
    rt = [r[3] for r in rows] if ratings else None
    inter = interactions_frame(users, items, ts=ts, ratings=rt)
    catalogue = items_frame({"item": i, "title": f"T{i}"} for i in sorted(set(items)))
    return Dataset(inter, catalogue, ordering, name="hand")


def check_split_invariants(sp: Split) -> None:
    for part in (sp.train, sp.valid, sp.test):
        assert tuple(part.columns) == SPLIT_COLUMNS
        assert part["order"].dtype == np.int64 and part["ts"].dtype == np.float64
    keys = [set(zip(p["user"], p["item"])) for p in (sp.train, sp.valid, sp.test)]
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2]), "no pair in two splits"
    if sp.ordering is Ordering.TIMESTAMP:
        tr_max = sp.train.groupby("user")["ts"].max()
        for held in (sp.valid, sp.test):
            hmin = held.groupby("user")["ts"].min()
            assert (hmin > tr_max.reindex(hmin.index)).all(), "held-out strictly later than train"
        vmax = sp.valid.groupby("user")["ts"].max()
        tmin = sp.test.groupby("user")["ts"].min()
        assert (tmin > vmax.reindex(tmin.index)).all()
        # test is the user's last session, valid the one before
        for held, back in ((sp.test, 1), (sp.valid, 2)):
            allp = pd.concat([sp.train, sp.valid, sp.test])
            n_sess = allp.groupby("user")["session"].nunique()
            idx = held["session"].str.rsplit("#", n=1).str[1].astype(int)
            assert (idx.to_numpy() == n_sess.reindex(held["user"]).to_numpy() - back).all()
    assert set(sp.valid["user"]) == set(sp.test["user"])
    present = set(pd.concat([sp.train, sp.valid, sp.test])["item"])
    assert set(sp.items["item"]) == present


# --------------------------------------------------------------------------- building blocks


def test_k_core_is_iterative():
    # k=2. D has one interaction → D goes; then item z has only C → z goes; then C has only y → C goes.
    rows = [("A", "x", 1), ("A", "y", 2), ("B", "x", 3), ("B", "y", 4), ("C", "y", 5), ("C", "z", 6), ("D", "z", 7)]
    ds = make_ds(rows, Ordering.NONE)
    sp = preprocess(ds, k_core=2)
    assert sorted(zip(sp.train["user"], sp.train["item"])) == [("A", "x"), ("A", "y"), ("B", "x"), ("B", "y")]
    assert sp.stats["kcore_dropped"] == 3 and sp.stats["kcore_passes"] >= 3
    assert set(sp.items["item"]) == {"x", "y"} and sp.items["title"].tolist() == ["Tx", "Ty"]
    # a single pass would have kept C–y and C–z
    u = np.array([0, 0, 1, 1, 2, 2, 3])
    i = np.array([0, 1, 0, 1, 1, 2, 2])
    mask, passes = k_core_mask(u, i, 2)
    assert mask.tolist() == [True, True, True, True, False, False, False] and passes >= 3
    assert k_core_mask(u, i, 1)[0].all()  # k <= 1 disables
    assert len(preprocess(ds, k_core=1).train) == 7


def test_duplicates_keep_the_earliest():
    rows = [("A", "x", 50, 1.0), ("A", "y", 10, 2.0), ("A", "x", 20, 3.0), ("A", "z", 30, 4.0)]
    sp = preprocess(make_ds(rows, Ordering.NONE, ratings=True), k_core=1)
    t = sp.train
    assert t["item"].tolist() == ["y", "x", "z"]  # sorted by ts
    assert t.loc[t["item"] == "x", ["ts", "rating"]].values.tolist() == [[20.0, 3.0]]
    assert t["order"].tolist() == [0, 1, 2]
    assert sp.stats["duplicates_dropped"] == 1


def test_sessionise_by_gap():
    users = np.array([0, 0, 0, 0, 0, 0, 1, 1])
    ts = np.array([0, 100, 200, 10_000, 10_100, 50_000, 5, 99_999], dtype=float)
    assert sessionise(users, ts, 3600).tolist() == [0, 0, 0, 1, 1, 2, 0, 1]
    assert sessionise(users, ts, None).tolist() == [0] * 6 + [0, 0]
    assert sessionise(users, ts, 1e9).tolist() == [0] * 8
    # a gap exactly equal to the threshold does not start a session
    assert sessionise(np.array([0, 0]), np.array([0.0, 3600.0]), 3600).tolist() == [0, 0]


# --------------------------------------------------------------------------- splits


def test_timestamp_split_holds_out_last_sessions():
    h = 3600
    rows = [
        # U1: 4 sessions (gap 1 day) → s0,s1 train, s2 valid, s3 test
        ("U1", "a", 0), ("U1", "b", 60), ("U1", "c", 2 * DAY), ("U1", "d", 2 * DAY + h),
        ("U1", "e", 5 * DAY), ("U1", "f", 5 * DAY + 10), ("U1", "g", 9 * DAY),
        # U2: 2 sessions → everything stays in train
        ("U2", "a", 0), ("U2", "b", 3 * DAY),
        # U3: 3 sessions given out of file order: ts decides
        ("U3", "c", 10 * DAY), ("U3", "a", 0), ("U3", "b", 4 * DAY),
    ]
    sp = preprocess(make_ds(rows), k_core=1, session_gap_s=DAY)
    check_split_invariants(sp)
    by = lambda df, u: df.loc[df["user"] == u, "item"].tolist()
    assert by(sp.train, "U1") == ["a", "b", "c", "d"]
    assert by(sp.valid, "U1") == ["e", "f"] and by(sp.test, "U1") == ["g"]
    assert by(sp.train, "U2") == ["a", "b"] and by(sp.test, "U2") == []
    assert by(sp.train, "U3") == ["a"] and by(sp.valid, "U3") == ["b"] and by(sp.test, "U3") == ["c"]
    assert sp.test.loc[sp.test["user"] == "U1", "session"].tolist() == ["U1#3"]
    assert sp.valid.loc[sp.valid["user"] == "U1", "session"].unique().tolist() == ["U1#2"]
    assert sp.train.loc[sp.train["user"] == "U1", "order"].tolist() == [0, 1, 2, 3]
    assert sp.test.loc[sp.test["user"] == "U1", "order"].tolist() == [6]
    assert sp.stats["users_all_train"] == 1 and sp.stats["users_held_out"] == 2
    assert sp.stats["sessions"] == 4 + 2 + 3
    # items only in valid/test stay in the catalogue and are reported as cold
    assert {"e", "f", "g"} <= set(sp.items["item"])
    assert sp.stats["cold_test"] == 1  # g (c is in U1's train)
    assert sp.stats["cold_valid"] == 2  # e, f (b is in train)


def test_min_session_len_drops_short_sessions():
    rows = [("U", "a", 0), ("U", "b", 10), ("U", "c", 2 * DAY), ("U", "d", 4 * DAY), ("U", "e", 4 * DAY + 5)]
    sp = preprocess(make_ds(rows), k_core=1, session_gap_s=DAY, min_session_len=2)
    assert sp.stats["short_sessions_dropped"] == 1
    assert "c" not in set(pd.concat([sp.train, sp.valid, sp.test])["item"])
    assert sp.train["item"].tolist() == ["a", "b", "d", "e"]  # now only 2 sessions → all train


def test_random_timestamp_split_invariants():
    rng = np.random.default_rng(7)
    n = 4000
    users = rng.integers(0, 60, n).astype(str)
    items = rng.integers(0, 150, n).astype(str)
    ts = rng.integers(0, 200 * 86400, n).astype(float)
    ts[::50] = ts[1::50]  # some equal timestamps
    ds = make_ds(list(zip(users, items, ts)))
    sp = preprocess(ds, k_core=3, session_gap_s=2 * DAY)
    check_split_invariants(sp)
    assert len(sp.test) > 0 and len(sp.valid) > 0
    ucount = pd.concat([sp.train, sp.valid, sp.test]).groupby("user").size()
    icount = pd.concat([sp.train, sp.valid, sp.test]).groupby("item").size()
    assert ucount.min() >= 3 and icount.min() >= 3


def test_order_split_leave_last_out():
    ds = load_dataset("recbole", FIX / "recbole-games")
    sp = preprocess(ds, k_core=1)
    check_split_invariants(sp)
    assert sp.ordering is Ordering.ORDER
    assert len(sp.test) == len(sp.valid) == 8  # one per user
    t0 = sp.test.set_index("user").loc["0"]
    v0 = sp.valid.set_index("user").loc["0"]
    assert (t0["item"], t0["order"], v0["item"], v0["order"]) == ("14", 14, "13", 13)
    assert sp.train.loc[sp.train["user"] == "0", "item"].tolist() == [str(i) for i in range(13)]
    assert (sp.train["session"] == sp.train["user"] + "#0").all()
    # a user with 2 items is kept wholly in train
    tiny = make_ds([("A", "x", np.nan), ("A", "y", np.nan)], Ordering.ORDER)
    sp2 = preprocess(tiny, k_core=1)
    assert len(sp2.train) == 2 and sp2.test.empty and sp2.valid.empty


def test_order_split_cold_target():
    rows = [("A", "x", np.nan), ("A", "y", np.nan), ("A", "z", np.nan), ("B", "y", np.nan),
            ("B", "x", np.nan), ("B", "w", np.nan)]
    sp = preprocess(make_ds(rows, Ordering.ORDER), k_core=1)
    assert sp.test["item"].tolist() == ["z", "w"] and sp.valid["item"].tolist() == ["y", "x"]
    assert sp.stats["cold_test"] == 2 and set(sp.items["item"]) == {"w", "x", "y", "z"}


def test_none_ordering_is_all_train():
    ds = load_dataset("kgat", FIX / "kgat")
    sp = preprocess(ds, k_core=1)
    assert len(sp.train) == len(ds.interactions) and sp.valid.empty and sp.test.empty
    assert tuple(sp.valid.columns) == SPLIT_COLUMNS
    assert sp.stats["users_all_train"] == 4


def test_movielens_fixture_split():
    ds = load_dataset("movielens", FIX / "movielens")
    sp = preprocess(ds, k_core=1, session_gap_s=300)
    check_split_invariants(sp)
    assert len(sp.train) + len(sp.valid) + len(sp.test) == 30
    # user 1 rated in 5 bursts > 5 min apart; users 2 and 3 in 1 and 2 → all train
    assert set(sp.test["user"]) == {"1"} and sp.stats["users_held_out"] == 1
    assert sp.test["item"].tolist() == ["163", "47", "151", "157"]
    assert sp.valid["item"].tolist() == ["1", "50"]


def test_bad_parameters():
    ds = make_ds([("A", "x", 1)])
    with pytest.raises(ConfigError):
        preprocess(ds, session_gap_s=-1)
    with pytest.raises(ConfigError):
        preprocess(ds, min_session_len=0)


# --------------------------------------------------------------------------- persistence


def test_save_load_round_trip(tmp_path: Path):
    ds = load_dataset("movielens", FIX / "movielens")
    sp = preprocess(ds, k_core=1, session_gap_s=300)
    assert len(sp.valid) and len(sp.test)
    sp.save(tmp_path / "split")
    back = Split.load(tmp_path / "split")
    for part in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(getattr(back, part), getattr(sp, part))
    pd.testing.assert_frame_equal(back.items, sp.items)
    assert back.items.loc[back.items["item"] == "1", "genres"].iloc[0] == [
        "Adventure", "Animation", "Children", "Comedy", "Fantasy"]
    assert back.ordering is Ordering.TIMESTAMP and back.stats == sp.stats and back.name == sp.name
    assert back.fingerprint() == sp.fingerprint()


def test_fingerprint_is_stable_and_sensitive(tmp_path: Path):
    ds = load_dataset("sasrec", FIX / "sasrec")
    a = preprocess(ds, k_core=1)
    b = preprocess(ds, k_core=1)
    assert a.fingerprint() == b.fingerprint() and len(a.fingerprint()) == 64
    shuffled = Split(a.train.sample(frac=1, random_state=1), a.valid, a.test, a.items, a.ordering)
    assert shuffled.fingerprint() == a.fingerprint()  # row order does not matter
    changed = Split(a.train.iloc[1:], a.valid, a.test, a.items, a.ordering)
    assert changed.fingerprint() != a.fingerprint()
    # valid/test do not enter the fingerprint
    assert Split(a.train, a.valid.iloc[:0], a.test, a.items, a.ordering).fingerprint() == a.fingerprint()
    # a tampered train file is detected on load
    a.save(tmp_path)
    a.train.iloc[1:].to_parquet(tmp_path / "train.parquet", index=False)
    with pytest.raises(DataError, match="fingerprint"):
        Split.load(tmp_path)
    with pytest.raises(DataError, match="not a saved split"):
        Split.load(tmp_path / "nothing")


# --------------------------------------------------------------------------- real data, timing


@pytest.mark.slow
@pytest.mark.parametrize("kind, rel", [("movielens", "movielens-latest-small"), ("recbole", "amazon-games-2018")])
def test_shared_preprocess_is_fast_and_sound(kind, rel):
    path = SHARED / rel
    if not path.exists():
        pytest.skip(f"{path} not present")
    ds = load_dataset(kind, path)
    t0 = time.perf_counter()
    sp = preprocess(ds)
    assert time.perf_counter() - t0 < 10
    check_split_invariants(sp)
    assert len(sp.test) > 0
    if kind == "recbole":
        assert sp.stats["users_all_train"] == 0 and len(sp.test) == sp.stats["users"]


def test_order_split_in_fixed_length_sessions():
    """Order-only data with session_len: sessions of N items counted back from the last item."""
    rows = [("A", c, np.nan) for c in "abcdefg"] + [("B", c, np.nan) for c in "abcde"]
    sp = preprocess(make_ds(rows, Ordering.ORDER), k_core=1, session_len=2)
    check_split_invariants(sp)
    a = pd.concat([sp.train, sp.valid, sp.test]).query("user == 'A'").sort_values("order")
    assert a["session"].tolist() == ["A#0", "A#1", "A#1", "A#2", "A#2", "A#3", "A#3"]
    assert sp.test.query("user == 'A'")["item"].tolist() == ["f", "g"]
    assert sp.valid.query("user == 'A'")["item"].tolist() == ["d", "e"]
    assert sp.test.query("user == 'B'")["item"].tolist() == ["d", "e"]  # B: [a] [b c] [d e]
    assert sp.train.query("user == 'B'")["item"].tolist() == ["a"]
    short = preprocess(make_ds(rows[:4] + rows[7:], Ordering.ORDER), k_core=1, session_len=2)
    assert short.test.query("user == 'A'").empty  # A: 4 items = 2 sessions, wholly in train
