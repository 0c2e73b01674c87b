"""Open-loop load at fixed arrival rates with vegeta (a Go module), for ``serve_load.py --driver vegeta``.

Install once: ``go install github.com/tsenart/vegeta/v12@v12.13.0`` (lands in ``~/go/bin``).

Each level sends requests at a constant rate for a fixed time, whether or not earlier answers have
come back (vegeta adds workers as needed), so a slow server cannot slow the load down. Latency is
counted from each request's **intended** send time, ``start + seq / rate``: the measured latency
plus however late vegeta actually sent it, so a stall of the load generator is charged to the
figures instead of hidden (no coordinated omission). The generator's own lateness is printed too.
The server and the generator can be pinned to different cores (``taskset``).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

MIXES = ("known", "mixed")


def vegeta_binary() -> str:
    found = shutil.which("vegeta") or (str(Path.home() / "go/bin/vegeta")
                                      if (Path.home() / "go/bin/vegeta").is_file() else None)
    if not found:
        raise SystemExit("vegeta is missing: go install github.com/tsenart/vegeta/v12@v12.13.0")
    return found


def targets(url: str, mix: str, users: Sequence[str], items: Sequence[str], n: int, seed: int) -> str:
    """``n`` vegeta JSON targets: ``known`` is all ``GET /recommend?user=…&k=10``; ``mixed`` is half
    that and half ``POST /recommend`` with an anonymous session of 3–5 random items."""
    if mix not in MIXES:
        raise SystemExit(f"--mix must be among {MIXES}, got {mix!r}")
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        if mix == "known" or rng.random() < 0.5:
            lines.append({"method": "GET", "url": f"{url}/recommend?k=10&user={rng.choice(users)}"})
        else:
            body = json.dumps({"k": 10, "session": rng.sample(list(items), rng.randint(3, 5))}).encode()
            lines.append({"method": "POST", "url": f"{url}/recommend", "body": base64.b64encode(body).decode(),
                          "header": {"Content-Type": ["application/json"]}})
    return "\n".join(json.dumps(t) for t in lines) + "\n"


def attack(url: str, mix: str, rate: int, seconds: float, users: Sequence[str], items: Sequence[str],
           seed: int, workdir: Path, cpus: str | None = None) -> dict:
    """One level: ``rate`` req/s for ``seconds``; percentiles from the intended send times."""
    vegeta = vegeta_binary()
    n = int(rate * seconds)
    tfile = workdir / f"vegeta-{mix}-{rate}.targets"
    tfile.write_text(targets(url, mix, users, items, n, seed))
    out = workdir / f"vegeta-{mix}-{rate}.bin"
    cmd = [vegeta, *(["-cpus=1"] if cpus is not None else []), "attack", f"-rate={rate}/s", f"-duration={seconds}s", "-format=json", f"-targets={tfile}",
           "-timeout=30s", "-max-body=0", f"-output={out}"]
    if cpus is not None:
        cmd = ["taskset", "-c", cpus, *cmd]
    subprocess.run(cmd, check=True, capture_output=True)
    csv_text = subprocess.run([vegeta, "encode", "-to=csv", str(out)], check=True, capture_output=True,
                              text=True).stdout
    row = summarise(csv_text, rate)
    row["mix"] = mix
    return row


def summarise(csv_text: str, rate: int) -> dict:
    """Percentiles of vegeta's CSV results (timestamp ns, code, latency ns, …, seq in column 9),
    with each latency counted from the intended send time ``t0 + seq / rate``."""
    rows = list(csv.reader(io.StringIO(csv_text)))
    if not rows:
        raise SystemExit("vegeta returned no results")
    ts = np.asarray([int(r[0]) for r in rows], dtype=np.int64)
    code = np.asarray([int(r[1]) for r in rows])
    lat = np.asarray([int(r[2]) for r in rows], dtype=np.float64)
    seq = np.asarray([int(r[8]) for r in rows], dtype=np.int64)
    intended = ts[seq == seq.min()][0] + seq * (1e9 / rate)
    late = np.maximum(ts - intended, 0.0)
    ms = (lat + late) / 1e6
    ok = code == 200
    span = (ts.max() + lat[ts.argmax()] - ts.min()) / 1e9
    return {"rate": rate, "sent": len(rows), "ok": int(ok.sum()), "errors": int((~ok).sum()),
            "error_codes": {str(c): int((code == c).sum()) for c in np.unique(code[~ok])},
            "achieved_rps": round(float(ok.sum() / span), 1) if span > 0 else 0.0,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "p999_ms": float(np.percentile(ms, 99.9)), "max_ms": float(ms.max()),
            "sender_late_p99_ms": float(np.percentile(late, 99) / 1e6)}


def best_rate(rows: Sequence[dict], p99_ms: float) -> int | None:
    """The highest rate whose p99 is under ``p99_ms`` with no errors (None: none is)."""
    good = [r["rate"] for r in rows if r["p99_ms"] < p99_ms and r["errors"] == 0]
    return max(good) if good else None


def plot(rows: Sequence[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for mix in dict.fromkeys(r["mix"] for r in rows):
        rs = sorted((r for r in rows if r["mix"] == mix), key=lambda r: r["rate"])
        for key, style in (("p50_ms", ":"), ("p99_ms", "-"), ("p999_ms", "--")):
            ax.plot([r["rate"] for r in rs], [r[key] for r in rs], style, marker="o",
                    label=f"{mix} {key[:-3].replace('p999', 'p99.9')}")
    ax.set_yscale("log")
    ax.set_xlabel("arrival rate (req/s, open loop)")
    ax.set_ylabel("latency from intended send (ms)")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
