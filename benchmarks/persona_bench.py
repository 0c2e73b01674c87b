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
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from contextlib import contextmanager
from pathlib import Path

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
    args = ap.parse_args()

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


if __name__ == "__main__":
    main()
