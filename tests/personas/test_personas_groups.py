from __future__ import annotations

import numpy as np
import pytest

from kgrec.errors import ConfigError
from kgrec.personas.data import item_entity_lists, item_feature_lists
from kgrec.personas.groups import cluster_personas, label_groups
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


def test_label_groups_on_planted_communities(arrays, user_comm):
    groups = label_groups(
        user_comm, arrays.user_item, item_feature_lists(arrays), item_entity_lists(arrays), min_support=3
    )
    assert [g.size for g in groups] == [20, 20, 20] and sum(g.size for g in groups) == arrays.n_users
    own = {
        0: {"noir", "western", "Stanley Kubrick", "Sergio Leone"},
        1: {"1970s", "musical", "Bob Fosse", "Gene Kelly"},
        2: {"space opera", "documentary", "George Lucas", "Werner Herzog"},
    }
    for g in groups:
        parts = g.label.split(" / ")
        assert 1 <= len(parts) <= 3 and set(parts) <= own[g.group], g.label
        assert g.top_features and g.top_entities
        assert all(t.lift > 1 and t.support >= 3 for t in g.top_features + g.top_entities)
        lifts = [t.lift for t in g.top_features]
        assert lifts == sorted(lifts, reverse=True)
        assert "movie" not in g.label  # on every item: lift 1, never a label


def test_label_groups_edge_cases(arrays):
    a = np.zeros(arrays.n_users, dtype=int)
    a[:2] = 2  # group 1 empty, group 2 tiny
    groups = label_groups(a, arrays.user_item, item_feature_lists(arrays), item_entity_lists(arrays))
    assert [g.size for g in groups] == [58, 0, 2]
    assert groups[1].label == "group 1" and groups[2].label == "group 2"  # below min support
    with pytest.raises(ConfigError):
        label_groups(a, arrays.user_item, item_feature_lists(arrays), item_entity_lists(arrays)[:3])


def test_groups_without_metadata_are_labelled_by_their_items(arrays, user_comm):
    """A catalogue with no features or entities (e.g. Amazon Games): the label names the items
    most over-represented in the group; no titles → "group N"."""
    none = [[] for _ in range(arrays.n_items)]
    titles = [f"Game {i}" for i in range(arrays.n_items)]
    groups = label_groups(user_comm, arrays.user_item, none, none, item_titles=titles)
    for g in groups:
        names = g.label.split(" / ")
        assert 1 <= len(names) <= 3 and all(n in titles for n in names)
        # planted: community c owns items c, c+3, …
        assert all(int(n.split()[1]) % 3 == g.group for n in names)
    assert label_groups(user_comm, arrays.user_item, none, none)[0].label == "group 0"
    with pytest.raises(ConfigError, match="item_titles"):
        label_groups(user_comm, arrays.user_item, none, none, item_titles=titles[:3])


def test_neighbour_overlap_signal(arrays, user_comm):
    good = neighbour_overlap(_community_vectors(user_comm), arrays.user_item, k=5, sample=30, seed=0)
    noise = neighbour_overlap(np.random.default_rng(0).normal(size=(60, 3)), arrays.user_item, k=5, seed=0)
    assert good.n_users == 30 and noise.n_users == 60
    assert good.knn > 2 * good.random and good.lift > 2
    assert noise.knn < good.knn
    assert neighbour_overlap(_community_vectors(user_comm), arrays.user_item, k=5, sample=30, seed=0) == good
    with pytest.raises(ConfigError):
        neighbour_overlap(np.zeros((60, 3)), arrays.user_item, k=100)
