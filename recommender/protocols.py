"""Evaluation protocols: what a model is trained on and what it may see when it predicts.

Both protocols start from the saved build split (``train`` / ``valid`` / ``test`` frames,
see :mod:`kgrec.kg.preprocess`: each user's last session is test, the one before it
validation; the graph and the personas hold ``train`` only).

``session`` (the paper's task, the default)
    A session model sees **only the current session's prefix**. For every item of a
    user's held-out session it predicts that item from the items of the same session
    before it, so the first item (prefix length 0) is pure cold start. The user's past
    reaches a model only through the persona (or the history-user embedding of that
    ablation), passed beside the input. Training examples are the prefixes inside each
    training session, the empty one included, each paired with its user's persona.
    Validation examples come from the validation session, test examples from the test
    session; neither is ever an input of training.

``loo`` (time-ordered leave-one-out, as SASRec and RecBole evaluate)
    Each user's whole interaction stream (train, valid and test rows in time order) is
    one sequence ``S``: ``S[-1]`` is the test target predicted from ``S[:-1]``, ``S[-2]``
    the validation target predicted from ``S[:-2]``, and training windows cover every
    prefix of ``S[:-2]``. Inputs are cut to the last ``max_len`` items. Users with fewer
    than 3 interactions are training only. ``eval_users`` restricts which users are
    evaluated (all others still train): the harness passes the users whose last session
    is held out of the graph, so that no persona has seen a loo target (a user kept wholly
    in train by the session split would otherwise have their loo target in the graph).

**Pasts** (:class:`~kgrec.recommender.data.Histories`): every window and example points at
one row (``context``) holding what its user had *before* it, and personas and history vectors
are built from that row only. ``session``: a training session's past is the user's earlier
training sessions (the first session has an empty past); the validation session's past is
all of ``train``; the test session's is ``train`` and ``valid``. ``loo``: a training window's
past is the user's stream before the window's first target; a held-out target's past is its
whole input history. So no persona or history vector paired with a target was built from it
or from anything after it.

``seen`` items of an example are what the user is known to have had before the target:
under ``session`` their train (and, for test, valid) items plus the prefix; under ``loo``
the whole input history. ``--exclude-seen`` removes them from the ranking; the build drops
repeated user–item pairs, so a seen item is never a target.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kgrec.choices import Protocol, choice
from kgrec.errors import DataError

if TYPE_CHECKING:  # keep pandas out of this module's import
    import pandas as pd

    from kgrec.recommender import data as D


PROTOCOLS = tuple(p.value for p in Protocol)
#: prefix-length buckets of the session breakdown: (label, lowest, highest inclusive)
PREFIX_BUCKETS = (("0", 0, 0), ("1", 1, 1), ("2-4", 2, 4), ("5+", 5, None))


def check_protocol(protocol: str | Protocol) -> Protocol:
    """``protocol`` as a :class:`~kgrec.choices.Protocol`, or a ConfigError listing the choices."""
    return choice(Protocol, protocol, "protocol")


@dataclass
class ProtocolData:
    protocol: Protocol
    windows: D.TrainWindows
    valid: D.EvalExamples
    test: D.EvalExamples
    histories: D.Histories


def build_examples(protocol: str | Protocol, train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame,
                   vocab: D.ItemVocab, max_len: int = 50,
                   eval_users: Iterable[str] | None = None) -> ProtocolData:
    """Train windows and valid / test examples of ``protocol`` (module docstring)."""
    p = check_protocol(protocol)
    if p is Protocol.session:
        return session_examples(train, valid, test, vocab, max_len)
    return loo_examples(train, valid, test, vocab, max_len, eval_users)


def _histories(frames: Iterable[pd.DataFrame | None], vocab: D.ItemVocab) -> dict[str, np.ndarray]:
    from kgrec.recommender import data as D

    out: dict[str, list[np.ndarray]] = {}
    for f in frames:
        for u, s in D.user_sequences(f, vocab).items():
            out.setdefault(u, []).append(s)
    return {u: np.concatenate(v) for u, v in out.items()}


class _Pasts:
    """Collects :class:`~kgrec.recommender.data.Histories` rows (user, items before)."""

    def __init__(self):
        self.users: list[str] = []
        self.items: list[np.ndarray] = []

    def add(self, user: str, items: np.ndarray) -> int:
        self.users.append(user)
        self.items.append(np.asarray(items, dtype=np.int64))
        return len(self.users) - 1

    def histories(self) -> D.Histories:
        from kgrec.recommender import data as D

        return D.Histories.from_lists(self.users, self.items)


def _session_heldout(heldout: pd.DataFrame, history: dict[str, np.ndarray], vocab: D.ItemVocab,
                     max_len: int, pasts: _Pasts) -> D.EvalExamples:
    from kgrec.recommender import data as D

    users, inputs, targets, plen, seen, ctx = [], [], [], [], [], []
    empty = np.zeros(0, np.int64)
    for u, _sess, items in D.session_sequences(heldout, vocab):
        past = history.get(u, empty)
        row = pasts.add(u, past)
        for j, t in enumerate(items):
            users.append(u)
            inputs.append(items[:j])
            targets.append(int(t))
            plen.append(j)
            seen.append(np.concatenate([past, items[:j]]))
            ctx.append(row)
    return D.make_examples(users, inputs, targets, plen, seen, max_len, ctx)


def _earlier_sessions(sessions: list[tuple[str, np.ndarray]], pasts: _Pasts) -> np.ndarray:
    """Per training session (user-contiguous, in time order), the row of its user's earlier sessions."""
    rows, prev_user, before = [], None, []
    for u, s in sessions:
        if u != prev_user:
            prev_user, before = u, []
        rows.append(pasts.add(u, np.concatenate(before) if before else np.zeros(0, np.int64)))
        before.append(s)
    return np.asarray(rows, dtype=np.int64)


def session_examples(train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, vocab: D.ItemVocab,
                     max_len: int = 50) -> ProtocolData:
    """The ``session`` protocol: inputs are the current session's prefix only."""
    from kgrec.recommender import data as D

    sessions = [(u, s) for u, _sess, s in D.session_sequences(train, vocab)]
    windows = D.training_windows(sessions, max_len, empty_prefix=True)
    pasts = _Pasts()
    windows.context = _earlier_sessions(sessions, pasts)[windows.sources]
    valid_ex = _session_heldout(valid, _histories([train], vocab), vocab, max_len, pasts)
    test_ex = _session_heldout(test, _histories([train, valid], vocab), vocab, max_len, pasts)
    return ProtocolData(Protocol.session, windows, valid_ex, test_ex, pasts.histories())


def loo_examples(train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, vocab: D.ItemVocab,
                 max_len: int = 50, eval_users: Iterable[str] | None = None,
                 stride: int | None = None) -> ProtocolData:
    """The ``loo`` protocol: last item test, second to last validation, full history as input.
    ``stride``: of the training windows (:func:`kgrec.recommender.data.training_windows`)."""
    import pandas as pd

    from kgrec.recommender import data as D

    frames = [f for f in (train, valid, test) if f is not None and len(f)]
    if not frames:
        raise DataError("the split has no interactions")
    seqs = D.user_sequences(pd.concat(frames, ignore_index=True), vocab)
    keep = None if eval_users is None else {str(u) for u in eval_users}
    train_seqs: dict[str, np.ndarray] = {}
    pasts = _Pasts()
    held: dict[str, list] = {"valid": [[], [], [], [], [], []], "test": [[], [], [], [], [], []]}
    for u, s in seqs.items():
        if len(s) < 3 or (keep is not None and u not in keep):
            train_seqs[u] = s
            continue
        train_seqs[u] = s[:-2]
        for name, cut in (("valid", len(s) - 2), ("test", len(s) - 1)):
            us, ins, tg, pl, sn, cx = held[name]
            us.append(u)
            ins.append(s[:cut])
            tg.append(int(s[cut]))
            pl.append(cut)
            sn.append(s[:cut])
            cx.append(pasts.add(u, s[:cut]))
    windows = D.training_windows(train_seqs, max_len, stride=stride)
    streams = list(train_seqs.items())
    windows.context = np.asarray([pasts.add(streams[j][0], streams[j][1][:f])
                                  for j, f in zip(windows.sources, windows.first_target, strict=True)], np.int64)
    valid_ex, test_ex = (D.make_examples(*held[n][:5], max_len, held[n][5]) for n in ("valid", "test"))
    return ProtocolData(Protocol.loo, windows, valid_ex, test_ex, pasts.histories())


def prefix_bucket(prefix_len: np.ndarray) -> np.ndarray:
    """Bucket label (see :data:`PREFIX_BUCKETS`) of each prefix length."""
    out = np.empty(len(prefix_len), dtype=object)
    for label, lo, hi in PREFIX_BUCKETS:
        m = prefix_len >= lo if hi is None else (prefix_len >= lo) & (prefix_len <= hi)
        out[m] = label
    return out
