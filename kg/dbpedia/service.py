"""One call for the CLI and the build: pick the endpoint (a URL, or a local Oxigraph server
over N-Triples files for the duration of the run) and link the graph's items."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kgrec.errors import ConfigError
from kgrec.kg.dbpedia.linking import LinkSummary, link_items
from kgrec.kg.dbpedia.oxigraph_server import serve
from kgrec.kg.dbpedia.sparql import SparqlClient
from kgrec.kg.store import GraphStore
from kgrec.settings import Settings


def nt_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ConfigError(f"--sparql-data {folder}: not a directory")
    files = sorted([*folder.glob("*.nt.gz"), *folder.glob("*.nt")])
    if not files:
        raise ConfigError(f"--sparql-data {folder}: no .nt or .nt.gz files")
    return files


def dbpedia_wanted(settings: Settings, *, flag: bool | None, mapping: Path | None, sparql: str | None,
                   sparql_data: Path | None) -> bool:
    """``--dbpedia`` is on by default when an endpoint is configured or a mapping is given."""
    if flag is not None:
        return flag
    return bool(mapping or sparql or sparql_data or settings.sparql_endpoint)


def link_graph(store: GraphStore, settings: Settings, *, mapping: Path | None = None,
               sparql: str | None = None, sparql_data: Path | None = None, use_labels: bool = True,
               progress: Callable[[int, int, int], None] | None = None) -> LinkSummary:
    """Link the items of ``store``; with ``sparql_data`` a local Oxigraph server is started over
    the N-Triples files in that folder for this run, then stopped."""
    if sparql and sparql_data:
        raise ConfigError("give either --sparql URL or --sparql-data DIR, not both")
    if mapping is not None and not mapping.is_file():
        raise ConfigError(f"--mapping {mapping}: no such file")
    if sparql_data is not None:
        with serve(nt_files(sparql_data), settings.home / "oxigraph") as server:
            client = SparqlClient.from_settings(settings, server.endpoint, cache_scope=server.cache_scope)
            return link_items(store, settings, mapping=mapping, endpoint=server.endpoint, client=client,
                              use_labels=use_labels, progress=progress)
    return link_items(store, settings, mapping=mapping, endpoint=sparql, use_labels=use_labels,
                      progress=progress)
