"""Build a trained home for `kgrec serve` benchmarks: graph (+ DBpedia for MovieLens), HDGI personas,
recommender. The demo recipe (`kgrec demo`) without its evaluation step.

    .venv/bin/python benchmarks/prepare_serve_home.py --dataset movielens --home /tmp/ml-home
    .venv/bin/python benchmarks/prepare_serve_home.py --dataset recbole \
        --data ../shared/data/amazon-games-2018 --home /tmp/games-home --persona-epochs 50
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from kgrec.kg.build import BuildOptions, build
from kgrec.kg.dbpedia.service import link_graph
from kgrec.kg.store import open_store
from kgrec.personas.workflow import train_personas
from kgrec.pipeline import DEMO_DIR, FIT
from kgrec.progress import RichProgress
from kgrec.recommender import workflow as rec
from kgrec.settings import Settings, apply_torch_threads


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="movielens")
    ap.add_argument("--data", type=Path, default=DEMO_DIR / "movielens")
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--persona-epochs", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--fusions", default="prefix,gate", help="retriever fusions tried (best on validation)")
    ap.add_argument("--recommender-only", action="store_true", help="keep the graph and personas")
    a = ap.parse_args()
    settings = Settings(home=a.home, torch_threads=a.threads)
    apply_torch_threads(settings)
    progress = RichProgress()
    t0 = time.perf_counter()
    with open_store(settings) as store:
        if not a.recommender_only:
            build(store, settings, BuildOptions(kind=a.dataset, data=a.data, fresh=True), progress)
            if a.dataset == "movielens":
                link_graph(store, settings, mapping=DEMO_DIR / "dbpedia" / "movielens-to-dbpedia.tsv",
                           sparql_data=DEMO_DIR / "dbpedia")
            train_personas(store, settings, epochs=a.persona_epochs, progress=progress)
        rec.train(store, settings, epochs=a.epochs, progress=progress, fit_kwargs=FIT,
                  fusions=tuple(a.fusions.split(",")))
        print("counts:", store.counts())
    print(f"home {a.home} ready in {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
