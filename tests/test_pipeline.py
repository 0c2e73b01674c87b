"""``kgrec demo`` end to end on the tiny MovieLens fixture with the shipped DBpedia subset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kgrec.pipeline import run_demo
from kgrec.progress import NullProgress

REPO = Path(__file__).resolve().parents[1]


class Console:
    def __init__(self):
        self.lines: list[str] = []

    def print(self, msg: str) -> None:
        self.lines.append(str(msg))


@pytest.mark.slow
def test_demo_trains_once_and_shows_the_session_table_and_a_persona_recommendation(settings, tmp_path,
                                                                                     monkeypatch):
    from kgrec.recommender import recipe

    data = tmp_path / "demo"
    data.mkdir()
    (data / "movielens").symlink_to(REPO / "tests" / "fixtures" / "ml-mini", target_is_directory=True)
    (data / "dbpedia").symlink_to(REPO / "data" / "demo" / "dbpedia", target_is_directory=True)
    calls = []
    real = recipe.train_pipeline

    def spy(*a, **kw):
        calls.append(kw.get("fusions"))
        return real(*a, **kw)

    monkeypatch.setattr(recipe, "train_pipeline", spy)
    console = Console()
    out = run_demo(settings, NullProgress(), data_dir=data, console=console, seeds=1, epochs=1, persona_epochs=3)
    text = "\n".join(console.lines)
    assert len(calls) == 1  # the evaluation's pipeline is the saved model: the recipe ran once
    assert "Protocol: session" in text and "By prefix length" in text
    assert Path(out["evaluation"]["model"]).is_dir() and out["recommendations"]
    meta = json.loads((Path(out["evaluation"]["model"]) / "train.json").read_text())
    assert meta["protocol"] == "session"
    assert "a new session of user" in text and "the persona brought the item in" in text
