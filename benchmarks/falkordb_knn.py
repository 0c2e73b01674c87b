"""FalkorDB's HNSW vector index: recall@10 and latency against efRuntime (and M), one run.

    .venv/bin/python benchmarks/falkordb_knn.py [--n 24915] [--queries 200] [--ef 10,20,50,100,200]
        [--m 16,32] [--demo-home HOME]

Writes ``--n`` random unit 384-d vectors (as ``backends_bench.py`` stage 3 does) into a fresh
embedded FalkorDB, and, with ``--demo-home``, the home's MiniLM item vectors into a second graph.
For every (M, efRuntime), efConstruction 200, the adapter's own ``create_vector_index`` (which
rebuilds the index when a setting differs) and ``knn`` run ``--queries`` queries (k=10) with
stored vectors: recall@10 against exact cosine top-10 (numpy), the share where the query's own
item comes first, latency p50/p99 and the index build time. Prints a table and the load average.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def measure(store, ids: list[str], vecs: np.ndarray, queries: np.ndarray, k: int = 10) -> dict:
    exact = np.argsort(-(vecs[queries] @ vecs.T), axis=1)[:, :k]
    lat, recall, self_hit = [], [], 0
    for q, truth in zip(queries, exact, strict=True):
        t = time.perf_counter()
        hits = store.knn("Item", "emb", vecs[q], k)
        lat.append(time.perf_counter() - t)
        got = {h for h, _ in hits}
        recall.append(len(got & {ids[i] for i in truth}) / k)
        self_hit += bool(hits) and hits[0][0] == ids[q]
    return {"recall@10": float(np.mean(recall)), "self_first": self_hit / len(queries),
            "p50_ms": float(np.percentile(lat, 50) * 1e3), "p99_ms": float(np.percentile(lat, 99) * 1e3)}


def run_dataset(name: str, vecs: np.ndarray, grid: list[tuple[int, int]], n_queries: int, seed: int) -> list[dict]:
    from kgrec.kg.store import open_store
    from kgrec.settings import Settings

    vecs = (vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    ids = [f"i{i}" for i in range(len(vecs))]
    queries = np.random.default_rng(seed).integers(0, len(vecs), n_queries)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        with open_store(Settings(home=home)) as store:
            store.ensure_schema()
            store.upsert_nodes("Item", ({"key": i, "props": {}} for i in ids))
            store.write_vectors("Item", "emb", ids, vecs)
        for m, ef in grid:
            settings = Settings(home=home, falkordb_hnsw_m=m, falkordb_hnsw_ef_runtime=ef)
            with open_store(settings) as store:
                t = time.perf_counter()
                store.create_vector_index("Item", "emb", vecs.shape[1])
                store.knn("Item", "emb", vecs[0], 10, wait_s=600)  # waits for the asynchronous build
                build_s = time.perf_counter() - t
                r = {"data": name, "n": len(vecs), "M": m, "efRuntime": ef, "build_s": build_s,
                     **measure(store, ids, vecs, queries)}
            rows.append(r)
            print(f"{name:8s} M {m:3d} efRuntime {ef:4d}: recall@10 {r['recall@10']:.3f} own item first "
                  f"{r['self_first']:.1%} p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms "
                  f"(index built in {build_s:.1f} s; load {os.getloadavg()[0]:.2f})", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=24_915)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ef", default="10,20,50,100,200")
    ap.add_argument("--m", default="16")
    ap.add_argument("--demo-home", type=Path, default=None, help="also the MiniLM item vectors of this home")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    grid = [(int(m), int(ef)) for m in a.m.split(",") for ef in a.ef.split(",")]
    print(f"load average at the start {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = run_dataset("random", np.random.default_rng(a.seed).normal(size=(a.n, 384)), grid, a.queries, a.seed)
    if a.demo_home:
        from kgrec.kg.artefacts import load_item_embeddings
        from kgrec.settings import Settings

        _, emb = load_item_embeddings(Settings(home=a.demo_home))
        rows += run_dataset("minilm", np.asarray(emb), grid, a.queries, a.seed)
    print("\n| data | items | M | efRuntime | recall@10 | own item first | p50 ms | p99 ms | index build s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['data']} | {r['n']:,} | {r['M']} | {r['efRuntime']} | {r['recall@10']:.3f} | "
              f"{r['self_first']:.1%} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['build_s']:.1f} |")
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
