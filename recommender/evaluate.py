"""End-to-end evaluation harness: the baselines and the full pipeline, several seeds, mean / std.

Models (keys of the result, exactly):

``popularity``             training counts (deterministic: std 0)
``sasrec``                 SASRec, LLM-initialised item table, full-softmax CE
``llmseqsim``              cosine to the session's LLM embedding; variant (last / mean of last 5 /
                           mean of the whole prefix) picked on validation (deterministic)
``retriever_no_persona``   the session retriever (``fusion="none"``), a part of the pipeline
``retriever_history_user`` retriever whose persona is the mean LLM embedding of the items of the
                           example's past (fusion picked on validation like the persona one)
``retriever_persona``      the persona retriever alone (fusion picked on validation)
``sasrec_persona_residual`` SASRec with the persona as a zero-initialised residual on its states,
                           fine-tuned from the trained SASRec with persona dropout (epoch -1, plain
                           SASRec, is an early-stopping candidate)
``full_pipeline``          the kernel (:mod:`kgrec.recommender.fusion`): candidates from SASRec, the
                           session retriever and the persona part (the persona retriever or the
                           residual SASRec, whichever kernel plan scores higher on validation),
                           blended, with shares and weights chosen per prefix-length bucket on
                           validation
``pipeline_history_user``  the same kernel with the history-user vector in place of the persona (its
                           retriever or residual SASRec, chosen and planned on validation the same
                           way): the fair ablation of the persona

Each distinct model is trained once per seed and shared by the rows that use it. Every persona
and history vector is built from the example's own past (:mod:`kgrec.recommender.protocols`).

The protocol (``session`` or ``loo``, :mod:`kgrec.recommender.protocols`) decides what each
model sees; the persona models are trained by the one recipe of :mod:`kgrec.recommender.recipe`.
Every trained model is early-stopped on **validation** NDCG@10 (test is touched once, at the
end); fusions and the fusion plans are chosen per seed on validation. The whole catalogue is ranked;
with ``exclude_seen`` the user's known items are removed first. ``std`` is the sample standard
deviation over seeds (0 for one seed or deterministic models). ``results.extra["breakdown"]``
has the ranking metrics per prefix-length bucket for every model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from kgrec.errors import ConfigError, DataError
from kgrec.recommender import data as D
from kgrec.recommender.metrics import METRICS
from kgrec.recommender.protocols import PREFIX_BUCKETS, Protocol
from kgrec.recommender.recipe import (
    DEFAULT_FUSIONS,
    EARLY_STOP_EXAMPLES,
    Prepared,
    best_of,
    check_fusions,
    frame,
    prepare,
    train_pipeline,
    train_retriever,
)

MODEL_NAMES = ("popularity", "sasrec", "llmseqsim", "retriever_no_persona", "retriever_history_user",
               "retriever_persona", "sasrec_persona_residual", "full_pipeline", "pipeline_history_user")
BREAKDOWN_METRICS = ("HR@10", "HR@100", "NDCG@10", "MRR")
__all__ = ["MODEL_NAMES", "EvalResults", "Prepared", "evaluate_all", "prepare", "subsample_users"]


class EvalResults(dict):
    """``dict[model -> dict[metric -> {"mean", "std"}]]`` plus ``.extra`` (protocol, choices, breakdown)."""

    def __init__(self, *a, extra: dict | None = None, **kw):
        super().__init__(*a, **kw)
        self.extra = extra or {}


def subsample_users(split_frames, n: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """A seeded random sample of ``n`` users who have a held-out (test) session, with all their
    train/valid/test rows; the item table, and so the ranked catalogue, stays whole. For a quick
    estimate on a big data set; the report records the sample size."""
    if n < 1:
        raise ConfigError(f"users: the subsample must have at least 1 user (got {n})")
    frames = {k: frame(split_frames, k) for k in ("train", "valid", "test", "items")}
    if frames["test"] is None or frames["train"] is None:
        raise DataError("the split has no train/test frames to subsample")
    pool = np.asarray(sorted(frames["test"]["user"].astype(str).unique()))
    keep = set(np.random.default_rng(seed).choice(pool, size=min(n, len(pool)), replace=False).tolist())
    return {k: v if k == "items" or v is None else v[v["user"].astype(str).isin(keep)] for k, v in frames.items()}


def aggregate(runs: Sequence[Mapping[str, float]], metrics: Sequence[str] = METRICS) -> dict[str, dict[str, float]]:
    out = {}
    for m in metrics:
        v = np.array([r.get(m, math.nan) for r in runs], dtype=np.float64)
        ok = v[~np.isnan(v)]
        out[m] = {"mean": float(ok.mean()) if len(ok) else math.nan,
                  "std": float(ok.std(ddof=1)) if len(ok) > 1 else 0.0, "n": len(ok)}
    return out


class _Runs:
    """Per-model lists of (metrics, prefix-length breakdown), one entry per seed."""

    def __init__(self):
        self.metrics: dict[str, list[dict]] = {m: [] for m in MODEL_NAMES}
        self.buckets: dict[str, list[dict]] = {m: [] for m in MODEL_NAMES}

    def add(self, model: str, result: tuple[dict, dict]) -> None:
        self.metrics[model].append(result[0])
        self.buckets[model].append(result[1])

    def results(self, extra: dict) -> EvalResults:
        extra["per_seed"] = {m: {"metrics": self.metrics[m], "breakdown": self.buckets[m]}
                             for m in MODEL_NAMES if self.metrics[m]}
        return results_from_seeds(extra)


def results_from_seeds(extra: dict) -> EvalResults:
    """Mean / std tables (and the breakdown) from ``extra["per_seed"]``; :func:`merge_results` uses it
    to combine runs of different seeds."""
    per = extra["per_seed"]
    extra["breakdown"] = {
        m: {label: {"n": r["breakdown"][0][label]["n"],
                    **aggregate([b[label] for b in r["breakdown"]], BREAKDOWN_METRICS)}
            for label, *_ in PREFIX_BUCKETS}
        for m, r in per.items()}
    return EvalResults({m: aggregate(r["metrics"]) for m, r in per.items()}, extra=extra)


def merge_results(parts: Sequence[Mapping]) -> EvalResults:
    """One table from the ``extra`` of runs over disjoint seeds of the same inputs and settings (e.g.
    one process per seed). Deterministic models (popularity, LLMSeqSim) are kept once."""
    first = dict(parts[0])
    per: dict[str, dict[str, list]] = {}
    for part in parts:
        for m, r in part["per_seed"].items():
            if m in ("popularity", "llmseqsim") and m in per:
                continue
            slot = per.setdefault(m, {"metrics": [], "breakdown": []})
            slot["metrics"] += r["metrics"]
            slot["breakdown"] += r["breakdown"]
    lists = ("seeds", "chosen_fusion", "fusion_valid_NDCG@10", "plan", "plan_history_user", "grid_valid",
             "history_user_fusion", "persona_part", "part_valid", "residual_valid", "residual_epoch",
             "history_user_part", "history_user_part_valid")
    for key in lists:
        if key in first:
            first[key] = [v for part in parts for v in part.get(key, [])]
    first["seconds_per_part"] = [part.get("seconds") for part in parts]
    if "fusion_per_seed" in first:
        fps = {f: [m for part in parts for m in part["fusion_per_seed"][f]] for f in first["fusion_per_seed"]}
        first["fusion_per_seed"], first["fusion"] = fps, {f: aggregate(v) for f, v in fps.items()}
    first["per_seed"] = per
    return results_from_seeds(first)


def _scorer(prep: Prepared, device: str) -> Callable:
    from kgrec.recommender.training import evaluate_scorer

    def run(model, examples: D.EvalExamples, persona: np.ndarray | None = None) -> tuple[dict, dict]:
        return evaluate_scorer(model, examples, persona, head_mask=prep.head, exclude_seen=prep.exclude_seen,
                               device=device, breakdown=True)
    return run


def _baselines(prep: Prepared, runs: _Runs, extra: dict, score: Callable, say: Callable[[str], None]) -> None:
    """Popularity and LLMSeqSim (its variant picked on validation)."""
    from kgrec.recommender.baselines import LLMSeqSim, Popularity

    say("popularity")
    runs.add("popularity", score(Popularity(prep.counts), prep.test))
    say("llmseqsim")
    variants = {"last": ("last", None), "mean@5": ("mean", 5), "mean@all": ("mean", None)}
    vscore = {name: score(LLMSeqSim(prep.item_table, *v), prep.valid)[0]["NDCG@10"] for name, v in variants.items()}
    best = best_of(vscore, list(variants))
    runs.add("llmseqsim", score(LLMSeqSim(prep.item_table, *variants[best]), prep.test))
    extra["llmseqsim_variant"], extra["llmseqsim_valid_NDCG@10"] = best, vscore


def _pipelines(prep: Prepared, seeds: Sequence[int], runs: _Runs, extra: dict, score: Callable, say, *, k: int,
               common: dict, fusions: Sequence[str], models: dict, on_pipeline: Callable | None,
               buckets=PREFIX_BUCKETS, residual: bool = True) -> None:
    """Per seed: the production recipe (its parts, fusion and plan), its test scores, and the
    history-user ablation as a retriever and as the kernel's persona part."""
    from kgrec.recommender.fusion import Kernel
    from kgrec.recommender.recipe import choose_persona_part, evaluate_kernel, train_residual

    test_p = prep.persona_rows("persona", prep.test)
    test_h = prep.persona_rows("history_user", prep.test)
    fusion_test: dict[str, list[dict]] = {f: [] for f in fusions}
    picks: dict[str, list] = {k_: [] for k_ in ("fusion", "fusion_valid", "plan", "plan_history_user", "grid_valid",
                                                "history_user_fusion", "persona_part", "part_valid",
                                                "residual_valid", "residual_epoch", "history_user_part",
                                                "history_user_part_valid")}
    for seed in seeds:
        say(f"seed {seed}: sasrec, session retriever, persona retrievers {list(fusions)}")
        tp = train_pipeline(prep, seed, fusions=fusions, k=k, buckets=buckets, residual=residual,
                            sasrec_kwargs=models.get("sasrec"),
                            retriever_kwargs=models.get("retriever"), **common)
        if on_pipeline is not None:
            on_pipeline(prep, tp)
        runs.add("sasrec", score(tp.sasrec, prep.test))
        runs.add("retriever_no_persona", score(tp.session, prep.test))
        for f, model in tp.retrievers.items():
            res = score(model, prep.test, test_p)
            fusion_test[f].append(res[0])
            if f == tp.fusion:
                runs.add("retriever_persona", res)
        if tp.residual is not None:
            runs.add("sasrec_persona_residual", score(tp.residual, prep.test, test_p))
        say(f"seed {seed}: full_pipeline (persona part {tp.persona_part})")
        runs.add("full_pipeline", evaluate_kernel(prep, tp.kernel(), prep.test, "persona", device=common["device"]))
        hist, best = _history_retriever(prep, seed, say, common=common, fusions=fusions, models=models)
        runs.add("retriever_history_user", score(hist, prep.test, test_h))
        say(f"seed {seed}: pipeline_history_user")
        cands = {best: hist}
        if tp.residual is not None:
            cands["residual"] = train_residual(prep, tp.sasrec, "history_user", seed, **common)[0]
        hpart, hplan, _, hvalid = choose_persona_part(prep, tp.sasrec, tp.session, cands, "history_user", k=k,
                                                      device=common["device"], buckets=buckets)
        parts = {"sasrec": tp.sasrec, "session": tp.session, "persona": cands[hpart]}
        runs.add("pipeline_history_user", evaluate_kernel(prep, Kernel(parts, hplan), prep.test, "history_user",
                                                          device=common["device"]))
        for key, val in (("fusion", tp.fusion), ("fusion_valid", tp.fusion_valid), ("plan", tp.plan.to_dict()),
                         ("plan_history_user", hplan.to_dict()), ("grid_valid", tp.grid_valid),
                         ("history_user_fusion", best), ("persona_part", tp.persona_part),
                         ("part_valid", tp.part_valid), ("residual_valid", tp.residual_valid),
                         ("residual_epoch", tp.residual_epoch), ("history_user_part", hpart),
                         ("history_user_part_valid", hvalid)):
            picks[key].append(val)
    extra.update({"fusion": {f: aggregate(v) for f, v in fusion_test.items()}, "fusion_per_seed": fusion_test,
                  "chosen_fusion": picks["fusion"], "fusion_valid_NDCG@10": picks["fusion_valid"],
                  "plan": picks["plan"], "plan_history_user": picks["plan_history_user"],
                  "grid_valid": picks["grid_valid"], "history_user_fusion": picks["history_user_fusion"],
                  **{key: picks[key] for key in ("persona_part", "part_valid", "residual_valid", "residual_epoch",
                                                 "history_user_part", "history_user_part_valid")}})


def _history_retriever(prep: Prepared, seed: int, say, *, common: dict, fusions: Sequence[str], models: dict):
    """The history-user retriever, its fusion chosen on validation."""
    trained, valid = {}, {}
    for f in fusions:
        say(f"seed {seed}: retriever_history_user fusion={f}")
        trained[f], res = train_retriever(prep, f, "history_user", seed, model_kwargs=models.get("retriever"),
                                          **common)
        valid[f] = float(res.best_valid_ndcg)
    best = best_of(valid, fusions)
    return trained[best], best


def evaluate_all(split_frames, item_emb, personas, *, seeds: Sequence[int] = (0, 1, 2),
                 epochs: int = 50, device: str = "cpu", progress: Callable[[str], None] | None = None,
                 item_ids=None, max_len: int = D.DEFAULT_MAX_LEN, k: int = 100,
                 fusions: Sequence[str] = DEFAULT_FUSIONS, protocol: str | Protocol = Protocol.session,
                 exclude_seen: bool = True, sasrec_kwargs: Mapping | None = None,
                 retriever_kwargs: Mapping | None = None, fit_kwargs: Mapping | None = None,
                 on_pipeline: Callable[[Prepared, object], None] | None = None,
                 buckets=PREFIX_BUCKETS, residual: bool = True,
                 early_stop_examples: int | None = EARLY_STOP_EXAMPLES) -> EvalResults:
    """Train / evaluate every model over ``seeds`` under ``protocol``; see the module docstring.
    ``on_pipeline(prep, trained)`` sees each seed's :class:`~kgrec.recommender.recipe.TrainedPipeline`."""
    if not seeds:
        raise ConfigError("seeds must not be empty")
    fusions = check_fusions(fusions)
    say = progress or (lambda _m: None)
    prep = prepare(split_frames, item_emb, personas, item_ids=item_ids, max_len=max_len,
                   protocol=protocol, exclude_seen=exclude_seen, early_stop_examples=early_stop_examples)
    if not len(prep.test) or not len(prep.valid):
        raise DataError("no valid / test examples (are the held-out frames empty?)")
    extra: dict = {"protocol": prep.protocol.value, "exclude_seen": exclude_seen, "n_items": len(prep.vocab) - 1,
                   "n_train_windows": len(prep.windows), "n_train_targets": int((prep.windows.targets != 0).sum()),
                   "n_valid_examples": len(prep.valid), "n_test_examples": len(prep.test),
                   "n_test_users": len(set(prep.test.users)), "seeds": list(seeds), "k": k, "max_len": max_len,
                   "n_early_stop_examples": len(prep.stop)}
    runs, score = _Runs(), _scorer(prep, device)
    common = {"epochs": epochs, "device": device, "progress": progress, "fit_kwargs": fit_kwargs}
    models = {"sasrec": sasrec_kwargs, "retriever": retriever_kwargs}
    _baselines(prep, runs, extra, score, say)
    _pipelines(prep, seeds, runs, extra, score, say, k=k, common=common, fusions=fusions, models=models,
               on_pipeline=on_pipeline, buckets=buckets, residual=residual)
    return runs.results(extra)
