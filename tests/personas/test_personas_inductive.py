from __future__ import annotations

import numpy as np
import pytest
import torch

from kgrec.errors import ConfigError
from kgrec.personas.data import session_features, user_features
from kgrec.personas.features import UserFeaturizer
from kgrec.personas.hdgi import HDGI
from kgrec.personas.inductive import InductivePersonas
from kgrec.personas.metapaths import build_metapath_graphs, parse_metapaths

SPECS = parse_metapaths(["UIU", "UIFIU", "UIEEIU"], max_neighbors=6, max_fanout=8)


@pytest.fixture(scope="module")
def model_and_graphs(arrays):
    torch.manual_seed(0)
    model = HDGI(16, 12, 3, semantic_hidden=8)
    with torch.no_grad():
        model.attention.copy_(torch.tensor([0.5, 0.3, 0.2]))
    model.eval()
    return model, build_metapath_graphs(arrays, SPECS, seed=0)


def test_unseen_session_vector(model_and_graphs, arrays):
    model, _ = model_and_graphs
    inf = InductivePersonas(model, arrays, SPECS)
    v = inf.infer([0, 3, 6, 9])
    assert v.shape == (12,) and v.dtype == np.float32 and np.isfinite(v).all()
    assert np.array_equal(v, InductivePersonas(model, arrays, SPECS).infer([0, 3, 6, 9]))
    many = inf.infer_many([[0, 3, 6, 9], [1, 4], []])
    assert many.shape == (3, 12) and np.allclose(many[0], v, atol=1e-6)
    nbrs = inf.neighbours([0, 3])
    assert len(nbrs) == 3 and all(len(u) <= 6 and len(w) == len(u) for u, w in nbrs) and len(nbrs[0][0]) > 0
    assert all((w > 0).all() for _, w in nbrs)


@pytest.mark.parametrize("kind", ["mean", "mean+cf"])
def test_inductive_equals_full_graph_encoding(model_and_graphs, arrays, kind):
    """The session node encoded in its small subgraph = the same node added to the full graph
    (same features by fold-in, same path-count edge weights)."""
    _, graphs = model_and_graphs
    feat = UserFeaturizer.fit(arrays, kind, cf_dim=8, seed=0)
    torch.manual_seed(1)
    model = HDGI(feat.dim, 12, 3, semantic_hidden=8).eval()
    with torch.no_grad():
        model.attention.copy_(torch.tensor([0.5, 0.3, 0.2]))
    items = [1, 4, 7]
    inf = InductivePersonas(model, arrays, SPECS, featurizer=feat)
    v = inf.infer(items)
    n = arrays.n_users
    x = torch.from_numpy(np.concatenate([feat.users(arrays), feat.sessions(arrays, [items])]))
    eil, ewl = [], []
    for g, (nb, w) in zip(graphs, inf.neighbours(items), strict=True):
        eil.append(torch.cat([g.edge_index_tensor(), torch.stack([torch.from_numpy(nb), torch.full((len(nb),), n)])], 1))
        ewl.append(torch.from_numpy(np.concatenate([g.weight, w]).astype(np.float32)))
    full = model.embed(x, eil, weights=model.attention, edge_weight_list=ewl)
    assert np.allclose(full[n].numpy(), v, atol=1e-5)
    unweighted = model.embed(x, eil, weights=model.attention)
    assert not np.allclose(unweighted[n].numpy(), v, atol=1e-5)  # the weights matter


def test_unseen_session_uses_legacy_mean_features(model_and_graphs, arrays):
    model, _ = model_and_graphs
    items = [2, 5]
    inf = InductivePersonas(model, arrays, SPECS)
    assert np.allclose(inf.user_x.numpy(), user_features(arrays))
    assert session_features(arrays, items).shape == (16,)


def test_extra_features_and_mismatch(model_and_graphs, arrays):
    model, _ = model_and_graphs
    with pytest.raises(ConfigError):
        InductivePersonas(model, arrays, SPECS[:2])
    wide = HDGI(18, 12, 3, semantic_hidden=8)
    ux = np.concatenate([user_features(arrays), np.ones((60, 2), np.float32)], axis=1)
    assert InductivePersonas(wide, arrays, SPECS, user_x=ux).infer([2]).shape == (12,)
    with pytest.raises(ConfigError):
        InductivePersonas(wide, arrays, SPECS)  # default user features are 16 wide


def test_a_users_past_never_reads_the_users_own_node(model_and_graphs, arrays):
    """The persona of a training user's past (what the recommender pairs with that user's later
    targets) must not link to the user's node, whose features hold all of their items."""
    import scipy.sparse as sp

    model, _ = model_and_graphs
    inf = InductivePersonas(model, arrays, SPECS)
    src, dst = arrays.user_item
    m = sp.csr_matrix((np.ones(src.size), (src, dst)), shape=(arrays.n_users, arrays.n_items))
    u = int(np.argmax(np.asarray(m.sum(1)).ravel()))
    items = m[u].indices[:3]
    assert any(u in nb for nb, _ in inf.neighbours(items))  # the walk does reach the user ...
    assert not any(u in nb for nb, _ in inf.neighbours(items, exclude_user=u))  # ... unless excluded
    user = arrays.user_ids[u]
    got = inf.encode_pasts([user, user], [items, np.zeros(0, np.int64)])
    assert np.allclose(got[0], inf.infer_many([items], exclude_users=[u])[0], atol=1e-6)
    assert not np.allclose(got[0], inf.infer(items), atol=1e-6)
    assert not got[1].any()  # an empty past is the zero row: "no persona"
