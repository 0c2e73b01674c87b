"""The KGAT release layout (``amazon-book``, ``last-fm``, ``yelp2018``).

``train.txt`` / ``test.txt``: one line per user, ``user item item …`` with remapped integer ids
(a line holding only the user id is a user without interactions there). ``item_list.txt``
(``org_id remap_id freebase_id`` with a header) maps remapped ids back to the original id
(the ASIN for amazon-book), kept as the item's ``description``; titles are unknown (``""``).
There is no time information → Ordering.NONE; ``order`` is the position on the line.

:func:`load_kgat` reads ``train.txt`` only (what the graph is built from);
:func:`load_kgat_with_test` also returns the ``test.txt`` pairs for benchmarks.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kgrec.errors import DataError
from kgrec.kg.loaders._io import Progress, bad_line, interactions_frame, items_frame, iter_lines
from kgrec.kg.tables import Dataset, LoadReport, Ordering


def _folder(path: Path) -> Path:
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if not (folder / "train.txt").is_file():
        raise DataError(f"{folder / 'train.txt'}: KGAT train.txt not found")
    return folder


def _read_pairs(path: Path, report: LoadReport, strict: bool, progress: Progress) -> pd.DataFrame:
    users: list[str] = []
    items: list[str] = []
    order: list[int] = []
    for lineno, line in iter_lines(path, progress):
        parts = line.split()
        if not parts:
            continue
        bad = next((p for p in parts if not p.isdigit()), None)
        if bad is not None:
            bad_line(report, strict, path, lineno, f"non-integer id {bad[:40]!r}")
            continue
        user, its = parts[0], parts[1:]
        users.extend([user] * len(its))
        items.extend(its)
        order.extend(range(len(its)))
    return interactions_frame(users, items, order=order)


def _read_item_list(path: Path, report: LoadReport, strict: bool, progress: Progress) -> list[dict]:
    rows: list[dict] = []
    for lineno, line in iter_lines(path, progress):
        parts = line.split()
        if not parts or (lineno == 1 and "remap_id" in parts):
            continue
        if len(parts) < 2 or not parts[1].isdigit():
            bad_line(report, strict, path, lineno, "expected 'org_id remap_id [freebase_id]'")
            continue
        rows.append({"item": parts[1], "description": parts[0]})
    return rows


def _load(path: Path, strict: bool, progress: Progress, with_test: bool) -> tuple[Dataset, pd.DataFrame | None]:
    folder = _folder(path)
    report = LoadReport()
    train = _read_pairs(folder / "train.txt", report, strict, progress)
    test = None
    if with_test:
        if not (folder / "test.txt").is_file():
            raise DataError(f"{folder / 'test.txt'}: KGAT test.txt not found")
        test = _read_pairs(folder / "test.txt", report, strict, progress)
    item_list = folder / "item_list.txt"
    rows = _read_item_list(item_list, report, strict, progress) if item_list.is_file() else []
    seen = dict.fromkeys(train["item"])
    if test is not None:
        seen.update(dict.fromkeys(test["item"]))
    items = items_frame(rows, interaction_items=seen)
    return Dataset(train, items, Ordering.NONE, name=folder.name, report=report), test


def load_kgat(path: Path, *, strict: bool = False, progress: Progress = None) -> Dataset:
    """``train.txt`` interactions and the ``item_list.txt`` catalogue (folder or ``train.txt`` path)."""
    return _load(path, strict, progress, with_test=False)[0]


def load_kgat_with_test(
    path: Path, *, strict: bool = False, progress: Progress = None
) -> tuple[Dataset, pd.DataFrame]:
    """As :func:`load_kgat`, plus the ``test.txt`` interactions (canonical interaction columns).

    Malformed test lines are counted in the same ``Dataset.report``; ``items`` also covers
    items seen only in the test file.
    """
    ds, test = _load(path, strict, progress, with_test=True)
    assert test is not None
    return ds, test
