"""The one training recipe of the recommender, shared by ``kgrec train recommender`` and ``kgrec evaluate``.

1. :func:`prepare`: vocabulary, LLM item table aligned to it, the protocol's train windows and
   valid / test examples (:mod:`kgrec.recommender.protocols`), each pointing at the row of its
   user's **past** (:class:`~kgrec.recommender.data.Histories`), popularity counts, and the
   persona source that turns a past into a persona.
2. :func:`train_pipeline`: SASRec, the session retriever (no persona) and the persona retriever
   once per fusion in ``fusions``, each early-stopped on **validation** NDCG@10; the fusion with
   the best validation score is kept (first of ``fusions`` on ties); then the per-bucket
   :class:`~kgrec.recommender.fusion.Plan` is chosen on the validation examples
   (:func:`fit_plan`). Test examples are never touched here.

Every persona or history vector paired with a target (training, validation or test) is a
function of that example's past row only: **no target is ever inside its own persona**.

Production training (:func:`kgrec.recommender.workflow.train`) runs this once; the evaluation
harness (:mod:`kgrec.recommender.evaluate`) runs it per seed and adds the baselines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kgrec.errors import ConfigError, DataError
from kgrec.recommender import data as D
from kgrec.recommender.metrics import head_items
from kgrec.recommender.protocols import PREFIX_BUCKETS, Protocol, build_examples, check_protocol

PERSONA_FUSIONS = ("prefix", "gate")
#: the fusions trained by default: the gate lost to the prefix token on validation in every seed
#: measured (MovieLens converged, leak-free: 3 of 3; Games, 4 epochs, older recipe: 3 of 3), so it is
#: an option (``fusions=``), not a default
DEFAULT_FUSIONS = ("prefix",)
#: early stopping scores at most this many validation examples per epoch (a fixed seeded sample,
#: the same for every model and seed); the fusion plan is still chosen on all of them
EARLY_STOP_EXAMPLES = 20_000
SOURCES = ("persona", "history_user", "none")


def check_fusions(fusions: Sequence[str]) -> tuple[str, ...]:
    if not fusions or any(f not in PERSONA_FUSIONS for f in fusions):
        raise ConfigError(f"fusions must be a non-empty subset of {PERSONA_FUSIONS}, got {tuple(fusions)}")
    return tuple(fusions)


def best_of(scores: Mapping[str, float], order: Sequence[str]) -> str:
    """The key of ``scores`` with the highest value; the first in ``order`` on ties."""
    return max(order, key=lambda k: (scores[k], -list(order).index(k)))


class StaticPersonas:
    """A fixed vector per user, whatever the past: for callers whose vectors are user constants
    that hold no item of any target (e.g. a planted group in a test fixture). Production passes a
    past encoder (:class:`kgrec.personas.saved.PastEncoder`) instead, which builds each persona
    from the example's own past."""

    def __init__(self, vectors):
        if isinstance(vectors, pd.DataFrame):
            vectors = {str(u): v for u, v in zip(vectors.index, vectors.to_numpy(), strict=True)}
        self.vectors = {str(u): np.asarray(v, dtype=np.float32).reshape(-1) for u, v in dict(vectors).items()}
        if not self.vectors:
            raise DataError("no personas given")
        self.dim = int(next(iter(self.vectors.values())).shape[0])

    def encode(self, users: Sequence[str], pasts: Sequence[Sequence[str]], progress=None) -> np.ndarray:
        return D.persona_matrix(list(users), self.vectors, dim=self.dim)


class PastTable:
    """Personas computed once for a fixed set of pasts (e.g. exported to a machine without the graph):
    ``encode`` looks each ``(user, past)`` up and fails on a past it was not given."""

    def __init__(self, users: Sequence[str], pasts: Sequence[Sequence[str]], vectors: np.ndarray):
        self.vectors = np.asarray(vectors, dtype=np.float32)
        self.dim = int(self.vectors.shape[1])
        self.row = {(str(u), tuple(map(str, p))): j for j, (u, p) in enumerate(zip(users, pasts, strict=True))}

    def encode(self, users: Sequence[str], pasts: Sequence[Sequence[str]], progress=None) -> np.ndarray:
        out = np.zeros((len(users), self.dim), dtype=np.float32)
        for j, (u, p) in enumerate(zip(users, pasts, strict=True)):
            key = (str(u), tuple(map(str, p)))
            if key not in self.row:
                raise DataError(f"no precomputed persona for user {u!r} with this past ({len(p)} items)")
            out[j] = self.vectors[self.row[key]]
        return out


def persona_source(personas):
    """``personas`` as an object with ``dim`` and ``encode(users, pasts)``: a past encoder as is, a
    mapping / DataFrame of fixed vectors as :class:`StaticPersonas`, None as None."""
    if personas is None or hasattr(personas, "encode"):
        return personas
    return StaticPersonas(personas)


@dataclass
class Prepared:
    protocol: Protocol
    vocab: D.ItemVocab
    train: pd.DataFrame  # the graph's interactions
    item_table: np.ndarray  # [num_items, d_llm]
    windows: D.TrainWindows
    valid: D.EvalExamples
    test: D.EvalExamples
    histories: D.Histories  # every example's past (its ``context`` row)
    counts: np.ndarray
    head: np.ndarray
    personas: Any  # persona source (``dim``, ``encode(users, pasts)``) or None
    max_len: int
    exclude_seen: bool = True
    progress: Any = None
    early_stop_examples: int | None = EARLY_STOP_EXAMPLES
    _tables: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _stop: D.EvalExamples | None = field(default=None, repr=False)

    @property
    def stop(self) -> D.EvalExamples:
        """The validation examples early stopping scores after each epoch: all of them, or a fixed
        seeded sample of ``early_stop_examples`` (order kept) when there are more."""
        if self._stop is None:
            cap = self.early_stop_examples
            if cap is None or len(self.valid) <= cap:
                self._stop = self.valid
            else:
                idx = np.sort(np.random.default_rng(0).choice(len(self.valid), size=cap, replace=False))
                self._stop = self.valid.subset(idx)
        return self._stop

    def persona_table(self, source: str) -> np.ndarray:
        """[len(histories), d] the vector of every past under ``source`` (computed once)."""
        if source not in self._tables:
            if source == "persona":
                if self.personas is None:
                    raise ConfigError("no persona source was given to prepare()")
                pasts = [self.vocab.decode(self.histories.items(h)) for h in range(len(self.histories))]
                self._tables[source] = np.asarray(
                    self.personas.encode(self.histories.users, pasts, progress=self.progress), dtype=np.float32)
            elif source == "history_user":
                self._tables[source] = D.history_means(self.histories, self.item_table)
            else:
                raise ConfigError(f"persona source must be one of {SOURCES}, got {source!r}")
        return self._tables[source]

    def persona_rows(self, source: str, examples: D.TrainWindows | D.EvalExamples) -> np.ndarray | None:
        """The vectors paired with ``examples`` (their past rows); None for ``source="none"``."""
        if source not in SOURCES:
            raise ConfigError(f"persona source must be one of {SOURCES}, got {source!r}")
        if source == "none":
            return None
        if examples.context is None:
            raise DataError("these examples carry no past rows (context); build them with recommender.protocols")
        return self.persona_table(source)[examples.context]

    def persona_dim(self, source: str) -> int:
        if source == "none":
            return 1
        if source == "persona" and self.personas is not None:
            return int(self.personas.dim)
        return int(self.item_table.shape[1])


def frame(split, name: str) -> pd.DataFrame | None:
    """``split.name`` or ``split[name]`` (a ``Split`` or a mapping of frames)."""
    if isinstance(split, Mapping):
        return split.get(name)
    return getattr(split, name, None)


def prepare(split_frames, item_emb, personas=None, *, item_ids=None, max_len: int = D.DEFAULT_MAX_LEN,
            protocol: str | Protocol = Protocol.session, exclude_seen: bool = True, progress=None,
            early_stop_examples: int | None = EARLY_STOP_EXAMPLES) -> Prepared:
    """Everything the models of ``protocol`` train and are evaluated on.

    ``split_frames``: a ``Split`` (attributes) or mapping with ``train``, ``valid``, ``test``
    (and optionally ``items``). ``item_emb``: array whose rows follow ``item_ids``, or, if
    ``item_ids`` is None, ``split.items["item"]`` (a mapping / DataFrame indexed by item id
    also works). ``personas``: a past encoder (``dim``, ``encode(users, pasts)``), or fixed
    vectors per user (:class:`StaticPersonas`). Under ``loo`` only users whose last session is
    held out of the graph are evaluated (:mod:`kgrec.recommender.protocols`).
    """
    protocol = check_protocol(protocol)
    train, valid, test = (frame(split_frames, n) for n in ("train", "valid", "test"))
    items = frame(split_frames, "items")
    if train is None or valid is None or test is None:
        raise DataError("split needs train, valid and test frames")
    vocab = D.ItemVocab.from_frames(train, valid, test, items=items)
    if item_ids is None and isinstance(item_emb, np.ndarray) and items is not None and len(items) == len(item_emb):
        item_ids = items["item"].astype(str).tolist()
    table = D.align_item_embeddings(vocab, item_emb, item_ids)
    counts = D.item_counts(train, vocab)
    eval_users = test["user"].astype(str).unique() if protocol is Protocol.loo else None
    ex = build_examples(protocol, train, valid, test, vocab, max_len, eval_users)
    return Prepared(protocol, vocab, train, table, ex.windows, ex.valid, ex.test, ex.histories, counts,
                    head_items(counts), persona_source(personas), max_len, exclude_seen, progress,
                    early_stop_examples)


def train_sasrec(prep: Prepared, seed: int, *, epochs: int, device: str = "cpu", progress=None,
                 model_kwargs: Mapping | None = None, fit_kwargs: Mapping | None = None):
    from kgrec.recommender.sasrec import SASRec
    from kgrec.recommender.training import fit, seed_everything

    seed_everything(seed)
    kw = {"max_len": prep.max_len, "item_init": prep.item_table, **(model_kwargs or {})}
    model = SASRec(len(prep.vocab), **kw)
    model.set_item_counts(prep.counts)
    res = fit(model, prep.windows, prep.stop, epochs=epochs, seed=seed, device=device, progress=progress,
              name=f"sasrec[seed={seed}]", **{"exclude_seen": prep.exclude_seen, **(fit_kwargs or {})})
    return model, res


def train_retriever(prep: Prepared, fusion: str, source: str, seed: int, *, epochs: int, device: str = "cpu",
                    progress=None, model_kwargs: Mapping | None = None, fit_kwargs: Mapping | None = None):
    """``source``: ``"persona"``, ``"history_user"`` or ``"none"`` (forces ``fusion="none"``)."""
    from kgrec.recommender.retriever import PersonaRetriever
    from kgrec.recommender.training import fit, seed_everything

    if source == "none":
        fusion = "none"
    seed_everything(seed)
    tp = prep.persona_rows(source, prep.windows)
    vp = prep.persona_rows(source, prep.stop)
    kw = {"max_len": prep.max_len, **(model_kwargs or {})}
    model = PersonaRetriever(len(prep.vocab), prep.item_table, persona_dim=prep.persona_dim(source), fusion=fusion,
                             **kw)
    model.set_item_counts(prep.counts)
    res = fit(model, prep.windows, prep.stop, train_persona=tp, valid_persona=vp, epochs=epochs, seed=seed,
              device=device, progress=progress, name=f"retriever[{fusion},{source},seed={seed}]",
              **{"exclude_seen": prep.exclude_seen, **(fit_kwargs or {})})
    return model, res


def train_residual(prep: Prepared, sasrec, source: str, seed: int, *, epochs: int, device: str = "cpu",
                   progress=None, persona_dropout: float = 0.5, fit_kwargs: Mapping | None = None):
    """A copy of the trained ``sasrec`` with the persona of ``source`` as a zero-initialised residual
    (:class:`~kgrec.recommender.sasrec.PersonaSASRec`), fine-tuned end to end; the untrained state
    (= plain SASRec) is an early-stopping candidate."""
    import copy

    from kgrec.recommender.sasrec import PersonaSASRec
    from kgrec.recommender.training import fit, seed_everything

    seed_everything(seed)
    model = PersonaSASRec(copy.deepcopy(sasrec), prep.persona_dim(source), persona_dropout=persona_dropout)
    model.set_item_counts(prep.counts)
    res = fit(model, prep.windows, prep.stop, train_persona=prep.persona_rows(source, prep.windows),
              valid_persona=prep.persona_rows(source, prep.stop), epochs=epochs, seed=seed, device=device,
              progress=progress, name=f"sasrec_residual[{source},seed={seed}]",
              **{"exclude_seen": prep.exclude_seen, **(fit_kwargs or {}), "score_initial": True})
    return model, res


@dataclass
class TrainedPipeline:
    """What :func:`train_pipeline` returns: the models and every validation choice."""

    seed: int
    sasrec: Any
    sasrec_valid: float
    session: Any  # the retriever without a persona
    session_valid: float
    retrievers: dict[str, Any]  # fusion -> persona retriever
    fusion_valid: dict[str, float]  # fusion -> best validation NDCG@10
    fusion: str  # the best retriever fusion on its own validation NDCG@10
    plan: Any  # kgrec.recommender.fusion.Plan of the kernel's persona part
    grid_valid: list[dict] = field(default_factory=list)  # every fusion setting's validation score
    residual: Any = None  # SASRec with the persona residual (None: not trained)
    residual_valid: float = float("nan")  # its best validation NDCG@10 (epoch -1 = plain SASRec)
    residual_epoch: int = -1
    persona_part: str = ""  # the kernel's persona part: a fusion name or "residual"
    part_valid: dict[str, float] = field(default_factory=dict)  # candidate -> its plan's validation NDCG@10

    @property
    def retriever(self):
        return self.retrievers[self.fusion]

    @property
    def persona_model(self):
        """The kernel's persona part."""
        return self.residual if self.persona_part == "residual" else self.retrievers[self.persona_part or self.fusion]

    def kernel(self, persona_part=None):
        from kgrec.recommender.fusion import Kernel

        return Kernel({"sasrec": self.sasrec, "session": self.session,
                       "persona": self.persona_model if persona_part is None else persona_part}, self.plan)


def example_batches(prep: Prepared, examples: D.EvalExamples, source: str, *, batch_size: int = 512,
                    device: str = "cpu"):
    """Yield ``(slice, seqs, persona or None, seen or None)`` tensors of ``examples`` (inference mode)."""
    import torch

    persona = prep.persona_rows(source, examples)
    with torch.inference_mode():
        for s in range(0, len(examples), batch_size):
            sl = slice(s, s + batch_size)
            seqs = torch.as_tensor(examples.seqs[sl], device=device)
            p = None if persona is None else torch.as_tensor(persona[sl], device=device)
            seen = torch.as_tensor(examples.seen_matrix(sl), device=device) if prep.exclude_seen else None
            yield sl, seqs, p, seen


def kernel_batches(prep: Prepared, parts: Mapping[str, Any], examples: D.EvalExamples, source: str, *,
                   batch_size: int = 512, device: str = "cpu"):
    """Yield ``(z [P, B, N], targets, prefix_len)`` (numpy) of the kernel's parts on ``examples``."""
    from kgrec.recommender.fusion import Kernel, Plan

    kernel = Kernel(parts, Plan(1, (), {})).eval()
    for sl, seqs, p, seen in example_batches(prep, examples, source, batch_size=batch_size, device=device):
        yield kernel.part_scores(seqs, p, seen), np.asarray(examples.targets[sl]), examples.prefix_len[sl]


def fit_plan(prep: Prepared, parts: Mapping[str, Any], source: str, *, k: int = 100, device: str = "cpu",
             buckets=PREFIX_BUCKETS, metric: str = "NDCG@10", grid=None):
    """The per-bucket fusion :class:`~kgrec.recommender.fusion.Plan` on the **validation** examples
    (and the whole validation table of the grid)."""
    from kgrec.recommender.fusion import default_grid
    from kgrec.recommender.fusion_search import choose_plan, pool_stats, settings_table

    grid = default_grid() if grid is None else list(grid)
    stats = pool_stats(lambda b: b, kernel_batches(prep, parts, prep.valid, source, device=device), buckets, k, grid)
    return choose_plan(stats, buckets, k, metric), settings_table(stats, buckets, metric)


def evaluate_kernel(prep: Prepared, kernel, examples: D.EvalExamples, source: str, *, batch_size: int = 512,
                    device: str = "cpu") -> tuple[dict, dict]:
    """(metrics, prefix-length breakdown) of ``kernel`` over the full catalogue."""
    import torch

    from kgrec.recommender.metrics import RankingAccumulator

    kernel.eval()
    acc = RankingAccumulator(kernel.num_items, prep.head)
    for sl, seqs, p, seen in example_batches(prep, examples, source, batch_size=batch_size, device=device):
        scores = kernel.final_scores(seqs, p, examples.prefix_len[sl], seen)
        acc.update(torch.from_numpy(scores), torch.as_tensor(examples.targets[sl]), None, examples.prefix_len[sl])
    return acc.compute(), acc.breakdown()


def train_pipeline(prep: Prepared, seed: int, *, epochs: int, fusions: Sequence[str] = DEFAULT_FUSIONS,
                   k: int = 100, device: str = "cpu", progress: Callable[[str], None] | None = None,
                   sasrec_kwargs: Mapping | None = None, retriever_kwargs: Mapping | None = None,
                   fit_kwargs: Mapping | None = None, buckets=PREFIX_BUCKETS,
                   residual: bool = True) -> TrainedPipeline:
    """SASRec, the session retriever, the persona retriever per fusion and (``residual``) SASRec with
    the persona residual; the kernel's persona part (the best fusion on its own validation score, or
    the residual model) and its per-bucket plan chosen on validation: the candidate whose plan
    scores higher over all validation examples (ties: the retriever)."""
    fusions = check_fusions(fusions)
    common = {"epochs": epochs, "device": device, "progress": progress, "fit_kwargs": fit_kwargs}
    sas, sres = train_sasrec(prep, seed, model_kwargs=sasrec_kwargs, **common)
    ses, ses_res = train_retriever(prep, "none", "none", seed, model_kwargs=retriever_kwargs, **common)
    models, valid = {}, {}
    for f in fusions:
        models[f], res = train_retriever(prep, f, "persona", seed, model_kwargs=retriever_kwargs, **common)
        valid[f] = float(res.best_valid_ndcg)
    chosen = best_of(valid, fusions)
    candidates = {chosen: models[chosen]}
    tp = TrainedPipeline(seed, sas, float(sres.best_valid_ndcg), ses, float(ses_res.best_valid_ndcg), models,
                         valid, chosen, None)
    if residual:
        tp.residual, rres = train_residual(prep, sas, "persona", seed, **common)
        tp.residual_valid, tp.residual_epoch = float(rres.best_valid_ndcg), int(rres.best_epoch)
        candidates["residual"] = tp.residual
    tp.persona_part, tp.plan, tp.grid_valid, tp.part_valid = choose_persona_part(
        prep, sas, ses, candidates, "persona", k=k, device=device, buckets=buckets)
    return tp


def choose_persona_part(prep: Prepared, sasrec, session, candidates: Mapping[str, Any], source: str, *,
                        k: int = 100, device: str = "cpu", buckets=PREFIX_BUCKETS):
    """The candidate persona part whose kernel plan scores best over all validation examples (the
    first of ``candidates`` on ties): ``(name, plan, plan's grid table, {name: plan score})``."""
    plans = {name: fit_plan(prep, {"sasrec": sasrec, "session": session, "persona": part}, source, k=k,
                            device=device, buckets=buckets) for name, part in candidates.items()}
    scores = {name: plan.valid_score() for name, (plan, _table) in plans.items()}
    name = best_of(scores, list(candidates))
    return name, plans[name][0], plans[name][1], scores
