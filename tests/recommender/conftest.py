"""Tiny synthetic data: 50 users, 30 items, planted sequential patterns.

Users belong to one of two groups; group g walks the item ring with step 1 + g
(next = (cur + step) % 30). The persona is a noisy one-hot of the group, so the
persona tells the retriever which step to take. LLM item embeddings are random
but smooth along the ring, so neighbouring items look alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

N_USERS, N_ITEMS = 50, 30


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


def make_split(seed: int = 0, sessions: int = 4, per_session: int = 4):
    rng = np.random.default_rng(seed)
    rows = []
    personas = {}
    for u in range(N_USERS):
        g = u % 2
        step = 1 + g
        cur = int(rng.integers(N_ITEMS))
        t = 1_000_000.0 + u * 10
        k = 0
        for s in range(sessions):
            for _ in range(per_session):
                rows.append((f"u{u}", f"i{cur}", t, k, np.nan, f"u{u}-s{s}"))
                cur = (cur + step) % N_ITEMS
                t += 60.0
                k += 1
            t += 10_000.0
        p = np.zeros(8, np.float32)
        p[g] = 1.0
        personas[f"u{u}"] = p + rng.normal(0, 0.05, 8).astype(np.float32)
    df = pd.DataFrame(rows, columns=["user", "item", "ts", "order", "rating", "session"])
    last = df.groupby("user")["session"].transform("max")
    sess_idx = df["session"].str.split("-s").str[1].astype(int)
    test = df[sess_idx == sessions - 1].reset_index(drop=True)
    valid = df[sess_idx == sessions - 2].reset_index(drop=True)
    train = df[sess_idx < sessions - 2].reset_index(drop=True)
    del last
    items = pd.DataFrame({"item": [f"i{i}" for i in range(N_ITEMS)]})
    ang = 2 * np.pi * np.arange(N_ITEMS) / N_ITEMS
    base = np.stack([np.cos(ang), np.sin(ang)], 1)
    emb = np.concatenate([base, rng.normal(0, 0.3, (N_ITEMS, 14))], 1).astype(np.float32)
    return {"train": train, "valid": valid, "test": test, "items": items}, emb, personas


@pytest.fixture(scope="session")
def tiny():
    return make_split()


@pytest.fixture(scope="module")
def prepared(tiny):
    from kgrec.recommender.recipe import prepare

    split, emb, personas = tiny
    return prepare(split, emb, personas, max_len=12)


@pytest.fixture
def train_loss():
    """``train_loss(model, prep, steps, persona, seed)``: full-batch Adam steps, the losses."""
    return _train_loss


def _train_loss(model, prep, steps=30, persona=None, seed=0):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.as_tensor(prep.windows.inputs)
    y = torch.as_tensor(prep.windows.targets)
    kw = {} if persona is None else {"persona": torch.as_tensor(persona)}
    g = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        loss = model.training_loss(x, y, generator=g, **kw)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses
