"""The ``kgrec`` commands that look at the graph without changing it: ``status``, ``query``,
``explain`` and ``personas show / neighbours / plot``. :mod:`kgrec.cli` registers them (in its
help order); like it, they only parse and call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from kgrec.choices import Projection
from kgrec.cli_options import GraphOpt, HomeOpt, JsonOpt
from kgrec.cli_options import settings_for as _settings
from kgrec.cli_options import store_for as _store
from kgrec.display import console as _console
from kgrec.display import jsonable as _jsonable
from kgrec.display import print_counts as _print_counts
from kgrec.display import print_rows as _print_rows
from kgrec.errors import ConfigError

personas_app = typer.Typer(no_args_is_help=True, help="Look at the persona groups.")


def _emit(rows: list[dict[str, Any]], as_json: bool, title: str | None = None) -> None:
    """Rows as JSON (graph nodes as labels + properties) or as a table."""
    if as_json:
        typer.echo(json.dumps([_jsonable(r) for r in rows], indent=2))
    else:
        _print_rows(rows, title)


def status(graph: GraphOpt = None, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Node counts per label and relationship counts per type."""
    settings = _settings(home=home, graph_uri=graph)
    with _store(settings) as store:
        counts = store.counts()
    if as_json:
        typer.echo(json.dumps(counts, indent=2))
    else:
        _print_counts(counts)


def _parse_param(text: str) -> tuple[str, Any]:
    """``key=text`` gives a string (kgrec ids are strings); ``key:=json`` a typed value."""
    if ":=" in text and text.index(":=") < text.index("=") + 1:
        key, raw = text.split(":=", 1)
        try:
            return key.strip(), json.loads(raw)
        except json.JSONDecodeError as e:
            raise ConfigError(f"--param {text!r}: the value after := is not JSON ({e.msg})") from e
    if "=" not in text:
        raise ConfigError(f"--param {text!r}: expected key=value or key:=json")
    key, raw = text.split("=", 1)
    return key.strip(), raw


def query(
    cypher: Annotated[str | None, typer.Argument(help="A read-only Cypher query")] = None,
    file: Annotated[Path | None, typer.Option("-f", "--file", help="Read the query from a .cypher file")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="key=text (a string) or key:=json (typed)")] = None,
    graph: GraphOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a read query against the configured store (table or JSON rows)."""
    from kgrec.kg.workflow import read_query

    if (cypher is None) == (file is None):
        raise ConfigError("give either a Cypher string or -f FILE")
    if file is not None:
        if not file.is_file():
            raise ConfigError(f"no such query file: {file}")
        text = file.read_text(encoding="utf-8")
    else:
        text = str(cypher)
    params = dict(_parse_param(p) for p in (param or []))
    settings = _settings(home=home, graph_uri=graph)
    with _store(settings) as store:
        rows = read_query(store, text, params)
    _emit(rows, as_json)


def explain(
    user: Annotated[str, typer.Option("--user", "-u", help="User id")],
    item: Annotated[str, typer.Option("--item", "-i", help="Recommended item id")],
    n: Annotated[int, typer.Option("-n", min=1, help="How many explanation paths")] = 5,
    graph: GraphOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Why was ITEM recommended to USER: graph paths with a score and a reason in plain words."""
    from kgrec.recommender.workflow import explain as run_explain

    settings = _settings(home=home, graph_uri=graph)
    with _store(settings) as store:
        found = run_explain(store, settings, user=user, item=item, n=n)
    if as_json:
        typer.echo(json.dumps([e.to_dict() for e in found], indent=2))
        return
    if not found:
        _console().print(f"no explanation path between user {user} and item {item} in the graph")
        return
    for k, e in enumerate(found, 1):
        _console().print(f"{k}. [{e.kind}] {e.reason}  (score {e.score:.3f})")


@personas_app.command("show")
def personas_show(graph: GraphOpt = None, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """The persona table: sizes, labels, top features and entities."""
    from kgrec.personas.workflow import show_personas

    settings = _settings(home=home, graph_uri=graph)
    with _store(settings) as store:
        rows = show_personas(store)
    _emit(rows, as_json, "personas")


@personas_app.command("neighbours")
def personas_neighbours(
    user: Annotated[str, typer.Option("--user", "-u", help="User id")],
    k: Annotated[int, typer.Option("-k", min=1, help="How many neighbours")] = 10,
    graph: GraphOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The users with the nearest personas (the vector index on User.persona) and their groups."""
    from kgrec.personas.workflow import nearest_users

    settings = _settings(home=home, graph_uri=graph)
    with _store(settings) as store:
        rows = nearest_users(store, user, k)
    _emit(rows, as_json, f"nearest personas to user {user}")


@personas_app.command("plot")
def personas_plot(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="PNG path (default: reports/personas.png)")]
    = None,
    html: Annotated[Path | None, typer.Option(
        "--html", help="Write an interactive, self-contained HTML map here (hover a point: user, group, "
        "top items; click the legend: hide/show a group) instead of the PNG; with --out too, both")] = None,
    method: Annotated[Projection, typer.Option(help="2-D projection")] = Projection.tsne,
    sample: Annotated[int, typer.Option(min=10, help="Plot at most this many users")] = 3000,
    graph: GraphOpt = None,
    home: HomeOpt = None,
) -> None:
    """A map of persona vectors in 2-D, coloured and labelled by persona group: a PNG, or with
    --html an interactive HTML page that needs no network to view."""
    from kgrec.personas.workflow import plot_personas

    settings = _settings(home=home, graph_uri=graph)
    with _store(settings) as store:
        paths = plot_personas(store, settings, out=out, html=html, method=method, sample=sample)
    for path in paths:
        _console().print(f"wrote {path}")
