"""Options and plumbing shared by the ``kgrec`` command modules (:mod:`kgrec.cli`,
:mod:`kgrec.cli_servers`): option types, settings from options, the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kgrec.choices import Device
from kgrec.errors import ConfigError

MappingOpt = Annotated[Path | None, typer.Option(
    "--mapping", help="Item id → DBpedia IRI file (tsv: id, title, IRI)")]
SparqlOpt = Annotated[str | None, typer.Option(
    "--sparql", help="SPARQL endpoint URL (default KGREC_SPARQL_ENDPOINT, else public DBpedia)")]
SparqlDataOpt = Annotated[Path | None, typer.Option(
    "--sparql-data", help="Serve the N-Triples files in DIR with a local Oxigraph for this run")]
GraphOpt = Annotated[str | None, typer.Option(
    "--graph", help="Graph URI: neo4j://…, bolt://…, falkordb://host:port; unset = embedded FalkorDB",
    envvar="KGREC_GRAPH_URI", show_envvar=True)]
HomeOpt = Annotated[Path | None, typer.Option(
    "--home", help="State dir (default ./.kgrec)", envvar="KGREC_HOME", show_envvar=True)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
DeviceOpt = Annotated[Device, typer.Option(help="Where torch computes")]
BucketsOpt = Annotated[str | None, typer.Option(
    help="Prefix-length buckets of the fusion plan, each chosen on validation (default 0,1,2-4,5+)")]


def settings_for(**overrides: Any) -> Any:
    from pydantic import ValidationError

    from kgrec.settings import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(f"invalid setting {'.'.join(map(str, first['loc']))}: {first['msg']}") from e


def store_for(settings: Any, preload: str | None = None) -> Any:
    """The store ``settings`` name. ``preload``: a module to import on a daemon thread while the
    store starts (torch: about 1.2 s, against about 0.6 s of waiting for the embedded database to
    load its graph); the command's own import of ``preload`` then waits for the thread's."""
    from kgrec.kg.store import open_store

    if preload is not None:
        import importlib
        import threading

        threading.Thread(target=importlib.import_module, args=(preload,), name=f"preload-{preload}",
                         daemon=True).start()
    return open_store(settings)
