"""`kgrec build` end to end on a MovieLens slice, with the real FalkorDB and the real MiniLM."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kgrec.kg.artefacts import load_split
from kgrec.kg.build import BuildOptions, build
from kgrec.kg.store import GraphStore

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ml-mini"


def _opts(data: Path = FIXTURE, **kw) -> BuildOptions:
    return BuildOptions(kind="movielens", data=data, k_core=3, **kw)


@pytest.fixture
def built(store, settings):
    summary = build(store, settings, _opts())
    return store, settings, summary


def test_every_label_and_type_is_populated(built) -> None:
    _, _, summary = built
    counts = summary.counts
    for label in ("User", "Item", "Feature"):
        assert counts["nodes"].get(label, 0) > 0, label
    for rel in ("INTERACTED", "CO_OCCURS", "HAS_FEATURE"):
        assert counts["relationships"].get(rel, 0) > 0, rel
    assert counts["nodes"]["Item"] == 200
    assert counts["nodes"]["User"] == 45


def test_every_item_has_a_384d_embedding(built) -> None:
    store, _, _ = built
    rows = store.execute("MATCH (i:Item) RETURN i.id AS id, i.emb AS emb", read_only=True)
    assert len(rows) == 200
    assert all(r["emb"] is not None and len(r["emb"]) == 384 for r in rows)
    # the vector index answers: an item's own vector is its nearest neighbour
    hits = store.knn("Item", "emb", rows[0]["emb"], 3)
    assert hits[0][0] == rows[0]["id"]


def test_features_and_titles(built) -> None:
    store, _, _ = built
    rows = store.execute(
        "MATCH (i:Item {id: '1'})-[:HAS_FEATURE]->(f:Feature) RETURN i.title AS t, collect(f.id) AS fs",
        read_only=True)
    assert rows[0]["t"] == "Toy Story"
    assert {"genre:Animation", "genre:Comedy", "year:1995"} <= set(rows[0]["fs"])


def test_rebuild_gives_identical_counts_and_uses_the_cache(built) -> None:
    store, settings, first = built
    second = build(store, settings, _opts())
    assert second.counts == first.counts
    assert second.embeddings_from_cache == second.embedded == 200


def test_leakage_guard_no_test_interaction_in_graph(built) -> None:
    store, settings, _ = built
    split = load_split(settings)
    assert len(split.test) and len(split.valid)
    edges = store.execute(
        "MATCH (u:User)-[r:INTERACTED]->(i:Item) RETURN u.id AS u, i.id AS i, r.last_ts AS last",
        read_only=True)
    in_graph = {(r["u"], r["i"]) for r in edges}
    held_out = set(zip(split.test["user"].astype(str), split.test["item"].astype(str)))
    held_out |= set(zip(split.valid["user"].astype(str), split.valid["item"].astype(str)))
    assert not in_graph & held_out
    assert in_graph == set(zip(split.train["user"].astype(str), split.train["item"].astype(str)))
    # nothing in the graph is as late as a user's held-out period
    first_heldout = split.valid.groupby("user")["ts"].min().to_dict()
    for r in edges:
        if r["u"] in first_heldout:
            assert r["last"] < first_heldout[r["u"]]


def test_killed_build_resumes_to_the_same_counts(store, settings, monkeypatch) -> None:
    clean = build(store, settings, _opts(embeddings=False)).counts
    store.clear()

    original = GraphStore.upsert_relationships
    calls = {"n": 0}

    def dying(self, rel_type, rows, **kw):
        if rel_type == "HAS_FEATURE":
            rows = list(rows)
            original(self, rel_type, rows[: len(rows) // 2], **kw)
            raise KeyboardInterrupt("killed half-way")
        calls["n"] += 1
        return original(self, rel_type, rows, **kw)

    monkeypatch.setattr(GraphStore, "upsert_relationships", dying)
    with pytest.raises(KeyboardInterrupt):
        build(store, settings, _opts(embeddings=False))
    monkeypatch.setattr(GraphStore, "upsert_relationships", original)
    assert store.counts() != clean
    assert build(store, settings, _opts(embeddings=False)).counts == clean


def test_a_first_build_creates_what_a_rebuild_merges(store, settings, monkeypatch) -> None:
    """Into an empty graph the distinct-row types are CREATEd; a second build MERGEs everything,
    and both end with the same relationships and properties."""
    seen: list[tuple[str, bool]] = []
    original = GraphStore.upsert_relationships

    def spy(self, rel_type, rows, **kw):
        seen.append((rel_type, kw.get("fresh", False)))
        return original(self, rel_type, rows, **kw)

    monkeypatch.setattr(GraphStore, "upsert_relationships", spy)
    query = ("MATCH (u:User)-[r:INTERACTED]->(i:Item) RETURN u.id AS u, i.id AS i, r.count AS c, r.rating AS r "
             "ORDER BY u, i")
    first = build(store, settings, _opts(embeddings=False)).counts
    created = store.execute(query)
    assert dict(seen) == {"INTERACTED": True, "HAS_FEATURE": False, "CO_OCCURS": True}
    seen.clear()
    assert build(store, settings, _opts(embeddings=False)).counts == first
    assert not any(fresh for _, fresh in seen) and store.execute(query) == created


def test_a_different_build_needs_fresh(built, tmp_path) -> None:
    from kgrec.errors import ConfigError

    store, settings, _ = built
    other = tmp_path / "ml"
    other.mkdir()
    shutil.copy(FIXTURE / "movies.csv", other / "movies.csv")
    lines = (FIXTURE / "ratings.csv").read_text().splitlines()
    (other / "ratings.csv").write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    with pytest.raises(ConfigError, match="--fresh"):
        build(store, settings, _opts(other, embeddings=False))
    summary = build(store, settings, _opts(other, embeddings=False, fresh=True))
    assert summary.counts["nodes"]["User"] < 45


def test_malformed_lines_are_counted_with_file_and_line(store, settings, tmp_path) -> None:
    from kgrec.errors import DataError

    bad = tmp_path / "ml"
    bad.mkdir()
    shutil.copy(FIXTURE / "movies.csv", bad / "movies.csv")
    lines = (FIXTURE / "ratings.csv").read_text().splitlines()
    lines.insert(3, "1,2,not-a-rating,123")
    (bad / "ratings.csv").write_text("\n".join(lines) + "\n")
    summary = build(store, settings, _opts(bad, embeddings=False))
    assert summary.malformed == 1
    assert "ratings.csv:4" in summary.malformed_examples[0]
    with pytest.raises(DataError, match="ratings.csv:4"):
        build(store, settings, _opts(bad, embeddings=False, strict=True))


def test_build_keeps_a_copy_of_item_emb_for_the_training_stages(built) -> None:
    """Training reads the build's copy instead of streaming every vector out of the graph; it
    equals the graph's vectors, and a build without embeddings removes it."""
    import numpy as np

    from kgrec.kg.artefacts import load_item_embeddings

    store, settings, _ = built
    ids, vectors = load_item_embeddings(settings)
    graph = store.stream_nodes("Item", ["emb"])
    by_id = dict(zip(graph.ids, graph.properties["emb"], strict=True))
    assert sorted(ids) == sorted(by_id) and vectors.shape == (200, 384)
    np.testing.assert_allclose(vectors, np.asarray([by_id[i] for i in ids]), atol=1e-6)
    build(store, settings, _opts(embeddings=False))
    assert load_item_embeddings(settings) is None
