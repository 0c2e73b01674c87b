"""What the CLI calls for stage 2: load inputs from the graph, train, recommend, evaluate.

Every function takes ``(store, settings, ..., progress)``; heavy libraries load inside.

* Item embeddings come from ``Item.emb``, personas from ``User.persona`` (written by
  ``kgrec train personas``); with no persona in the graph, training and evaluation stop
  with a :class:`ModelError` that says so.
* The trained model lives in ``settings.models_dir / "recommender"``: the service files
  (:meth:`Recommender.save`) plus ``train.json`` (split fingerprint, persona version,
  chosen fusion, alpha, ...). A model trained on another build is refused.
* :func:`recommend`: a known user gets the persona stored in the graph; the model sees only
  the given session (none: the persona alone answers, as for a session's first item under
  the ``session`` protocol), and the user's train + valid items are not recommended again
  (``exclude_seen``, the default). **Unknown user ids are an
  error; pass --session without --user for the anonymous / cold-start path**, which uses
  an inductive persona from the ``inductive`` hook (item ids -> vector) when given, and
  no persona otherwise (the result says which: :attr:`RecList.persona_source`).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kgrec.errors import ConfigError, ModelError, NotFoundError
from kgrec.progress import NullProgress
from kgrec.settings import apply_torch_threads

MODEL_SUBDIR = "recommender"
TRAIN_META = "train.json"
NO_PERSONAS = "no personas in the graph; run `kgrec train personas` first"


@dataclass
class Inputs:
    split: Any
    vocab: Any  # ItemVocab over train/valid/test/items, as recommender.evaluate.prepare builds it
    item_table: np.ndarray  # [len(vocab), d] aligned to vocab (row 0 and items without Item.emb = 0)
    personas: dict[str, np.ndarray]
    history_user: dict[str, np.ndarray]  # user -> mean LLM embedding of their training items
    persona_version: str | None
    fingerprint: str


@dataclass
class Rec:
    rank: int
    item: str
    title: str | None
    score: float
    from_persona: bool


class RecList(list):
    """``list[Rec]`` plus where the persona came from (``graph``, ``inductive``, ``none``) and notes."""

    def __init__(self, rows=(), *, user: str | None = None, persona_source: str = "none",
                 run_id: str | None = None, notes: Sequence[str] = ()):
        super().__init__(rows)
        self.user, self.persona_source, self.run_id, self.notes = user, persona_source, run_id, list(notes)


def load_inputs(store, settings, progress=None) -> Inputs:
    """Split, ``Item.emb`` aligned to the vocabulary, ``User.persona`` and history-user vectors."""
    from kgrec.kg.artefacts import load_item_embeddings, load_split
    from kgrec.recommender.data import ItemVocab, align_item_embeddings, history_user_embeddings

    progress = progress or NullProgress()
    split = load_split(settings)
    vocab = ItemVocab.from_frames(split.train, split.valid, split.test, items=split.items)
    with progress.stage("read Item.emb", 1) as advance:
        ids, emb = load_item_embeddings(settings) or _stream_item_embeddings(store)
        advance(1)
    if not ids:
        raise ModelError("no item embeddings in the graph; run `kgrec build` with --embeddings")
    table = align_item_embeddings(vocab, emb, ids)
    with progress.stage("read User.persona", 1) as advance:
        users = store.stream_nodes("User", ["persona", "persona_version"])
        advance(1)
    personas = {u: np.asarray(p, dtype=np.float32) for u, p in zip(users.ids, users.properties["persona"])
                if p is not None}
    if not personas:
        raise ModelError(NO_PERSONAS)
    versions = Counter(str(v) for v in users.properties["persona_version"] if v is not None)
    return Inputs(split, vocab, table, personas, history_user_embeddings(split.train, vocab, table),
                  versions.most_common(1)[0][0] if versions else None, split.fingerprint())


def _stream_item_embeddings(store) -> tuple[list[str], np.ndarray]:
    """``Item.emb`` from the store (when the build left no copy under the home)."""
    items = store.stream_nodes("Item", ["emb"])
    ids = [i for i, v in zip(items.ids, items.properties["emb"]) if v is not None]
    return ids, np.asarray([v for v in items.properties["emb"] if v is not None], dtype=np.float32)


def model_dir(settings) -> Path:
    return Path(settings.models_dir) / MODEL_SUBDIR


def train(store, settings, *, epochs: int = 50, seed: int | None = None, device: str = "cpu", progress=None,
          fusions: Sequence[str] = ("prefix", "gate"), k: int = 100, max_len: int = 50,
          sasrec_kwargs=None, retriever_kwargs=None, fit_kwargs=None) -> Path:
    """Train the production :class:`Recommender` with :func:`kgrec.recommender.recipe.train_pipeline`
    under the ``session`` protocol (the product's task) and save it; returns the model directory."""
    from kgrec.recommender.recipe import check_fusions, prepare, train_pipeline

    fusions = check_fusions(fusions)
    progress = progress or NullProgress()
    apply_torch_threads(settings)
    seed = settings.seed if seed is None else seed
    inp = load_inputs(store, settings, progress)
    prep = prepare(inp.split, inp.item_table, inp.personas, inp.history_user, item_ids=inp.vocab.ids,
                   max_len=max_len, protocol="session", exclude_seen=True)
    t0 = time.perf_counter()
    with progress.stage("train recommender", epochs * (1 + len(fusions))) as advance:
        say = progress.note

        def tick(msg: str) -> None:
            say(msg)
            advance(1)

        tp = train_pipeline(prep, seed, epochs=epochs, fusions=fusions, k=k, device=device, progress=tick,
                            sasrec_kwargs=sasrec_kwargs, retriever_kwargs=retriever_kwargs, fit_kwargs=fit_kwargs)
    return save_pipeline(settings, inp, prep, tp, k=k, epochs=epochs, device=device,
                         seconds=time.perf_counter() - t0)


def save_pipeline(settings, inp: Inputs, prep, tp, *, k: int, epochs: int, device: str, seconds: float) -> Path:
    """Save a :class:`~kgrec.recommender.recipe.TrainedPipeline` as the production recommender."""
    from kgrec.recommender.service import Recommender

    rec = Recommender(prep.vocab, tp.retriever.cpu(), tp.sasrec.cpu(), alpha=tp.alpha, k=k)
    out = rec.save(model_dir(settings))
    meta = {"fingerprint": inp.fingerprint, "persona_version": inp.persona_version, "protocol": "session",
            "fusion": tp.fusion, "fusion_valid_NDCG@10": tp.fusion_valid, "sasrec_valid_NDCG@10": tp.sasrec_valid,
            "alpha": tp.alpha, "k": k, "epochs": epochs, "seed": tp.seed, "device": device,
            "n_items": len(prep.vocab) - 1, "n_personas": len(inp.personas),
            "persona_dim": int(next(iter(inp.personas.values())).shape[-1]),
            "train_seconds": round(seconds, 2),
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (out / TRAIN_META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return out


@dataclass
class Context:
    """A loaded model plus what :func:`recommend` needs per call (load once, reuse)."""

    model: Any
    meta: dict
    history: dict[str, list[str]]  # user -> train + valid item ids in time order
    notes: list[str] = field(default_factory=list)
    # in-memory snapshots (``kgrec serve``): user -> (persona or None, version), item -> title;
    # None reads them from the store on each call
    personas: dict[str, tuple[Any, Any]] | None = None
    titles: dict[str, str | None] | None = None

    def snapshot(self, store) -> Context:
        """Load the persona and title snapshots (one stream each) and return self."""
        users = store.stream_nodes("User", ["persona", "persona_version"])
        self.personas = {u: (None if p is None else np.asarray(p, dtype=np.float32), v) for u, p, v in
                         zip(users.ids, users.properties["persona"], users.properties["persona_version"])}
        items = store.stream_nodes("Item", ["title"])
        self.titles = dict(zip(items.ids, items.properties["title"]))
        return self


def load_context(store, settings) -> Context:
    from kgrec.kg.artefacts import load_split, read_build_meta
    from kgrec.recommender.service import Recommender

    d = model_dir(settings)
    if not (d / TRAIN_META).is_file():
        raise ModelError(f"no trained recommender under {d}; run `kgrec train recommender` first")
    meta = json.loads((d / TRAIN_META).read_text(encoding="utf-8"))
    build = read_build_meta(settings) or {}
    if build.get("fingerprint") and build["fingerprint"] != meta.get("fingerprint"):
        raise ModelError(f"the recommender in {d} was trained on another build; retrain it "
                         "(`kgrec train recommender`)")
    apply_torch_threads(settings)  # recommend() computes with this process's torch
    split = load_split(settings)
    history: dict[str, list[str]] = {}
    for frame in (split.train, split.valid):  # train first, then valid, each in time order
        f = frame.sort_values(["user", *[c for c in ("ts", "order") if c in frame]], kind="stable")
        for u, items in f.groupby(f["user"].astype(str), sort=False)["item"]:
            history.setdefault(u, []).extend(items.astype(str).tolist())
    return Context(Recommender.load(d), meta, history)


def _user_persona(store, ctx: Context, user: str, notes: list[str]) -> tuple[np.ndarray | None, str]:
    """A known user's stored persona (from the snapshot or the graph) and its source; notes a stale one."""
    if ctx.personas is not None:
        hit = ctx.personas.get(user)
        rows = [] if hit is None else [{"persona": hit[0], "version": hit[1]}]
    else:
        rows = store.run("recommend_user", {"user": user}, read_only=True)
    if not rows:
        raise NotFoundError(f"unknown user id {user!r}; pass --session without --user for the "
                            "anonymous / cold-start path")
    if rows[0]["persona"] is None:
        notes.append(f"user {user!r} has no persona; recommending without one")
        return None, "none"
    stored = ctx.meta.get("persona_version")
    if stored is not None and rows[0]["version"] is not None and str(rows[0]["version"]) != str(stored):
        notes.append(f"persona version {rows[0]['version']} differs from the one the model was "
                     f"trained with ({stored}); retrain the recommender")
    return np.asarray(rows[0]["persona"], dtype=np.float32), "graph"


def recommend(store, settings, *, user: str | None = None, session: Sequence[str] = (), k: int = 10,
              write: bool = False, run_id: str | None = None,
              inductive: Callable[[list[str]], np.ndarray] | None = None, exclude_seen: bool = True,
              context: Context | None = None, progress=None) -> RecList:
    """Top-``k`` :class:`Rec` rows for a known ``user`` and/or a ``session`` of item ids.

    Unknown user ids are an error (:class:`NotFoundError`); pass ``session`` without
    ``user`` for the anonymous / cold-start path (inductive persona via ``inductive``, or
    none). An unknown item id in ``session`` raises :class:`NotFoundError` naming it.
    ``write=True`` (known users only) replaces the user's ``RECOMMENDED`` edges of
    ``run_id`` with ``{rank, score, run}`` edges. Pass a :func:`load_context` result as
    ``context`` to avoid reloading the model on every call.
    """
    session = [str(s) for s in session]
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    if user is None and not session:
        raise ConfigError("nothing to recommend from: pass a user, a session, or both")
    if write and user is None:
        raise ConfigError("write needs a known user (anonymous sessions have no User node)")
    ctx = context or load_context(store, settings)
    model = ctx.model
    missing = [s for s in session if s not in model.vocab]
    if missing:
        raise NotFoundError(f"unknown item id {missing[0]!r} in the session (not in the recommender's vocabulary)")
    notes = list(ctx.notes)
    persona, source = None, "none"
    if user is not None:
        persona, source = _user_persona(store, ctx, user, notes)
    elif inductive is not None:
        persona, source = np.asarray(inductive(list(session)), dtype=np.float32), "inductive"
    else:
        notes.append("anonymous session and no inductive persona model: recommending without a persona")
    known = ctx.history.get(user, []) if user is not None else []
    top = model.recommend(persona, session, k=k, exclude_seen=exclude_seen, known_items=known)
    titles = ctx.titles or {}
    if top and ctx.titles is None:
        titles = {r["id"]: r["title"] for r in
                  store.run("recommend_titles", {"ids": [i for i, *_ in top]}, read_only=True)}
    recs = [Rec(r + 1, i, titles.get(i), s, f) for r, (i, s, f) in enumerate(top)]
    run_id = run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if write:
        store.run("recommended_clear", {"user": user, "run": run_id})
        store.upsert_relationships("RECOMMENDED", ({"src": user, "dst": r.item, "props": {
            "rank": r.rank, "score": r.score, "run": run_id}} for r in recs))
    return RecList(recs, user=user, persona_source=source, run_id=run_id, notes=notes)


def evaluate(store, settings, *, seeds: Sequence[int] = (0, 1, 2), epochs: int = 50, device: str = "cpu",
             progress=None, out_dir: Path | None = None, users: int | None = None, protocol: str = "session",
             exclude_seen: bool = True, save_model: bool = False, k: int = 100,
             **kwargs) -> tuple[Any, dict[str, Path]]:
    """:func:`evaluate_all` on the graph's inputs, then :func:`write_report` (``settings.reports_dir``
    unless ``out_dir``). ``users`` evaluates a seeded subsample of that many held-out users (the
    whole catalogue is still ranked). ``save_model`` (``session`` protocol, whole data) keeps the
    first seed's pipeline as the production recommender, so that nothing is trained twice.
    ``kwargs`` go to ``evaluate_all`` (fusions, max_len, fit_kwargs, ...)."""
    from kgrec.recommender.evaluate import evaluate_all, subsample_users
    from kgrec.recommender.protocols import Protocol, check_protocol
    from kgrec.recommender.report import write_report

    protocol = check_protocol(protocol)
    if save_model and (protocol is not Protocol.session or users is not None):
        raise ConfigError("save_model needs the session protocol on the whole data (no --users)")
    progress = progress or NullProgress()
    apply_torch_threads(settings)
    inp = load_inputs(store, settings, progress)
    saved: dict[str, Path] = {}
    t0 = time.perf_counter()

    def keep(prep, tp) -> None:
        if save_model and not saved:
            saved["model"] = save_pipeline(settings, inp, prep, tp, k=k, epochs=epochs, device=device,
                                           seconds=time.perf_counter() - t0)

    with progress.stage(f"evaluate (protocol {protocol.value})", None):
        frames = inp.split if users is None else subsample_users(inp.split, users)
        results = evaluate_all(frames, inp.item_table, inp.personas, inp.history_user,
                               item_ids=inp.vocab.ids, seeds=list(seeds), epochs=epochs, device=device,
                               progress=progress.note, protocol=protocol, exclude_seen=exclude_seen, k=k,
                               on_pipeline=keep, **kwargs)
    results.extra.update({"fingerprint": inp.fingerprint, "persona_version": inp.persona_version,
                          "epochs": epochs, "device": device, "user_subsample": users,
                          "seconds": round(time.perf_counter() - t0, 1)})
    paths = write_report(results, out_dir or settings.reports_dir)
    if saved:
        paths["model"] = saved["model"]
    return results, paths


def recommend_with_inductive(store, settings, *, user: str | None = None, session: Sequence[str] = (),
                             k: int = 10, write: bool = False, run_id: str | None = None) -> RecList:
    """:func:`recommend` as ``kgrec recommend`` runs it: an anonymous session gets an inductive
    persona from the saved persona model; without a usable one it is recommended without a
    persona, and the first note says why."""
    inductive, notes = None, []
    if user is None:
        from kgrec.personas.workflow import load_inductive

        try:
            inductive = load_inductive(store, settings)
        except ModelError as e:
            notes.append(f"no inductive persona: {e}")
    recs = recommend(store, settings, user=user, session=session, k=k, write=write, run_id=run_id,
                     inductive=inductive)
    recs.notes[:0] = notes
    return recs


def explain(store, settings, *, user: str, item: str, n: int = 5) -> list:
    """Up to ``n`` scored graph paths that say why ``item`` suits ``user`` (``kgrec explain``)."""
    from kgrec.recommender.explain import explain as explain_paths

    if n < 1:
        raise ConfigError(f"-n must be at least 1, got {n}")
    return explain_paths(store, user, item, n=n)
