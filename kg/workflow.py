"""What the CLI calls for the graph: build (+ DBpedia), counts, a read-only query.

Each function takes an open store and the settings; the CLI only parses options, opens the
store and prints what comes back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kgrec.errors import ConfigError
from kgrec.kg.build import BuildOptions, BuildSummary, build
from kgrec.kg.store import GraphStore
from kgrec.progress import ProgressReporter
from kgrec.settings import Settings


@dataclass
class LinkRequest:
    """Where DBpedia comes from: a mapping file and/or an endpoint URL or N-Triples folder."""

    mapping: Path | None = None
    sparql: str | None = None
    sparql_data: Path | None = None
    use_labels: bool = True

    def wanted(self, settings: Settings, flag: bool | None) -> bool:
        """``--dbpedia`` is on by default when an endpoint is configured or a mapping is given."""
        if flag is not None:
            return flag
        return bool(self.mapping or self.sparql or self.sparql_data or settings.sparql_endpoint)


def link_dbpedia(store: GraphStore, settings: Settings, request: LinkRequest,
                 progress: ProgressReporter | None = None) -> Any:
    """Link the graph's items to DBpedia (a :class:`~kgrec.kg.dbpedia.linking.LinkSummary`)."""
    from kgrec.kg.dbpedia.service import link_graph

    return link_graph(store, settings, mapping=request.mapping, sparql=request.sparql,
                      sparql_data=request.sparql_data, use_labels=request.use_labels, progress=progress)


def build_graph(store: GraphStore, settings: Settings, options: BuildOptions, *,
                link: LinkRequest | None = None,
                progress: ProgressReporter | None = None) -> tuple[BuildSummary, Any]:
    """:func:`~kgrec.kg.build.build`, then DBpedia linking when ``link`` is given; returns the
    build summary (its counts taken after linking) and the link summary (or None)."""
    summary = build(store, settings, options, progress)
    if link is None:
        return summary, None
    linked = link_dbpedia(store, settings, link, progress)
    summary.counts = store.counts()
    return summary, linked


def read_query(store: GraphStore, text: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Run one read-only Cypher statement (``kgrec query``); a write is refused by the store."""
    from kgrec.cypher import split_statements

    statements = split_statements(text)
    if len(statements) != 1:
        raise ConfigError(f"expected one statement, found {len(statements)}")
    return store.execute(statements[0], params, read_only=True)
