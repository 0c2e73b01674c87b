from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kgrec.errors import ConfigError
from kgrec.personas.data import user_features
from kgrec.personas.hdgi import HDGI, corrupt, vicreg_penalty
from kgrec.personas.metapaths import build_metapath_graphs, parse_metapaths


@pytest.fixture(scope="module")
def graph(arrays):
    specs = parse_metapaths(["UIU", "UIFIU", "UIEIU"], max_neighbors=6, max_fanout=8)
    graphs = build_metapath_graphs(arrays, specs, seed=0)
    return torch.from_numpy(user_features(arrays)), [g.edge_index_tensor() for g in graphs]


@pytest.mark.parametrize("encoder", ["gcn", "gat"])
def test_shapes_and_weights(graph, encoder):
    x, eil = graph
    torch.manual_seed(0)
    model = HDGI(16, 12, 3, encoder=encoder, heads=2, semantic_hidden=8)
    z, w = model(x, eil)
    assert z.shape == (60, 12) and w.shape == (3,)
    assert torch.isclose(w.sum(), torch.tensor(1.0)) and (w > 0).all()
    assert torch.equal(model.last_weights, w.detach())
    assert model.embed(x, eil, target_size=5).shape == (5, 12)
    assert model.training  # embed restores the mode
    fixed = torch.tensor([1.0, 0.0, 0.0])
    z1, w1 = model(x, eil, weights=fixed)
    assert torch.equal(w1, fixed)
    assert torch.allclose(z1, model.encode(x, eil)[0])


def test_sym_normalisation_and_bad_inputs(graph):
    x, eil = graph
    z, _ = HDGI(16, 8, 3, normalization="sym")(x, eil)
    assert z.shape == (60, 8)
    with pytest.raises(ConfigError):
        HDGI(16, 8, 2)(x, eil)
    with pytest.raises(ConfigError):
        HDGI(15, 8, 3)(x, eil)
    with pytest.raises(ConfigError):
        HDGI(16, 8, 3, encoder="sage")  # type: ignore[arg-type]


def test_corruption_permutes_rows_and_keeps_graphs(graph):
    x, eil = graph
    g = torch.Generator().manual_seed(0)
    xc = corrupt(x, g)
    assert xc.shape == x.shape and not torch.equal(xc, x)
    key = lambda t: sorted(map(tuple, t.tolist()))
    assert key(xc) == key(x)  # same multiset of rows
    before = [e.clone() for e in eil]
    model = HDGI(16, 8, 3)
    loss = model.dgi_loss(x, eil, generator=torch.Generator().manual_seed(1))
    assert math.isfinite(float(loss.detach()))
    assert all(torch.equal(a, b) for a, b in zip(before, eil, strict=True))
    # same generator seed → same corruption
    assert torch.equal(
        corrupt(x, torch.Generator().manual_seed(5)), corrupt(x, torch.Generator().manual_seed(5))
    )


def test_loss_on_hand_made_inputs():
    model = HDGI(4, 4, 1)
    with torch.no_grad():
        model.disc_weight.copy_(torch.eye(4) * 10)
        s = torch.tensor([1.0, 0.0, 0.0, 0.0])
        pos = s.repeat(5, 1) * 5
        neg = -s.repeat(5, 1) * 5
        assert float(model.loss(pos, neg, s)) < 1e-3  # perfect discriminator
        assert float(model.loss(neg, pos, s)) > 10  # perfectly wrong
        zero = torch.zeros(5, 4)
        assert abs(float(model.loss(zero, zero, s)) - np.log(2)) < 1e-6  # undecided
    assert torch.allclose(HDGI.readout(torch.zeros(3, 4)), torch.full((4,), 0.5))


def test_vicreg_penalty_is_larger_for_collapsed_embeddings():
    g = torch.Generator().manual_seed(0)
    spread = torch.randn(200, 8, generator=g) * 2.0  # std 2 per dimension, uncorrelated
    collapsed = torch.ones(200, 8) + 0.01 * torch.randn(200, 8, generator=g)  # one point, tiny noise
    one_direction = torch.randn(200, 1, generator=g) * 2.0 * torch.ones(1, 8)  # std 2, but rank 1
    var_s, cov_s = vicreg_penalty(spread)
    var_c, _ = vicreg_penalty(collapsed)
    var_o, cov_o = vicreg_penalty(one_direction)
    assert float(var_s) == 0.0 and float(var_o) == 0.0  # every std ≥ 1: the hinge is off
    assert float(var_c) > 0.95  # std ≈ .01: the hinge is ≈ 1
    assert float(cov_o) > 10 * float(cov_s)  # correlated dimensions pay the covariance term
    with pytest.raises(ConfigError):
        vicreg_penalty(torch.zeros(1, 8))


def test_zero_weights_give_exactly_the_dgi_loss():
    g = torch.Generator().manual_seed(1)
    pos, neg = torch.randn(30, 6, generator=g) * 0.01, torch.randn(30, 6, generator=g) * 0.01
    s = HDGI.readout(pos)
    torch.manual_seed(0)
    plain = HDGI(4, 6, 1)
    torch.manual_seed(0)
    reg = HDGI(4, 6, 1, var_weight=0.5, cov_weight=2.0)
    assert torch.equal(plain.disc_weight, reg.disc_weight)
    logits = torch.cat([plain.discriminate(pos, s), plain.discriminate(neg, s)])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, torch.cat([torch.ones(30), torch.zeros(30)]))
    assert torch.equal(plain.loss(pos, neg, s), bce)
    var, cov = vicreg_penalty(pos)
    assert torch.allclose(reg.loss(pos, neg, s), bce + 0.5 * var + 2.0 * cov)
    assert float(reg.loss(pos, neg, s)) > float(bce) + 0.4  # collapsed batch: the hinge is ≈ 1
    assert torch.equal(reg.loss(pos[:1], neg[:1], s), plain.loss(pos[:1], neg[:1], s))  # one row: no std
    assert plain.init_args["var_weight"] == 0.0 and reg.init_args["cov_weight"] == 2.0
    for bad in ({"var_weight": -1.0}, {"cov_weight": float("nan")}):
        with pytest.raises(ConfigError):
            HDGI(4, 6, 1, **bad)


def test_normalised_vicreg_penalty_is_scale_free_and_sees_a_shared_direction():
    g = torch.Generator().manual_seed(2)
    spread = torch.randn(300, 8, generator=g)
    shared = spread * 0.05 + torch.ones(8)  # the same rows around one common direction (cosine to it ≈ 1)
    for a, b in zip(vicreg_penalty(spread, normalize=True), vicreg_penalty(spread * 50, normalize=True),
                    strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    var_s, _ = vicreg_penalty(spread, normalize=True)
    var_c, _ = vicreg_penalty(shared, normalize=True)
    assert float(var_c) > 0.9 and float(var_s) < 0.2
    assert float(vicreg_penalty(shared)[0]) > 0.9  # the raw hinge too: its per-dimension std is .05
