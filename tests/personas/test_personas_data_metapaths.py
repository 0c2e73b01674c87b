from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from kgrec.errors import ConfigError, DataError
from kgrec.personas.data import GraphArrays, session_features, user_features
from kgrec.personas.metapaths import (
    MetaPathSpec,
    build_metapath_graph,
    build_metapath_graphs,
    expand_hop,
    parse_metapaths,
    sample_from_items,
)
from kgrec.personas.sparse import CSR, cap_per_source


def _item_sets(arrays: GraphArrays) -> list[set[int]]:
    sets: list[set[int]] = [set() for _ in range(arrays.n_users)]
    for u, i in arrays.user_item.T.tolist():
        sets[u].add(i)
    return sets


# -- GraphArrays / HeteroData ----------------------------------------------------------------


def test_graph_arrays_validation():
    with pytest.raises(DataError):
        GraphArrays(["u"], ["i"], np.zeros((1, 4)), np.array([[0], [5]]))
    with pytest.raises(DataError):
        GraphArrays(["u"], ["i"], np.zeros((2, 4)), np.array([[0], [0]]))
    with pytest.raises(DataError):
        GraphArrays(["u"], ["i"], np.zeros((1, 4)), np.array([0, 0]))


def test_user_and_session_features(arrays):
    x = user_features(arrays)
    items_of_0 = arrays.user_item[1][arrays.user_item[0] == 0]
    assert np.allclose(x[0], arrays.item_emb[items_of_0].mean(0), atol=1e-5)
    assert user_features(arrays, np.ones((arrays.n_users, 2))).shape == (60, 18)
    s = session_features(arrays, [1, 2], extra_dim=2)
    assert s.shape == (18,) and np.allclose(s[:16], arrays.item_emb[[1, 2]].mean(0), atol=1e-6)


def test_arrays_save_load(arrays, tmp_path):
    back = GraphArrays.load(arrays.save(tmp_path / "g.npz"))
    assert back.user_ids == arrays.user_ids and back.feature_names == arrays.feature_names
    assert np.array_equal(back.user_item, arrays.user_item)
    assert np.array_equal(back.entity_entity_type, arrays.entity_entity_type)


# -- specs ---------------------------------------------------------------------------------------


def test_spec_parsing():
    specs = parse_metapaths("UIU,uifiu", max_neighbors=7)
    assert [s.name for s in specs] == ["UIU", "UIFIU"] and specs[1].max_neighbors == 7
    assert specs[1].relations == ("UI", "IF", "FI", "IU")
    d = MetaPathSpec("UIEEIU", entity_rel_types=("DIRECTOR",)).to_dict()
    assert MetaPathSpec.from_dict(d) == MetaPathSpec("UIEEIU", entity_rel_types=("DIRECTOR",))
    for bad in ["UI", "IUI", "UXU", "UFU"]:
        with pytest.raises(ConfigError):
            MetaPathSpec(bad)
    with pytest.raises(ConfigError):
        parse_metapaths(["UIU", "UIU"])
    with pytest.raises(ConfigError):
        MetaPathSpec("UIU", max_neighbors=0)


# -- sampling ------------------------------------------------------------------------------------


def test_uncapped_uiu_is_exact_path_count(arrays):
    g = build_metapath_graph(arrays, MetaPathSpec("UIU", max_neighbors=1000, max_fanout=1000))
    ui = sp.csr_matrix((np.ones(arrays.user_item.shape[1]), tuple(arrays.user_item)), shape=(60, 40))
    ui.data[:] = 1
    ui.sum_duplicates()
    ui.data[:] = 1
    exact = (ui @ ui.T).tolil()
    exact.setdiag(0)
    exact = exact.tocsr()
    exact.eliminate_zeros()
    got = sp.csr_matrix((g.weight, (g.edge_index[1], g.edge_index[0])), shape=(60, 60))
    assert abs(got - exact).max() < 1e-6


def test_max_neighbors_cap_and_validity(arrays):
    sets = _item_sets(arrays)
    for sampling in ("weighted", "uniform", "topk"):
        g = build_metapath_graph(arrays, MetaPathSpec("UIU", max_neighbors=3, sampling=sampling), seed=3)
        assert g.in_degree().max() <= 3
        assert (g.edge_index[0] != g.edge_index[1]).all()
        for v, u in g.edge_index.T.tolist():
            assert sets[u] & sets[v]  # neighbours really share an item


def test_fanout_cap_on_hub():
    # user i ↔ item i; every item has the hub feature 0
    n = 100
    arrays = GraphArrays(
        [f"u{i}" for i in range(n)],
        [f"i{i}" for i in range(n)],
        np.zeros((n, 4)),
        np.stack([np.arange(n), np.arange(n)]),
        item_feature=np.stack([np.arange(n), np.zeros(n, int)]),
        n_features=1,
    )
    g = build_metapath_graph(arrays, MetaPathSpec("UIFIU", max_neighbors=50, max_fanout=5), seed=0)
    assert 0 < g.in_degree().max() <= 5  # the hub expands into ≤ 5 items, each with one user
    # one hop on its own: ≤ fanout distinct nodes, total weight preserved (unbiased)
    csr = CSR(np.array([0, n]), np.arange(n), n)
    src, node, w = expand_hop(np.array([0]), np.array([0]), np.array([1.0]), csr, 7, np.random.default_rng(0))
    assert len(node) <= 7 and (src == 0).all() and abs(w.sum() - n) < 1e-9


def test_cap_per_source_counts():
    rng = np.random.default_rng(0)
    src = np.repeat(np.arange(4), [1, 5, 10, 2])
    for mode in ("weighted", "uniform", "topk"):
        m = cap_per_source(src, rng.random(len(src)) + 0.1, 3, rng, mode)
        assert np.bincount(src[m], minlength=4).tolist() == [1, 3, 3, 2]
    w = np.arange(10, dtype=float) + 1
    m = cap_per_source(np.zeros(10, dtype=int), w, 2, rng, "topk")
    assert np.flatnonzero(m).tolist() == [8, 9]


def test_deterministic_and_entity_paths(arrays):
    specs = parse_metapaths(["UIU", "UIFIU", "UIEIU", "UIEEIU"], max_neighbors=4, max_fanout=3)
    a = build_metapath_graphs(arrays, specs, seed=11)
    b = build_metapath_graphs(arrays, specs, seed=11)
    c = build_metapath_graphs(arrays, specs, seed=12, batch_size=7)
    for ga, gb in zip(a, b, strict=True):
        assert np.array_equal(ga.edge_index, gb.edge_index) and np.array_equal(ga.weight, gb.weight)
    assert any(not np.array_equal(ga.edge_index, gc.edge_index) for ga, gc in zip(a, c, strict=True))
    typed = build_metapath_graph(arrays, MetaPathSpec("UIEEIU", entity_rel_types=("GENRE",)))
    assert typed.num_edges > 0
    with pytest.raises(ConfigError):
        build_metapath_graph(arrays, MetaPathSpec("UIEEIU", entity_rel_types=("NOPE",)))


def test_sample_from_items(arrays):
    spec = MetaPathSpec("UIU", max_neighbors=5)
    users, w = sample_from_items(arrays, spec, [0, 3])
    sets = _item_sets(arrays)
    assert 0 < len(users) <= 5 and len(w) == len(users)
    assert all(sets[u] & {0, 3} for u in users.tolist())
    assert len(sample_from_items(arrays, spec, [])[0]) == 0
