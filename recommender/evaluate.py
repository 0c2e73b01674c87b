"""End-to-end evaluation harness: six models, several seeds, mean / std per metric.

Models (keys of the result, exactly):

``popularity``            training counts (deterministic: std 0)
``sasrec``                SASRec, LLM-initialised item table, full-softmax CE
``llmseqsim``             cosine to the session's LLM embedding; variant (last / mean of last 5 /
                          mean of the whole prefix) picked on validation (deterministic)
``retriever_no_persona``  retriever with ``fusion="none"``
``retriever_history_user`` retriever whose persona is the mean LLM embedding of the user's
                          training items (fusion picked on validation like the persona one)
``full_pipeline``         persona retriever top-K + SASRec rerank, blend alpha tuned on validation

Every trained model is early-stopped on **validation** NDCG@10 (test is touched once,
at the end). The persona fusion (``prefix`` vs ``gate``) is chosen by mean
validation NDCG@10 over seeds; both are reported in ``results.extra["fusion"]``.
Protocol: see :mod:`kgrec.recommender.data` (every next item of the held-out
session) and :mod:`kgrec.recommender.metrics` (definitions). ``std`` is the sample
standard deviation over seeds (0 for one seed or deterministic models).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kgrec.errors import ConfigError, DataError
from kgrec.recommender import data as D
from kgrec.recommender.metrics import METRICS, head_items

MODEL_NAMES = ("popularity", "sasrec", "llmseqsim", "retriever_no_persona", "retriever_history_user",
               "full_pipeline")


class EvalResults(dict):
    """``dict[model -> dict[metric -> {"mean", "std"}]]`` plus ``.extra`` (fusion section, alphas, ...)."""

    def __init__(self, *a, extra: dict | None = None, **kw):
        super().__init__(*a, **kw)
        self.extra = extra or {}


@dataclass
class Prepared:
    vocab: D.ItemVocab
    item_table: np.ndarray  # [num_items, d_llm]
    windows: D.TrainWindows
    valid: D.EvalExamples
    test: D.EvalExamples
    counts: np.ndarray
    head: np.ndarray
    personas: object  # Mapping[user, vector] or None
    history_user: dict[str, np.ndarray]
    max_len: int

    def persona_rows(self, source: str, users: Sequence[str]) -> np.ndarray | None:
        if source == "none":
            return None
        src = self.personas if source == "persona" else self.history_user
        dim = None if source == "persona" or self.history_user else self.item_table.shape[1]
        return D.persona_matrix(users, src, dim=dim)


def _frame(split, name: str) -> pd.DataFrame | None:
    if isinstance(split, Mapping):
        return split.get(name)
    return getattr(split, name, None)


def subsample_users(split_frames, n: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """A seeded random sample of ``n`` users who have a held-out (test) session, with all their
    train/valid/test rows; the item table, and so the ranked catalogue, stays whole. For a quick
    estimate on a big data set; the report records the sample size."""
    if n < 1:
        raise ConfigError(f"users: the subsample must have at least 1 user (got {n})")
    frames = {k: _frame(split_frames, k) for k in ("train", "valid", "test", "items")}
    if frames["test"] is None or frames["train"] is None:
        raise DataError("the split has no train/test frames to subsample")
    pool = np.asarray(sorted(frames["test"]["user"].astype(str).unique()))
    keep = set(np.random.default_rng(seed).choice(pool, size=min(n, len(pool)), replace=False).tolist())
    return {k: v if k == "items" or v is None else v[v["user"].astype(str).isin(keep)] for k, v in frames.items()}


def prepare(split_frames, item_emb, personas=None, history_user_emb=None, *, item_ids=None,
            max_len: int = D.DEFAULT_MAX_LEN) -> Prepared:
    """Vocabulary, embeddings aligned to it, train windows and valid / test examples.

    ``split_frames``: a ``Split`` (attributes) or mapping with ``train``, ``valid``, ``test``
    (and optionally ``items``). ``item_emb``: array whose rows follow ``item_ids``, or, if
    ``item_ids`` is None, ``split.items["item"]`` (a mapping / DataFrame indexed by item id
    also works). ``personas``: ``Mapping[user, vector]`` / DataFrame indexed by user.
    ``history_user_emb``: same, or None to compute it from the training items.
    """
    train, valid, test = (_frame(split_frames, n) for n in ("train", "valid", "test"))
    items = _frame(split_frames, "items")
    if train is None or valid is None or test is None:
        raise DataError("split needs train, valid and test frames")
    vocab = D.ItemVocab.from_frames(train, valid, test, items=items)
    if item_ids is None and isinstance(item_emb, np.ndarray) and items is not None and len(items) == len(item_emb):
        item_ids = items["item"].astype(str).tolist()
    table = D.align_item_embeddings(vocab, item_emb, item_ids)
    seqs = D.user_sequences(train, vocab)
    counts = D.item_counts(train, vocab)
    hist = dict(history_user_emb) if history_user_emb is not None else D.history_user_embeddings(train, vocab, table)
    return Prepared(vocab, table, D.training_windows(seqs, max_len),
                    D.eval_examples([train], valid, vocab, max_len),
                    D.eval_examples([train, valid], test, vocab, max_len),
                    counts, head_items(counts), personas, hist, max_len)


def aggregate(runs: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for m in METRICS:
        v = np.array([r.get(m, math.nan) for r in runs], dtype=np.float64)
        ok = v[~np.isnan(v)]
        out[m] = {"mean": float(ok.mean()) if len(ok) else math.nan,
                  "std": float(ok.std(ddof=1)) if len(ok) > 1 else 0.0}
    return out


def train_sasrec(prep: Prepared, seed: int, *, epochs: int, device: str = "cpu", progress=None,
                 model_kwargs: Mapping | None = None, fit_kwargs: Mapping | None = None):
    from kgrec.recommender.sasrec import SASRec
    from kgrec.recommender.training import fit, seed_everything

    seed_everything(seed)
    kw = {"max_len": prep.max_len, "item_init": prep.item_table, **(model_kwargs or {})}
    model = SASRec(len(prep.vocab), **kw)
    res = fit(model, prep.windows, prep.valid, epochs=epochs, seed=seed, device=device, progress=progress,
              name=f"sasrec[seed={seed}]", **(fit_kwargs or {}))
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
              **(fit_kwargs or {}))
    return model, res


def evaluate_all(split_frames, item_emb, personas, history_user_emb=None, *, seeds: Sequence[int] = (0, 1, 2),
                 epochs: int = 50, device: str = "cpu", progress: Callable[[str], None] | None = None,
                 item_ids=None, max_len: int = D.DEFAULT_MAX_LEN, k: int = 100,
                 fusions: Sequence[str] = ("prefix", "gate"), exclude_seen: bool = False,
                 sasrec_kwargs: Mapping | None = None, retriever_kwargs: Mapping | None = None,
                 fit_kwargs: Mapping | None = None) -> EvalResults:
    """Train / evaluate all six models over ``seeds``; see the module docstring."""
    from kgrec.recommender.baselines import LLMSeqSim, Popularity
    from kgrec.recommender.rerank import build_candidates, evaluate_pipeline, tune_alpha
    from kgrec.recommender.training import evaluate_scorer

    if not seeds:
        raise ConfigError("seeds must not be empty")
    if not fusions or any(f not in ("prefix", "gate") for f in fusions):
        raise ConfigError(f"fusions must be a non-empty subset of ('prefix', 'gate'), got {fusions}")
    say = progress or (lambda _m: None)
    prep = prepare(split_frames, item_emb, personas, history_user_emb, item_ids=item_ids, max_len=max_len)
    if not len(prep.test) or not len(prep.valid):
        raise DataError("no valid / test examples (are the held-out frames empty?)")
    n = len(prep.vocab)
    fkw = {"exclude_seen": exclude_seen, **(fit_kwargs or {})}
    ev = {"head_mask": prep.head, "exclude_seen": exclude_seen, "device": device}
    test_p = {s: prep.persona_rows(s, prep.test.users) for s in ("persona", "history_user")}
    valid_p = {s: prep.persona_rows(s, prep.valid.users) for s in ("persona", "history_user")}
    runs: dict[str, list[dict]] = {m: [] for m in MODEL_NAMES}
    extra: dict = {"n_items": n - 1, "n_train_windows": len(prep.windows), "n_valid_examples": len(prep.valid),
                   "n_test_examples": len(prep.test), "seeds": list(seeds), "k": k,
                   "exclude_seen": exclude_seen}

    say("popularity")
    runs["popularity"].append(evaluate_scorer(Popularity(prep.counts), prep.test, **ev))
    say("llmseqsim")
    variants = {"last": ("last", None), "mean@5": ("mean", 5), "mean@all": ("mean", None)}
    vscore = {name: evaluate_scorer(LLMSeqSim(prep.item_table, *v), prep.valid, **ev)["NDCG@10"]
              for name, v in variants.items()}
    best_v = max(vscore, key=lambda x: (vscore[x], -list(variants).index(x)))
    runs["llmseqsim"].append(evaluate_scorer(LLMSeqSim(prep.item_table, *variants[best_v]), prep.test, **ev))
    extra["llmseqsim_variant"], extra["llmseqsim_valid_NDCG@10"] = best_v, vscore

    sasrecs, persona_models = {}, {f: {} for f in fusions}
    fusion_valid = {f: [] for f in fusions}
    fusion_test = {f: [] for f in fusions}
    common = {"epochs": epochs, "device": device, "progress": progress, "fit_kwargs": fkw}
    for seed in seeds:
        say(f"seed {seed}: sasrec")
        sas, _ = train_sasrec(prep, seed, model_kwargs=sasrec_kwargs, **common)
        sasrecs[seed] = sas
        runs["sasrec"].append(evaluate_scorer(sas, prep.test, **ev))
        say(f"seed {seed}: retriever_no_persona")
        r0, _ = train_retriever(prep, "none", "none", seed, model_kwargs=retriever_kwargs, **common)
        runs["retriever_no_persona"].append(evaluate_scorer(r0, prep.test, **ev))
        for f in fusions:
            say(f"seed {seed}: retriever persona fusion={f}")
            rp, res = train_retriever(prep, f, "persona", seed, model_kwargs=retriever_kwargs, **common)
            persona_models[f][seed] = rp
            fusion_valid[f].append(res.best_valid_ndcg)
            fusion_test[f].append(evaluate_scorer(rp, prep.test, test_p["persona"], **ev))
    chosen = max(fusions, key=lambda f: (float(np.mean(fusion_valid[f])), -list(fusions).index(f)))
    extra["fusion"] = {f: aggregate(fusion_test[f]) for f in fusions}
    extra["fusion_valid_NDCG@10"] = {f: float(np.mean(v)) for f, v in fusion_valid.items()}
    extra["chosen_fusion"] = chosen

    hist_valid = {f: [] for f in fusions}
    hist_models = {f: {} for f in fusions}
    for seed in seeds:
        for f in fusions:
            say(f"seed {seed}: retriever_history_user fusion={f}")
            rh, res = train_retriever(prep, f, "history_user", seed, model_kwargs=retriever_kwargs, **common)
            hist_models[f][seed] = rh
            hist_valid[f].append(res.best_valid_ndcg)
    hchosen = max(fusions, key=lambda f: (float(np.mean(hist_valid[f])), -list(fusions).index(f)))
    extra["history_user_fusion"] = hchosen
    for seed in seeds:
        runs["retriever_history_user"].append(
            evaluate_scorer(hist_models[hchosen][seed], prep.test, test_p["history_user"], **ev))

    alphas, alpha_tables = [], []
    for seed in seeds:
        say(f"seed {seed}: full_pipeline")
        rp, sas = persona_models[chosen][seed], sasrecs[seed]
        vc = build_candidates(rp, sas, prep.valid, valid_p["persona"], k=k, device=device,
                              exclude_seen=exclude_seen)
        alpha, table = tune_alpha(vc)
        alphas.append(alpha)
        alpha_tables.append(table)
        tc = build_candidates(rp, sas, prep.test, test_p["persona"], k=k, device=device,
                              exclude_seen=exclude_seen)
        runs["full_pipeline"].append(evaluate_pipeline(tc, alpha, n, prep.head))
    extra["alpha"] = alphas
    extra["alpha_valid_NDCG@10"] = alpha_tables
    results = EvalResults({m: aggregate(runs[m]) for m in MODEL_NAMES}, extra=extra)
    return results


def _fmt(cell: Mapping[str, float]) -> str:
    m, s = cell.get("mean", math.nan), cell.get("std", math.nan)
    return "n/a" if m is None or (isinstance(m, float) and math.isnan(m)) else f"{m:.4f} ± {s:.4f}"


def _table(rows: Mapping[str, Mapping]) -> list[str]:
    lines = ["| model | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for name, mets in rows.items():
        lines.append(f"| {name} | " + " | ".join(_fmt(mets.get(m, {})) for m in METRICS) + " |")
    return lines


def _jsonable(x):
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    return x


def write_report(results: Mapping, out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.md`` (table), ``results.json`` and ``results.png`` (bar chart) to ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra = getattr(results, "extra", {})
    md = ["# Recommender evaluation", "",
          ("Mean ± sample std over seeds. Protocol: every next item of each user's held-out session "
           "given the history prefix; full-catalogue ranking, ties against the target, MRR over the "
           "full ranking, history items not excluded unless stated."), ""]
    md += _table(results)
    if extra.get("fusion"):
        md += ["", "## Persona fusion (retriever, test)", "",
               (f"Chosen on validation NDCG@10: **{extra.get('chosen_fusion')}** "
                f"(validation: {json.dumps(_jsonable(extra.get('fusion_valid_NDCG@10')))})"), ""]
        md += _table({f"retriever_persona_{f}": v for f, v in extra["fusion"].items()})
    if "alpha" in extra:
        md += ["", f"Rerank alpha per seed (tuned on validation): {extra['alpha']}"]
    if "llmseqsim_variant" in extra:
        md += [f"LLMSeqSim variant (validation): {extra['llmseqsim_variant']}"]
    paths = {"md": out / "results.md", "json": out / "results.json", "png": out / "results.png"}
    paths["md"].write_text("\n".join(md) + "\n", encoding="utf-8")
    paths["json"].write_text(json.dumps(_jsonable({"results": dict(results), "extra": extra}), indent=2),
                             encoding="utf-8")
    models = list(results)
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(METRICS)), 4.5))
    width = 0.8 / max(1, len(models))
    x = np.arange(len(METRICS))
    for i, name in enumerate(models):
        means = [results[name].get(m, {}).get("mean", math.nan) for m in METRICS]
        stds = [results[name].get(m, {}).get("std", 0.0) for m in METRICS]
        means = [0.0 if v is None or math.isnan(v) else v for v in means]
        ax.bar(x + i * width - 0.4 + width / 2, means, width, yerr=stds, label=name, capsize=2)
    ax.set_xticks(x, METRICS)
    ax.set_ylabel("score")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(paths["png"], dpi=120)
    plt.close(fig)
    return paths
