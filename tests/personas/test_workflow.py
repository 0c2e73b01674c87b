"""Persona training against a real FalkorDB graph (ml-mini with 384-d item embeddings and a few
seeded DBpedia entities), write-back, groups, leakage guard and the inductive path."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from kgrec.errors import ConfigError, ModelError, NotFoundError
from kgrec.kg.artefacts import load_split
from kgrec.kg.build import BuildOptions, build
from kgrec.personas.data import GraphArrays
from kgrec.personas.saved import load_inductive
from kgrec.personas.workflow import (
    ARRAYS_FILE,
    HDGIConfig,
    model_dir,
    nearest_users,
    plot_personas,
    show_personas,
    train_personas,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "ml-mini"
RES = "http://dbpedia.org/resource/"
TRAIN = {"epochs": 5, "hidden": 16, "patience": 5, "k": 3, "seed": 0}


def _seed_entities(store, split) -> None:
    """Two directors, each SAME_AS-linked to the 8 most popular items of one half."""
    pop = split.train["item"].astype(str).value_counts().index.tolist()[:16]
    ents = [{"key": f"{RES}Film_{i}", "props": {"label": f"Film {i}", "type": "Film"}} for i in pop]
    ents += [{"key": f"{RES}Director_{d}", "props": {"label": f"Director {d}", "type": "Person"}}
             for d in "AB"]
    store.upsert_nodes("Entity", ents)
    store.upsert_relationships("SAME_AS", [
        {"src": i, "dst": f"{RES}Film_{i}", "props": {"method": "mapping", "confidence": 1.0}} for i in pop])
    store.upsert_relationships("DIRECTOR", [
        {"src": f"{RES}Film_{i}", "dst": f"{RES}Director_{'AB'[n % 2]}", "props": {}}
        for n, i in enumerate(pop)])


@pytest.fixture(scope="module")
def trained(module_backend, request, embedded_home, shared_cache, tmp_path_factory, make_backend_settings):
    """One graph for the module and backend (building with embeddings is the slow part); on
    Neo4j the projection goes through GDS."""
    import torch

    from kgrec.kg.store import open_store

    torch.set_num_threads(1)
    settings = make_backend_settings(module_backend, request, embedded_home, shared_cache,
                            tmp_path_factory.mktemp("persona-home") / "home")
    store = open_store(settings)
    try:
        # embeddings: seeded 384-d vectors through the store's own vector write (loading MiniLM
        # would cost most of this module's time budget; test_build covers the real encoder)
        build(store, settings, BuildOptions(kind="movielens", data=FIXTURE, k_core=3, embeddings=False))
        items = [r["id"] for r in store.execute("MATCH (i:Item) RETURN i.id AS id ORDER BY id")]
        emb = np.random.default_rng(0).normal(size=(len(items), 384)).astype(np.float32)
        store.write_vectors("Item", "emb", items, emb)
        split = load_split(settings)
        _seed_entities(store, split)
        summary = train_personas(store, settings, **TRAIN)
        yield store, settings, summary, split
    finally:
        store.execute("MATCH (n) DETACH DELETE n")
        store.close()


def test_summary_and_all_metapaths_used(trained) -> None:
    _, settings, s, _ = trained
    assert s.metapaths == ["UIU", "UIFIU", "UIEIU"] and not s.dropped
    assert s.n_users == 45 and s.dim == 16 and s.encoder == "gcn"
    assert 1 <= len(s.losses) <= 5 and 0 <= s.best_epoch < len(s.losses)
    assert set(s.seconds) == {"stream", "metapaths", "features", "train", "write"}
    assert sum(g["size"] for g in s.groups) == 45
    d = s.to_dict()
    assert json.loads(json.dumps(d))["version"] == s.version
    assert s.version.split("-")[0] == json.loads((model_dir(settings) / "config.json").read_text())["model_hash"]


def test_persona_vectors_written_back(trained) -> None:
    store, _, s, _ = trained
    rows = store.execute(
        "MATCH (u:User) WHERE u.persona IS NOT NULL "
        "RETURN u.id AS id, u.persona AS v, u.persona_version AS version", read_only=True)
    assert len(rows) == s.n_users == 45
    assert all(len(r["v"]) == 16 and r["version"] == s.version for r in rows)
    # the vector index answers: a user's own vector is its nearest neighbour
    for r in rows[:3]:
        hits = store.knn("User", "persona", r["v"], 5)
        assert hits[0][0] == r["id"] and hits[0][1] == pytest.approx(1.0, abs=1e-4)


def test_persona_groups(trained) -> None:
    store, _, s, _ = trained
    rows = store.execute(
        "MATCH (p:Persona) OPTIONAL MATCH (u:User)-[:HAS_PERSONA]->(p) "
        "RETURN p.id AS id, p.size AS size, p.label AS label, p.metapaths AS mp, p.attention AS att, "
        "p.persona_version AS version, p.top_people AS people, count(u) AS members", read_only=True)
    assert sorted(r["id"] for r in rows) == [f"p{i}" for i in range(len(rows))] and len(rows) == 3
    assert sum(r["size"] for r in rows) == 45
    assert all(r["size"] == r["members"] and r["version"] == s.version for r in rows)
    assert all(r["mp"] == s.metapaths and len(r["att"]) == 3 and r["label"] for r in rows)
    # the seeded DBpedia directors are people an analyst can read, kept on the node for Browser
    assert {p for r in rows for p in r["people"]} <= {"Director A", "Director B"}
    table = show_personas(store)
    assert [r["persona"] for r in table] == [g["id"] for g in s.groups]
    assert set(table[0]) == {"persona", "size", "label", "top_genres", "top_people", "top_items"}
    assert all(len(r["top_items"]) <= 3 for r in table)
    n_edges = store.execute("MATCH (:User)-[r:HAS_PERSONA]->(:Persona) RETURN count(r) AS n")[0]["n"]
    assert n_edges == 45
    # the browser query over the attention reads what was written
    att = store.run("browser/metapath_attention", read_only=True)
    assert {r["metapath"] for r in att} == {"UIU", "UIFIU", "UIEIU"}
    # issue 20: one size-class label per group (Browser sizes nodes by label), the membership
    # weight (cosine to the group's centre, 3 digits) on every edge, highest for typical members
    sizes = store.execute("MATCH (p:Persona) RETURN p.id AS id, p.size AS n, labels(p) AS labels", read_only=True)
    for r in sizes:
        extra = set(r["labels"]) - {"Persona"}
        assert len(extra) == 1 and extra <= {"PersonaXL", "PersonaL", "PersonaM", "PersonaS"}, r
        share = r["n"] / 45
        assert extra == {"PersonaXL" if share >= .2 else "PersonaL" if share >= .1 else
                         "PersonaM" if share >= .05 else "PersonaS"}
    weights = [r["w"] for r in store.execute("MATCH ()-[r:HAS_PERSONA]->() RETURN r.weight AS w", read_only=True)]
    assert len(weights) == 45 and all(-1 <= w <= 1 and round(w, 3) == w for w in weights)
    assert len(set(weights)) > 1


def test_nearest_users_through_the_vector_index(trained) -> None:
    store, _, s, _ = trained
    user = store.execute("MATCH (u:User) RETURN u.id AS id ORDER BY id LIMIT 1")[0]["id"]
    rows = nearest_users(store, user, 5)
    assert len(rows) == 5 and user not in {r["user"] for r in rows}
    sims = [r["similarity"] for r in rows]
    assert sims == sorted(sims, reverse=True) and all(-1.0 <= v <= 1.0 for v in sims)
    assert all(r["persona"] in {g["id"] for g in s.groups} and r["items"] > 0 for r in rows)
    with pytest.raises(NotFoundError):
        nearest_users(store, "no-such-user", 3)


@pytest.fixture(scope="module")
def persona_map_files(trained, tmp_path_factory) -> tuple[Path, Path]:
    """``kgrec personas plot --out map.png --html map.html`` (PCA: t-SNE is the slow part)."""
    store, settings, _, _ = trained
    out = tmp_path_factory.mktemp("persona-map")
    png, page = plot_personas(store, settings, out=out / "map.png", html=out / "map.html", method="pca")
    return png, page


def _map_data(page: Path) -> dict:
    block = re.search(r'<script type="application/json" id="persona-data">(.*?)</script>',
                      page.read_text(encoding="utf-8"), re.DOTALL)
    assert block
    return json.loads(block.group(1))


def test_persona_map_png_and_html_from_the_graph(trained, persona_map_files, tmp_path) -> None:
    store, settings, s, _ = trained
    png, page = persona_map_files
    assert png.read_bytes()[:4] == b"\x89PNG" and page.suffix == ".html"
    data = _map_data(page)
    users = [p[3] for p in data["points"]]
    assert len(users) == len(set(users)) == s.n_users == 45
    group_of = {r["u"]: r["p"] for r in store.execute(
        "MATCH (u:User)-[:HAS_PERSONA]->(p:Persona) RETURN u.id AS u, p.id AS p", read_only=True)}
    assert all(data["groups"][p[2]]["id"] == group_of[p[3]] for p in data["points"])
    table = {r["persona"]: r for r in show_personas(store)}
    assert sorted(g["id"] for g in data["groups"]) == sorted(table)
    assert all(g["label"] == table[g["id"]]["label"] and g["shown"] == g["size"] == table[g["id"]]["size"]
               for g in data["groups"])
    # top items: titles of the user's highest-rated training items, the most popular first among ties
    rows = store.execute("MATCH (u:User)-[r:INTERACTED]->(i:Item) "
                         "OPTIONAL MATCH (i)<-[:INTERACTED]-(o:User) "
                         "RETURN u.id AS u, i.title AS t, r.rating AS rating, count(o) AS pop",
                         read_only=True)
    seen: dict[str, dict[str, tuple[float, int]]] = {}
    for r in rows:
        seen.setdefault(r["u"], {})[r["t"]] = (r["rating"], r["pop"])
    for p in data["points"]:
        shown = [seen[p[3]][data["titles"][t]] for t in p[4]]
        assert len(shown) == min(3, len(seen[p[3]])) and shown == sorted(shown, key=lambda v: (-v[0], -v[1]))
        assert [v[0] for v in shown] == sorted((v[0] for v in seen[p[3]].values()), reverse=True)[:3]
    # --html alone writes no PNG
    only = tmp_path / "only.html"
    assert plot_personas(store, settings, html=only, method="pca") == [only] and only.is_file()
    assert not (settings.reports_dir / "personas.png").exists()


def test_persona_map_from_the_graph_renders_in_chromium(persona_map_files, chromium) -> None:
    data = _map_data(persona_map_files[1])
    chromium.open(persona_map_files[1].as_uri(), ready="document.body && document.body.dataset.ready === '1'")
    assert chromium.js("document.querySelectorAll('#points circle.pt').length") == 45
    assert chromium.js("[...document.querySelectorAll('#legend li')].map(li => li.dataset.group)") == \
        [g["id"] for g in data["groups"]]
    last = data["points"][-1]  # drawn last, so on top of any point it overlaps
    x, y = chromium.js("(() => { const r = document.querySelector('circle[data-n=\"44\"]')"
                       ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()")
    chromium.mouse("mouseMoved", x, y)
    tip = chromium.js("document.getElementById('tip').innerText").splitlines()
    group = data["groups"][last[2]]
    assert tip[:2] == [f"user {last[3]}", f"{group['id']} \u00b7 {group['label']}"]
    assert tip[3:] == [data["titles"][t] for t in last[4]]


def test_attention_rounded_and_on_the_groups(trained) -> None:
    store, _, s, _ = trained
    assert list(s.attention) == ["UIU", "UIFIU", "UIEIU"]
    assert sum(s.attention.values()) == pytest.approx(1.0, abs=1e-3)
    assert all(round(v, 4) == v for v in s.attention.values())
    att = {r["metapath"]: r["weight"] for r in store.run("browser/metapath_attention", read_only=True)}
    assert att == pytest.approx(s.attention, abs=5e-4)  # the Browser query shows 3 digits


def test_leakage_guard_training_pairs_are_the_train_split(trained) -> None:
    _, settings, _, split = trained
    arrays = GraphArrays.load(model_dir(settings) / ARRAYS_FILE)
    pairs = {(arrays.user_ids[u], arrays.item_ids[i]) for u, i in arrays.user_item.T.tolist()}
    held_out = set(zip(split.test["user"].astype(str), split.test["item"].astype(str)))
    held_out |= set(zip(split.valid["user"].astype(str), split.valid["item"].astype(str)))
    assert held_out and not pairs & held_out
    assert pairs == set(zip(split.train["user"].astype(str), split.train["item"].astype(str)))


def test_inductive_session(trained) -> None:
    store, settings, s, split = trained
    infer = load_inductive(store, settings)
    items = split.test["item"].astype(str).unique().tolist()[:4]
    v = infer(items)
    assert v.shape == (s.dim,) and np.isfinite(v).all() and np.abs(v).sum() > 0
    np.testing.assert_allclose(infer(items), v, rtol=1e-6)  # deterministic
    with pytest.raises(NotFoundError, match="no-such-item"):
        infer([items[0], "no-such-item"])


def test_retrain_replaces_personas(trained) -> None:
    store, settings, first, _ = trained
    second = train_personas(store, settings, **{**TRAIN, "k": 2, "metapaths": ("UIU", "UIFIU"),
                                                "hidden": 8, "seed": 1})
    assert second.version != first.version
    rows = store.execute("MATCH (p:Persona) RETURN p.id AS id, p.persona_version AS v, p.size AS n")
    assert sorted(r["id"] for r in rows) == ["p0", "p1"] and {r["v"] for r in rows} == {second.version}
    assert sum(r["n"] for r in rows) == 45
    assert store.execute("MATCH ()-[r:HAS_PERSONA]->() RETURN count(r) AS n")[0]["n"] == 45
    users = store.execute("MATCH (u:User) RETURN u.persona AS p, u.persona_version AS v")
    assert {(len(r["p"]), r["v"]) for r in users} == {(8, second.version)}
    assert list(second.attention) == ["UIU", "UIFIU"]
    assert load_inductive(store, settings)(["1"]).shape == (8,)


def test_metapath_without_entities_is_dropped_and_stale_model_refused(trained) -> None:
    store, settings, _, _ = trained
    store.execute("MATCH ()-[r:SAME_AS]->() DELETE r")
    s = train_personas(store, settings, **{**TRAIN, "epochs": 2})
    assert s.metapaths == ["UIU", "UIFIU"] and "UIEIU" in s.dropped
    assert any("UIEIU" in n for n in s.notes)
    # the graph now says another model wrote its personas → refused
    store.execute("MATCH (u:User) SET u.persona_version = 'other-model'")
    with pytest.raises(ModelError, match="another model"):
        load_inductive(store, settings)


def test_objective_weights_default_to_plain_dgi_and_are_validated() -> None:
    assert (HDGIConfig().var_weight, HDGIConfig().cov_weight) == (0.0, 0.0)
    with pytest.raises(ConfigError):
        HDGIConfig(var_weight=-1.0)
    with pytest.raises(ConfigError):
        train_personas(None, None, cov_weight=-0.5)  # type: ignore[arg-type]  # refused before any I/O
