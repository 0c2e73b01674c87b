"""Graph build throughput on amazon-book-kgat (embeddings off).

    .venv/bin/python benchmarks/build_bench.py [--data ../shared/data/amazon-book-kgat] [--k-core 0]

Prints nodes/s, relationships/s, wall time per stage and peak RSS (this process and the
FalkorDB server). Runs in a fresh temporary KGREC_HOME, so the first load is measured.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from kgrec.kg.build import BuildOptions, build
from kgrec.kg.store import open_store
from kgrec.progress import RichProgress
from kgrec.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def server_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "amazon-book-kgat")
    ap.add_argument("--k-core", type=int, default=0, help="KGAT is already filtered; 0 keeps every row")
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--twice", action="store_true", help="also time an idempotent re-build (all MERGE hits)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), batch_size=args.batch_size)
        with open_store(settings) as store:
            t = time.perf_counter()
            summary = build(store, settings, BuildOptions(kind="kgat", data=args.data, k_core=args.k_core,
                                                         embeddings=False), RichProgress())
            wall = time.perf_counter() - t
            server_pid = store._server.pid if getattr(store, "_server", None) else None
            rebuild = None
            if args.twice:
                t = time.perf_counter()
                build(store, settings, BuildOptions(kind="kgat", data=args.data, k_core=args.k_core,
                                                   embeddings=False))
                rebuild = time.perf_counter() - t
            server_rss = server_peak_rss_mb(server_pid) if server_pid else float("nan")
    nodes = sum(summary.written.get(k, 0) for k in ("User", "Item", "Feature"))
    rels = sum(summary.written.get(k, 0) for k in ("INTERACTED", "HAS_FEATURE", "CO_OCCURS"))
    s = summary.seconds
    print("\n== build_bench: amazon-book-kgat, embeddings off ==")
    print(f"data                 {args.data}")
    print(f"written              nodes={nodes:,}  relationships={rels:,}  ({summary.written})")
    print(f"graph counts         {summary.counts}")
    print(f"stage seconds        {s}")
    print(f"nodes/s              {nodes / s['nodes']:,.0f}   (node stage {s['nodes']:.2f}s)")
    print(f"relationships/s      {rels / s['relationships']:,.0f}   (relationship stage {s['relationships']:.2f}s)")
    print(f"wall time            {wall:.2f}s (load {s['load']:.2f}s, preprocess {s['preprocess']:.2f}s)")
    if rebuild is not None:
        print(f"idempotent re-build  {rebuild:.2f}s")
    print(f"peak RSS             python={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
          f"  falkordb-server={server_rss:.0f} MB")


if __name__ == "__main__":
    main()
