"""Plain interaction sequences (the SASRec release's ``Video.txt``, ``Beauty.txt`` …).

One ``user item`` pair per line, whitespace-separated, in time order: file order is each
user's ``order`` → Ordering.ORDER. There are no timestamps, ratings or titles (title ``""``).
"""

from __future__ import annotations

from pathlib import Path

from kgrec.errors import DataError
from kgrec.kg.loaders._io import Progress, bad_line, interactions_frame, items_frame, iter_lines
from kgrec.kg.tables import Dataset, LoadReport, Ordering


def _pick(path: Path) -> Path:
    if path.is_file():
        return path
    txts = sorted(p for p in path.glob("*.txt") if p.is_file())
    if len(txts) != 1:
        found = ", ".join(p.name for p in txts) or "none"
        raise DataError(f"{path}: expected exactly one .txt sequence file in the folder (found: {found})")
    return txts[0]


def load_sequences(path: Path, *, strict: bool = False, progress: Progress = None) -> Dataset:
    """Load a ``user item`` per line file (or a folder holding exactly one ``.txt``)."""
    path = _pick(Path(path))
    report = LoadReport()
    users: list[str] = []
    items: list[str] = []
    for lineno, line in iter_lines(path, progress):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            bad_line(report, strict, path, lineno, f"expected 'user item', got {len(parts)} fields")
            continue
        users.append(parts[0])
        items.append(parts[1])
    inter = interactions_frame(users, items)
    del users
    item_df = items_frame((), interaction_items=dict.fromkeys(items))
    return Dataset(inter, item_df, Ordering.ORDER, name=path.stem, report=report)
