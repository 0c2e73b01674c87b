"""End-to-end runs that chain the rooms (used by ``kgrec demo``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from kgrec.errors import DataError
from kgrec.progress import ProgressReporter
from kgrec.settings import Settings, apply_torch_threads

DEMO_DIR = Path(__file__).resolve().parent / "data" / "demo"
#: training batches for the demo: larger batches make CPU epochs several times cheaper
FIT = {"batch_size": 512, "lr": 2e-3}


def demo_dir(data_dir: Path | None = None) -> Path:
    d = data_dir or DEMO_DIR
    if not (d / "movielens" / "ratings.csv").is_file():
        raise DataError(f"demo data not found under {d} (expected movielens/ratings.csv)")
    return d


def run_demo(settings: Settings, progress: ProgressReporter, *, data_dir: Path | None = None,
             console: Any = None, seeds: int = 1, epochs: int = 8, persona_epochs: int = 200) -> dict[str, Any]:
    """MovieLens-small end to end: build (+ DBpedia through a local Oxigraph) → HDGI personas →
    evaluation under the ``session`` protocol (every baseline, ``seeds`` seeds; the first seed's
    pipeline is the saved recommender, so nothing is trained twice) → a sample recommendation
    with its persona path and explanation. Sized to finish in under 10 minutes on 2 CPU cores:
    one seed and at most ``epochs`` epochs (batches of 512); ``kgrec evaluate --seeds 3`` gives
    the full table."""
    from kgrec.kg.build import BuildOptions, build
    from kgrec.kg.dbpedia.service import link_graph
    from kgrec.kg.store import open_store
    from kgrec.personas.workflow import train_personas
    from kgrec.recommender import workflow as rec
    from kgrec.recommender.explain import explain

    def say(msg: str) -> None:
        if console is not None:
            console.print(msg)

    apply_torch_threads(settings)
    d = demo_dir(data_dir)
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    with open_store(settings) as store:
        summary = build(store, settings, BuildOptions(kind="movielens", data=d / "movielens", fresh=True),
                        progress)
        say(f"[bold]1. graph built[/] in {summary.seconds.get('total', 0):.0f}s")
        linked = link_graph(store, settings, mapping=d / "dbpedia" / "movielens-to-dbpedia.tsv",
                            sparql_data=d / "dbpedia", progress=progress)
        out["dbpedia"] = linked.as_dict()
        say(f"[bold]2. DBpedia[/]: {linked.linked_total}/{linked.items} items linked, "
            f"{linked.entities} entities")
        personas = train_personas(store, settings, epochs=persona_epochs, progress=progress)
        out["personas"] = personas.to_dict()
        say(f"[bold]3. personas[/] {personas.version}: attention {personas.attention}; groups: "
            + "; ".join(f"{g['id']} {g['label']} ({g['size']})" for g in personas.groups))
        _, paths = rec.evaluate(store, settings, seeds=tuple(range(seeds)), epochs=epochs, progress=progress,
                                protocol="session", save_model=True, fit_kwargs=FIT)
        out["evaluation"] = {k: str(v) for k, v in paths.items()}
        say(f"[bold]4. recommender[/] trained once per seed and evaluated under the session protocol "
            f"({seeds} seed(s)); seed 0's pipeline saved to {paths['model']}:\n" + Path(paths["md"]).read_text())
        user = str(store.run("demo_sample_user", read_only=True)[0]["user"])
        recs = rec.recommend(store, settings, user=user, k=10, write=True, run_id="demo")
        out["recommendations"] = [vars(r) for r in recs]
        say(f"[bold]5. a new session of user {user}[/] (empty prefix: the prefix-0 plan, with the persona "
            "of their train + valid past; their past items are not recommended again). [bold]P[/] = the persona "
            "brought the item in (it is not in the top 10 without a persona):\n"
            + "\n".join(f"   {r.rank:2d}. {'P' if r.from_persona else ' '} {r.title}" for r in recs))
        why = explain(store, user, recs[0].item, n=3)
        out["explanation"] = [e.to_dict() for e in why]
        say(f"[bold]6. why {recs[0].title}?[/]\n" + "\n".join(f"   - {e.reason}" for e in why))
        out["counts"] = store.counts()
    out["seconds"] = round(time.perf_counter() - t0, 1)
    say(f"demo finished in {out['seconds']:.0f}s; state in {settings.home}")
    return out
