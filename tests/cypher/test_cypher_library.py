"""The Cypher library: every statement file parses, per-backend twins override the shared file,
templates are filled only with what the caller gives."""

from __future__ import annotations

from importlib import resources

import pytest

from kgrec.cypher import BACKENDS, CypherLibrary, split_statements
from kgrec.errors import ConfigError
from kgrec.templates import PLACEHOLDER


def _names() -> list[str]:
    root = resources.files("kgrec.cypher")
    out = []
    for entry in root.iterdir():
        if entry.name.endswith(".cypher"):
            out.append(entry.name[: -len(".cypher")])
        elif entry.is_dir() and entry.name in ("browser", "explain"):
            out += [f"{entry.name}/{f.name[: -len('.cypher')]}" for f in entry.iterdir()
                    if f.name.endswith(".cypher")]
    return sorted(out)


def test_split_statements_drops_comments_and_splits_on_line_end_semicolons() -> None:
    text = "// a comment\nMATCH (n) RETURN n;\n// another\nRETURN 'a;b' AS s;\n"
    assert split_statements(text) == ["MATCH (n) RETURN n", "RETURN 'a;b' AS s"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_statement_loads_and_says_what_it_needs(backend: str) -> None:
    lib = CypherLibrary(backend)
    names = _names()
    assert "stream_nodes" in names and "browser/persona_overview" in names
    for name in names:
        raw = lib._read(name)
        if "/" in name:  # Browser and explanation queries are pasted by people: they say what they show
            assert raw.lstrip().startswith("//"), name
        needed = set(PLACEHOLDER.findall(raw))
        stmts = lib.statements(name, **{k: "X" for k in needed})
        assert stmts and all("{{" not in s for s in stmts), name


def test_backend_twin_overrides_the_shared_file() -> None:
    falkor = CypherLibrary("falkordb").one("knn", label="Item", prop="emb", key="id")
    neo = CypherLibrary("neo4j").one("knn", label="Item", prop="emb", key="id")
    assert "db.idx.vector.queryNodes" in falkor and "db.index.vector.queryNodes" in neo


def test_missing_template_value_and_unknown_names_are_config_errors() -> None:
    lib = CypherLibrary("falkordb")
    with pytest.raises(ConfigError, match="needs template value 'label'"):
        lib.statements("upsert_nodes")
    with pytest.raises(ConfigError, match="no Cypher statement named"):
        lib.statements("no_such_statement")
    with pytest.raises(ConfigError, match="unknown backend"):
        CypherLibrary("sqlite")
