"""Fixtures shared by the kg tests: a real Oxigraph server over the DBpedia files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kgrec.kg.dbpedia import oxigraph_server

DATA = oxigraph_server.default_data_files()


@pytest.fixture(scope="module")
def oxigraph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[oxigraph_server.OxigraphServer]:
    """A local SPARQL endpoint (one per test module) over ../shared/data/dbpedia or data/demo/dbpedia."""
    if not DATA:
        pytest.skip("no DBpedia data files")
    with oxigraph_server.serve(DATA, tmp_path_factory.getbasetemp() / "oxigraph-dbpedia") as server:
        yield server
