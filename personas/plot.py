"""Pictures and tables of personas for analysts (``kgrec personas plot`` / ``show``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kgrec.errors import ConfigError, ModelError
from kgrec.kg.store import GraphStore


def persona_table(store: GraphStore) -> list[dict[str, Any]]:
    """One row per persona group (the ``browser/persona_overview`` query)."""
    return store.run("browser/persona_overview", read_only=True)


def _users_with_groups(store: GraphStore) -> tuple[np.ndarray, list[str], dict[str, str]]:
    users = store.stream_nodes("User", ["persona"])
    vecs = {u: v for u, v in zip(users.ids, users.properties["persona"]) if v is not None}
    if not vecs:
        raise ModelError("no personas in the graph; run `kgrec train personas` first")
    groups = store.stream_relationships("HAS_PERSONA", src_ids=list(vecs))
    labels = {r["persona"]: r["label"] for r in persona_table(store)}
    group_of = dict(zip(groups.src, groups.dst))
    ids = [u for u in vecs if u in group_of]
    if not ids:
        raise ModelError("no persona groups in the graph; run `kgrec train personas` first")
    return np.asarray([vecs[u] for u in ids], dtype=np.float32), [group_of[u] for u in ids], labels


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


def plot_personas(store: GraphStore, out: Path, *, method: str = "tsne", sample: int = 3000,
                  seed: int = 0) -> Path:
    """A PNG map of persona vectors in 2-D, coloured by persona group, each group labelled at
    its centre with its readable label and size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    vectors, groups, labels = _users_with_groups(store)
    rng = np.random.default_rng(seed)
    if len(vectors) > sample:
        keep = np.sort(rng.choice(len(vectors), size=sample, replace=False))
        vectors, groups = vectors[keep], [groups[i] for i in keep]
    xy = project_2d(vectors, method, seed)
    order = sorted(set(groups), key=lambda g: -groups.count(g))
    cmap = plt.get_cmap("tab20" if len(order) > 10 else "tab10")
    fig, ax = plt.subplots(figsize=(11, 8), dpi=110)
    g_arr = np.asarray(groups)
    for k, g in enumerate(order):
        m = g_arr == g
        ax.scatter(xy[m, 0], xy[m, 1], s=9, alpha=0.6, color=cmap(k % cmap.N),
                   label=f"{g}: {labels.get(g, '')} ({int(m.sum())})")
        cx, cy = np.median(xy[m, 0]), np.median(xy[m, 1])
        ax.annotate(labels.get(g, g), (cx, cy), fontsize=8, weight="bold", ha="center",
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.75, "lw": 0})
    ax.set_title(f"Persona map ({method.upper()} of {len(vectors)} user personas, coloured by persona group)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out
