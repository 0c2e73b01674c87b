"""Reports of the evaluation harness (:mod:`kgrec.recommender.evaluate`): ``results.md`` (the
metric table, the paper's claims with their 2-std verdicts, the prefix-length breakdown, the
validation choices), ``results.json`` and ``results.png``. Every report names its protocol.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from kgrec.recommender.metrics import METRICS
from kgrec.recommender.protocols import PREFIX_BUCKETS


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


PROTOCOL_TEXT = {
    "session": ("`session`: session models see only the current session's prefix; the user's past reaches a "
                "model only through the persona (or the history-user embedding); every item of each held-out "
                "session is a target, prefix length 0 being pure cold start"),
    "loo": ("`loo`: time-ordered leave-one-out; the last item is the target, the full history before it the "
            "input"),
}


def _describe(extra: Mapping) -> str:
    proto = str(extra.get("protocol", "?"))
    seen = "excluded" if extra.get("exclude_seen") else "not excluded"
    sub = f"; a seeded subsample of {extra['user_subsample']} users" if extra.get("user_subsample") else ""
    return (f"**Protocol: {proto}** ({PROTOCOL_TEXT.get(proto, proto)}). Full-catalogue ranking "
            f"({extra.get('n_items', '?')} items), items the user already had {seen} (`--exclude-seen`); "
            f"{extra.get('n_test_examples', '?')} test examples from {extra.get('n_test_users', '?')} users{sub}. "
            "Mean ± sample std over seeds; ties count against the target; MRR over the full ranking.")


def _breakdown_lines(extra: Mapping) -> list[str]:
    bd = extra.get("breakdown") or {}
    if not bd or extra.get("protocol") != "session":
        return []
    labels = [b[0] for b in PREFIX_BUCKETS]
    first = next(iter(bd.values()))
    lines = ["", "## By prefix length (items of the session before the target)", "",
             "n: " + ", ".join(f"{lb}: {int(first[lb]['n'])}" for lb in labels), ""]
    for metric in ("HR@10", "NDCG@10", "HR@100"):
        lines += [f"| {metric} | " + " | ".join(f"prefix {lb}" for lb in labels) + " |",
                  "|---|" + "---|" * len(labels)]
        for model, cells in bd.items():
            lines.append(f"| {model} | " + " | ".join(_fmt(cells[lb][metric]) for lb in labels) + " |")
        lines.append("")
    return lines


#: the paper's claims under the session protocol: (what, better model, baseline, metrics)
CLAIMS = (
    ("full pipeline > SASRec on the session", "full_pipeline", "sasrec", ("HR@10", "HR@100", "LT-HR@100")),
    ("full pipeline > no-persona session retriever", "full_pipeline", "retriever_no_persona",
     ("HR@10", "HR@100", "LT-HR@100")),
    ("full pipeline > history-user ablation (the same kernel)", "full_pipeline", "pipeline_history_user",
     ("HR@10", "HR@100")),
    ("full pipeline > history-user retriever", "full_pipeline", "retriever_history_user", ("HR@10", "HR@100")),
    ("persona retriever > history-user retriever", "retriever_persona", "retriever_history_user",
     ("HR@10", "HR@100")),
    ("fusion > the persona retriever alone", "full_pipeline", "retriever_persona", ("NDCG@10", "MRR")),
)


def bucket_claims(extra: Mapping, better: str = "full_pipeline",
                  baselines: tuple[str, ...] = ("sasrec", "retriever_no_persona", "pipeline_history_user")) -> list[str]:
    """Per prefix-length bucket: ``better`` minus each baseline on HR@10 / HR@100, with the larger std."""
    bd = extra.get("breakdown") or {}
    if better not in bd:
        return []
    lines = ["| bucket | baseline | metric | model | baseline | difference | verdict |", "|---|---|---|---|---|---|---|"]
    for label, *_r in PREFIX_BUCKETS:
        for b in baselines:
            if b not in bd or not bd[better][label]["n"]:
                continue
            for m in ("HR@10", "HR@100"):
                ca, cb = bd[better][label][m], bd[b][label][m]
                if any(v is None or math.isnan(v) for v in (ca["mean"], cb["mean"])):
                    continue
                lines.append(f"| {label} | {b} | {m} | {_fmt(ca)} | {_fmt(cb)} | {ca['mean'] - cb['mean']:+.4f} | "
                             f"{_verdict(ca, cb)} |")
    return lines


def plan_lines(extra: Mapping) -> list[str]:
    """The per-bucket fusion chosen on validation, seed by seed, with the endpoints beside it."""
    plans = extra.get("plan") or []
    if not plans:
        return []
    lines = ["", "## Fusion plan per prefix-length bucket (chosen on validation NDCG@10)", "",
             ("| seed | bucket | n valid | weights (sasrec, session, persona) | shares | chosen | SASRec | session "
             "retriever | best persona setting |"), "|---|---|---|---|---|---|---|---|---|"]
    for seed, plan in zip(extra.get("seeds", []), plans, strict=False):
        for label, row in plan.get("valid", {}).items():
            c = row["chosen"]
            lines.append(f"| {seed} | {label} | {row['n']} | {c['weights']} | {c['shares']} | "
                         f"{row[plan.get('metric', 'NDCG@10')]:.4f} | {row['sasrec']:.4f} | {row['session']:.4f} | "
                         f"{row['best_persona']:.4f} |")
    grids = extra.get("grid_valid") or []
    if grids and grids[0]:
        labels = [k for k in grids[0][0] if k not in ("weights", "shares")]
        lines += ["", (f"<details><summary>Every fusion setting tried (validation NDCG@10 per bucket, seed "
                  f"{extra.get('seeds', [0])[0]}; the first two rows are the SASRec and session-retriever "
                  "endpoints)</summary>"), "", "| weights | shares | " + " | ".join(labels) + " |",
                  "|---|---|" + "---|" * len(labels)]
        lines += [f"| {r['weights']} | {r['shares']} | " + " | ".join(f"{r[b]:.4f}" for b in labels) + " |"
                  for r in grids[0]]
        lines += ["", "</details>"]
    return lines


def claims_table(results: Mapping) -> list[str]:
    """Each claim per metric: both means, the difference, and whether it exceeds 2 std (the larger
    of the two models' std over seeds)."""
    lines = ["| claim | metric | model | baseline | difference | > 2 std |", "|---|---|---|---|---|---|"]
    for what, a, b, metrics in CLAIMS:
        if a not in results or b not in results:
            continue
        for m in metrics:
            ca, cb = results[a][m], results[b][m]
            if any(v is None or math.isnan(v) for v in (ca["mean"], cb["mean"])):
                continue
            lines.append(f"| {what} | {m} | {_fmt(ca)} | {_fmt(cb)} | {ca['mean'] - cb['mean']:+.4f} | "
                         f"{_verdict(ca, cb)} |")
    return lines


def _verdict(ca: Mapping, cb: Mapping) -> str:
    """Whether ``ca`` beats ``cb`` by more than 2 std; with one seed there is no std to judge by."""
    d = ca["mean"] - cb["mean"]
    direction = "better" if d > 0 else ("equal" if d == 0 else "worse")
    if min(ca.get("n", 2), cb.get("n", 2)) < 2:
        return f"n/a: 1 seed ({direction})"
    if d > 2 * max(ca["std"], cb["std"]):
        return "yes"
    return "no (better, within 2 std)" if d > 0 else f"no ({direction})"


def _report_markdown(results: Mapping, extra: Mapping) -> str:
    md = [f"# Recommender evaluation: protocol `{extra.get('protocol', '?')}`", "", _describe(extra), ""]
    md += _table(results)
    if extra.get("protocol") == "session":
        md += ["", "## The paper's claims, as measured", ""] + claims_table(results)
        per_bucket = bucket_claims(extra)
        if per_bucket:
            md += ["", "### Per prefix-length bucket", ""] + per_bucket
    md += _breakdown_lines(extra)
    md += plan_lines(extra)
    if extra.get("fusion"):
        md += ["", "## Persona fusion (retriever alone, test)", "",
               (f"Chosen per seed on validation NDCG@10: {extra.get('chosen_fusion')} "
                f"(validation: {json.dumps(_jsonable(extra.get('fusion_valid_NDCG@10')))})"), ""]
        md += _table({f"retriever_persona_{f}": v for f, v in extra["fusion"].items()})
    if extra.get("cpu_seconds") is not None:
        md += ["", f"Wall time {extra.get('seconds')} s, CPU time {extra['cpu_seconds']} s."]
    if "history_user_fusion" in extra:
        md += [f"History-user fusion per seed (validation): {extra['history_user_fusion']}"]
    md += persona_part_lines(extra)
    if "llmseqsim_variant" in extra:
        md += [f"LLMSeqSim variant (validation): {extra['llmseqsim_variant']}"]
    return "\n".join(md) + "\n"


def persona_part_lines(extra: Mapping) -> list[str]:
    """Which persona part each seed's kernel took (validation), and the residual SASRec's fine-tune."""
    if not extra.get("persona_part"):
        return []
    lines = ["", "## The kernel's persona part (chosen on validation)", "",
             ("| seed | persona part | plan valid NDCG@10 per candidate | residual best valid NDCG@10 (epoch; -1 = "
             "plain SASRec) | history-user part | its candidates |"), "|---|---|---|---|---|---|"]
    for j, seed in enumerate(extra.get("seeds", [])):
        if j >= len(extra["persona_part"]):
            break
        cand = ", ".join(f"{k} {v:.4f}" for k, v in extra["part_valid"][j].items())
        hcand = ", ".join(f"{k} {v:.4f}" for k, v in extra.get("history_user_part_valid", [{}] * (j + 1))[j].items())
        lines.append(f"| {seed} | {extra['persona_part'][j]} | {cand} | {extra['residual_valid'][j]:.4f} "
                     f"({extra['residual_epoch'][j]}) | {extra.get('history_user_part', ['?'] * (j + 1))[j]} | "
                     f"{hcand} |")
    return lines


def write_report(results: Mapping, out_dir: str | Path) -> dict[str, Path]:
    """Write ``results.md`` (tables), ``results.json`` and ``results.png`` (bar chart) to ``out_dir``;
    each names the protocol and whether seen items were excluded."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    extra = getattr(results, "extra", {})
    paths = {"md": out / "results.md", "json": out / "results.json", "png": out / "results.png"}
    paths["md"].write_text(_report_markdown(results, extra), encoding="utf-8")
    paths["json"].write_text(json.dumps(_jsonable({"protocol": extra.get("protocol"), "results": dict(results),
                                                   "extra": extra}), indent=2), encoding="utf-8")
    _plot(results, extra, paths["png"])
    return paths


def _plot(results: Mapping, extra: Mapping, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    seen = "seen items excluded" if extra.get("exclude_seen") else "seen items kept"
    ax.set_title(f"protocol: {extra.get('protocol', '?')} ({seen}, full catalogue)")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
