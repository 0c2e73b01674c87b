"""Screenshots of Neo4j Browser on the demo graph, taken with headless Debian Chromium.

    .venv/bin/python docs/browser_screenshots.py --home HOME [--out docs/] [--user 1]

HOME is a kgrec home whose local Neo4j runs (``kgrec neo4j start``) and holds the demo graph
(``kgrec demo --graph neo4j://…``). Chromium (``apt-get install chromium``) runs with
``--headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run`` and a
fresh ``--user-data-dir``, driven over the DevTools protocol on a pipe (stdlib only): it opens the
Browser, logs in with the home's password (typed into the form, never put in a URL), runs
the guide's ``:param``s, the persona overview table, the styled graph of one persona
(``browser/persona_graph``), the user's persona neighbourhood (``browser/persona_neighbourhood``) and the
paths behind one explanation (``browser/explain_paths``), both with Browser's "Connect result nodes"
off as the guide sets it, and the
guide's first page (``:guide``), and saves a PNG of each (``browser_<view>.png``). The style is
applied by the server's ``browser.post_connect_cmd`` on connect.
The DevTools client is ``tests/chromium.py``, shared with the persona-map render tests.
"""

from __future__ import annotations

import argparse
import html
import re
import tempfile
import time
from pathlib import Path

from kgrec.kg import neo4j_server
from kgrec.kg.neo4j_server import guide
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


def _guide_params() -> list[str]:
    """The guide's first-slide commands (style and :params), run as an analyst would click them."""
    first = guide.render_guide(0).split("</slide>", 1)[0]
    return [html.unescape(m) for m in re.findall(r'<pre class="runnable">(.*?)</pre>', first, re.DOTALL)
            if m.startswith(":param")]


def _views(server: neo4j_server.LocalNeo4j, user: str, item: str) -> list[tuple[str, list[str], float]]:
    """(file name, commands typed into the editor, seconds to let the frame draw) per picture."""
    views = [("persona_overview", [guide.query_text("browser/persona_overview")], 6),
             ("persona_graph", [*_guide_params(), guide.query_text("browser/persona_graph")], 10),
             ("persona_neighbourhood", [f":param user => '{user}'", ":config autoComplete: false",
                                        guide.query_text("browser/persona_neighbourhood")], 10),
             ("explain_paths", [f":param user => '{user}'", f":param item => '{item}'",
                                guide.query_text("browser/explain_paths")], 10)]
    if server.guide_command:
        views.append(("guide", [server.guide_command], 6))
    return views


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

    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:  # Chromium may still write there
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
            for name, commands, wait in _views(server, user, item):
                for cmd in commands:
                    _run_in_editor(chrome, cmd)
                    time.sleep(2)
                time.sleep(wait)
                _shoot(chrome, args.out / f"browser_{name}.png")
        finally:
            chrome.close()


if __name__ == "__main__":
    main()
