"""Helpers shared by the loaders: opening files, counted line iteration, malformed-line
accounting and building the canonical tables from column lists."""

from __future__ import annotations

import gzip
import io
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from kgrec.errors import DataError
from kgrec.kg.tables import INTERACTION_COLUMNS, ITEM_COLUMNS, LoadReport

Progress = Callable[[int], None] | None

#: How many lines pass between two calls of the progress callback.
PROGRESS_EVERY = 10_000

_LIST_COLUMNS = ("genres", "categories", "related")
_STR_COLUMNS = ("title", "description")
_OPT_STR_COLUMNS = ("brand", "author", "director", "publisher")
_YEAR_RE = re.compile(r"\b(1[89]\d\d|20\d\d)\b")


def open_text(path: Path) -> IO[str]:
    """Open ``path`` for reading text, transparently un-gzipping (by magic bytes, not name)."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            magic = fh.read(2)
        if magic == b"\x1f\x8b":
            return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace", newline="")
        return path.open("r", encoding="utf-8", errors="replace", newline="")
    except FileNotFoundError as e:
        raise DataError(f"{path}: file not found") from e
    except OSError as e:
        raise DataError(f"{path}: cannot open: {e}") from e


def iter_lines(path: Path, progress: Progress = None, *, every: int = PROGRESS_EVERY) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, line)`` (1-based, newline stripped) and report progress every ``every`` lines."""
    pending = 0
    with open_text(path) as fh:
        try:
            for lineno, line in enumerate(fh, 1):
                pending += 1
                if progress is not None and pending >= every:
                    progress(pending)
                    pending = 0
                yield lineno, line.rstrip("\r\n")
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise DataError(f"{path}: cannot read: {e}") from e
    if progress is not None and pending:
        progress(pending)


class Ticker:
    """Batches progress calls for loaders that iterate with their own reader (csv)."""

    def __init__(self, progress: Progress, every: int = PROGRESS_EVERY) -> None:
        self.progress, self.every, self.pending = progress, every, 0

    def tick(self, n: int = 1) -> None:
        if self.progress is None:
            return
        self.pending += n
        if self.pending >= self.every:
            self.progress(self.pending)
            self.pending = 0

    def flush(self) -> None:
        if self.progress is not None and self.pending:
            self.progress(self.pending)
        self.pending = 0


def bad_line(report: LoadReport, strict: bool, path: object, lineno: int, reason: str) -> None:
    """Account for a malformed line; with ``strict`` raise :class:`DataError` ``file:line: reason``."""
    if strict:
        raise DataError(f"{path}:{lineno}: {reason}")
    report.add(path, lineno, reason)


def find_files(root: Path, patterns: Iterable[str]) -> list[Path]:
    """Files directly in ``root`` matching any glob pattern, deduplicated, sorted by name."""
    seen: dict[Path, None] = {}
    for pat in patterns:
        for p in sorted(root.glob(pat)):
            if p.is_file():
                seen.setdefault(p, None)
    return sorted(seen, key=lambda p: p.name)


def parse_year(value: Any) -> int | None:
    """The first plausible 4-digit year (1800–2099) in ``value``, else ``None``."""
    if value is None:
        return None
    if isinstance(value, (int, float, np.integer, np.floating)) and not pd.isna(value):
        v = int(value)
        return v if 1800 <= v <= 2099 else None
    m = _YEAR_RE.search(str(value))
    return int(m.group(1)) if m else None


def interactions_frame(
    users: list[str],
    items: list[str],
    ts: list[float] | None = None,
    ratings: list[float] | None = None,
    order: list[int] | None = None,
) -> pd.DataFrame:
    """Build the canonical interactions table from column lists (file order).

    ``order`` defaults to each user's position in file order (``groupby.cumcount``).
    """
    n = len(users)
    df = pd.DataFrame(
        {
            "user": pd.Series(users, dtype="object"),
            "item": pd.Series(items, dtype="object"),
            "ts": np.asarray(ts, dtype="float64") if ts is not None else np.full(n, np.nan),
        }
    )
    if order is None:
        df["order"] = df.groupby("user", sort=False).cumcount().astype("int64") if n else np.zeros(0, "int64")
    else:
        df["order"] = np.asarray(order, dtype="int64")
    df["rating"] = np.asarray(ratings, dtype="float64") if ratings is not None else np.full(n, np.nan)
    return df[list(INTERACTION_COLUMNS)]


def _norm_list(v: Any) -> list[str]:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return []
    if isinstance(v, str):
        return [v] if v else []
    out: list[str] = []
    for x in v:
        if x is None:
            continue
        s = str(x).strip()
        if s and s not in out:
            out.append(s)
    return out


def _norm_opt_str(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    s = str(v).strip()
    return s or None


def items_frame(rows: Iterable[dict[str, Any]], interaction_items: Iterable[str] | None = None) -> pd.DataFrame:
    """Build the canonical items table from row dicts (missing keys get empty values).

    Extra keys are ignored. With ``interaction_items``, an item seen in interactions but
    absent from ``rows`` gets an empty row, so the table covers every interaction item.
    Duplicate item ids keep the first row.
    """
    by_id: dict[str, dict[str, Any]] = {}
    for r in rows:
        iid = str(r["item"])
        if iid not in by_id:
            by_id[iid] = r
    if interaction_items is not None:
        for iid in interaction_items:
            if iid not in by_id:
                by_id[iid] = {"item": iid}
    recs = list(by_id.values())
    cols: dict[str, Any] = {"item": pd.Series([str(r["item"]) for r in recs], dtype="object")}
    for c in _STR_COLUMNS:
        cols[c] = pd.Series([str(r.get(c) or "") for r in recs], dtype="object")
    cols["year"] = pd.array([parse_year(r.get("year")) for r in recs], dtype="Int64")
    for c in _LIST_COLUMNS:
        cols[c] = pd.Series([_norm_list(r.get(c)) for r in recs], dtype="object")
    for c in _OPT_STR_COLUMNS:
        cols[c] = pd.Series([_norm_opt_str(r.get(c)) for r in recs], dtype="object")
    return pd.DataFrame(cols)[list(ITEM_COLUMNS)]
