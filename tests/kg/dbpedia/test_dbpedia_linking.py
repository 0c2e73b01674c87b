"""DBpedia linking end to end: a real Oxigraph endpoint, the real embedded FalkorDB (conftest's
``store``), fake failing endpoints, and the title heuristics."""

from __future__ import annotations

import csv
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kgrec.kg.dbpedia import oxigraph_server
from kgrec.kg.dbpedia.linker import Candidate, ItemRecord, Linker
from kgrec.kg.dbpedia.linking import link_items, read_mapping
from kgrec.kg.dbpedia.sparql import SparqlClient
from kgrec.kg.dbpedia.titles import (
    iri_label,
    iri_year,
    label_variants,
    move_article,
    normalise_title,
    title_parts,
)
from kgrec.kg.net import free_port

DATA = oxigraph_server.default_data_files()
MAPPING = oxigraph_server.default_mapping()
MOVIES = Path(__file__).resolve().parents[4] / "shared/data/movielens-latest-small/movies.csv"
R = "http://dbpedia.org/resource/"
needs_data = pytest.mark.skipif(not DATA or MAPPING is None, reason="no DBpedia data in ../shared or data/demo")


def _client(endpoint: str, cache: Path, **kw: object) -> SparqlClient:
    kw = {"min_interval_s": 0.0, "timeout_s": 0.4, "attempts": 2, "backoff_initial_s": 0.01,
          "backoff_max_s": 0.02, **kw}
    return SparqlClient(endpoint, cache_dir=cache, **kw)  # type: ignore[arg-type]


def _items(store, rows: list[tuple[str, str, int | None]]) -> None:
    store.ensure_schema()
    store.upsert_nodes("Item", [{"key": i, "props": {"title": t, **({"year": y} if y else {})}}
                                for i, t, y in rows])


def _report(settings) -> list[dict[str, str]]:
    with (settings.reports_dir / "dbpedia_unlinked.tsv").open() as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


# --- heuristics ----------------------------------------------------------------------------------


def test_title_heuristics() -> None:
    assert move_article("Matrix, The") == "The Matrix"
    assert move_article("Homme de Rio, L'") == "L'Homme de Rio"
    assert move_article("Sabrina") == "Sabrina"
    assert title_parts("Seven (a.k.a. Se7en)") == ["Seven", "Se7en"]
    assert title_parts("City of Lost Children, The (Cité des enfants perdus, La)") == [
        "City of Lost Children, The", "Cité des enfants perdus, La"]
    vs = dict(label_variants("Star Wars: Episode IV - A New Hope"))
    assert vs["Star Wars: Episode IV - A New Hope"] is False and vs["Star Wars"] is True
    assert "The City of Lost Children" in dict(label_variants("City of Lost Children, The (Cité, La)"))
    assert normalise_title("Matrix, The") == normalise_title("the  MATRIX") == "the matrix"
    assert normalise_title("Amélie & Co.") == "amelie and co"
    assert iri_year(R + "Screwed_(2000_film)") == 2000 and iri_year(R + "Heat_(film)") is None
    assert iri_label(R + "What_Ever_Happened_to_Baby_Jane%3F_(1962_film)") == "What Ever Happened to Baby Jane?"


def test_scoring_uses_year_type_and_ties() -> None:
    lk = Linker(SparqlClient("http://127.0.0.1:9/q", cache_dir=None), 50, 0.85)
    two = [Candidate(R + "Sabrina_(1954_film)", "Sabrina", "Film"),
           Candidate(R + "Sabrina_(1995_film)", "Sabrina", "Film")]
    best, conf, _ = lk.score(ItemRecord("1", "Sabrina", 1995), two)
    assert best.iri.endswith("(1995_film)") and conf == 1.0
    best, conf, reason = lk.score(ItemRecord("1", "Sabrina", None), two)
    assert conf < 0.85 and reason == "ambiguous"
    best, conf, reason = lk.score(ItemRecord("1", "Sabrina", 1970), two)
    assert best is None and reason == "year_mismatch"
    book_film = [Candidate(R + "Rob_Roy_(novel)", "Rob Roy", "Book")]
    assert lk.score(ItemRecord("1", "Rob Roy", 1995), book_film)[1] < 0.85  # a film catalogue


def test_read_mapping_reports_bad_lines(tmp_path: Path) -> None:
    p = tmp_path / "m.tsv"
    p.write_text(f"1\tA\t{R}A\n2\tonly two\n3\tB\thttp://x/a b\n\n4\tC\t{R}C_(film)\n")
    mapping, problems = read_mapping(p)
    assert mapping == {"1": R + "A", "4": R + "C_(film)"}
    assert len(problems) == 2 and ":2:" in problems[0] and ":3:" in problems[1]


# --- end to end ---------------------------------------------------------------------------------


@needs_data
@pytest.mark.skipif(not MOVIES.is_file(), reason="movielens-latest-small absent")
def test_movielens_slice_mapping_then_idempotent_rerun(store, settings, oxigraph, tmp_path: Path) -> None:
    import pandas as pd

    from kgrec.kg.loaders.movielens import split_title

    movies = pd.read_csv(MOVIES, dtype={"movieId": str}).head(300)
    rows = [(m, *split_title(t)) for m, t in zip(movies.movieId, movies.title)]
    _items(store, rows)
    mapping, _ = read_mapping(MAPPING)
    mapped_present = sum(1 for m, _, _ in rows if m in mapping)
    seen: list[tuple[int, int, int]] = []
    client = _client(oxigraph.endpoint, tmp_path / "sparql", timeout_s=10)
    s1 = link_items(store, settings, mapping=MAPPING, client=client, progress=lambda *a: seen.append(a))
    assert s1.linked["mapping"] >= 0.95 * mapped_present
    assert s1.linked.get("label", 0) > 0  # unmapped titles found by label
    assert s1.failed == 0 and s1.queries_sent > 0 and s1.query_failures == 0
    assert seen and seen[-1] == (s1.linked_total, s1.unlinked, 0)
    assert s1.linked_total + s1.unlinked + s1.failed == len(rows)
    c1 = store.counts()
    assert c1["nodes"]["Entity"] == s1.entities > 100
    assert c1["relationships"]["DIRECTOR"] > 50 and c1["relationships"]["STARRING"] > 100
    assert c1["relationships"]["SAME_AS"] == s1.linked_total
    got = store.execute("MATCH (i:Item {id: '7'})-[r:SAME_AS]->(e:Entity) "
                        "RETURN e.iri AS iri, r.method AS m, r.confidence AS c, e.type AS t")
    assert got == [{"iri": R + "Sabrina_(1995_film)", "m": "mapping", "c": 1.0, "t": "Film"}]
    d = store.execute("MATCH (:Entity {iri: $f})-[:DIRECTOR]->(p:Entity) RETURN p.label AS l, p.type AS t",
                      {"f": R + "Sabrina_(1995_film)"})
    assert d == [{"l": "Sydney Pollack", "t": "Person"}]

    s2 = link_items(store, settings, mapping=MAPPING,
                    client=_client(oxigraph.endpoint, tmp_path / "sparql", timeout_s=10))
    assert s2.queries_sent == 0 and s2.cache_hits == s1.queries_sent + s1.cache_hits
    assert store.counts() == c1
    assert (s2.linked, s2.unlinked, s2.entities) == (s1.linked, s1.unlinked, s1.entities)


@needs_data
def test_label_linking_features_and_report(store, settings, oxigraph, tmp_path: Path) -> None:
    _items(store, [("s", "Sabrina", 1995), ("m", "Miracle on 34th Street", 1994),
                   ("x", 'No Such "Film" \\ }#', 2001), ("u", "Unlinkable Thing", None)])
    store.upsert_nodes("Feature", [
        {"key": "director:Harrison Ford", "props": {"kind": "director", "value": "Harrison Ford"}},
        {"key": "author:Nobody", "props": {"kind": "author", "value": "Nobody Known"}}])
    store.upsert_relationships("HAS_FEATURE", [{"src": "s", "dst": "director:Harrison Ford", "props": {}},
                                               {"src": "u", "dst": "author:Nobody", "props": {}}])
    s = link_items(store, settings, mapping=None, client=_client(oxigraph.endpoint, tmp_path / "c"))
    assert s.linked == {"label": 2} and s.unlinked == 2 and s.failed == 0
    links = {r["i"]: (r["e"], r["m"]) for r in store.execute(
        "MATCH (i:Item)-[r:SAME_AS]->(e:Entity) RETURN i.id AS i, e.iri AS e, r.method AS m")}
    assert links == {"s": (R + "Sabrina_(1995_film)", "label"),
                     "m": (R + "Miracle_on_34th_Street_(1994_film)", "label")}
    # the director feature became a typed entity edge from the linked film, not a SAME_AS
    fe = store.execute("MATCH (:Entity {iri: $f})-[r:DIRECTOR]->(p:Entity) WHERE r.source = 'feature' "
                       "RETURN p.iri AS p, r.method AS m", {"f": R + "Sabrina_(1995_film)"})
    assert fe == [{"p": R + "Harrison_Ford", "m": "person"}]
    assert s.feature_entities == 1 and s.feature_entities_skipped == 1
    rep = {r["item"]: r for r in _report(settings)}
    assert set(rep) == {"x", "u"} and rep["x"]["status"] == "unlinked"
    assert rep["x"]["reason"] == "no_candidate"


@needs_data
def test_mapping_only_leaves_the_rest_unlinked(store, settings, oxigraph, tmp_path: Path) -> None:
    _items(store, [("7", "Sabrina", 1995), ("999999", "Jumanji", 1995)])
    s = link_items(store, settings, mapping=MAPPING, use_labels=False,
                   client=_client(oxigraph.endpoint, tmp_path / "c"))
    assert s.linked == {"mapping": 1} and s.unlinked == 1
    assert _report(settings)[0]["reason"] == "not_in_mapping"


# --- failing endpoints ---------------------------------------------------------------------------


class _Err500(http.server.BaseHTTPRequestHandler):
    def _fail(self) -> None:
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"boom")

    do_GET = do_POST = _fail

    def log_message(self, *a: object) -> None:
        pass


@pytest.fixture
def bad_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    kind = request.param
    if kind == "refused":
        yield f"http://127.0.0.1:{free_port()}/sparql"
        return
    if kind == "http500":
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Err500)
        t = threading.Thread(target=srv.serve_forever, daemon=True)
        t.start()
        yield f"http://127.0.0.1:{srv.server_address[1]}/sparql"
        srv.shutdown()
        srv.server_close()
        return
    # "hang": accepts connections and never answers
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/sparql"
    stop.set()
    t.join(2)
    for c in held:
        c.close()
    sock.close()


@pytest.mark.skipif(MAPPING is None, reason="no mapping file")
@pytest.mark.parametrize("bad_endpoint", ["refused", "hang", "http500"], indirect=True)
def test_failing_endpoint_never_aborts(store, settings, bad_endpoint: str, tmp_path: Path) -> None:
    _items(store, [("7", "Sabrina", 1995), ("10", "GoldenEye", 1995)]
           + [(f"9000{i}", f"Some Title {i}", 2000) for i in range(4)])
    settings.sparql_batch_size = 2
    client = _client(bad_endpoint, tmp_path / "c", timeout_s=0.3)
    t0 = time.monotonic()
    s = link_items(store, settings, mapping=MAPPING, client=client)
    assert time.monotonic() - t0 < 6
    assert s.linked == {"mapping": 2} and s.failed == 4 and s.unlinked == 0
    assert s.enrich_failed == 2 and s.query_failures >= 3
    assert s.queries_sent <= 3 * client.attempts  # circuit breaker: fail fast after 3 failures
    rep = _report(settings)
    assert {r["status"] for r in rep} == {"failed", "enrich_failed"} and len(rep) == 6
    assert all(r["reason"].startswith("sparql_error") for r in rep)
    # the mapped links are written even though enrichment failed
    assert store.counts()["relationships"]["SAME_AS"] == 2
    assert not list(tmp_path.joinpath("c").rglob("*.json"))  # failures are never cached
