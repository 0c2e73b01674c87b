"""Amazon review dumps: 2014, 2018 and 2023, plus the regrouped 2023 sample in ``../shared/data``.

The format is detected per line by its keys, so files of different vintages may be mixed:

* 2014 / 2018 reviews: ``reviewerID, asin, overall, unixReviewTime`` (seconds);
* 2023 reviews: ``user_id, parent_asin (or asin), rating, timestamp`` (milliseconds);
* the regrouped sample: one line per user ``{user_id, history: [...], heldout}``, each review
  ``{parent_asin, rating, timestamp_ms, product: {title, brand, main_category}}``; the user's
  history then the held-out review become interactions and ``product`` gives item metadata;
* metadata lines: ``asin`` / ``parent_asin`` without a user. 2014 metadata is a Python literal
  per line (``ast.literal_eval``), the others JSON.

``path`` is a review file (a ``meta_<Cat>.*`` file beside it is used when present) or a folder:
files named ``meta_*.json*`` / ``meta_*.jsonl*`` are metadata, every other ``*.json*`` /
``*.jsonl*`` file holds reviews. Metadata is kept only for items that occur in the reviews (full
metadata dumps cover millions of products). Timestamps become unix seconds → Ordering.TIMESTAMP.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

from kgrec.errors import DataError
from kgrec.kg.loaders._io import (
    Progress,
    bad_line,
    find_files,
    interactions_frame,
    items_frame,
    iter_lines,
    parse_year,
)
from kgrec.kg.tables import Dataset, LoadReport, Ordering

_DATA_PATTERNS = ("*.json", "*.json.gz", "*.jsonl", "*.jsonl.gz")
#: The shared sample's split files, read in this order (so ``order`` follows time).
_SPLIT_ORDER = {"train": 0, "training": 0, "valid": 1, "validation": 1, "test": 2}
_MS_THRESHOLD = 1e11  # a unix time above this is in milliseconds (1e11 s is the year 5138)
#: ids named by a metadata line, found without parsing it (to skip unreviewed products cheaply)
_ID_RE = re.compile(r"""["'](?:parent_asin|asin)["']\s*:\s*["']([^"']+)["']""")


def _is_meta(p: Path) -> bool:
    return p.name.lower().startswith("meta_")


def _stem(p: Path) -> str:
    name = p.name
    for ext in (".gz", ".jsonl", ".json"):
        name = name.removesuffix(ext)
    return name


def _category_of(review_file: Path) -> str:
    """``reviews_Toys_5.json.gz`` / ``Toys_5.json.gz`` / ``Toys.jsonl.gz`` → ``Toys``."""
    stem = _stem(review_file)
    stem = stem.removeprefix("reviews_")
    return re.sub(r"_5$", "", stem)


def discover(path: Path) -> tuple[list[Path], list[Path]]:
    """``(review_files, meta_files)`` for a folder or a single review file."""
    path = Path(path)
    if path.is_dir():
        files = find_files(path, _DATA_PATTERNS)
        reviews = [p for p in files if not _is_meta(p)]
        reviews.sort(key=lambda p: (_SPLIT_ORDER.get(_stem(p).lower(), -1), p.name))
        meta = [p for p in files if _is_meta(p)]
        if not reviews:
            raise DataError(f"{path}: no Amazon review files (*.json, *.jsonl, optionally .gz) found")
        return reviews, meta
    if _is_meta(path):
        raise DataError(f"{path}: this is a metadata file; point at the review file or the folder")
    cat = _category_of(path)
    meta = [p for p in find_files(path.parent, (f"meta_{cat}.json*", f"meta_{cat}.jsonl*"))]
    return [path], meta


def _parse(line: str) -> Any:
    try:
        return json.loads(line)
    except ValueError:
        if line.lstrip().startswith("{"):
            return ast.literal_eval(line)  # 2014 metadata: Python literals (single quotes)
        raise


def _seconds(v: Any) -> float:
    t = float(v)
    return t / 1000.0 if t > _MS_THRESHOLD else t


def _flatten(v: Any) -> list[str]:
    if v is None:
        return []
    if isinstance(v, str):
        return [v]
    out: list[str] = []
    for x in v:
        out.extend(_flatten(x))
    return out


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, (list, tuple)):
        return " ".join(s.strip() for s in _flatten(v) if s and s.strip())
    return str(v).strip()


def _name(v: Any) -> str | None:
    """A person/brand field: a string, a list of them, or a 2023 ``{"name": ...}`` dict."""
    if v is None:
        return None
    if isinstance(v, dict):
        v = v.get("name")
    if isinstance(v, (list, tuple)):
        v = ", ".join(s for s in _flatten(v) if s)
    s = str(v).strip() if v is not None else ""
    return s or None


def _brand(v: Any) -> str | None:
    """2018 brands come as ``"by\\n    \\n    Ubisoft"``: collapse whitespace, drop the ``by``."""
    s = _name(v)
    if s is None:
        return None
    s = re.sub(r"^by\s+", "", " ".join(s.split()))
    return s or None


def _details(d: Any) -> dict[str, Any]:
    if not isinstance(d, dict):
        return {}
    return {str(k).strip().rstrip(":").strip().lower(): v for k, v in d.items()}


def meta_row(d: dict[str, Any]) -> dict[str, Any]:
    """Map one metadata record of any vintage to an items row (keys of ``ITEM_COLUMNS``)."""
    det = _details(d.get("details"))
    cats: list[str] = []
    for key in ("main_category", "main_cat"):
        v = d.get(key)
        if isinstance(v, str) and v.strip() and not v.lstrip().startswith("<"):
            cats.append(v.strip())
    cats += [c.strip() for c in _flatten(d.get("categories")) + _flatten(d.get("category")) if c and c.strip()]
    related: list[str] = []
    rel = d.get("related")
    if isinstance(rel, dict):
        for key in ("also_bought", "also_viewed", "bought_together"):
            related += _flatten(rel.get(key))
    for key in ("also_buy", "also_view", "bought_together"):
        related += _flatten(d.get(key))
    publisher = _name(det.get("publisher"))
    year = None
    for key, v in det.items():
        if "date" in key or "year" in key:
            year = parse_year(v)
            if year:
                break
    if year is None:
        year = parse_year(d.get("date")) or parse_year(d.get("year"))
    if year is None and publisher:
        year = parse_year(publisher)  # 2018 books: "Vintage; 1st edition (March 3, 2009)"
    if publisher:
        publisher = re.split(r"[;(]", publisher, maxsplit=1)[0].strip() or None
    return {
        "item": str(d.get("parent_asin") or d.get("asin")),
        "title": _text(d.get("title")),
        "description": _text(d.get("description")),
        "brand": _brand(d.get("brand")) or _brand(d.get("store")),
        "author": _name(d.get("author")) or _name(det.get("author")),
        "categories": cats,
        "related": related,
        "director": _name(det.get("directors")) or _name(det.get("director")),
        "publisher": publisher,
        "year": year,
    }


def _merge(base: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, Any]:
    """``new`` wins, ``base`` fills what ``new`` leaves empty."""
    if base is None:
        return new
    out = dict(base)
    for k, v in new.items():
        if v not in (None, "", []):
            out[k] = v
    return out


class _Reviews:
    def __init__(self) -> None:
        self.users: list[str] = []
        self.items: list[str] = []
        self.ts: list[float] = []
        self.ratings: list[float] = []
        self.meta: dict[str, dict[str, Any]] = {}

    @staticmethod
    def convert(user: Any, item: Any, rating: Any, ts: Any) -> tuple[str, str, float, float]:
        if user in (None, "") or item in (None, ""):
            raise ValueError("missing user or item id")
        r = float(rating) if rating is not None else float("nan")
        return str(user), str(item), r, _seconds(ts)

    def add(self, user: Any, item: Any, rating: Any, ts: Any) -> None:
        u, i, r, t = self.convert(user, item, rating, ts)
        self.users.append(u)
        self.items.append(i)
        self.ratings.append(r)
        self.ts.append(t)

    def add_record(self, d: dict[str, Any]) -> None:
        """One review line (any vintage) or one regrouped sample user line."""
        if "history" in d:
            user = d.get("user_id")
            reviews = list(d.get("history") or [])
            held = d.get("heldout")
            reviews += held if isinstance(held, list) else ([held] if held else [])
            parsed = []
            for r in reviews:  # validate the whole line before adding any of it
                item = r.get("parent_asin") or r.get("asin")
                ts = r["timestamp_ms"] / 1000.0 if r.get("timestamp_ms") is not None else r["timestamp"]
                parsed.append((self.convert(user, item, r.get("rating"), ts), r.get("product")))
            for (u, item, rating, ts), product in parsed:
                self.users.append(u)
                self.items.append(item)
                self.ratings.append(rating)
                self.ts.append(ts)
                if isinstance(product, dict) and item not in self.meta:
                    self.meta[item] = meta_row({**product, "parent_asin": item})
        elif "reviewerID" in d:
            self.add(d["reviewerID"], d.get("asin"), d.get("overall"), d["unixReviewTime"])
        elif "user_id" in d:
            self.add(d["user_id"], d.get("parent_asin") or d.get("asin"), d.get("rating"), d["timestamp"])
        else:
            raise KeyError(f"not a review record (keys: {', '.join(list(d)[:6])})")


def load_amazon(path: Path, *, strict: bool = False, progress: Progress = None) -> Dataset:
    """Load Amazon reviews (+ metadata) from a folder or a review file; see the module docstring."""
    path = Path(path)
    reviews_files, meta_files = discover(path)
    report = LoadReport()
    acc = _Reviews()
    for f in reviews_files:
        for lineno, line in iter_lines(f, progress):
            if not line.strip():
                continue
            try:
                d = _parse(line)
                if not isinstance(d, dict):
                    raise TypeError("not a JSON object")
                acc.add_record(d)
            except (ValueError, SyntaxError, KeyError, TypeError, AttributeError) as e:
                reason = f"missing field {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
                bad_line(report, strict, f, lineno, reason[:200])
    seen = dict.fromkeys(acc.items)
    meta = acc.meta
    for f in meta_files:
        for lineno, line in iter_lines(f, progress):
            if not line.strip():
                continue
            ids = _ID_RE.findall(line)
            if ids and not any(i in seen for i in ids):
                continue  # a product nobody reviewed: skip before the (slow) full parse
            try:
                d = _parse(line)
                if not isinstance(d, dict):
                    raise TypeError("not a JSON object")
                iid = d.get("parent_asin") or d.get("asin")
                if iid is None:
                    raise KeyError("asin")
                if str(iid) not in seen:
                    continue
                row = meta_row(d)
            except (ValueError, SyntaxError, KeyError, TypeError, AttributeError) as e:
                reason = f"missing field {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
                bad_line(report, strict, f, lineno, reason[:200])
                continue
            meta[row["item"]] = _merge(meta.get(row["item"]), row)
    inter = interactions_frame(acc.users, acc.items, ts=acc.ts, ratings=acc.ratings)
    acc.users = acc.ts = acc.ratings = []  # type: ignore[assignment]
    items = items_frame((meta[i] for i in seen if i in meta), interaction_items=seen)
    name = path.name if path.is_dir() else _category_of(path)
    return Dataset(inter, items, Ordering.TIMESTAMP, name=name, report=report)
