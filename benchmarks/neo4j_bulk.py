"""`kgrec build --bulk` against the MERGE build, on the same local Neo4j (amazon-book-kgat, embeddings off).

    .venv/bin/python benchmarks/neo4j_bulk.py [--data ../shared/data/amazon-book-kgat] [--runs 1]
        [--heap 1g] [--pagecache 512m] [--max-load 1.5]

Each run starts a local Neo4j in a fresh temporary home (not timed), then times two `kgrec build`
commands end to end (child processes, as a user types them): the MERGE build into the empty
database, then `--bulk --fresh` (CSV files, stop, `neo4j-admin database import full`, restart,
constraints). The import rate is relationships / (CSV writing + neo4j-admin), the restarts
excluded; the whole command's wall time includes them. Each figure is printed with the load
average beside it, and each build waits until the 1-minute load average is under ``--max-load``
(the machine may be shared). The graphs of both builds are checked to have the same counts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KGREC = Path(sys.executable).parent / "kgrec"


def load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def wait_quiet(max_load: float, timeout_s: float = 1800.0) -> None:
    deadline = time.monotonic() + timeout_s
    while os.getloadavg()[0] >= max_load:
        if time.monotonic() > deadline:
            raise SystemExit(f"the machine stayed busy ({load()}); not measuring")
        print(f"  waiting for a quiet machine ({load()})", flush=True)
        time.sleep(30)


def kgrec_build(home: Path, uri: str, data: Path, *extra: str) -> tuple[float, dict[str, Any]]:
    """One `kgrec build` command: its wall time and its --json summary."""
    cmd = [str(KGREC), "build", "--dataset", "kgat", "--data", str(data), "--k-core", "0", "--no-embeddings",
           "--home", str(home), "--graph", uri, "--json", *extra]
    env = {k: v for k, v in os.environ.items() if k not in {"NEO4J_PASSWORD", "KGREC_GRAPH_URI"}}
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env, cwd=home)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return wall, json.loads(r.stdout)


def one_run(args: argparse.Namespace, run: int) -> dict[str, Any]:
    from kgrec.kg import neo4j_server

    with tempfile.TemporaryDirectory(prefix="kgrec-bulk-bench-") as tmp:
        home = Path(tmp)
        server = neo4j_server.start(home / "neo4j", bolt_port=neo4j_server.free_port(),
                                    http_port=neo4j_server.free_port(), heap=args.heap, pagecache=args.pagecache)
        try:
            wait_quiet(args.max_load)
            before = load()
            merge_wall, merge = kgrec_build(home, server.bolt_uri, args.data)
            print(f"run {run}: MERGE build     {merge_wall:6.1f} s wall   ({before} before, {load()} after)",
                  flush=True)
            wait_quiet(args.max_load)
            before = load()
            bulk_wall, bulk = kgrec_build(home, server.bolt_uri, args.data, "--bulk", "--fresh")
            print(f"run {run}: bulk build      {bulk_wall:6.1f} s wall   ({before} before, {load()} after)",
                  flush=True)
        finally:
            neo4j_server.stop(home / "neo4j")
    if bulk["counts"] != merge["counts"]:
        raise SystemExit(f"the builds differ: MERGE {merge['counts']} vs bulk {bulk['counts']}")
    return {"merge_wall": merge_wall, "merge": merge, "bulk_wall": bulk_wall, "bulk": bulk}


def report(r: dict[str, Any], run: int) -> None:
    s, m = r["bulk"]["seconds"], r["merge"]["seconds"]
    rels = sum(v for k, v in r["bulk"]["written"].items() if k in {"INTERACTED", "HAS_FEATURE", "CO_OCCURS"})
    nodes = sum(v for k, v in r["bulk"]["written"].items() if k in {"User", "Item", "Feature"})
    csv_s = s["nodes"] + s["relationships"]
    admin = s["bulk import (neo4j-admin)"]
    print(f"\nrun {run}: {nodes:,} nodes, {rels:,} relationships; counts equal: {r['bulk']['counts']}")
    print(f"| measure (run {run}) | MERGE | bulk |")
    print("|---|---:|---:|")
    print(f"| `kgrec build` wall, process start to exit (s) | {r['merge_wall']:.1f} | {r['bulk_wall']:.1f} |")
    print(f"| build total in the summary (s) | {m['total']:.1f} | {s['total']:.1f} |")
    print(f"| load + preprocess (s) | {m['load'] + m['preprocess']:.1f} | {s['load'] + s['preprocess']:.1f} |")
    print(f"| writing nodes: MERGE / CSV (s) | {m['nodes']:.2f} | {s['nodes']:.2f} |")
    print(f"| writing relationships: MERGE / CSV (s) | {m['relationships']:.2f} | {s['relationships']:.2f} |")
    print(f"| stop Neo4j / neo4j-admin import / start Neo4j (s) | – | {s['bulk import (stop)']:.1f} / "
          f"{admin:.1f} / {s['bulk import (start)']:.1f} |")
    print(f"| constraints (s) | {m['schema']:.2f} | {s['schema']:.2f} |")
    print(f"| relationships/s: MERGE writes / CSV + neo4j-admin | {rels / m['relationships']:,.0f} | "
          f"{rels / (csv_s + admin):,.0f} |")
    print(f"| relationships/s: neo4j-admin alone (JVM start included) | – | {rels / admin:,.0f} |")
    if "bulk import (phases)" in s:
        phases = s["bulk import (phases)"]
        print(f"| neo4j-admin's four phases as it reports them (s) / relationships/s | – | {phases:.1f} / "
              f"{rels / phases:,.0f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "amazon-book-kgat")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--heap", default="1g")
    ap.add_argument("--pagecache", default="512m")
    ap.add_argument("--max-load", type=float, default=1.5)
    args = ap.parse_args()
    from kgrec.kg import neo4j_server

    print(f"== neo4j_bulk: {args.data.name}, embeddings off; local Neo4j {neo4j_server.versions()} "
          f"(heap {args.heap}, page cache {args.pagecache}), {os.cpu_count()} CPUs; "
          f"{time.strftime('%Y-%m-%d %H:%M:%S')} ==", flush=True)
    results = [one_run(args, i + 1) for i in range(args.runs)]
    for i, r in enumerate(results):
        report(r, i + 1)


if __name__ == "__main__":
    main()
