"""The ``kgrec`` command line: it parses options and calls the library; nothing more.

Every :class:`kgrec.errors.KgrecError` becomes a one-line message on stderr and the
error's exit code. Heavy libraries load inside the commands, so ``kgrec --help`` is instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from kgrec.choices import DatasetKind, Device, Encoder, Features, Protocol
from kgrec.cli_inspect import explain, personas_app, query, status
from kgrec.cli_options import (
    BucketsOpt,
    DeviceOpt,
    GraphOpt,
    HomeOpt,
    JsonOpt,
    MappingOpt,
    SparqlDataOpt,
    SparqlOpt,
)
from kgrec.cli_options import settings_for as _settings
from kgrec.cli_options import store_for as _store
from kgrec.cli_servers import db_app, dbpedia_app, neo4j_app, serve
from kgrec.display import console as _console
from kgrec.display import print_counts as _print_counts
from kgrec.display import print_rows as _print_rows
from kgrec.errors import ConfigError, KgrecError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="kgrec: a knowledge-graph, persona-driven session recommender.")


# --- build / status / query ------------------------------------------------------------------
@app.command()
def build(
    dataset: Annotated[DatasetKind, typer.Option("--dataset", "-d", help="Input layout (see the README)")],
    data: Annotated[Path, typer.Option("--data", help="File or folder with the data")],
    graph: GraphOpt = None,
    home: HomeOpt = None,
    k_core: Annotated[int, typer.Option(help="Iterative k-core on users and items (<=1: off)")] = 5,
    session_gap: Annotated[float, typer.Option(help="Inactivity gap that splits sessions, hours")] = 24.0,
    session_len: Annotated[int | None, typer.Option(
        min=1, help="Order-only data: sessions of N consecutive items counted back from the last "
        "(default: leave-last-out)")] = None,
    embeddings: Annotated[bool, typer.Option(help="Encode item texts into Item.emb")] = True,
    embedding_model: Annotated[str | None, typer.Option(
        help="sentence-transformers name or path (default: offline all-MiniLM-L6-v2)")] = None,
    strict: Annotated[bool, typer.Option(help="Fail on the first malformed line")] = False,
    fresh: Annotated[bool, typer.Option(help="Clear the graph first (replace another build)")] = False,
    bulk: Annotated[bool, typer.Option(
        help="First load with neo4j-admin database import: writes the rows as CSV files under "
        "$KGREC_HOME/neo4j/import, stops the local Neo4j, replaces its database with the import, restarts it "
        "(same ports), then adds the constraints and the embeddings. Only for the local Neo4j that "
        "`kgrec neo4j start` runs for this home, and only into an empty database or with --fresh")] = False,
    dbpedia: Annotated[bool | None, typer.Option(
        "--dbpedia/--no-dbpedia", help="Link items to DBpedia (default: on when an endpoint or mapping is given)")]
    = None,
    mapping: MappingOpt = None,
    sparql: SparqlOpt = None,
    sparql_data: SparqlDataOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Load a data set, preprocess and split it, and write the knowledge graph."""
    from kgrec.kg.build import BuildOptions
    from kgrec.kg.workflow import LinkRequest, build_graph
    from kgrec.progress import RichProgress

    settings = _settings(home=home, graph_uri=graph)
    options = BuildOptions(kind=dataset, data=data, k_core=k_core, session_gap_s=session_gap * 3600,
                           session_len=session_len, embeddings=embeddings, embedding_model=embedding_model,
                           strict=strict, fresh=fresh, bulk=bulk).validate()
    request = LinkRequest(mapping=mapping, sparql=sparql, sparql_data=sparql_data)
    if bulk:  # refuse FalkorDB or a remote Neo4j before a store is opened
        from kgrec.kg.bulk_import import local_server

        local_server(settings)
    with _store(settings) as store:
        summary, linked = build_graph(store, settings, options, progress=RichProgress(),
                                      link=request if request.wanted(settings, dbpedia) else None)
    if linked is not None:
        _console(stderr=True).print(linked.describe())
    if as_json:
        typer.echo(json.dumps(summary.to_dict() | ({"dbpedia": linked.as_dict()} if linked else {}), indent=2))
        return
    con = _console()
    con.print(f"[bold]built[/] {summary.dataset} from {summary.data} in {summary.seconds.get('total', 0):.1f}s")
    con.print("split: " + ", ".join(f"{k}={v}" for k, v in summary.split.items()))
    if summary.malformed:
        con.print(f"[yellow]{summary.malformed} malformed lines skipped[/], first: "
                  + "; ".join(summary.malformed_examples))
    if "bulk import" in summary.seconds:
        con.print(f"bulk import: {summary.seconds['bulk import']:.1f}s, stop and restart included "
                  f"(neo4j-admin {summary.seconds['bulk import (neo4j-admin)']:.1f}s)")
    if summary.embedded:
        con.print(f"embeddings: {summary.embedded} items ({summary.embeddings_from_cache} from cache)")
    _print_counts(summary.counts)


app.command()(status)
app.command()(query)


@app.command()
def demo(home: HomeOpt = None, graph: GraphOpt = None,
         data: Annotated[Path | None, typer.Option(help="Demo data folder (default: the shipped data/demo)")]
         = None) -> None:
    """Build the shipped MovieLens-small sample end to end."""
    from kgrec.pipeline import run_demo
    from kgrec.progress import RichProgress

    settings = _settings(home=home, graph_uri=graph)
    run_demo(settings, RichProgress(), data_dir=data, console=_console())


@app.command("link-dbpedia")
def link_dbpedia(
    mapping: MappingOpt = None,
    sparql: SparqlOpt = None,
    sparql_data: SparqlDataOpt = None,
    labels: Annotated[bool, typer.Option("--labels/--no-labels", help="Match unmapped items by title")] = True,
    graph: GraphOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Link the items of an existing graph to DBpedia and bring in their 1-hop facts."""
    from kgrec.kg.workflow import LinkRequest
    from kgrec.kg.workflow import link_dbpedia as run
    from kgrec.progress import RichProgress

    settings = _settings(home=home, graph_uri=graph)
    request = LinkRequest(mapping=mapping, sparql=sparql, sparql_data=sparql_data, use_labels=labels)
    with _store(settings) as store:
        summary = run(store, settings, request, RichProgress())
        counts = store.counts()
    _console(stderr=True).print(summary.describe())
    if as_json:
        typer.echo(json.dumps(summary.as_dict() | {"counts": counts}, indent=2, default=str))
    else:
        _print_counts(counts)


train_app = typer.Typer(no_args_is_help=True, help="Train personas (HDGI) or the recommender.")
app.add_typer(train_app, name="train")
app.add_typer(personas_app, name="personas")


@train_app.command("personas")
def train_personas(
    encoder: Annotated[Encoder, typer.Option(help="gcn (HDGI-C) or gat (HDGI-A)")] = Encoder.gcn,
    epochs: Annotated[int, typer.Option(min=1)] = 200,
    metapaths: Annotated[str, typer.Option(help="Comma-separated: UIU, UIFIU, UIEIU, UIEEIU, UIIU")]
    = "UIU,UIFIU,UIEIU",
    hidden: Annotated[int, typer.Option(min=2, help="Persona dimension")] = 256,
    lr: Annotated[float, typer.Option(min=0.0)] = 1e-4,
    patience: Annotated[int, typer.Option(min=1, help="Early stopping on the training loss")] = 20,
    features: Annotated[Features, typer.Option(
        help="User input features: mean (LLM item embeddings), mean+cf (plus a collaborative SVD block), cf")]
    = Features.mean_cf,
    cf_dim: Annotated[int, typer.Option(min=1, help="Width of the collaborative block")] = 64,
    batch_size: Annotated[int | None, typer.Option(help="Mini-batch of users (default: full batch)")] = None,
    sampled: Annotated[bool, typer.Option(
        help="Neo4j: train and embed on GDS samples (gds.graph.sample.rwr) of --batch-size users each, so the "
             "client's memory follows the batch, not the graph; needs --features mean; writes no persona groups")]
    = False,
    nodes_per_user: Annotated[int, typer.Option(min=1, help="--sampled: sample size per batch user")] = 20,
    groups: Annotated[int | None, typer.Option("--groups", "-k", help="Persona groups (default: silhouette)")]
    = None,
    max_neighbors: Annotated[int, typer.Option(min=1, help="Cap on meta-path neighbours per user")] = 20,
    var_weight: Annotated[float, typer.Option(min=0.0, help="Weight of the variance hinge (VICReg) added to the DGI loss")]
    = 0.0,
    cov_weight: Annotated[float, typer.Option(min=0.0, help="Weight of the covariance penalty (VICReg) added to the DGI loss")]
    = 0.0,
    reg_normalize: Annotated[bool, typer.Option(help="The VICReg terms on the personas scaled to one norm (scale-free)")]
    = False,
    device: DeviceOpt = Device.cpu,
    seed: Annotated[int | None, typer.Option()] = None,
    graph: GraphOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Learn user personas with HDGI over the graph and write them back (User.persona, Persona groups)."""
    from kgrec.personas.workflow import train_personas as run
    from kgrec.progress import RichProgress

    settings = _settings(home=home, graph_uri=graph)
    names = tuple(m.strip().upper() for m in metapaths.split(",") if m.strip())
    with _store(settings) as store:
        summary = run(store, settings, encoder=encoder, epochs=epochs, metapaths=names, hidden=hidden, lr=lr,
                      patience=patience, features=features, cf_dim=cf_dim, batch_size=batch_size, k=groups, max_neighbors=max_neighbors,
                      var_weight=var_weight, cov_weight=cov_weight, reg_normalize=reg_normalize,
                      sampled=sampled, nodes_per_user=nodes_per_user, device=device, seed=seed,
                      progress=RichProgress())
    if as_json:
        typer.echo(json.dumps(summary.to_dict(), indent=2, default=str))
        return
    con = _console()
    con.print(f"[bold]personas[/] {summary.version}: {summary.n_users} users × {summary.dim} dims, "
              f"{summary.encoder}, best epoch {summary.best_epoch} (loss {min(summary.losses):.4f})")
    g = summary.geometry
    if g:
        con.print(f"persona geometry: cosine to the mean persona {g['cos_to_mean']:.3f}; PC1 share "
                  f"{g['pc1_share']:.3f} raw / {g['pc1_share_centred']:.3f} centred; effective rank "
                  f"{g['effective_rank']:.1f} raw / {g['effective_rank_centred']:.1f} centred of {g['dim']}; "
                  f"mean 5-NN cosine {g['knn5_cos']:.3f} raw / {g['knn5_cos_centred']:.3f} centred")
    for name, why in summary.dropped.items():
        con.print(f"[yellow]meta-path {name} dropped[/]: {why}")
    _print_rows([{"meta-path": k, "attention": v} for k, v in summary.attention.items()],
                "semantic attention per meta-path")
    _print_rows(summary.groups, "persona groups")


@train_app.command("recommender")
def train_recommender(
    epochs: Annotated[int, typer.Option(min=1, help="Max epochs (early stopping on validation NDCG@10)")] = 50,
    device: DeviceOpt = Device.cpu,
    seed: Annotated[int | None, typer.Option()] = None,
    buckets: BucketsOpt = None,
    graph: GraphOpt = None,
    home: HomeOpt = None,
) -> None:
    """Train SASRec, the session and persona retrievers and their per-bucket fusion on the build's split."""
    from kgrec.progress import RichProgress
    from kgrec.recommender.workflow import train as run

    settings = _settings(home=home, graph_uri=graph)
    with _store(settings) as store:
        path = run(store, settings, epochs=epochs, seed=seed, device=device, progress=RichProgress(), buckets=buckets)
    _console().print(f"recommender saved to {path}")


@app.command()
def recommend(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Known user id (persona of their past)")]
    = None,
    session: Annotated[list[str] | None, typer.Option(
        "--session", "-s", help="Item ids of the current session, in order (repeat the option)")] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="How many items")] = 10,
    write: Annotated[bool, typer.Option(help="Write (:User)-[:RECOMMENDED]->(:Item) back to the graph")] = False,
    run_id: Annotated[str | None, typer.Option("--run", help="Run id stored on RECOMMENDED edges")] = None,
    graph: GraphOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recommend the next items for a known user, or for an anonymous session (no past: no persona)."""
    from kgrec.recommender.workflow import recommend as run

    if user is None and not session:
        raise ConfigError("give --user ID, or --session ITEM (repeatable) for an anonymous session")
    settings = _settings(home=home, graph_uri=graph)
    with _store(settings, preload="torch" if session else None) as store:  # a session runs the encoders
        recs = run(store, settings, user=user, session=list(session or []), k=k, write=write, run_id=run_id)
    if as_json:
        typer.echo(json.dumps({"user": recs.user, "persona_source": recs.persona_source, "notes": recs.notes,
                               "items": [vars(r) for r in recs]}, indent=2))
        return
    for note in recs.notes:
        _console(stderr=True).print(f"[yellow]{note}[/]")
    _print_rows([{"rank": r.rank, "item": r.item, "title": r.title, "score": r.score,
                  "persona path": "yes" if r.from_persona else ""} for r in recs],
                f"recommendations ({'user ' + recs.user if recs.user else 'anonymous session'}, "
                f"persona: {recs.persona_source})")


@app.command()
def evaluate(
    seeds: Annotated[int, typer.Option(min=1, help="Number of seeds (mean ± std)")] = 3,
    epochs: Annotated[int, typer.Option(min=1, help="Max epochs per model")] = 50,
    device: DeviceOpt = Device.cpu,
    json_path: Annotated[Path | None, typer.Option("--json", help="Also copy the JSON results here")] = None,
    users: Annotated[int | None, typer.Option(
        min=1, help="Evaluate a seeded subsample of N held-out users (the whole catalogue is still ranked)")]
    = None,
    protocol: Annotated[Protocol, typer.Option(
        help="session: only the current session's prefix is seen, the past comes through the persona; "
        "loo: time-ordered leave-one-out over the full history")] = Protocol.session,
    exclude_seen: Annotated[bool, typer.Option(
        "--exclude-seen/--include-seen", help="Rank only items the user has not had before (the build drops "
        "repeated user-item pairs, so a seen item is never a target)")] = True,
    buckets: BucketsOpt = None,
    graph: GraphOpt = None,
    home: HomeOpt = None,
) -> None:
    """Every baseline and the full pipeline on the held-out sessions, full-catalogue ranking."""
    import shutil

    from kgrec.progress import RichProgress
    from kgrec.recommender.workflow import evaluate as run

    settings = _settings(home=home, graph_uri=graph)
    with _store(settings) as store:
        _, paths = run(store, settings, seeds=tuple(range(seeds)), epochs=epochs, device=device,
                       progress=RichProgress(), users=users, protocol=protocol, exclude_seen=exclude_seen,
                       buckets=buckets)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(paths["json"], json_path)
    md = Path(paths["md"]).read_text()
    typer.echo(md)
    _console(stderr=True).print("reports: " + ", ".join(str(p) for p in paths.values()))


app.command()(explain)
app.add_typer(dbpedia_app, name="dbpedia")
app.add_typer(neo4j_app, name="neo4j")
app.add_typer(db_app, name="db")
app.command()(serve)


def main() -> None:
    import logging
    import signal

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # SIGTERM unwinds like Ctrl-C, so the embedded database is snapshotted and stopped, not orphaned
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        app(standalone_mode=False)
    except KgrecError as e:
        _fail(str(e).splitlines()[0] if str(e) else type(e).__name__, e.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except (typer.TyperException, typer.Exit, typer.Abort) as e:  # Typer's (vendored click) own
        _click_exit(e)


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)


def _click_exit(e: Exception) -> None:
    """Typer's exceptions as exit codes: a usage error (unknown command or option, a bad value)
    is one line on stderr and exit 2, like a bad setting."""
    if isinstance(e, typer.Exit):
        sys.exit(e.exit_code)
    if isinstance(e, typer.Abort):
        sys.exit(1)
    ctx = getattr(e, "ctx", None)
    if type(e).__name__ == "NoArgsIsHelpError":  # a bare group: Typer has printed its help
        sys.exit(2)
    message = e.format_message() if hasattr(e, "format_message") else str(e)
    code = int(getattr(e, "exit_code", 1))
    if code == 2:  # click's UsageError and its subclasses (NoSuchOption, BadParameter, ...)
        message += f" (see `{ctx.command_path if ctx is not None else 'kgrec'} --help`)"
    _fail(" ".join(message.split()), code)


if __name__ == "__main__":
    main()
