"""DBpedia linking and enrichment (see :mod:`kgrec.kg.dbpedia.linking` for the design).

Public API: :func:`link_items` / :class:`LinkSummary` (linking), :class:`SparqlClient`,
:func:`escape_literal`, :func:`validate_iri` (SPARQL), :func:`serve` (a local Oxigraph endpoint
over the DBpedia N-Triples files).
"""

from kgrec.kg.dbpedia.linking import LinkSummary, link_items, read_mapping
from kgrec.kg.dbpedia.oxigraph_server import default_data_files, default_mapping, serve
from kgrec.kg.dbpedia.sparql import SparqlClient, SparqlStats, escape_literal, validate_iri

__all__ = [
    "LinkSummary", "SparqlClient", "SparqlStats", "default_data_files", "default_mapping",
    "escape_literal", "link_items", "read_mapping", "serve", "validate_iri",
]
