"""What the CLI calls for stage 2: load inputs from the graph, train, recommend, evaluate.

Every function takes ``(store, settings, ..., progress)``; heavy libraries load inside.

* Item embeddings come from ``Item.emb``; personas come from the saved persona model
  (``kgrec train personas``) as a **past encoder**
  (:class:`~kgrec.personas.saved.PastEncoder`): every example's persona is built from that
  user's past before it (a training session: the earlier training sessions; validation: train;
  test and serving: train + valid), never from the target's own session. Without a persona
  model, training and evaluation stop with a :class:`ModelError` that says so.
* The trained model lives in ``settings.models_dir / "recommender"``: the service files
  (:meth:`Recommender.save`) plus ``train.json`` (split fingerprint, persona version,
  chosen fusion, plan, ...). A model trained on another build is refused.
* :func:`recommend`: a known user gets the persona of their whole known past (train + valid
  items), exactly as a test example does; the model sees only the given session, and the
  user's train + valid items are not recommended again (``exclude_seen``, the default).
  **Unknown user ids are an error; pass --session without --user for an anonymous session**,
  which has no past and so gets the learned no-persona state, as a user's first session
  does in training (:attr:`RecList.persona_source` says ``none``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kgrec.errors import ConfigError, ModelError, NotFoundError
from kgrec.progress import NullProgress
from kgrec.recommender.known_users import KnownUsers, known_histories
from kgrec.settings import apply_torch_threads

MODEL_SUBDIR = "recommender"
TRAIN_META = "train.json"
KNOWN_USERS = "known_users.npz"  # every known user's past, its persona and query, saved at training
NO_PERSONAS = "no personas in the graph; run `kgrec train personas` first"


@dataclass
class Inputs:
    split: Any
    vocab: Any  # ItemVocab over train/valid/test/items, as recommender.recipe.prepare builds it
    item_table: np.ndarray  # [len(vocab), d] aligned to vocab (row 0 and items without Item.emb = 0)
    personas: Any  # PastEncoder: the persona of any user's past
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
    """``list[Rec]`` plus where the persona came from (``past``, ``none``) and notes."""

    def __init__(self, rows=(), *, user: str | None = None, persona_source: str = "none",
                 run_id: str | None = None, notes: Sequence[str] = ()):
        super().__init__(rows)
        self.user, self.persona_source, self.run_id, self.notes = user, persona_source, run_id, list(notes)


def past_encoder(store, settings):
    """The saved persona model as a past encoder, or a :class:`ModelError` saying to train it."""
    from kgrec.personas.saved import load_past_encoder

    try:
        return load_past_encoder(store, settings)
    except ModelError as e:
        raise ModelError(f"{NO_PERSONAS} ({e})") from e


def load_inputs(store, settings, progress=None) -> Inputs:
    """Split, ``Item.emb`` aligned to the vocabulary, and the persona model as a past encoder."""
    from kgrec.kg.artefacts import load_item_embeddings, load_split
    from kgrec.recommender.data import ItemVocab, align_item_embeddings

    progress = progress or NullProgress()
    split = load_split(settings)
    vocab = ItemVocab.from_frames(split.train, split.valid, split.test, items=split.items)
    with progress.stage("read Item.emb", 1) as advance:
        ids, emb = load_item_embeddings(settings) or _stream_item_embeddings(store)
        advance(1)
    if not ids:
        raise ModelError("no item embeddings in the graph; run `kgrec build` with --embeddings")
    table = align_item_embeddings(vocab, emb, ids)
    encoder = past_encoder(store, settings)
    return Inputs(split, vocab, table, encoder, encoder.version, split.fingerprint())


def _stream_item_embeddings(store) -> tuple[list[str], np.ndarray]:
    """``Item.emb`` from the store (when the build left no copy under the home)."""
    items = store.stream_nodes("Item", ["emb"])
    ids = [i for i, v in zip(items.ids, items.properties["emb"]) if v is not None]
    return ids, np.asarray([v for v in items.properties["emb"] if v is not None], dtype=np.float32)


def model_dir(settings) -> Path:
    return Path(settings.models_dir) / MODEL_SUBDIR


def train(store, settings, *, epochs: int = 50, seed: int | None = None, device: str = "cpu", progress=None,
          fusions: Sequence[str] | None = None, k: int = 100, max_len: int = 50,
          sasrec_kwargs=None, retriever_kwargs=None, fit_kwargs=None, buckets: str | None = None) -> Path:
    """Train the production :class:`Recommender` with :func:`kgrec.recommender.recipe.train_pipeline`
    under the ``session`` protocol (the product's task) and save it; returns the model directory."""
    from kgrec.recommender.recipe import DEFAULT_FUSIONS, check_fusions, prepare, train_pipeline

    fusions = check_fusions(DEFAULT_FUSIONS if fusions is None else fusions)
    cut = plan_buckets(buckets)
    progress = progress or NullProgress()
    apply_torch_threads(settings)
    seed = settings.seed if seed is None else seed
    inp = load_inputs(store, settings, progress)
    prep = prepare(inp.split, inp.item_table, inp.personas, item_ids=inp.vocab.ids, max_len=max_len,
                   protocol="session", exclude_seen=True, progress=progress)
    prep.persona_table("persona")  # the personas of every past, with their own progress bar
    t0 = time.perf_counter()
    with progress.stage("train recommender", epochs * (3 + len(fusions))) as advance:  # + the residual fine-tune
        say = progress.note

        def tick(msg: str) -> None:
            say(msg)
            advance(1)

        tp = train_pipeline(prep, seed, epochs=epochs, fusions=fusions, k=k, device=device, progress=tick,
                            sasrec_kwargs=sasrec_kwargs, retriever_kwargs=retriever_kwargs, fit_kwargs=fit_kwargs,
                            buckets=cut)
    return save_pipeline(settings, inp, prep, tp, k=k, epochs=epochs, device=device,
                         seconds=time.perf_counter() - t0, progress=progress)


def plan_buckets(spec: str | None):
    """The fusion plan's prefix-length buckets: ``"0,1,2-4,5+"`` (the default) or another cut."""
    from kgrec.recommender.fusion import parse_buckets
    from kgrec.recommender.protocols import PREFIX_BUCKETS

    return PREFIX_BUCKETS if spec is None else parse_buckets(spec)


def save_pipeline(settings, inp: Inputs, prep, tp, *, k: int, epochs: int, device: str, seconds: float,
                  progress=None) -> Path:
    """Save a :class:`~kgrec.recommender.recipe.TrainedPipeline` as the production recommender."""
    from kgrec.recommender.service import Recommender

    parts = {"sasrec": tp.sasrec.cpu(), "session": tp.session.cpu(), "persona": tp.persona_model.cpu()}
    model = Recommender(prep.vocab, parts, tp.plan)
    out = model.save(model_dir(settings))
    meta = {"fingerprint": inp.fingerprint, "persona_version": inp.persona_version, "protocol": "session",
            "fusion": tp.fusion, "fusion_valid_NDCG@10": tp.fusion_valid, "sasrec_valid_NDCG@10": tp.sasrec_valid,
            "session_valid_NDCG@10": tp.session_valid, "persona_part": tp.persona_part,
            "persona_part_plan_valid_NDCG@10": tp.part_valid, "residual_valid_NDCG@10": tp.residual_valid,
            "residual_best_epoch": tp.residual_epoch, "plan": tp.plan.to_dict(), "k": k, "epochs": epochs,
            "seed": tp.seed, "device": device, "n_items": len(prep.vocab) - 1, "persona_dim": int(inp.personas.dim),
            "train_seconds": round(seconds, 2),
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (out / TRAIN_META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    KnownUsers.build(model, inp.personas, known_histories(inp.split), progress).save(out / KNOWN_USERS)
    return out


class LazyPastEncoder:
    """Stands in for a :class:`~kgrec.personas.saved.PastEncoder` of a known ``version``; the persona
    model (and with it torch_geometric) is loaded on the first :meth:`encode`, i.e. only for a user
    the known-persona table lacks."""

    def __init__(self, load, version: str | None):
        self._load, self.version, self._encoder = load, version, None

    def encode(self, users, pasts, progress=None) -> np.ndarray:
        if self._encoder is None:
            self._encoder = self._load()
        return self._encoder.encode(users, pasts, progress=progress)


@dataclass
class Context:
    """A loaded model plus what :func:`recommend` needs per call (load once, reuse)."""

    model: Any
    meta: dict
    history: Mapping[str, Sequence[str]]  # user -> train + valid item ids in time order (KnownUsers or a dict)
    encoder: Any = None  # PastEncoder (None: personas unavailable, recommend without)
    notes: list[str] = field(default_factory=list)
    # in-memory snapshots (``kgrec serve``): the known users, item -> title; None reads the store
    users: set[str] | None = None
    titles: dict[str, str | None] | None = None
    personas: dict[str, np.ndarray] = field(default_factory=dict)  # user -> persona of their past, encoded here

    def snapshot(self, store) -> Context:
        """Load the user ids and titles (one stream each) and return self."""
        self.users = set(store.stream_nodes("User", []).ids)
        items = store.stream_nodes("Item", ["title"])
        self.titles = dict(zip(items.ids, items.properties["title"]))
        return self

    @property
    def known(self) -> KnownUsers | None:
        return self.history if isinstance(self.history, KnownUsers) else None

    def persona_of(self, user: str) -> np.ndarray | None:
        """The persona of ``user``'s whole known past (train + valid), as a test example gets it."""
        if self.encoder is None:
            return None
        if self.known is not None and user in self.known:
            return self.known.persona(user)
        if user not in self.personas:
            self.personas[user] = self.encoder.encode([user], [self.history.get(user, [])])[0]
        return self.personas[user]

    def query_of(self, user: str) -> np.ndarray | None:
        """The persona part's cached empty-session query for ``user`` (None: compute it)."""
        return self.known.query(user) if self.known is not None else None  # a table comes with an encoder


def load_context(store, settings) -> Context:
    """The trained recommender and what serving needs. While the graph's personas are the ones the
    model was trained with, every known user comes from :class:`KnownUsers` (no split, no persona
    model, no weights for an empty session); otherwise the split is read and the persona model
    encodes each user's past."""
    from kgrec.kg.artefacts import read_build_meta
    from kgrec.personas.saved import graph_personas_version
    from kgrec.recommender.service import Recommender

    d = model_dir(settings)
    if not (d / TRAIN_META).is_file():
        raise ModelError(f"no trained recommender under {d}; run `kgrec train recommender` first")
    meta = json.loads((d / TRAIN_META).read_text(encoding="utf-8"))
    build = read_build_meta(settings) or {}
    if build.get("fingerprint") and build["fingerprint"] != meta.get("fingerprint"):
        raise ModelError(f"the recommender in {d} was trained on another build; retrain it "
                         "(`kgrec train recommender`)")
    model = Recommender.load(d, before_weights=lambda: apply_torch_threads(settings))
    notes, encoder = [], None
    stored = meta.get("persona_version")
    written = graph_personas_version(store)
    known = KnownUsers.load(d / KNOWN_USERS, stored, model.vocab.ids) if written is not None and \
        str(written) == str(stored) else None
    if known is not None:  # the graph's personas are the model's: known users need no persona model
        return Context(model, meta, known, LazyPastEncoder(lambda: past_encoder(store, settings), str(written)))
    from kgrec.kg.artefacts import load_split

    try:
        encoder = past_encoder(store, settings)
    except ModelError as e:
        notes.append(f"recommending without personas: {e}")
    if encoder is not None and stored is not None and encoder.version is not None and encoder.version != stored:
        notes.append(f"persona version {encoder.version} differs from the one the model was trained with "
                     f"({stored}); retrain the recommender")
    return Context(model, meta, known_histories(load_split(settings)), encoder, notes)


def _check_user(store, ctx: Context, user: str) -> None:
    known = (user in ctx.users) if ctx.users is not None else \
        bool(store.run("recommend_user", {"user": user}, read_only=True))
    if not known:
        raise NotFoundError(f"unknown user id {user!r}; pass --session without --user for an "
                            "anonymous session")


def recommend(store, settings, *, user: str | None = None, session: Sequence[str] = (), k: int = 10,
              write: bool = False, run_id: str | None = None, exclude_seen: bool = True,
              context: Context | None = None, progress=None) -> RecList:
    """Top-``k`` :class:`Rec` rows for a known ``user`` and/or a ``session`` of item ids.

    A known user's persona is that of their known past (train + valid); an anonymous session
    has no past and gets none. Unknown user ids are an error (:class:`NotFoundError`); an
    unknown item id in ``session`` raises :class:`NotFoundError` naming it.
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
        _check_user(store, ctx, user)
        persona = ctx.persona_of(user)
        if persona is not None and np.any(persona):
            source = "past"
        else:
            notes.append(f"user {user!r} has no past the persona model knows; recommending without a persona")
    else:
        notes.append("anonymous session: no past, so no persona (the model's no-persona state)")
    known = ctx.history.get(user, []) if user is not None else []
    top = model.recommend(persona, session, k=k, exclude_seen=exclude_seen, known_items=known,
                          persona_query=ctx.query_of(user) if user is not None else None)
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
             exclude_seen: bool = True, save_model: bool = False, k: int = 100, buckets: str | None = None,
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
    cut = plan_buckets(buckets)
    if save_model and (protocol is not Protocol.session or users is not None):
        raise ConfigError("save_model needs the session protocol on the whole data (no --users)")
    progress = progress or NullProgress()
    apply_torch_threads(settings)
    inp = load_inputs(store, settings, progress)
    saved: dict[str, Path] = {}
    t0 = time.perf_counter()
    cpu0 = time.process_time()

    def keep(prep, tp) -> None:
        if save_model and not saved:
            saved["model"] = save_pipeline(settings, inp, prep, tp, k=k, epochs=epochs, device=device,
                                           seconds=time.perf_counter() - t0, progress=progress)

    with progress.stage(f"evaluate (protocol {protocol.value})", None):
        frames = inp.split if users is None else subsample_users(inp.split, users)
        results = evaluate_all(frames, inp.item_table, inp.personas, item_ids=inp.vocab.ids, seeds=list(seeds),
                               epochs=epochs, device=device, progress=progress.note, protocol=protocol,
                               exclude_seen=exclude_seen, k=k, on_pipeline=keep, buckets=cut,
                               **kwargs)
    results.extra.update({"fingerprint": inp.fingerprint, "persona_version": inp.persona_version,
                          "epochs": epochs, "device": device, "user_subsample": users,
                          "seconds": round(time.perf_counter() - t0, 1),
                          "cpu_seconds": round(time.process_time() - cpu0, 1)})
    paths = write_report(results, out_dir or settings.reports_dir)
    if saved:
        paths["model"] = saved["model"]
    return results, paths


def explain(store, settings, *, user: str, item: str, n: int = 5) -> list:
    """Up to ``n`` scored graph paths that say why ``item`` suits ``user`` (``kgrec explain``)."""
    from kgrec.recommender.explain import explain as explain_paths

    if n < 1:
        raise ConfigError(f"-n must be at least 1, got {n}")
    return explain_paths(store, user, item, n=n)
