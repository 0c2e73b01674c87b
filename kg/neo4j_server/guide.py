"""The kgrec guided tour for Neo4j Browser, and the loopback server Browser fetches it from.

Browser 5 opens a remote guide with ``:guide URL`` and applies a style with ``:style URL``, but
only from allow-listed hosts (Browser's default allowlist holds ``localhost``) and only over CORS. So ``kgrec neo4j start`` starts this small server
beside Neo4j, on 127.0.0.1, serving exactly two files from ``$KGREC_HOME/neo4j/guide/``:

- ``kgrec.html``: the guide, rendered from ``cypher/browser/guide.html`` with the queries of
  ``cypher/browser/`` and ``cypher/explain/`` inlined, so the tour always runs the shipped queries;
- ``kgrec.grass``: the style (``cypher/browser/kgrec.grass``), also applied on connect through
  ``browser.post_connect_cmd``.

Run by hand: ``python -m kgrec.kg.neo4j_server.guide --dir DIR --port PORT --origin URL``.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import signal
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path

GUIDE = "kgrec.html"
STYLE = "kgrec.grass"
FILES = {GUIDE: "text/html; charset=utf-8", STYLE: "text/plain; charset=utf-8"}
STATE_FILE = "guide.json"
_QUERY = re.compile(r"<!-- query: ([a-z_]+/[a-z_]+) -->")


def guide_url(port: int) -> str:
    return f"http://localhost:{port}/{GUIDE}"


def style_url(port: int) -> str:
    return f"http://localhost:{port}/{STYLE}"


def query_text(name: str) -> str:
    """A shipped query without its comment lines (the slide says what it shows)."""
    text = resources.files("kgrec.cypher").joinpath(f"{name}.cypher").read_text(encoding="utf-8")
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("//")).strip()


def render_guide(port: int) -> str:
    """The guide's HTML: ``<!-- query: browser/NAME -->`` becomes that query, escaped, in a
    runnable block; ``{{style_url}}`` the style's address on this server."""
    template = resources.files("kgrec.cypher").joinpath("browser/guide.html").read_text(encoding="utf-8")
    body = _QUERY.sub(lambda m: html.escape(query_text(m.group(1)), quote=False), template)
    return body.replace("{{style_url}}", style_url(port))


def write_files(folder: Path, port: int) -> Path:
    """Render the guide and copy the style into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / GUIDE).write_text(render_guide(port), encoding="utf-8")
    grass = resources.files("kgrec.cypher").joinpath(f"browser/{STYLE}").read_text(encoding="utf-8")
    (folder / STYLE).write_text(grass, encoding="utf-8")
    return folder


class _Handler(BaseHTTPRequestHandler):
    """GET of the two guide files in ``folder`` only, with CORS for the Browser's own origins."""

    folder = Path()
    origins: frozenset[str] = frozenset()

    def _cors(self) -> None:
        origin = self.headers.get("Origin")
        if origin in self.origins:
            self.send_header("Access-Control-Allow-Origin", origin)
            # whatever request headers the preflight names (Browser's fetch adds no-cache ones)
            asked = self.headers.get("Access-Control-Request-Headers")
            if asked:
                self.send_header("Access-Control-Allow-Headers", asked)
            self.send_header("Vary", "Origin")

    def do_GET(self) -> None:
        name = self.path.split("?", 1)[0].lstrip("/")
        if name not in FILES:
            self.send_error(404, "kgrec guide: only kgrec.html and kgrec.grass are served")
            return
        data = (self.folder / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", FILES[name])
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        self._cors()
        self.end_headers()
        self.wfile.write(data)

    def do_OPTIONS(self) -> None:
        """The CORS preflight."""
        self.send_response(204)
        self._cors()
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"kgrec guide: {format % args}\n")


def browser_origins(http_port: int) -> frozenset[str]:
    return frozenset({f"http://127.0.0.1:{http_port}", f"http://localhost:{http_port}"})


def make_server(folder: Path, port: int, origins: frozenset[str]) -> ThreadingHTTPServer:
    """The server, bound to 127.0.0.1 only (``port`` 0: any free port)."""
    handler = type("GuideHandler", (_Handler,), {"folder": folder, "origins": origins})
    return ThreadingHTTPServer(("127.0.0.1", port), handler)


def start(neo4j_home: Path, port: int, http_port: int) -> int:
    """Write the files and start the server detached (it outlives this process, like Neo4j);
    returns its pid, recorded in ``guide.json`` for :func:`stop`."""
    folder = write_files(neo4j_home / "guide", port)
    log = open(neo4j_home / "logs" / "guide.log", "ab")  # noqa: SIM115 (handed to the child)
    with log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "kgrec.kg.neo4j_server.guide", "--dir", str(folder), "--port", str(port),
             "--browser-port", str(http_port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    (neo4j_home / STATE_FILE).write_text(json.dumps({"pid": proc.pid, "port": port}))
    return proc.pid


def stop(neo4j_home: Path) -> None:
    """Stop the guide server of ``neo4j_home`` if one was started."""
    path = neo4j_home / STATE_FILE
    try:
        pid = int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    path.unlink(missing_ok=True)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Serve the kgrec Neo4j Browser guide and style on 127.0.0.1.")
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--browser-port", type=int, required=True, help="the Browser's HTTP port (CORS origin)")
    args = ap.parse_args(argv)
    server = make_server(args.dir, args.port, browser_origins(args.browser_port))
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
