"""RecBole knowledge-graph atomic files (``.link`` + ``.kg``) into Entity nodes and typed edges."""

from __future__ import annotations

from pathlib import Path

import pytest

from kgrec.kg.build import BuildOptions, build
from kgrec.kg.loaders import load_recbole
from kgrec.kg.loaders.recbole import relation_type

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "recbole-kg"


@pytest.mark.parametrize("relation, expected", [
    ("film.film.directed_by", "DIRECTOR"), ("dbo:starring", "STARRING"), ("film.film.music", "MUSIC_COMPOSER"),
    ("book.written_work.author", "AUTHOR"), ("dbo:writer", "WRITER"), ("film.film.genre", "GENRE"),
    ("film.film.prequel", "PREVIOUS_WORK"), ("film.film.sequel", "SUBSEQUENT_WORK"),
    ("http://purl.org/dc/terms/subject", "SUBJECT"), ("dbo:distributor", None), ("dbo:cinematography", None),
])
def test_relation_names_map_onto_the_allow_list(relation, expected) -> None:
    assert relation_type(relation) == expected


def test_loader_reads_link_and_kg() -> None:
    ds = load_recbole(FIXTURE)
    g = ds.graph
    assert g is not None and ds.report.malformed == 0
    assert len(g.links) == 115 and g.links["entity"].str.startswith("recbole:ml-mini/").all()
    assert set(g.triples["rel_type"]) == {"DIRECTOR", "STARRING", "MUSIC_COMPOSER", "WRITER"}
    assert g.skipped == {"dbo:distributor": 126, "dbo:cinematography": 97}
    heat = g.links.loc[g.links["item"] == "6", "entity"].item()
    assert heat == "recbole:ml-mini/Heat_(1995_film)" and g.labels[heat] == "Heat (1995 film)"


def test_without_link_file_there_is_no_graph(tmp_path) -> None:
    for name in ("ml-mini.inter", "ml-mini.item", "ml-mini.kg"):
        (tmp_path / name).write_bytes((FIXTURE / name).read_bytes())
    assert load_recbole(tmp_path).graph is None


def test_bad_kg_line_names_file_and_line(tmp_path) -> None:
    for name in ("ml-mini.inter", "ml-mini.item", "ml-mini.link"):
        (tmp_path / name).write_bytes((FIXTURE / name).read_bytes())
    (tmp_path / "ml-mini.kg").write_text("head_id:token\trelation_id:token\ttail_id:token\nA\tdbo:director\n")
    from kgrec.errors import DataError

    with pytest.raises(DataError, match=r"ml-mini.kg:2"):
        load_recbole(tmp_path, strict=True)


def test_build_writes_entities_and_typed_edges_under_the_allow_list(store, settings) -> None:
    summary = build(store, settings, BuildOptions(kind="recbole", data=FIXTURE, k_core=3, embeddings=False))
    nodes, rels = summary.counts["nodes"], summary.counts["relationships"]
    assert nodes["Entity"] > 100 and rels["SAME_AS"] == summary.written["SAME_AS"] > 0
    assert {"DIRECTOR", "STARRING", "MUSIC_COMPOSER", "WRITER"} <= set(rels)
    assert summary.relations_skipped == {"dbo:distributor": 126, "dbo:cinematography": 97}
    people = store.execute(
        "MATCH (:Item)-[:SAME_AS]->(:Entity)-[:DIRECTOR]->(p:Entity) RETURN DISTINCT p.type AS t, p.label AS l",
        read_only=True)
    assert people and {r["t"] for r in people} == {"Person"} and not any("_" in r["l"] for r in people)
    # the UIEIU meta-path has data: users reach one another through shared entities
    n = store.execute(
        "MATCH (u:User)-[:INTERACTED]->(:Item)-[:SAME_AS]->(:Entity)-[]->(e:Entity)"
        "<-[]-(:Entity)<-[:SAME_AS]-(:Item)<-[:INTERACTED]-(v:User) WHERE u.id < v.id "
        "RETURN count(DISTINCT [u.id, v.id]) AS n", read_only=True)[0]["n"]
    assert n > 0
