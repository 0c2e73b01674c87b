"""Shared homes: several kgrec processes on one embedded FalkorDB (leases, race-free start, PID
reuse, kill -9 of the owner), and the server's secrets and file modes. Real servers, real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kgrec.kg import falkordb_server as fs
from kgrec.kg.store import open_store
from kgrec.settings import Settings

# A second kgrec process on the same home: opens the store, says "ready <pid> <port>", then closes
# it on a line from stdin (or never, with HOLD=forever).
USER = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from kgrec.kg.store import open_store
    from kgrec.settings import Settings
    s = open_store(Settings(home=Path(sys.argv[1])))
    s.ensure_schema()
    print("ready", s._server.pid, s._server.port, flush=True)
    sys.stdin.readline()
    s.close()
    print("closed", flush=True)
""")

STARTER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from kgrec.kg import falkordb_server as fs
    go = float(sys.argv[2])
    while time.time() < go:
        time.sleep(0.001)
    srv = fs.start(Path(sys.argv[1]))
    print(srv.pid, srv.port, srv.started, flush=True)
    sys.stdin.readline()
    srv.stop()
""")


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _ready(proc: subprocess.Popen[str]) -> list[str]:
    line = proc.stdout.readline()
    assert line, proc.stderr.read()
    return line.split()


def _servers_on(data_dir: Path) -> list[int]:
    """PIDs of redis-servers working in ``data_dir`` (only this test's servers)."""
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                mine = (p / "comm").read_text().strip() == "redis-server" and os.readlink(p / "cwd") == str(data_dir)
            except OSError:
                continue
            if mine and fs._pid_alive(int(p.name)):
                pids.append(int(p.name))
    return pids


def test_borrower_unaffected_when_the_starter_closes(tmp_path: Path) -> None:
    """The issue's repro: A starts the server, B borrows it, A closes; B's queries all succeed."""
    a = _spawn(USER, str(tmp_path))
    _, _, port = _ready(a)
    b = open_store(Settings(home=tmp_path))
    try:
        assert b._server.port == int(port) and not b._server.started
        a.communicate("close\n", timeout=60)
        assert a.returncode == 0
        assert fs._pid_alive(b._server.pid)
        for i in range(200):
            b.upsert_nodes("User", [{"key": f"u{i}", "props": {}}])
        assert b.counts()["nodes"]["User"] == 200
        pid = b._server.pid
    finally:
        b.close()
    assert not fs._pid_alive(pid)  # B held the last lease: it stopped the server
    assert not (tmp_path / "falkordb" / fs.STATE_FILE).exists()


def test_two_concurrent_starts_get_one_server(tmp_path: Path) -> None:
    go = str(time.time() + 1.5)  # both leave their spin-wait at the same instant
    procs = [_spawn(STARTER, str(tmp_path), go) for _ in range(3)]
    try:
        lines = [_ready(p) for p in procs]
        assert len({line[0] for line in lines}) == 1, lines  # one pid
        assert sorted(line[2] for line in lines) == ["False", "False", "True"]  # one started it
        assert _servers_on((tmp_path / "falkordb").resolve()) == [int(lines[0][0])]
    finally:
        for p in procs:
            p.communicate("stop\n", timeout=60)
    assert _servers_on((tmp_path / "falkordb").resolve()) == []


def test_kill_9_of_the_owner_while_a_borrower_writes_loses_nothing(tmp_path: Path) -> None:
    a = _spawn(USER, str(tmp_path))
    _, server_of_a, _ = _ready(a)
    b = open_store(Settings(home=tmp_path))
    server_pid = b._server.pid
    assert server_pid == int(server_of_a)
    n = 0
    try:
        for batch in range(40):
            b.upsert_nodes("Item", [{"key": f"i{n + j}", "props": {"title": "t"}} for j in range(50)])
            n += 50
            if batch == 10:
                os.kill(a.pid, signal.SIGKILL)  # the owner, mid-run
                a.wait(timeout=30)
        assert b.counts()["nodes"]["Item"] == n
    finally:
        b.close()  # the last lease left: final SAVE, server stopped
    assert a.returncode == -signal.SIGKILL
    assert not fs._pid_alive(server_pid)
    again = open_store(Settings(home=tmp_path))  # a second run: a new server loads the snapshot
    try:
        assert again._server.pid != server_pid and again._server.started
        assert again.counts()["nodes"]["Item"] == n == 2000
    finally:
        again.close()


def test_adopting_checks_the_pid_is_still_that_server(tmp_path: Path) -> None:
    first = fs.start(tmp_path)
    real = json.loads((first.data_dir / fs.STATE_FILE).read_text())
    first.stop()
    # PID reuse: server.json names a live process that is not that redis-server (this pytest)
    st = fs._proc_stat(os.getpid())
    (first.data_dir / fs.STATE_FILE).write_text(json.dumps(
        {"port": real["port"], "pid": os.getpid(), "starttime": st[1]}))
    second = fs.start(tmp_path)
    try:
        assert second.started and second.pid != os.getpid()
        # a live redis-server with another start time (its PID reused) is not adopted either
        state = json.loads((second.data_dir / fs.STATE_FILE).read_text())
        assert not fs._is_same_server(state["pid"], state["starttime"] + 1)
        assert fs._is_same_server(state["pid"], state["starttime"])
    finally:
        second.stop()


def test_secrets_and_file_modes(tmp_path: Path) -> None:
    os.umask(0o022)
    store = open_store(Settings(home=tmp_path))
    data = store._server.data_dir
    pw = store._server.password
    try:
        store.upsert_nodes("User", [{"key": "u1", "props": {}}])
        cmdline = Path(f"/proc/{store._server.pid}/cmdline").read_bytes()
        assert pw.encode() not in cmdline  # ps shows no password
        assert pw not in (data / fs.STATE_FILE).read_text()
    finally:
        store.close()
    mode = {p.name: oct(p.stat().st_mode & 0o777) for p in [data, *data.iterdir()]}
    assert mode["falkordb"] == "0o700"
    for name in (fs.RDB_FILE, fs.PASSWORD_FILE, fs.CONFIG_FILE, "server.log"):
        assert mode[name] == "0o600", (name, mode)


def test_password_file_is_created_exclusively(tmp_path: Path) -> None:
    d = fs._prepare_dir(tmp_path)
    pw = fs._read_password(d)
    assert fs._read_password(d) == pw  # a second reader gets the same one, it is not rewritten
    assert oct((d / fs.PASSWORD_FILE).stat().st_mode & 0o777) == "0o600"


def test_db_start_pins_the_server_until_db_stop(tmp_path: Path) -> None:
    st = fs.pin(tmp_path)
    assert st["running"] and st["pinned"] and not st["in_use"]
    with open_store(Settings(home=tmp_path)) as s:
        s.upsert_nodes("User", [{"key": "u1", "props": {}}])
        assert fs.status(tmp_path)["in_use"]
    assert fs.status(tmp_path)["running"]  # the command ended, the pinned server did not
    user = _spawn(USER, str(tmp_path))
    _ready(user)
    st = fs.unpin(tmp_path)
    assert st["running"] and not st["pinned"] and st["in_use"]  # a command still uses it
    user.communicate("close\n", timeout=60)
    assert not fs.status(tmp_path)["running"]  # its last user stopped it
    with open_store(Settings(home=tmp_path)) as s:
        assert s.counts()["nodes"] == {"User": 1}


@pytest.mark.parametrize("handles", [1, 3])
def test_many_handles_in_one_process(tmp_path: Path, handles: int) -> None:
    servers = [fs.start(tmp_path) for _ in range(handles)]
    pid = servers[0].pid
    for s in servers[:-1]:
        assert s.stop() is False and fs._pid_alive(pid)
    assert servers[-1].stop() is True and not fs._pid_alive(pid)
    assert servers[-1].stop() is False  # idempotent
