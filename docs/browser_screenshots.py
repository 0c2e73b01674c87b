"""Screenshots of Neo4j Browser on the demo graph, taken with headless Debian Chromium.

    .venv/bin/python docs/browser_screenshots.py --home HOME [--out docs/] [--user 1]

HOME is a kgrec home whose local Neo4j runs (``kgrec neo4j start``) and holds the demo graph
(``kgrec demo --graph neo4j://…``). Chromium (``apt-get install chromium``) runs with
``--headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run`` and a
fresh ``--user-data-dir``, driven over the DevTools protocol on a pipe (stdlib only): it opens the
Browser, logs in with the home's password (typed into the form, never put in a URL), runs
``cypher/browser/persona_overview.cypher`` and one explanation query, and saves a PNG of each.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

from kgrec.kg import neo4j_server

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--window-size=1500,1000", "--remote-debugging-pipe"]


class Chromium:
    """The DevTools protocol over --remote-debugging-pipe (fd 3 in, fd 4 out, NUL-separated JSON)."""

    def __init__(self, binary: str, profile: Path) -> None:
        self._to_r, self._to_w = os.pipe()
        self._from_r, self._from_w = os.pipe()
        os.set_inheritable(self._to_r, True)
        os.set_inheritable(self._from_w, True)
        # the child must see them as fds 3 and 4
        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(3, 4), preexec_fn=self._dup_fds,  # noqa: PLW1509 (simple dup2 only)
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(self._to_r)
        os.close(self._from_w)
        self._buf = b""
        self._id = 0
        self.session: str | None = None

    def _dup_fds(self) -> None:
        os.dup2(self._to_r, 3)
        os.dup2(self._from_w, 4)

    def send(self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 60.0) -> Any:
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while b"\0" not in self._buf:
                chunk = os.read(self._from_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the pipe")
                self._buf += chunk
            raw, self._buf = self._buf.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
        raise TimeoutError(method)

    def js(self, expression: str) -> Any:
        r = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                           "returnByValue": True})
        return r.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 60.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.js(expression)
            if value:
                return value
            time.sleep(0.5)
        raise TimeoutError(f"waiting for {expression}")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _press_enter(chrome: Chromium, modifiers: int = 0) -> None:
    chrome.send("Input.dispatchKeyEvent", {"type": "rawKeyDown", "key": "Enter", "code": "Enter",
                                            "windowsVirtualKeyCode": 13, "modifiers": modifiers})
    chrome.send("Input.dispatchKeyEvent", {"type": "char", "text": "\r", "modifiers": modifiers})
    chrome.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": "Enter", "code": "Enter",
                                            "windowsVirtualKeyCode": 13, "modifiers": modifiers})


def _run_in_editor(chrome: Chromium, text: str) -> None:
    """Focus the Browser's editor, type ``text`` and run it (Ctrl+Enter)."""
    chrome.wait_for("!!document.querySelector('.monaco-editor textarea')")
    chrome.js("document.querySelector('.monaco-editor textarea').focus()")
    chrome.send("Input.insertText", {"text": text})
    _press_enter(chrome, modifiers=2)  # Ctrl+Enter runs the editor


def _shoot(chrome: Chromium, path: Path) -> None:
    data = chrome.send("Page.captureScreenshot", {"format": "png"})["data"]
    path.write_bytes(base64.b64decode(data))
    print(f"saved {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    ap.add_argument("--user", default=None, help="user of the explanation query (default: the demo's)")
    args = ap.parse_args()
    server = neo4j_server.find_running(args.home / "neo4j")
    if server is None:
        raise SystemExit(f"no local Neo4j runs for {args.home}: kgrec neo4j start --home {args.home}")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if not binary:
        raise SystemExit("headless Chromium is missing: apt-get install chromium")
    cypher = resources.files("kgrec.cypher")
    overview = cypher.joinpath("browser/persona_overview.cypher").read_text()
    explain = cypher.joinpath("explain/shared_feature.cypher").read_text()
    import neo4j

    with neo4j.GraphDatabase.driver(server.bolt_uri, auth=("neo4j", server.password),
                                    notifications_min_severity="OFF") as d:
        # a recommended item when there is one, else any unseen item that shares a feature
        row = d.execute_query(
            "MATCH (u:User)-[r:RECOMMENDED]->(i:Item) WHERE $u IS NULL OR u.id = $u "
            "RETURN u.id AS user, i.id AS item ORDER BY r.rank LIMIT 1", u=args.user).records or \
            d.execute_query(
            "MATCH (u:User)-[:INTERACTED]->(:Item)-[:HAS_FEATURE]->(:Feature)<-[:HAS_FEATURE]-(i:Item) "
            "WHERE ($u IS NULL OR u.id = $u) AND NOT (u)-[:INTERACTED]->(i) "
            "RETURN u.id AS user, i.id AS item LIMIT 1", u=args.user).records
    if not row:
        raise SystemExit("the graph has no user/item pair to explain: run `kgrec demo --graph …` first")
    user, item = row[0]["user"], row[0]["item"]

    with tempfile.TemporaryDirectory() as profile:
        chrome = Chromium(binary, Path(profile))
        try:
            target = chrome.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            chrome.session = chrome.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            chrome.send("Page.enable")
            chrome.send("Page.navigate", {"url": f"{server.browser_url}?dbms=bolt://neo4j@127.0.0.1:{server.bolt_port}"})
            chrome.wait_for("!!document.querySelector('input[type=password]')", timeout=120)
            chrome.js("document.querySelector('input[type=password]').focus()")
            chrome.send("Input.insertText", {"text": server.password})  # typed, as a person would
            chrome.js("(() => { const b = [...document.querySelectorAll('button')]"
                      ".find(b => b.textContent.trim() === 'Connect'); if (b) b.click(); return !!b; })()")
            try:
                chrome.wait_for("!document.querySelector('input[type=password]')", timeout=60)
            except TimeoutError:
                _shoot(chrome, args.out / "browser_login_failed.png")
                raise
            _run_in_editor(chrome, overview.strip())
            time.sleep(6)
            _shoot(chrome, args.out / "browser_persona_overview.png")
            _run_in_editor(chrome, f":param user => '{user}'")
            time.sleep(2)
            _run_in_editor(chrome, f":param item => '{item}'")
            time.sleep(2)
            _run_in_editor(chrome, explain.strip())
            time.sleep(6)
            _shoot(chrome, args.out / "browser_explain_shared_feature.png")
        finally:
            chrome.close()


if __name__ == "__main__":
    main()
