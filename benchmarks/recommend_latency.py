"""Latency of `kgrec recommend` for known users, persona lookup in the graph included.

    .venv/bin/python benchmarks/recommend_latency.py --home .kgrec [--calls 500] [--threads 1]

Needs a built home with a persona model and a trained recommender (``kgrec train
personas`` + ``kgrec train recommender``; ``--train-epochs N`` trains the recommender first).

Single calls: :func:`kgrec.recommender.workflow.recommend` with a loaded context, i.e. per
call one Cypher round trip to check the user, the persona of the user's past (computed by the
past encoder on first use, then cached), the kernel (three parts, per-bucket fusion) and one
batched title query; a new session (empty prefix), the user's train + valid items excluded.
Batch: the kernel for B users at once -> users/s. Targets: p50 < 10 ms, p99 < 30 ms on CPU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def batch_recommend(store, ctx, users: list[str], k: int) -> list:
    """B known users' new sessions in one kernel call (the persona of each past, cached by the
    context), plus one titles query."""
    import numpy as np
    import torch

    from kgrec.recommender.data import pad_left

    m = ctx.model
    p = torch.as_tensor(np.stack([ctx.persona_of(u) for u in users]))
    seq = torch.zeros(len(users), m.max_len, dtype=torch.long)
    seen = torch.as_tensor(pad_left([m.vocab.encode(ctx.history.get(u, [])) for u in users], 2000))
    with torch.inference_mode():
        final = m.kernel.final_scores(seq, p, np.zeros(len(users), dtype=np.int64), seen)
        top = final.topk(k, dim=1).indices
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
        if a.train_epochs:
            t = time.perf_counter()
            W.train(store, settings, epochs=a.train_epochs)
            print(f"trained the recommender in {time.perf_counter() - t:.1f}s")
        t = time.perf_counter()
        ctx = W.load_context(store, settings)
        print(f"context loaded in {time.perf_counter() - t:.2f}s: {len(ctx.model.vocab) - 1} items, "
              f"k={ctx.model.plan.k}, fusion={ctx.meta.get('fusion')}")
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
