"""Full softmax against the sampled softmax (and length-bucketed batches), on validation only.

    .venv/bin/python benchmarks/loss_ab.py --inputs /tmp/ml-eval [--models sasrec,session] \
        [--variants ce,ce+bucket,sampled256+bucket] [--seed 0] [--json out.json]

``--inputs`` is an export of ``benchmarks/evaluate_offline.py export`` (the split and the LLM item
table; personas are not needed: the models compared are SASRec and the session retriever). Each
variant trains the model to convergence (patience on **validation** NDCG@10, no epoch cap) with the
recipe's own ``train_sasrec`` / ``train_retriever``, and the script prints, side by side, the best
validation NDCG@10 and HR@100, the epoch it was reached, the epochs run, the CPU seconds and the
load average. Test examples are never scored: this chooses the training loss, so it must not look
at test.

Variants: ``ce`` (full softmax, random batches: the old default), ``ce+bucket`` (full softmax,
length-bucketed batches), ``sampledK`` (sampled softmax with K shared uniform negatives),
``sampledKpop`` (K negatives drawn by popularity, log-Q corrected), each with an optional ``+bucket``,
``gbceK+bucket`` (SASRec only: gSASRec's gBCE with K negatives per position).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

import numpy as np

BUCKET_BATCHES = 50


def parse_variant(name: str) -> tuple[dict, dict]:
    """``(model kwargs, fit kwargs)`` of a variant name."""
    m = re.fullmatch(r"(ce|sampled|gbce)(\d*)(pop)?(\+bucket)?", name)
    if not m or (m.group(1) == "ce") == bool(m.group(2)) or (m.group(3) and m.group(1) != "sampled"):
        raise SystemExit(f"bad variant {name!r}: ce[+bucket], sampledK[pop][+bucket] or gbceK[+bucket]")
    model = {"loss_type": m.group(1)} | ({"num_negatives": int(m.group(2))} if m.group(2) else {})
    if m.group(3):
        model["proposal"] = "popularity"
    return model, {"bucket_batches": BUCKET_BATCHES if m.group(4) else 0}


def main() -> None:
    import pandas as pd
    import torch

    from kgrec.recommender.recipe import prepare, train_retriever, train_sasrec
    from kgrec.recommender.training import evaluate_scorer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--inputs", type=Path, required=True)
    ap.add_argument("--models", default="sasrec,session")
    ap.add_argument("--variants", default="ce,ce+bucket,sampled256+bucket")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--patience", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=512)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--stop-examples", type=int, default=None,
                    help="validation examples early stopping scores (default: recipe.EARLY_STOP_EXAMPLES)")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    frames = {n: pd.read_parquet(a.inputs / f"{n}.parquet") for n in ("train", "valid", "test", "items")}
    z = np.load(a.inputs / "arrays.npz", allow_pickle=False)
    prep = prepare(frames, z["item_table"], None, item_ids=z["item_ids"].tolist(),
                   **({} if a.stop_examples is None else {"early_stop_examples": a.stop_examples}))
    print(f"{a.inputs}: {len(prep.vocab) - 1} items, {int((prep.windows.targets != 0).sum())} training targets, "
          f"{len(prep.valid)} validation examples ({len(prep.stop)} for early stopping); seed {a.seed}, batch {a.batch_size}, lr {a.lr}, "
          f"patience {a.patience}, {a.threads} thread(s)", flush=True)
    rows = []
    for model in a.models.split(","):
        for variant in a.variants.split(","):
            mk, fk = parse_variant(variant)
            if model != "sasrec" and mk["loss_type"] == "gbce":
                continue
            fk |= {"patience": a.patience, "batch_size": a.batch_size, "lr": a.lr}
            load0, cpu0, wall0 = os.getloadavg()[0], time.process_time(), time.perf_counter()
            common = {"epochs": 10_000, "model_kwargs": mk, "fit_kwargs": fk,
                      "progress": lambda msg: print(f"  {msg}", flush=True)}
            if model == "sasrec":
                m, res = train_sasrec(prep, a.seed, **common)
            else:
                m, res = train_retriever(prep, "none", "none", a.seed, **common)
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            valid = evaluate_scorer(m, prep.valid, exclude_seen=prep.exclude_seen)
            rows.append({"model": model, "variant": variant, "valid_NDCG@10": valid["NDCG@10"],
                         "valid_HR@10": valid["HR@10"], "valid_HR@100": valid["HR@100"], "best_epoch": res.best_epoch,
                         "epochs_run": len(res.history), "cpu_s": round(cpu, 1), "wall_s": round(wall, 1),
                         "load_start": round(load0, 2), "load_end": round(os.getloadavg()[0], 2)})
            print(json.dumps(rows[-1]), flush=True)
    print("\n| model | variant | valid NDCG@10 | valid HR@10 | valid HR@100 | best epoch (run) | CPU s | wall s | load |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['variant']} | {r['valid_NDCG@10']:.4f} | {r['valid_HR@10']:.4f} | "
              f"{r['valid_HR@100']:.4f} | {r['best_epoch']} ({r['epochs_run']}) | {r['cpu_s']:.0f} | "
              f"{r['wall_s']:.0f} | {r['load_start']:.1f}-{r['load_end']:.1f} |")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
