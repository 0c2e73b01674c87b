"""Data set loaders: each turns a public data set layout into the canonical tables of
:mod:`kgrec.kg.tables` (a :class:`~kgrec.kg.tables.Dataset`).

``load_dataset(kind, path)`` picks the loader by kind; see each module for its layout.
Malformed lines are counted in ``Dataset.report`` (``strict=True`` raises
:class:`~kgrec.errors.DataError` ``file:line: reason`` instead). ``progress(n)`` is called
with the number of lines read since the previous call, about every 10k lines.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from kgrec.errors import ConfigError, DataError
from kgrec.kg.loaders.amazon import load_amazon
from kgrec.kg.loaders.kgat import load_kgat, load_kgat_with_test
from kgrec.kg.loaders.movielens import load_movielens
from kgrec.kg.loaders.recbole import load_recbole
from kgrec.kg.loaders.sequences import load_sequences
from kgrec.kg.tables import Dataset

Loader = Callable[..., Dataset]

#: kind → loader; ``sasrec`` is the plain ``user item`` sequence file.
LOADERS: dict[str, Loader] = {
    "movielens": load_movielens,
    "amazon": load_amazon,
    "recbole": load_recbole,
    "sasrec": load_sequences,
    "kgat": load_kgat,
}
KINDS: tuple[str, ...] = tuple(LOADERS)


def load_dataset(
    kind: str,
    path: Path,
    *,
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Dataset:
    """Load the data set at ``path`` with the loader for ``kind`` (one of :data:`KINDS`).

    Raises :class:`ConfigError` for an unknown kind and :class:`DataError` when ``path`` does
    not exist or the data is unusable (or, with ``strict``, on the first malformed line).
    """
    loader = LOADERS.get(str(kind).strip().lower())
    if loader is None:
        raise ConfigError(f"unknown data set kind {kind!r}; allowed: {', '.join(KINDS)}")
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    return loader(path, strict=strict, progress=progress)


__all__ = [
    "KINDS",
    "LOADERS",
    "load_amazon",
    "load_dataset",
    "load_kgat",
    "load_kgat_with_test",
    "load_movielens",
    "load_recbole",
    "load_sequences",
]
