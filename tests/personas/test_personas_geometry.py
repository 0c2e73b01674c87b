import numpy as np

from kgrec.personas.geometry import effective_rank, geometry, pc1_share


def test_collapsed_and_spread_personas_are_told_apart():
    rng = np.random.default_rng(0)
    spread = rng.normal(size=(400, 16))
    collapsed = np.ones((400, 16)) * 5 + rng.normal(scale=0.05, size=(400, 16))
    gs, gc = geometry(spread), geometry(collapsed)
    assert gc["cos_to_mean"] > 0.99 and gs["cos_to_mean"] < 0.3
    assert gc["pc1_share"] > 0.99 and gc["effective_rank"] < gs["effective_rank"]
    assert gc["effective_rank_centred"] > 10  # centring removes the shared direction
    assert 12 < gs["effective_rank"] <= 16 and gc["knn5_cos"] > 0.99
    assert effective_rank(np.eye(4)) == np.float64(4.0) or abs(effective_rank(np.eye(4)) - 4) < 1e-9
    assert abs(pc1_share(np.diag([3.0, 1.0])) - 0.9) < 1e-9
    assert geometry(np.zeros((3, 4))) == {}
