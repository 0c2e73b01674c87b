"""The recommender evaluation table of a built home (MovieLens, Games, ...).

    .venv/bin/python benchmarks/evaluate_bench.py --home .kgrec [--protocol session|loo] [--seeds 3] [--epochs 50]

Runs :func:`kgrec.recommender.workflow.evaluate` (every model under ``--protocol``, ``--seeds`` seeds
0..n-1, early stopping on validation) on the home's graph (``Item.emb`` and
``User.persona`` must exist: ``kgrec build`` + ``kgrec train personas``), writes
``results.{md,json,png}`` into the home's reports dir (or ``--out``) and prints the
markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", type=Path, default=Path(".kgrec"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--protocol", choices=("session", "loo"), default="session")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    a = ap.parse_args()

    from kgrec.kg.store import open_store
    from kgrec.progress import NullProgress
    from kgrec.recommender import workflow as W
    from kgrec.settings import Settings

    class Printing(NullProgress):
        def note(self, message: str) -> None:
            if not a.quiet:
                print(f"[{time.perf_counter() - t0:7.1f}s] {message}", flush=True)

    settings = Settings(home=a.home, **({"torch_threads": a.threads} if a.threads else {}))
    t0 = time.perf_counter()
    with open_store(settings) as store:
        _, paths = W.evaluate(store, settings, seeds=range(a.seeds), epochs=a.epochs, device=a.device,
                              progress=Printing(), out_dir=a.out, protocol=a.protocol)
    print(f"\n{a.home} (seeds={a.seeds}, epochs<={a.epochs}, device={a.device}, "
          f"{time.perf_counter() - t0:.0f}s); wrote {', '.join(str(p) for p in paths.values())}\n")
    print(paths["md"].read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
