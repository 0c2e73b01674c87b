"""The graph schema and the allow-lists every dynamic label or type is checked against.

Cypher cannot take labels, relationship types or property names as parameters, so
where a statement is a template (``{{label}}``), the value must come from here.
"""

from __future__ import annotations

import re
from typing import Any

from kgrec.errors import ConfigError

#: Node labels and the property that identifies a node of that label.
NODE_KEYS: dict[str, str] = {
    "User": "id",
    "Item": "id",
    "Feature": "id",
    "Entity": "iri",
    "Persona": "id",
}

#: DBpedia predicates turned into entity–entity relationship types (issue: DBpedia linking).
ENTITY_REL_TYPES: tuple[str, ...] = (
    "DIRECTOR", "STARRING", "WRITER", "PRODUCER", "MUSIC_COMPOSER", "AUTHOR", "LITERARY_GENRE",
    "GENRE", "PUBLISHER", "SERIES", "PREVIOUS_WORK", "SUBSEQUENT_WORK", "COUNTRY", "LANGUAGE",
    "SUBJECT",
)

#: The ``Entity.type`` a relationship's target gets when its source states none.
ENTITY_TARGET_TYPE: dict[str, str] = {
    "DIRECTOR": "Person", "STARRING": "Person", "WRITER": "Person", "PRODUCER": "Person",
    "MUSIC_COMPOSER": "Person", "AUTHOR": "Person", "LITERARY_GENRE": "Genre", "GENRE": "Genre",
    "PUBLISHER": "Company", "SERIES": "Work", "PREVIOUS_WORK": "Work", "SUBSEQUENT_WORK": "Work",
    "COUNTRY": "Country", "LANGUAGE": "Language", "SUBJECT": "Category",
}

#: Relationship types as (type, source label, target label).
REL_ENDPOINTS: dict[str, tuple[str, str]] = {
    "INTERACTED": ("User", "Item"),
    "CO_OCCURS": ("Item", "Item"),
    "HAS_FEATURE": ("Item", "Feature"),
    "SAME_AS": ("Item", "Entity"),
    "HAS_PERSONA": ("User", "Persona"),
    "RECOMMENDED": ("User", "Item"),
    **{t: ("Entity", "Entity") for t in ENTITY_REL_TYPES},
}

#: Properties that hold vectors, per label.
VECTOR_PROPERTIES: dict[str, tuple[str, ...]] = {"Item": ("emb",), "User": ("persona",)}

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_vector_index(label: str, prop: str, dim: Any) -> tuple[str, str, int]:
    """A vector index's label, property and dimension, checked (every adapter's DDL uses it)."""
    label, prop = check_label(label), check_property(prop)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
        raise ConfigError(f"vector dimension must be a positive int, got {dim!r}")
    return label, prop, dim


def check_label(label: str) -> str:
    if label not in NODE_KEYS:
        raise ConfigError(f"unknown node label {label!r}; allowed: {', '.join(NODE_KEYS)}")
    return label


def check_rel_type(rel_type: str) -> str:
    if rel_type not in REL_ENDPOINTS:
        raise ConfigError(f"unknown relationship type {rel_type!r}; allowed: {', '.join(REL_ENDPOINTS)}")
    return rel_type


def check_property(name: str) -> str:
    """Property names in templates: plain identifiers only (no backticks, no injection)."""
    if not _IDENT.match(name):
        raise ConfigError(f"invalid property name {name!r}")
    return name


def key_of(label: str) -> str:
    return NODE_KEYS[check_label(label)]
