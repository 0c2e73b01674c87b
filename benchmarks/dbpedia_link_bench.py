"""DBpedia label-linking benchmark on MovieLens latest-small (no graph needed).

Titles come from ``movies.csv`` (year split off as the loader does); the LODrecsys mapping
(``movielens-to-dbpedia.tsv``) is the ground truth and is NOT used for linking. A local Oxigraph
serves the shared DBpedia subset (or pass ``--endpoint``). Thresholds are swept on the tuning half
(even movieIds) and the default threshold is reported on all mapped movies.

    python benchmarks/dbpedia_link_bench.py [--endpoint URL] [--threshold 0.85] [--work-types Film,Book]

Prints precision, recall, queries sent, cache hits and wall time for a cold run and a warm
(cached) re-run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from kgrec.kg.dbpedia import oxigraph_server
from kgrec.kg.dbpedia.linker import ItemRecord, Linker
from kgrec.kg.dbpedia.linking import DEFAULT_LABEL_THRESHOLD, match_items, read_mapping
from kgrec.kg.dbpedia.sparql import SparqlClient
from kgrec.kg.loaders.movielens import split_title

ROOT = Path(__file__).resolve().parents[1]


def metrics(links, truth, ids, threshold):
    ids = set(ids)
    predicted = {i: lk.iri for i, lk in links.items() if i in ids and lk.confidence >= threshold}
    correct = sum(1 for i, r in predicted.items() if truth[i] == r)
    n_truth = sum(1 for i in ids if i in truth)
    p = correct / len(predicted) if predicted else 0.0
    r = correct / n_truth if n_truth else 0.0
    return p, r, len(predicted), correct


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--movies", type=Path,
                    default=ROOT.parent / "shared/data/movielens-latest-small/movies.csv")
    ap.add_argument("--mapping", type=Path, default=oxigraph_server.default_mapping())
    ap.add_argument("--endpoint", default=None, help="SPARQL endpoint (default: a local Oxigraph)")
    ap.add_argument("--threshold", type=float, default=DEFAULT_LABEL_THRESHOLD)
    ap.add_argument("--work-types", default="Film,Book")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--show-errors", type=int, default=0)
    args = ap.parse_args()
    if not args.movies.is_file() or args.mapping is None:
        raise SystemExit("movies.csv or the mapping file is missing (../shared/data or data/demo)")

    movies = pd.read_csv(args.movies, dtype={"movieId": str})
    truth, _ = read_mapping(args.mapping)
    known = set(movies.movieId)
    truth = {k: v for k, v in truth.items() if k in known}
    items = []
    for mid, raw in zip(movies.movieId, movies.title):
        if mid in truth:  # ground truth exists: precision/recall are measurable
            title, year = split_title(raw)
            items.append(ItemRecord(mid, title, year))
    tune = [it.id for it in items if int(it.id) % 2 == 0]
    tune_set = set(tune)
    types = tuple(t.strip() for t in args.work_types.split(",") if t.strip())

    with tempfile.TemporaryDirectory() as tmp:
        server = None
        endpoint = args.endpoint
        if endpoint is None:
            server = oxigraph_server.serve(oxigraph_server.default_data_files(), Path(tmp) / "oxi")
            endpoint = server.endpoint
        try:
            client = SparqlClient(endpoint, cache_dir=Path(tmp) / "cache", min_interval_s=0.0)
            for run in ("cold", "warm"):
                linker = Linker(client, args.batch_size, 0.0, types)
                sent0, hits0 = client.stats.queries_sent, client.stats.cache_hits
                t0 = time.perf_counter()
                links, _report, counts = match_items(items, linker, mapped={})
                wall = time.perf_counter() - t0
                print(f"[{run}] endpoint={endpoint} work_types={types} items={len(items)} "
                      f"queries_sent={client.stats.queries_sent - sent0} "
                      f"cache_hits={client.stats.cache_hits - hits0} failed={counts['failed']} "
                      f"wall={wall:.2f}s")
            print("threshold sweep on the tuning half (even movieIds):")
            for th in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0):
                p, r, n, _ = metrics(links, truth, tune, th)
                print(f"  t={th:.2f} precision={p:.3f} recall={r:.3f} linked={n}")
            for name, ids in (("held-out half (odd)", [i.id for i in items if i.id not in tune_set]),
                              ("all mapped movies", [i.id for i in items])):
                p, r, n, c = metrics(links, truth, ids, args.threshold)
                print(f"{name}: threshold={args.threshold} precision={p:.3f} recall={r:.3f} "
                      f"linked={n} correct={c} of {sum(1 for i in ids if i in truth)}")
            if args.show_errors:
                by = {it.id: it for it in items}
                wrong = [(i, lk) for i, lk in links.items()
                         if lk.confidence >= args.threshold and truth[i] != lk.iri]
                for i, lk in wrong[:args.show_errors]:
                    print("WRONG", by[i].title, by[i].year, lk.iri, lk.confidence, "truth", truth[i])
                missed = [it for it in items if it.id not in links or links[it.id].confidence < args.threshold]
                for it in missed[:args.show_errors]:
                    print("MISS", it.title, it.year, truth[it.id], links.get(it.id))
        finally:
            if server:
                server.stop()


if __name__ == "__main__":
    main()
