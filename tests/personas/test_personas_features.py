from __future__ import annotations

import numpy as np
import pytest

from kgrec.errors import ConfigError, DataError, ModelError
from kgrec.personas.data import GraphArrays, user_features
from kgrec.personas.features import UserFeaturizer


@pytest.mark.parametrize("kind", ["mean", "mean+cf", "cf"])
def test_session_fold_in_reproduces_training_users(arrays, kind):
    f = UserFeaturizer.fit(arrays, kind, cf_dim=8, seed=0)
    x = f.users(arrays)
    assert x.shape == (arrays.n_users, f.dim) and x.dtype == np.float32
    assert f.dim == (arrays.emb_dim if "mean" in kind else 0) + (8 if "cf" in kind else 0)
    items_of = [np.unique(arrays.user_item[1][arrays.user_item[0] == u]) for u in range(arrays.n_users)]
    assert np.allclose(f.sessions(arrays, items_of), x, atol=1e-5)


def test_blocks_are_scaled_and_mean_block_is_the_mean_embedding(arrays):
    f = UserFeaturizer.fit(arrays, "mean+cf", cf_dim=8, seed=0)
    x = f.users(arrays)
    d = arrays.emb_dim
    active = np.bincount(arrays.user_item[0], minlength=arrays.n_users) > 0
    assert np.linalg.norm(x[active, :d], axis=1).mean() == pytest.approx(1.0, rel=1e-4)
    assert np.linalg.norm(x[active, d:], axis=1).mean() == pytest.approx(1.0, rel=1e-4)
    single = np.bincount(arrays.user_item[0], minlength=arrays.n_users) == np.asarray(
        [len(set(arrays.user_item[1][arrays.user_item[0] == u])) for u in range(arrays.n_users)])
    assert not single.all()  # the fixture has a repeat interaction: it counts once here
    assert np.allclose(x[single, :d], user_features(arrays)[single] * f.mean_scale, atol=1e-6)


def test_cf_block_is_collaborative():
    """Users with the same item set get the same cf block; disjoint tastes are far apart."""
    rng = np.random.default_rng(0)
    groups = [list(range(10)), list(range(10, 20))]
    edges = [(u, i) for u in range(20) for i in groups[u % 2] if rng.random() < 0.7] + [(20, 0), (21, 0)]
    ui = np.asarray(edges).T
    arrays = GraphArrays(user_ids=[f"u{i}" for i in range(22)], item_ids=[f"i{i}" for i in range(20)],
                         item_emb=np.zeros((20, 4), np.float32), user_item=ui)
    cf = UserFeaturizer.fit(arrays, "cf", cf_dim=2, seed=0).users(arrays)
    assert np.allclose(cf[20], cf[21])
    unit = cf / np.linalg.norm(cf, axis=1, keepdims=True)
    same = np.mean([unit[a] @ unit[b] for a in range(0, 20, 2) for b in range(0, 20, 2) if a != b])
    cross = np.mean([unit[a] @ unit[b] for a in range(0, 20, 2) for b in range(1, 20, 2)])
    assert same > 0.9 and cross < 0.2


def test_deterministic_and_round_trip(arrays, tmp_path):
    a = UserFeaturizer.fit(arrays, "mean+cf", cf_dim=8, seed=3)
    b = UserFeaturizer.fit(arrays, "mean+cf", cf_dim=8, seed=3)
    assert np.array_equal(a.users(arrays), b.users(arrays))
    a.save(tmp_path / "f.npz")
    c = UserFeaturizer.load(tmp_path / "f.npz")
    assert c.kind == "mean+cf" and np.array_equal(c.users(arrays), a.users(arrays))


def test_bad_input(arrays, tmp_path):
    with pytest.raises(ConfigError, match="features must be one of"):
        UserFeaturizer.fit(arrays, "svd")
    with pytest.raises(ConfigError, match="cf_dim"):
        UserFeaturizer.fit(arrays, "mean+cf", cf_dim=0)
    f = UserFeaturizer.fit(arrays, "mean+cf", cf_dim=4)
    with pytest.raises(DataError, match="out of range"):
        f.sessions(arrays, [[arrays.n_items]])
    (tmp_path / "bad.npz").write_bytes(b"not a npz")
    with pytest.raises(ModelError, match="bad.npz"):
        UserFeaturizer.load(tmp_path / "bad.npz")
