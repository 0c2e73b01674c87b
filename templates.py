"""``{{placeholder}}`` filling, shared by the Cypher library and the SPARQL templates.

Values are inserted as they are: callers pass only allow-listed identifiers (Cypher labels,
types, property names) or already-escaped SPARQL terms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from kgrec.errors import ConfigError

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")


def fill(text: str, values: Mapping[str, str], what: str) -> str:
    """``text`` with every ``{{name}}`` replaced by ``values[name]``; a missing value is a
    :class:`ConfigError` that names ``what`` (the template) and the placeholder."""

    def one(m: re.Match[str]) -> str:
        if m.group(1) not in values:
            raise ConfigError(f"{what} needs template value {m.group(1)!r}")
        return values[m.group(1)]

    return PLACEHOLDER.sub(one, text)
