"""A model-free persona probe: does a user space carry the user's next items? No recommender is trained.

    .venv/bin/python benchmarks/persona_probe.py --home /tmp/mlhome [--k 50] [--json out.json]

Needs a home with a build and a trained persona model (``kgrec train personas``). Under the
``session`` protocol, each validation (then test) session's items are the targets, seen items
(the user's past and the session's own earlier items) excluded, the whole catalogue ranked. A
target is scored by user-kNN (:class:`kgrec.recommender.neighbours.UserKNN`): the query is the
vector of the user's **past** (valid: train; test: train + valid, exactly what the recommender
pairs with the target), the neighbours are the other training users with the vector of their
training items; the user is never their own neighbour. Spaces:

``persona``           the persona of the past (the past encoder: inductive HDGI, own node excluded)
``persona_centred``   minus the mean persona of the training users
``persona_whitened``  centred, then scaled by the training users' covariance^-1/2 (ridge 1e-3)
``history_user``      the mean LLM embedding of the past's items
``hdgi_input``        HDGI's own input features of the past (mean LLM block + SVD block)
``svd_foldin``        the SVD block alone (``sum V_i / sqrt(|I|)``)
``itemset_knn``       the binary item set (classic UserKNN, cosine)
``popularity``        training counts (no neighbours)

Prints HR@10 and HR@100 with standard errors (binomial, ``sqrt(p(1-p)/n)``), overall and at prefix
length 0, and the geometry of each space (:mod:`kgrec.personas.geometry`), with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def _spaces(prep, encoder, rows_train, rows_eval):
    """``name -> (train-user matrix, eval-past matrix)``."""
    import scipy.sparse as sp

    from kgrec.recommender import data as D

    hist = prep.histories
    enc = encoder.encoder
    pos = encoder.positions
    ids = prep.vocab.ids

    def arrays_idx(rows):
        return [np.asarray([pos[ids[i]] for i in hist.items(r) if ids[i] in pos], np.int64) for r in rows]

    table = prep.persona_table("persona")
    out = {"persona": (table[rows_train], table[rows_eval])}
    mu = out["persona"][0].mean(0, keepdims=True)
    out["persona_centred"] = (out["persona"][0] - mu, out["persona"][1] - mu)
    cov = np.cov(out["persona_centred"][0].T) + 1e-3 * np.eye(table.shape[1])
    w, v = np.linalg.eigh(cov)
    white = v @ np.diag(w ** -0.5) @ v.T
    out["persona_whitened"] = (out["persona_centred"][0] @ white, out["persona_centred"][1] @ white)
    hm = D.history_means(hist, prep.item_table)
    out["history_user"] = (hm[rows_train], hm[rows_eval])
    feat = enc.featurizer
    tr_idx, ev_idx = arrays_idx(rows_train), arrays_idx(rows_eval)
    out["hdgi_input"] = (feat.sessions(enc.arrays, tr_idx), feat.sessions(enc.arrays, ev_idx))
    if feat.item_factors.shape[1]:
        f = feat.item_factors.astype(np.float64)

        def fold(idx):
            return np.stack([f[np.unique(i)].sum(0) / np.sqrt(max(len(np.unique(i)), 1)) for i in idx])
        out["svd_foldin"] = (fold(tr_idx), fold(ev_idx))
    n = len(prep.vocab)

    def itemset(rows):
        r = np.concatenate([np.full(len(hist.items(x)), j) for j, x in enumerate(rows)])
        c = np.concatenate([hist.items(x) for x in rows])
        m = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(rows), n))
        m.data[:] = 1.0
        return m
    out["itemset_knn"] = (itemset(rows_train), itemset(rows_eval))
    return out


def _knn_scores(train_users, train_seqs, mat_train, mat_eval, own, n_items, k):
    import scipy.sparse as sp

    from kgrec.recommender.neighbours import UserKNN

    if sp.issparse(mat_train):  # cosine on sparse rows: normalise, multiply, then the same weighting
        from sklearn.preprocessing import normalize

        knn = UserKNN(train_users, np.zeros((len(train_users), 1), np.float32), train_seqs, n_items, k)
        keep = [i for i, u in enumerate(train_users) if u in knn.index]
        return knn.scores_from_similarity((normalize(mat_eval) @ normalize(mat_train[keep]).T).toarray(), own)
    return UserKNN(train_users, mat_train, train_seqs, n_items, k).scores(mat_eval, own)


def _hits(scores_per_row, row_of_example, examples):
    """(HR@10 hits, HR@100 hits) per example: rank of the target with seen items removed."""
    h10, h100 = np.zeros(len(examples), bool), np.zeros(len(examples), bool)
    for i in range(len(examples)):
        s = scores_per_row[row_of_example[i]].astype(np.float64).copy()
        s[0] = -np.inf
        s[examples.seen(i)] = -np.inf
        t = int(examples.targets[i])
        r = 1 + (s > s[t]).sum() + (s == s[t]).sum() - 1
        h10[i], h100[i] = r <= 10, r <= 100
    return h10, h100


def _fmt(h):
    p = h.mean() if len(h) else float("nan")
    return f"{p:.4f} ± {np.sqrt(p * (1 - p) / max(len(h), 1)):.4f}"


def probe(home: Path, k: int = 50, split_names=("valid", "test")) -> dict:
    from kgrec.kg.store import open_store
    from kgrec.personas.geometry import geometry
    from kgrec.recommender import data as D
    from kgrec.recommender.recipe import prepare
    from kgrec.recommender.workflow import load_inputs
    from kgrec.settings import Settings

    settings = Settings(home=home)
    with open_store(settings) as store:
        inp = load_inputs(store, settings)
    prep = prepare(inp.split, inp.item_table, inp.personas, item_ids=inp.vocab.ids, protocol="session")
    train_seqs = D.user_sequences(prep.train, prep.vocab)
    hist = prep.histories
    # each training user's whole training past, as an extra row of the histories (own node excluded)
    users = sorted(train_seqs)
    extra = D.Histories.from_lists(users, [train_seqs[u] for u in users])
    merged = D.Histories.from_lists(hist.users + users, hist.lists() + extra.lists())
    prep.histories, prep._tables = merged, {}
    rows_train = np.arange(len(hist), len(merged))
    result: dict = {"home": str(home), "k": k, "n_train_users": len(users), "spaces": {}}
    n_items = len(prep.vocab)
    counts = prep.counts
    for name in split_names:
        ex = getattr(prep, name)
        rows_eval = np.unique(ex.context)
        at = {int(r): j for j, r in enumerate(rows_eval)}
        row_of = np.asarray([at[int(c)] for c in ex.context])
        own = [merged.users[int(r)] for r in rows_eval]
        zero = ex.prefix_len == 0
        t0 = time.perf_counter()
        spaces = _spaces(prep, inp.personas, rows_train, rows_eval)
        for space, (mt, me) in spaces.items():
            scores = _knn_scores(users, train_seqs, mt, me, own, n_items, k)
            h10, h100 = _hits(scores, row_of, ex)
            g = {} if hasattr(mt, "toarray") else geometry(mt)
            result["spaces"].setdefault(space, {})[name] = {
                "HR@10": float(h10.mean()), "HR@100": float(h100.mean()), "HR@10@0": float(h10[zero].mean()),
                "HR@100@0": float(h100[zero].mean()), "n": len(ex), "n0": int(zero.sum())}
            result["spaces"][space]["geometry"] = g
            print(f"{name:5s} {space:17s} HR@10 {_fmt(h10)}  HR@100 {_fmt(h100)}  | prefix 0: HR@10 {_fmt(h10[zero])}"
                  f"  HR@100 {_fmt(h100[zero])}", flush=True)
        pop = np.tile(counts, (len(rows_eval), 1))
        h10, h100 = _hits(pop, row_of, ex)
        result["spaces"].setdefault("popularity", {})[name] = {"HR@10": float(h10.mean()),
                                                                "HR@100": float(h100.mean())}
        print(f"{name:5s} {'popularity':17s} HR@10 {_fmt(h10)}  HR@100 {_fmt(h100)}  | prefix 0: HR@10 "
              f"{_fmt(h10[zero])}  HR@100 {_fmt(h100[zero])}   ({time.perf_counter() - t0:.0f}s, "
              f"load {os.getloadavg()[0]:.2f})", flush=True)
    print("geometry (train users): " + json.dumps({s: {k_: round(v, 3) for k_, v in r["geometry"].items()}
                                                   for s, r in result["spaces"].items() if r.get("geometry")}))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--k", type=int, default=50, help="neighbours per query")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    t = time.perf_counter()
    res = probe(a.home, a.k)
    print(f"probe took {time.perf_counter() - t:.0f}s wall, {time.process_time():.0f}s CPU, load average "
          f"{os.getloadavg()[0]:.2f}")
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
