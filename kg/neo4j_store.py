"""Neo4j 5 adapter of the graph-store port: plain Cypher through the ``neo4j`` driver, and the
training projection through GDS procedures (``gds.graph.project`` → node-property and
relationship streams → ``gds.graph.drop``), called as Cypher so that they work the same on the
open-source GDS (which has no Arrow server) and on Enterprise/Aura.

Floors, checked when connecting: Neo4j 5.13 (vector indexes came in 5.11,
``db.create.setNodeVectorProperty`` in 5.13); GDS 2.5 for the projection
(``gds.graph.relationships.stream``). Credentials come from ``NEO4J_USER`` / ``NEO4J_PASSWORD``
(environment or ``.env``), or, for the local server that ``kgrec neo4j start`` runs for this home,
from its 0600 password file.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from kgrec.errors import ConfigError, StoreError, StoreUnavailable
from kgrec.kg import schema
from kgrec.kg.store import GraphStore, NodeArrays, Projection, RelArrays
from kgrec.settings import Settings

log = logging.getLogger(__name__)

HOW_TO_START = ("start one with `make neo4j && kgrec neo4j start` (or `docker compose up -d --wait neo4j`), "
                "or unset KGREC_GRAPH_URI")
NEO4J_FLOOR = (5, 13)
GDS_FLOOR = (2, 5)
#: In-memory GDS graphs kgrec creates are named ``kgrec-proj-<host>-<pid>-<random>``.
GRAPH_PREFIX = "kgrec-proj-"
RETRY_BUDGET_S = 30.0


def _version_tuple(text: str) -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def _local_password(settings: Settings, uri: str) -> str | None:
    """The password of the local server (``kgrec neo4j start``) of this home, when ``uri`` is it."""
    from kgrec.kg import neo4j_server

    server = neo4j_server.find_running(settings.home / "neo4j")
    parts = urlsplit(uri)
    if server is None or parts.hostname not in {"127.0.0.1", "localhost"} or parts.port != server.bolt_port:
        return None
    return server.password


class Neo4jStore(GraphStore):
    backend = "neo4j"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        import neo4j
        from neo4j.exceptions import AuthError, Neo4jError, ServiceUnavailable

        from kgrec.kg.store import redact_uri

        self._neo4j = neo4j
        raw_uri = str(settings.graph_uri)
        self._uri = redact_uri(raw_uri)  # for messages: never a password
        password = settings.neo4j_password.get_secret_value() if settings.neo4j_password else None
        password = password or _local_password(settings, raw_uri)
        if password is None:
            raise ConfigError("NEO4J_PASSWORD is not set (environment or .env) for " + self._uri)
        # the database is named only when asked for (Community has just `neo4j` and `system`)
        self._database = settings.neo4j_database or None
        try:
            self._driver = neo4j.GraphDatabase.driver(
                raw_uri, auth=(settings.neo4j_user, password), connection_timeout=settings.connect_timeout_s,
                max_transaction_retry_time=RETRY_BUDGET_S,
                notifications_min_severity="OFF")  # kgrec reads properties that may not exist yet
        except (neo4j.exceptions.ConfigurationError, ValueError) as e:
            raise ConfigError(f"invalid Neo4j URI {self._uri}: {type(e).__name__} (credentials go in "
                              "NEO4J_USER / NEO4J_PASSWORD, not in the URI)") from None
        try:
            self._driver.verify_connectivity()
            self.version, self.edition = self._check_version()
        except (ServiceUnavailable, OSError) as e:
            self._driver.close()
            raise StoreUnavailable(f"cannot reach Neo4j at {self._uri}: {e}; {HOW_TO_START}") from e
        except AuthError as e:
            self._driver.close()
            raise StoreUnavailable(f"Neo4j at {self._uri} rejected the credentials of user "
                                   f"{settings.neo4j_user!r} (check NEO4J_PASSWORD)") from e
        except (Neo4jError, StoreError):
            self._driver.close()
            raise
        self._gds_version: str | None = None

    def _check_version(self) -> tuple[str, str]:
        row = self.run("server_version", read_only=True)[0]
        if _version_tuple(row["version"]) < NEO4J_FLOOR:
            raise StoreError(f"Neo4j {row['version']} at {self._uri} is too old: kgrec needs Neo4j >= 5.13 "
                             "(vector index 5.11+, db.create.setNodeVectorProperty 5.13+)")
        return str(row["version"]), str(row["edition"])

    def _at_least(self, major: int, minor: int) -> bool:
        return _version_tuple(self.version) >= (major, minor)

    @property
    def uri(self) -> str:
        return self._uri

    def execute(self, statement: str, params: dict[str, Any] | None = None, *,
                read_only: bool = False) -> list[dict[str, Any]]:
        """Run one statement. ``read_only`` runs it in a READ transaction, so the server refuses
        writes; ``CALL {…} IN TRANSACTIONS`` runs in an auto-commit transaction (it needs one)."""
        from neo4j.exceptions import Neo4jError, ServiceUnavailable, SessionExpired

        params = params or {}
        mode = self._neo4j.READ_ACCESS if read_only else self._neo4j.WRITE_ACCESS
        try:
            with self._driver.session(database=self._database, default_access_mode=mode) as session:
                if re.search(r"\bIN\s+TRANSACTIONS\b", statement, re.IGNORECASE) and not read_only:
                    return [r.data() for r in session.run(statement, params)]

                def work(tx: Any) -> list[dict[str, Any]]:
                    return [r.data() for r in tx.run(statement, params)]

                return session.execute_read(work) if read_only else session.execute_write(work)
        except (ServiceUnavailable, SessionExpired) as e:
            raise StoreUnavailable(f"lost the connection to Neo4j at {self._uri}: {e}") from e
        except Neo4jError as e:
            what = "refused a write in a read-only query" if e.code and "AccessMode" in e.code else "rejected the query"
            raise StoreError(f"Neo4j {what}: {e.message}\n  query: {statement[:300]}") from e

    def ensure_unique(self, label: str, key: str) -> None:
        label, key = schema.check_label(label), schema.check_property(key)
        self.run("unique", label=label, key=key, constraint_name=f"kgrec_{label.lower()}_{key}_unique")

    @staticmethod
    def _index_name(label: str, prop: str) -> str:
        return f"kgrec_{label.lower()}_{prop}_vector"

    def create_vector_index(self, label: str, prop: str, dim: int) -> None:
        """Create the cosine vector index; one of another dimension (``--hidden`` changed) is
        dropped and rebuilt, since ``IF NOT EXISTS`` would keep it."""
        label, prop, dim = schema.check_vector_index(label, prop, dim)
        name = self._index_name(label, prop)
        old = self.run("vector_index_dimension", {"index_name": name}, read_only=True)
        if old and int(old[0]["dim"]) != dim:
            log.info("vector index %s has dimension %s, rebuilding it for %d", name, old[0]["dim"], dim)
            self.run("drop_index", index_name=name)
        exact = ", `vector.quantization.enabled`: false" if self._at_least(5, 23) else ""
        self.run("create_vector_index", label=label, prop=prop, dim=str(dim), index_name=name, quantization=exact)
        self.execute("CALL db.awaitIndexes(300)")

    def knn(self, label: str, prop: str, vector: Sequence[float], k: int) -> list[tuple[str, float]]:
        label, prop = schema.check_label(label), schema.check_property(prop)
        stmt = self.cypher.one("knn", key=schema.key_of(label))
        rows = self.execute(stmt, {"index_name": self._index_name(label, prop), "k": int(k),
                                   "vector": [float(x) for x in vector]}, read_only=True)
        return [(r["id"], float(r["score"])) for r in rows]

    # --- GDS projection streaming ---------------------------------------------------------
    def gds_version(self) -> str:
        """The GDS version on the server, checked against the floor (raises StoreError)."""
        if self._gds_version is None:
            try:
                version = str(self.run("gds_version", read_only=True)[0]["version"])
            except StoreError as e:
                raise StoreError(f"Graph Data Science is not installed on {self._uri}: the personas stage "
                                 "needs GDS >= 2.5 (`make neo4j` assembles it; see README)") from e
            if _version_tuple(version) < GDS_FLOOR:
                raise StoreError(f"GDS {version} on {self._uri} is too old: kgrec needs GDS >= 2.5 "
                                 "(gds.graph.relationships.stream)")
            self._gds_version = version
        return self._gds_version

    def drop_stale_projections(self) -> list[str]:
        """Drop in-memory graphs left by kgrec runs on this host that are no longer alive (a
        ``kill -9`` skips every ``finally``)."""
        from kgrec.kg.neo4j_server import _pid_alive

        host = socket.gethostname()
        dropped = []
        for row in self.run("gds_list", {"prefix": GRAPH_PREFIX}, read_only=True):
            name = row["graphName"]
            m = re.fullmatch(re.escape(GRAPH_PREFIX) + r"(.+)-(\d+)-[0-9a-f]{8}", name)
            if m and m.group(1) == host and not _pid_alive(int(m.group(2))):
                self.run("gds_drop", {"graph_name": name})
                dropped.append(name)
        if dropped:
            log.warning("dropped in-memory GDS graphs left by killed runs: %s", ", ".join(dropped))
        return dropped

    def stream_projection(self, node_properties: dict[str, Sequence[str]],
                          rel_properties: dict[str, Sequence[str]]) -> Projection:
        """Project the typed subgraph with ``gds.graph.project``, stream node properties and
        relationships back (keys joined with ``gds.util.asNode``), and drop the in-memory graph
        whatever happens (a failed step, Ctrl-C, SIGTERM). GDS projects numeric (and numeric
        array) properties only; a label without requested properties streams its keys by Cypher."""
        nodes_in = {schema.check_label(lb): [schema.check_property(p) for p in ps]
                    for lb, ps in node_properties.items()}
        rels_in = {schema.check_rel_type(t): [schema.check_property(p) for p in ps]
                   for t, ps in rel_properties.items()}
        self.gds_version()
        self.drop_stale_projections()
        name = f"{GRAPH_PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        node_spec = {lb: {"label": lb, "properties": ps} for lb, ps in nodes_in.items()}
        rel_spec = {t: {"type": t, "orientation": "NATURAL", "properties": ps} for t, ps in rels_in.items()}
        try:
            try:
                self.run("gds_project", {"graph_name": name, "node_spec": node_spec, "rel_spec": rel_spec})
            except StoreError as e:
                wanted = {lb: ps for lb, ps in nodes_in.items() if ps}
                raise StoreError(f"GDS could not project {sorted(nodes_in)} / {sorted(rels_in)} with the "
                                 f"node properties {wanted} (each must exist and be numeric or a numeric "
                                 f"array): {str(e).splitlines()[0]}") from e
            nodes = {lb: self._stream_gds_nodes(name, lb, ps) for lb, ps in nodes_in.items()}
            rels = {t: self._stream_gds_rels(name, t, ps) for t, ps in rels_in.items()}
            return Projection(nodes, rels)
        finally:
            try:
                self.run("gds_drop", {"graph_name": name})
            except StoreError as e:  # never hide the original error; a later run cleans up
                log.warning("could not drop the in-memory graph %s: %s", name, e)

    def _stream_gds_nodes(self, graph_name: str, label: str, props: list[str]) -> NodeArrays:
        if not props:
            return self.stream_nodes(label)
        rows = self.run("gds_node_properties", {"graph_name": graph_name, "props": props, "label": label},
                        read_only=True, key=schema.key_of(label))
        values: dict[str, dict[str, Any]] = {}
        for r in rows:
            v = r["value"]
            values.setdefault(r["id"], {})[r["prop"]] = None if isinstance(v, float) and math.isnan(v) else v
        ids = sorted(values)
        return NodeArrays(label, ids, {p: [values[k].get(p) for k in ids] for p in props})

    def _stream_gds_rels(self, graph_name: str, rel_type: str, props: list[str]) -> RelArrays:
        src_label, dst_label = schema.REL_ENDPOINTS[rel_type]
        keys = {"src_key": schema.key_of(src_label), "dst_key": schema.key_of(dst_label)}
        params = {"graph_name": graph_name, "rel_type": rel_type, "props": props}
        if not props:
            rows = self.run("gds_relationships", params, read_only=True, **keys)
            return RelArrays(rel_type, [r["src"] for r in rows], [r["dst"] for r in rows], {})
        # one row per (relationship, property): pivot on the endpoint pair (kgrec MERGEs one
        # relationship of a type per pair, so the pair identifies it)
        pivot: dict[tuple[str, str], dict[str, Any]] = {}
        for r in self.run("gds_relationship_properties", params, read_only=True, **keys):
            pivot.setdefault((r["src"], r["dst"]), {})[r["prop"]] = r["value"]
        pairs = list(pivot)
        return RelArrays(rel_type, [s for s, _ in pairs], [d for _, d in pairs],
                         {p: [pivot[pair].get(p) for pair in pairs] for p in props})

    def close(self) -> None:
        self._driver.close()
