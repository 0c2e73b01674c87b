"""FalkorDB adapter of the graph-store port (embedded by default, or ``falkordb://host:port``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlparse

from kgrec.errors import DataError, StoreError, StoreUnavailable
from kgrec.kg import schema
from kgrec.kg.store import GraphStore
from kgrec.settings import Settings


def _nul_at(value: Any, where: str) -> str | None:
    """Where a NUL character hides in a parameter value, if anywhere. (The client sends parameters as
    text before the query; a NUL ends that text early, and the server answers with a syntax error.)"""
    if isinstance(value, str):
        return where if "\x00" in value else None
    if isinstance(value, dict):
        return next((w for k, v in value.items() if (w := _nul_at(v, f"{where}.{k}"))), None)
    if isinstance(value, (list, tuple)) and value and not isinstance(value[0], (int, float)):
        return next((w for i, v in enumerate(value) if (w := _nul_at(v, f"{where}[{i}]"))), None)
    return None


class FalkorDBStore(GraphStore):
    backend = "falkordb"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        import redis
        from falkordb import FalkorDB

        self._server = None
        if settings.graph_uri:
            parsed = urlparse(settings.graph_uri)
            host, port = parsed.hostname or "127.0.0.1", parsed.port or 6379
            password = (settings.falkordb_password.get_secret_value()
                        if settings.falkordb_password else parsed.password)
            self._uri = f"falkordb://{host}:{port}"
        else:
            from kgrec.kg import falkordb_server

            self._server = falkordb_server.start(settings.home)
            host, port, password = "127.0.0.1", self._server.port, self._server.password
            self._uri = self._server.uri
        try:
            self._db = FalkorDB(host=host, port=port, password=password,
                                socket_connect_timeout=settings.connect_timeout_s)
            self._db.connection.ping()
        except (redis.ConnectionError, redis.TimeoutError, redis.AuthenticationError) as e:
            self._stop_server()
            raise StoreUnavailable(
                f"cannot reach FalkorDB at {self._uri}: {e}. Start it (e.g. `docker run -p {port}:6379 "
                "falkordb/falkordb`) or unset KGREC_GRAPH_URI to use the embedded store."
            ) from e
        self._graph = self._db.select_graph(settings.graph_name)
        self._redis_errors = (redis.RedisError,)
        # by exception type (redis-py's TimeoutError is no ConnectionError, and its name has no "Connection")
        self._unreachable = (redis.ConnectionError, redis.TimeoutError)

    @property
    def uri(self) -> str:
        return self._uri

    def execute(self, statement: str, params: dict[str, Any] | None = None, *,
                read_only: bool = False) -> list[dict[str, Any]]:
        bad = next((w for k, v in (params or {}).items() if (w := _nul_at(v, k))), None)
        if bad is not None:
            raise DataError(f"parameter {bad} contains a NUL character, which FalkorDB cannot take")
        try:
            if read_only:
                res = self._graph.ro_query(statement, params)
            else:
                res = self._graph.query(statement, params)
        except self._redis_errors as e:
            if isinstance(e, self._unreachable):
                raise StoreUnavailable(f"lost the connection to {self._uri}: {e}") from e
            raise StoreError(f"FalkorDB rejected the query: {e}\n  query: {statement[:300]}") from e
        if not res.header:
            return []
        cols = [h[1] if isinstance(h, (list, tuple)) else h for h in res.header]
        return [dict(zip(cols, row)) for row in res.result_set]

    def ensure_unique(self, label: str, key: str) -> None:
        label, key = schema.check_label(label), schema.check_property(key)
        existing = {(r["label"], tuple(r["properties"])) for r in self.execute("CALL db.constraints()")}
        if (label, (key,)) in existing:
            return
        indexed = {(r["label"], p) for r in self.execute("CALL db.indexes()") for p in r["properties"]}
        if (label, key) not in indexed:
            self.run("unique", label=label, key=key)
        try:
            self._db.connection.execute_command(
                "GRAPH.CONSTRAINT", "CREATE", self._graph.name, "UNIQUE", "NODE", label, "PROPERTIES", 1, key)
        except self._redis_errors as e:
            if "already exists" not in str(e):
                raise StoreError(f"cannot create the unique constraint on {label}.{key}: {e}") from e

    def create_vector_index(self, label: str, prop: str, dim: int) -> None:
        label, prop, dim = schema.check_vector_index(label, prop, dim)
        s = self.settings
        want = {"dimension": dim, "M": s.falkordb_hnsw_m, "efConstruction": s.falkordb_hnsw_ef_construction,
                "efRuntime": s.falkordb_hnsw_ef_runtime}
        for r in self.execute("CALL db.indexes()"):
            if r["label"] == label and "VECTOR" in (r["types"].get(prop) or []):
                have = r["options"].get(prop) or {}
                if all(have.get(k) == v for k, v in want.items()):
                    return
                self._graph.drop_node_vector_index(label, prop)  # another dimension or HNSW setting
        self.run("create_vector_index", label=label, prop=prop, dim=str(dim), m=str(want["M"]),
                 ef_construction=str(want["efConstruction"]), ef_runtime=str(want["efRuntime"]))

    def _vector_index_ready(self, label: str, prop: str) -> bool:
        for r in self.execute("CALL db.indexes()"):
            if r["label"] == label and "VECTOR" in (r["types"].get(prop) or []):
                return r["status"] == "OPERATIONAL"
        raise StoreError(f"no vector index on {label}.{prop}; build the graph first")

    def knn(self, label: str, prop: str, vector: Sequence[float], k: int,
            wait_s: float = 30.0) -> list[tuple[str, float]]:
        label, prop = schema.check_label(label), schema.check_property(prop)
        stmt = self.cypher.one("knn", label=label, prop=prop, key=schema.key_of(label))
        deadline = time.monotonic() + wait_s
        while not self._vector_index_ready(label, prop):  # the index builds asynchronously
            if time.monotonic() > deadline:
                raise StoreError(f"the vector index on {label}.{prop} is still building after {wait_s:.0f}s")
            time.sleep(0.1)
        rows = self.execute(stmt, {"k": int(k), "vector": [float(x) for x in vector]}, read_only=True)
        return [(r["id"], float(r["score"])) for r in rows]

    def _stop_server(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def close(self) -> None:
        try:
            self._db.connection.close()
        except (AttributeError, *getattr(self, "_redis_errors", ())):
            pass
        self._stop_server()
