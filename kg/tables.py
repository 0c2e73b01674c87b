"""The canonical tables every loader produces and every later stage reads.

``interactions`` (one row per user–item event)
    user: str, item: str, ts: float64 (unix seconds, NaN when the data has none),
    order: int64 (position in the user's stream, from file order; always set),
    rating: float64 (NaN when absent)

``items`` (one row per item; any column may be empty)
    item: str, title: str, description: str, year: Int64 (nullable),
    genres, categories: list[str], brand, author, director, publisher: str | None,
    related: list[str] (also_bought / also_viewed / bought_together item ids)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import pandas as pd

INTERACTION_COLUMNS = ("user", "item", "ts", "order", "rating")
ITEM_COLUMNS = (
    "item", "title", "description", "year", "genres", "categories",
    "brand", "author", "director", "publisher", "related",
)
#: Item columns that become (:Feature {kind, value}) nodes; list columns give one feature per entry.
FEATURE_COLUMNS = ("genres", "categories", "brand", "author", "director", "publisher", "year")
FEATURE_KIND = {"genres": "genre", "categories": "category"}


class Ordering(str, Enum):
    """How much time information a data set carries."""

    TIMESTAMP = "timestamp"  # real timestamps: sessions split by an inactivity gap
    ORDER = "order"  # order only: each user's sequence is one session, leave-last-out
    NONE = "none"  # neither (KGAT): graph and scale benchmarks only


@dataclass
class LoadReport:
    """Malformed input seen while loading: a count and the first few ``file:line: reason``."""

    malformed: int = 0
    examples: list[str] = field(default_factory=list)
    max_examples: int = 5

    def add(self, path: object, line: int, reason: str) -> None:
        self.malformed += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(f"{path}:{line}: {reason}")


@dataclass
class ItemGraph:
    """A knowledge graph that ships with a data set (RecBole ``.link`` + ``.kg``).

    ``links``: item → entity (``item``, ``entity``); ``triples``: ``head``, ``rel_type`` (from
    the allow-list in :mod:`kgrec.kg.schema`), ``tail``; ``labels``: entity → readable label;
    ``skipped``: source relation → triples left out because no allowed type matches it."""

    links: pd.DataFrame
    triples: pd.DataFrame
    labels: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)


@dataclass
class Dataset:
    interactions: pd.DataFrame
    items: pd.DataFrame
    ordering: Ordering
    name: str = ""
    report: LoadReport = field(default_factory=LoadReport)
    graph: ItemGraph | None = None
