"""The ``kgrec`` commands that run servers: the local DBpedia endpoint (``dbpedia serve``), the
local Neo4j (``neo4j``), the embedded FalkorDB kept between commands (``db``) and the HTTP API
(``serve``). :mod:`kgrec.cli` registers them; like it, they only parse and call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from kgrec.cli_options import GraphOpt, HomeOpt, JsonOpt
from kgrec.cli_options import settings_for as _settings
from kgrec.display import console as _console
from kgrec.errors import ConfigError, NotFoundError

dbpedia_app = typer.Typer(no_args_is_help=True, help="A local DBpedia SPARQL endpoint.")


@dbpedia_app.command("serve")
def dbpedia_serve(
    data: Annotated[Path | None, typer.Option(
        "--data", help="Folder of .nt/.nt.gz files (default ../shared/data/dbpedia, else data/demo/dbpedia)")]
    = None,
    port: Annotated[int | None, typer.Option(help="Port on 127.0.0.1 (default: a free one)")] = None,
    home: HomeOpt = None,
) -> None:
    """Serve DBpedia N-Triples with a local Oxigraph on loopback until Ctrl-C."""
    import time

    from kgrec.kg.dbpedia import default_data_files, serve
    from kgrec.kg.dbpedia.service import nt_files

    settings = _settings(home=home)
    files = nt_files(data) if data is not None else default_data_files()
    if not files:
        raise ConfigError("no DBpedia N-Triples found; pass --data DIR")
    with serve(files, settings.home / "oxigraph", port=port) as server:
        _console().print(f"SPARQL endpoint: {server.endpoint}  (export KGREC_SPARQL_ENDPOINT={server.endpoint})")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


# --- kgrec neo4j: the local Neo4j + GDS + APOC + Browser (assembled by `make neo4j`) ---------------
neo4j_app = typer.Typer(no_args_is_help=True, help="A local Neo4j 5 + GDS + APOC + Browser under $KGREC_HOME/neo4j.")


def _print_neo4j(info: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    for key in ("neo4j", "gds", "apoc", "bolt_uri", "browser_url", "password_file", "home", "pid"):
        _console().print(f"{key:>13}: {info[key]}")
    _console().print(f"export KGREC_GRAPH_URI={info['bolt_uri']}  (password: read from the 0600 file)", soft_wrap=True)
    if info.get("guide"):
        _console().print(f"The kgrec tour: open {info['browser_url']}, log in, and run  {info['guide']}",
                         soft_wrap=True)


@neo4j_app.command("start")
def neo4j_start(
    home: HomeOpt = None,
    bolt_port: Annotated[int | None, typer.Option(help="Bolt port on 127.0.0.1 (default 7687 if free)")] = None,
    http_port: Annotated[int | None, typer.Option(help="HTTP/Browser port (default 7474 if free)")] = None,
    heap: Annotated[str, typer.Option(help="JVM heap (-Xms/-Xmx)")] = "1g",
    pagecache: Annotated[str, typer.Option(help="Page cache size")] = "512m",
    as_json: JsonOpt = False,
) -> None:
    """Start (or find running) the local Neo4j; it runs until `kgrec neo4j stop`."""
    from kgrec.kg import neo4j_server

    settings = _settings(home=home)
    server = neo4j_server.start(settings.home / "neo4j", bolt_port=bolt_port, http_port=http_port,
                                heap=heap, pagecache=pagecache)
    _print_neo4j(neo4j_server.describe(server), as_json)


@neo4j_app.command("stop")
def neo4j_stop(home: HomeOpt = None) -> None:
    """Stop the local Neo4j of this home."""
    from kgrec.kg import neo4j_server

    stopped = neo4j_server.stop(_settings(home=home).home / "neo4j")
    _console().print("stopped" if stopped else "not running")


@neo4j_app.command("status")
def neo4j_status(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Versions (Neo4j, GDS, APOC), Bolt URI and Browser URL of the running local Neo4j."""
    from kgrec.kg import neo4j_server

    server = neo4j_server.find_running(_settings(home=home).home / "neo4j")
    if server is None:
        raise NotFoundError("the local Neo4j is not running: `kgrec neo4j start` (after `make neo4j`)")
    _print_neo4j(neo4j_server.describe(server), as_json)


# --- serve / db ---------------------------------------------------------------------------------
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind (loopback unless told otherwise)")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (each loads its own snapshot)")] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every request (costs throughput)")] = False,
    graph: GraphOpt = None,
    home: HomeOpt = None,
) -> None:
    """Serve recommendations over HTTP (OpenAPI at /docs) until Ctrl-C."""
    from kgrec.api import serve as run

    run(_settings(home=home, graph_uri=graph), host=host, port=port, workers=workers, access_log=access_log)


db_app = typer.Typer(no_args_is_help=True, help="The embedded FalkorDB of a home, kept running between commands.")


def _db_print(state: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(state, indent=2))
    elif state["running"]:
        typer.echo(f"running: pid {state['pid']}, 127.0.0.1:{state['port']}, data {state['data_dir']}, "
                   f"{'pinned' if state['pinned'] else 'not pinned'}, "
                   f"{'in use by kgrec commands' if state['in_use'] else 'no command attached'}")
    else:
        typer.echo(f"not running (data {state['data_dir']})")


@db_app.command("start")
def db_start(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Start the home's server and keep it running after commands end (until `kgrec db stop`)."""
    from kgrec.kg import falkordb_server

    _db_print(falkordb_server.pin(_settings(home=home).home), as_json)


@db_app.command("stop")
def db_stop(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Unpin the server: it stops now, or when the last command using it ends."""
    from kgrec.kg import falkordb_server

    _db_print(falkordb_server.unpin(_settings(home=home).home), as_json)


@db_app.command("status")
def db_status(home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Is the home's server running, pinned, in use?"""
    from kgrec.kg import falkordb_server

    _db_print(falkordb_server.status(_settings(home=home).home), as_json)
