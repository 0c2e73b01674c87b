"""``kgrec build --bulk``: a first load into the local Neo4j through ``neo4j-admin database import``.

The build's rows (the same :mod:`kgrec.kg.graph_rows` generators the MERGE path upserts) go to
typed CSV files with the importer's headers (:class:`ImportWriter` has the store's
``upsert_nodes`` / ``upsert_relationships`` signatures, so ``kg/build.py`` writes through it as
through a store); then the home's local server is stopped, the database replaced by the import,
and the server started again (:mod:`kgrec.kg.neo4j_server.admin_import`).

What comes out equals the MERGE path's graph: every node key is an ``ID`` space per label
(``id:ID(Item)``), each property column is typed from the values (``year:long``,
``rating:double``, ``title`` a string, arrays as ``long[]`` …), and rows are split into one file
per combination of present properties and their types, as the store's ``_upsert`` runs one
statement per run of rows with the same keys: so a missing (``None``) value is absent, never an
empty string, and an int stays an int beside a float. Duplicate keys and relationships merge as
MERGE does (identical duplicates; differing ones are refused), and a relationship whose endpoint
is not a node is left out, as MERGE's MATCH leaves it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self
from urllib.parse import urlsplit

from kgrec.errors import ConfigError, DataError, StoreError
from kgrec.kg import schema
from kgrec.kg.store import GraphStore, Progress, _checked_key
from kgrec.settings import Settings

#: between the elements of an array property (the importer's ``--array-delimiter``)
ARRAY_DELIMITER = "\x1f"
_LONG_MIN, _LONG_MAX = -(2 ** 63), 2 ** 63 - 1
_TYPES = {str: "string", bool: "boolean", int: "long", float: "double"}
_SPECIAL_FLOATS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
#: rows between two progress updates
_TICK = 10_000
_NONE = type(None)


QUOTE, QUOTES = '"', '""'


def quote(text: str) -> str:
    """A CSV string cell: always quoted, inner quotes doubled (RFC 4180; the importer's default)."""
    return '"' + text.replace(QUOTE, QUOTES) + '"'


def _long(value: Any) -> str:
    v = int(value)
    if not _LONG_MIN <= v <= _LONG_MAX:
        raise DataError(f"integer property {v} does not fit Neo4j's 64-bit long")
    return str(v)


def _double(value: Any) -> str:
    text = repr(float(value))  # the shortest text that reads back as the same double
    return _SPECIAL_FLOATS.get(text, text)


_SCALAR_CELLS: dict[str, Callable[[Any], str]] = {
    "string": lambda v: quote(str(v)), "boolean": lambda v: "true" if v else "false", "long": _long,
    "double": _double}


def csv_type(value: Any) -> str:
    """The importer's type of one property value: string, boolean, long, double, or ``T[]``."""
    exact = _TYPES.get(type(value))
    if exact is not None:
        return exact
    if isinstance(value, (list, tuple)):
        kinds = {csv_type(v) for v in value}
        if len(kinds) != 1 or next(iter(kinds)).endswith("[]"):
            raise DataError(f"array property {value!r}: the import needs a non-empty list of one scalar type")
        return kinds.pop() + "[]"
    for base, name in ((bool, "boolean"), (int, "long"), (float, "double"), (str, "string")):
        if isinstance(value, base):
            return name
    raise DataError(f"property value {value!r} ({type(value).__name__}) cannot be imported")


def _array_cell(kind: str) -> Callable[[Any], str]:
    element = str if kind == "string" else _SCALAR_CELLS[kind]

    def cell(values: Any) -> str:
        parts = [element(v) for v in values]
        if any(ARRAY_DELIMITER in p for p in parts):
            raise DataError(f"array element in {values!r} holds the array delimiter U+001F")
        joined = ARRAY_DELIMITER.join(parts)
        return quote(joined) if kind == "string" else joined

    return cell


def cell_writer(kind: str) -> Callable[[Any], str]:
    """The cell formatter for values of importer type ``kind``."""
    return _array_cell(kind[:-2]) if kind.endswith("[]") else _SCALAR_CELLS[kind]


def header_field(name: str, kind: str) -> str:
    """``title`` for a string, ``year:long``, ``tags:string[]`` …"""
    name = schema.check_property(name)
    return name if kind == "string" else f"{name}:{kind}"


@dataclass
class CsvFile:
    """One importer input: a header line and rows of one label (or type) and one property shape."""

    kind: str  # "nodes" | "relationships"
    name: str  # label or relationship type
    path: Path
    header: list[str]
    cells: list[Callable[[Any], str]]
    constant: str  # the :LABEL or :TYPE cell
    rows: int = 0
    multiline: bool = False
    handle: IO[str] | None = field(default=None, repr=False)
    #: for a shape of numbers only: the row's cells as one %-format ("%d,%r"), and the long cells' positions
    numeric: str | None = None
    longs: tuple[int, ...] = ()

    def write(self, ids: str, values: Iterable[Any], *, exact: bool = False) -> None:
        """One row: the id cells, the label or type, the property cells. ``exact``: the values are
        exactly int / float / str / bool (not subclasses), so numbers may take the one-format path."""
        cells = self._numeric(tuple(values)) if exact and self.numeric is not None else None
        if cells is None:
            cells = ",".join([c(v) for c, v in zip(self.cells, values)])
        line = f"{ids},{self.constant},{cells}" if self.cells else f"{ids},{self.constant}"
        if not self.multiline and ("\n" in line or "\r" in line):
            self.multiline = True
        self.handle.write(line + "\n")  # type: ignore[union-attr]
        self.rows += 1

    def _numeric(self, values: tuple[Any, ...]) -> str | None:
        """The cells in one C-level format (a call per cell costs more than the formatting), or None
        for the per-cell path: a NaN or infinity (``%r`` spells them nan / inf, which no finite
        double's repr contains an n of) or a long beyond 64 bits (the per-cell path raises)."""
        cells = self.numeric % values  # type: ignore[operator]
        if "n" in cells:
            return None
        for i in self.longs:
            if not _LONG_MIN <= values[i] <= _LONG_MAX:
                return None
        return cells


class ImportWriter:
    """The importer's CSV files under ``directory`` (emptied first), written through the store's
    ``upsert_nodes`` / ``upsert_relationships`` signatures (nodes before the relationships
    between them, as for the store)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        self.files: list[CsvFile] = []
        self._shapes: dict[tuple[str, str], dict[tuple[Any, ...], CsvFile]] = {}  # (kind, name) -> shape -> file
        self._seen: dict[str, dict[str, int]] = {}  # label or type -> key -> fingerprint of its properties
        #: relationships left out per type because an endpoint is not a node (MERGE's MATCH finds none)
        self.dangling: dict[str, int] = {}

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def upsert_nodes(self, label: str, rows: Iterable[dict[str, Any]], *, batch_size: int | None = None,
                     progress: Progress | None = None) -> int:
        """Node rows ``{"key", "props"}`` into ``nodes-NNN-<label>.csv`` files; the rows taken."""
        label = schema.check_label(label)
        key_name = schema.key_of(label)

        def keyed() -> Iterator[tuple[str, str, dict[str, Any]]]:
            for row in rows:
                key = _checked_key(label, row)["key"]
                props = row.get("props") or {}
                if key_name in props:
                    raise DataError(f"{label} {key!r}: a property may not rewrite the key {key_name!r}")
                yield key, quote(key), props

        return self._write("nodes", label, f"{key_name}:ID({label}),:LABEL", keyed(), progress)

    def upsert_relationships(self, rel_type: str, rows: Iterable[dict[str, Any]], *,
                             batch_size: int | None = None, progress: Progress | None = None,
                             fresh: bool = False) -> int:
        """Relationship rows ``{"src", "dst", "props"}`` into ``relationships-NNN-<type>.csv``
        (an import is always into an empty database: ``fresh`` changes nothing)."""
        rel_type = schema.check_rel_type(rel_type)
        src_label, dst_label = schema.REL_ENDPOINTS[rel_type]
        sources, targets = self._seen.get(src_label, {}), self._seen.get(dst_label, {})

        def keyed() -> Iterator[tuple[str | None, str, dict[str, Any]]]:
            for row in rows:
                src, dst = row.get("src"), row.get("dst")
                if src in sources and dst in targets:  # both are node keys, so strings
                    yield (f"{src}\x00{dst}", f'"{src.replace(QUOTE, QUOTES)}","{dst.replace(QUOTE, QUOTES)}"',
                           row.get("props") or {})  # quote() inlined: two calls a row
                else:
                    yield None, "", {}

        return self._write("relationships", rel_type, f":START_ID({src_label}),:END_ID({dst_label}),:TYPE",
                           keyed(), progress)

    def _write(self, kind: str, name: str, ids_header: str,
               keyed: Iterable[tuple[str | None, str, dict[str, Any]]], progress: Progress | None) -> int:
        """Write ``(key, id cells, properties)`` rows of label or type ``name``, each to the file of
        its property shape; a ``None`` key is a relationship without both endpoints (left out). A key
        seen before is skipped when its properties are the same, refused when not. The rows taken."""
        seen = self._seen.setdefault(name if kind == "nodes" else f":{name}", {})
        shapes = self._shapes.setdefault((kind, name), {})
        n = 0
        for key, ids, props in keyed:
            n += 1
            if progress and n % _TICK == 0:
                progress(_TICK)
            if key is None:
                self.dangling[name] = self.dangling.get(name, 0) + 1
                continue
            types = tuple(map(type, props.values()))
            if _NONE in types:  # None: the property is absent, as MERGE's SET removes it
                props = {k: v for k, v in props.items() if v is not None}
                types = tuple(map(type, props.values()))
            try:
                fp = hash(tuple(props.items()))
            except TypeError:  # a list value
                fp = hash(repr(sorted(props.items())))
            old = seen.get(key)
            if old is None:
                seen[key] = fp
            elif old == fp:  # MERGE would change nothing
                continue
            else:
                raise DataError(f"{name} {key.replace(chr(0), ' -> ')!r} comes twice with different properties; "
                                "the bulk import cannot merge them as MERGE does (build without --bulk)")
            out = shapes.get((tuple(props), types))
            if out is not None:  # found by exact Python types
                out.write(ids, props.values(), exact=True)
            else:
                self._open(kind, name, ids_header, props, types).write(
                    ids, props.values(), exact=all(t in _TYPES for t in types))
        if progress and n % _TICK:
            progress(n % _TICK)
        return n

    def _open(self, kind: str, name: str, ids_header: str, props: dict[str, Any], types: tuple[Any, ...]) -> CsvFile:
        """The file of ``name``'s rows with exactly these property names and import types, opened on
        first use (found by the values' Python types, or by their import types for arrays and subclasses)."""
        shapes = self._shapes[kind, name]
        kinds = tuple(csv_type(v) for v in props.values())
        exact = all(t in _TYPES for t in types)
        found = shapes.get((tuple(props), kinds))
        if found is None:
            path = self.directory / f"{kind}-{len(self.files) + 1:03d}-{name}.csv"
            header = [ids_header, *(header_field(k, t) for k, t in zip(props, kinds))]
            handle = open(path, "w", encoding="utf-8", newline="", buffering=1 << 20)  # noqa: SIM115 (close())
            handle.write(",".join(header) + "\n")
            found = CsvFile(kind, name, path, header, [cell_writer(t) for t in kinds], name, handle=handle)
            if kinds and all(t in ("long", "double") for t in kinds):
                found.numeric = ",".join("%d" if t == "long" else "%r" for t in kinds)
                found.longs = tuple(i for i, t in enumerate(kinds) if t == "long")
            self.files.append(found)
            shapes[tuple(props), kinds] = found
        if exact:  # scalars of exact types: their Python types name the shape
            shapes[tuple(props), types] = found
        return found

    def close(self) -> None:
        for f in self.files:
            if f.handle is not None:
                f.handle.close()
                f.handle = None

    def rows(self, kind: str) -> int:
        """Rows written to the files of ``kind`` (nodes or relationships)."""
        return sum(f.rows for f in self.files if f.kind == kind)

    def arguments(self) -> list[str]:
        """The importer's input options, naming the files relative to :attr:`directory`."""
        args = [f"--{f.kind}={f.path.name}" for f in self.files]
        multiline = [f.path.name for f in self.files if f.multiline]
        if multiline:  # only these files pay for the slower multi-line parser
            args += ["--multiline-fields-format=v2", "--multiline-fields=" + ",".join(multiline)]
        return [*args, "--array-delimiter=U+001F"]


def local_server(settings: Settings) -> Any:
    """The :class:`~kgrec.kg.neo4j_server.LocalNeo4j` that ``settings.graph_uri`` names: the local
    server ``kgrec neo4j start`` runs for this home. FalkorDB, a remote Neo4j or another home's
    server is refused (ConfigError), before anything is opened or loaded."""
    uri = settings.graph_uri or ""
    if not uri or uri.startswith("falkordb://"):
        raise ConfigError("--bulk imports into the local Neo4j of this home (`kgrec neo4j start`, then "
                          "--graph neo4j://127.0.0.1:PORT); the store is FalkorDB: build without --bulk")
    from kgrec.kg import neo4j_server
    from kgrec.kg.store import redact_uri

    home = settings.home / "neo4j"
    server = neo4j_server.find_running(home)
    try:
        parts = urlsplit(uri)
        local = parts.hostname in {"127.0.0.1", "localhost"} and server is not None and parts.port == server.bolt_port
    except ValueError:
        local = False
    if not local:
        why = f"it runs at {server.bolt_uri}" if server else "none runs there (`kgrec neo4j start`)"
        raise ConfigError(f"--bulk stops, imports into and restarts the local Neo4j of this home ({home}), "
                          f"and {redact_uri(uri)} is not it: {why}; build a remote Neo4j without --bulk")
    if settings.neo4j_database not in (None, "neo4j"):
        raise ConfigError(f"--bulk imports into the local server's database neo4j, not {settings.neo4j_database!r}")
    return server


def check_target(store: GraphStore, settings: Settings, *, fresh: bool) -> Any:
    """:func:`local_server` (``store`` must be its Neo4j), and an empty database unless ``fresh``
    (the import replaces it all)."""
    if store.backend != "neo4j":
        raise ConfigError(f"--bulk imports into the local Neo4j of this home; the store is {store.backend} "
                          f"at {store.uri}: build without --bulk")
    server = local_server(settings)
    if not fresh:
        nodes = sum(store.counts()["nodes"].values())
        if nodes:
            raise ConfigError(f"{store.uri} holds {nodes:,} nodes and --bulk replaces the whole database: "
                              "rerun with --fresh to replace it, or build without --bulk")
    return server


def import_dir(server: Any) -> Path:
    """Where the CSV files go: the local server's import directory."""
    return Path(server.home) / "import" / "kgrec-bulk"


def import_files(server: Any, writer: ImportWriter, progress: Any) -> Any:
    """Stop the server, import ``writer``'s files, start it again (an
    :class:`~kgrec.kg.neo4j_server.admin_import.ImportRun`); the files are removed afterwards,
    and kept (the error says where) when the import fails."""
    from kgrec.kg.neo4j_server import admin_import

    writer.close()
    try:
        with progress.stage("bulk import: stop Neo4j, neo4j-admin import, restart", admin_import.STEPS) as advance:
            run = admin_import.import_full(server, writer.directory, writer.arguments(), advance=advance)
    except StoreError as e:
        raise StoreError(f"{e}\n  the CSV files are kept in {writer.directory}") from e
    want = {"nodes": writer.rows("nodes"), "relationships": writer.rows("relationships")}
    got = {k: run.imported.get(k, 0) for k in want}
    if got != want:
        raise StoreError(f"neo4j-admin imported {got} but {want} were written to {writer.directory} "
                         f"(log {run.log})")
    shutil.rmtree(writer.directory, ignore_errors=True)
    return run
