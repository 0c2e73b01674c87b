"""FalkorDB (embedded) and the local Neo4j (GDS), side by side in one run.

    .venv/bin/python benchmarks/backends_bench.py [--data ../shared/data/amazon-book-kgat]
        [--persona-data data/demo/movielens] [--persona-epochs 30] [--skip-personas]

For each backend, in a fresh temporary home and a fresh database (a child process per backend,
so that the client's peak RSS is its own):
1. build of amazon-book-kgat, embeddings off: nodes/s, relationships/s, wall, peak RSS of the
   client and of the server;
2. the training projection streamed back (users, items, features; INTERACTED, HAS_FEATURE):
   through GDS (`gds.graph.project` + streams, Neo4j) and through batched Cypher (both);
3. KNN: random unit 384-d vectors on every item, a cosine vector index, 200 queries (k=10);
4. `train personas` end to end on MovieLens (build with MiniLM embeddings, then HDGI for
   ``--persona-epochs`` epochs, 1 torch thread), a one-epoch recommender (only so that there is
   a model) and `recommend --write` for 50 users (median).
Needs `make neo4j`. Prints one table; the machine may be shared, so compare within a run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from build_bench import server_peak_rss_mb as peak_rss_mb  # same folder: sys.path[0]

REPO = Path(__file__).resolve().parents[1]


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) of a process (None: this one)."""
    if pid is None:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _settings(backend: str, home: Path, uri: str | None, **extra: Any) -> Any:
    from kgrec.settings import Settings

    return Settings(home=home, graph_uri=uri, **extra) if backend == "neo4j" else Settings(home=home, **extra)


def _server_pid(store: Any, home: Path) -> int | None:
    if store.backend == "neo4j":
        from kgrec.kg import neo4j_server

        server = neo4j_server.find_running(home / "neo4j")
        return server.pid if server else None
    server = getattr(store, "_server", None)
    return server.pid if server else None


def worker_graph(backend: str, home: Path, uri: str | None, data: Path) -> dict[str, Any]:
    """Stages 1–3 on one backend (runs in its own process)."""
    from kgrec.kg.build import BuildOptions, build
    from kgrec.kg.store import GraphStore, open_store

    settings = _settings(backend, home, uri)
    out: dict[str, Any] = {"backend": backend}
    with open_store(settings) as store:
        store.clear()
        pid = _server_pid(store, home)
        cpu0 = (cpu_s(), cpu_s(pid) if pid else 0.0)
        t = time.perf_counter()
        summary = build(store, settings, BuildOptions(kind="kgat", data=data, k_core=0, embeddings=False))
        out["build_wall_s"] = time.perf_counter() - t
        out["build_cpu_s"] = (cpu_s() - cpu0[0]) + ((cpu_s(pid) - cpu0[1]) if pid else 0.0)
        nodes = sum(summary.written.get(k, 0) for k in ("User", "Item", "Feature"))
        rels = sum(summary.written.get(k, 0) for k in ("INTERACTED", "HAS_FEATURE", "CO_OCCURS"))
        out.update(nodes=nodes, rels=rels, nodes_per_s=nodes / summary.seconds["nodes"],
                   rels_per_s=rels / summary.seconds["relationships"])
        out["client_rss_build_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out["rels_per_cpu_s"] = (nodes + rels) / out["build_cpu_s"]
        out["server_rss_mb"] = peak_rss_mb(pid) if pid else float("nan")

        present = store.counts()["relationships"]
        nodes_spec = {"User": [], "Item": [], "Feature": []}
        rels_spec = {t: [] for t in ("INTERACTED", "HAS_FEATURE") if present.get(t)}
        t = time.perf_counter()
        proj = GraphStore.stream_projection(store, nodes_spec, rels_spec)  # batched Cypher (the port's)
        out["proj_cypher_s"] = time.perf_counter() - t
        out["proj_rels"] = sum(len(r.src) for r in proj.relationships.values())
        if backend == "neo4j":
            t = time.perf_counter()
            gproj = store.stream_projection(nodes_spec, rels_spec)  # GDS
            out["proj_gds_s"] = time.perf_counter() - t
            assert sum(len(r.src) for r in gproj.relationships.values()) == out["proj_rels"]

        items = store.stream_nodes("Item").ids
        rng = np.random.default_rng(0)
        vecs = rng.normal(size=(len(items), 384)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        t = time.perf_counter()
        store.write_vectors("Item", "emb", items, vecs)
        store.create_vector_index("Item", "emb", 384)
        out["vectors_write_index_s"] = time.perf_counter() - t
        for _ in range(300):  # FalkorDB builds the index asynchronously
            try:
                store.knn("Item", "emb", vecs[0], 10)
                break
            except Exception:  # noqa: BLE001 (index not ready yet)
                time.sleep(0.1)
        lat, self_hits = [], 0
        for q in rng.integers(0, len(items), 200):
            t = time.perf_counter()
            hits = store.knn("Item", "emb", vecs[q], 10)
            lat.append(time.perf_counter() - t)
            self_hits += bool(hits) and hits[0][0] == items[q]  # HNSW is approximate
        out["knn_self_hit"] = self_hits / 200
        out["knn_p50_ms"] = float(np.percentile(lat, 50) * 1000)
        out["knn_p99_ms"] = float(np.percentile(lat, 99) * 1000)
        out["client_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        store.clear()
    return out


def worker_personas(backend: str, home: Path, uri: str | None, data: Path, epochs: int) -> dict[str, Any]:
    """Stage 4: MovieLens build with embeddings, `train personas`, one `recommend --write`."""
    import torch

    from kgrec.kg.build import BuildOptions, build
    from kgrec.kg.store import open_store
    from kgrec.personas.workflow import train_personas
    from kgrec.recommender import workflow as rec

    torch.set_num_threads(1)
    settings = _settings(backend, home, uri)
    out: dict[str, Any] = {"backend": backend}
    with open_store(settings) as store:
        store.clear()
        t = time.perf_counter()
        build(store, settings, BuildOptions(kind="movielens", data=data, embeddings=True))
        out["ml_build_s"] = time.perf_counter() - t
        t = time.perf_counter()
        train_personas(store, settings, epochs=epochs, patience=epochs)
        out["personas_s"] = time.perf_counter() - t
        t = time.perf_counter()
        rec.train(store, settings, epochs=1)
        out["recommender_1epoch_s"] = time.perf_counter() - t
        ctx = rec.load_context(store, settings)
        users = [r["uid"] for r in store.execute("MATCH (u:User) RETURN u.id AS uid ORDER BY u.id LIMIT 50",
                                                 read_only=True)]
        lat = []
        for user in users:
            t = time.perf_counter()
            rec.recommend(store, settings, user=user, k=10, write=True, run_id="bench", context=ctx)
            lat.append(time.perf_counter() - t)
        out["recommend_write_ms"] = float(np.percentile(lat, 50) * 1000)
        store.clear()
    return out


def _child(stage: str, backend: str, home: Path, uri: str | None, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--worker", stage, "--backend", backend, "--home", str(home),
           "--data", str(args.data), "--persona-data", str(args.persona_data),
           "--persona-epochs", str(args.persona_epochs)] + (["--uri", uri] if uri else [])
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise SystemExit(f"{stage} on {backend} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _fmt(v: Any, spec: str) -> str:
    return format(v, spec) if isinstance(v, (int, float)) else str(v if v is not None else "–")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "amazon-book-kgat")
    ap.add_argument("--persona-data", type=Path, default=REPO / "data" / "demo" / "movielens")
    ap.add_argument("--persona-epochs", type=int, default=30)
    ap.add_argument("--skip-personas", action="store_true")
    ap.add_argument("--worker", choices=["graph", "personas"], help=argparse.SUPPRESS)
    ap.add_argument("--backend", help=argparse.SUPPRESS)
    ap.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--uri", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        fn = worker_graph if args.worker == "graph" else worker_personas
        extra = (args.persona_data, args.persona_epochs) if args.worker == "personas" else (args.data,)
        print(json.dumps(fn(args.backend, args.home, args.uri, *extra)))
        return

    from kgrec.kg import neo4j_server

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        homes = {b: Path(tmp) / b for b in ("falkordb", "neo4j")}
        for h in homes.values():
            h.mkdir()
        t = time.perf_counter()
        server = neo4j_server.start(homes["neo4j"] / "neo4j", bolt_port=neo4j_server.free_port(),
                                    http_port=neo4j_server.free_port(), heap="2g", pagecache="1g")
        start_s = time.perf_counter() - t
        os.environ["NEO4J_PASSWORD"] = server.password  # children read it from the environment
        try:
            uris = {"falkordb": None, "neo4j": server.bolt_uri}
            graph = {b: _child("graph", b, homes[b], uris[b], args) for b in homes}
            print(json.dumps(graph), flush=True)  # stages 1-3 even if stage 4 fails later
            _table(graph, {}, args, start_s)
            pers = {} if args.skip_personas else {
                b: _child("personas", b, homes[b], uris[b], args) for b in homes}
        finally:
            neo4j_server.stop(homes["neo4j"] / "neo4j")
    if pers:
        print(json.dumps(pers), flush=True)
        _table(graph, pers, args, start_s)


def _table(graph: dict[str, Any], pers: dict[str, Any], args: argparse.Namespace, start_s: float) -> None:
    from kgrec.kg import neo4j_server

    rows = [
        ("build: nodes", "nodes", ",d"), ("build: relationships", "rels", ",d"),
        ("build: nodes/s", "nodes_per_s", ",.0f"), ("build: relationships/s", "rels_per_s", ",.0f"),
        ("build: wall (s)", "build_wall_s", ".1f"),
        ("build: CPU s, client + server", "build_cpu_s", ".1f"),
        ("build: writes per CPU-second", "rels_per_cpu_s", ",.0f"),
        ("peak RSS client, whole worker (MB)", "client_rss_mb", ".0f"),
        ("peak RSS server after build (MB)", "server_rss_mb", ".0f"),
        ("projection: relationships streamed", "proj_rels", ",d"),
        ("projection via batched Cypher (s)", "proj_cypher_s", ".2f"),
        ("projection via GDS (s)", "proj_gds_s", ".2f"),
        ("384-d vectors write + index (s)", "vectors_write_index_s", ".1f"),
        ("KNN k=10 p50 (ms)", "knn_p50_ms", ".2f"), ("KNN k=10 p99 (ms)", "knn_p99_ms", ".2f"),
        ("KNN: query vector's own item ranked 1st", "knn_self_hit", ".1%"),
    ]
    prow = [("MovieLens build with MiniLM (s)", "ml_build_s", ".1f"),
            (f"train personas, {args.persona_epochs} epochs (s)", "personas_s", ".1f"),
            ("recommender, 1 epoch (s)", "recommender_1epoch_s", ".1f"),
            ("recommend --write p50 over 50 users (ms)", "recommend_write_ms", ".1f")]
    print(f"\n== backends_bench: {args.data.name} (embeddings off) + {args.persona_data.name} personas ==")
    print(f"local Neo4j {neo4j_server.versions()} started in {start_s:.1f}s (heap 2g, page cache 1g); "
          f"FalkorDB embedded; torch 1 thread; load average at the end {os.getloadavg()[0]:.1f}")
    print(f"| {'measure':<40} | {'FalkorDB':>12} | {'Neo4j':>12} |")
    print(f"|{'-' * 42}|{'-' * 14}|{'-' * 14}|")
    for label, key, spec in rows + (prow if pers else []):
        src = pers if key in {k for _, k, _ in prow} else graph
        print(f"| {label:<40} | {_fmt(src['falkordb'].get(key), spec):>12} | {_fmt(src['neo4j'].get(key), spec):>12} |")


if __name__ == "__main__":
    main()
