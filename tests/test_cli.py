"""The CLI: exit codes, one-line errors, JSON shapes (run in-process through ``main``)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kgrec.cli import main

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "ml-mini"


def run_cli(monkeypatch, capsys, settings, *args: str) -> tuple[int, str, str]:
    monkeypatch.setenv("KGREC_HOME", str(settings.home))
    monkeypatch.setenv("KGREC_GRAPH_NAME", settings.graph_name)
    if settings.graph_uri:
        monkeypatch.setenv("KGREC_GRAPH_URI", settings.graph_uri)
    monkeypatch.setattr(sys, "argv", ["kgrec", *args])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_help_is_instant() -> None:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "kgrec.cli", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert time.perf_counter() - t < 5
    assert "build" in out and "status" in out
    # no heavy library is imported to print help
    probe = ("import sys, kgrec.cli; "
             "print(any(m in sys.modules for m in ('torch', 'sentence_transformers', 'pandas')))")
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"


def test_build_status_query(monkeypatch, capsys, settings) -> None:
    code, _, err = run_cli(monkeypatch, capsys, settings, "build", "--dataset", "movielens", "--data",
                           str(FIXTURE), "--k-core", "3", "--no-embeddings", "--json")
    assert code == 0, err
    code, out, _ = run_cli(monkeypatch, capsys, settings, "status", "--json")
    assert code == 0
    counts = json.loads(out)
    assert set(counts) == {"nodes", "relationships"}
    assert counts["nodes"]["User"] == 45 and counts["relationships"]["INTERACTED"] > 0
    code, out, _ = run_cli(monkeypatch, capsys, settings, "query",
                           "MATCH (i:Item {id: $id}) RETURN i.title AS title", "--param", "id=1", "--json")
    assert code == 0
    assert json.loads(out) == [{"title": "Toy Story"}]
    code, out, _ = run_cli(monkeypatch, capsys, settings, "query",
                           "MATCH (i:Item) WHERE i.year = $y RETURN count(i) AS n", "-p", "y:=1995", "--json")
    assert code == 0 and json.loads(out)[0]["n"] > 0
    # a write through `query` is refused (read-only)
    code, _, err = run_cli(monkeypatch, capsys, settings, "query", "CREATE (:User {id: 'x'})")
    assert code != 0 and err.startswith("error:")


def test_missing_data_is_one_line_and_nonzero(monkeypatch, capsys, settings, tmp_path) -> None:
    code, _, err = run_cli(monkeypatch, capsys, settings, "build", "--dataset", "movielens", "--data",
                           str(tmp_path / "nope"))
    assert code != 0
    assert err.count("\n") == 1 and "nope" in err


def test_unknown_dataset_kind(monkeypatch, capsys, settings) -> None:
    code, _, err = run_cli(monkeypatch, capsys, settings, "build", "--dataset", "parquet", "--data", ".")
    assert code == 2
    assert "parquet" in err


def test_strict_malformed_exit_code_names_the_line(monkeypatch, capsys, settings, tmp_path) -> None:
    bad = tmp_path / "ml"
    bad.mkdir()
    (bad / "movies.csv").write_text((FIXTURE / "movies.csv").read_text())
    lines = (FIXTURE / "ratings.csv").read_text().splitlines()
    lines.insert(2, "broken line")
    (bad / "ratings.csv").write_text("\n".join(lines) + "\n")
    code, _, err = run_cli(monkeypatch, capsys, settings, "build", "--dataset", "movielens", "--data",
                           str(bad), "--strict", "--no-embeddings")
    assert code == 3
    assert "ratings.csv:3" in err


def test_unreachable_graph_names_uri(monkeypatch, capsys, settings) -> None:
    from kgrec.kg.falkordb_server import free_port

    port = free_port()
    monkeypatch.setenv("KGREC_GRAPH_URI", f"falkordb://127.0.0.1:{port}")
    monkeypatch.setattr(sys, "argv", ["kgrec", "status"])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 5
    assert f"127.0.0.1:{port}" in capsys.readouterr().err


def test_link_dbpedia_with_local_oxigraph_then_all_from_cache(monkeypatch, capsys, settings) -> None:
    demo = Path(__file__).resolve().parents[1] / "data" / "demo" / "dbpedia"
    code, _, err = run_cli(monkeypatch, capsys, settings, "build", "--dataset", "movielens", "--data",
                           str(FIXTURE), "--k-core", "3", "--no-embeddings", "--no-dbpedia")
    assert code == 0, err
    args = ("link-dbpedia", "--mapping", str(demo / "movielens-to-dbpedia.tsv"), "--sparql-data", str(demo),
            "--json")
    code, out, err = run_cli(monkeypatch, capsys, settings, *args)
    assert code == 0, err
    first = json.loads(out)
    assert first["linked"]["mapping"] > 0 and first["queries_sent"] > 0
    assert first["counts"]["relationships"]["SAME_AS"] == sum(first["linked"].values())
    assert first["counts"]["relationships"].get("DIRECTOR", 0) > 0
    code, out, err = run_cli(monkeypatch, capsys, settings, *args)
    assert code == 0, err
    second = json.loads(out)
    assert second["queries_sent"] == 0 and second["cache_hits"] > 0
    assert second["counts"] == first["counts"]


def test_evaluate_unknown_protocol_is_one_line_listing_the_choices(monkeypatch, capsys, settings) -> None:
    code, _, err = run_cli(monkeypatch, capsys, settings, "evaluate", "--protocol", "nonsense")
    assert code == 2 and err.count("\n") == 1
    assert "nonsense" in err and "session, loo" in err
