"""`kgrec build --bulk`: the importer's CSV files (no server), the refusals, and the same tiny
builds loaded both ways into a local Neo4j of its own, compared node by node and relationship by
relationship (every label, type, property value and property type)."""

from __future__ import annotations

import csv
import math
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kgrec.errors import ConfigError, DataError
from kgrec.kg import schema
from kgrec.kg.build import BuildOptions, build
from kgrec.kg.bulk_import import ImportWriter, csv_type, local_server, quote
from kgrec.settings import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _read(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


# --- the CSV writer, no server ---------------------------------------------------------------------
def test_cells_are_quoted_and_typed(tmp_path) -> None:
    title = 'Dune, "the" novel\nPart 1'
    with ImportWriter(tmp_path / "csv") as w:
        w.upsert_nodes("Item", [{"key": "i1", "props": {"title": title, "year": 1965, "score": 0.1,
                                                        "flag": True, "tags": ["a,b", 'q"x']}}])
        w.upsert_nodes("User", [{"key": "u1", "props": {}}])
        w.upsert_relationships("INTERACTED", [{"src": "u1", "dst": "i1", "props": {"count": 2, "rating": 4.5}}])
    items, users, rels = w.files
    assert items.path.read_text(encoding="utf-8").startswith(
        'id:ID(Item),:LABEL,title,year:long,score:double,flag:boolean,tags:string[]\n'
        '"i1",Item,"Dune, ""the"" novel\nPart 1",1965,0.1,true,"a,b\x1fq""x"\n')
    assert _read(items.path)[1] == ["i1", "Item", title, "1965", "0.1", "true", 'a,b\x1fq"x']
    assert _read(users.path) == [["id:ID(User)", ":LABEL"], ["u1", "User"]]
    assert _read(rels.path) == [[":START_ID(User)", ":END_ID(Item)", ":TYPE", "count:long", "rating:double"],
                                ["u1", "i1", "INTERACTED", "2", "4.5"]]
    args = w.arguments()
    assert args[:3] == [f"--nodes={items.path.name}", f"--nodes={users.path.name}",
                        f"--relationships={rels.path.name}"]
    # only the file with a line break inside a value is parsed as multi-line
    assert f"--multiline-fields={items.path.name}" in args and "--multiline-fields-format=v2" in args


def test_one_file_per_property_shape_so_absent_stays_absent_and_types_stay(tmp_path) -> None:
    with ImportWriter(tmp_path / "csv") as w:
        w.upsert_nodes("Item", [{"key": "a", "props": {"title": "A", "year": 1999}},
                                {"key": "b", "props": {"title": "B", "year": None}},  # absent, not ""
                                {"key": "c", "props": {"title": "", "year": 2000}},  # an empty string stays one
                                {"key": "d", "props": {"title": "D", "year": 2001.5}}])  # a float beside ints
    headers = {tuple(_read(f.path)[0]): _read(f.path)[1:] for f in w.files}
    assert headers == {
        ("id:ID(Item)", ":LABEL", "title", "year:long"): [["a", "Item", "A", "1999"], ["c", "Item", "", "2000"]],
        ("id:ID(Item)", ":LABEL", "title"): [["b", "Item", "B"]],
        ("id:ID(Item)", ":LABEL", "title", "year:double"): [["d", "Item", "D", "2001.5"]]}
    assert '"c",Item,"",2000' in w.files[0].path.read_text()
    assert not any(a.startswith("--multiline") for a in w.arguments())


def test_numbers_read_back_as_the_same_value() -> None:
    from kgrec.kg.bulk_import import cell_writer

    double = cell_writer("double")
    for x in (0.1, 1 / 3, 1e-300, 1.7976931348623157e308, -0.0, 2.5e16):
        assert float(double(x)) == x and double(x) == repr(x)
    assert [double(x) for x in (math.nan, math.inf, -math.inf)] == ["NaN", "Infinity", "-Infinity"]
    assert cell_writer("long")(2 ** 63 - 1) == "9223372036854775807"
    with pytest.raises(DataError, match="64-bit"):
        cell_writer("long")(2 ** 63)
    assert [csv_type(v) for v in ("x", True, 3, 3.0, [1, 2], ["a"], (0.5,))] == [
        "string", "boolean", "long", "double", "long[]", "string[]", "double[]"]
    for bad in ([], [1, "a"], [[1]], {"a": 1}, object()):
        with pytest.raises(DataError):
            csv_type(bad)
    assert quote('a "b"') == '"a ""b"""'


def test_rows_of_numbers_take_one_format_and_specials_still_come_out_right(tmp_path) -> None:
    import numpy as np

    with ImportWriter(tmp_path / "csv") as w:
        w.upsert_nodes("Item", [{"key": k, "props": {}} for k in "abcdef"])
        w.upsert_relationships("CO_OCCURS", [
            {"src": "a", "dst": "b", "props": {"weight": 0.1}}, {"src": "b", "dst": "a", "props": {"weight": math.nan}},
            {"src": "a", "dst": "c", "props": {"weight": -math.inf}},
            {"src": "a", "dst": "d", "props": {"weight": np.float64(2.5)}}])  # a float subclass: per cell
        w.upsert_relationships("INTERACTED", [])
        with pytest.raises(DataError, match="64-bit"):
            w.upsert_relationships("CO_OCCURS", [{"src": "a", "dst": "e", "props": {"weight": 2 ** 63}}])
    co = next(f for f in w.files if f.name == "CO_OCCURS" and f.header[-1] == "weight:double")
    assert co.numeric == "%r"
    assert [r[-1] for r in _read(co.path)[1:]] == ["0.1", "NaN", "-Infinity", "2.5"]


def test_duplicates_merge_as_merge_does_and_dangling_relationships_are_left_out(tmp_path) -> None:
    with ImportWriter(tmp_path / "csv") as w:
        assert w.upsert_nodes("User", [{"key": "u", "props": {}}] * 2) == 2  # rows taken, as the store counts
        w.upsert_nodes("Item", [{"key": "i", "props": {"title": "T"}}, {"key": "i", "props": {"title": "T"}}])
        rows = [{"src": "u", "dst": "i", "props": {"count": 1}}, {"src": "u", "dst": "i", "props": {"count": 1}},
                {"src": "u", "dst": "missing", "props": {}}, {"src": "nobody", "dst": "i", "props": {}}]
        assert w.upsert_relationships("INTERACTED", rows) == 4
        assert w.rows("nodes") == 2 and w.rows("relationships") == 1 and w.dangling == {"INTERACTED": 2}
        with pytest.raises(DataError, match="twice with different properties"):
            w.upsert_nodes("Item", [{"key": "i", "props": {"title": "other"}}])
        with pytest.raises(DataError, match="twice with different properties"):
            w.upsert_relationships("INTERACTED", [{"src": "u", "dst": "i", "props": {"count": 2}}])


def test_keys_labels_and_property_names_are_checked(tmp_path) -> None:
    with ImportWriter(tmp_path / "csv") as w:
        for key in ("", " padded", 7):
            with pytest.raises(DataError, match="invalid User key"):
                w.upsert_nodes("User", [{"key": key, "props": {}}])
        with pytest.raises(ConfigError, match="unknown node label"):
            w.upsert_nodes("Nope", [{"key": "x", "props": {}}])
        with pytest.raises(ConfigError, match="unknown relationship type"):
            w.upsert_relationships("NOPE", [])
        with pytest.raises(ConfigError, match="invalid property name"):
            w.upsert_nodes("Item", [{"key": "x", "props": {"a:ID(Item)": 1}}])
        with pytest.raises(DataError, match="rewrite the key"):
            w.upsert_nodes("Item", [{"key": "x", "props": {"id": "y"}}])


def test_the_directory_is_emptied_first(tmp_path) -> None:
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "stale.csv").write_text("old")
    with ImportWriter(tmp_path / "csv"):
        pass
    assert not (tmp_path / "csv" / "stale.csv").exists()


# --- refusals ------------------------------------------------------------------------------------------
def test_bulk_refuses_falkordb_and_a_neo4j_that_is_not_this_homes(tmp_path) -> None:
    with pytest.raises(ConfigError, match="the store is FalkorDB"):
        local_server(Settings(home=tmp_path))
    with pytest.raises(ConfigError, match="the store is FalkorDB"):
        local_server(Settings(home=tmp_path, graph_uri="falkordb://127.0.0.1:6379"))
    with pytest.raises(ConfigError, match=r"neo4j://db\.example\.com:7687 is not it: none runs there"):
        local_server(Settings(home=tmp_path, graph_uri="neo4j://db.example.com:7687"))


def test_build_bulk_on_falkordb_is_refused_before_loading(falkordb_store, falkordb_settings) -> None:
    opts = BuildOptions(kind="movielens", data=FIXTURES / "ml-mini", k_core=3, embeddings=False, bulk=True)
    with pytest.raises(ConfigError, match="--bulk"):
        build(falkordb_store, falkordb_settings, opts)
    assert not (falkordb_settings.home / "split").exists()


def test_cli_bulk_refusal_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys) -> None:
    from kgrec.cli import main

    monkeypatch.delenv("KGREC_GRAPH_URI", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setattr(sys, "argv", ["kgrec", "build", "-d", "movielens", "--data", str(FIXTURES / "ml-mini"),
                                      "--home", str(tmp_path / "home"), "--bulk"])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --bulk imports into the local Neo4j") and "\n" not in err
    assert not (tmp_path / "home" / "falkordb").exists()  # refused before the embedded store was started


# --- both ways into a local Neo4j of its own -------------------------------------------------------------
def _neo4j_off() -> str | None:
    from kgrec.kg import neo4j_server

    if os.environ.get("KGREC_TEST_NEO4J") == "0":
        return "KGREC_TEST_NEO4J=0"
    return None if neo4j_server.assembled() else "the local Neo4j is not assembled (run `make neo4j`)"


@pytest.fixture(scope="module")
def bulk_home(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> Iterator[tuple[Path, Any]]:
    """A home with its own local Neo4j (bulk import stops and restarts it); stopped at the end."""
    why = _neo4j_off()
    if why:
        pytest.skip(why)
    from kgrec.kg import neo4j_server

    home = tmp_path_factory.mktemp("bulk-home")
    (home / "cache").symlink_to(shared_cache, target_is_directory=True)
    server = neo4j_server.start(home / "neo4j", bolt_port=neo4j_server.free_port(),
                                http_port=neo4j_server.free_port(), heap="1g", pagecache="256m")
    try:
        yield home, server
    finally:
        neo4j_server.stop(home / "neo4j")


@pytest.fixture
def bulk_store(bulk_home) -> Iterator[tuple[Any, Settings]]:
    from kgrec.kg.store import open_store

    home, server = bulk_home
    settings = Settings(home=home, graph_uri=server.bolt_uri, neo4j_password=server.password)
    with open_store(settings) as store:
        yield store, settings


def _typed(props: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Each value with its type (1 and 1.0 differ; NaN equals NaN through repr)."""
    return {k: (type(v).__name__, repr(v)) for k, v in props.items()}


def snapshot(store) -> dict[str, Any]:
    """Every node of every label and every relationship of every type, with typed properties; the
    constraints and indexes by name."""
    out: dict[str, Any] = {}
    for label, key in schema.NODE_KEYS.items():
        rows = store.execute(f"MATCH (n:{label}) RETURN n.{key} AS k, labels(n) AS l, properties(n) AS p",
                             read_only=True)
        out[label] = {r["k"]: (r["l"], _typed(r["p"])) for r in rows}
        assert len(out[label]) == len(rows), f"duplicate {label} keys"
    for rel, (a, b) in schema.REL_ENDPOINTS.items():
        rows = store.execute(f"MATCH (x:{a})-[r:{rel}]->(y:{b}) RETURN x.{schema.key_of(a)} AS s, "
                             f"y.{schema.key_of(b)} AS d, properties(r) AS p", read_only=True)
        out[rel] = sorted((r["s"], r["d"], sorted(_typed(r["p"]).items())) for r in rows)  # parallel edges show
    out["all nodes"] = store.execute("MATCH (n) RETURN count(n) AS n", read_only=True)[0]["n"]
    out["all relationships"] = store.execute("MATCH ()-[r]->() RETURN count(r) AS n", read_only=True)[0]["n"]
    out["indexes"] = sorted((r["name"], r["type"], r["labelsOrTypes"], r["properties"]) for r in store.execute(
        "SHOW INDEXES YIELD name, type, labelsOrTypes, properties", read_only=True))
    return out


def _tricky_movielens(tmp_path: Path) -> Path:
    """ml-mini with titles that hold commas, quotes, line breaks, a backslash, non-ASCII text, and
    one without a year (an Item without ``year``)."""
    data = tmp_path / "ml-tricky"
    data.mkdir()
    shutil.copy(FIXTURES / "ml-mini" / "ratings.csv", data / "ratings.csv")
    lines = (FIXTURES / "ml-mini" / "movies.csv").read_text().splitlines()
    swap = {"1,": '1,"Toy ""Story"", the\nfirst (1995)",', "2,": '2,"Jumanji \\ Am\u00e9lie \u2603\r\nsequel",',
            "6,": '6,"  Heat, again  (1995)",'}
    out = []
    for line in lines:
        key = next((k for k in swap if line.startswith(k)), None)
        out.append(swap[key] + line.rsplit(",", 1)[1] if key else line)
    (data / "movies.csv").write_text("\n".join(out) + "\n", encoding="utf-8")
    return data


@pytest.mark.neo4j
@pytest.mark.slow
@pytest.mark.parametrize("kind, data, embeddings", [
    ("recbole", "recbole-kg", False),  # Entity, SAME_AS and typed facts
    ("movielens", "tricky", True),  # awkward titles, features, Item.emb and its vector index
])
def test_bulk_build_equals_the_merge_build(bulk_store, tmp_path, kind, data, embeddings) -> None:
    from kgrec.kg import neo4j_server
    from kgrec.kg.artefacts import load_split, read_build_meta

    store, settings = bulk_store
    path = _tricky_movielens(tmp_path) if data == "tricky" else FIXTURES / data
    opts = {"kind": kind, "data": path, "k_core": 3, "embeddings": embeddings, "fresh": True}
    merged = build(store, settings, BuildOptions(**opts))
    want = snapshot(store)
    before = neo4j_server.find_running(settings.home / "neo4j")
    bulk = build(store, settings, BuildOptions(**opts, bulk=True))
    got = snapshot(store)
    for name in want:
        assert got[name] == want[name], name
    assert bulk.counts == merged.counts and bulk.written == merged.written
    assert bulk.relations_skipped == merged.relations_skipped and bulk.embedded == merged.embedded
    assert want["all nodes"] == sum(merged.counts["nodes"].values()) > 0
    assert {"bulk import", "bulk import (neo4j-admin)", "nodes", "relationships", "schema"} <= set(bulk.seconds)
    after = neo4j_server.find_running(settings.home / "neo4j")
    assert after.pid != before.pid and after.bolt_port == before.bolt_port  # restarted, same URI
    assert not (settings.home / "neo4j" / "import" / "kgrec-bulk").exists()
    assert read_build_meta(settings)["counts"] == bulk.counts and len(load_split(settings).train)
    if embeddings:
        assert any(i[1] == "VECTOR" for i in got["indexes"])
        assert got["Item"] and all(p.get("emb") for _, p in got["Item"].values())


def _tricky_rows() -> dict[str, list[dict[str, Any]]]:
    odd = 'i 5,"odd"'
    items = [
        {"key": "i1", "props": {"title": 'Dune, "the" novel\nPart 1', "year": 1965, "score": 0.1, "flag": True,
                                "tags": ["a,b", 'q"uote', "x;y"], "nums": [1, 2 ** 40], "ws": [0.5, -1e-300]}},
        {"key": "i2", "props": {"title": "", "year": None, "score": math.nan, "flag": False}},
        {"key": "i3", "props": {"title": "  spaced \\ back\r\nslash  ", "year": 2 ** 63 - 1, "score": math.inf,
                                "text": "Am\u00e9lie \u2603 \U0001d11e"}},
        {"key": "i4", "props": {"title": "x", "year": 1.5}},
        {"key": odd, "props": {}},
        {"key": "i1", "props": {"title": 'Dune, "the" novel\nPart 1', "year": 1965, "score": 0.1, "flag": True,
                                "tags": ["a,b", 'q"uote', "x;y"], "nums": [1, 2 ** 40], "ws": [0.5, -1e-300]}},
    ]
    interacted = [{"src": "u1", "dst": "i1", "props": {"count": 1, "rating": 4.5}},
                  {"src": "u1", "dst": "i2", "props": {"count": 2, "rating": None}},
                  {"src": "u2", "dst": odd, "props": {}},
                  {"src": "u1", "dst": "nope", "props": {"count": 1}},
                  {"src": "u1", "dst": "i1", "props": {"count": 1, "rating": 4.5}}]
    co = [{"src": "i1", "dst": "i2", "props": {"weight": 1.0}}, {"src": "i2", "dst": "i1", "props": {"weight": 2}}]
    return {"User": [{"key": "u1", "props": {}}, {"key": "u2", "props": {}}], "Item": items,
            "INTERACTED": interacted, "CO_OCCURS": co}


@pytest.mark.neo4j
@pytest.mark.slow
def test_awkward_values_import_as_merge_writes_them(bulk_store, bulk_home) -> None:
    """NaN and infinities, 64-bit longs, booleans, arrays of strings holding commas and quotes,
    empty strings, line breaks, non-BMP text, an int beside a float, absent values, duplicates,
    a dangling relationship: the import and MERGE agree on all of it."""
    from kgrec.kg.bulk_import import import_dir, import_files
    from kgrec.progress import NullProgress

    store, _ = bulk_store
    _, server = bulk_home
    rows = _tricky_rows()
    store.clear()
    store.ensure_schema()
    merged = {name: (store.upsert_nodes if name in schema.NODE_KEYS else store.upsert_relationships)(name, r)
              for name, r in rows.items()}
    want = snapshot(store)
    with ImportWriter(import_dir(server)) as w:
        written = {name: (w.upsert_nodes if name in schema.NODE_KEYS else w.upsert_relationships)(name, r)
                   for name, r in rows.items()}
    run = import_files(server, w, NullProgress())
    store.ensure_schema()
    got = snapshot(store)
    assert written == merged and run.imported["nodes"] == 7 and run.imported["relationships"] == 5
    for name in want.keys() - {"indexes"}:  # clear() keeps an earlier test's vector index; the import does not
        assert got[name] == want[name], name
    assert got["Item"]["i1"][1]["tags"] == ("list", repr(["a,b", 'q"uote', "x;y"]))
    assert got["Item"]["i4"][1]["year"] == ("float", "1.5") and got["Item"]["i3"][1]["year"][0] == "int"


@pytest.mark.neo4j
def test_a_non_empty_database_needs_fresh_and_nothing_is_stopped(bulk_store) -> None:
    from kgrec.kg import neo4j_server

    store, settings = bulk_store
    store.upsert_nodes("User", [{"key": "someone", "props": {}}])
    pid = neo4j_server.find_running(settings.home / "neo4j").pid
    opts = BuildOptions(kind="movielens", data=FIXTURES / "ml-mini", k_core=3, embeddings=False, bulk=True)
    with pytest.raises(ConfigError, match="rerun with --fresh"):
        build(store, settings, opts)
    assert neo4j_server.find_running(settings.home / "neo4j").pid == pid
    assert store.counts()["nodes"]["User"] >= 1


@pytest.mark.neo4j
def test_another_homes_neo4j_is_refused(bulk_home, tmp_path) -> None:
    from kgrec.kg.store import open_store

    _, server = bulk_home
    other = Settings(home=tmp_path, graph_uri=server.bolt_uri, neo4j_password=server.password)
    with open_store(other) as store, pytest.raises(ConfigError, match="is not it: none runs there"):
        build(store, other, BuildOptions(kind="movielens", data=FIXTURES / "ml-mini", bulk=True, fresh=True))


def test_a_server_started_before_sizes_were_kept_restarts_with_its_conf(tmp_path) -> None:
    from kgrec.kg.neo4j_server import LocalNeo4j
    from kgrec.kg.neo4j_server.admin_import import launch_sizes

    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "neo4j.conf").write_text("server.memory.pagecache.size=768m\n")
    old = LocalNeo4j(tmp_path, 7687, 7474, os.getpid())  # this process: no -Xmx in its command line
    assert launch_sizes(old) == ("1g", "768m")
    assert launch_sizes(LocalNeo4j(tmp_path, 7687, 7474, os.getpid(), heap="2g", pagecache="1g")) == ("2g", "1g")


def test_a_zombie_server_counts_as_stopped() -> None:
    """A server started by a process that is still alive (a benchmark, a test session) stays a
    zombie after SIGTERM until that parent reaps it; stop() must not wait its 90 s for it."""
    import subprocess
    import time

    from kgrec.kg.neo4j_server import _pid_alive

    child = subprocess.Popen(["sleep", "0"])
    deadline = time.monotonic() + 10
    while _pid_alive(child.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _pid_alive(child.pid) and child.poll() == 0 and _pid_alive(os.getpid())


def test_the_importers_durations_are_read() -> None:
    from kgrec.kg.neo4j_server.admin_import import duration_s

    assert duration_s("4s 909ms") == pytest.approx(4.909)
    assert duration_s("1m 2s 3ms") == pytest.approx(62.003) and duration_s("980ms") == pytest.approx(0.98)
    assert duration_s("1h 1m") == 3660
