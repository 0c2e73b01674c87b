"""A local SPARQL endpoint over DBpedia N-Triples files, served by the ``oxigraph`` CLI.

``serve(files, workdir)`` loads the files into ``workdir/store`` (``oxigraph load``; skipped
when ``workdir/fingerprint`` says the store already holds exactly these files), then runs
``oxigraph serve --location STORE --bind 127.0.0.1:<free port>`` and waits until ``/query``
answers. Use it as a context manager; the server stops on exit::

    with serve(default_data_files(), settings.home / "oxigraph") as server:
        link_items(store, settings, mapping=None, endpoint=server.endpoint)
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Self

from kgrec.errors import ConfigError, DataError, SparqlError
from kgrec.kg.net import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DBPEDIA = REPO_ROOT.parent / "shared" / "data" / "dbpedia"
DEMO_DBPEDIA = REPO_ROOT / "data" / "demo" / "dbpedia"


def data_dir() -> Path | None:
    """``../shared/data/dbpedia`` beside the checkout, else ``data/demo/dbpedia``; None if neither
    holds ``*.nt.gz`` files."""
    for d in (SHARED_DBPEDIA, DEMO_DBPEDIA):
        if d.is_dir() and any(d.glob("*.nt.gz")):
            return d
    return None


def default_data_files() -> list[Path]:
    d = data_dir()
    return sorted(d.glob("*.nt.gz")) if d else []


def default_mapping(name: str = "movielens-to-dbpedia.tsv") -> Path | None:
    for d in (SHARED_DBPEDIA, DEMO_DBPEDIA):
        if (d / name).is_file():
            return d / name
    return None


def oxigraph_binary() -> str:
    candidates = [Path(sys.executable).parent / "oxigraph", shutil.which("oxigraph")]
    for c in candidates:
        if c and Path(c).is_file():
            return str(c)
    raise ConfigError("the `oxigraph` CLI is not installed (pip install oxigraph)")


def fingerprint(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in sorted(Path(x).resolve() for x in files):
        h.update(str(f).encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def load(files: list[Path], workdir: Path) -> Path:
    """Load ``files`` into ``workdir/store`` unless it already holds exactly them. Returns the store."""
    files = [Path(f) for f in files]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise DataError(f"DBpedia data file(s) not found: {', '.join(missing)}")
    if not files:
        raise DataError("no DBpedia data files to load (expected *.nt.gz)")
    workdir = Path(workdir)
    store, fp_file = workdir / "store", workdir / "fingerprint"
    fp = fingerprint(files)
    if store.is_dir() and fp_file.is_file() and fp_file.read_text().strip() == fp:
        return store
    if store.exists():
        shutil.rmtree(store)
    fp_file.unlink(missing_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    cmd = [oxigraph_binary(), "load", "--location", str(store)]
    for f in files:
        cmd += ["--file", str(f)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise DataError(f"oxigraph load failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    fp_file.write_text(fp + "\n" + json.dumps([str(f) for f in files]) + "\n")
    return store


class OxigraphServer:
    """A running ``oxigraph serve``; :attr:`endpoint` is its SPARQL query URL."""

    def __init__(self, store: Path, *, port: int | None = None, startup_timeout_s: float = 15.0,
                 log: Path | None = None) -> None:
        self.store = store
        self.port = port or free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}/query"
        self.cache_scope: str | None = None  # set by serve(): the fingerprint of the data files
        self._log_path = log or store.parent / "oxigraph.log"
        self._log = self._log_path.open("ab")
        self.process = subprocess.Popen(
            [oxigraph_binary(), "serve-read-only", "--location", str(store),
             "--bind", f"127.0.0.1:{self.port}"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        try:
            self._wait_ready(startup_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout_s: float) -> None:
        url = self.endpoint + "?" + urllib.parse.urlencode({"query": "ASK {}"})
        deadline = time.monotonic() + timeout_s
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SparqlError(f"oxigraph serve exited with {self.process.returncode}; "
                                  f"see {self._log_path}")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError) as e:
                last = e
            time.sleep(0.05)
        raise SparqlError(f"oxigraph serve did not answer on {self.endpoint} within {timeout_s}s: {last}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self._log.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(data_files: list[Path] | None = None, workdir: Path | None = None, *,
          port: int | None = None) -> OxigraphServer:
    """Load (if needed) and serve ``data_files`` (default: :func:`default_data_files`) from
    ``workdir``; returns a running :class:`OxigraphServer` (a context manager)."""
    files = list(data_files) if data_files is not None else default_data_files()
    if workdir is None:
        raise ConfigError("serve() needs a workdir for the Oxigraph store")
    store = load(files, Path(workdir))
    server = OxigraphServer(store, port=port)
    # SPARQL cache scope: the data served, not the random port
    server.cache_scope = "oxigraph:" + (Path(workdir) / "fingerprint").read_text().split()[0]
    return server
