"""From a loaded :class:`~kgrec.kg.tables.Dataset` to a train / validation / test :class:`Split`.

Steps (all vectorised over integer codes):

1. with Ordering.TIMESTAMP, interactions without a timestamp are dropped (counted in stats);
2. repeated user–item pairs are dropped, keeping the earliest (by ``ts``, then ``order``);
3. iterative k-core on users and items until stable (``k_core <= 1`` disables it);
4. each user's stream is sorted by ``ts`` then ``order`` and cut into sessions (below);
   sessions shorter than ``min_session_len`` are dropped, and steps 3–4 repeat until stable;
5. the split, by ordering:

   * TIMESTAMP: a new session starts when the gap to the user's previous interaction exceeds
     ``session_gap_s``. Each user's last session is test, the one before it validation, the
     rest train. Users with fewer than 3 sessions keep *all* their sessions in train: holding
     out their only sessions would leave them without history (cold users), and the evaluation
     protocol here is next-session prediction for known users. Since sessions are separated by
     a gap ``> session_gap_s >= 0``, every test interaction is strictly later than every train
     (and validation) interaction of the same user.
   * ORDER: each user's sequence is one session; leave-last-out: last item test, second to last
     validation, the rest train. Users with fewer than 3 items stay wholly in train.
     With ``session_len`` (order-only data has no time to cut sessions by), the sequence is cut
     into sessions of ``session_len`` consecutive items counted back from the last item (the
     earliest session may be shorter), then split like TIMESTAMP data: last session test, the
     one before validation, users with fewer than 3 sessions wholly in train.
   * NONE: everything is train; valid and test are empty (KGAT's ``test.txt`` is loaded
     separately with :func:`kgrec.kg.loaders.load_kgat_with_test`).

``order`` in the output is renumbered to the position in the user's preprocessed stream
(0, 1, … across train, valid and test), and ``session`` is ``"<user>#<n>"`` with ``n`` the
session index in the user's stream. ``items`` keeps every item that survives in any split
(the recommender ranks the whole catalogue); ``stats["cold_test"]`` counts test interactions
whose item never occurs in train.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kgrec.errors import ConfigError, DataError
from kgrec.kg.loaders._io import items_frame
from kgrec.kg.tables import INTERACTION_COLUMNS, ITEM_COLUMNS, Dataset, Ordering

SPLIT_COLUMNS = (*INTERACTION_COLUMNS, "session")
_PARTS = ("train", "valid", "test")
_LIST_ITEM_COLUMNS = ("genres", "categories", "related")
FORMAT_VERSION = 1


def _empty_interactions() -> pd.DataFrame:
    return pd.DataFrame({
        "user": pd.Series(dtype="object"), "item": pd.Series(dtype="object"),
        "ts": pd.Series(dtype="float64"), "order": pd.Series(dtype="int64"),
        "rating": pd.Series(dtype="float64"), "session": pd.Series(dtype="object"),
    })


def _coerce_interactions(df: pd.DataFrame) -> pd.DataFrame:
    if len(df) == 0:
        return _empty_interactions()
    out = pd.DataFrame({
        "user": df["user"].astype(str).astype("object"),
        "item": df["item"].astype(str).astype("object"),
        "ts": df["ts"].astype("float64"),
        "order": df["order"].astype("int64"),
        "rating": df["rating"].astype("float64"),
        "session": df["session"].astype(str).astype("object"),
    })
    return out.reset_index(drop=True)


@dataclass
class Split:
    """Preprocessed train / validation / test interactions (``SPLIT_COLUMNS``) and their items."""

    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    items: pd.DataFrame
    ordering: Ordering
    stats: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def fingerprint(self) -> str:
        """SHA-256 (hex) of the train split's content: independent of row order, pandas version
        and storage, so it identifies the training data for leakage checks and persona versions."""
        t = self.train.sort_values(["user", "order", "item"], kind="mergesort")
        h = hashlib.sha256(b"kgrec-train-v1\x1e")
        for col in ("user", "item", "session"):
            h.update("\x1f".join(map(str, t[col].tolist())).encode("utf-8"))
            h.update(b"\x1e")
        for col, dt in (("ts", "<f8"), ("rating", "<f8")):
            v = t[col].to_numpy(dtype="float64")
            h.update(np.where(np.isnan(v), np.nan, v).astype(dt).tobytes())
        h.update(t["order"].to_numpy(dtype="int64").astype("<i8").tobytes())
        return h.hexdigest()

    def save(self, directory: Path) -> Path:
        """Write ``train/valid/test/items.parquet`` and ``meta.json`` into ``directory``."""
        directory = Path(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for part in _PARTS:
                _coerce_interactions(getattr(self, part)).to_parquet(directory / f"{part}.parquet", index=False)
            items = self.items.copy()
            for c in _LIST_ITEM_COLUMNS:
                if c in items:
                    items[c] = items[c].map(lambda v: [str(x) for x in v] if v is not None else [])
            items.to_parquet(directory / "items.parquet", index=False)
            meta = {
                "format_version": FORMAT_VERSION, "name": self.name, "ordering": self.ordering.value,
                "fingerprint": self.fingerprint(), "stats": _jsonable(self.stats),
            }
            (directory / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        except OSError as e:
            raise DataError(f"{directory}: cannot write split: {e}") from e
        return directory

    @classmethod
    def load(cls, directory: Path) -> Split:
        """Read a split written by :meth:`save`; the train fingerprint is verified."""
        directory = Path(directory)
        meta_path = directory / "meta.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            parts = {p: pd.read_parquet(directory / f"{p}.parquet") for p in _PARTS}
            items = pd.read_parquet(directory / "items.parquet")
        except FileNotFoundError as e:
            raise DataError(f"{directory}: not a saved split ({e.filename} missing)") from e
        except (OSError, ValueError) as e:
            raise DataError(f"{directory}: cannot read split: {e}") from e
        if meta.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{meta_path}: unsupported split format {meta.get('format_version')!r}")
        for c in _LIST_ITEM_COLUMNS:
            if c in items:
                items[c] = items[c].map(lambda v: [str(x) for x in v] if v is not None else [])
        for c in ("item", "title", "description"):
            if c in items:
                items[c] = items[c].astype("object")
        if "year" in items:
            items["year"] = items["year"].astype("Int64")
        split = cls(
            train=_coerce_interactions(parts["train"]), valid=_coerce_interactions(parts["valid"]),
            test=_coerce_interactions(parts["test"]), items=items, ordering=Ordering(meta["ordering"]),
            stats=meta.get("stats", {}), name=meta.get("name", ""),
        )
        if split.fingerprint() != meta.get("fingerprint"):
            raise DataError(f"{meta_path}: train split does not match its recorded fingerprint")
        return split


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, Ordering):
        return v.value
    return v


def k_core_mask(users: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, int]:
    """Rows kept by iterative k-core on integer-coded users and items, and the passes it took.

    A row survives when its user and its item each have at least ``k`` surviving rows;
    removals repeat until nothing changes. ``k <= 1`` keeps everything.
    """
    mask = np.ones(len(users), dtype=bool)
    if k <= 1 or len(users) == 0:
        return mask, 0
    nu, ni = int(users.max()) + 1, int(items.max()) + 1
    passes = 0
    while True:
        passes += 1
        uc = np.bincount(users[mask], minlength=nu)
        ic = np.bincount(items[mask], minlength=ni)
        new = mask & (uc[users] >= k) & (ic[items] >= k)
        if new.sum() == mask.sum():
            return new, passes
        mask = new


def sessionise(users: np.ndarray, ts: np.ndarray, gap_s: float | None) -> np.ndarray:
    """Per-row session index within its user (rows sorted by user, then time).

    ``gap_s=None`` makes each user's whole stream one session; otherwise a session starts
    when the time since the user's previous row is greater than ``gap_s``.
    """
    n = len(users)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    new_user = np.empty(n, dtype=bool)
    new_user[0] = True
    np.not_equal(users[1:], users[:-1], out=new_user[1:])
    start = new_user.copy()
    if gap_s is not None:
        gaps = np.empty(n)
        gaps[0] = np.inf
        gaps[1:] = np.diff(ts)
        start |= gaps > gap_s
    sid = np.cumsum(start) - 1
    first = np.maximum.accumulate(np.where(new_user, sid, 0))
    return (sid - first).astype(np.int64)


def _user_broadcast(users: np.ndarray, values_at_end: np.ndarray) -> np.ndarray:
    """Broadcast each user's last-row value to all its rows (rows sorted by user)."""
    n = len(users)
    end = np.empty(n, dtype=bool)
    end[-1] = True
    np.not_equal(users[1:], users[:-1], out=end[:-1])
    counts = np.diff(np.r_[0, np.flatnonzero(end) + 1])
    return np.repeat(values_at_end[end], counts)


@dataclass
class _Coded:
    """The interactions as integer codes and arrays, indexed by the original row."""

    ucode: np.ndarray
    uvals: Any
    icode: np.ndarray
    ivals: Any
    ts: np.ndarray
    order: np.ndarray
    rating: np.ndarray

    @classmethod
    def of(cls, df: pd.DataFrame) -> _Coded:
        ucode, uvals = pd.factorize(df["user"].astype(str), sort=False)
        icode, ivals = pd.factorize(df["item"].astype(str), sort=False)
        return cls(ucode, uvals, icode, ivals, df["ts"].to_numpy(dtype="float64"),
                   df["order"].to_numpy(dtype="int64"), df["rating"].to_numpy(dtype="float64"))


def preprocess(
    ds: Dataset,
    *,
    k_core: int = 5,
    session_gap_s: float = 3600 * 24,
    min_session_len: int = 1,
    session_len: int | None = None,
) -> Split:
    """Deduplicate, k-core filter, sessionise and split ``ds``; see the module docstring."""
    k_core, min_session_len = _checked_options(k_core, session_gap_s, min_session_len, session_len)
    ordering = Ordering(ds.ordering)
    df = ds.interactions
    missing = [c for c in INTERACTION_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"data set {ds.name!r}: interactions lack column(s) {', '.join(missing)}")
    stats: dict[str, Any] = {
        "ordering": ordering.value, "k_core": k_core, "session_gap_s": float(session_gap_s),
        "min_session_len": min_session_len, "session_len": session_len, "raw_interactions": len(df),
    }
    c = _Coded.of(df)
    rows = dedupe(c, ordering, stats)
    gap = float(session_gap_s) if ordering is Ordering.TIMESTAMP else None
    rows, sess = filter_and_sessionise(c, rows, k_core, gap, min_session_len, stats)
    if ordering is Ordering.ORDER and session_len:
        sess = fixed_length_sessions(c.ucode[rows], int(session_len))
    part, pos = assign_parts(c.ucode[rows], sess, Ordering.TIMESTAMP if ordering is Ordering.ORDER and session_len
                             else ordering)
    out = _split_frame(c, rows, sess, pos)
    frames = {name: _coerce_interactions(out[part == k]) for k, name in enumerate(_PARTS)}
    surviving = pd.unique(out["item"])
    items = catalogue(ds.items, surviving)
    train_items = set(frames["train"]["item"])
    n_users = len(np.unique(c.ucode[rows]))
    held_users = frames["test"]["user"].nunique()
    stats.update(
        interactions=len(rows), users=n_users, items=len(surviving), catalogue=len(items),
        train=len(frames["train"]), valid=len(frames["valid"]), test=len(frames["test"]),
        sessions=int(out["session"].nunique()) if len(rows) else 0,
        users_held_out=int(held_users), users_all_train=int(n_users - held_users),
        cold_test=int((~frames["test"]["item"].isin(train_items)).sum()),
        cold_valid=int((~frames["valid"]["item"].isin(train_items)).sum()),
    )
    return Split(frames["train"], frames["valid"], frames["test"], items, ordering, stats, name=ds.name)


def _checked_options(k_core: Any, session_gap_s: Any, min_session_len: Any,
                     session_len: Any = None) -> tuple[int, int]:
    if session_len is not None and (int(session_len) != session_len or session_len < 1):
        raise ConfigError(f"session_len must be an integer >= 1, got {session_len!r}")
    if int(k_core) != k_core:
        raise ConfigError(f"k_core must be an integer, got {k_core!r}")
    if not session_gap_s >= 0:
        raise ConfigError(f"session_gap_s must be >= 0 seconds, got {session_gap_s!r}")
    if int(min_session_len) != min_session_len or min_session_len < 1:
        raise ConfigError(f"min_session_len must be an integer >= 1, got {min_session_len!r}")
    return int(k_core), int(min_session_len)


def dedupe(c: _Coded, ordering: Ordering, stats: dict[str, Any]) -> np.ndarray:
    """Rows sorted by user, ts, order (stable; NaN ts sort by order alone), without rows lacking
    a timestamp (TIMESTAMP data only) and keeping the earliest of repeated user–item pairs."""
    keep = ~np.isnan(c.ts) if ordering is Ordering.TIMESTAMP else np.ones(len(c.ts), dtype=bool)
    stats["dropped_no_ts"] = int((~keep).sum())
    rows = np.flatnonzero(keep)
    rows = rows[np.lexsort((c.order[rows], c.ts[rows], c.ucode[rows]))]
    pair = c.ucode[rows].astype(np.int64) * (len(c.ivals) + 1) + c.icode[rows]
    _, first = np.unique(pair, return_index=True)  # the first in sorted order = the earliest
    stats["duplicates_dropped"] = int(len(rows) - len(first))
    return rows[np.sort(first)]


def filter_and_sessionise(c: _Coded, rows: np.ndarray, k_core: int, gap: float | None,
                          min_session_len: int, stats: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Iterative k-core, sessions, and dropping sessions shorter than ``min_session_len``,
    repeated until stable; returns the surviving rows and their session index per user."""
    kcore_dropped = short_dropped = kcore_passes = 0
    while True:
        m, p = k_core_mask(c.ucode[rows], c.icode[rows], k_core)
        kcore_passes += p
        kcore_dropped += int((~m).sum())
        rows = rows[m]
        sess = sessionise(c.ucode[rows], c.ts[rows], gap)
        if min_session_len <= 1 or len(rows) == 0:
            break
        # session sizes: rows are sorted by user then time, so sessions are contiguous runs
        u = c.ucode[rows]
        run_start = np.r_[True, (u[1:] != u[:-1]) | (sess[1:] != sess[:-1])]
        run_id = np.cumsum(run_start) - 1
        long_enough = np.bincount(run_id)[run_id] >= min_session_len
        if long_enough.all():
            break
        short_dropped += int((~long_enough).sum())
        rows = rows[long_enough]
    stats.update(kcore_dropped=kcore_dropped, kcore_passes=kcore_passes, short_sessions_dropped=short_dropped)
    return rows, sess


def fixed_length_sessions(u: np.ndarray, n: int) -> np.ndarray:
    """Per row (sorted by user, then order): its session index when each user's stream is cut into
    sessions of ``n`` items counted back from the last (the first session may be shorter)."""
    if not len(u):
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[True, u[1:] != u[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(u)), 0))  # the user's first row
    pos = np.arange(len(u)) - first
    back = (_user_broadcast(u, pos) - pos) // n  # 0 = the user's last chunk
    return (back[first] - back).astype(np.int64)


def assign_parts(u: np.ndarray, sess: np.ndarray, ordering: Ordering) -> tuple[np.ndarray, np.ndarray]:
    """Per row (sorted by user, then time): 0 train, 1 valid, 2 test, and its position in the
    user's stream. TIMESTAMP holds out the last two sessions, ORDER the last two items, of
    users that have at least three; NONE keeps everything in train."""
    n = len(u)
    part = np.zeros(n, dtype=np.int8)
    if not n:
        return part, np.zeros(0, dtype=np.int64)
    starts = np.r_[True, u[1:] != u[:-1]]
    pos = np.arange(n) - np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    unit = {Ordering.TIMESTAMP: sess, Ordering.ORDER: pos}.get(ordering)
    if unit is not None:
        last = _user_broadcast(u, unit)  # index of the user's last session / item
        held = last >= 2
        part[held & (unit == last)] = 2
        part[held & (unit == last - 1)] = 1
    return part, pos


def _split_frame(c: _Coded, rows: np.ndarray, sess: np.ndarray, pos: np.ndarray) -> pd.DataFrame:
    users = pd.Series(np.asarray(c.uvals, dtype=object)[c.ucode[rows]], dtype="object")
    return pd.DataFrame({
        "user": users,
        "item": pd.Series(np.asarray(c.ivals, dtype=object)[c.icode[rows]], dtype="object"),
        "ts": c.ts[rows],
        "order": pos.astype(np.int64),
        "rating": c.rating[rows],
        "session": users + "#" + pd.Series(sess, dtype="int64").astype(str),
    })


def catalogue(items: pd.DataFrame | None, surviving: Any) -> pd.DataFrame:
    """The item rows of every surviving item; items without metadata get an empty row."""
    items = items if items is not None else pd.DataFrame(columns=list(ITEM_COLUMNS))
    items = items[items["item"].astype(str).isin(set(surviving))].drop_duplicates("item")
    lacking = set(surviving) - set(items["item"].astype(str))
    if lacking:
        items = pd.concat([items, items_frame((), interaction_items=sorted(lacking))], ignore_index=True)
    return items.reset_index(drop=True)
