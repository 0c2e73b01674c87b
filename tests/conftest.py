"""Shared fixtures: one real embedded FalkorDB per test session, and a fresh graph per test.

Every store-touching test (the ``backend``/``settings``/``store`` fixtures) runs against Neo4j
as well: against ``KGREC_TEST_NEO4J_URI`` (with ``NEO4J_PASSWORD``) when set, else the local
Neo4j running under ``KGREC_TEST_NEO4J_HOME`` (``.ci/run`` starts one), else a local Neo4j +
GDS + APOC that the session starts from ``make neo4j``'s jars and stops at the end.
``KGREC_TEST_NEO4J=0`` turns that off; without the jars the run says so and stays on FalkorDB.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kgrec.settings import Settings

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _neo4j_wanted() -> str | None:
    """Why Neo4j tests do not run (None: they do)."""
    if os.environ.get("KGREC_TEST_NEO4J_URI"):
        return None
    if os.environ.get("KGREC_TEST_NEO4J") == "0":
        return "KGREC_TEST_NEO4J=0"
    from kgrec.kg import neo4j_server

    return None if neo4j_server.assembled() else "the local Neo4j is not assembled (run `make neo4j`)"


NEO4J_OFF = _neo4j_wanted()


def _backends() -> list[str]:
    return ["falkordb"] if NEO4J_OFF else ["falkordb", "neo4j"]


@pytest.fixture(scope="session")
def local_neo4j_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path | None]:
    """A kgrec home whose local Neo4j (``$home/neo4j``) runs for this session; None when the
    suite uses ``KGREC_TEST_NEO4J_URI`` instead. Stopped at the end, whatever happened."""
    if os.environ.get("KGREC_TEST_NEO4J_URI"):
        yield None
        return
    from kgrec.kg import neo4j_server

    if os.environ.get("KGREC_TEST_NEO4J_HOME"):  # started (and stopped) by .ci/run
        home = Path(os.environ["KGREC_TEST_NEO4J_HOME"])
        server = neo4j_server.find_running(home / "neo4j")
        assert server is not None, f"KGREC_TEST_NEO4J_HOME={home}: no local Neo4j runs there"
        os.environ["NEO4J_PASSWORD"] = server.password
        yield home
        return
    home = tmp_path_factory.mktemp("neo4j-home")
    server = neo4j_server.start(home / "neo4j", bolt_port=neo4j_server.free_port(),
                                http_port=neo4j_server.free_port(), heap="1g", pagecache="256m")
    os.environ["NEO4J_PASSWORD"] = server.password
    try:
        yield home
    finally:
        neo4j_server.stop(home / "neo4j")


@pytest.fixture(scope="session")
def neo4j_uri(local_neo4j_home: Path | None) -> str:
    """The Neo4j the suite uses: ``KGREC_TEST_NEO4J_URI``, or the session's local one."""
    if local_neo4j_home is None:
        return os.environ["KGREC_TEST_NEO4J_URI"]
    from kgrec.kg import neo4j_server

    server = neo4j_server.find_running(local_neo4j_home / "neo4j")
    assert server is not None, "the session's local Neo4j died"
    return server.bolt_uri


def clear_neo4j(uri: str, home: Path) -> None:
    from kgrec.kg.store import open_store

    with open_store(Settings(home=home, graph_uri=uri)) as s:
        s.clear()


def pytest_report_header(config: pytest.Config) -> str:
    return "backends: " + ", ".join(_backends()) + (f" (Neo4j off: {NEO4J_OFF})" if NEO4J_OFF else "")


def _backend_of(nodeid: str) -> str | None:
    params = nodeid.rsplit("[", 1)[1].rstrip("]").split("-") if nodeid.endswith("]") else []
    return next((b for b in ("falkordb", "neo4j") if b in params), None)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many tests ran on each backend (CI output shows the Neo4j count)."""
    counts: dict[tuple[str, str], int] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for rep in terminalreporter.stats.get(outcome, []):
            backend = _backend_of(getattr(rep, "nodeid", "")) or (
                "neo4j" if "neo4j" in getattr(rep, "keywords", {}) else None)
            if backend and (outcome in ("error", "skipped") or rep.when == "call"):
                counts[backend, outcome] = counts.get((backend, outcome), 0) + 1
    for backend in _backends():
        terminalreporter.write_line(f"backend {backend}: " + ", ".join(
            f"{counts.get((backend, o), 0)} {o}" for o in ("passed", "failed", "error", "skipped")))
    if NEO4J_OFF:
        terminalreporter.write_line(f"backend neo4j: not run ({NEO4J_OFF})")


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


def make_settings(backend: str, home: Path, neo4j_uri: str | None = None, **extra: object) -> Settings:
    if backend == "neo4j":
        assert neo4j_uri, "the neo4j backend needs the neo4j_uri fixture"
        return Settings(home=home, graph_uri=neo4j_uri, **extra)
    return Settings(home=home, graph_name=f"t_{uuid.uuid4().hex[:10]}", **extra)


@pytest.fixture(params=_backends())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def backend_home(backend: str, request: pytest.FixtureRequest, embedded_home: Path, shared_cache: Path,
                 home: Path) -> Settings:
    """Settings on ``backend`` with their own home dir for artefacts (sharing the embedded server
    through a link to the session's falkordb dir); on Neo4j, a cleared shared database."""
    home.mkdir(parents=True)
    (home / "falkordb").symlink_to(embedded_home / "falkordb", target_is_directory=True)
    (home / "cache").symlink_to(shared_cache, target_is_directory=True)
    uri = request.getfixturevalue("neo4j_uri") if backend == "neo4j" else None
    if uri:
        clear_neo4j(uri, home)
    return make_settings(backend, home, uri)


@pytest.fixture(scope="session")
def make_backend_settings() -> Any:
    """``backend_home`` for module-scoped fixtures (they cannot use ``settings``)."""
    return backend_home


@pytest.fixture(scope="module", params=_backends())
def module_backend(request: pytest.FixtureRequest) -> str:
    """The backend of a module-scoped graph (one slow build per module and backend)."""
    return str(request.param)


@pytest.fixture
def settings(backend: str, request: pytest.FixtureRequest, embedded_home: Path, shared_cache: Path,
             tmp_path: Path) -> Settings:
    """Settings for one test: its own graph on the session's server (Neo4j: the cleared database)."""
    return backend_home(backend, request, embedded_home, shared_cache, tmp_path / "home")


def _test_store(settings: Settings) -> Iterator[Any]:
    """The store of ``settings``; an embedded graph is emptied afterwards (Neo4j is cleared
    before each test instead)."""
    from kgrec.kg.store import open_store

    s = open_store(settings)
    try:
        yield s
    finally:
        if not settings.graph_uri:
            s.execute("MATCH (n) DETACH DELETE n")
        s.close()


@pytest.fixture
def store(settings: Settings) -> Iterator[Any]:
    yield from _test_store(settings)


@pytest.fixture
def falkordb_settings(request: pytest.FixtureRequest, embedded_home: Path, shared_cache: Path,
                      tmp_path: Path) -> Settings:
    """Settings on the embedded FalkorDB only, for a test whose logic does not depend on the
    backend and whose build is too slow to repeat on Neo4j."""
    return backend_home("falkordb", request, embedded_home, shared_cache, tmp_path / "home")


@pytest.fixture
def falkordb_store(falkordb_settings: Settings) -> Iterator[Any]:
    yield from _test_store(falkordb_settings)


@pytest.fixture
def neo4j_store(request: pytest.FixtureRequest, embedded_home: Path, shared_cache: Path,
                tmp_path: Path) -> Iterator[Any]:
    """A store on the (cleared) test Neo4j, for what only the Neo4j adapter does."""
    if NEO4J_OFF:
        pytest.skip(f"no Neo4j for this run: {NEO4J_OFF}")
    from kgrec.kg.store import open_store

    s = open_store(backend_home("neo4j", request, embedded_home, shared_cache, tmp_path / "home"))
    try:
        yield s
    finally:
        s.close()
