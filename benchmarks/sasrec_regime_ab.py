"""Where our SASRec trails RecBole's: training-regime A/B on the ``loo`` split of recbole_compare.py.

    .venv/bin/python benchmarks/sasrec_regime_ab.py --batch 32 --post-ln --cap-s 1500
    .venv/bin/python benchmarks/sasrec_regime_ab.py --batch 51 --stride 5 --cap-s 2400

One variant per run (the same split, model sizes, CE loss, Adam 1e-3, patience 5 on validation
NDCG@10 as ``recbole_compare.py``; seed 0; 1 torch thread). It prints validation NDCG@10 and the
wall time after every epoch, then test NDCG@10 / HR@10 of the best-validation weights. ``--cap-s``
stops before an epoch that starts after that many seconds (the result line says so).

Variants: ``--batch`` (windows per step; a window holds up to 50 targets, RecBole's batch row one),
``--stride`` (overlapping training windows, :func:`kgrec.recommender.data.training_windows`; 1 is
one window per target, as RecBole's prefix rows), ``--post-ln`` (RecBole's block layout),
``--recbole-init`` (N(0, 0.02) weights and zero biases in the encoder, as RecBole initialises).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    import torch
    from recbole_compare import HP, loo_split

    from kgrec.recommender import data as D
    from kgrec.recommender.protocols import loo_examples
    from kgrec.recommender.sasrec import SASRec
    from kgrec.recommender.training import evaluate_scorer, fit

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data"
                    / "movielens-latest-small")
    ap.add_argument("--batch", type=int, default=HP["batch_size"])
    ap.add_argument("--stride", type=int, default=None)
    ap.add_argument("--post-ln", action="store_true")
    ap.add_argument("--recbole-init", action="store_true")
    ap.add_argument("--cap-s", type=float, default=1800.0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    ml = HP["max_len"]
    frames, _ = loo_split("movielens", a.data, k_core=5, users=None, seed=0)
    vocab = D.ItemVocab.from_frames(frames["train"], frames["valid"], frames["test"], items=frames["items"])
    loo = loo_examples(frames["train"], frames["valid"], frames["test"], vocab, ml, stride=a.stride)
    w = loo.windows
    name = f"batch {a.batch}, stride {a.stride or ml}, {'post' if a.post_ln else 'pre'}-LN" + \
        (", RecBole init" if a.recbole_init else "")
    print(f"{name}: {len(w)} windows, {int((w.targets != 0).sum())} targets, {-(-len(w) // a.batch)} steps/epoch",
          flush=True)
    torch.manual_seed(0)
    model = SASRec(len(vocab), hidden=HP["hidden"], num_blocks=HP["num_blocks"], num_heads=HP["num_heads"],
                   inner_size=HP["inner_size"], max_len=ml, dropout=HP["dropout"], loss_type="ce",
                   norm_first=not a.post_ln)
    if a.recbole_init:
        for mod in model.encoder.modules():
            if isinstance(mod, torch.nn.Linear):
                torch.nn.init.normal_(mod.weight, std=0.02)
                torch.nn.init.zeros_(mod.bias)
            elif isinstance(mod, torch.nn.MultiheadAttention):
                torch.nn.init.normal_(mod.in_proj_weight, std=0.02)
                torch.nn.init.zeros_(mod.in_proj_bias)
    t0 = time.perf_counter()
    res = fit(model, w, loo.valid, epochs=1000, batch_size=a.batch, lr=HP["lr"], patience=5, seed=0,
              progress=lambda m: print(f"[{time.perf_counter() - t0:6.0f}s] {m}", flush=True),
              should_stop=lambda _e: time.perf_counter() - t0 > a.cap_s)
    m = evaluate_scorer(model, loo.test)
    print(f"{name}: best epoch {res.best_epoch + 1}, valid NDCG@10 {res.best_valid_ndcg:.4f}, test NDCG@10 "
          f"{m['NDCG@10']:.4f} HR@10 {m['HR@10']:.4f}, {'cap' if res.stopped else 'patience'} stop, "
          f"wall {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
