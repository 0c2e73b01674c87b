"""Persona groups: KMeans over persona vectors, labelled by over-represented features and
entities (lift against the whole population). numpy / scipy / scikit-learn only; sklearn
is imported inside the functions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from kgrec.errors import ConfigError


@dataclass
class Clustering:
    assignments: np.ndarray  # int64 [n_users]
    k: int
    centroids: np.ndarray  # [k, d] (in the normalised space when normalize=True)
    silhouette: dict[int, float] = field(default_factory=dict)  # k → score on the sample


def _prepare(vectors: np.ndarray, normalize: bool) -> np.ndarray:
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] == 0:
        raise ConfigError(f"persona vectors must be a non-empty [n, d] matrix, got {list(v.shape)}")
    if not np.isfinite(v).all():
        raise ConfigError("persona vectors contain NaN or infinite values")
    if normalize:
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return v


def cluster_personas(
    vectors: np.ndarray,
    k: int | None = None,
    *,
    k_range: Iterable[int] = range(2, 11),
    sample: int = 5000,
    seed: int = 0,
    normalize: bool = True,
    n_init: int = 4,
) -> Clustering:
    """KMeans with ``k`` clusters, or the ``k`` in ``k_range`` with the best silhouette on a
    sample of ``sample`` users (then refitted on everyone). ``normalize`` → cosine geometry."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    v = _prepare(vectors, normalize)
    n = v.shape[0]
    scores: dict[int, float] = {}
    if k is None:
        rng = np.random.default_rng(seed)
        idx = rng.choice(n, size=min(sample, n), replace=False) if n > sample else np.arange(n)
        vs = v[idx]
        candidates = sorted({int(c) for c in k_range if 2 <= int(c) < len(vs)})
        if not candidates:
            raise ConfigError(f"no k in k_range fits {len(vs)} sampled users (need 2 ≤ k < n)")
        for c in candidates:
            labels = KMeans(n_clusters=c, n_init=n_init, random_state=seed).fit_predict(vs)
            scores[c] = float(silhouette_score(vs, labels)) if len(set(labels.tolist())) > 1 else -1.0
        k = max(candidates, key=lambda c: (scores[c], -c))
    if not 1 <= k <= n:
        raise ConfigError(f"k must be in 1..{n}, got {k}")
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(v)
    return Clustering(
        assignments=km.labels_.astype(np.int64),
        k=int(k),
        centroids=km.cluster_centers_.astype(np.float32),
        silhouette=scores,
    )


@dataclass
class Term:
    name: str  # as given ("genre:thriller", entity label)
    display: str  # readable ("thriller")
    lift: float  # group share / population share
    support: int  # users in the group that have it
    share: float  # fraction of the group's users that have it
    z: float = 0.0  # how far the group's share is above the population's, in standard errors


@dataclass
class GroupLabel:
    group: int
    size: int
    label: str
    top_features: list[Term]
    top_entities: list[Term]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _display_feature(name: str) -> str:
    return name.split(":", 1)[1] if ":" in name else name


def _display_entity(name: str) -> str:
    if "://" in name:
        name = name.rstrip("/").rsplit("/", 1)[-1]
    return name.replace("_", " ")


def _group_terms(
    assignments: np.ndarray,
    k: int,
    ui,
    lists: Sequence[Sequence[str]],
    n_items: int,
    top_n: int,
    min_support: int,
    min_share: float,
    display,
) -> list[list[Term]]:
    import scipy.sparse as sp

    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, names in enumerate(lists):
        for t in set(names):
            rows.append(i)
            cols.append(vocab.setdefault(t, len(vocab)))
    names = list(vocab)
    if not names:
        return [[] for _ in range(k)]
    it = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_items, len(names)))
    present = (ui @ it) > 0  # user × term
    n = len(assignments)
    g = sp.csr_matrix((np.ones(n), (assignments, np.arange(n))), shape=(k, n))
    counts = np.asarray((g @ present.astype(np.float64)).todense())  # group × term
    pop_share = np.asarray(present.sum(axis=0)).ravel() / max(n, 1)
    sizes = np.bincount(assignments, minlength=k)
    out = []
    for grp in range(k):
        if sizes[grp] == 0:
            out.append([])
            continue
        share = counts[grp] / sizes[grp]
        lift = np.divide(share, pop_share, out=np.zeros_like(share), where=pop_share > 0)
        # Rank by the z-score of the group's share against the population's: lift alone
        # favours rare terms that a handful of members happen to share.
        se = np.sqrt(np.maximum(pop_share * (1 - pop_share), 1e-12) / sizes[grp])
        z = (share - pop_share) / se
        ok = np.flatnonzero((counts[grp] >= min_support) & (share >= min_share) & (lift > 1.0))
        ranked = sorted(ok.tolist(), key=lambda t: (-z[t], -counts[grp, t], names[t]))[:top_n]
        out.append(
            [
                Term(names[t], display(names[t]), float(lift[t]), int(counts[grp, t]), float(share[t]),
                     float(z[t]))
                for t in ranked
            ]
        )
    return out


def label_groups(
    assignments: np.ndarray,
    user_item_edges: np.ndarray,
    item_features: Sequence[Sequence[str]],
    item_entities: Sequence[Sequence[str]],
    *,
    top_n: int = 5,
    min_support: int = 3,
    min_share: float = 0.05,
    n_label: int = 3,
    item_titles: Sequence[str | None] | None = None,
) -> list[GroupLabel]:
    """Per group: size, the features and entities most over-represented among its users
    (lift of "user has an item with it", ranked, with at least ``min_support`` users and
    ``min_share`` of the group, ranked by the z-score of the group's share against the
    population's), and a label joining the top ``n_label`` of both lists, e.g. ``"Kubrick / psychological thriller / 1970s"``.
    A group with neither (a catalogue without metadata) is labelled by its most over-represented
    items' ``item_titles`` when given (ranked the same way), else ``"group N"``."""
    import scipy.sparse as sp

    a = np.asarray(assignments, dtype=np.int64)
    if a.ndim != 1 or a.size == 0 or a.min() < 0:
        raise ConfigError("assignments must be a non-empty 1-D array of group numbers ≥ 0")
    n_users = len(a)
    n_items = len(item_features)
    if len(item_entities) != n_items:
        raise ConfigError(f"item_features has {n_items} items, item_entities {len(item_entities)}")
    e = np.asarray(user_item_edges, dtype=np.int64).reshape(2, -1)
    if e.size and (e[0].max() >= n_users or e[1].max() >= n_items or e.min() < 0):
        raise ConfigError("user_item_edges refer to users/items outside assignments/item lists")
    k = int(a.max()) + 1
    ui = sp.csr_matrix((np.ones(e.shape[1]), (e[0], e[1])), shape=(n_users, n_items))
    feats = _group_terms(a, k, ui, item_features, n_items, top_n, min_support, min_share, _display_feature)
    ents = _group_terms(a, k, ui, item_entities, n_items, top_n, min_support, min_share, _display_entity)
    sizes = np.bincount(a, minlength=k)
    titles: list[list[Term]] = [[] for _ in range(k)]
    if item_titles is not None:
        if len(item_titles) != n_items:
            raise ConfigError(f"item_titles has {len(item_titles)} items, item_features {n_items}")
        if any(not feats[g] and not ents[g] for g in range(k)):
            lists = [[str(t).strip()] if t is not None and str(t).strip() else [] for t in item_titles]
            titles = _group_terms(a, k, ui, lists, n_items, top_n, min_support, min_share, str)
    out = []
    for grp in range(k):
        # the strongest feature first (genre, year, brand: readable), then the strongest terms
        merged = feats[grp][:1] + sorted(feats[grp][1:] + ents[grp], key=lambda t: (-t.z, -t.support, t.display))
        parts: list[str] = []
        for t in merged:
            if t.display.lower() not in (p.lower() for p in parts):
                parts.append(t.display)
            if len(parts) == n_label:
                break
        if not parts and titles[grp]:
            parts = [t.display for t in titles[grp][:n_label]]
        label = " / ".join(parts) if parts else f"group {grp}"
        out.append(GroupLabel(grp, int(sizes[grp]), label, feats[grp], ents[grp]))
    return out
