"""SPARQL client, escaping and the local Oxigraph endpoint (real server, real HTTP)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from kgrec.errors import ConfigError, SparqlError
from kgrec.kg.dbpedia import oxigraph_server
from kgrec.kg.dbpedia.sparql import (
    SparqlClient,
    escape_literal,
    iri,
    literal,
    normalise_query,
    query_key,
    template,
    validate_iri,
)

DATA = oxigraph_server.default_data_files()
needs_data = pytest.mark.skipif(not DATA, reason="no DBpedia *.nt.gz in ../shared/data or data/demo")


# --- pure --------------------------------------------------------------------------------------

_LITERAL_BODY = re.compile(r'(?:[^"\\\n\r]|\\[tbnrf"\'\\]|\\u[0-9A-F]{4})*')


def _unescape(body: str) -> str:
    table = {"t": "\t", "b": "\b", "n": "\n", "r": "\r", "f": "\f", '"': '"', "'": "'", "\\": "\\"}
    return re.sub(r"\\u([0-9A-F]{4})|\\(.)",
                  lambda m: chr(int(m.group(1), 16)) if m.group(1) else table[m.group(2)], body)


def test_escape_literal_examples() -> None:
    assert escape_literal('say "hi"\n') == 'say \\"hi\\"\\n'
    assert escape_literal("a\\b") == "a\\\\b"
    assert escape_literal("it's\t\r") == "it\\'s\\t\\r"
    assert escape_literal("\\u0022") == "\\\\\\u00750022"
    assert escape_literal("\x01") == "\\u0001"
    assert literal("x", "en") == '"x"@en'
    with pytest.raises(ConfigError):
        literal("x", 'en" } DROP ALL #')


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60))
def test_escape_roundtrip_and_structure(s: str) -> None:
    body = escape_literal(s)
    assert _LITERAL_BODY.fullmatch(body), body  # no raw quote/newline/lone backslash: stays one literal
    assert _unescape(body) == s
    q = template("label_candidates", labels=literal(s, "en"), types=iri("http://dbpedia.org/ontology/Film"))
    before, _, after = q.partition(literal(s, "en"))
    ref_before, _, ref_after = template("label_candidates", labels='"X"@en',
                                        types=iri("http://dbpedia.org/ontology/Film")).partition('"X"@en')
    assert (before, after) == (ref_before, ref_after)


@pytest.mark.parametrize("bad", ["http://x/a b", "http://x/<a>", 'http://x/"', "http://x/{a}", "http://x/a|b",
                                 "http://x/a^b", "http://x/a`b", "http://x/a\\b", "relative/path", "", "http://x/\n"])
def test_validate_iri_rejects(bad: str) -> None:
    with pytest.raises(ConfigError):
        validate_iri(bad)


def test_validate_iri_accepts_dbpedia_forms() -> None:
    for ok in ("http://dbpedia.org/resource/Screwed_(2000_film)", "http://dbpedia.org/resource/%22A%22_Is",
               "http://dbpedia.org/resource/¡Three_Amigos!", "http://dbpedia.org/resource/What%3F"):
        assert iri(ok) == f"<{ok}>"


def test_normalise_query_keeps_literals() -> None:
    a = 'SELECT  ?s\nWHERE { ?s ?p "a  b" .\t<http://x/y>  ?q ?o }'
    b = 'SELECT ?s WHERE { ?s ?p "a  b" . <http://x/y> ?q ?o }'
    assert normalise_query(a) == b
    assert query_key(a) == query_key(b)
    assert query_key('SELECT * { ?s ?p "a b" }') != query_key('SELECT * { ?s ?p "a  b" }')
    assert normalise_query("FILTER(?x < 3 && ?y > 2)") == "FILTER(?x < 3 && ?y > 2)"


def test_client_rejects_bad_endpoint() -> None:
    with pytest.raises(ConfigError):
        SparqlClient("ftp://example.org/sparql")


# --- real Oxigraph -------------------------------------------------------------------------------


@needs_data
def test_server_loads_once_and_caches(oxigraph: oxigraph_server.OxigraphServer, tmp_path: Path) -> None:
    fp = (oxigraph.store.parent / "fingerprint").read_text()
    assert oxigraph_server.load(DATA, oxigraph.store.parent) == oxigraph.store  # no reload
    assert (oxigraph.store.parent / "fingerprint").read_text() == fp
    client = SparqlClient(oxigraph.endpoint, cache_dir=tmp_path / "c", min_interval_s=0)
    q = template("label_candidates", labels=literal("Sabrina", "en"),
                 types=", ".join(iri(f"http://dbpedia.org/ontology/{t}") for t in ("Film", "Book")))
    rows = client.select(q)
    assert {r["s"] for r in rows} >= {"http://dbpedia.org/resource/Sabrina_(1995_film)"}
    assert client.select(q.replace("\n", "\n   ")) == rows  # same normalised query: cached
    assert (client.stats.queries_sent, client.stats.cache_hits, client.stats.failures) == (1, 1, 0)


@needs_data
def test_malformed_query_fails_without_retry(oxigraph: oxigraph_server.OxigraphServer) -> None:
    client = SparqlClient(oxigraph.endpoint, cache_dir=None, min_interval_s=0, attempts=3)
    with pytest.raises(SparqlError):
        client.select("SELECT ?s WHERE { ?s ")
    assert client.stats.queries_sent == 1 and client.stats.failures == 1


@needs_data
@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet=st.one_of(st.sampled_from('"\'\\\n\r\t}{#<>?.;uU0'), st.characters(
    blacklist_categories=("Cs",))), max_size=40))
def test_escaped_literal_roundtrips_through_oxigraph(oxigraph: oxigraph_server.OxigraphServer,
                                                     s: str) -> None:
    client = SparqlClient(oxigraph.endpoint, cache_dir=None, min_interval_s=0)
    rows = client.select(f'SELECT ?v ?n WHERE {{ BIND({literal(s)} AS ?v) BIND(1 AS ?n) }}')
    assert rows == [{"v": s, "n": "1"}]


@needs_data
def test_exact_label_with_quotes_finds_resource(oxigraph: oxigraph_server.OxigraphServer) -> None:
    client = SparqlClient(oxigraph.endpoint, cache_dir=None, min_interval_s=0)
    q = template("label_candidates", labels=literal('"Crocodile" Dundee', "en"),
                 types=iri("http://dbpedia.org/ontology/Film"))
    assert [r["s"] for r in client.select(q)] == ["http://dbpedia.org/resource/%22Crocodile%22_Dundee"]
