"""The interactive persona map (``kgrec personas plot --html FILE``) as one self-contained HTML page.

Nothing is fetched when the page is viewed: the styles and the script are inline, fonts are the
system's, and the scatter is an inline SVG that the script draws from a JSON data block. All
text from the graph (user ids, labels, titles) goes through ``json.dumps`` with ``<``, ``>`` and
``&`` escaped as JSON ``\\u`` escapes, and the script puts it into the page with ``textContent``
only, so a title cannot close the block or inject markup.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import numpy as np

WIDTH, HEIGHT, PAD = 1000.0, 700.0, 24.0


def to_view(xy: np.ndarray) -> np.ndarray:
    """Map 2-D coordinates onto the SVG view box (each axis stretched to fill it, y pointing up)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    unit = (xy - lo) / span
    x = PAD + unit[:, 0] * (WIDTH - 2 * PAD)
    y = HEIGHT - PAD - unit[:, 1] * (HEIGHT - 2 * PAD)
    return np.round(np.stack([x, y], axis=1), 1)


def place_labels(groups: list[dict[str, Any]], char: float = 7.4, line: float = 17.0) -> None:
    """Set each group's label position (``lx``, ``ly``) near its centre (``cx``, ``cy``): kept
    inside the view box and moved up or down, a line at a time, off labels placed before it
    (biggest group first), with the text's width estimated from its length."""
    placed: list[tuple[float, float, float]] = []  # centre x, y, half width
    for g in groups:
        half = len(str(g["label"])) * char / 2 + 4
        x = min(max(g["cx"], PAD + half), WIDTH - PAD - half)
        for step in range(60):
            y = g["cy"] + (step + 1) // 2 * line * (1 if step % 2 else -1)
            y = min(max(y, PAD + line), HEIGHT - PAD)
            if all(abs(x - px) >= half + ph or abs(y - py) >= line for px, py, ph in placed):
                break
        placed.append((x, y, half))
        g["lx"], g["ly"] = round(x, 1), round(y, 1)


def json_block(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: no ``<``, ``>`` or ``&`` left."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(data: dict[str, Any]) -> str:
    """The page for ``data``: ``title``, ``note``, ``groups`` (``id``, ``label``, ``size``,
    ``shown``, ``colour``, label position ``lx``, ``ly``), ``titles`` (item titles) and ``points``
    (``[x, y, group index, user id, [title indices]]`` in view-box coordinates)."""
    values = {"TITLE": html.escape(str(data.get("title", "Persona map"))),
              "VIEWBOX": f"0 0 {WIDTH:g} {HEIGHT:g}", "DATA": json_block(data)}
    return re.sub(r"__(TITLE|VIEWBOX|DATA)__", lambda m: values[m.group(1)], PAGE)


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
html, body { margin: 0; height: 100%; }
body { font: 13px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #222; background: #fff; display: flex; flex-direction: column; }
header { padding: 10px 16px 4px; }
h1 { font-size: 18px; margin: 0 0 2px; }
#note { margin: 0; color: #555; max-width: 1100px; }
main { flex: 1; display: flex; gap: 14px; padding: 6px 16px 14px; min-height: 0; }
#map { flex: 1; min-width: 0; height: 100%; border: 1px solid #ddd; border-radius: 4px; background: #fcfcfc; }
aside { width: 290px; overflow: auto; }
aside h2 { font-size: 13px; margin: 4px 0; }
aside .hint { color: #666; margin: 0 0 6px; }
#legend { list-style: none; margin: 0; padding: 0; }
#legend li { display: flex; align-items: baseline; gap: 6px; padding: 3px 4px; border-radius: 3px;
             cursor: pointer; user-select: none; }
#legend li:hover { background: #f0f0f0; }
#legend li.off { opacity: 0.4; text-decoration: line-through; }
#legend .sw { flex: none; width: 11px; height: 11px; border-radius: 50%; transform: translateY(1px); }
#legend .lab { flex: 1; }
#legend .n { color: #666; font-variant-numeric: tabular-nums; }
.buttons { margin-top: 8px; display: flex; gap: 6px; }
.buttons button { font: inherit; padding: 2px 8px; cursor: pointer; }
.pt { stroke: #fff; stroke-width: 0.6; fill-opacity: 0.8; }
.pt:hover, .pt.hot { stroke: #000; stroke-width: 1.6; fill-opacity: 1; }
.pt.hot { r: 7px; }
.off { display: none; }
#legend li.off { display: flex; }
.glabel { font-size: 13px; font-weight: 600; fill: #111; paint-order: stroke; stroke: #fff;
          stroke-width: 4px; stroke-linejoin: round; pointer-events: none; text-anchor: middle; }
#tip { position: fixed; z-index: 2; pointer-events: none; display: none; max-width: 340px;
       background: rgba(255, 255, 255, 0.97); border: 1px solid #bbb; border-radius: 4px;
       padding: 6px 9px; box-shadow: 0 2px 8px rgba(0, 0, 0, 0.18); }
#tip .user { font-weight: 600; }
#tip .group { display: flex; align-items: baseline; gap: 5px; }
#tip .what { color: #666; margin-top: 4px; }
#tip ol { margin: 2px 0 0; padding-left: 18px; }
</style>
</head>
<body>
<header><h1 id="title"></h1><p id="note"></p></header>
<main>
<svg id="map" viewBox="__VIEWBOX__" preserveAspectRatio="xMidYMid meet" role="img"
     aria-label="persona map"><g id="points"></g><g id="labels"></g></svg>
<aside>
<h2>Persona groups</h2>
<p class="hint">Click a group to hide or show it. Numbers: users shown (group size).</p>
<ul id="legend"></ul>
<div class="buttons"><button type="button" id="show-all">Show all</button>
<button type="button" id="hide-all">Hide all</button></div>
</aside>
</main>
<div id="tip" role="tooltip"></div>
<script type="application/json" id="persona-data">__DATA__</script>
<script>
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("persona-data").textContent);
  var NS = "http://www.w3.org/2000/svg";
  var points = document.getElementById("points"), labels = document.getElementById("labels");
  var legend = document.getElementById("legend"), tip = document.getElementById("tip");
  var members = data.groups.map(function () { return []; });
  var groupLabels = [], entries = [];

  function el(ns, name, attrs, text) {
    var node = ns ? document.createElementNS(ns, name) : document.createElement(name);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  document.title = data.title;
  document.getElementById("title").textContent = data.title;
  document.getElementById("note").textContent = data.note;

  data.points.forEach(function (p, n) {
    var g = data.groups[p[2]];
    var c = el(NS, "circle", {"class": "pt", cx: p[0], cy: p[1], r: 4.5, fill: g.colour,
                              "data-n": n, "data-user": p[3], "data-group": g.id});
    members[p[2]].push(c);
    points.appendChild(c);
  });
  data.groups.forEach(function (g, k) {
    var t = el(NS, "text", {"class": "glabel", x: g.lx, y: g.ly, "data-group": g.id}, g.label);
    groupLabels.push(t);
    labels.appendChild(t);
    var li = el(null, "li", {"data-group": g.id, title: g.id + ": " + g.label});
    li.appendChild(el(null, "span", {"class": "sw", style: "background:" + g.colour}));
    li.appendChild(el(null, "span", {"class": "lab"}, g.id + " \\u00b7 " + g.label));
    li.appendChild(el(null, "span", {"class": "n"},
                      g.shown + (g.size !== null && g.size !== g.shown ? " (" + g.size + ")" : "")));
    li.addEventListener("click", function () { setShown(k, li.classList.contains("off")); });
    entries.push(li);
    legend.appendChild(li);
  });

  function setShown(k, on) {
    entries[k].classList.toggle("off", !on);
    groupLabels[k].classList.toggle("off", !on);
    members[k].forEach(function (c) { c.classList.toggle("off", !on); });
    if (!on) { hideTip(); }
  }
  document.getElementById("show-all").addEventListener("click", function () {
    data.groups.forEach(function (g, k) { setShown(k, true); });
  });
  document.getElementById("hide-all").addEventListener("click", function () {
    data.groups.forEach(function (g, k) { setShown(k, false); });
  });

  function showTip(c, x, y) {
    var p = data.points[+c.getAttribute("data-n")], g = data.groups[p[2]];
    tip.textContent = "";
    tip.appendChild(el(null, "div", {"class": "user"}, "user " + p[3]));
    var row = el(null, "div", {"class": "group"});
    row.appendChild(el(null, "span", {"class": "sw", style: "display:inline-block;width:10px;height:10px;" +
                                      "border-radius:50%;background:" + g.colour}));
    row.appendChild(el(null, "span", {}, g.id + " \\u00b7 " + g.label));
    tip.appendChild(row);
    tip.appendChild(el(null, "div", {"class": "what"}, p[4].length ? "top items" : "no training items"));
    var ol = el(null, "ol");
    p[4].forEach(function (t) { ol.appendChild(el(null, "li", {}, data.titles[t])); });
    tip.appendChild(ol);
    tip.style.display = "block";
    var w = tip.offsetWidth, h = tip.offsetHeight;
    tip.style.left = Math.max(4, x + 14 + w > window.innerWidth ? x - 14 - w : x + 14) + "px";
    tip.style.top = Math.max(4, y + 14 + h > window.innerHeight ? y - 14 - h : y + 14) + "px";
  }
  function hideTip() { tip.style.display = "none"; }
  points.addEventListener("mouseover", function (e) {
    if (e.target.classList.contains("pt")) { showTip(e.target, e.clientX, e.clientY); }
  });
  points.addEventListener("mousemove", function (e) {
    if (e.target.classList.contains("pt")) { showTip(e.target, e.clientX, e.clientY); }
  });
  points.addEventListener("mouseout", function (e) {
    if (e.target.classList.contains("pt")) { e.target.classList.remove("hot"); }
    hideTip();
  });

  // map.html#user=ID: that user's point, highlighted with its tooltip open (a link to one user);
  // placed again when the window changes size (the point moves with the map)
  var wanted = /^#user=(.+)$/.exec(window.location.hash), pinned = null;
  function showPinned() {
    if (pinned === null) { return; }
    var box = pinned.getBoundingClientRect();
    showTip(pinned, box.left + box.width / 2, box.top + box.height / 2);
  }
  if (wanted) {
    var id = decodeURIComponent(wanted[1]);
    pinned = Array.prototype.find.call(points.children, function (c) {
      return c.getAttribute("data-user") === id;
    }) || null;
    if (pinned) {
      pinned.classList.add("hot");
      points.appendChild(pinned);
      showPinned();
      window.addEventListener("resize", showPinned);
      window.addEventListener("load", showPinned);
    }
  }
  document.body.setAttribute("data-ready", "1");
})();
</script>
</body>
</html>
"""
