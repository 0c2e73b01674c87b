"""``neo4j-admin database import full`` for the local server of a home: stop it, import, start it again.

The importer writes the store files directly (no transactions), so it needs the server down; the
database is replaced (``--overwrite-destination``). The server comes back on the same ports, with
the same heap and page cache, whatever happened to the import, so the Bolt URI and the 0600
password file stay valid. The import itself needs no password (``system`` is not touched).
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kgrec.errors import StoreError
from kgrec.kg import neo4j_server
from kgrec.kg.neo4j_server import ADMIN, LocalNeo4j

#: ``advance(n=1, info=None)`` of a progress stage (kgrec.progress.Advance)
Advance = Callable[..., None]
#: importer phases: "(2/4) Relationship import 2026-12-04 21:27:39.753+0000"
_PHASE = re.compile(r"^\((\d+)/(\d+)\) (.+?) \d{4}-\d\d-\d\d")
_PERCENT = re.compile(r"\s(\d{1,3})% ∆")
_IMPORTED = re.compile(r"^\s+(\d+) (nodes|relationships|properties)\s*$")
#: "IMPORT DONE in 4s 909ms." : the importer's own time, its JVM start and setup excluded
_DONE = re.compile(r"^IMPORT DONE in (.+?)\.?\s*$")
_DURATION = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
#: stage units: stopping the server, the importer's four phases, starting the server
STEPS = 6


@dataclass
class ImportRun:
    """What one import did: seconds per step (stop, neo4j-admin, start), the importer's counts."""

    seconds: dict[str, float] = field(default_factory=dict)
    imported: dict[str, int] = field(default_factory=dict)
    log: Path | None = None
    server: LocalNeo4j | None = None


def launch_sizes(server: LocalNeo4j) -> tuple[str, str]:
    """The heap and page cache ``server`` was started with (read from its command line and
    conf when its server.json predates them)."""
    heap, pagecache = server.heap, server.pagecache
    if heap is None:
        try:
            argv = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            argv = []
        heap = next((a.decode()[4:] for a in argv if a.startswith(b"-Xmx")), "1g")
    if pagecache is None:
        conf = (server.home / "conf" / "neo4j.conf").read_text()
        m = re.search(r"^server\.memory\.pagecache\.size=(\S+)$", conf, re.MULTILINE)
        pagecache = m.group(1) if m else "512m"
    return heap, pagecache


def import_full(server: LocalNeo4j, workdir: Path, arguments: Sequence[str], *, database: str = "neo4j",
                advance: Advance | None = None) -> ImportRun:
    """Stop ``server``, run the importer in ``workdir`` (``arguments`` name its files relative to
    it) into ``database``, and start the server again on the same ports, heap and page cache.
    ``advance`` moves one of :data:`STEPS` units per step, with the importer's phase as info."""
    advance = advance or (lambda n=1, info=None: None)
    home = server.home
    heap, pagecache = launch_sizes(server)
    run = ImportRun(log=home / "logs" / "import.log")
    t = time.perf_counter()
    advance(0, "stopping Neo4j")
    neo4j_server.stop(home)
    run.seconds["stop"] = time.perf_counter() - t
    advance(1, "neo4j-admin database import full")
    try:
        t = time.perf_counter()
        run.imported = _run_importer(home, workdir, arguments, database, heap, run.log, advance)
        run.seconds["neo4j-admin"] = time.perf_counter() - t
        if "phases_ms" in run.imported:  # the four phases alone, as the importer reports them
            run.seconds["phases"] = run.imported.pop("phases_ms") / 1000
    finally:
        t = time.perf_counter()
        advance(0, "starting Neo4j")
        run.server = neo4j_server.start(home, bolt_port=server.bolt_port, http_port=server.http_port,
                                        heap=heap, pagecache=pagecache)
        run.seconds["start"] = time.perf_counter() - t
        advance(1, "Neo4j is up")
    return run


def duration_s(text: str) -> float:
    """``"1m 4s 909ms"`` → 64.909 (the importer's way of printing a duration)."""
    return sum(float(n) * _DURATION[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)\b", text))


def _importer_command(home: Path, arguments: Sequence[str], database: str, heap: str) -> list[str]:
    java = neo4j_server.java_binary()
    # On a few cores the optimising JIT's threads compete with the importer's workers: C1 alone made
    # amazon-book-kgat's import 6.0 s instead of 7.6 s on 2 cores (and the JVM start 0.9 s, not 1.5 s).
    jit = ["-XX:TieredStopAtLevel=1"] if (os.cpu_count() or 1) <= 4 else []
    # the database comes first: after a variadic --nodes/--relationships it would read as one more file
    return [java, f"-Xmx{heap}", "-XX:+UseG1GC", *jit, "-Dfile.encoding=UTF-8",
            "-cp", neo4j_server.classpath(plugins=False), ADMIN, "database", "import", "full", database,
            "--overwrite-destination=true", f"--report-file={home / 'logs' / 'import.report'}", *arguments]


def _run_importer(home: Path, workdir: Path, arguments: Sequence[str], database: str, heap: str,
                  log_path: Path, advance: Advance) -> dict[str, int]:
    """Run the importer, its output appended to ``log_path`` and its phases reported; the counts
    it prints at the end. A failure raises :class:`StoreError` with the output's last lines."""
    env = {**os.environ, "NEO4J_HOME": str(home), "NEO4J_CONF": str(home / "conf")}
    cmd = _importer_command(home, arguments, database, heap)
    imported: dict[str, int] = {}
    tail: list[str] = []
    phase = ""
    with open(log_path, "a", encoding="utf-8") as log, subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            text=True, encoding="utf-8", errors="replace") as proc:
        assert proc.stdout is not None
        log.write(f"--- neo4j-admin database import full {database} ({time.strftime('%Y-%m-%dT%H:%M:%S')})\n")
        for line in proc.stdout:
            log.write(line)
            tail = (tail + [line.rstrip()])[-20:]
            if m := _PHASE.match(line):
                phase = f"({m.group(1)}/{m.group(2)}) {m.group(3)}"
                advance(0, phase)
            elif m := _PERCENT.search(line):
                advance(0, f"{phase} {m.group(1)}%")
            elif " COMPLETED in " in line:
                advance(1, phase)
            elif m := _IMPORTED.match(line):
                imported[m.group(2)] = int(m.group(1))
            elif m := _DONE.match(line):
                imported["phases_ms"] = round(1000 * duration_s(m.group(1)))
        code = proc.wait()
    if code != 0:
        shown = "\n".join(t for t in tail if t.strip() and not t.startswith("....."))
        raise StoreError(f"neo4j-admin database import failed (exit {code}; log {log_path}, report "
                         f"{home / 'logs' / 'import.report'}):\n{shown}")
    return imported
