"""Screenshots of Neo4j Browser on the demo graph, taken with headless Debian Chromium.

    .venv/bin/python docs/browser_screenshots.py --home HOME [--out docs/] [--user 1]

HOME is a kgrec home whose local Neo4j runs (``kgrec neo4j start``) and holds the demo graph
(``kgrec demo --graph neo4j://…``). Chromium (``apt-get install chromium``) runs with
``--headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run`` and a
fresh ``--user-data-dir``, driven over the DevTools protocol on a pipe (stdlib only): it opens the
Browser, logs in with the home's password (typed into the form, never put in a URL), runs
``cypher/browser/persona_overview.cypher`` and one explanation query, and saves a PNG of each.
The DevTools client is ``tests/chromium.py``, shared with the persona-map render tests.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from importlib import resources
from pathlib import Path

from kgrec.kg import neo4j_server
from kgrec.tests.chromium import Chromium, find_binary


def _run_in_editor(chrome: Chromium, text: str) -> None:
    """Focus the Browser's editor, type ``text`` and run it (Ctrl+Enter)."""
    chrome.wait_for("!!document.querySelector('.monaco-editor textarea')", timeout=60)
    chrome.js("document.querySelector('.monaco-editor textarea').focus()")
    chrome.type_text(text)
    chrome.press_enter(modifiers=2)  # Ctrl+Enter runs the editor


def _shoot(chrome: Chromium, path: Path) -> None:
    chrome.screenshot(path)
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
    binary = find_binary()
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
        chrome = Chromium(binary, Path(profile), window="1500,1000")
        try:
            chrome.send("Page.navigate", {"url": f"{server.browser_url}?dbms=bolt://neo4j@127.0.0.1:{server.bolt_port}"})
            chrome.wait_for("!!document.querySelector('input[type=password]')", timeout=120)
            chrome.js("document.querySelector('input[type=password]').focus()")
            chrome.type_text(server.password)  # typed, as a person would
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
