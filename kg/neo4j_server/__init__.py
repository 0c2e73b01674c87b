"""A local Neo4j 5.26 LTS + GDS + APOC + Browser, assembled from Maven Central and run by kgrec.

``make neo4j`` resolves the jars that ``pom.xml`` (beside this file) pins into ``lib/`` (the
server's classpath) and ``plugins/`` (procedures). :func:`start` runs them under
``$KGREC_HOME/neo4j``: loopback only, a generated password kept in a 0600 file and set with
``neo4j-admin dbms set-initial-password`` (through an ``@argfile``, so never in argv), a modest
heap and page cache (the machine may be shared), and readiness polled over Bolt. The server
outlives the command that started it (like a daemon) until :func:`stop`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import string
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kgrec.errors import ConfigError, StoreUnavailable
from kgrec.kg.neo4j_server import guide

DIST = Path(os.environ.get("KGREC_NEO4J_DIST", Path(__file__).resolve().parent))
STATE_FILE = "server.json"
PASSWORD_FILE = "password"
USER = "neo4j"
HOW_TO_ASSEMBLE = "run `make neo4j` (Maven + Java 17 resolve Neo4j, GDS, APOC and the Browser into kg/neo4j_server/)"
# Neo4j 5.26 runs on Java 17 and 21 (2025.x needs 21).
JAVA_MAJORS = (17, 21)
JAVA_OPENS = ["java.base/java.nio", "java.base/java.io", "java.base/sun.nio.ch",
              "java.base/java.util.concurrent", "java.base/java.lang", "java.base/java.util",
              "java.base/java.lang.invoke", "java.base/java.net"]
MAIN = "org.neo4j.server.CommunityEntryPoint"
ADMIN = "org.neo4j.cli.AdminTool"
#: the guide server's port when free (kg/neo4j_server/guide.py)
GUIDE_PORT = 7480


@dataclass
class LocalNeo4j:
    """A handle on the local server of one home."""

    home: Path
    bolt_port: int
    http_port: int
    pid: int
    #: the loopback server of the Browser guide and style (kg/neo4j_server/guide.py)
    guide_port: int | None = None
    #: the JVM heap and page cache it was started with (None: a server.json from before they were kept)
    heap: str | None = None
    pagecache: str | None = None

    @property
    def bolt_uri(self) -> str:
        return f"neo4j://127.0.0.1:{self.bolt_port}"

    @property
    def browser_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/browser/"

    @property
    def password(self) -> str:
        return (self.home / PASSWORD_FILE).read_text().strip()

    @property
    def guide_command(self) -> str | None:
        """What to type into Browser's editor to open the kgrec tour."""
        return f":guide {guide.guide_url(self.guide_port)}" if self.guide_port else None

    def alive(self) -> bool:
        return _pid_alive(self.pid) and _port_open(self.bolt_port)


def _pid_alive(pid: int) -> bool:
    """The process runs (a zombie does not: a server whose parent is still alive, e.g. a benchmark
    that started it, stays one after exiting until that parent reaps it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _port_open(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def java_binary() -> str:
    """The ``java`` of ``$JAVA_HOME`` (else PATH), checked to be a version Neo4j 5.26 runs on."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not Path(java).is_file():
        raise StoreUnavailable("Java 17 is not installed (no java on PATH or in JAVA_HOME): "
                               "install OpenJDK 17 (apt-get install openjdk-17-jdk-headless) for the local Neo4j")
    out = subprocess.run([java, "-version"], check=False, capture_output=True, text=True, timeout=30).stderr
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    major = int(m.group(1)) if m else 0
    major = int(m.group(2)) if major == 1 and m and m.group(2) else major  # "1.8" style
    if major not in JAVA_MAJORS:
        raise StoreUnavailable(f"{java} is Java {major or '?'}; Neo4j 5.26 needs Java 17 or 21: "
                               "install OpenJDK 17 and point JAVA_HOME at it")
    return java


def assembled(dist: Path = DIST) -> bool:
    return (dist / "lib").is_dir() and any((dist / "lib").glob("neo4j-5.*.jar")) \
        and (dist / "plugins").is_dir() and any((dist / "plugins").glob("proc-*.jar"))


def classpath(dist: Path = DIST, *, plugins: bool = True) -> str:
    """lib/ first, then GDS, APOC last (its third-party jars are resolved once, in lib/);
    ``plugins=False``: lib/ only (neo4j-admin needs no procedures)."""
    if not assembled(dist):
        raise StoreUnavailable(f"the local Neo4j is not assembled in {dist}: {HOW_TO_ASSEMBLE}")
    extra = sorted((dist / "plugins").glob("*.jar"), key=lambda p: (p.name.startswith("apoc-"), p.name)) \
        if plugins else []
    return os.pathsep.join([str(p) for p in sorted((dist / "lib").glob("*.jar"))] + [str(p) for p in extra])


def versions(dist: Path = DIST) -> dict[str, str]:
    """The pinned versions, read from the jar names that ``make neo4j`` resolved."""
    out = {}
    for name, pattern in {"neo4j": "lib/neo4j-5*.jar", "gds": "plugins/proc-2*.jar",
                          "apoc": "plugins/apoc-core-*.jar", "browser": "lib/neo4j-browser-*.jar"}.items():
        found = sorted(dist.glob(pattern))
        if found:
            out[name] = found[0].stem.rsplit("-", 1)[1]
    return out


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def _password(home: Path) -> str:
    path = home / PASSWORD_FILE
    if path.is_file():
        return path.read_text().strip()
    # letters and digits only: a leading "-" (token_urlsafe can start with one) makes neo4j-admin
    # read the password as an option and fail
    pw = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(32))
    _write_private(path, pw)
    return pw


def _write_conf(home: Path, dist: Path, bolt_port: int, http_port: int, pagecache: str,
                guide_port: int) -> Path:
    conf = home / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    for d in ("data", "logs", "run", "import"):
        (home / d).mkdir(exist_ok=True)
    lines = {
        "server.default_listen_address": "127.0.0.1",
        "server.default_advertised_address": "127.0.0.1",
        "server.bolt.listen_address": f"127.0.0.1:{bolt_port}",
        "server.http.listen_address": f"127.0.0.1:{http_port}",
        "server.https.enabled": "false",
        "server.directories.data": str(home / "data"),
        "server.directories.logs": str(home / "logs"),
        "server.directories.run": str(home / "run"),
        "server.directories.import": str(home / "import"),
        "server.directories.plugins": str(dist / "plugins"),
        "server.memory.pagecache.size": pagecache,
        "dbms.memory.transaction.total.max": "1g",
        "dbms.security.procedures.unrestricted": "gds.*,apoc.*",
        "dbms.security.procedures.allowlist": "gds.*,apoc.*",
        "dbms.usage_report.enabled": "false",
        # no "help us improve" usage-data banner in Browser
        "client.allow_telemetry": "false",
        # Browser fetches the kgrec guide and style from the loopback guide server (localhost is
        # on Browser's default remote-content allowlist; Neo4j 5.26 has no server setting for
        # it), and styles every session with it on connect
        "browser.post_connect_cmd": f"style {guide.style_url(guide_port)}",
        # 2 cores: GDS's OpenGDS caps concurrency at 4 anyway; Bolt needs few threads here
        "server.bolt.thread_pool_max_size": "64",
        # the databases are checkpointed and stopped before Bolt shuts down; its two 5 s grace
        # waits for connections a loopback server has no use for made every stop 10 s longer
        "internal.server.bolt.thread_pool_shutdown_wait_time": "0s",
        "internal.server.bolt.connection_shutdown_wait_time": "0s",
    }
    path = conf / "neo4j.conf"
    _write_private(path, "".join(f"{k}={v}\n" for k, v in lines.items()))
    return conf


def find_running(home: Path) -> LocalNeo4j | None:
    home = home.resolve()
    path = home / STATE_FILE
    if not path.is_file():
        return None
    try:
        s = json.loads(path.read_text())
        server = LocalNeo4j(home, int(s["bolt_port"]), int(s["http_port"]), int(s["pid"]),
                            s.get("guide_port"), s.get("heap"), s.get("pagecache"))
    except (ValueError, KeyError, OSError):
        return None
    return server if server.alive() else None


def _set_initial_password(java: str, cp: str, home: Path, conf: Path, password: str) -> None:
    """``neo4j-admin dbms set-initial-password`` before the first start, its argument passed in
    a 0600 ``@argfile`` (picocli expands it) so that the password never shows in argv."""
    argfile = home / "run" / "set-password.args"
    _write_private(argfile, f"dbms\nset-initial-password\n{password}\n")
    env = {**os.environ, "NEO4J_HOME": str(home), "NEO4J_CONF": str(conf)}
    try:
        r = subprocess.run([java, "-Xmx256m", "-cp", cp, ADMIN, f"@{argfile}"], env=env,
                           check=False, capture_output=True, text=True, timeout=120)
    finally:
        argfile.unlink(missing_ok=True)
    if r.returncode != 0:
        raise StoreUnavailable(f"neo4j-admin set-initial-password failed in {home}: "
                               f"{(r.stderr or r.stdout).strip().splitlines()[-1:]}")


def _wait_bolt(proc: subprocess.Popen[bytes], uri: str, password: str, log_path: Path,
               timeout_s: float) -> None:
    import neo4j
    from neo4j.exceptions import AuthError, ServiceUnavailable

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-15:]
            raise StoreUnavailable(f"the local Neo4j exited at start (log {log_path}):\n" + "\n".join(tail))
        try:
            with neo4j.GraphDatabase.driver(uri.replace("neo4j://", "bolt://", 1), auth=(USER, password),
                                            connection_timeout=2) as d:
                d.verify_connectivity()
                d.execute_query("RETURN 1")
                return
        except (ServiceUnavailable, OSError):
            time.sleep(0.5)
        except AuthError as e:
            raise StoreUnavailable(f"the local Neo4j in {log_path.parent.parent} rejects the password in its "
                                   f"0600 file ({e.message}); delete its data dir to start afresh") from e
    raise StoreUnavailable(f"the local Neo4j did not answer over Bolt within {timeout_s:.0f}s (log {log_path})")


def start(home: Path, *, bolt_port: int | None = None, http_port: int | None = None,
          heap: str = "1g", pagecache: str = "512m", dist: Path = DIST,
          timeout_s: float = 180.0) -> LocalNeo4j:
    """Reuse the server running for ``home`` (``$KGREC_HOME/neo4j``), or start one.

    Ports default to 7687 (Bolt) and 7474 (HTTP, the Browser) when free, else free ports."""
    home = home.resolve()
    running = find_running(home)
    if running is not None:
        return running
    if not re.fullmatch(r"\d+[kmg]", heap) or not re.fullmatch(r"\d+[kmg]", pagecache):
        raise ConfigError(f"heap/page cache sizes look like 1g or 512m, got {heap!r} / {pagecache!r}")
    java = java_binary()
    cp = classpath(dist)
    home.mkdir(parents=True, exist_ok=True)
    bolt_port = bolt_port or (7687 if not _port_open(7687) else free_port())
    http_port = http_port or (7474 if not _port_open(7474) else free_port())
    for port in (bolt_port, http_port):
        if _port_open(port):
            raise StoreUnavailable(f"port {port} on 127.0.0.1 is taken: pick another (--bolt-port/--http-port)")
    guide_port = GUIDE_PORT if not _port_open(GUIDE_PORT) else free_port()
    conf = _write_conf(home, dist, bolt_port, http_port, pagecache, guide_port)
    password = _password(home)
    if not (home / "data" / "databases").exists():
        _set_initial_password(java, cp, home, conf, password)
    log_path = home / "logs" / "console.log"
    cmd = [java, f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError",
           "-Dfile.encoding=UTF-8", *[f"--add-opens={m}=ALL-UNNAMED" for m in JAVA_OPENS],
           "-cp", cp, MAIN, f"--home-dir={home}", f"--config-dir={conf}", "--console-mode"]
    env = {**os.environ, "NEO4J_HOME": str(home), "NEO4J_CONF": str(conf)}
    with open(log_path, "ab") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
    server = LocalNeo4j(home, bolt_port, http_port, proc.pid, guide_port, heap, pagecache)
    try:
        _wait_bolt(proc, server.bolt_uri, password, log_path, timeout_s)
    except BaseException:
        proc.kill()
        proc.wait(timeout=60)
        raise
    guide.start(home, guide_port, http_port)
    _write_private(home / STATE_FILE, json.dumps(
        {"bolt_port": bolt_port, "http_port": http_port, "pid": proc.pid, "guide_port": guide_port,
         "heap": heap, "pagecache": pagecache}))
    return server


def stop(home: Path, *, timeout_s: float = 90.0) -> bool:
    """Stop the server of ``home`` (SIGTERM: a clean checkpoint; SIGKILL after ``timeout_s``).
    False when none was running."""
    home = home.resolve()
    path = home / STATE_FILE
    guide.stop(home)
    server = find_running(home)
    if server is None:
        path.unlink(missing_ok=True)
        return False
    os.kill(server.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _pid_alive(server.pid) and time.monotonic() < deadline:
        try:  # reap it if it is our child (tests start and stop in one process)
            if os.waitpid(server.pid, os.WNOHANG)[0]:
                break
        except ChildProcessError:
            pass
        time.sleep(0.2)
    if _pid_alive(server.pid):
        os.kill(server.pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return True


def describe(server: LocalNeo4j) -> dict[str, Any]:
    """Versions as the running server reports them (Neo4j, GDS, APOC), the Bolt URI, the Browser."""
    import neo4j

    info: dict[str, Any] = {"bolt_uri": server.bolt_uri, "browser_url": server.browser_url,
                            "guide": server.guide_command,
                            "home": str(server.home), "pid": server.pid,
                            "password_file": str(server.home / PASSWORD_FILE)}
    with neo4j.GraphDatabase.driver(server.bolt_uri, auth=(USER, server.password)) as d:
        rec = d.execute_query("CALL dbms.components() YIELD name, versions, edition "
                              "RETURN versions[0] AS v, edition")[0][0]
        info["neo4j"] = f"{rec['v']} ({rec['edition']})"
        for name, q in {"gds": "RETURN gds.version() AS v", "apoc": "RETURN apoc.version() AS v"}.items():
            try:
                info[name] = d.execute_query(q)[0][0]["v"]
            except neo4j.exceptions.Neo4jError as e:
                info[name] = f"missing ({e.code})"
    return info
