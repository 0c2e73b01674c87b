"""Load test of `kgrec serve` from a second process on loopback (open loop: vegeta; closed loop: wrk, httpx).

    .venv/bin/python benchmarks/serve_load.py --home HOME --driver vegeta --rates 100,300,500 \\
        --mixes known,mixed --server-cpus 0 --load-cpus 1 --seconds 20 --png curve.png

``--driver vegeta`` (``benchmarks/openloop.py``) sends at fixed arrival rates and counts latency from
each request's intended send time (no coordinated omission); it prints p50/p99/p99.9 against rate,
the highest rate with p99 under ``--p99-target``, errors and server RSS. The closed-loop drivers:

    .venv/bin/python benchmarks/serve_load.py --home /tmp/ml-home --clients 10,50,200 --seconds 60

Starts `kgrec serve` on a free loopback port over ``--home`` (or uses ``--url``), samples user ids
(with a persona) and item ids from the home's graph, then for each concurrency level runs that many
clients for ``--seconds``: each sends its next request as soon as the last one is answered, half
`GET /recommend?user=…` for known users and half `POST /recommend` with an anonymous session of
3–5 random items (the inductive persona path), k=10. Prints throughput, latency percentiles, the
error count, and the server's RSS over the run (sampled every second from /proc).

``--driver wrk`` (default when Debian's ``wrk`` is on PATH) generates the load from C with a Lua
script; ``--driver httpx`` from Python asyncio, whose client costs more CPU than the server at 50+
connections on 2 cores, so it measures itself as much as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def rss_mib(pid: int) -> float:
    """RSS of ``pid`` and its children (uvicorn workers), MiB."""
    total = 0
    pids = [pid]
    try:
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


@contextmanager
def rss_samples(pid: int | None) -> Iterator[list[float]]:
    """A list that gets :func:`rss_mib` of ``pid`` once a second while the block runs (empty without a pid)."""
    rss: list[float] = []
    done = threading.Event()

    def watch() -> None:
        while pid and not done.wait(1.0):
            rss.append(rss_mib(pid))

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        yield rss
    finally:
        done.set()
        t.join()


def sample_ids(home: Path, n_users: int, seed: int) -> tuple[list[str], list[str]]:
    from kgrec.kg.store import open_store
    from kgrec.settings import Settings

    with open_store(Settings(home=home)) as store:
        users = [r["id"] for r in store.execute(
            "MATCH (u:User) WHERE u.persona IS NOT NULL RETURN u.id AS id", read_only=True)]
        items = [r["id"] for r in store.execute(
            "MATCH (i:Item) WHERE i.emb IS NOT NULL RETURN i.id AS id", read_only=True)]
    rng = random.Random(seed)
    return rng.sample(users, min(n_users, len(users))), items


async def run_level(url: str, clients: int, seconds: float, users: list[str], items: list[str],
                    seed: int, server_pid: int | None) -> dict:
    import httpx

    lat: list[float] = []
    errors: dict[str, int] = {}
    kinds = {"known": 0, "anonymous": 0}
    rss: list[float] = []
    stop_at = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        async def one(cid: int) -> None:
            rng = random.Random(seed * 1000 + cid)
            while time.perf_counter() < stop_at:
                known = rng.random() < 0.5
                t0 = time.perf_counter()
                try:
                    if known:
                        r = await client.get("/recommend", params={"user": rng.choice(users), "k": 10})
                    else:
                        session = rng.sample(items, rng.randint(3, 5))
                        r = await client.post("/recommend", json={"session": session, "k": 10})
                    ok = r.status_code == 200
                    key = None if ok else f"HTTP {r.status_code}"
                except httpx.HTTPError as e:
                    ok, key = False, type(e).__name__
                if ok:
                    lat.append(time.perf_counter() - t0)
                    kinds["known" if known else "anonymous"] += 1
                else:
                    errors[key] = errors.get(key, 0) + 1

        async def watch() -> None:
            while time.perf_counter() < stop_at:
                if server_pid:
                    rss.append(rss_mib(server_pid))
                await asyncio.sleep(1.0)

        t0 = time.perf_counter()
        await asyncio.gather(watch(), *(one(c) for c in range(clients)))
        wall = time.perf_counter() - t0
    ms = np.asarray(lat) * 1000 if lat else np.zeros(1)
    return {"clients": clients, "seconds": round(wall, 1), "ok": len(lat), "rps": len(lat) / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()),
            "errors": sum(errors.values()), "error_kinds": errors, **kinds,
            "rss_mib": [round(x) for x in rss]}


LUA = """
local users = {%(users)s}
local items = {%(items)s}
math.randomseed(%(seed)d)
local json = {["Content-Type"] = "application/json"}
request = function()
  if math.random() < 0.5 then
    return wrk.format("GET", "/recommend?k=10&user=" .. users[math.random(#users)])
  end
  local s = {}
  for i = 1, math.random(3, 5) do s[i] = '"' .. items[math.random(#items)] .. '"' end
  return wrk.format("POST", "/recommend", json, '{"k":10,"session":[' .. table.concat(s, ",") .. ']}')
end
done = function(summary, latency, requests)
  io.write(string.format('RESULT {"requests":%%d,"duration_us":%%d,"p50":%%d,"p95":%%d,"p99":%%d,' ..
    '"max":%%d,"connect":%%d,"read":%%d,"write":%%d,"status":%%d,"timeout":%%d}\\n', summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(95), latency:percentile(99),
    latency.max, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout))
end
"""


def run_wrk(url: str, clients: int, seconds: float, users: list[str], items: list[str], seed: int,
            server_pid: int | None, workdir: Path) -> dict:
    import re

    safe = re.compile(r"^[A-Za-z0-9_.~-]+$")  # no URL or JSON escaping needed
    users = [u for u in users if safe.match(u)]
    items = [i for i in items if safe.match(i)]
    script = workdir / "serve_load.lua"
    script.write_text(LUA % {"users": ",".join(f'"{u}"' for u in users),
                             "items": ",".join(f'"{i}"' for i in items), "seed": seed})
    with rss_samples(server_pid) as rss:
        out = subprocess.run(["wrk", "-t", "2", "-c", str(clients), "-d", f"{int(seconds)}s", "--timeout", "30s",
                              "-s", str(script), url], capture_output=True, text=True, check=False)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"wrk failed ({out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(line[len("RESULT "):])
    errors = {k: r[k] for k in ("connect", "read", "write", "status", "timeout") if r[k]}
    wall = r["duration_us"] / 1e6
    ok = r["requests"] - r["status"]
    return {"clients": clients, "seconds": round(wall, 1), "ok": ok, "rps": ok / wall,
            "p50_ms": r["p50"] / 1000, "p95_ms": r["p95"] / 1000, "p99_ms": r["p99"] / 1000,
            "max_ms": r["max"] / 1000, "errors": sum(errors.values()), "error_kinds": errors,
            "rss_mib": [round(x) for x in rss]}


def start_server(home: Path, port: int, workers: int, log: Path, cpus: str | None = None) -> subprocess.Popen:
    env = os.environ | {"KGREC_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    kgrec = Path(sys.executable).with_name("kgrec")
    pin = ["taskset", "-c", cpus] if cpus else []
    with log.open("w") as fh:
        return subprocess.Popen([*pin, str(kgrec), "serve", "--port", str(port), "--workers", str(workers)],
                                env=env, stdout=fh, stderr=subprocess.STDOUT)


def drain(url: str, timeout_s: float = 120) -> None:
    """Wait until the server answers ``/health`` in under 50 ms again (its queue is empty)."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        try:
            httpx.get(url + "/health", timeout=timeout_s)
        except httpx.HTTPError:
            pass
        if time.perf_counter() - t0 < 0.05:
            return
        time.sleep(0.5)


def run_open_loop(a, url: str, users: list[str], items: list[str], pid: int | None) -> None:
    """``--driver vegeta``: every mix at every rate, open loop; a table, the best rates and a PNG."""
    from openloop import attack, best_rate, plot  # same folder: sys.path[0]

    rows = []
    for mix in a.mixes.split(","):
        for rate in (int(x) for x in a.rates.split(",")):
            with rss_samples(pid) as rss:
                r = attack(url, mix, rate, a.seconds, users, items, a.seed, a.home, a.load_cpus)
            r["rss_mib"] = [round(x) for x in rss]
            rows.append(r)
            drain(url)  # a saturated level leaves a backlog: let it clear before the next one
            print(f"{mix:6s} {rate:5d}/s: ok {r['ok']} errors {r['errors']} {r['error_codes'] or ''} "
                  f"p50 {r['p50_ms']:.1f} p99 {r['p99_ms']:.1f} p99.9 {r['p999_ms']:.1f} max {r['max_ms']:.0f} ms, "
                  f"sender late p99 {r['sender_late_p99_ms']:.2f} ms, RSS MiB {max(r['rss_mib'] or [0])}",
                  flush=True)
    print(f"\nhome {a.home}, open loop (vegeta, latency from the intended send time), {a.seconds:.0f} s per "
          f"level, server on CPU {a.server_cpus or 'any'}, load generator on CPU {a.load_cpus or 'any'}, "
          f"workers {a.workers}, k=10, load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    print("| mix | rate | achieved req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | server RSS MiB (max) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mix']} | {r['rate']} | {r['achieved_rps']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} "
              f"| {r['p999_ms']:.1f} | {r['max_ms']:.0f} | {r['errors']} | {max(r['rss_mib'] or [0])} |")
    for mix in a.mixes.split(","):
        for target in (float(x) for x in a.p99_target.split(",")):
            ok = best_rate([r for r in rows if r["mix"] == mix], target)
            print(f"{mix}: highest rate with p99 < {target:g} ms and no errors: {ok if ok else 'none'} req/s")
    if a.png:
        plot(rows, a.png, f"kgrec serve, {a.home.name}, open loop, {a.workers} worker")
        print(f"chart: {a.png}")
    if a.json:
        a.json.write_text(json.dumps({"home": str(a.home), "driver": "vegeta", "workers": a.workers,
                                      "seconds": a.seconds, "rows": rows}, indent=2))


def wait_up(url: str, proc: subprocess.Popen | None, timeout_s: float = 300) -> dict:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"kgrec serve exited with {proc.returncode}")
        try:
            r = httpx.get(url + "/health", timeout=5)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"kgrec serve did not answer at {url} within {timeout_s}s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--url", help="an already running server (default: start one)")
    ap.add_argument("--clients", default="10,50,200")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds of load before the first level, not counted")
    ap.add_argument("--users", type=int, default=2000, help="known users sampled for the mix")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--driver", choices=["wrk", "httpx", "vegeta"], default=None,
                    help="default: wrk when installed; vegeta is open loop at --rates (the closed loops use --clients)")
    ap.add_argument("--rates", default="100,200,300,500", help="vegeta: arrival rates, req/s")
    ap.add_argument("--mixes", default="known,mixed", help="vegeta: known (all GET for known users) and/or mixed")
    ap.add_argument("--server-cpus", default=None, help="taskset CPU list for the server (e.g. 0)")
    ap.add_argument("--load-cpus", default=None, help="vegeta: taskset CPU list for the load generator (e.g. 1)")
    ap.add_argument("--p99-target", default="10,30",
                    help="vegeta: report the highest rate under each of these p99s (ms, comma-separated)")
    ap.add_argument("--png", type=Path, default=None, help="vegeta: write the latency-rate curve here")
    a = ap.parse_args()
    import shutil

    driver = a.driver or ("wrk" if shutil.which("wrk") else "httpx")

    from kgrec.kg.falkordb_server import free_port

    users, items = sample_ids(a.home, a.users, a.seed)
    proc = None
    url = a.url
    if url is None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_server(a.home, port, a.workers, a.home / "serve_load.log", a.server_cpus)
    try:
        t0 = time.perf_counter()
        health = wait_up(url, proc)
        print(f"server up in {time.perf_counter() - t0:.1f}s: {health['versions']['users']} users, "
              f"{health['versions']['items']} items, snapshot loaded in {health['versions']['load_seconds']}s")
        pid = proc.pid if proc else None
        rss0 = rss_mib(pid) if pid else None
        if driver == "vegeta":
            if a.warmup > 0:
                asyncio.run(run_level(url, 4, a.warmup, users, items, a.seed + 1, None))
            run_open_loop(a, url, users, items, pid)
            return
        levels = [int(x) for x in a.clients.split(",")]
        if a.warmup > 0:
            asyncio.run(run_level(url, levels[0], a.warmup, users, items, a.seed + 1, None))
        rows = []
        for c in levels:
            if driver == "wrk":
                row = run_wrk(url, c, a.seconds, users, items, a.seed, pid, a.home)
            else:
                row = asyncio.run(run_level(url, c, a.seconds, users, items, a.seed, pid))
            rows.append(row)
            print(f"clients {c:4d}: {row['rps']:7.1f} req/s  p50 {row['p50_ms']:7.1f} ms  "
                  f"p95 {row['p95_ms']:7.1f} ms  p99 {row['p99_ms']:7.1f} ms  errors {row['errors']} "
                  f"{row['error_kinds'] or ''}  RSS MiB {row['rss_mib'][:1]}..{row['rss_mib'][-1:]}", flush=True)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
    print(f"\nhome {a.home}, {len(items)} items, driver {driver}, workers {a.workers}, {a.seconds:.0f} s per level, "
          f"{a.warmup:.0f} s warm-up not counted, mix 50% known user GET / 50% anonymous 3-5 item session POST, "
          f"k=10, server RSS at start "
          f"{rss0:.0f} MiB" if rss0 else "")
    print("| clients | req/s | p50 ms | p95 ms | p99 ms | max ms | errors | RSS MiB start→end (max) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        rs = r["rss_mib"] or [0]
        print(f"| {r['clients']} | {r['rps']:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | {r['p99_ms']:.1f} "
              f"| {r['max_ms']:.0f} | {r['errors']} | {rs[0]}→{rs[-1]} ({max(rs)}) |")
    if a.json:
        a.json.write_text(json.dumps({"home": str(a.home), "driver": driver, "workers": a.workers,
                                      "seconds": a.seconds, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
