"""The review's security findings, one test each: URI passwords redacted, FalkorDB failures
classified by exception type, the SPARQL cache scoped by endpoint, and no pickle loads anywhere."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from kgrec.errors import KgrecError, StoreError, StoreUnavailable
from kgrec.kg.falkordb_server import free_port
from kgrec.kg.store import open_store, redact_uri
from kgrec.settings import Settings

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("uri", [
    "falkordb://:s3cr3t-pw@127.0.0.1:{port}",
    "falkordb://kgrec:s3cr3t-pw@127.0.0.1:{port}",
    "mysql://root:s3cr3t-pw@db:3306",
    "bolt://neo4j:s3cr3t-pw@127.0.0.1:notaport",
])
def test_a_password_in_the_graph_uri_is_never_echoed(tmp_path, uri) -> None:
    uri = uri.format(port=free_port())
    with pytest.raises(KgrecError) as info:
        open_store(Settings(home=tmp_path, graph_uri=uri, connect_timeout_s=1))
    text = str(info.value) + repr(info.value) + str(info.value.__cause__ or "")
    assert "s3cr3t-pw" not in text
    assert "s3cr3t-pw" not in redact_uri(uri) and "***" in redact_uri(uri)


def test_redact_uri_keeps_uris_without_password() -> None:
    assert redact_uri("neo4j://localhost:7687") == "neo4j://localhost:7687"
    assert redact_uri("bolt://neo4j@h:1") == "bolt://neo4j@h:1"


def test_a_redis_timeout_is_store_unavailable_exit_5(tmp_path) -> None:
    """redis.TimeoutError is no ConnectionError: it used to exit 4 as 'rejected the query'."""
    import redis

    store = open_store(Settings(home=tmp_path))
    try:
        store.upsert_nodes("User", [{"key": "u1", "props": {}}])
        pool = store._db.connection.connection_pool
        pool.connection_kwargs["socket_timeout"] = 0.3
        pool.reset()  # new connections take the short read timeout
        admin = redis.Redis(port=store._server.port, password=store._server.password)
        admin.execute_command("CLIENT", "PAUSE", 4000, "ALL")  # the server stops answering (redis-py retries)
        with pytest.raises(StoreUnavailable) as info:
            store.execute("MATCH (u:User) RETURN count(u) AS n", read_only=True)
        assert info.value.exit_code == 5 and isinstance(info.value.__cause__, redis.TimeoutError)
        admin.execute_command("CLIENT", "UNPAUSE")
        admin.close()
        with pytest.raises(StoreError) as bad:  # a rejected query stays exit 4
            store.execute("THIS IS NOT CYPHER")
        assert type(bad.value) is StoreError and bad.value.exit_code == 4
    finally:
        store.close()


def test_sparql_cache_is_scoped_by_endpoint(tmp_path) -> None:
    from kgrec.kg.dbpedia.sparql import SparqlClient, query_key

    q = "SELECT ?s WHERE { ?s ?p ?o } LIMIT 1"
    local = SparqlClient("http://127.0.0.1:1/query", cache_dir=tmp_path)
    local._cache_put(local._cache_path(q), q, [{"s": "http://local/subset"}])
    assert local._cache_get(local._cache_path(q)) == [{"s": "http://local/subset"}]
    full = SparqlClient("https://dbpedia.org/sparql", cache_dir=tmp_path)
    assert full._cache_get(full._cache_path(q)) is None  # not the local subset's answer
    # the same data behind another random port shares the cache through its scope
    a = SparqlClient("http://127.0.0.1:1111/query", cache_dir=tmp_path, cache_scope="oxigraph:abc")
    b = SparqlClient("http://127.0.0.1:2222/query", cache_dir=tmp_path, cache_scope="oxigraph:abc")
    assert a._cache_path(q) == b._cache_path(q) != full._cache_path(q)
    assert query_key(q, "x") != query_key(q, "y")


def test_local_oxigraph_scope_is_its_data(tmp_path) -> None:
    from kgrec.kg.dbpedia import oxigraph_server

    files = sorted((REPO / "data" / "demo" / "dbpedia").glob("*.nt*"))
    with oxigraph_server.serve(files, tmp_path / "oxi") as server:
        assert server.cache_scope == "oxigraph:" + oxigraph_server.fingerprint(files)


def test_graph_arrays_load_without_pickle(tmp_path) -> None:
    from kgrec.personas.data import GraphArrays

    empty = np.zeros((2, 0), np.int64)
    arrays = GraphArrays(user_ids=["u1", "u2"], item_ids=["i1"], item_emb=np.ones((1, 4), np.float32),
                         user_item=np.array([[0, 1], [0, 0]]), item_feature=empty, n_features=0,
                         item_entity=empty, n_entities=0, entity_entity=empty, entity_rel_types=[],
                         item_item=empty, feature_names=["genre=x"], entity_labels=[])
    path = arrays.save(tmp_path / "arrays.npz")
    with np.load(path, allow_pickle=False) as z:  # raises if any array needs pickle
        assert all(z[k].dtype != object for k in z.files)
    back = GraphArrays.load(path)
    assert back.user_ids == ["u1", "u2"] and back.feature_names == ["genre=x"]
    # an object array (a pickle) in a model dir is refused, not executed
    np.savez(tmp_path / "evil.npz", user_ids=np.asarray([object()], dtype=object))
    with pytest.raises(Exception, match="cannot read graph arrays"):
        GraphArrays.load(tmp_path / "evil.npz")


def test_no_pickle_loads_in_the_code() -> None:
    """No pickle-enabled ``np.load``, ``pickle.load`` or unsafe ``torch.load`` in kgrec's own code."""
    pattern = re.compile(r"allow_pickle\s*=\s*True|pickle\.loads?\(|weights_only\s*=\s*False")
    offenders = []
    for path in REPO.rglob("*.py"):
        rel = path.relative_to(REPO)
        if rel.parts[0].startswith(".") or rel.parts[0] in {"data", "tests"} or ".venv" in str(rel):
            continue
        if rel.as_posix() == "benchmarks/recbole_runner.py":  # RecBole's own checkpoints, its peer venv
            continue
        offenders += [f"{rel}:{i}" for i, line in enumerate(path.read_text().splitlines(), 1)
                      if pattern.search(line)]
    assert offenders == []


def test_a_nul_character_in_a_parameter_is_a_data_error(store) -> None:
    """Found by the schemathesis run: FalkorDB's client sends parameters as text before the query,
    so a NUL in a value truncated it and the server answered with a syntax error (HTTP 500)."""
    from kgrec.errors import DataError

    if store.backend == "neo4j":
        pytest.skip("dialect: Neo4j takes NUL characters in parameters (Bolt strings are length-prefixed); "
                    "the limit is FalkorDB's text parameter protocol")
    store.upsert_nodes("User", [{"key": "u1", "props": {}}])
    for params in ({"user": "a\x00b"}, {"ids": ["ok", "x\x00"]}, {"rows": [{"key": "k", "props": {"t": "\x00"}}]}):
        with pytest.raises(DataError, match="NUL"):
            store.execute("MATCH (u:User {id: $user}) RETURN u.id AS id", params, read_only=True)
    assert store.execute("MATCH (u:User {id: $user}) RETURN u.id AS id", {"user": "u1"}) == [{"id": "u1"}]
