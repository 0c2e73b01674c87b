"""HDGI on server-side GDS samples (personas/sampled.py) against the session's real Neo4j, and
its refusal on the embedded store. The graph is ml-mini with seeded 384-d item vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kgrec.errors import ConfigError, ModelError
from kgrec.kg.build import BuildOptions, build
from kgrec.personas.metapaths import parse_metapaths
from kgrec.personas.projection import relation_types
from kgrec.personas.sampled import SampledSource, SampleSettings
from kgrec.personas.saved import load_inductive
from kgrec.personas.workflow import ARRAYS_FILE, model_dir, train_personas

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ml-mini"
SAMPLED = {"sampled": True, "batch_size": 8, "nodes_per_user": 4, "features": "mean", "epochs": 3, "hidden": 16,
           "patience": 3, "metapaths": ("UIU", "UIFIU"), "seed": 0}


def _graph(store, settings) -> list[str]:
    build(store, settings, BuildOptions(kind="movielens", data=FIXTURE, k_core=3, embeddings=False))
    items = [r["id"] for r in store.execute("MATCH (i:Item) RETURN i.id AS id ORDER BY id")]
    store.write_vectors("Item", "emb", items, np.random.default_rng(0).normal(size=(len(items), 384)).astype(np.float32))
    return [r["id"] for r in store.execute("MATCH (u:User) RETURN u.id AS id ORDER BY id")]


@pytest.mark.neo4j
@pytest.mark.slow
def test_sampled_training_writes_every_users_persona_from_bounded_samples(neo4j_store) -> None:
    store, settings = neo4j_store, neo4j_store.settings
    users = _graph(store, settings)
    source = SampledSource(store, users, parse_metapaths(["UIU", "UIFIU"]), SampleSettings(8, 4), seed=0)
    seen: list[str] = []
    for batch in source.batches(0):
        assert batch.x.shape[0] >= batch.n_targets and batch.x.shape[1] == 384
        for g in batch.graphs:  # edges point into the sample, targets come first
            assert g.edge_index.size == 0 or int(g.edge_index.max()) < batch.x.shape[0]
        seen += batch.target_ids + batch.missing
    assert sorted(seen) == users  # every user once an epoch
    assert 0 < source.max_sample_users < len(users)  # a sample is not the graph

    summary = train_personas(store, settings, **SAMPLED)
    assert summary.n_users == len(users) and summary.dim == 16 and summary.groups == []
    assert 1 <= len(summary.losses) <= 3 and all(np.isfinite(summary.losses))
    assert abs(sum(summary.attention.values()) - 1.0) < 1e-3
    assert any("GDS samples" in n for n in summary.notes)
    rows = store.execute("MATCH (u:User) RETURN u.id AS id, u.persona AS p, u.persona_version AS v")
    assert len(rows) == len(users) and all(len(r["p"]) == 16 and r["v"] == summary.version for r in rows)
    assert not (model_dir(settings) / ARRAYS_FILE).exists()  # no inductive arrays from a sample ...
    with pytest.raises(ModelError, match="--sampled"):  # ... and a clear word from the past encoder
        load_inductive(store, settings)
    assert [r["graphName"] for r in store.run("gds_list", {"prefix": "kgrec-proj-"}, read_only=True)] == []


def test_sampled_training_is_refused_where_it_cannot_run(falkordb_store) -> None:
    with pytest.raises(ConfigError, match="Neo4j with GDS"):
        next(falkordb_store.sampled_projections({"User": []}, {"INTERACTED": []}, [["1"]]))
    with pytest.raises(ConfigError, match="--features mean"):
        train_personas(falkordb_store, falkordb_store.settings, **(SAMPLED | {"features": "mean+cf"}))
    with pytest.raises(ConfigError, match="--batch-size"):
        train_personas(falkordb_store, falkordb_store.settings, **(SAMPLED | {"batch_size": None}))
    with pytest.raises(ConfigError, match="Neo4j with GDS"):
        train_personas(falkordb_store, falkordb_store.settings, **SAMPLED)


def test_a_sample_projects_only_the_types_its_metapaths_walk() -> None:
    assert relation_types(["UI", "IU"]) == {"INTERACTED"}
    assert relation_types(["UI", "IF", "FI", "IU"]) == {"INTERACTED", "HAS_FEATURE"}
    assert "CO_OCCURS" in relation_types(["II"]) and "SAME_AS" in relation_types(["EI"])
