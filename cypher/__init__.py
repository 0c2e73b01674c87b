"""Every Cypher statement kgrec runs lives in this folder as a ``.cypher`` file.

``cypher/NAME.cypher`` is shared by all backends; ``cypher/<backend>/NAME.cypher``
overrides it for one backend (constraints, vector DDL and KNN, vector writes).
A file may hold several statements separated by ``;`` at the end of a line.
Templates use ``{{placeholder}}`` for labels, types and property names, which are
filled only from the allow-lists in :mod:`kgrec.kg.schema`.
"""

from __future__ import annotations

import re
from importlib import resources

from kgrec.errors import ConfigError
from kgrec.templates import fill

BACKENDS = ("falkordb", "neo4j")


def _strip_comments(text: str) -> str:
    lines = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("//"):
            continue
        lines.append(line)
    return "\n".join(lines)


def split_statements(text: str) -> list[str]:
    body = _strip_comments(text)
    parts = re.split(r";\s*(?:\n|$)", body)
    return [p.strip() for p in parts if p.strip()]


class CypherLibrary:
    """Loads named statements for one backend, each file read once per library."""

    def __init__(self, backend: str) -> None:
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}")
        self.backend = backend
        self._cache: dict[str, list[str]] = {}

    def _read(self, name: str) -> str:
        root = resources.files(__name__)
        parts = name.split("/")
        for candidate in (root.joinpath(self.backend, *parts[:-1], parts[-1] + ".cypher"),
                          root.joinpath(*parts[:-1], parts[-1] + ".cypher")):
            if candidate.is_file():
                return candidate.read_text(encoding="utf-8")
        raise ConfigError(f"no Cypher statement named {name!r} (looked in cypher/{self.backend}/ and cypher/)")

    def statements(self, name: str, **template: str) -> list[str]:
        """The statements of ``name``; ``template`` fills ``{{placeholders}}`` (already allow-listed)."""
        if name not in self._cache:
            self._cache[name] = split_statements(self._read(name))
        return [fill(stmt, template, f"statement {name!r}") for stmt in self._cache[name]]

    def one(self, name: str, **template: str) -> str:
        stmts = self.statements(name, **template)
        if len(stmts) != 1:
            raise ConfigError(f"statement {name!r} holds {len(stmts)} statements, expected one")
        return stmts[0]
