"""`kgrec demo`'s chain (pipeline.run_demo) end to end on the MovieLens slice: real FalkorDB,
real MiniLM, real Oxigraph over the shipped DBpedia subset; tiny epochs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kgrec.errors import DataError
from kgrec.pipeline import demo_dir, run_demo
from kgrec.progress import NullProgress

REPO = Path(__file__).resolve().parents[1]


def test_demo_dir_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="movielens/ratings.csv"):
        demo_dir(tmp_path)


@pytest.mark.slow
def test_run_demo_end_to_end(settings, tmp_path: Path) -> None:
    data = tmp_path / "demo"
    shutil.copytree(REPO / "tests" / "fixtures" / "ml-mini", data / "movielens")
    shutil.copytree(REPO / "data" / "demo" / "dbpedia", data / "dbpedia")
    out = run_demo(settings, NullProgress(), data_dir=data, epochs=1, persona_epochs=3)
    assert out["dbpedia"]["linked_total"] > 0 and out["dbpedia"]["entities"] > 0
    assert out["personas"]["n_users"] == out["counts"]["nodes"]["User"] > 0
    assert all(g["label"] and "top_items" in g for g in out["personas"]["groups"])
    assert Path(out["evaluation"]["md"]).is_file()
    assert len(out["recommendations"]) == 10
    assert out["counts"]["relationships"]["RECOMMENDED"] == 10
