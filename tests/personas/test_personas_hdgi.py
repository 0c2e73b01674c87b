from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from kgrec.errors import ConfigError
from kgrec.personas.data import user_features
from kgrec.personas.hdgi import HDGI, corrupt
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
