"""Terminal output for the CLI: rich tables and JSON-safe values (no library code uses it)."""

from __future__ import annotations

from typing import Any


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr)


def print_counts(counts: dict[str, dict[str, int]]) -> None:
    from rich.table import Table

    table = Table(title="graph")
    table.add_column("kind")
    table.add_column("name")
    table.add_column("count", justify="right")
    for name, n in counts["nodes"].items():
        table.add_row("node", name, f"{n:,}")
    for name, n in counts["relationships"].items():
        table.add_row("relationship", name, f"{n:,}")
    console().print(table)


def print_rows(rows: list[dict[str, Any]], title: str | None = None) -> None:
    from rich.table import Table

    table = Table(title=title)
    cols = list(rows[0]) if rows else []
    for c in cols:
        table.add_column(str(c))
    for r in rows:
        table.add_row(*[fmt(r[c]) for c in cols])
    console().print(table)
    if not rows:
        console().print("(no rows)")


def fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list) and len(v) > 8:
        return f"[{', '.join(fmt(x) for x in v[:8])}, … ({len(v)} values)]"
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return "; ".join(v)  # names (persona genres, people, items): readable, no quotes
    return str(v)


def jsonable(v: Any) -> Any:
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if hasattr(v, "properties"):  # a node / edge object
        return {"labels": list(getattr(v, "labels", []) or []), "properties": jsonable(v.properties)}
    return str(v)
