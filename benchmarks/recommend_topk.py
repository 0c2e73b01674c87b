"""Exact top-100 over a 25k-item catalogue: torch matmul+topk vs faiss IndexFlatIP.

    .venv/bin/python benchmarks/recommend_topk.py [--items 25000] [--dim 64] [--threads 1]

Prints the median latency per call for batch sizes 1 and 256. The result decided
``kgrec.recommender.retriever.DEFAULT_TOPK_BACKEND``.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    import numpy as np
    import torch

    from kgrec.recommender.retriever import build_faiss_index, topk

    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=25_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=30)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    import faiss

    faiss.omp_set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    table = torch.randn(a.items + 1, a.dim, generator=g)
    index = build_faiss_index(table)
    for batch in (1, 256):
        q = torch.randn(batch, a.dim, generator=g)
        res = {}
        for backend in ("torch", "faiss"):
            kw = {"index": index} if backend == "faiss" else {}
            topk(q, table, a.k, backend, **kw)  # warm-up
            ts = []
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                topk(q, table, a.k, backend, **kw)
                ts.append(time.perf_counter() - t0)
            res[backend] = float(np.median(ts)) * 1e3
        _, it = topk(q, table, a.k, "torch")
        _, if_ = topk(q, table, a.k, "faiss", index=index)
        same = float((it == if_).float().mean())
        print(f"batch={batch:4d} items={a.items} dim={a.dim} k={a.k} threads={a.threads}: "
              f"torch {res['torch']:.3f} ms  faiss {res['faiss']:.3f} ms  (same ids {same:.3f})")


if __name__ == "__main__":
    main()
