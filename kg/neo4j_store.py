"""Neo4j 5 adapter of the graph-store port (plain Cypher through the ``neo4j`` driver;
projections streamed through GDS with the ``graphdatascience`` client).

Credentials come from ``NEO4J_USER`` / ``NEO4J_PASSWORD`` (environment or ``.env``)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from kgrec.errors import ConfigError, StoreError, StoreUnavailable
from kgrec.kg import schema
from kgrec.kg.store import GraphStore, NodeArrays, Projection, RelArrays
from kgrec.settings import Settings

log = logging.getLogger(__name__)

HOW_TO_START = "start it with `docker compose up -d --wait neo4j` (see README), or unset KGREC_GRAPH_URI"


class Neo4jStore(GraphStore):
    backend = "neo4j"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        import neo4j
        from neo4j.exceptions import AuthError, ServiceUnavailable

        self._uri = str(settings.graph_uri)
        password = settings.neo4j_password.get_secret_value() if settings.neo4j_password else None
        if password is None:
            raise ConfigError("NEO4J_PASSWORD is not set (environment or .env) for " + self._uri)
        self._auth = (settings.neo4j_user, password)
        self._database = settings.graph_name if settings.graph_name != "kgrec" else None
        try:
            self._driver = neo4j.GraphDatabase.driver(
                self._uri, auth=self._auth, connection_timeout=settings.connect_timeout_s,
                max_transaction_retry_time=settings.connect_timeout_s)
            self._driver.verify_connectivity()
        except (ServiceUnavailable, OSError) as e:
            raise StoreUnavailable(f"cannot reach Neo4j at {self._uri}: {e}; {HOW_TO_START}") from e
        except AuthError as e:
            raise StoreUnavailable(f"Neo4j at {self._uri} rejected the credentials of user "
                                   f"{settings.neo4j_user!r} (check NEO4J_PASSWORD)") from e
        self._neo4j = neo4j
        self._gds = None

    @property
    def uri(self) -> str:
        return self._uri

    def execute(self, statement: str, params: dict[str, Any] | None = None, *,
                read_only: bool = False) -> list[dict[str, Any]]:
        from neo4j.exceptions import Neo4jError, ServiceUnavailable

        routing = self._neo4j.RoutingControl.READ if read_only else self._neo4j.RoutingControl.WRITE
        try:
            records, _, _ = self._driver.execute_query(
                statement, parameters_=params or {}, database_=self._database, routing_=routing)
        except ServiceUnavailable as e:
            raise StoreUnavailable(f"lost the connection to Neo4j at {self._uri}: {e}") from e
        except Neo4jError as e:
            raise StoreError(f"Neo4j rejected the query: {e.message}\n  query: {statement[:300]}") from e
        return [r.data() for r in records]

    def ensure_unique(self, label: str, key: str) -> None:
        label, key = schema.check_label(label), schema.check_property(key)
        self.run("unique", label=label, key=key, name=f"kgrec_{label.lower()}_{key}_unique")

    @staticmethod
    def _index_name(label: str, prop: str) -> str:
        return f"kgrec_{label.lower()}_{prop}_vector"

    def create_vector_index(self, label: str, prop: str, dim: int) -> None:
        label, prop, dim = schema.check_vector_index(label, prop, dim)
        self.run("create_vector_index", label=label, prop=prop, dim=str(dim),
                 index_name=self._index_name(label, prop))
        self.execute("CALL db.awaitIndexes(300)")

    def knn(self, label: str, prop: str, vector: Sequence[float], k: int) -> list[tuple[str, float]]:
        label, prop = schema.check_label(label), schema.check_property(prop)
        stmt = self.cypher.one("knn", key=schema.key_of(label))
        rows = self.execute(stmt, {"index_name": self._index_name(label, prop), "k": int(k),
                                   "vector": [float(x) for x in vector]}, read_only=True)
        return [(r["id"], float(r["score"])) for r in rows]

    # --- GDS projection streaming ---------------------------------------------------------
    def _gds_client(self) -> Any:
        if self._gds is None:
            from graphdatascience import GraphDataScience

            try:
                self._gds = GraphDataScience.from_neo4j_driver(self._driver, database=self._database)
            except Exception as e:  # graphdatascience raises plain exceptions when GDS is missing
                raise StoreError(f"GDS is not available on {self._uri}: {e}") from e
        return self._gds

    def stream_projection(self, node_properties: dict[str, Sequence[str]],
                          rel_properties: dict[str, Sequence[str]]) -> Projection:
        """Project the typed subgraph with ``gds.graph.project`` and stream it back with
        ``gds.graph.nodeProperties.stream`` / ``gds.graph.relationships.stream``.

        GDS projects only numeric (and numeric array) properties; string keys are joined
        back from the internal node ids with one Cypher read per label."""
        for label in node_properties:
            schema.check_label(label)
        for rel_type in rel_properties:
            schema.check_rel_type(rel_type)
        gds = self._gds_client()
        node_spec = {label: {"properties": list(props)} if props else {} for label, props in
                     node_properties.items()}
        rel_spec = {t: ({"properties": list(p)} if p else {}) | {"orientation": "NATURAL"}
                    for t, p in rel_properties.items()}
        name = f"kgrec-{uuid.uuid4().hex[:8]}"
        graph, _ = gds.graph.project(name, node_spec, rel_spec)
        try:
            keys: dict[int, str] = {}
            nodes: dict[str, NodeArrays] = {}
            for label, props in node_properties.items():
                key = schema.key_of(label)
                rows = self.run("node_ids", read_only=True, label=label, key=key)
                arrays = NodeArrays(label, [r["id"] for r in rows], {p: [] for p in props})
                for r in rows:
                    keys[r["nid"]] = r["id"]
                if props:
                    df = gds.graph.nodeProperties.stream(graph, list(props), node_labels=[label],
                                                         separate_property_columns=True)
                    by_key = {keys[int(nid)]: row for nid, row in zip(df["nodeId"], df.itertuples())}
                    for p in props:
                        arrays.properties[p] = [getattr(by_key[k], p, None) if k in by_key else None
                                                for k in arrays.ids]
                nodes[label] = arrays
            rels: dict[str, RelArrays] = {}
            for rel_type, props in rel_properties.items():
                if props:
                    df = gds.graph.relationshipProperties.stream(graph, list(props), [rel_type],
                                                                 separate_property_columns=True)
                else:
                    df = gds.graph.relationships.stream(graph, [rel_type])
                rels[rel_type] = RelArrays(
                    rel_type,
                    [keys[int(s)] for s in df["sourceNodeId"]],
                    [keys[int(t)] for t in df["targetNodeId"]],
                    {p: df[p].tolist() for p in props})
            return Projection(nodes, rels)
        finally:
            graph.drop()

    def close(self) -> None:
        if self._gds is not None:
            self._gds.close()
        self._driver.close()
