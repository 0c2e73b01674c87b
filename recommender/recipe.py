"""The one training recipe of the recommender, shared by ``kgrec train recommender`` and ``kgrec evaluate``.

1. :func:`prepare`: vocabulary, LLM item table aligned to it, the protocol's train windows and
   valid / test examples (:mod:`kgrec.recommender.protocols`), popularity counts, personas
   and history-user vectors.
2. :func:`train_pipeline`: SASRec, and the persona retriever once per fusion in ``fusions``,
   each early-stopped on **validation** NDCG@10; the fusion with the best validation score is
   kept (first of ``fusions`` on ties); the rerank weight ``alpha`` is tuned on the validation
   candidates. Test examples are never touched here.

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
from kgrec.recommender.protocols import Protocol, build_examples, check_protocol

PERSONA_FUSIONS = ("prefix", "gate")
SOURCES = ("persona", "history_user", "none")


def check_fusions(fusions: Sequence[str]) -> tuple[str, ...]:
    if not fusions or any(f not in PERSONA_FUSIONS for f in fusions):
        raise ConfigError(f"fusions must be a non-empty subset of {PERSONA_FUSIONS}, got {tuple(fusions)}")
    return tuple(fusions)


def best_of(scores: Mapping[str, float], order: Sequence[str]) -> str:
    """The key of ``scores`` with the highest value; the first in ``order`` on ties."""
    return max(order, key=lambda k: (scores[k], -list(order).index(k)))


@dataclass
class Prepared:
    protocol: Protocol
    vocab: D.ItemVocab
    train: pd.DataFrame  # the graph's interactions (the only ones personas and neighbours may use)
    item_table: np.ndarray  # [num_items, d_llm]
    windows: D.TrainWindows
    valid: D.EvalExamples
    test: D.EvalExamples
    counts: np.ndarray
    head: np.ndarray
    personas: object  # Mapping[user, vector] or None
    history_user: dict[str, np.ndarray]
    max_len: int
    exclude_seen: bool = True

    def persona_rows(self, source: str, users: Sequence[str]) -> np.ndarray | None:
        if source not in SOURCES:
            raise ConfigError(f"persona source must be one of {SOURCES}, got {source!r}")
        if source == "none":
            return None
        src = self.personas if source == "persona" else self.history_user
        dim = None if source == "persona" or self.history_user else self.item_table.shape[1]
        return D.persona_matrix(users, src, dim=dim)


def frame(split, name: str) -> pd.DataFrame | None:
    """``split.name`` or ``split[name]`` (a ``Split`` or a mapping of frames)."""
    if isinstance(split, Mapping):
        return split.get(name)
    return getattr(split, name, None)


def prepare(split_frames, item_emb, personas=None, history_user_emb=None, *, item_ids=None,
            max_len: int = D.DEFAULT_MAX_LEN, protocol: str | Protocol = Protocol.session,
            exclude_seen: bool = True) -> Prepared:
    """Everything the models of ``protocol`` train and are evaluated on.

    ``split_frames``: a ``Split`` (attributes) or mapping with ``train``, ``valid``, ``test``
    (and optionally ``items``). ``item_emb``: array whose rows follow ``item_ids``, or, if
    ``item_ids`` is None, ``split.items["item"]`` (a mapping / DataFrame indexed by item id
    also works). ``personas``: ``Mapping[user, vector]`` / DataFrame indexed by user.
    ``history_user_emb``: same, or None to compute it from the training items. Under ``loo``
    only users whose last session is held out of the graph are evaluated
    (:mod:`kgrec.recommender.protocols`).
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
    hist = dict(history_user_emb) if history_user_emb is not None else D.history_user_embeddings(train, vocab, table)
    eval_users = test["user"].astype(str).unique() if protocol is Protocol.loo else None
    ex = build_examples(protocol, train, valid, test, vocab, max_len, eval_users)
    return Prepared(protocol, vocab, train, table, ex.windows, ex.valid, ex.test, counts, head_items(counts), personas,
                    hist, max_len, exclude_seen)


def train_sasrec(prep: Prepared, seed: int, *, epochs: int, device: str = "cpu", progress=None,
                 model_kwargs: Mapping | None = None, fit_kwargs: Mapping | None = None):
    from kgrec.recommender.sasrec import SASRec
    from kgrec.recommender.training import fit, seed_everything

    seed_everything(seed)
    kw = {"max_len": prep.max_len, "item_init": prep.item_table, **(model_kwargs or {})}
    model = SASRec(len(prep.vocab), **kw)
    res = fit(model, prep.windows, prep.valid, epochs=epochs, seed=seed, device=device, progress=progress,
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
    tp = prep.persona_rows(source, prep.windows.users)
    vp = prep.persona_rows(source, prep.valid.users)
    pdim = tp.shape[1] if tp is not None else 1
    kw = {"max_len": prep.max_len, **(model_kwargs or {})}
    model = PersonaRetriever(len(prep.vocab), prep.item_table, persona_dim=pdim, fusion=fusion, **kw)
    res = fit(model, prep.windows, prep.valid, train_persona=tp, valid_persona=vp, epochs=epochs, seed=seed,
              device=device, progress=progress, name=f"retriever[{fusion},{source},seed={seed}]",
              **{"exclude_seen": prep.exclude_seen, **(fit_kwargs or {})})
    return model, res


@dataclass
class TrainedPipeline:
    """What :func:`train_pipeline` returns: the models and every validation choice."""

    seed: int
    sasrec: Any
    sasrec_valid: float
    retrievers: dict[str, Any]  # fusion -> persona retriever
    fusion_valid: dict[str, float]  # fusion -> best validation NDCG@10
    fusion: str
    alpha: float
    alpha_valid: dict[float, float] = field(default_factory=dict)

    @property
    def retriever(self):
        return self.retrievers[self.fusion]


def train_pipeline(prep: Prepared, seed: int, *, epochs: int, fusions: Sequence[str] = PERSONA_FUSIONS,
                   k: int = 100, device: str = "cpu", progress: Callable[[str], None] | None = None,
                   sasrec_kwargs: Mapping | None = None, retriever_kwargs: Mapping | None = None,
                   fit_kwargs: Mapping | None = None) -> TrainedPipeline:
    """SASRec + the persona retriever per fusion, the fusion and ``alpha`` chosen on validation."""
    from kgrec.recommender.rerank import build_candidates, tune_alpha

    fusions = check_fusions(fusions)
    common = {"epochs": epochs, "device": device, "progress": progress, "fit_kwargs": fit_kwargs}
    sas, sres = train_sasrec(prep, seed, model_kwargs=sasrec_kwargs, **common)
    models, valid = {}, {}
    for f in fusions:
        models[f], res = train_retriever(prep, f, "persona", seed, model_kwargs=retriever_kwargs, **common)
        valid[f] = float(res.best_valid_ndcg)
    chosen = best_of(valid, fusions)
    vc = build_candidates(models[chosen], sas, prep.valid, prep.persona_rows("persona", prep.valid.users), k=k,
                          device=device, exclude_seen=prep.exclude_seen)
    alpha, table = tune_alpha(vc)
    return TrainedPipeline(seed, sas, float(sres.best_valid_ndcg), models, valid, chosen, alpha, table)
