from __future__ import annotations

import numpy as np
import pytest

from kgrec.errors import ConfigError
from kgrec.personas.data import item_term_lists
from kgrec.personas.groups import category_of, cluster_personas, label_groups
from kgrec.personas.signal import neighbour_overlap


def _community_vectors(user_comm: np.ndarray, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.eye(3)[user_comm] * 3 + rng.normal(scale=0.3, size=(len(user_comm), 3))


def test_cluster_fixed_k_and_selected_k(user_comm):
    v = _community_vectors(user_comm)
    fixed = cluster_personas(v, 3)
    assert fixed.k == 3 and fixed.assignments.shape == (60,) and fixed.centroids.shape == (3, 3)
    chosen = cluster_personas(v, None, k_range=range(2, 7), sample=45, seed=1)
    assert chosen.k == 3 and set(chosen.silhouette) == {2, 3, 4, 5, 6}
    # the planted communities are recovered (up to renaming)
    pairs = set(zip(chosen.assignments.tolist(), user_comm.tolist(), strict=True))
    assert len(pairs) == 3
    with pytest.raises(ConfigError):
        cluster_personas(v, 61)
    with pytest.raises(ConfigError):
        cluster_personas(np.full((4, 2), np.nan), 2)


def _planted_terms(n_items: int) -> list[list[tuple[str, str]]]:
    """Community c = item % 3 owns genre ``g{c}``, director ``Director {c}`` and actor
    ``Actor {c}``; every item is a ``movie`` (lift 1) and carries a random year (other)."""
    rng = np.random.default_rng(0)
    return [[("genre", f"g{i % 3}"), ("genre", "movie"), ("people", f"Director {i % 3}"),
             ("cast", f"Actor {i % 3}"), ("other", str(1990 + int(rng.integers(0, 3))))]
            for i in range(n_items)]


def test_label_groups_on_planted_communities(arrays, user_comm):
    titles = [f"Film {i}" for i in range(arrays.n_items)]
    groups = label_groups(user_comm, arrays.user_item, _planted_terms(arrays.n_items), item_titles=titles)
    assert [g.size for g in groups] == [20, 20, 20]
    for g in groups:
        c = g.group
        # genres and people first; a year would only fill a label that lacks them
        assert g.label.split(" / ")[0] == f"g{c}", g.label
        assert g.label.startswith(f"g{c} / Director {c}")  # who made the works, before the cast
        assert not any(p.isdigit() for p in g.label.split(" / "))
        assert "movie" not in g.label and all(t.name != "movie" for t in g.top_genres)  # lift 1
        assert [t.name for t in g.top_genres] == [f"g{c}"]
        assert [t.name for t in g.top_people] == [f"Director {c}", f"Actor {c}"]
        terms = g.top_genres + g.top_people + g.top_other + g.top_items
        assert all(t.lift > 1 and t.support >= 3 for t in terms)
        scores = [t.score for t in g.top_other]
        assert scores == sorted(scores, reverse=True)
        # the three most characteristic items: the community's own
        assert len(g.top_items) == 3 and all(int(t.name.split()[1]) % 3 == c for t in g.top_items)
        props = g.properties()
        assert props["top_genres"] == [f"g{c}"] and len(props["top_items"]) == 3
        assert set(g.row()) == {"size", "label", "top_genres", "top_people", "top_items"}


def test_label_groups_prefers_genres_and_people_over_years(arrays, user_comm):
    """A year that is far more distinctive than the genre still does not lead the label."""
    terms = [[("genre", f"g{i % 3}"), ("other", f"{1970 + i % 3}")] for i in range(arrays.n_items)]
    for g in label_groups(user_comm, arrays.user_item, terms):
        assert g.label.startswith(f"g{g.group}") and g.top_other


def test_label_groups_edge_cases(arrays):
    a = np.zeros(arrays.n_users, dtype=int)
    a[:2] = 2  # group 1 empty, group 2 tiny
    terms = _planted_terms(arrays.n_items)
    groups = label_groups(a, arrays.user_item, terms)
    assert [g.size for g in groups] == [58, 0, 2]
    assert groups[1].label == "group 1" and groups[2].label == "group 2"  # below min support
    with pytest.raises(ConfigError):
        label_groups(a, arrays.user_item, terms[:3])


def test_groups_without_metadata_are_labelled_by_their_items(arrays, user_comm):
    """A catalogue with no features or entities (e.g. Amazon Games): the label names the items
    most characteristic of the group; no titles → "group N"."""
    none = [[] for _ in range(arrays.n_items)]
    titles = [f"Game {i}" for i in range(arrays.n_items)]
    groups = label_groups(user_comm, arrays.user_item, none, item_titles=titles)
    for g in groups:
        names = g.label.split(" / ")
        assert 1 <= len(names) <= 3 and all(n in titles for n in names)
        # planted: community c owns items c, c+3, …
        assert all(int(n.split()[1]) % 3 == g.group for n in names)
    assert label_groups(user_comm, arrays.user_item, none)[0].label == "group 0"
    with pytest.raises(ConfigError, match="item_titles"):
        label_groups(user_comm, arrays.user_item, none, item_titles=titles[:3])


def test_item_term_lists_sorts_features_and_entities_into_categories(arrays):
    terms = item_term_lists(arrays)
    assert len(terms) == arrays.n_items
    flat = {t for ts in terms for t in ts}
    assert ("genre", "noir") in flat and ("other", "1970s") in flat and ("other", "movie") in flat
    # entity 0 -DIRECTOR-> entity 1 (a bare IRI, shown readable); entity 1 -GENRE-> entity 3
    assert ("people", "Sergio Leone") in flat and ("genre", "Gene Kelly") in flat
    assert category_of("SUBJECT") == "genre" and category_of("year") == "other"
    assert category_of("STARRING") == "cast" and category_of("director") == "people"


def test_neighbour_overlap_signal(arrays, user_comm):
    good = neighbour_overlap(_community_vectors(user_comm), arrays.user_item, k=5, sample=30, seed=0)
    noise = neighbour_overlap(np.random.default_rng(0).normal(size=(60, 3)), arrays.user_item, k=5, seed=0)
    assert good.n_users == 30 and noise.n_users == 60
    assert good.knn > 2 * good.random and good.lift > 2
    assert noise.knn < good.knn
    assert neighbour_overlap(_community_vectors(user_comm), arrays.user_item, k=5, sample=30, seed=0) == good
    with pytest.raises(ConfigError):
        neighbour_overlap(np.zeros((60, 3)), arrays.user_item, k=100)
