"""The Browser guide server (kg/neo4j_server/guide.py): the rendered guide inlines the shipped
queries, only the two guide files are served, on loopback, with CORS for Browser's origin only."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kgrec.kg.neo4j_server import guide


def test_rendered_guide_inlines_every_query_and_the_style(tmp_path: Path) -> None:
    text = guide.render_guide(7480)
    assert "<!-- query" not in text and "{{" not in text
    assert ":style http://localhost:7480/kgrec.grass" in text and text.count("<slide") == 5
    assert "db.index.vector.queryNodes" in text and "&lt;-[:HAS_PERSONA]-" in text  # escaped Cypher


def test_server_serves_the_two_files_with_cors_for_the_browser_only(tmp_path: Path) -> None:
    folder = guide.write_files(tmp_path / "guide", 0)
    server = guide.make_server(folder, 0, guide.browser_origins(7474))
    port = server.server_address[1]
    assert server.server_address[0] == "127.0.0.1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/kgrec.grass", headers={"Origin": "http://localhost:7474"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:7474"
            assert "node.Persona" in r.read().decode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/kgrec.html", headers={"Origin": "http://evil.example"})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.headers.get("Access-Control-Allow-Origin") is None
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/../password", timeout=10)
        assert e.value.code == 404
    finally:
        server.shutdown()
        server.server_close()
