"""The interactive persona map page (``kgrec personas plot --html``) on synthetic data: it is
self-contained, escapes what it shows, and renders in headless Chromium with working hover and
legend (the page built from a real graph: ``test_workflow.py``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from kgrec.personas.map_html import HEIGHT, PAD, WIDTH, json_block, place_labels, render, to_view

HOSTILE = '</script><img src=x onerror="document.body.dataset.pwned=1">'


def _page(tmp_path: Path) -> tuple[Path, dict]:
    """3 groups of 4, 3 and 2 users; a hostile title and user id (they must stay text)."""
    rng = np.random.default_rng(0)
    sizes = [4, 3, 2]
    xy = to_view(np.concatenate([rng.normal(loc=3 * k, size=(n, 2)) for k, n in enumerate(sizes)]))
    groups = [{"id": f"p{k}", "label": ["Noir & crime", "Westerns", HOSTILE][k], "size": n + 1, "shown": n,
               "colour": ["#1f77b4", "#ff7f0e", "#2ca02c"][k],
               "cx": float(xy[sum(sizes[:k]), 0]), "cy": float(xy[sum(sizes[:k]), 1])}
              for k, n in enumerate(sizes)]
    place_labels(groups)
    users = ["u1", "u2", "<b>u3</b>", "u4", "u5", "u6", "u7", "u8", "u9"]
    titles = ["Heat (1995)", HOSTILE, "Vertigo"]
    gi = [k for k, n in enumerate(sizes) for _ in range(n)]
    points = [[x, y, g, u, [n % 3, (n + 1) % 3] if n != 8 else []]
              for n, ((x, y), g, u) in enumerate(zip(xy.tolist(), gi, users, strict=True))]
    data = {"title": "Persona map <test>", "note": "a note", "groups": groups, "points": points,
            "titles": titles}
    out = tmp_path / "map.html"
    out.write_text(render(data), encoding="utf-8")
    return out, data


def test_page_is_self_contained_and_escaped(tmp_path: Path) -> None:
    out, data = _page(tmp_path)
    page = out.read_text(encoding="utf-8")
    # nothing to fetch when viewed: no external scripts, styles, fonts or images
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=|@import|url\(", page.split('id="persona-data"')[0])
    assert set(re.findall(r"https?://[^\s\"']+", page)) == {"http://www.w3.org/2000/svg"}  # a namespace
    assert page.count("<script") == 2 and HOSTILE not in page and "<b>u3</b>" not in page
    assert "<title>Persona map &lt;test&gt;</title>" in page
    block = re.search(r'<script type="application/json" id="persona-data">(.*?)</script>', page, re.DOTALL)
    assert block and json.loads(block.group(1)) == data
    assert not set("<>&") & set(json_block({"t": "</script> & <!--"}))


def test_view_box_and_labels_stay_inside_and_apart() -> None:
    xy = to_view(np.array([[0.0, 0.0], [10.0, 5.0], [5.0, 5.0]]))
    assert xy[:, 0].min() == PAD and xy[:, 0].max() == WIDTH - PAD
    assert xy[0, 1] == HEIGHT - PAD and xy[1, 1] == PAD  # y points up
    assert to_view(np.zeros((3, 2))).tolist() == [[PAD, HEIGHT - PAD]] * 3  # one spot: no division by 0
    groups = [{"label": "A long label of a group", "cx": 500.0, "cy": 300.0} for _ in range(4)]
    groups.append({"label": "edge", "cx": WIDTH, "cy": 0.0})
    place_labels(groups)
    spots = [(g["lx"], g["ly"]) for g in groups]
    assert len(set(spots)) == len(spots)
    assert all(PAD < x < WIDTH - PAD and PAD <= y <= HEIGHT - PAD for x, y in spots)


CENTRE = "(() => {{ const r = document.querySelector({!r}).getBoundingClientRect(); " \
         "return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
VISIBLE = "[...document.querySelectorAll('circle.pt')].filter(c => getComputedStyle(c).display !== 'none')" \
          ".map(c => c.dataset.user)"


def test_map_renders_hovers_and_filters_in_chromium(tmp_path: Path, chromium) -> None:
    out, data = _page(tmp_path)
    chromium.open(out.as_uri(), ready="document.body && document.body.dataset.ready === '1'")
    assert chromium.js("document.querySelectorAll('#points circle.pt').length") == 9
    assert chromium.js("[...document.querySelectorAll('#legend li')].map(li => li.dataset.group)") == \
        ["p0", "p1", "p2"]
    assert chromium.js("document.querySelectorAll('#labels text').length") == 3
    # hostile text is shown as text: no element was injected and nothing ran
    assert chromium.js("document.querySelectorAll('img').length") == 0
    assert chromium.js("document.body.dataset.pwned") is None
    assert chromium.js("document.querySelector('#legend li[data-group=p2] .lab').textContent") == \
        "p2 \u00b7 " + HOSTILE
    # hover: a real pointer move over the third user's point opens its tooltip
    chromium.mouse("mouseMoved", *chromium.js(CENTRE.format('circle[data-n="2"]')))
    tip = chromium.js("[getComputedStyle(document.getElementById('tip')).display, "
                      "document.getElementById('tip').innerText]")
    assert tip[0] == "block"
    assert tip[1].splitlines() == ["user <b>u3</b>", "p0 \u00b7 Noir & crime", "top items",
                                   "Vertigo", "Heat (1995)"]
    chromium.mouse("mouseMoved", 2, 2)
    assert chromium.js("getComputedStyle(document.getElementById('tip')).display") == "none"
    # legend: a click hides the group's points and label, a second click shows them again
    everyone = [p[3] for p in data["points"]]
    chromium.click(*chromium.js(CENTRE.format("#legend li[data-group=p0]")))
    assert chromium.js(VISIBLE) == everyone[4:]
    assert chromium.js("document.querySelector('#labels text[data-group=p0]').getBBox().width") == 0
    chromium.click(*chromium.js(CENTRE.format("#legend li[data-group=p0]")))
    assert chromium.js(VISIBLE) == everyone
    chromium.click(*chromium.js(CENTRE.format("#hide-all")))
    assert chromium.js(VISIBLE) == []
    chromium.click(*chromium.js(CENTRE.format("#show-all")))
    assert chromium.js(VISIBLE) == everyone


def test_map_link_to_one_user_opens_its_tooltip(tmp_path: Path, chromium) -> None:
    out, _ = _page(tmp_path)
    chromium.open(out.as_uri() + "#user=u9", ready="document.body && document.body.dataset.ready === '1'")
    assert chromium.js("document.querySelector('circle.hot').dataset.user") == "u9"
    assert chromium.js("document.getElementById('tip').innerText").splitlines()[:3] == \
        ["user u9", f"p2 \u00b7 {HOSTILE}", "no training items"]
