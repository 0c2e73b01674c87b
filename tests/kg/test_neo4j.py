"""The local Neo4j (kg/neo4j_server) and what only the Neo4j adapter does: GDS projections and
their cleanup, vector-index rebuilds, read-only enforcement. Runs against the session's real Neo4j."""

from __future__ import annotations

import json
import socket
import stat
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from kgrec.cli import main
from kgrec.errors import StoreError, StoreUnavailable
from kgrec.kg import neo4j_server
from kgrec.kg.neo4j_store import GRAPH_PREFIX

pytestmark = pytest.mark.neo4j  # counted as Neo4j tests in the run's summary


def _seed(store) -> None:
    store.ensure_schema()
    store.upsert_nodes("User", [{"key": f"u{i}", "props": {}} for i in range(5)])
    store.upsert_nodes("Item", [{"key": f"i{i}", "props": {"year": 1990 + i}} for i in range(8)])
    store.upsert_relationships("INTERACTED", [{"src": f"u{i % 5}", "dst": f"i{i}", "props": {"count": i}}
                                              for i in range(8)])


def _kgrec_graphs(store) -> list[str]:
    return [r["graphName"] for r in store.run("gds_list", {"prefix": GRAPH_PREFIX}, read_only=True)]


def test_projection_streams_through_gds_and_drops_the_graph(neo4j_store) -> None:
    _seed(neo4j_store)
    proj = neo4j_store.stream_projection({"User": [], "Item": ["year"]}, {"INTERACTED": ["count"]})
    assert dict(zip(proj.nodes["Item"].ids, proj.nodes["Item"].properties["year"]))["i5"] == 1995
    rel = proj.relationships["INTERACTED"]
    assert dict(zip(rel.dst, rel.properties["count"])) == {f"i{i}": float(i) for i in range(8)}
    assert _kgrec_graphs(neo4j_store) == []


def test_projection_streams_through_the_gds_client_with_arrow_on_or_off(neo4j_store) -> None:
    """OpenGDS has no Arrow server: asked for Arrow, the graphdatascience client falls back to
    Cypher, and with the setting off it never tries; both give the same arrays."""
    from kgrec.kg.neo4j_gds import GdsProjections

    _seed(neo4j_store)
    spec = ({"User": [], "Item": ["year"]}, {"INTERACTED": ["count"]})
    assert neo4j_store.settings.gds_arrow and neo4j_store.gds.arrow is False
    with_arrow = neo4j_store.stream_projection(*spec)
    neo4j_store._gds = GdsProjections(neo4j_store, neo4j_store._auth, arrow=False)
    try:
        without = neo4j_store.stream_projection(*spec)
        assert neo4j_store.gds.client._arrow_client is None
    finally:
        neo4j_store._gds.close()
        neo4j_store._gds = None
    assert with_arrow == without
    assert with_arrow.nodes["User"].ids == [f"u{i}" for i in range(5)]  # sorted keys
    assert _kgrec_graphs(neo4j_store) == []


def test_projection_drops_the_graph_when_a_step_fails(neo4j_store, monkeypatch) -> None:
    _seed(neo4j_store)
    seen: list[list[str]] = []

    def boom(*_a, **_k):
        seen.append(_kgrec_graphs(neo4j_store))  # the graph exists mid-way ...
        raise KeyboardInterrupt  # ... and an interrupt (or any error) still drops it

    monkeypatch.setattr(neo4j_store.gds, "_rel_arrays", boom)
    with pytest.raises(KeyboardInterrupt):
        neo4j_store.stream_projection({"User": [], "Item": []}, {"INTERACTED": []})
    assert len(seen[0]) == 1
    assert _kgrec_graphs(neo4j_store) == []


def test_leftover_graph_of_a_killed_run_is_cleaned(neo4j_store) -> None:
    _seed(neo4j_store)
    dead = 2 ** 22 + 12345  # above pid_max's default: no such process
    stale = f"{GRAPH_PREFIX}{socket.gethostname()}-{dead}-0badcafe"
    other = f"{GRAPH_PREFIX}otherhost-{dead}-0badcafe"  # another host's: not ours to judge
    for name in (stale, other):
        neo4j_store.gds.client.graph.project.native(name, ["User"], ["INTERACTED"])
    try:
        neo4j_store.stream_projection({"User": []}, {"INTERACTED": []})
        assert _kgrec_graphs(neo4j_store) == [other]
    finally:
        neo4j_store.run("gds_drop", {"graph_name": other})


def test_gds_errors_are_store_errors(neo4j_store) -> None:
    _seed(neo4j_store)
    with pytest.raises(StoreError, match="(?i)emb"):  # Item.emb does not exist in this graph
        neo4j_store.stream_projection({"User": [], "Item": ["emb"]}, {"INTERACTED": []})
    assert _kgrec_graphs(neo4j_store) == []


def test_vector_index_of_another_dimension_is_rebuilt(neo4j_store) -> None:
    _seed(neo4j_store)
    ids = [f"i{i}" for i in range(8)]
    neo4j_store.write_vectors("Item", "emb", ids, np.eye(8, 4, dtype=np.float32) + 0.1)
    neo4j_store.create_vector_index("Item", "emb", 4)
    vecs = np.random.default_rng(1).normal(size=(8, 6)).astype(np.float32)
    neo4j_store.write_vectors("Item", "emb", ids, vecs)
    neo4j_store.create_vector_index("Item", "emb", 6)  # IF NOT EXISTS alone would keep the 4-d one
    dims = neo4j_store.run("vector_index_dimension", {"index_name": "kgrec_item_emb_vector"}, read_only=True)
    assert [int(r["dim"]) for r in dims] == [6]
    assert neo4j_store.knn("Item", "emb", vecs[2], 1)[0][0] == "i2"


def test_read_only_refuses_writes(neo4j_store) -> None:
    with pytest.raises(StoreError, match="read-only"):
        neo4j_store.execute("CREATE (:User {id: 'sneaky'})", read_only=True)
    assert neo4j_store.counts()["nodes"] == {}


def test_clear_runs_in_batches(neo4j_store) -> None:
    neo4j_store.execute("UNWIND range(1, 25000) AS i CREATE (:Feature {id: 'f' + i})")
    neo4j_store.clear()  # CALL {…} IN TRANSACTIONS OF 10000 ROWS, in an auto-commit transaction
    assert neo4j_store.counts()["nodes"] == {}


def test_local_server_versions_loopback_and_private_password(local_neo4j_home, neo4j_store) -> None:
    if local_neo4j_home is None:
        pytest.skip("the suite runs against KGREC_TEST_NEO4J_URI, not a local server")
    server = neo4j_server.find_running(local_neo4j_home / "neo4j")
    info = neo4j_server.describe(server)
    assert info["neo4j"].startswith("5.26.") and info["gds"].startswith("2.13.") and info["apoc"].startswith("5.26.")
    assert stat.S_IMODE((server.home / "password").stat().st_mode) == 0o600
    conf = (server.home / "conf" / "neo4j.conf").read_text()
    assert "server.default_listen_address=127.0.0.1" in conf and "0.0.0.0" not in conf
    with urllib.request.urlopen(server.browser_url, timeout=10) as r:
        assert r.status == 200 and b"Neo4j Browser" in r.read()


def test_cli_status_and_query_with_the_password_file(local_neo4j_home, neo4j_store, monkeypatch, capsys) -> None:
    if local_neo4j_home is None:
        pytest.skip("the suite runs against KGREC_TEST_NEO4J_URI, not a local server")
    server = neo4j_server.find_running(local_neo4j_home / "neo4j")
    monkeypatch.setenv("KGREC_HOME", str(local_neo4j_home))
    monkeypatch.delenv("NEO4J_PASSWORD", raising=False)  # read from $KGREC_HOME/neo4j/password
    monkeypatch.chdir(local_neo4j_home)  # no .env here
    for args in (["neo4j", "status", "--json"],
                 ["query", "RETURN gds.version() AS gds, apoc.version() AS apoc", "--json",
                  "--graph", server.bolt_uri]):
        monkeypatch.setattr(sys, "argv", ["kgrec", *args])
        with pytest.raises(SystemExit) as e:
            main()
            raise SystemExit(0)
        out = capsys.readouterr().out
        assert e.value.code == 0, out
        got = json.loads(out)
        got = got[0] if isinstance(got, list) else got
        assert got["gds"].startswith("2.13.") and got["apoc"].startswith("5.26.")


def test_missing_jars_say_how_to_get_them(tmp_path) -> None:
    with pytest.raises(StoreUnavailable, match="make neo4j"):
        neo4j_server.start(tmp_path / "neo4j", dist=tmp_path / "nothing-here")


def test_wrong_java_says_which_is_needed(tmp_path, monkeypatch) -> None:
    fake = tmp_path / "jdk" / "bin" / "java"
    fake.parent.mkdir(parents=True)
    fake.write_text('#!/bin/sh\necho \'openjdk version "11.0.2" 2019-01-15\' >&2\n')
    fake.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    with pytest.raises(StoreUnavailable, match="Java 11; Neo4j 5.26 needs Java 17 or 21"):
        neo4j_server.start(tmp_path / "neo4j")
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(StoreUnavailable, match="Java 17 is not installed"):
        neo4j_server.start(tmp_path / "neo4j")
    assert not Path(tmp_path / "neo4j" / "server.json").exists()


#: statements whose Eager Neo4j plans for any DELETE of a relationship reached by an expansion (it
#: protects the iteration); each deletes one user's or one item's few edges per row, not a load
EAGER_DELETES = {"recommended_clear", "recommended_clear_many", "dbpedia_delete_stale_same_as"}


def _write_statements(store):
    """(name, template) of every write statement the store runs, with the templates the store fills."""
    from kgrec.kg import schema

    for label, key in schema.NODE_KEYS.items():
        yield "upsert_nodes", {"label": label, "key": key, "set_clause": "SET n.title = row.props.title"}
        for prop in schema.VECTOR_PROPERTIES.get(label, ()):
            yield "write_vectors", {"label": label, "key": key, "prop": prop,
                                    "set_clause": "SET n.persona_version = $extra.persona_version"}
    for rel, (a, b) in schema.REL_ENDPOINTS.items():
        for name in ("upsert_relationships", "create_relationships"):
            yield name, {"rel_type": rel, "src_label": a, "dst_label": b, "src_key": schema.key_of(a),
                         "dst_key": schema.key_of(b), "set_clause": "SET r.weight = row.props.weight"}
        yield "delete_relationships", {"rel_type": rel}
        yield "delete_relationships_where", {"rel_type": rel, "prop": "run"}
    for name in ("personas_delete", "personas_size_labels", "clear", *sorted(EAGER_DELETES)):
        yield name, {}


def _operators(store, statement: str) -> list[str]:
    with store._driver.session() as session:
        plan = session.run("EXPLAIN " + statement).consume().plan
    out = []

    def walk(p) -> None:
        out.append(p["operatorType"].split("@")[0])
        for c in p.get("children", []):
            walk(c)

    walk(plan)
    return out


def test_no_write_statement_plans_an_eager_step(neo4j_store) -> None:
    """Every statement that writes (upserts, vector writes, deletes) is EXPLAINed on the real Neo4j:
    an Eager operator (the whole batch materialised before any write) fails it, except the small
    deletes Neo4j always plans one for; the shared `SET x += row.props` would plan one (asserted)."""
    neo4j_store.ensure_schema()
    checked, eager = 0, []
    for name, template in _write_statements(neo4j_store):
        for stmt in neo4j_store.cypher.statements(name, **template):
            checked += 1
            if "Eager" in _operators(neo4j_store, stmt) and name not in EAGER_DELETES:
                eager.append((name, template.get("label") or template.get("rel_type")))
    assert checked > 40 and not eager, eager
    dynamic = neo4j_store.cypher.one("upsert_nodes", label="Item", key="id", set_clause="SET n += row.props")
    assert "Eager" in _operators(neo4j_store, dynamic)  # why the twin sets static keys

