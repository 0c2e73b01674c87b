"""End-to-end runs that chain the rooms (used by ``kgrec demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kgrec.errors import DataError
from kgrec.progress import ProgressReporter
from kgrec.settings import Settings

DEMO_DIR = Path(__file__).resolve().parent / "data" / "demo"


def demo_dir(data_dir: Path | None = None) -> Path:
    d = data_dir or DEMO_DIR
    if not (d / "movielens" / "ratings.csv").is_file():
        raise DataError(f"demo data not found under {d} (expected movielens/ratings.csv)")
    return d


def run_demo(settings: Settings, progress: ProgressReporter, *, data_dir: Path | None = None,
             console: Any = None) -> dict[str, Any]:
    """MovieLens-small: build the graph (with item embeddings)."""
    from kgrec.kg.build import BuildOptions, build
    from kgrec.kg.store import open_store

    d = demo_dir(data_dir)
    out: dict[str, Any] = {}
    with open_store(settings) as store:
        summary = build(store, settings, BuildOptions(kind="movielens", data=d / "movielens"), progress)
        out["build"] = summary.to_dict()
        if console is not None:
            console.print(f"[bold]graph built[/] in {summary.seconds.get('total', 0):.1f}s: {summary.counts}")
    return out
