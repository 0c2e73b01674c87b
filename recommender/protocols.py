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


def _session_heldout(heldout: pd.DataFrame, history: dict[str, np.ndarray], vocab: D.ItemVocab,
                     max_len: int) -> D.EvalExamples:
    from kgrec.recommender import data as D

    users, inputs, targets, plen, seen = [], [], [], [], []
    empty = np.zeros(0, np.int64)
    for u, _sess, items in D.session_sequences(heldout, vocab):
        past = history.get(u, empty)
        for j, t in enumerate(items):
            users.append(u)
            inputs.append(items[:j])
            targets.append(int(t))
            plen.append(j)
            seen.append(np.concatenate([past, items[:j]]))
    return D.make_examples(users, inputs, targets, plen, seen, max_len)


def session_examples(train: pd.DataFrame, valid: pd.DataFrame, test: pd.DataFrame, vocab: D.ItemVocab,
                     max_len: int = 50) -> ProtocolData:
    """The ``session`` protocol: inputs are the current session's prefix only."""
    from kgrec.recommender import data as D

    sessions = [(u, s) for u, _sess, s in D.session_sequences(train, vocab)]
    windows = D.training_windows(sessions, max_len, empty_prefix=True)
    hist_valid = _histories([train], vocab)
    hist_test = _histories([train, valid], vocab)
    return ProtocolData(Protocol.session, windows, _session_heldout(valid, hist_valid, vocab, max_len),
                        _session_heldout(test, hist_test, vocab, max_len))


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
    held: dict[str, list] = {"valid": [[], [], [], [], []], "test": [[], [], [], [], []]}
    for u, s in seqs.items():
        if len(s) < 3 or (keep is not None and u not in keep):
            train_seqs[u] = s
            continue
        train_seqs[u] = s[:-2]
        for name, cut in (("valid", len(s) - 2), ("test", len(s) - 1)):
            us, ins, tg, pl, sn = held[name]
            us.append(u)
            ins.append(s[:cut])
            tg.append(int(s[cut]))
            pl.append(cut)
            sn.append(s[:cut])
    windows = D.training_windows(train_seqs, max_len, stride=stride)
    valid_ex, test_ex = (D.make_examples(*held[n], max_len) for n in ("valid", "test"))
    return ProtocolData(Protocol.loo, windows, valid_ex, test_ex)


def prefix_bucket(prefix_len: np.ndarray) -> np.ndarray:
    """Bucket label (see :data:`PREFIX_BUCKETS`) of each prefix length."""
    out = np.empty(len(prefix_len), dtype=object)
    for label, lo, hi in PREFIX_BUCKETS:
        m = prefix_len >= lo if hi is None else (prefix_len >= lo) & (prefix_len <= hi)
        out[m] = label
    return out
