"""The CLI: exit codes, one-line errors, JSON shapes (run in-process through ``main``)."""

from __future__ import annotations

import json
import subprocess
import sys
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


HEAVY = ("torch", "torch_geometric", "sentence_transformers", "pandas", "numpy", "sklearn", "falkordb")


def test_help_imports_nothing_heavy() -> None:
    """``kgrec --help`` stays instant because it loads no heavy library (asserted on the modules
    imported, not on wall time, which a busy machine makes flaky)."""
    probe = ("import sys, runpy; sys.argv = ['kgrec', '--help']\n"
             "try:\n    runpy.run_module('kgrec.cli', run_name='__main__')\n"
             "except SystemExit:\n    pass\n"
             f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "build" in out and "status" in out
    assert out.strip().splitlines()[-1] == "HEAVY []"


@pytest.mark.parametrize("args, names", [
    (("evaluate", "--nonsense"), "--nonsense"),
    (("bogus",), "bogus"),
    (("evaluate", "--seeds", "abc"), "--seeds"),
    (("train", "personas", "--encoder", "rnn"), "--encoder"),
    (("build", "--dataset", "movielens"), "--data"),
])
def test_usage_errors_are_one_line_and_exit_2(monkeypatch, capsys, settings, args, names) -> None:
    code, out, err = run_cli(monkeypatch, capsys, settings, *args)
    assert code == 2 and not out
    assert err.count("\n") == 1 and err.startswith("error: ") and names in err, err


def test_bare_group_prints_its_help(monkeypatch, capsys, settings) -> None:
    code, out, _ = run_cli(monkeypatch, capsys, settings, "train")
    assert code == 2 and "personas" in out and "recommender" in out


def test_choices_are_listed_in_help(monkeypatch, capsys, settings) -> None:
    code, out, _ = run_cli(monkeypatch, capsys, settings, "train", "personas", "--help")
    assert code == 0 and "gcn" in out and "gat" in out and "mean+cf" in out


def test_toml_in_home_is_honoured(tmp_path, monkeypatch) -> None:
    """``--home DIR`` (a keyword to Settings, not KGREC_HOME) reads ``DIR/kgrec.toml``."""
    from kgrec.settings import Settings

    monkeypatch.delenv("KGREC_HOME", raising=False)
    monkeypatch.delenv("KGREC_CONFIG", raising=False)
    monkeypatch.delenv("KGREC_BATCH_SIZE", raising=False)
    (tmp_path / "kgrec.toml").write_text("batch_size = 123\nseed = 7\n")
    s = Settings(home=tmp_path)
    assert (s.batch_size, s.seed) == (123, 7)
    assert Settings(home=tmp_path, seed=1).seed == 1  # an explicit option beats the file
    assert Settings(home=tmp_path / "elsewhere").batch_size == 10_000


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
    from kgrec.kg.net import free_port

    port = free_port()
    monkeypatch.setenv("KGREC_GRAPH_URI", f"falkordb://127.0.0.1:{port}")
    monkeypatch.setattr(sys, "argv", ["kgrec", "status"])
    with pytest.raises(SystemExit) as e:
        main()
    assert e.value.code == 5
    assert f"127.0.0.1:{port}" in capsys.readouterr().err


def test_link_dbpedia_with_local_oxigraph_then_all_from_cache(monkeypatch, capsys, settings) -> None:
    demo = Path(__file__).resolve().parents[1] / "data" / "demo" / "dbpedia"
    (settings.home / "cache").unlink()  # its own SPARQL cache: the other backend's run filled the shared one
    (settings.home / "cache").mkdir()
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
    assert "nonsense" in err and "'session', 'loo'" in err


def test_bad_fusion_buckets_are_one_line_naming_them(monkeypatch, capsys, settings) -> None:
    code, _, err = run_cli(monkeypatch, capsys, settings, "train", "recommender", "--buckets", "0,2+")
    assert code == 2 and err.count("\n") == 1 and "'0,2+'" in err and "without gaps" in err
