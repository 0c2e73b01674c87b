"""Pictures and tables of personas for analysts (``kgrec personas plot`` / ``show``): the 2-D
persona map as a PNG (matplotlib) or as a self-contained interactive HTML page (:mod:`.map_html`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kgrec.errors import ConfigError, ModelError
from kgrec.kg.store import GraphStore, batched

TOP_ITEMS = 3
METHOD_NAMES = {"tsne": "t-SNE", "pca": "PCA"}


def persona_table(store: GraphStore) -> list[dict[str, Any]]:
    """One row per persona group (the ``browser/persona_overview`` query)."""
    return store.run("browser/persona_overview", read_only=True)


@dataclass
class PersonaMap:
    """Users placed in 2-D: ``xy[n]`` is ``users[n]``, a member of persona group ``groups[n]``."""

    users: list[str]
    groups: list[str]
    xy: np.ndarray
    method: str
    n_total: int  # users with a persona group before sampling

    def order(self) -> list[str]:
        """The groups shown, biggest first (ties in id order)."""
        return sorted(set(self.groups), key=lambda g: (-self.groups.count(g), len(g), g))


def _users_with_groups(store: GraphStore) -> tuple[np.ndarray, list[str], list[str]]:
    users = store.stream_nodes("User", ["persona"])
    vecs = {u: v for u, v in zip(users.ids, users.properties["persona"]) if v is not None}
    if not vecs:
        raise ModelError("no personas in the graph; run `kgrec train personas` first")
    groups = store.stream_relationships("HAS_PERSONA", src_ids=list(vecs))
    group_of = dict(zip(groups.src, groups.dst))
    ids = [u for u in vecs if u in group_of]
    if not ids:
        raise ModelError("no persona groups in the graph; run `kgrec train personas` first")
    return np.asarray([vecs[u] for u in ids], dtype=np.float32), ids, [group_of[u] for u in ids]


def project_2d(vectors: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    if method == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=2, random_state=seed).fit_transform(vectors)
    if method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = float(min(30, max(2, (len(vectors) - 1) // 3)))
        return TSNE(n_components=2, metric="cosine", init="pca", perplexity=perplexity,
                    random_state=seed).fit_transform(vectors)
    raise ConfigError(f"unknown projection {method!r}: use tsne or pca")


def persona_map(store: GraphStore, *, method: str = "tsne", sample: int = 3000, seed: int = 0) -> PersonaMap:
    """At most ``sample`` users with a persona group (a seeded random sample), projected to 2-D."""
    vectors, users, groups = _users_with_groups(store)
    n_total = len(users)
    if n_total > sample:
        keep = np.sort(np.random.default_rng(seed).choice(n_total, size=sample, replace=False))
        vectors, users, groups = vectors[keep], [users[i] for i in keep], [groups[i] for i in keep]
    return PersonaMap(users, groups, project_2d(vectors, method, seed), method, n_total)


def group_colours(order: list[str]) -> dict[str, str]:
    """The same colours on the PNG and the HTML map: tab10, or tab20 beyond 10 groups."""
    import matplotlib
    from matplotlib.colors import to_hex

    cmap = matplotlib.colormaps["tab20" if len(order) > 10 else "tab10"]
    return {g: to_hex(cmap(k % cmap.N)) for k, g in enumerate(order)}


def draw_png(pm: PersonaMap, labels: dict[str, str], out: Path) -> Path:
    """A PNG of the map, coloured by persona group, each group labelled at its centre with its
    readable label and size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = pm.order()
    colour = group_colours(order)
    fig, ax = plt.subplots(figsize=(11, 8), dpi=110)
    g_arr, xy = np.asarray(pm.groups), pm.xy
    for g in order:
        m = g_arr == g
        ax.scatter(xy[m, 0], xy[m, 1], s=9, alpha=0.6, color=colour[g],
                   label=f"{g}: {labels.get(g, '')} ({int(m.sum())})")
        cx, cy = np.median(xy[m, 0]), np.median(xy[m, 1])
        ax.annotate(labels.get(g, g), (cx, cy), fontsize=8, weight="bold", ha="center",
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.75, "lw": 0})
    ax.set_title(f"Persona map ({METHOD_NAMES.get(pm.method, pm.method)} of {len(pm.users)} user personas, "
                 "coloured by persona group)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def top_items(store: GraphStore, users: list[str], k: int = TOP_ITEMS) -> dict[str, list[str]]:
    """Each user's ``k`` highest-rated training items (``INTERACTED``), the most popular first
    among equal ratings (all equal when the data has no ratings), as titles (the item id when
    an item has none)."""
    rel = store.stream_relationships("INTERACTED", ["rating"], src_ids=users)
    about: dict[str, tuple[str, int]] = {}
    for batch in batched(sorted(set(rel.dst)), store.settings.batch_size):
        for r in store.run("item_popularity", {"ids": batch}, read_only=True):
            about[r["item"]] = (r["title"] or r["item"], int(r["users"]))
    ranked: dict[str, list[tuple[float, int, str]]] = {u: [] for u in users}
    for u, i, rating in zip(rel.src, rel.dst, rel.properties["rating"], strict=True):
        ranked[u].append((-(rating or 0.0), -about.get(i, ("", 0))[1], i))
    return {u: [about.get(i, (i, 0))[0] for *_, i in sorted(rows)[:k]] for u, rows in ranked.items()}


def write_html(store: GraphStore, pm: PersonaMap, out: Path) -> Path:
    """The interactive map (:func:`kgrec.personas.map_html.render`): one point per user with its
    user id, group label and top items on hover, a legend that hides and shows groups."""
    from .map_html import place_labels, render, to_view

    table = {r["persona"]: r for r in persona_table(store)}
    order = pm.order()
    colour, index = group_colours(order), {g: k for k, g in enumerate(order)}
    tops = top_items(store, pm.users)
    titles: dict[str, int] = {}
    view = to_view(pm.xy)
    points = [[x, y, index[g], u, [titles.setdefault(t, len(titles)) for t in tops[u]]]
              for (x, y), g, u in zip(view.tolist(), pm.groups, pm.users, strict=True)]
    g_arr = np.asarray(pm.groups)
    groups = [{"id": g, "label": table.get(g, {}).get("label") or g, "size": table.get(g, {}).get("size"),
               "shown": int((g_arr == g).sum()), "colour": colour[g],
               "cx": round(float(np.median(view[g_arr == g, 0])), 1),
               "cy": round(float(np.median(view[g_arr == g, 1])), 1)} for g in order]
    place_labels(groups)
    shown = f"{len(pm.users)} of {pm.n_total}" if len(pm.users) < pm.n_total else f"all {pm.n_total}"
    page = render({
        "title": "Persona map", "groups": groups, "points": points, "titles": list(titles),
        "note": f"{METHOD_NAMES.get(pm.method, pm.method)} of the HDGI personas of {shown} users, "
                "coloured by persona group. Hover a point for its user, group and top items (the user's "
                f"{TOP_ITEMS} highest-rated training items, the most popular first among equal ratings); "
                "click a group in the legend to hide or show it."})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
