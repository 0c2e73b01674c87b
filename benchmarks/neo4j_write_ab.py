"""Neo4j relationship writes, A/B: the variants of issue 19 on amazon-book-kgat's INTERACTED rows.

Needs a home whose graph (on the Neo4j at ``--graph``) holds the KGAT build's users and items
(``kgrec build --dataset kgat --data <amazon-book-kgat> --k-core 0``). Each variant deletes every
``INTERACTED`` relationship, then writes the build's 652k rows again through the store port and
reports wall time, relationships/s, this process's CPU seconds and the server's (from
``/proc/<pid>/stat`` of the local Neo4j), with the load average before and after:

- ``merge``: ``MATCH … MATCH … MERGE`` with static property keys (the build's path on a graph that
  already holds the type);
- ``create``: ``CREATE`` (``upsert_relationships(fresh=True)``, the build's path for a type the
  graph does not hold yet);
- ``merge-py`` / ``create-py``: the same without the ``neo4j-rust-ext`` codec (the driver's pure
  Python packstream), each in a child process that hides the extension before importing neo4j.

    python benchmarks/neo4j_write_ab.py --home H --graph neo4j://127.0.0.1:7687 \\
        --data ../shared/data/amazon-book-kgat [--variants merge,create,merge-py,create-py] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def server_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_variant(args: argparse.Namespace, variant: str) -> dict:
    from kgrec.kg import graph_rows, neo4j_server
    from kgrec.kg.build import BuildOptions, load_and_split
    from kgrec.kg.store import open_store
    from kgrec.progress import NullProgress
    from kgrec.settings import Settings

    settings = Settings(home=args.home, graph_uri=args.graph)
    _, split = load_and_split(BuildOptions(kind="kgat", data=args.data, k_core=0), NullProgress(), {})
    rows = list(graph_rows.interaction_rows(split.train))
    server = neo4j_server.find_running(settings.home / "neo4j")
    with open_store(settings) as store:
        store.delete_relationships("INTERACTED")
        load0, cpu0, srv0, t0 = os.getloadavg()[0], time.process_time(), server_cpu_s(server.pid), time.perf_counter()
        n = store.upsert_relationships("INTERACTED", rows, fresh=variant.startswith("create"))
        wall = time.perf_counter() - t0
        out = {"variant": variant, "rels": n, "wall_s": wall, "rels_per_s": n / wall,
               "client_cpu_s": time.process_time() - cpu0, "server_cpu_s": server_cpu_s(server.pid) - srv0,
               "load_before": load0, "load_after": os.getloadavg()[0],
               "rust_codec": "neo4j._rust" in sys.modules and sys.modules["neo4j._rust"] is not None}
        assert store.counts()["relationships"]["INTERACTED"] == len(rows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--graph", required=True)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--variants", default="merge,create,merge-py,create-py")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        if args.child.endswith("-py"):
            sys.modules["neo4j._rust"] = None  # the driver falls back to its Python packstream
        print("RESULT " + json.dumps(run_variant(args, args.child)), flush=True)
        return
    results = []
    for _ in range(args.repeat):
        for variant in args.variants.split(","):
            cmd = [sys.executable, __file__, "--home", str(args.home), "--graph", args.graph, "--data",
                   str(args.data), "--child", variant]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            r = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
            results.append(r)
            print(f"{r['variant']:10s} {r['rels']:>7d} rels  {r['wall_s']:6.1f} s  {r['rels_per_s']:>8,.0f} rels/s  "
                  f"client CPU {r['client_cpu_s']:5.1f} s  server CPU {r['server_cpu_s']:5.1f} s  "
                  f"rust codec {r['rust_codec']}  load {r['load_before']:.2f}→{r['load_after']:.2f}", flush=True)


if __name__ == "__main__":
    main()
