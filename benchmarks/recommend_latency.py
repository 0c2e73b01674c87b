"""Latency of `kgrec recommend` for known users, persona lookup in the graph included.

    .venv/bin/python benchmarks/recommend_latency.py --home .kgrec [--calls 500] [--threads 1]

Needs a built home with ``User.persona`` and a trained recommender (``kgrec train
personas`` + ``kgrec train recommender``). For a home that has neither yet,
``--stand-in-personas`` writes stand-in personas (mean item embedding of each user's
training items, randomly projected to 64 dims; the graph's real ones are never
overwritten) and ``--train-epochs N`` trains the recommender first.

Single calls: :func:`kgrec.recommender.workflow.recommend` with a loaded context, i.e.
per call one Cypher round trip for the persona, the model (retriever top-K + SASRec
rerank) and one batched title query; history = the user's train + valid items.
Batch: the same graph + model work for B users at once (one persona query with
``IN $ids``, one batched forward of each model) -> users/s. Targets: p50 < 10 ms,
p99 < 30 ms on CPU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def stand_in_personas(store, settings, dim: int = 64) -> int:
    import numpy as np

    from kgrec.kg.artefacts import load_split

    users = store.stream_nodes("User", ["persona"])
    if any(p is not None for p in users.properties["persona"]):
        return 0
    split = load_split(settings)
    items = store.stream_nodes("Item", ["emb"])
    emb = {i: np.asarray(v, np.float32) for i, v in zip(items.ids, items.properties["emb"]) if v is not None}
    rng = np.random.default_rng(0)
    proj = None
    ids, vecs = [], []
    for u, g in split.train.groupby(split.train["user"].astype(str)):
        rows = [emb[str(i)] for i in g["item"] if str(i) in emb]
        if rows:
            m = np.mean(rows, axis=0)
            proj = proj if proj is not None else rng.normal(size=(m.shape[0], dim)).astype(np.float32)
            ids.append(u)
            vecs.append(m @ proj / np.sqrt(m.shape[0]))
    store.write_vectors("User", "persona", ids, np.stack(vecs), extra={"persona_version": "stand-in"})
    return len(ids)


def batch_recommend(store, ctx, users: list[str], k: int) -> list:
    """B users in one go: one persona query, one forward per model, one titles query."""
    import numpy as np
    import torch

    from kgrec.recommender.data import pad_left
    from kgrec.recommender.rerank import blend
    from kgrec.recommender.retriever import topk

    m = ctx.model
    rows = store.execute("MATCH (u:User) WHERE u.id IN $ids RETURN u.id AS id, u.persona AS p",
                         {"ids": users}, read_only=True)
    pers = {r["id"]: r["p"] for r in rows}
    p = torch.zeros(len(users), m.retriever.persona_dim)
    for j, u in enumerate(users):
        if pers.get(u) is not None:
            p[j] = torch.as_tensor(np.asarray(pers[u], np.float32))
    seq = torch.as_tensor(pad_left([m.vocab.encode(ctx.history.get(u, [])) for u in users], m.max_len))
    with torch.inference_mode():
        q = m.retriever.query_vectors(seq, p if m.retriever.fusion != "none" else None, table=m._rtable)
        rv, rc = topk(q, m._rtable, m.k, m.backend, index=m._index)
        s = m.sasrec.score_candidates(seq[:, -m.sasrec.max_len:], rc, table=m._stable)
        final = blend(s, rv, m.alpha)
        top = rc.gather(1, final.topk(k, dim=1).indices)
    ids = sorted({m.vocab.ids[i] for i in top.flatten().tolist()})
    store.execute("MATCH (i:Item) WHERE i.id IN $ids RETURN i.id AS id, i.title AS title", {"ids": ids},
                  read_only=True)
    return top.tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", type=Path, default=Path(".kgrec"))
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--stand-in-personas", action="store_true")
    ap.add_argument("--train-epochs", type=int, default=0, help="train the recommender first (0: use the saved one)")
    a = ap.parse_args()

    import numpy as np
    import torch

    from kgrec.kg.store import open_store
    from kgrec.recommender import workflow as W
    from kgrec.settings import Settings

    torch.set_num_threads(a.threads)
    settings = Settings(home=a.home, torch_threads=a.threads)
    with open_store(settings) as store:
        if a.stand_in_personas:
            print(f"stand-in personas written: {stand_in_personas(store, settings)}")
        if a.train_epochs:
            t = time.perf_counter()
            W.train(store, settings, epochs=a.train_epochs)
            print(f"trained the recommender in {time.perf_counter() - t:.1f}s")
        t = time.perf_counter()
        ctx = W.load_context(store, settings)
        print(f"context loaded in {time.perf_counter() - t:.2f}s: {len(ctx.model.vocab) - 1} items, "
              f"k={ctx.model.k}, fusion={ctx.meta.get('fusion')}, backend={ctx.model.backend}")
        users = sorted(ctx.history)
        rng = np.random.default_rng(0)
        pick = [users[i] for i in rng.integers(len(users), size=a.calls)]
        for u in pick[:20]:  # warm-up
            W.recommend(store, settings, user=u, k=a.k, context=ctx)
        ts = []
        for u in pick:
            t0 = time.perf_counter()
            W.recommend(store, settings, user=u, k=a.k, context=ctx)
            ts.append((time.perf_counter() - t0) * 1e3)
        ts = np.asarray(ts)
        lookup = []
        for u in pick[:200]:
            t0 = time.perf_counter()
            store.run("recommend_user", {"user": u}, read_only=True)
            lookup.append((time.perf_counter() - t0) * 1e3)
        print(f"\nsingle recommend (k={a.k}, {a.calls} known users, {a.threads} thread(s), store={store.uri}):")
        print("| p50 ms | p90 ms | p99 ms | max ms | persona lookup p50 ms | target |")
        print("|---|---|---|---|---|---|")
        print(f"| {np.percentile(ts, 50):.2f} | {np.percentile(ts, 90):.2f} | {np.percentile(ts, 99):.2f} | "
              f"{ts.max():.2f} | {np.median(lookup):.2f} | p50 < 10, p99 < 30 |")
        batch_recommend(store, ctx, pick[:a.batch], a.k)  # warm-up
        n_batches = max(1, min(8, a.calls // a.batch))
        t0 = time.perf_counter()
        for b in range(n_batches):
            batch_recommend(store, ctx, [pick[(b * a.batch + j) % len(pick)] for j in range(a.batch)], a.k)
        dt = time.perf_counter() - t0
        print(f"\nbatch throughput: {n_batches} batches of {a.batch} users: "
              f"{n_batches * a.batch / dt:.0f} users/s ({dt / n_batches * 1e3:.1f} ms per batch)")


if __name__ == "__main__":
    main()
