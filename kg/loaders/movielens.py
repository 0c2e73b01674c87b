"""MovieLens (``ml-latest``/``ml-latest-small``/``ml-25m`` layout): ``ratings.csv`` + ``movies.csv``.

``ratings.csv``: ``userId,movieId,rating,timestamp`` (unix seconds) → Ordering.TIMESTAMP.
``movies.csv``: ``movieId,title,genres`` with genres ``|``-separated, ``(no genres listed)`` meaning
none, and the release year in the title (``Toy Story (1995)``): the year is parsed out and the
title kept without it. Every movie in ``movies.csv`` becomes an item (the catalogue). When
``movies.csv`` is present, a rating of a movie it does not list is a dangling reference: it is
counted as malformed and dropped (``strict`` raises).
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from kgrec.errors import DataError
from kgrec.kg.loaders._io import Progress, Ticker, bad_line, interactions_frame, items_frame, open_text
from kgrec.kg.tables import Dataset, LoadReport, Ordering

_TITLE_YEAR = re.compile(r"^(?P<title>.*?)\s*\((?P<year>\d{4})(?:\s*[-–]\s*\d{0,4})?\)\s*$")
NO_GENRES = "(no genres listed)"


def split_title(raw: str) -> tuple[str, int | None]:
    """``"Toy Story (1995)"`` → ``("Toy Story", 1995)``; a title without a year is kept whole."""
    raw = raw.strip()
    m = _TITLE_YEAR.match(raw)
    if not m or not m.group("title"):
        return raw, None
    return m.group("title"), int(m.group("year"))


def _header_index(header: list[str], path: Path, wanted: dict[str, tuple[str, ...]]) -> dict[str, int]:
    lower = [h.strip().lower() for h in header]
    idx: dict[str, int] = {}
    for key, names in wanted.items():
        for n in names:
            if n in lower:
                idx[key] = lower.index(n)
                break
    missing = [k for k in wanted if k not in idx]
    if missing:
        raise DataError(f"{path}:1: header {header!r} lacks column(s) {', '.join(missing)}")
    return idx


def _read_ratings(path: Path, report: LoadReport, strict: bool, ticker: Ticker, known: set[str] | None):
    users: list[str] = []
    items: list[str] = []
    ts: list[float] = []
    ratings: list[float] = []
    with open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file (expected header userId,movieId,rating,timestamp)")
        idx = _header_index(
            header, path,
            {"user": ("userid", "user_id", "user"), "item": ("movieid", "movie_id", "item"),
             "rating": ("rating",), "ts": ("timestamp", "ts")},
        )
        ncols = len(header)
        iu, ii, ir, it = idx["user"], idx["item"], idx["rating"], idx["ts"]
        lineno = 1
        for row in reader:
            lineno = reader.line_num
            ticker.tick()
            if not row:
                continue
            if len(row) != ncols:
                bad_line(report, strict, path, lineno, f"expected {ncols} columns, got {len(row)}")
                continue
            u, i = row[iu].strip(), row[ii].strip()
            if not u or not i:
                bad_line(report, strict, path, lineno, "empty user or movie id")
                continue
            try:
                r = float(row[ir])
                t = float(row[it])
            except ValueError:
                bad_line(report, strict, path, lineno, f"non-numeric rating/timestamp {row[ir]!r}/{row[it]!r}")
                continue
            if math.isnan(r) or math.isnan(t):
                bad_line(report, strict, path, lineno, "rating/timestamp is NaN")
                continue
            if known is not None and i not in known:
                bad_line(report, strict, path, lineno, f"movieId {i} is not in movies.csv")
                continue
            users.append(u)
            items.append(i)
            ratings.append(r)
            ts.append(t)
    return users, items, ts, ratings


def _read_movies(path: Path, report: LoadReport, strict: bool, ticker: Ticker) -> list[dict]:
    rows: list[dict] = []
    with open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            return rows
        idx = _header_index(header, path, {"item": ("movieid", "movie_id", "item"), "title": ("title",),
                                           "genres": ("genres",)})
        ncols = len(header)
        for row in reader:
            ticker.tick()
            if not row:
                continue
            if len(row) != ncols:
                bad_line(report, strict, path, reader.line_num, f"expected {ncols} columns, got {len(row)}")
                continue
            title, year = split_title(row[idx["title"]])
            g = row[idx["genres"]].strip()
            genres = [] if not g or g == NO_GENRES else [x.strip() for x in g.split("|") if x.strip()]
            rows.append({"item": row[idx["item"]].strip(), "title": title, "year": year, "genres": genres})
    return rows


def load_movielens(path: Path, *, strict: bool = False, progress: Progress = None) -> Dataset:
    """Load a MovieLens folder (or its ``ratings.csv``; ``movies.csv`` is looked up beside it)."""
    path = Path(path)
    if path.is_dir():
        ratings_path, folder = path / "ratings.csv", path
    else:
        ratings_path, folder = path, path.parent
    if not ratings_path.is_file():
        raise DataError(f"{ratings_path}: MovieLens ratings.csv not found")
    report = LoadReport()
    ticker = Ticker(progress)
    movies_path = folder / "movies.csv"
    movie_rows = _read_movies(movies_path, report, strict, ticker) if movies_path.is_file() else []
    known = {r["item"] for r in movie_rows} if movie_rows else None
    users, items, ts, ratings = _read_ratings(ratings_path, report, strict, ticker, known)
    ticker.flush()
    inter = interactions_frame(users, items, ts=ts, ratings=ratings)
    del users, ts, ratings
    item_df = items_frame(movie_rows, interaction_items=dict.fromkeys(items))
    return Dataset(inter, item_df, Ordering.TIMESTAMP, name=folder.name, report=report)
