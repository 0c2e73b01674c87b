"""The one settings object: keyword > environment > .env > TOML > defaults; secrets stay secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgrec.settings import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path) -> None:
    for var in ("KGREC_HOME", "KGREC_CONFIG", "KGREC_SEED", "KGREC_BATCH_SIZE", "NEO4J_PASSWORD",
                "KGREC_NEO4J_PASSWORD", "KGREC_GRAPH_URI"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_precedence_keyword_env_toml_default(monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "kgrec.toml").write_text("seed = 1\nbatch_size = 11\nsparql_batch_size = 7\n")
    monkeypatch.setenv("KGREC_CONFIG", str(tmp_path / "kgrec.toml"))
    monkeypatch.setenv("KGREC_BATCH_SIZE", "22")
    s = Settings(seed=3)
    assert (s.seed, s.batch_size, s.sparql_batch_size, s.embedding_batch_size) == (3, 22, 7, 128)


def test_toml_in_home_from_the_environment(monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "h").mkdir()
    (tmp_path / "h" / "kgrec.toml").write_text("seed = 5\n")
    monkeypatch.setenv("KGREC_HOME", str(tmp_path / "h"))
    assert Settings().seed == 5


def test_secrets_are_not_printed(monkeypatch) -> None:
    monkeypatch.setenv("NEO4J_PASSWORD", "s3cret-value")
    s = Settings()
    assert s.neo4j_password is not None and s.neo4j_password.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(s) and "s3cret-value" not in str(s.model_dump())


def test_derived_paths_and_validation(tmp_path: Path) -> None:
    s = Settings(home=tmp_path)
    assert (s.cache_dir, s.models_dir, s.reports_dir) == (tmp_path / "cache", tmp_path / "models",
                                                         tmp_path / "reports")
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Settings(batch_size=0)
