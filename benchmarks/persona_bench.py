"""Persona training at scale: amazon-book (KGAT release, ~70k users) on CPU, end to end.

Needs a built home. KGAT items have no titles, so the build embeds each item's text (its ASIN,
kept as the description) with MiniLM — semantically weak, but it gives every ``Item`` the
``emb`` the persona model needs, through the normal build path::

    kgrec build --dataset kgat --data ../shared/data/amazon-book-kgat --home /tmp/kgat-home --k-core 0

Then: stream the projection, build the meta-path graphs (UIU only: no features/entities in
this release — the others are dropped and reported), train HDGI, embed, write
``User.persona`` + index, cluster and write ``Persona`` groups. Prints the stage times, time
per epoch, total time and peak RSS (getrusage and /proc VmHWM, this process; the FalkorDB
server's own VmHWM separately). Targets: < 10 min total, < 8 GB RSS.

    python benchmarks/persona_bench.py --home /tmp/kgat-home --epochs 20 --threads 2

On Neo4j (``--graph neo4j://…``, a home built there), ``--compare`` trains the whole-projection
stream and the GDS-sampled mode (``--sampled``, :mod:`kgrec.personas.sampled`) one after the other,
each in its own process so that each peak RSS is its own, both with ``--features mean`` (the one
block a sample can compute), and prints them side by side with a model-free probe of the stored
``User.persona``: user-kNN (cosine, k = 50) over the training users' personas, scoring each
validation target by its neighbours' training items, the user's own training items excluded, the
whole catalogue ranked; HR@10 and HR@100 with binomial standard errors::

    python benchmarks/persona_bench.py --home H --graph neo4j://127.0.0.1:7687 --compare \
        --epochs 3 --batch-size 2048 --nodes-per-user 20
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def vm_hwm_mb(pid: int | str = "self") -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class TimingProgress:
    """Records each stage's wall time and the time of every advance of the training stage."""

    def __init__(self) -> None:
        self.stages: dict[str, float] = {}
        self.epoch_times: list[float] = []
        self.last_info = ""

    @contextmanager
    def stage(self, name: str, total: int | None = None):
        t0 = time.perf_counter()
        last = [t0]

        def advance(n: int = 1, info: str | None = None) -> None:
            if name.startswith("train"):
                now = time.perf_counter()
                self.epoch_times.append(now - last[0])
                last[0] = now
                self.last_info = info or ""
                if len(self.epoch_times) % 5 == 0:
                    print(f"  epoch {len(self.epoch_times)}: {self.epoch_times[-1]:.2f}s {info}", flush=True)

        yield advance
        self.stages[name] = time.perf_counter() - t0
        print(f"{name}: {self.stages[name]:.1f}s (peak RSS {vm_hwm_mb():.0f} MB)", flush=True)

    def note(self, message: str) -> None:
        print(message, flush=True)


def knn_probe(store, settings, held_out=None, k: int = 50, batch: int = 512) -> dict:
    """HR@10/HR@100 of user-kNN over the stored personas on the validation targets, or on
    ``held_out`` (user, item) pairs where the build has no validation split (KGAT: its own
    ``test.txt``; nothing is chosen on them here). See the module doc."""
    import scipy.sparse as sp

    from kgrec.kg.artefacts import load_split

    split = load_split(settings)
    targets_df = split.valid if held_out is None else held_out
    users = store.stream_nodes("User", ["persona"])
    keep = [i for i, p in enumerate(users.properties["persona"]) if p]
    ids = [users.ids[i] for i in keep]
    z = np.asarray([users.properties["persona"][i] for i in keep], dtype=np.float64)
    z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
    row = {u: i for i, u in enumerate(ids)}
    items = sorted(set(split.train["item"].astype(str)))
    col = {it: j for j, it in enumerate(items)}
    tr = split.train[split.train["user"].astype(str).isin(row)]
    m = sp.csr_matrix((np.ones(len(tr)), (tr["user"].astype(str).map(row), tr["item"].astype(str).map(col))),
                      shape=(len(ids), len(items)))
    m.data[:] = 1.0
    va = targets_df[targets_df["user"].astype(str).isin(row) & targets_df["item"].astype(str).isin(col)]
    q_all = va["user"].astype(str).map(row).to_numpy()
    t_all = va["item"].astype(str).map(col).to_numpy()
    order = np.argsort(q_all, kind="stable")
    q_all, t_all = q_all[order], t_all[order]
    users_q, starts = np.unique(q_all, return_index=True)
    ends = np.append(starts[1:], len(q_all))
    h10, h100 = [], []
    for s0 in range(0, len(users_q), batch):  # one score row per user, all of its targets ranked on it
        q = users_q[s0:s0 + batch]
        sims = z[q] @ z.T
        sims[np.arange(len(q)), q] = -np.inf  # never one's own neighbour
        nb = np.argpartition(-sims, k, axis=1)[:, :k]
        w = np.take_along_axis(sims, nb, axis=1)
        scores = np.asarray((sp.csr_matrix((w.ravel(), (np.repeat(np.arange(len(q)), k), nb.ravel())),
                                           shape=(len(q), len(ids))) @ m).todense())
        scores[m[q].nonzero()] = -np.inf
        rows_t = np.concatenate([np.full(e - b_, j) for j, (b_, e) in enumerate(zip(starts[s0:s0 + batch],
                                                                                      ends[s0:s0 + batch]))])
        t = t_all[starts[s0]:ends[min(s0 + batch, len(users_q)) - 1]]
        ts = scores[rows_t, t]
        rank = 1 + (scores[rows_t] > ts[:, None]).sum(axis=1)
        h10.append(rank <= 10)
        h100.append(rank <= 100)
    h10, h100 = np.concatenate(h10), np.concatenate(h100)
    return {"n": len(h10), "HR@10": float(h10.mean()), "HR@100": float(h100.mean()),
            "se10": float(np.sqrt(h10.mean() * (1 - h10.mean()) / len(h10))),
            "se100": float(np.sqrt(h100.mean() * (1 - h100.mean()) / len(h100)))}


def compare(args: argparse.Namespace) -> None:
    """The whole stream and the sampled mode, each in a fresh process, side by side."""
    import json
    import subprocess
    import sys
    import tempfile

    rows = {}
    for mode in ("full", "sampled"):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            cmd = [sys.executable, __file__, "--home", str(args.home), "--graph", args.graph, "--features", "mean",
                   "--epochs", str(args.epochs), "--patience", str(args.patience), "--hidden", str(args.hidden),
                   "--batch-size", str(args.batch_size), "--nodes-per-user", str(args.nodes_per_user),
                   "--threads", str(args.threads), "--k", str(args.k or 8), "--json", out.name]
            cmd += ["--kgat-test", str(args.kgat_test)] if args.kgat_test else []
            cmd += ["--sampled"] if mode == "sampled" else []
            print(f"\n### {mode}: {' '.join(cmd)}  (load {os.getloadavg()[0]:.2f})", flush=True)
            subprocess.run(cmd, check=True)
            rows[mode] = json.loads(Path(out.name).read_text())
    print("\n=== persona_bench --compare (amazon-book-kgat on Neo4j, CPU, features mean) ===")
    print(f"{'mode':8s} {'epochs':>6s} {'s/epoch':>8s} {'total s':>8s} {'client VmHWM MB':>16s} "
          f"{'HR@10':>16s} {'HR@100':>16s}  load   (targets: {'KGAT test.txt' if args.kgat_test else 'valid'})")
    for mode, r in rows.items():
        p = r["probe"]
        print(f"{mode:8s} {r['epochs']:6d} {r['s_per_epoch']:8.1f} {r['total_s']:8.0f} {r['vm_hwm_mb']:16.0f} "
              f"{p['HR@10']:.4f} ± {p['se10']:.4f} {p['HR@100']:.4f} ± {p['se100']:.4f}  "
              f"{r['load_before']:.2f}→{r['load_after']:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=Path("/tmp/kgat-home"))
    ap.add_argument("--encoder", default="gcn", choices=["gcn", "gat"])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=None, help="mini-batch targets (default: full batch)")
    ap.add_argument("--max-neighbors", type=int, default=20)
    ap.add_argument("--k", type=int, default=None, help="persona groups (default: silhouette over 2..10)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--build", type=Path, default=None, metavar="KGAT_DIR",
                    help="build the graph in this process first (fresh; timed separately): a restarted "
                         "embedded server replays its whole append-only file, which takes minutes")
    ap.add_argument("--cache", type=Path, default=None,
                    help="embedding cache to reuse for --build (e.g. /tmp/kgat-home/cache)")
    ap.add_argument("--graph", default=None, help="a Neo4j URI (the home's build there) instead of FalkorDB")
    ap.add_argument("--features", default="mean+cf")
    ap.add_argument("--sampled", action="store_true", help="train on GDS samples of --batch-size users")
    ap.add_argument("--nodes-per-user", type=int, default=20)
    ap.add_argument("--compare", action="store_true", help="Neo4j: the whole stream against --sampled")
    ap.add_argument("--json", type=Path, default=None, help="write this run's figures here")
    ap.add_argument("--kgat-test", type=Path, default=None,
                    help="probe on this KGAT folder's test.txt (the KGAT build has no validation split)")
    args = ap.parse_args()
    if args.compare:
        return compare(args)
    if args.graph:
        return run_neo4j(args)

    import torch

    from kgrec.kg import falkordb_server
    from kgrec.kg.store import open_store
    from kgrec.personas.workflow import train_personas
    from kgrec.settings import Settings

    torch.set_num_threads(args.threads)
    settings = Settings(home=args.home)
    settings.home.mkdir(parents=True, exist_ok=True)
    if args.cache is not None and not settings.cache_dir.exists():
        settings.cache_dir.symlink_to(args.cache.resolve(), target_is_directory=True)
    t = time.perf_counter()
    server = falkordb_server.start(settings.home, timeout_s=600)
    print(f"graph server ready in {time.perf_counter() - t:.0f}s (not counted below)", flush=True)
    prog = TimingProgress()
    try:
        with open_store(settings) as store:
            if args.build is not None:
                from kgrec.kg.build import BuildOptions, build

                tb = time.perf_counter()
                b = build(store, settings, BuildOptions(kind="kgat", data=args.build, k_core=0, fresh=True))
                print(f"build (not counted below): {time.perf_counter() - tb:.0f}s, "
                      f"{b.embedded} embedded ({b.embeddings_from_cache} from cache)", flush=True)
            print(store.counts(), flush=True)
            t0 = time.perf_counter()
            s = train_personas(store, settings, encoder=args.encoder, epochs=args.epochs,
                               hidden=args.hidden, patience=args.patience, batch_size=args.batch_size,
                               k=args.k, max_neighbors=args.max_neighbors, progress=prog)
            total = time.perf_counter() - t0
        server_hwm = vm_hwm_mb(server.pid)
    finally:
        server.stop()
    ep = prog.epoch_times
    print("\n=== persona_bench (amazon-book-kgat, CPU) ===")
    print(f"torch threads        {torch.get_num_threads()}")
    print(f"users                {s.n_users}  dim {s.dim}  encoder {s.encoder}  "
          f"batch {args.batch_size or 'full'}")
    print(f"meta-paths used      {s.metapaths} edges {s.metapath_edges}  dropped {list(s.dropped)}")
    print(f"epochs run           {len(s.losses)} (best {s.best_epoch}, loss {min(s.losses):.4f})")
    print(f"time per epoch       mean {sum(ep) / max(len(ep), 1):.2f}s  "
          f"(first {ep[0]:.2f}s, last {ep[-1]:.2f}s)" if ep else "time per epoch       n/a")
    print("stage seconds        " + ", ".join(f"{k} {v:.1f}" for k, v in s.seconds.items()))
    print(f"total                {total:.1f}s ({total / 60:.1f} min; target < 10 min)")
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS             getrusage {ru:.0f} MB, VmHWM {vm_hwm_mb():.0f} MB (target < 8 GB); "
          f"FalkorDB server VmHWM {server_hwm:.0f} MB")
    print(f"groups               {len(s.groups)}: " + ", ".join(f"{g['id']}={g['size']}" for g in s.groups))


def run_neo4j(args: argparse.Namespace) -> None:
    """One persona training on Neo4j (whole stream or ``--sampled``), then the kNN probe."""
    import json

    import torch

    from kgrec.kg.store import open_store
    from kgrec.personas.workflow import train_personas
    from kgrec.settings import Settings

    torch.set_num_threads(args.threads)
    settings = Settings(home=args.home, graph_uri=args.graph)
    prog = TimingProgress()
    load_before = os.getloadavg()[0]
    with open_store(settings) as store:
        t0 = time.perf_counter()
        s = train_personas(store, settings, encoder=args.encoder, epochs=args.epochs, hidden=args.hidden,
                           patience=args.patience, batch_size=args.batch_size, k=args.k, max_neighbors=args.max_neighbors,
                           features=args.features, sampled=args.sampled, nodes_per_user=args.nodes_per_user,
                           metapaths=("UIU",), progress=prog)
        total = time.perf_counter() - t0
        hwm = vm_hwm_mb()  # the training's peak, before the probe loads its own arrays
        held_out = None
        if args.kgat_test is not None:
            from kgrec.kg.loaders.kgat import load_kgat_with_test

            held_out = load_kgat_with_test(args.kgat_test)[1]
        probe = knn_probe(store, settings, held_out)
    ep = prog.epoch_times
    r = {"mode": "sampled" if args.sampled else "full", "epochs": len(s.losses), "total_s": total,
         "s_per_epoch": sum(ep) / max(len(ep), 1), "vm_hwm_mb": hwm, "seconds": s.seconds, "notes": s.notes,
         "probe": probe, "load_before": load_before, "load_after": os.getloadavg()[0], "geometry": s.geometry}
    print(json.dumps(r, indent=1, default=float), flush=True)
    if args.json:
        args.json.write_text(json.dumps(r, default=float))


if __name__ == "__main__":
    main()
