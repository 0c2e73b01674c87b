"""Persona groups: KMeans over persona vectors, labelled for an analyst by the genres, people
and items most characteristic of each group (lift × support against the whole population). numpy / scipy / scikit-learn only; sklearn
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

    def typicality(self, vectors: np.ndarray) -> list[float]:
        """How typical each user is of its group: the cosine of its vector to its group's
        centroid, rounded to 3 digits (``HAS_PERSONA.weight``, which an analyst reads in Browser)."""
        v = _prepare(vectors, normalize=True)
        c = _prepare(self.centroids, normalize=True)[self.assignments]
        return np.round(np.einsum("ij,ij->i", v, c), 3).astype(float).tolist()


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


#: Which kind of term says most about a taste. Feature kinds (``genre:Comedy``) and DBpedia
#: relations (``DIRECTOR``) map to ``genre``, ``people`` (who made the work) or ``cast``;
#: anything else (years, countries, languages, publishers) is ``other`` and is used in a label
#: only when nothing better is there.
GENRE_SOURCES = frozenset({"genre", "category", "GENRE", "LITERARY_GENRE", "SUBJECT"})
PEOPLE_SOURCES = frozenset({"director", "author", "DIRECTOR", "WRITER", "AUTHOR", "MUSIC_COMPOSER",
                            "PRODUCER"})
CAST_SOURCES = frozenset({"STARRING"})
CATEGORIES = ("genre", "people", "cast", "other")


def category_of(source: str) -> str:
    """``genre``, ``people``, ``cast`` or ``other`` for a feature kind or an entity relation type."""
    if source in GENRE_SOURCES:
        return "genre"
    if source in PEOPLE_SOURCES:
        return "people"
    return "cast" if source in CAST_SOURCES else "other"


@dataclass
class Term:
    name: str  # what the group is labelled with ("Comedy", "Woody Allen", an item title)
    category: str  # genre | people | cast | other | item
    lift: float  # group share / population share
    support: int  # users in the group that have it
    share: float  # fraction of the group's users that have it

    @property
    def score(self) -> float:
        """lift × support: distinctive *and* common in the group (lift alone favours rare terms)."""
        return self.lift * self.support


@dataclass
class GroupLabel:
    group: int
    size: int
    label: str
    top_genres: list[Term]
    top_people: list[Term]  # who made the group's works first (directors, writers, ...), then cast
    top_other: list[Term]
    top_items: list[Term]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def properties(self) -> dict[str, Any]:
        """What the ``:Persona`` node keeps (lists of names, so that Browser shows them)."""
        return {"size": self.size, "label": self.label, "top_genres": [t.name for t in self.top_genres],
                "top_people": [t.name for t in self.top_people], "top_other": [t.name for t in self.top_other],
                "top_items": [t.name for t in self.top_items]}

    def row(self) -> dict[str, Any]:
        """One row of the persona table."""
        p = self.properties()
        return {k: p[k] for k in ("size", "label", "top_genres", "top_people", "top_items")}


def _incidence(lists: Sequence[Sequence[str]], n_items: int) -> tuple[Any, list[str]]:
    """item × term 0/1 matrix of ``lists`` (one list of term names per item) and the term names."""
    import scipy.sparse as sp

    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, names in enumerate(lists):
        for t in dict.fromkeys(names):
            rows.append(i)
            cols.append(vocab.setdefault(t, len(vocab)))
    return sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_items, len(vocab))), list(vocab)


def _ranked_terms(assignments: np.ndarray, k: int, ui: Any, item_term: Any, names: Sequence[str],
                  category: str, *, top_n: int, min_support: int, min_share: float) -> list[list[Term]]:
    """Per group, the ``top_n`` terms by lift × support among those with lift > 1 that at least
    ``max(min_support, min_share × group size)`` of its users have."""
    import scipy.sparse as sp

    if not names:
        return [[] for _ in range(k)]
    present = (ui @ item_term) > 0  # user × term
    n = len(assignments)
    g = sp.csr_matrix((np.ones(n), (assignments, np.arange(n))), shape=(k, n))
    counts = np.asarray((g @ present.astype(np.float64)).todense())  # group × term
    pop_share = np.asarray(present.sum(axis=0)).ravel() / max(n, 1)
    sizes = np.bincount(assignments, minlength=k)
    out: list[list[Term]] = []
    for grp in range(k):
        if sizes[grp] == 0:
            out.append([])
            continue
        share = counts[grp] / sizes[grp]
        lift = np.divide(share, pop_share, out=np.zeros_like(share), where=pop_share > 0)
        floor = max(min_support, int(np.ceil(min_share * sizes[grp])))
        ok = np.flatnonzero((counts[grp] >= floor) & (lift > 1.0))
        score = lift * counts[grp]
        ranked = sorted(ok.tolist(), key=lambda t: (-score[t], names[t]))[:top_n]
        out.append([Term(names[t], category, float(lift[t]), int(counts[grp, t]), float(share[t]))
                    for t in ranked])
    return out


def _label(genres: list[Term], people: list[Term], other: list[Term], items: list[Term], n_label: int,
           group: int) -> str:
    """Two genres and one person first, filled up with more of them, then with the other kinds
    (years, countries); the group's items only when it has no term at all."""
    picks = genres[:2] + people[:1] + genres[2:] + people[1:] + other or items
    parts: list[str] = []
    for t in picks:
        if t.name.lower() not in {p.lower() for p in parts}:
            parts.append(t.name)
        if len(parts) == n_label:
            break
    return " / ".join(parts) or f"group {group}"


def label_groups(
    assignments: np.ndarray,
    user_item_edges: np.ndarray,
    item_terms: Sequence[Sequence[tuple[str, str]]],
    *,
    item_titles: Sequence[str | None] | None = None,
    top_n: int = 5,
    n_items: int = 3,
    min_support: int = 3,
    min_share: float = 0.05,
    n_label: int = 3,
) -> list[GroupLabel]:
    """Per group: size, its most characteristic genres, people and other terms (``item_terms``:
    per item, ``(category, name)`` pairs, category from :func:`category_of`), its ``n_items`` most
    characteristic items (``item_titles``), and a label such as ``"Comedy / Romance / Woody Allen"``.
    Terms are ranked by lift × support, with a minimum support (see :func:`_ranked_terms`)."""
    import scipy.sparse as sp

    a = np.asarray(assignments, dtype=np.int64)
    if a.ndim != 1 or a.size == 0 or a.min() < 0:
        raise ConfigError("assignments must be a non-empty 1-D array of group numbers ≥ 0")
    n_users, n_cat = len(a), len(item_terms)
    if item_titles is not None and len(item_titles) != n_cat:
        raise ConfigError(f"item_titles has {len(item_titles)} items, item_terms {n_cat}")
    e = np.asarray(user_item_edges, dtype=np.int64).reshape(2, -1)
    if e.size and (e[0].max() >= n_users or e[1].max() >= n_cat or e.min() < 0):
        raise ConfigError("user_item_edges refer to users/items outside assignments/item lists")
    k = int(a.max()) + 1
    ui = sp.csr_matrix((np.ones(e.shape[1]), (e[0], e[1])), shape=(n_users, n_cat))
    opts = {"top_n": top_n, "min_support": min_support, "min_share": min_share}
    by_cat = {}
    for cat in CATEGORIES:
        m, names = _incidence([[n for c, n in terms if c == cat] for terms in item_terms], n_cat)
        by_cat[cat] = _ranked_terms(a, k, ui, m, names, cat, **opts)
    items: list[list[Term]] = [[] for _ in range(k)]
    if item_titles is not None:
        titles = [str(t).strip() if t is not None and str(t).strip() else None for t in item_titles]
        keep = [i for i, t in enumerate(titles) if t is not None]
        m = sp.csr_matrix((np.ones(len(keep)), (keep, range(len(keep)))), shape=(n_cat, len(keep)))
        items = _ranked_terms(a, k, ui, m, [titles[i] for i in keep], "item", **opts | {"top_n": n_items})
    sizes = np.bincount(a, minlength=k)
    people = [(by_cat["people"][g] + by_cat["cast"][g])[:top_n] for g in range(k)]
    return [GroupLabel(g, int(sizes[g]),
                       _label(by_cat["genre"][g], people[g], by_cat["other"][g], items[g], n_label, g),
                       by_cat["genre"][g], people[g], by_cat["other"][g], items[g])
            for g in range(k)]
