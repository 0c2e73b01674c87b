"""Item vocabulary and the sequence views of a train / valid / test split.

Input frames carry the canonical interaction columns (``user, item, ts, order,
rating``, see :mod:`kgrec.kg.tables`) plus a ``session`` string id; rows are
sorted by time per user (we re-sort stably by ``ts`` then ``order`` anyway).

What a model sees in training and evaluation is decided by the protocol
(:mod:`kgrec.recommender.protocols`); this module gives the pieces: per-user and per-session
sequences, causal training windows and :class:`EvalExamples`.

Training windows pack prefixes of a sequence: the model is fed windows of ``max_len`` items
with the next item as the target at every position; under causal attention each position is
exactly one prefix example (truncated to ``max_len``). Sequences longer than ``max_len + 1``
are cut into windows so that every prefix appears once.

Index 0 of the vocabulary is padding; sequences are **left**-padded, so the most
recent item is always in the last column.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kgrec.errors import ConfigError, DataError, ModelError, NotFoundError

if TYPE_CHECKING:  # pandas is imported where frames are read, not by the serving path
    import pandas as pd

PAD = 0
DEFAULT_MAX_LEN = 50


class ItemVocab:
    """Item id <-> index. Index 0 is padding; real items are 1..n."""

    def __init__(self, item_ids: Iterable[str]):
        self.ids: list[str] = ["<pad>"]
        self.index: dict[str, int] = {}
        for it in item_ids:
            it = str(it)
            if it not in self.index:
                self.index[it] = len(self.ids)
                self.ids.append(it)

    @classmethod
    def from_frames(cls, *frames: pd.DataFrame | None, items: pd.DataFrame | None = None) -> ItemVocab:
        """Items of ``items`` (catalogue order) first, then any other item seen in ``frames``."""
        ids: list[str] = []
        if items is not None and "item" in items:
            ids.extend(items["item"].astype(str).tolist())
        for f in frames:
            if f is not None and len(f):
                ids.extend(f["item"].astype(str).unique().tolist())
        return cls(ids)

    def __len__(self) -> int:  # including padding
        return len(self.ids)

    @property
    def num_items(self) -> int:
        """Size of the score vector: real items + the padding column."""
        return len(self.ids)

    def __contains__(self, item: str) -> bool:
        return item in self.index

    def encode(self, items: Iterable[str]) -> np.ndarray:
        """Indices of ``items``; an unknown id raises :class:`NotFoundError` naming it."""
        out = []
        for it in items:
            try:
                out.append(self.index[str(it)])
            except KeyError as e:
                raise NotFoundError(f"unknown item id {it!r} (not in the recommender's vocabulary)") from e
        return np.asarray(out, dtype=np.int64)

    def decode(self, idx: Iterable[int]) -> list[str]:
        return [self.ids[int(i)] for i in idx]

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.ids[1:]), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> ItemVocab:
        try:
            return cls(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as e:
            raise ModelError(f"cannot read item vocabulary {path}: {e}") from e


def _check_columns(frame: pd.DataFrame, name: str, cols: Sequence[str] = ("user", "item")) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        raise DataError(f"{name} frame lacks column(s) {missing}")


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("ts", "order") if c in frame.columns]
    if not keys:
        return frame
    # stable sort inside each user keeps the given order for NaN timestamps / ties
    return frame.sort_values(["user", *keys], kind="stable", na_position="last")


def user_sequences(frame: pd.DataFrame | None, vocab: ItemVocab) -> dict[str, np.ndarray]:
    """user -> item indices in time order."""
    if frame is None or not len(frame):
        return {}
    _check_columns(frame, "interaction")
    f = _sorted(frame)
    idx = vocab.encode(f["item"].astype(str))
    users = f["user"].astype(str).to_numpy()
    out: dict[str, np.ndarray] = {}
    # group contiguous runs (sorted by user)
    if len(users):
        cut = np.flatnonzero(users[1:] != users[:-1]) + 1
        starts = np.concatenate([[0], cut])
        ends = np.concatenate([cut, [len(users)]])
        for s, e in zip(starts, ends, strict=True):
            out[users[s]] = idx[s:e]
    return out


def pad_left(seqs: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    """[N, max_len] int64, each row the last ``max_len`` items, left-padded with 0."""
    out = np.zeros((len(seqs), max_len), dtype=np.int64)
    for i, s in enumerate(seqs):
        s = np.asarray(s[-max_len:], dtype=np.int64) if len(s) else np.zeros(0, np.int64)
        if len(s):
            out[i, max_len - len(s):] = s
    return out


@dataclass
class TrainWindows:
    """Windows of train sequences: ``inputs[i, t]`` predicts ``targets[i, t]`` (0 = ignore)."""

    users: list[str]
    inputs: np.ndarray  # [N, max_len]
    targets: np.ndarray  # [N, max_len]
    #: per window, the index of the input sequence (pair) it was cut from
    sources: np.ndarray | None = None
    #: per window, the position in that sequence of its first target (trained or not)
    first_target: np.ndarray | None = None
    #: per window, its row in the protocol's :class:`Histories` (what its persona may be built from)
    context: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.users)


def training_windows(seqs: Mapping[str, np.ndarray] | Sequence[tuple[str, np.ndarray]],
                     max_len: int = DEFAULT_MAX_LEN, *, empty_prefix: bool = False,
                     stride: int | None = None) -> TrainWindows:
    """All prefixes of every sequence, packed as causal windows (see module docstring).

    ``seqs`` maps a user to a sequence, or is a list of ``(user, sequence)`` pairs (several
    sessions per user). With ``empty_prefix`` the first item of each sequence is a target
    too, predicted from nothing (a padding input): the session protocol's cold start.

    ``stride`` (default ``max_len``: windows side by side) makes the windows overlap: a window
    ends every ``stride`` targets and trains only its last ``stride`` positions (the others are
    padding targets), so every target is still trained exactly once per epoch, now with at
    least ``max_len - stride`` items of context (or all that precede it), as at evaluation,
    where the input is the last ``max_len`` items. Costs ``max_len / stride`` times more
    encoder work; the softmax work is unchanged.
    """
    if max_len < 1:
        raise ConfigError(f"max_len must be >= 1, got {max_len}")
    step = max_len if stride is None else int(stride)
    if not 1 <= step <= max_len:
        raise ConfigError(f"stride must be in 1..max_len={max_len}, got {stride}")
    pairs = seqs.items() if isinstance(seqs, Mapping) else seqs
    users, ins, tgs, srcs, firsts = [], [], [], [], []
    for j, (u, s) in enumerate(pairs):
        s = np.asarray(s, dtype=np.int64)
        if empty_prefix:
            s = np.concatenate([[PAD], s])
        if len(s) < 2:
            continue
        # targets are s[1:], each predicted from up to max_len items before it.
        # window w covers targets s[start+1 : start+1+max_len]; the first window keeps
        # the earliest targets, later windows give the rest with a full context.
        end = len(s) - 1  # build windows from the end backwards
        while end > 0:
            start = max(0, end - max_len)
            tg = s[start + 1:end + 1].copy()
            tg[:max(0, end - step - start)] = PAD  # trained by the window before this one
            users.append(u)
            ins.append(s[start:end])
            tgs.append(tg)
            srcs.append(j)
            firsts.append(start if empty_prefix else start + 1)  # in the sequence without the PAD
            end = max(0, end - step)
    return TrainWindows(users, pad_left(ins, max_len), pad_left(tgs, max_len),
                        np.asarray(srcs, dtype=np.int64), np.asarray(firsts, dtype=np.int64))


@dataclass
class EvalExamples:
    """One row per (user, held-out target).

    ``seqs`` is exactly what a session model sees (left-padded). ``seen_ptr`` /
    ``seen_items`` (CSR) list, per example, the items the user is known to have had before
    the target (their history and the prefix), which ``--exclude-seen`` removes from the
    ranking; ``prefix_len`` counts the items of the current session before the target.
    """

    users: list[str]
    seqs: np.ndarray  # [N, max_len]
    targets: np.ndarray  # [N]
    prefix_len: np.ndarray  # [N]
    seen_ptr: np.ndarray  # [N + 1]
    seen_items: np.ndarray  # [seen_ptr[-1]]
    #: per example, its row in the protocol's :class:`Histories` (what its persona may be built from)
    context: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.users)

    def seen(self, i: int) -> np.ndarray:
        return self.seen_items[self.seen_ptr[i]:self.seen_ptr[i + 1]]

    def seen_matrix(self, sl: slice) -> np.ndarray:
        """[B, S] left-aligned seen items of the examples in ``sl`` (0 = padding), built without a
        per-example loop."""
        lo, hi, _ = sl.indices(len(self))
        ptr = self.seen_ptr[lo:hi + 1]
        lens = np.diff(ptr)
        out = np.zeros((len(lens), max(int(lens.max(initial=0)), 1)), dtype=np.int64)
        rows = np.repeat(np.arange(len(lens)), lens)
        cols = np.arange(int(lens.sum())) - np.repeat(ptr[:-1] - ptr[0], lens)
        out[rows, cols] = self.seen_items[ptr[0]:ptr[-1]]
        return out

    def subset(self, idx: np.ndarray) -> EvalExamples:
        seen = [self.seen(int(i)) for i in idx]
        return EvalExamples([self.users[i] for i in idx], self.seqs[idx], self.targets[idx], self.prefix_len[idx],
                            np.concatenate([[0], np.cumsum([len(s) for s in seen])]).astype(np.int64),
                            np.concatenate(seen).astype(np.int64) if seen else np.zeros(0, np.int64),
                            None if self.context is None else self.context[idx])


def make_examples(users: list[str], inputs: list[np.ndarray], targets: list[int], prefix_len: list[int],
                  seen: list[np.ndarray], max_len: int, context: Sequence[int] | None = None) -> EvalExamples:
    """Pack per-example lists (model input, target, prefix length, seen items, history row) into
    :class:`EvalExamples`."""
    ptr = np.concatenate([[0], np.cumsum([len(s) for s in seen], dtype=np.int64)]).astype(np.int64)
    flat = np.concatenate(seen).astype(np.int64) if seen else np.zeros(0, np.int64)
    return EvalExamples(users, pad_left(inputs, max_len), np.asarray(targets, dtype=np.int64),
                        np.asarray(prefix_len, dtype=np.int64), ptr, flat,
                        None if context is None else np.asarray(context, dtype=np.int64))


@dataclass
class Histories:
    """The distinct "pasts" that personas are built from, one row each: ``users[h]`` and the item
    indices ``items(h)`` that user had **before** the examples pointing at row ``h`` (their
    ``context``). A persona or history vector paired with a target is a function of its row only,
    so it cannot hold the target (see :mod:`kgrec.recommender.protocols`)."""

    users: list[str]
    ptr: np.ndarray  # [H + 1]
    flat: np.ndarray  # [ptr[-1]]

    @classmethod
    def from_lists(cls, users: Sequence[str], items: Sequence[np.ndarray]) -> Histories:
        ptr = np.concatenate([[0], np.cumsum([len(i) for i in items], dtype=np.int64)]).astype(np.int64)
        flat = np.concatenate([np.asarray(i, np.int64) for i in items]) if len(items) else np.zeros(0, np.int64)
        return cls(list(users), ptr, flat.astype(np.int64))

    def __len__(self) -> int:
        return len(self.users)

    def items(self, h: int) -> np.ndarray:
        return self.flat[self.ptr[h]:self.ptr[h + 1]]

    def lists(self) -> list[np.ndarray]:
        return [self.items(h) for h in range(len(self))]


def session_sequences(frame: pd.DataFrame | None, vocab: ItemVocab) -> list[tuple[str, str, np.ndarray]]:
    """``(user, session, item indices in time order)`` for every session of ``frame``."""
    if frame is None or not len(frame):
        return []
    _check_columns(frame, "interaction", ("user", "item", "session"))
    f = _sorted(frame)
    idx = vocab.encode(f["item"].astype(str))
    users = f["user"].astype(str).to_numpy()
    sess = f["session"].astype(str).to_numpy()
    cut = np.flatnonzero((users[1:] != users[:-1]) | (sess[1:] != sess[:-1])) + 1
    starts, ends = np.concatenate([[0], cut]), np.concatenate([cut, [len(users)]])
    return [(users[s], sess[s], idx[s:e]) for s, e in zip(starts, ends, strict=True)]


def item_counts(train: pd.DataFrame, vocab: ItemVocab) -> np.ndarray:
    """Training interaction count per vocabulary index (padding = 0)."""
    c = np.zeros(len(vocab), dtype=np.float64)
    idx = vocab.encode(train["item"].astype(str))
    np.add.at(c, idx, 1.0)
    return c


def _is_frame(x) -> bool:
    """``isinstance(x, pandas.DataFrame)`` without importing pandas for a non-frame."""
    if "pandas" not in sys.modules:
        return False
    import pandas as pd

    return isinstance(x, pd.DataFrame)


def align_item_embeddings(vocab: ItemVocab, item_emb, item_ids: Sequence[str] | None = None) -> np.ndarray:
    """[len(vocab), d] float32 rows aligned to ``vocab`` (padding / missing items = zeros).

    ``item_emb`` is a ``Mapping[item_id, vector]``, a DataFrame indexed by item id, or an
    array whose rows follow ``item_ids`` (or, without ``item_ids``, the vocabulary's own
    order: ``len(vocab) - 1`` rows for items 1..n, or ``len(vocab)`` rows including padding).
    """
    if _is_frame(item_emb):
        item_ids, item_emb = [str(i) for i in item_emb.index], item_emb.to_numpy()
    if isinstance(item_emb, Mapping):
        keys = list(item_emb)
        item_ids = [str(k) for k in keys]
        item_emb = np.stack([np.asarray(item_emb[k], dtype=np.float32) for k in keys]) if keys else None
        if item_emb is None:
            raise DataError("empty item embedding mapping")
    arr = np.asarray(item_emb, dtype=np.float32)
    if arr.ndim != 2:
        raise DataError(f"item embeddings must be 2-D, got shape {arr.shape}")
    if item_ids is None:
        if len(arr) == len(vocab):
            out = arr.copy()
            out[0] = 0.0
            return out
        if len(arr) == len(vocab) - 1:
            return np.concatenate([np.zeros((1, arr.shape[1]), np.float32), arr])
        raise DataError(f"{len(arr)} item embedding rows for {len(vocab) - 1} items and no item ids")
    if len(item_ids) != len(arr):
        raise DataError(f"{len(arr)} item embedding rows but {len(item_ids)} item ids")
    out = np.zeros((len(vocab), arr.shape[1]), dtype=np.float32)
    for i, it in enumerate(item_ids):
        j = vocab.index.get(str(it))
        if j is not None:
            out[j] = arr[i]
    return out


def persona_matrix(users: Sequence[str], personas, dim: int | None = None,
                   persona_users: Sequence[str] | None = None) -> np.ndarray:
    """[len(users), d] float32 persona rows for ``users``; users without a persona get zeros.

    ``personas`` is a ``Mapping[user, vector]``, a DataFrame indexed by user, or an array
    aligned to ``persona_users``.
    """
    if _is_frame(personas):
        persona_users, personas = [str(u) for u in personas.index], personas.to_numpy()
    if not isinstance(personas, Mapping):
        arr = np.asarray(personas, dtype=np.float32)
        if persona_users is None or len(persona_users) != len(arr):
            raise DataError("a persona array needs persona_users of the same length")
        personas = {str(u): arr[i] for i, u in enumerate(persona_users)}
    if dim is None:
        first = next(iter(personas.values()), None)
        if first is None:
            raise DataError("no personas given")
        dim = int(np.asarray(first).shape[-1])
    out = np.zeros((len(users), dim), dtype=np.float32)
    for i, u in enumerate(users):
        v = personas.get(u)
        if v is not None:
            out[i] = np.asarray(v, dtype=np.float32).reshape(-1)
    return out


def history_user_embeddings(train: pd.DataFrame, vocab: ItemVocab, item_table: np.ndarray) -> dict[str, np.ndarray]:
    """user -> mean LLM embedding of the user's training items (all of them: for analysis and
    neighbour search; models pair a target with :func:`history_means` of its own past)."""
    return {u: item_table[s].mean(axis=0).astype(np.float32)
            for u, s in user_sequences(train, vocab).items() if len(s)}


def history_means(histories: Histories, item_table: np.ndarray) -> np.ndarray:
    """[H, d] mean LLM embedding of each history row's distinct items; an empty past gives zeros
    (the models' "no persona" input)."""
    out = np.zeros((len(histories), item_table.shape[1]), dtype=np.float32)
    for h in range(len(histories)):
        it = np.unique(histories.items(h))
        it = it[it != PAD]
        if it.size:
            out[h] = item_table[it].mean(axis=0)
    return out
