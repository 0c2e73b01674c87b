"""The stage-2 workflow end to end on the ml-mini graph (real FalkorDB, real MiniLM item vectors).

Personas come from a small real HDGI model (``train_personas``): the recommender pairs every
example with the persona of that user's past, computed by the saved model's past encoder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kgrec.errors import ConfigError, ModelError, NotFoundError
from kgrec.kg.build import BuildOptions, build, load_split
from kgrec.recommender import workflow as W
from kgrec.recommender.evaluate import MODEL_NAMES
from kgrec.recommender.known_users import KnownUsers, known_histories

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ml-mini"
SMALL = {"max_len": 12, "sasrec_kwargs": {"hidden": 16, "num_blocks": 1},
         "retriever_kwargs": {"hidden": 16}}


def _build(store, settings) -> None:
    build(store, settings, BuildOptions(kind="movielens", data=FIXTURE, k_core=3, embeddings=True))


PERSONAS = {"epochs": 3, "hidden": 16, "patience": 3, "k": 3, "seed": 0}


def _write_personas(store, settings) -> str:
    from kgrec.personas.workflow import train_personas

    return train_personas(store, settings, **PERSONAS).version


def test_train_recommend_write(store, settings) -> None:
    _build(store, settings)
    with pytest.raises(ModelError, match="no personas in the graph"):
        W.train(store, settings, epochs=1, **SMALL)
    version = _write_personas(store, settings)
    inp = W.load_inputs(store, settings)
    assert inp.item_table.shape == (len(inp.vocab), 384) and inp.persona_version == version
    assert inp.personas.dim == PERSONAS["hidden"]

    path = W.train(store, settings, epochs=1, k=30, **SMALL)
    assert path == settings.models_dir / "recommender"
    meta = (path / W.TRAIN_META).read_text()
    assert version in meta and load_split(settings).fingerprint() in meta

    ctx = W.load_context(store, settings)
    user = min(ctx.history)
    recs = W.recommend(store, settings, user=user, k=5, context=ctx)
    assert len(recs) == 5 and recs.persona_source == "past"
    # the persona served is the one a test example of this user gets: that of train + valid, read
    # from the table saved at training (the persona model is not loaded for a known user)
    assert (path / W.KNOWN_USERS).is_file() and isinstance(ctx.encoder, W.LazyPastEncoder)
    assert ctx.encoder._encoder is None and isinstance(ctx.history, KnownUsers)
    assert dict(ctx.history) == known_histories(load_split(settings))
    np.testing.assert_allclose(ctx.persona_of(user), inp.personas.encode([user], [ctx.history[user]])[0],
                               rtol=1e-5, atol=1e-6)
    assert [r.rank for r in recs] == [1, 2, 3, 4, 5]
    assert all(r.title for r in recs) and all(isinstance(r.from_persona, bool) for r in recs)
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)
    # a new session of a known user: the persona answers, and their past items are not offered again
    assert not {r.item for r in recs} & set(ctx.history[user])
    # without a context the model is loaded from disk: same answer
    assert [r.item for r in W.recommend(store, settings, user=user, k=5)] == [r.item for r in recs]
    # without the table, the persona model encodes the past on the spot: the same ranking
    (path / W.KNOWN_USERS).rename(path / "moved.npz")
    eager = W.load_context(store, settings)
    assert not isinstance(eager.encoder, W.LazyPastEncoder) and not eager.personas
    assert [r.item for r in W.recommend(store, settings, user=user, k=5, context=eager)] == [r.item for r in recs]
    (path / "moved.npz").rename(path / W.KNOWN_USERS)
    # a known user's new session is served from the saved queries: neither torch nor pandas (nor
    # torch_geometric) is imported (the neo4j driver imports pandas itself, so pandas is checked on
    # FalkorDB only); with items in the session torch is, torch_geometric still not
    probe = ("import sys\nfrom kgrec.kg.store import open_store\nfrom kgrec.recommender import workflow as W\n"
             "from kgrec.settings import Settings\ns = Settings()\nstore = open_store(s)\n"
             f"recs = W.recommend(store, s, user={user!r}, k=5)\n"
             "print('ITEMS', [r.item for r in recs], ['torch' in sys.modules, 'pandas' in sys.modules and "
             "'neo4j' not in sys.modules])\n"
             f"W.recommend(store, s, user={user!r}, session={ctx.history[user][-2:]!r}, k=5)\nstore.close()\n"
             "print('SESSION', [m in sys.modules for m in ('torch', 'torch_geometric')])")
    env = {**os.environ, "KGREC_HOME": str(settings.home), "KGREC_GRAPH_NAME": settings.graph_name,
           **({"KGREC_GRAPH_URI": settings.graph_uri} if settings.graph_uri else {})}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip().splitlines()[-2:] == [f"ITEMS {[r.item for r in recs]!r} [False, False]",
                                                     "SESSION [True, False]"], out.stderr[-2000:]

    with pytest.raises(NotFoundError, match="no-such-user"):
        W.recommend(store, settings, user="no-such-user", k=5, context=ctx)
    items = ctx.history[user][:3]
    with pytest.raises(NotFoundError, match="bogus-item"):
        W.recommend(store, settings, user=None, session=[items[0], "bogus-item"], context=ctx)
    with pytest.raises(ConfigError):
        W.recommend(store, settings, user=None, session=[], context=ctx)

    anon = W.recommend(store, settings, user=None, session=items, k=4, context=ctx)
    assert len(anon) == 4 and anon.persona_source == "none" and anon.notes
    assert not any(r.from_persona for r in anon)

    W.recommend(store, settings, user=user, k=6, write=True, run_id="r1", context=ctx)
    again = W.recommend(store, settings, user=user, k=6, write=True, run_id="r1", context=ctx)
    rows = store.execute(
        "MATCH (u:User {id: $u})-[r:RECOMMENDED]->(i:Item) WHERE r.run = 'r1' "
        "RETURN i.id AS item, r.rank AS rank, r.score AS score ORDER BY rank", {"u": user}, read_only=True)
    assert [r["item"] for r in rows] == [r.item for r in again]
    assert [r["rank"] for r in rows] == list(range(1, 7))


def test_evaluate_writes_report(store, settings) -> None:
    _build(store, settings)
    version = _write_personas(store, settings)
    results, paths = W.evaluate(store, settings, seeds=(0,), epochs=1, k=30, save_model=True, **SMALL)
    assert set(results) == set(MODEL_NAMES) and results.extra["protocol"] == "session"
    # the evaluation's first pipeline is the production model: nothing is trained twice
    assert paths["model"] == W.model_dir(settings) and '"protocol": "session"' in (
        paths["model"] / W.TRAIN_META).read_text()
    assert len(W.recommend(store, settings, user=min(W.load_context(store, settings).history), k=3)) == 3
    with pytest.raises(ConfigError, match="session protocol"):
        W.evaluate(store, settings, seeds=(0,), epochs=1, protocol="loo", save_model=True, **SMALL)
    assert results.extra["persona_version"] == version and results.extra["cpu_seconds"] > 0
    for kind in ("md", "json", "png"):
        assert paths[kind].is_file() and paths[kind].parent == settings.reports_dir
    assert results.extra["user_subsample"] is None
