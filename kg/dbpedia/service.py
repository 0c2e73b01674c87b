"""One call for the CLI and the build: pick the endpoint (a URL, or a local Oxigraph server
over N-Triples files for the duration of the run) and link the graph's items."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kgrec.errors import ConfigError
from kgrec.kg.dbpedia.linking import LinkSummary, Progress, link_items
from kgrec.kg.dbpedia.oxigraph_server import serve
from kgrec.kg.dbpedia.sparql import SparqlClient
from kgrec.kg.store import GraphStore
from kgrec.progress import NullProgress, ProgressReporter
from kgrec.settings import Settings


def nt_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ConfigError(f"--sparql-data {folder}: not a directory")
    files = sorted([*folder.glob("*.nt.gz"), *folder.glob("*.nt")])
    if not files:
        raise ConfigError(f"--sparql-data {folder}: no .nt or .nt.gz files")
    return files


@contextmanager
def _item_bar(store: GraphStore, progress: ProgressReporter) -> Iterator[Progress]:
    """A ``link DBpedia`` bar over the graph's items, fed by the linker's running totals."""
    total = store.counts()["nodes"].get("Item", 0)
    with progress.stage("link DBpedia", total) as advance:
        done = 0

        def tick(linked: int, unlinked: int, failed: int) -> None:
            nonlocal done
            now = linked + unlinked + failed
            advance(now - done, info=f"linked {linked} · unlinked {unlinked} · failed {failed}")
            done = now

        yield tick


def link_graph(store: GraphStore, settings: Settings, *, mapping: Path | None = None,
               sparql: str | None = None, sparql_data: Path | None = None, use_labels: bool = True,
               progress: ProgressReporter | None = None) -> LinkSummary:
    """Link the items of ``store``, one progress bar over the items; with ``sparql_data`` a local
    Oxigraph server is started over the N-Triples files in that folder for this run, then stopped."""
    if sparql and sparql_data:
        raise ConfigError("give either --sparql URL or --sparql-data DIR, not both")
    if mapping is not None and not mapping.is_file():
        raise ConfigError(f"--mapping {mapping}: no such file")
    with _item_bar(store, progress or NullProgress()) as tick:
        return _link(store, settings, mapping, sparql, sparql_data, use_labels, tick)


def _link(store: GraphStore, settings: Settings, mapping: Path | None, sparql: str | None,
          sparql_data: Path | None, use_labels: bool, progress: Progress) -> LinkSummary:
    if sparql_data is not None:
        with serve(nt_files(sparql_data), settings.home / "oxigraph") as server:
            client = SparqlClient.from_settings(settings, server.endpoint, cache_scope=server.cache_scope)
            return link_items(store, settings, mapping=mapping, endpoint=server.endpoint, client=client,
                              use_labels=use_labels, progress=progress)
    return link_items(store, settings, mapping=mapping, endpoint=sparql, use_labels=use_labels,
                      progress=progress)
