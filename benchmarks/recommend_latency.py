"""Latency of `kgrec recommend`: the cold CLI, in-process single calls and batches, and (``--serve``)
the open-loop server curve, printed in one run.

    .venv/bin/python benchmarks/recommend_latency.py --home HOME [--calls 500] [--threads 1] \
        [--cli-runs 5] [--serve --rates 100,300,500,1000 --seconds 20 --png curve.png]

Needs a built home with a persona model and a trained recommender (``kgrec train
personas`` + ``kgrec train recommender``; ``--train-epochs N`` trains the recommender first).

* **Cold CLI** (``--cli-runs``, 0 to skip): wall time of fresh processes of ``kgrec --help``,
  ``kgrec recommend --user U -k 10`` and ``kgrec recommend --session a --session b --session c``
  (embedded database start included), median and max, against the targets 0.5 / 1.5 / 2.5 s.
* **Single calls**: :func:`kgrec.recommender.workflow.recommend` with a loaded context, i.e. per
  call one Cypher round trip to check the user, the known user's cached persona-part query, the
  kernel (three parts' scores, per-bucket fusion) and one batched title query; a new session
  (empty prefix), the user's train + valid items excluded. Targets: p50 < 10 ms, p99 < 30 ms.
* **Batch**: the kernel for B known users at once -> users/s.
* ``--serve``: ``benchmarks/serve_load.py --driver vegeta`` on the same home (server on CPU 0,
  vegeta on CPU 1), its p50/p99/p99.9 against rate for the known and mixed traffic.

Every section prints the load average beside its figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

KGREC = Path(sys.executable).with_name("kgrec")


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def cold_cli(home: Path, user: str, session: list[str], runs: int, server: str) -> None:
    """Median and max wall time of fresh ``kgrec`` processes (nothing cached in the process);
    ``server`` says whether the embedded database was already running."""
    env = {**os.environ, "KGREC_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    cases = [("kgrec --help", [str(KGREC), "--help"], 0.5),
             ("kgrec recommend --user U -k 10", [str(KGREC), "recommend", "--user", user, "-k", "10"], 1.5),
             (f"kgrec recommend --session x{len(session)} -k 10",
              [str(KGREC), "recommend", *[a for i in session for a in ("--session", i)], "-k", "10"], 2.5)]
    print(f"\ncold CLI ({runs} fresh processes each, home {home}, {server}, load average before {load_average()}):")
    print("| command | median s | max s | target s |")
    print("|---|---|---|---|")
    for name, cmd, target in cases:
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(cmd, env=env, check=True, capture_output=True)
            ts.append(time.perf_counter() - t0)
        print(f"| `{name}` | {statistics.median(ts):.2f} | {max(ts):.2f} | < {target} |")
    print(f"load average after: {load_average()}")


def batch_recommend(store, ctx, users: list[str], k: int) -> list:
    """B known users' new sessions in one kernel call (each user's cached persona-part query and
    the parts' empty-session queries), plus one titles query."""
    import numpy as np

    from kgrec.recommender.data import pad_left
    from kgrec.recommender.fusion import top_indices

    m = ctx.model
    empty = m.empty_queries
    queries = [np.tile(q, (len(users), 1)) for q in empty[:-1]]
    cached = [ctx.query_of(u) for u in users]
    queries.append(np.stack([q if q is not None else m.persona_queries(ctx.persona_of(u)[None])[0]
                             for u, q in zip(users, cached, strict=True)]))
    seen = pad_left([m.vocab.encode(ctx.history.get(u, [])) for u in users], 2000)
    top = top_indices(m.final_scores(queries, np.zeros(len(users), dtype=np.int64), seen), k)
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
    ap.add_argument("--cli-runs", type=int, default=5, help="fresh processes per CLI command (0: skip)")
    ap.add_argument("--serve", action="store_true", help="also run serve_load.py --driver vegeta on the home")
    ap.add_argument("--rates", default="100,300,500,1000", help="--serve: arrival rates, req/s")
    ap.add_argument("--seconds", type=float, default=20.0, help="--serve: seconds per rate")
    ap.add_argument("--png", type=Path, default=None, help="--serve: write the latency-rate curve here")
    ap.add_argument("--json", type=Path, default=None, help="--serve: write its results here")
    a = ap.parse_args()

    import numpy as np
    import torch

    from kgrec.kg.store import open_store
    from kgrec.recommender import workflow as W
    from kgrec.settings import Settings

    torch.set_num_threads(a.threads)
    settings = Settings(home=a.home, torch_threads=a.threads)
    if a.cli_runs:  # first with no database running: each command starts the embedded one itself
        with open_store(settings) as store:
            ctx = W.load_context(store, settings)
            user = min(ctx.history)
            session = list(ctx.history[user][-3:])
        cold_cli(a.home, user, session, a.cli_runs, "no database server running (each command starts it)")
    with open_store(settings) as store:
        if a.cli_runs:
            cold_cli(a.home, user, session, a.cli_runs, "database server already running (as after `kgrec db start`)")
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
        print(f"\nsingle recommend (k={a.k}, {a.calls} known users, {a.threads} thread(s), store={store.uri}, "
              f"load average {load_average()}):")
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
              f"{n_batches * a.batch / dt:.0f} users/s ({dt / n_batches * 1e3:.1f} ms per batch; "
              f"load average {load_average()})")
    if a.serve:
        cmd = [sys.executable, str(Path(__file__).with_name("serve_load.py")), "--home", str(a.home),
               "--driver", "vegeta", "--rates", a.rates, "--mixes", "known,mixed", "--server-cpus", "0",
               "--load-cpus", "1", "--seconds", str(a.seconds), "--p99-target", "10,30,50",
               *(["--png", str(a.png)] if a.png else []), *(["--json", str(a.json)] if a.json else [])]
        print(f"\n$ {' '.join(cmd[1:])}", flush=True)
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
