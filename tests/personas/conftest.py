"""Tiny synthetic knowledge graphs with planted communities for the persona tests, and headless
Chromium (Debian's ``/usr/bin/chromium``) driven over the DevTools protocol for the HTML map."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from kgrec.personas.data import GraphArrays
from kgrec.tests.chromium import Chromium, find_binary

N_COMMUNITIES = 3
USERS_PER = 20
DIM = 16


def planted_arrays(seed: int = 0, items_per_user: int = 5, noise_items: int = 1) -> GraphArrays:
    """60 users / 40 items / 8 features / 6 entities in 3 communities.

    Community c owns items ``c, c+3, c+6, …``, features ``2c, 2c+1`` and entities ``2c, 2c+1``;
    feature 6 is on a random third of the items, feature 7 on every item (a hub). Users
    interact with ``items_per_user`` items of their community plus ``noise_items`` random ones.
    Item embeddings are noise plus a weak community direction.
    """
    rng = np.random.default_rng(seed)
    n_users, n_items = N_COMMUNITIES * USERS_PER, 40
    item_comm = np.arange(n_items) % N_COMMUNITIES
    user_comm = np.repeat(np.arange(N_COMMUNITIES), USERS_PER)
    centres = rng.normal(size=(N_COMMUNITIES, DIM))
    item_emb = rng.normal(size=(n_items, DIM)) + 0.5 * centres[item_comm]

    ui = []
    for u in range(n_users):
        own = np.flatnonzero(item_comm == user_comm[u])
        for i in rng.choice(own, size=items_per_user, replace=False):
            ui.append((u, i))
        for i in rng.choice(n_items, size=noise_items, replace=False):
            ui.append((u, i))
    ui.append((0, int(np.flatnonzero(item_comm == 0)[0])))  # a duplicate interaction
    feat = []
    for i in range(n_items):
        c = item_comm[i]
        feat.append((i, 2 * c + int(rng.integers(0, 2))))
        if rng.random() < 0.5:
            feat.append((i, 2 * c + int(rng.integers(0, 2))))
        if rng.random() < 1 / 3:
            feat.append((i, 6))
        feat.append((i, 7))
    ent = [(i, 2 * item_comm[i] + int(rng.integers(0, 2))) for i in range(n_items)]
    ee = np.array([[0, 2, 4, 1], [1, 3, 5, 3]])
    ee_type = np.array([0, 0, 0, 1])
    return GraphArrays(
        user_ids=[f"u{u}" for u in range(n_users)],
        item_ids=[f"i{i}" for i in range(n_items)],
        item_emb=item_emb,
        user_item=np.array(ui).T,
        item_feature=np.array(feat).T,
        n_features=8,
        item_entity=np.array(ent).T,
        n_entities=6,
        entity_entity=ee,
        entity_entity_type=ee_type,
        entity_rel_types=["DIRECTOR", "GENRE"],
        feature_names=[
            "genre:noir",
            "genre:western",
            "decade:1970s",
            "genre:musical",
            "genre:space opera",
            "genre:documentary",
            "mood:dark",
            "type:movie",
        ],
        entity_labels=[
            "Stanley Kubrick",
            "http://dbpedia.org/resource/Sergio_Leone",
            "Bob Fosse",
            "Gene Kelly",
            "George Lucas",
            "Werner Herzog",
        ],
    )


@pytest.fixture(autouse=True)
def _one_thread():
    import torch

    torch.set_num_threads(1)
    yield


@pytest.fixture(scope="session")
def arrays() -> GraphArrays:
    return planted_arrays()


@pytest.fixture(scope="session")
def user_comm() -> np.ndarray:
    return np.repeat(np.arange(N_COMMUNITIES), USERS_PER)


@pytest.fixture
def chromium(tmp_path: Path) -> Iterator[Chromium]:
    """A fresh headless Chromium page (skipped only where Chromium is not installed)."""
    binary = find_binary()
    if not binary:
        pytest.skip("headless Chromium is missing (apt-get install chromium)")
    browser = Chromium(binary, tmp_path / "chromium-profile")
    try:
        yield browser
    finally:
        browser.close()
