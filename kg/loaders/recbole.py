"""RecBole atomic files: ``<name>.inter`` (+ ``<name>.item``), tab-separated with a typed header.

The header is read generically: each field is ``name:type`` with type ``token``,
``token_seq``, ``float`` or ``float_seq`` (sequences are space-separated). Roles are found by
field name, never by one file's fixed columns:

* user: the first ``token`` field whose name contains ``user``;
* item: the first ``token`` field whose name contains ``item``;
* sequence: a ``token_seq`` field whose name contains ``item`` (``item_id_list``): each line is
  one user's ordered history and the item field is its target. It is expanded into the
  history followed by the target → Ordering.ORDER (or TIMESTAMP when a ``float_seq`` field
  named ``*time*`` plus a ``*time*`` float give times);
* timestamp: a ``float``/``token`` field whose name contains ``time``; rating: ``rating``/``score``.

Plain ``.inter`` files with a timestamp give Ordering.TIMESTAMP, without one Ordering.ORDER
(file order). ``path`` is the folder or the ``.inter`` file. In a folder, ``<name>.inter`` is
preferred; failing that ``*.test.inter`` (in RecBole's split benchmark files the test sequences
contain the train/valid ones); failing that every ``.inter`` file is concatenated.

``.item`` fields map by name: ``title`` (token_seq joined by spaces), ``genre``/``class`` →
genres, ``categor`` → categories, ``brand``, ``author``, ``director``, ``publisher``, ``desc`` →
description, ``year``/``date`` → year.

Knowledge-graph files, when present beside the ``.inter`` (RecBole's KG-aware data sets):
``<name>.link`` (``item_id:token  entity_id:token``) and ``<name>.kg`` (``head_id:token
relation_id:token  tail_id:token``). They become :class:`~kgrec.kg.tables.ItemGraph`: a
relation maps to an allowed relationship type by the words in its last segment
(``film.film.directed_by`` → ``DIRECTOR``, ``dbo:starring`` → ``STARRING``, see
:data:`RELATION_WORDS`); triples of other relations are counted in ``ItemGraph.skipped``.
Entity ids that are not IRIs get the key ``recbole:<name>/<id>`` and the label ``<id>``
with underscores as spaces.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from kgrec.errors import DataError
from kgrec.kg.loaders._io import Progress, bad_line, interactions_frame, items_frame, iter_lines
from kgrec.kg.tables import Dataset, ItemGraph, LoadReport, Ordering

FIELD_TYPES = ("token", "token_seq", "float", "float_seq")
#: Words in a KG relation's last segment → the relationship type (first match wins).
RELATION_WORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("previous", "prequel"), "PREVIOUS_WORK"), (("subsequent", "sequel"), "SUBSEQUENT_WORK"),
    (("literary",), "LITERARY_GENRE"), (("genre",), "GENRE"), (("direct",), "DIRECTOR"),
    (("starring", "actor", "cast"), "STARRING"), (("composer", "music"), "MUSIC_COMPOSER"),
    (("author",), "AUTHOR"), (("writ",), "WRITER"), (("producer", "produced"), "PRODUCER"),
    (("publish",), "PUBLISHER"), (("series",), "SERIES"), (("country",), "COUNTRY"),
    (("language",), "LANGUAGE"), (("subject",), "SUBJECT"),
)


def parse_header(line: str, path: Path) -> list[tuple[str, str]]:
    """``"user_id:token\\titem_id_list:token_seq"`` → ``[("user_id", "token"), ...]``."""
    fields: list[tuple[str, str]] = []
    for raw in line.split("\t"):
        name, sep, typ = raw.strip().rpartition(":")
        if not sep or not name or typ not in FIELD_TYPES:
            raise DataError(f"{path}:1: bad RecBole header field {raw!r} (expected name:{'|'.join(FIELD_TYPES)})")
        fields.append((name, typ))
    return fields


def _find(fields: list[tuple[str, str]], needles: tuple[str, ...], types: tuple[str, ...]) -> int | None:
    for needle in needles:
        for i, (name, typ) in enumerate(fields):
            if needle in name.lower() and typ in types:
                return i
    return None


def _pick_inter(folder: Path) -> list[Path]:
    inters = sorted(folder.glob("*.inter"))
    if not inters:
        raise DataError(f"{folder}: no RecBole .inter file found")
    plain = [p for p in inters if p.name.count(".") == 1]
    if plain:
        return plain[:1]
    tests = [p for p in inters if p.name.endswith(".test.inter")]
    return tests[:1] if tests else inters


def _dataset_name(inter: Path) -> str:
    return inter.name.split(".", 1)[0]


def _records(lines: Iterable[tuple[int, str]], n: int, report: LoadReport, strict: bool,
             path: Path) -> Iterator[tuple[int, list[str]]]:
    """Non-blank lines split on tabs; a line with the wrong field count is reported and skipped."""
    for lineno, line in lines:
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != n:
            bad_line(report, strict, path, lineno, f"expected {n} tab-separated fields, got {len(parts)}")
            continue
        yield lineno, parts


def _read_inter(path: Path, report: LoadReport, strict: bool, progress: Progress, acc: dict[str, list]) -> bool:
    """Append one ``.inter`` file's rows to ``acc``; return whether it had timestamps."""
    lines = iter_lines(path, progress)
    first = next(lines, None)
    if first is None:
        raise DataError(f"{path}: empty file (expected a RecBole header)")
    fields = parse_header(first[1], path)
    iu = _find(fields, ("user_id", "user"), ("token",))
    ii = _find(fields, ("item_id", "item"), ("token",))
    iseq = _find(fields, ("item",), ("token_seq",))
    its = _find(fields, ("timestamp", "time"), ("float", "token"))
    itseq = _find(fields, ("timestamp", "time"), ("float_seq",))
    ir = _find(fields, ("rating", "score"), ("float", "token"))
    if iu is None or (ii is None and iseq is None):
        raise DataError(f"{path}:1: header needs a user token field and an item token or token_seq field")
    has_ts = its is not None and (iseq is None or itseq is not None)
    n = len(fields)
    users, items, ts, ratings, order = acc["users"], acc["items"], acc["ts"], acc["ratings"], acc["order"]
    nan = math.nan
    for lineno, parts in _records(lines, n, report, strict, path):
        user = parts[iu].strip()
        if not user:
            bad_line(report, strict, path, lineno, "empty user id")
            continue
        try:
            if iseq is not None:
                seq = parts[iseq].split()
                if ii is not None and parts[ii].strip():
                    seq.append(parts[ii].strip())
                if has_ts:
                    tseq = [float(x) for x in parts[itseq].split()]  # type: ignore[index]
                    if ii is not None and parts[ii].strip():
                        tseq.append(float(parts[its]))  # type: ignore[index]
                    if len(tseq) != len(seq):
                        raise ValueError(f"{len(seq)} items but {len(tseq)} timestamps")
                else:
                    tseq = [nan] * len(seq)
                r = float(parts[ir]) if ir is not None and parts[ir].strip() else nan
                users.extend([user] * len(seq))
                items.extend(seq)
                ts.extend(tseq)
                ratings.extend([r] * len(seq))
                order.extend(range(len(seq)))
            else:
                item = parts[ii].strip()  # type: ignore[index]
                if not item:
                    raise ValueError("empty item id")
                t = float(parts[its]) if its is not None else nan
                r = float(parts[ir]) if ir is not None and parts[ir].strip() else nan
                users.append(user)
                items.append(item)
                ts.append(t)
                ratings.append(r)
                order.append(-1)  # file order, filled in below
        except ValueError as e:
            bad_line(report, strict, path, lineno, str(e))
    return has_ts


def _item_role(name: str) -> str | None:
    n = name.lower()
    for needle, role in (("title", "title"), ("genre", "genres"), ("class", "genres"), ("categor", "categories"),
                         ("brand", "brand"), ("author", "author"), ("director", "director"),
                         ("publisher", "publisher"), ("desc", "description"), ("year", "year"),
                         ("date", "year")):
        if needle in n:
            return role
    return None


def _read_items(path: Path, report: LoadReport, strict: bool, progress: Progress) -> list[dict[str, Any]]:
    lines = iter_lines(path, progress)
    first = next(lines, None)
    if first is None:
        return []
    fields = parse_header(first[1], path)
    ii = _find(fields, ("item_id", "item"), ("token",))
    if ii is None:
        raise DataError(f"{path}:1: header has no item token field")
    roles: list[tuple[int, str, str]] = []
    taken: set[str] = set()
    for i, (name, typ) in enumerate(fields):
        role = _item_role(name) if i != ii else None
        if role and role not in taken:
            taken.add(role)
            roles.append((i, role, typ))
    rows: list[dict[str, Any]] = []
    n = len(fields)
    for _lineno, parts in _records(lines, n, report, strict, path):
        row: dict[str, Any] = {"item": parts[ii].strip()}
        for i, role, typ in roles:
            v = parts[i].strip()
            if role in ("genres", "categories"):
                row[role] = v.split() if typ.endswith("_seq") else ([v] if v else [])
            else:
                row[role] = " ".join(v.split()) if typ == "token_seq" else v
        rows.append(row)
    return rows


def load_recbole(path: Path, *, strict: bool = False, progress: Progress = None) -> Dataset:
    """Load RecBole atomic files from a folder or a ``.inter`` file; see the module docstring."""
    path = Path(path)
    if path.is_dir():
        inters, folder = _pick_inter(path), path
    elif path.suffix == ".inter":
        inters, folder = [path], path.parent
    else:
        raise DataError(f"{path}: expected a RecBole folder or a .inter file")
    report = LoadReport()
    acc: dict[str, list] = {k: [] for k in ("users", "items", "ts", "ratings", "order")}
    timed = [_read_inter(p, report, strict, progress, acc) for p in inters]  # read every file
    has_ts = all(timed)
    name = _dataset_name(inters[0])
    order = acc.pop("order")
    file_order = any(o < 0 for o in order)
    inter = interactions_frame(acc["users"], acc["items"], ts=acc["ts"], ratings=acc["ratings"],
                               order=None if file_order else order)
    del acc, order
    item_files = [folder / f"{name}.item"] if (folder / f"{name}.item").is_file() else sorted(folder.glob("*.item"))
    rows = _read_items(item_files[0], report, strict, progress) if item_files else []
    items = items_frame(rows, interaction_items=dict.fromkeys(inter["item"]))
    graph = read_item_graph(folder, name, report, strict, progress)
    return Dataset(inter, items, Ordering.TIMESTAMP if has_ts else Ordering.ORDER, name=name, report=report,
                   graph=graph)


def relation_type(relation: str) -> str | None:
    """The allowed relationship type a RecBole KG relation stands for, or None."""
    last = relation.replace(":", ".").replace("/", ".").rsplit(".", 1)[-1].lower()
    for words, rel_type in RELATION_WORDS:
        if any(w in last for w in words):
            return rel_type
    return None


def _entity_key(name: str, entity: str) -> str:
    return entity if "://" in entity else f"recbole:{name}/{entity}"


def _token_rows(path: Path, roles: tuple[tuple[str, ...], ...], report: LoadReport, strict: bool,
                progress: Progress) -> Iterator[list[str]]:
    """The token fields named by ``roles`` (one needle tuple per wanted field) of each line."""
    lines = iter_lines(path, progress)
    first = next(lines, None)
    if first is None:
        return
    fields = parse_header(first[1], path)
    idx = [_find(fields, needles, ("token",)) for needles in roles]
    if any(i is None for i in idx):
        raise DataError(f"{path}:1: header needs token fields for {', '.join(r[0] for r in roles)}")
    for lineno, parts in _records(lines, len(fields), report, strict, path):
        values = [parts[i].strip() for i in idx]  # type: ignore[index]
        if all(values):
            yield values
        else:
            bad_line(report, strict, path, lineno, "empty id")


def read_item_graph(folder: Path, name: str, report: LoadReport, strict: bool,
                    progress: Progress) -> ItemGraph | None:
    """``<name>.link`` + ``<name>.kg`` as an :class:`ItemGraph` (None when there is no ``.link``)."""
    import pandas as pd

    link_path, kg_path = folder / f"{name}.link", folder / f"{name}.kg"
    if not link_path.is_file():
        return None
    links = [(item, _entity_key(name, e)) for item, e in
             _token_rows(link_path, (("item",), ("entity",)), report, strict, progress)]
    triples, skipped, labels = [], {}, {}
    if kg_path.is_file():
        for head, rel, tail in _token_rows(kg_path, (("head",), ("relation",), ("tail",)), report, strict,
                                           progress):
            rel_type = relation_type(rel)
            if rel_type is None:
                skipped[rel] = skipped.get(rel, 0) + 1
                continue
            triples.append((_entity_key(name, head), rel_type, _entity_key(name, tail)))
            for e in (head, tail):
                labels[_entity_key(name, e)] = e.rsplit("/", 1)[-1].replace("_", " ")
    for _, e in links:
        labels.setdefault(e, e.rsplit("/", 1)[-1].replace("_", " "))
    return ItemGraph(pd.DataFrame(links, columns=["item", "entity"], dtype="object"),
                     pd.DataFrame(triples, columns=["head", "rel_type", "tail"], dtype="object"),
                     labels, skipped)
