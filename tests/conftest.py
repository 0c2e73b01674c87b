"""Shared fixtures: one real embedded FalkorDB per test session, and a fresh graph per test.

When ``KGREC_TEST_NEO4J_URI`` is set (with ``NEO4J_PASSWORD``), every test that uses the
``store`` fixture runs against Neo4j as well.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from kgrec.settings import Settings

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _backends() -> list[str]:
    return ["falkordb", "neo4j"] if os.environ.get("KGREC_TEST_NEO4J_URI") else ["falkordb"]


@pytest.fixture(scope="session")
def embedded_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A home whose embedded server lives for the whole session (tests reuse it)."""
    from kgrec.kg import falkordb_server

    home = tmp_path_factory.mktemp("kgrec-home")
    server = falkordb_server.start(home)
    yield home
    server.stop()


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding/SPARQL cache for the session, so the model encodes each text once."""
    return tmp_path_factory.mktemp("kgrec-cache")


def make_settings(backend: str, home: Path, **extra: object) -> Settings:
    if backend == "neo4j":
        return Settings(home=home, graph_uri=os.environ["KGREC_TEST_NEO4J_URI"], **extra)
    return Settings(home=home, graph_name=f"t_{uuid.uuid4().hex[:10]}", **extra)


@pytest.fixture(params=_backends())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(backend: str, embedded_home: Path, shared_cache: Path, tmp_path: Path) -> Settings:
    """Settings for one test: its own graph on the session's server, its own home dir for
    artefacts (sharing the server state through a link to the session's falkordb dir)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "falkordb").symlink_to(embedded_home / "falkordb", target_is_directory=True)
    (home / "cache").symlink_to(shared_cache, target_is_directory=True)
    return make_settings(backend, home)


@pytest.fixture
def store(settings: Settings) -> Iterator[object]:
    from kgrec.kg.store import open_store

    s = open_store(settings)
    if settings.graph_uri:  # Neo4j: a shared database, start clean
        s.clear()
    try:
        yield s
    finally:
        if not settings.graph_uri:
            s.execute("MATCH (n) DETACH DELETE n")
        s.close()
