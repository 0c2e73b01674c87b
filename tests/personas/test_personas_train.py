from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kgrec.errors import ConfigError, ModelError
from kgrec.personas.data import user_features
from kgrec.personas.hdgi import HDGI
from kgrec.personas.metapaths import build_metapath_graphs, parse_metapaths
from kgrec.personas.persistence import load_model, model_hash, save_model
from kgrec.personas.signal import neighbour_overlap
from kgrec.personas.train import SubgraphSampler, embed_personas, train_hdgi

SPECS = parse_metapaths(["UIU", "UIFIU", "UIEIU"], max_neighbors=8, max_fanout=10)


@pytest.fixture(scope="module")
def setup(arrays):
    graphs = build_metapath_graphs(arrays, SPECS, seed=0)
    return user_features(arrays), graphs


@pytest.fixture(scope="module")
def trained(setup):
    torch.set_num_threads(1)
    x, graphs = setup
    model = HDGI(16, 16, 3, semantic_hidden=8)
    seen = []
    res = train_hdgi(
        model,
        x,
        graphs,
        epochs=40,
        lr=0.01,
        patience=10,
        seed=0,
        on_epoch=lambda e, loss: seen.append((e, loss)),
    )
    return model, res, seen


def test_full_batch_loss_falls(trained):
    model, res, seen = trained
    assert res.best_loss < 0.5 * res.losses[0]
    assert res.epochs_run == len(res.losses) == len(seen) and seen[0] == (0, res.losses[0])
    assert res.losses[res.best_epoch] == res.best_loss
    assert len(res.attention) == 3 and abs(sum(res.attention) - 1) < 1e-5
    assert np.allclose(model.attention.numpy(), res.attention)


def test_same_seed_same_losses(setup):
    x, graphs = setup
    runs = [
        train_hdgi(HDGI(16, 8, 3, semantic_hidden=4), x, graphs, epochs=5, lr=0.01, seed=3).losses
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    other = train_hdgi(HDGI(16, 8, 3, semantic_hidden=4), x, graphs, epochs=5, lr=0.01, seed=4).losses
    assert other != runs[0]


def test_early_stopping_restores_best(setup):
    x, graphs = setup
    model = HDGI(16, 8, 3, semantic_hidden=4)
    res = train_hdgi(model, x, graphs, epochs=60, lr=0.5, patience=2, seed=0)  # lr too high: noisy
    assert res.epochs_run <= 60
    if res.stopped_early:
        assert res.epochs_run - 1 - res.best_epoch == 2


def test_minibatch_runs_and_falls(setup):
    x, graphs = setup
    model = HDGI(16, 16, 3, encoder="gat", heads=2, semantic_hidden=8)
    res = train_hdgi(model, x, graphs, epochs=12, lr=0.01, patience=5, seed=0, batch_size=16, num_neighbors=4)
    assert res.best_loss < res.losses[0]
    again = train_hdgi(
        HDGI(16, 16, 3, encoder="gat", heads=2, semantic_hidden=8),
        x,
        graphs,
        epochs=3,
        lr=0.01,
        seed=0,
        batch_size=16,
        num_neighbors=4,
    )
    assert again.losses == res.losses[:3]


def test_batched_embedding_matches_full(trained, setup):
    model, _, _ = trained
    x, graphs = setup
    full, w_full = embed_personas(model, x, graphs, return_weights=True)
    batched, w_b = embed_personas(model, x, graphs, batch_size=7, return_weights=True)
    assert full.shape == (60, 16)
    assert np.allclose(full, batched, atol=1e-5) and np.allclose(w_full, w_b, atol=1e-6)


def test_subgraph_sampler_targets_first(setup):
    _, graphs = setup
    eil = [torch.from_numpy(g.edge_index) for g in graphs]
    ewl = [torch.from_numpy(g.weight) for g in graphs]
    sampler = SubgraphSampler(eil, 60, num_neighbors=2, edge_weight_list=ewl)
    nodes, sub, sub_w = sampler.sample(np.array([5, 9, 30]), np.random.default_rng(0))
    assert nodes[:3].tolist() == [5, 9, 30] and len(set(nodes.tolist())) == len(nodes)
    for g, e, w in zip(graphs, sub, sub_w, strict=True):
        assert (e[1] < 3).all() and np.bincount(e[1].numpy(), minlength=3).max() <= 2
        # each sampled edge keeps its path-count weight from the full graph
        full = {(int(a), int(b)): float(c) for a, b, c in zip(*g.edge_index, g.weight, strict=True)}
        for (a, b), c in zip(e.T.tolist(), w.tolist(), strict=True):
            assert full[(int(nodes[a]), int(nodes[b]))] == pytest.approx(c)


def test_save_load_round_trip(trained, setup, tmp_path):
    model, res, _ = trained
    x, graphs = setup
    h = save_model(tmp_path / "m", model, {"lr": 0.01, "epochs": 40}, SPECS, res.attention)
    assert len(h) == 12
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["model_hash"] == h and set(cfg["attention"]) == {"UIU", "UIFIU", "UIEIU"}
    assert (tmp_path / "m" / "attention.json").is_file()
    loaded, config = load_model(tmp_path / "m")
    assert config["hparams"]["epochs"] == 40 and config["metapaths"][1]["name"] == "UIFIU"
    assert model_hash(loaded, config) == h
    assert np.array_equal(embed_personas(loaded, x, graphs), embed_personas(model, x, graphs))
    cfg["hparams"]["lr"] = 1.0  # tampered config → stale
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelError):
        load_model(tmp_path / "m")
    with pytest.raises(ModelError):
        load_model(tmp_path / "missing")
    with pytest.raises(ConfigError):
        save_model(tmp_path / "m2", model, {"bad": object()}, SPECS)


def test_bad_training_args(setup):
    x, graphs = setup
    with pytest.raises(ConfigError):
        train_hdgi(HDGI(16, 8, 2), x, graphs, epochs=1)
    with pytest.raises(ConfigError):
        train_hdgi(HDGI(16, 8, 3), x, graphs, epochs=0)


def test_personas_neighbours_share_items(trained, setup, arrays):
    model, _, _ = trained
    x, graphs = setup
    z = embed_personas(model, x, graphs)
    res = neighbour_overlap(z, arrays.user_item, k=5, sample=60, seed=0)
    assert res.knn > 1.5 * res.random


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(setup, arrays, tmp_path):
    from kgrec.personas.inductive import InductivePersonas

    x, graphs = setup
    cpu = train_hdgi(HDGI(16, 8, 3, semantic_hidden=4), x, graphs, epochs=5, lr=0.01, seed=0)
    model = HDGI(16, 8, 3, semantic_hidden=4)
    gpu = train_hdgi(model, x, graphs, epochs=5, lr=0.01, seed=0, device="cuda")
    assert np.allclose(cpu.losses, gpu.losses, atol=1e-4)
    assert next(model.parameters()).is_cuda
    mb = train_hdgi(
        HDGI(16, 8, 3, encoder="gat", semantic_hidden=4),
        x,
        graphs,
        epochs=3,
        lr=0.01,
        seed=0,
        device="cuda",
        batch_size=16,
        num_neighbors=4,
    )
    assert len(mb.losses) == 3
    z = embed_personas(model, x, graphs)
    assert np.allclose(z, embed_personas(model, x, graphs, batch_size=9), atol=1e-5)
    assert InductivePersonas(model, arrays, SPECS).infer([0, 1]).shape == (8,)
    save_model(tmp_path / "m", model, {}, SPECS)
    loaded, _ = load_model(tmp_path / "m", device="cuda")
    assert np.allclose(embed_personas(loaded, x, graphs), z, atol=1e-6)


def test_root_weight_and_cf_inputs_keep_the_neighbour_signal(setup, arrays):
    """Regression guard for the persona-signal fix. Without a root weight and with mean-embedding
    inputs, DGI training washed out which items a user had (persona neighbours shared far fewer
    items than mean-embedding neighbours). With the defaults (root weight, mean + cf inputs) the
    trained personas keep that signal. On this 60-user toy they land level with the mean
    embedding; benchmarks/persona_signal.py shows them above it on MovieLens."""
    from kgrec.personas.features import UserFeaturizer

    _, graphs = setup
    plain = [g.edge_index for g in graphs]
    x_mean = user_features(arrays)
    legacy = HDGI(16, 32, 3, semantic_hidden=8, root_weight=False)
    train_hdgi(legacy, x_mean, plain, epochs=60, lr=1e-3, patience=20, seed=0)
    x = UserFeaturizer.fit(arrays, "mean+cf", cf_dim=8, seed=0).users(arrays)
    model = HDGI(x.shape[1], 32, 3, semantic_hidden=8)
    res = train_hdgi(model, x, graphs, epochs=60, lr=1e-3, patience=20, seed=0)
    assert res.losses[-1] < res.losses[0] - 0.1

    def overlap(v):
        return neighbour_overlap(v, arrays.user_item, k=5, sample=60, seed=0)

    new, old, mean = overlap(embed_personas(model, x, graphs)), overlap(embed_personas(legacy, x_mean, plain)), overlap(x_mean)
    assert new.knn > old.knn + 0.03
    assert new.knn > 0.95 * mean.knn and new.knn > 3 * new.random


def test_regularised_model_round_trip_and_old_configs_load_unregularised(setup, tmp_path):
    x, graphs = setup
    model = HDGI(16, 8, 3, semantic_hidden=4, var_weight=0.5, cov_weight=0.1)
    save_model(tmp_path / "m", model, {}, SPECS)
    loaded, config = load_model(tmp_path / "m")
    assert (loaded.var_weight, loaded.cov_weight) == (0.5, 0.1)
    assert config["model"]["var_weight"] == 0.5
    # a config written before the regulariser existed: no keys → the plain DGI loss
    for key in ("var_weight", "cov_weight", "reg_normalize"):
        del config["model"][key]
    config["model_hash"] = model_hash(loaded, config)
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    old, _ = load_model(tmp_path / "m")
    assert (old.var_weight, old.cov_weight, old.reg_normalize) == (0.0, 0.0, False)
    assert np.array_equal(embed_personas(old, x, graphs), embed_personas(loaded, x, graphs))


def test_variance_hinge_spreads_the_personas(setup):
    torch.set_num_threads(1)
    x, graphs = setup
    stds = []
    for w in (0.0, 1.0):
        model = HDGI(16, 8, 3, semantic_hidden=4, var_weight=w, cov_weight=w)
        train_hdgi(model, x, graphs, epochs=15, lr=0.01, patience=15, seed=0)
        stds.append(float(embed_personas(model, x, graphs).std(0).mean()))
    assert stds[1] > stds[0]
