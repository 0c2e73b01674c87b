"""The graph-store port against the real embedded FalkorDB (and Neo4j when configured)."""

from __future__ import annotations

import numpy as np
import pytest

from kgrec.errors import ConfigError, StoreUnavailable
from kgrec.kg.net import free_port
from kgrec.kg.store import open_store
from kgrec.settings import Settings


def _seed(store) -> None:
    store.ensure_schema()
    store.upsert_nodes("User", [{"key": f"u{i}", "props": {}} for i in range(5)])
    store.upsert_nodes("Item", [{"key": f"i{i}", "props": {"title": f"Title {i}", "year": 1990 + i}}
                                for i in range(8)])
    store.upsert_relationships("INTERACTED", [{"src": f"u{i % 5}", "dst": f"i{i}", "props": {"count": 1}}
                                              for i in range(8)])


def test_upserts_are_idempotent_and_counted(store) -> None:
    _seed(store)
    first = store.counts()
    _seed(store)
    assert store.counts() == first
    assert first == {"nodes": {"Item": 8, "User": 5}, "relationships": {"INTERACTED": 8}}


def test_fresh_relationships_are_created_with_the_same_result_as_merged(store) -> None:
    """``fresh=True`` (a type the graph does not hold yet, distinct pairs) CREATEs: the same
    relationships and properties as MERGE, and a missing key stays absent."""
    _seed(store)
    rows = [{"src": f"u{i % 5}", "dst": f"i{(i + 3) % 8}", "props": {"weight": float(i)} if i % 2 else {}}
            for i in range(8)]
    assert store.upsert_relationships("CO_OCCURS", [{"src": f"i{i}", "dst": f"i{(i + 1) % 8}", "props": {}}
                                                    for i in range(8)], fresh=True) == 8
    store.upsert_relationships("HAS_PERSONA", [], fresh=True)
    assert store.counts()["relationships"] == {"CO_OCCURS": 8, "INTERACTED": 8}
    store.execute("MATCH ()-[r:INTERACTED]->() DELETE r")
    store.upsert_relationships("INTERACTED", rows, fresh=True)
    created = store.execute("MATCH (u:User)-[r:INTERACTED]->(i:Item) RETURN u.id AS u, i.id AS i, r.weight AS w "
                            "ORDER BY u, i")
    store.execute("MATCH ()-[r:INTERACTED]->() DELETE r")
    store.upsert_relationships("INTERACTED", rows)
    merged = store.execute("MATCH (u:User)-[r:INTERACTED]->(i:Item) RETURN u.id AS u, i.id AS i, r.weight AS w "
                           "ORDER BY u, i")
    assert created == merged and len(created) == 8 and sum(r["w"] is None for r in created) == 4


def test_upsert_updates_properties(store) -> None:
    _seed(store)
    store.upsert_nodes("Item", [{"key": "i1", "props": {"title": "New"}}])
    rows = store.execute("MATCH (n:Item {id: $id}) RETURN n.title AS t, n.year AS y", {"id": "i1"})
    assert rows == [{"t": "New", "y": 1991}]


def test_unique_key_constraint(store) -> None:
    _seed(store)
    from kgrec.errors import StoreError

    with pytest.raises(StoreError):
        store.execute("CREATE (:Item {id: 'i1'})")


def test_parameters_carry_hostile_strings_verbatim(store) -> None:
    store.ensure_schema()
    nasty = "Robert'); MATCH (n) DETACH DELETE n; // \"}{`\\\nend"
    store.upsert_nodes("Item", [{"key": nasty, "props": {"title": nasty}}])
    store.upsert_nodes("Item", [{"key": "other", "props": {}}])
    rows = store.execute("MATCH (n:Item {id: $id}) RETURN n.title AS t", {"id": nasty}, read_only=True)
    assert rows == [{"t": nasty}]
    assert store.counts()["nodes"]["Item"] == 2


@pytest.mark.parametrize("key", ["", " padded", "trailing\n", None, 7])
def test_node_keys_are_validated(store, key) -> None:
    from kgrec.errors import DataError

    store.ensure_schema()
    with pytest.raises(DataError, match="invalid Item key"):
        store.upsert_nodes("Item", [{"key": key, "props": {}}])
    assert store.counts()["nodes"] == {}


@pytest.mark.parametrize("label", ["Item) DETACH DELETE (x", "Nope", "item"])
def test_labels_come_from_the_allow_list(store, label: str) -> None:
    with pytest.raises(ConfigError):
        store.upsert_nodes(label, [{"key": "x", "props": {}}])


def test_relationship_types_come_from_the_allow_list(store) -> None:
    with pytest.raises(ConfigError):
        store.upsert_relationships("LIKES]->() DELETE x//", [{"src": "a", "dst": "b", "props": {}}])
    with pytest.raises(ConfigError):
        store.stream_nodes("Item", ["title} RETURN 1 //"])


def test_stream_projection_arrays(store) -> None:
    _seed(store)
    proj = store.stream_projection({"User": [], "Item": ["year"]}, {"INTERACTED": ["count"]})
    assert sorted(proj.nodes["User"].ids) == [f"u{i}" for i in range(5)]
    items = proj.nodes["Item"]
    assert dict(zip(items.ids, items.properties["year"]))["i3"] == 1993
    ei = proj.edge_index("INTERACTED")
    assert ei.shape == (2, 8)
    pairs = {(proj.nodes["User"].ids[s], items.ids[d]) for s, d in ei.T}
    assert pairs == {(f"u{i % 5}", f"i{i}") for i in range(8)}
    assert proj.relationships["INTERACTED"].properties["count"] == [1] * 8


def test_stream_nodes_paginates(store) -> None:
    store.ensure_schema()
    store.upsert_nodes("Feature", [{"key": f"genre:{i:04d}", "props": {"kind": "genre"}} for i in range(250)])
    got = store.stream_nodes("Feature", ["kind"], batch_size=40)
    assert got.ids == sorted(f"genre:{i:04d}" for i in range(250))
    assert set(got.properties["kind"]) == {"genre"}


def test_vectors_and_knn(store) -> None:
    _seed(store)
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(8, 16)).astype(np.float32)
    store.write_vectors("Item", "emb", [f"i{i}" for i in range(8)], vecs)
    store.create_vector_index("Item", "emb", 16)
    store.create_vector_index("Item", "emb", 16)  # idempotent
    hits = store.knn("Item", "emb", vecs[3], 3)
    assert hits[0][0] == "i3"
    assert hits[0][1] == pytest.approx(1.0, abs=1e-4)
    unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    expected = sorted(range(8), key=lambda j: -float(unit[3] @ unit[j]))[:3]
    assert [h[0] for h in hits] == [f"i{j}" for j in expected]
    assert hits[1][1] == pytest.approx(float(unit[3] @ unit[expected[1]]), abs=1e-4)


def test_rewriting_vectors_replaces_them(store) -> None:
    """A second write must replace the stored vectors (FalkorDB 4.16 can keep an old vecf32)."""
    _seed(store)
    ids = [f"i{i}" for i in range(8)]
    store.write_vectors("Item", "emb", ids, np.ones((8, 4)))
    store.create_vector_index("Item", "emb", 4)
    for value in (2.0, 3.0):
        store.write_vectors("Item", "emb", ids, np.full((8, 4), value), extra={"v": value})
        got = store.stream_nodes("Item", ["emb", "v"])
        assert all(e == [value] * 4 for e in got.properties["emb"])
        assert set(got.properties["v"]) == {value}
    if store.backend == "falkordb":  # a vecf32 set outside write_vectors (Neo4j has no vecf32())
        rows = store.execute("MATCH (i:Item {id: 'i0'}) SET i.emb = vecf32([9.0, 9.0, 9.0, 9.0]) RETURN 1 AS ok")
        assert rows == [{"ok": 1}]
    store.write_vectors("Item", "emb", ["i0"], np.full((1, 4), 5.0))
    assert store.stream_nodes("Item", ["emb"]).properties["emb"][0] == [5.0] * 4


def test_write_vectors_rejects_unknown_property(store) -> None:
    with pytest.raises(ConfigError):
        store.write_vectors("Item", "title", ["i1"], np.zeros((1, 3)))


def test_unreachable_falkordb_names_the_uri(tmp_path) -> None:
    port = free_port()
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
        open_store(Settings(home=tmp_path, graph_uri=f"falkordb://127.0.0.1:{port}", connect_timeout_s=1))


def test_unreachable_neo4j_says_how_to_start_it(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NEO4J_PASSWORD", "not-a-real-secret")
    port = free_port()
    with pytest.raises(StoreUnavailable, match=r"docker compose") as err:
        open_store(Settings(home=tmp_path, graph_uri=f"bolt://127.0.0.1:{port}", connect_timeout_s=1))
    assert f"127.0.0.1:{port}" in str(err.value)
    assert "not-a-real-secret" not in str(err.value)


def test_neo4j_without_password_is_a_config_error(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NEO4J_PASSWORD", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    with pytest.raises(ConfigError, match="NEO4J_PASSWORD"):
        open_store(Settings(home=tmp_path, graph_uri="neo4j://127.0.0.1:1"))


def test_unknown_uri_scheme(tmp_path) -> None:
    with pytest.raises(ConfigError):
        open_store(Settings(home=tmp_path, graph_uri="mysql://x"))


def test_embedded_server_is_reused_and_persists(tmp_path) -> None:
    s1 = open_store(Settings(home=tmp_path))
    try:
        s1.ensure_schema()
        s1.upsert_nodes("User", [{"key": "u1", "props": {}}])
        s2 = open_store(Settings(home=tmp_path))
        assert s2.uri == s1.uri  # same server, not a second one
        assert s2.counts()["nodes"] == {"User": 1}
        s2.close()
        assert s1.counts()["nodes"] == {"User": 1}  # closing the borrower left it running
    finally:
        s1.close()
    s3 = open_store(Settings(home=tmp_path))  # a new server loads what was persisted
    try:
        assert s3.counts()["nodes"] == {"User": 1}
    finally:
        s3.close()
    assert oct((tmp_path / "falkordb" / "password").stat().st_mode & 0o777) == "0o600"


def test_interrupted_start_stops_the_server(tmp_path, monkeypatch) -> None:
    """SIGTERM (→ SystemExit) or Ctrl-C while the server loads a snapshot must not leave an
    orphaned redis-server holding the data dir (it runs in its own session)."""
    import subprocess

    import redis

    from kgrec.kg import falkordb_server

    started = []
    real_popen = subprocess.Popen

    def spy(*a, **kw):
        started.append(real_popen(*a, **kw))
        return started[-1]

    def interrupted(self):
        raise SystemExit(143)

    monkeypatch.setattr(falkordb_server.subprocess, "Popen", spy)
    monkeypatch.setattr(redis.Redis, "ping", interrupted)
    with pytest.raises(SystemExit):
        falkordb_server.start(tmp_path)
    assert len(started) == 1 and started[0].poll() is not None  # the real server was stopped
    assert not (tmp_path / "falkordb" / falkordb_server.STATE_FILE).exists()


def test_upserts_set_static_keys_with_the_semantics_of_a_map_merge(store) -> None:
    """Rows with different property keys in one batch: a missing key is left alone, None removes
    the property, later rows win (the statement runs per run of rows with the same keys)."""
    store.ensure_schema()
    store.upsert_nodes("Item", [{"key": "a", "props": {"title": "A", "year": 1990}},
                                      {"key": "b", "props": {"title": "B"}}])
    store.upsert_nodes("Item", [{"key": "a", "props": {"title": "A2"}}, {"key": "b", "props": {"year": None}},
                                      {"key": "a", "props": {"title": "A3", "year": 1991}}, {"key": "c", "props": {}}])
    rows = store.execute("MATCH (i:Item) RETURN i.id AS id, i.title AS title, i.year AS year ORDER BY id",
                               read_only=True)
    assert rows == [{"id": "a", "title": "A3", "year": 1991}, {"id": "b", "title": "B", "year": None},
                    {"id": "c", "title": None, "year": None}]


def test_falkordb_vector_index_takes_the_hnsw_settings_and_is_rebuilt_when_they_change(falkordb_store) -> None:
    """FalkorDB's efRuntime default (10) misses a query's own item; the settings' value is used,
    and an index built with other settings is dropped and built again."""
    store = falkordb_store
    store.ensure_schema()
    ids = [f"i{i}" for i in range(20)]
    store.upsert_nodes("Item", ({"key": i, "props": {}} for i in ids))
    store.write_vectors("Item", "emb", ids, np.random.default_rng(0).normal(size=(20, 8)))

    def options() -> dict:
        return next(dict(r["options"]["emb"]) for r in store.execute("CALL db.indexes()") if r["label"] == "Item")

    store.create_vector_index("Item", "emb", 8)
    assert options()["efRuntime"] == store.settings.falkordb_hnsw_ef_runtime == 50
    store.settings.falkordb_hnsw_ef_runtime = 20
    store.create_vector_index("Item", "emb", 8)
    assert options()["efRuntime"] == 20 and options()["M"] == store.settings.falkordb_hnsw_m
    assert store.knn("Item", "emb", np.ones(8), 3)
