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


class _Console:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def print(self, msg: object) -> None:
        self.lines.append(str(msg))


@pytest.mark.slow
def test_run_demo_end_to_end(settings, tmp_path: Path, monkeypatch) -> None:
    from kgrec.recommender import evaluate, recipe

    data = tmp_path / "demo"
    shutil.copytree(REPO / "tests" / "fixtures" / "ml-mini", data / "movielens")
    shutil.copytree(REPO / "data" / "demo" / "dbpedia", data / "dbpedia")
    calls, real = [], recipe.train_pipeline

    def spy(*a, **kw):
        calls.append(1)
        return real(*a, **kw)

    for module in (recipe, evaluate):  # evaluate binds the name at import
        monkeypatch.setattr(module, "train_pipeline", spy)
    console = _Console()
    out = run_demo(settings, NullProgress(), data_dir=data, console=console, epochs=1, persona_epochs=3)
    text = "\n".join(console.lines)
    # the evaluation's pipeline is the saved model: the recipe ran once, under the session protocol
    assert len(calls) == 1 and '"protocol": "session"' in (Path(out["evaluation"]["model"]) / "train.json").read_text()
    assert "Protocol: session" in text and "By prefix length" in text
    assert "a new session of user" in text and "the persona brought the item in" in text
    assert out["dbpedia"]["linked_total"] > 0 and out["dbpedia"]["entities"] > 0
    assert out["personas"]["n_users"] == out["counts"]["nodes"]["User"] > 0
    assert all(g["label"] and "top_items" in g for g in out["personas"]["groups"])
    assert Path(out["evaluation"]["md"]).is_file()
    assert len(out["recommendations"]) == 10
    assert out["counts"]["relationships"]["RECOMMENDED"] == 10
