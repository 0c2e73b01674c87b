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
import os
import re
import socket
import uuid
from collections.abc import Iterable, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from kgrec.errors import ConfigError, StoreError, StoreUnavailable
from kgrec.kg import schema
from kgrec.kg.neo4j_gds import GdsProjections
from kgrec.kg.store import GraphStore, Projection
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
    samples = True

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
        self._auth = (settings.neo4j_user, password)
        self._gds: GdsProjections | None = None

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
        relationships back through the ``graphdatascience`` client (Arrow where the server has
        it, else Cypher: :mod:`kgrec.kg.neo4j_gds`), and drop the in-memory graph whatever
        happens (a failed step, Ctrl-C, SIGTERM). GDS projects numeric (and numeric array)
        properties only."""
        nodes_in, rels_in = self._checked_spec(node_properties, rel_properties)
        with self.gds.projected(self.projection_name(), nodes_in, rels_in) as graph:
            return self.gds.stream(graph, nodes_in, rels_in)

    def sampled_projections(self, node_properties: dict[str, Sequence[str]],
                            rel_properties: dict[str, Sequence[str]], batches: Iterable[Sequence[str]], *,
                            seed_label: str = "User", nodes_per_seed: int = 20, restart_probability: float = 0.8,
                            seed: int = 0) -> Iterator[Projection]:
        """Project the typed subgraph once (undirected), then per batch of seed keys a
        ``gds.graph.sample.rwr`` subgraph of about ``len(batch) * nodes_per_seed`` nodes, streamed
        and dropped before the next: the client holds one sample at a time, whatever the graph's
        size. The projection is dropped when the iteration ends or is abandoned."""
        nodes_in, rels_in = self._checked_spec(node_properties, rel_properties)
        with self.gds.projected(self.projection_name(), nodes_in, rels_in, orientation="UNDIRECTED") as graph:
            total = max(int(graph.node_count()), 1)
            for b, keys in enumerate(batches):
                ratio = len(keys) * nodes_per_seed / total
                with self.gds.sampled(graph, f"{graph.name()}-s{b}", keys, seed_label, sampling_ratio=ratio,
                                      restart_probability=restart_probability, seed=seed + b) as sample:
                    yield self.gds.stream_sample(sample, nodes_in, rels_in)

    @staticmethod
    def _checked_spec(node_properties: dict[str, Sequence[str]], rel_properties: dict[str, Sequence[str]],
                      ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        nodes_in = {schema.check_label(lb): [schema.check_property(p) for p in ps]
                    for lb, ps in node_properties.items()}
        rels_in = {schema.check_rel_type(t): [schema.check_property(p) for p in ps]
                   for t, ps in rel_properties.items()}
        return nodes_in, rels_in

    def projection_name(self) -> str:
        """A fresh in-memory graph name (``kgrec-proj-<host>-<pid>-<random>``), after checking
        the GDS version and dropping what killed runs of this host left."""
        self.gds_version()
        self.drop_stale_projections()
        return f"{GRAPH_PREFIX}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"

    @property
    def gds(self) -> GdsProjections:
        """The graphdatascience client on this store's driver (made on first use)."""
        if self._gds is None:
            self._gds = GdsProjections(self, self._auth, self.settings.gds_arrow)
        return self._gds

    @property
    def driver(self) -> Any:
        return self._driver

    @property
    def database(self) -> str | None:
        return self._database

    def close(self) -> None:
        if self._gds is not None:
            self._gds.close()
        self._driver.close()
