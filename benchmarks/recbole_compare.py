"""Our SASRec vs RecBole 1.2.1's SASRec on the same split, same hyper-parameters, one run.

    .venv/bin/python benchmarks/recbole_compare.py --home /tmp/games --epochs 3

1. Exports the built home's split as RecBole atomic files with the benchmark-file
   convention for pre-split sequential data (``benchmark_filename: [train, valid, test]``):
   ``kgrec.train.inter`` / ``kgrec.valid.inter`` / ``kgrec.test.inter``, each row
   ``user_id:token  item_id_list:token_seq  item_id:token`` = (history prefix, next item).
   train = every prefix of each user's train sequence; valid / test = exactly our
   evaluation examples (:func:`kgrec.recommender.data.eval_examples`: every next item of
   the held-out session, history = train (+ valid for test)); lists keep the last
   ``max_len`` items. ``kgrec.item`` lists the whole catalogue so both rank the same items.
2. Trains our ``SASRec`` (no LLM init, CE) with :func:`kgrec.recommender.training.fit`.
3. Trains RecBole's SASRec (``loss_type: CE``, full-ranking eval, ``train_neg_sample_args:
   None``) in this interpreter if ``import recbole`` works, else in a separate venv
   (``--recbole-venv``, default ``$KGREC_RECBOLE_VENV`` or ``benchmarks/.venv-recbole``;
   ``--install`` creates it: ``pip install torch==2.13.0`` then ``recbole==1.2.1`` under a
   constraint that keeps torch at 2.13.0, numpy < 2 (RecBole 1.2.1 uses ``np.float_``) and
   pandas < 3). That venv must be git-ignored.

Matched: hidden 64, 2 layers, 1 head, inner (feed-forward) size 64, dropout 0.2 (hidden
and attention), max_len 50, Adam lr 1e-3, no weight decay, batch 128, CE over the full
catalogue, same epochs, early stop patience 5 on valid NDCG@10, best-valid weights for
test. Not matched (architecture): ours is pre-LN with a final LayerNorm, scales item
embeddings by sqrt(H), clips gradients at 5; RecBole's is post-LN. A "batch" is 128
sequences in both, but ours trains every position of a window (up to 128 x 50 targets
per step) while RecBole trains the last position of 128 prefix rows: both see every
train prefix once per epoch, in different step counts.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HP = {"hidden": 64, "num_blocks": 2, "num_heads": 1, "max_len": 50, "dropout": 0.2,
      "lr": 1e-3, "batch_size": 128, "patience": 5}
REPO = Path(__file__).resolve().parents[1]


def export_atomic(split, out_dir: Path, max_len: int) -> dict[str, int]:
    """Write ``kgrec.{train,valid,test}.inter`` and ``kgrec.item`` into ``out_dir``."""
    from kgrec.recommender import data as D

    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = D.ItemVocab.from_frames(split.train, split.valid, split.test, items=split.items)
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"

    def write(name: str, rows) -> int:
        n = 0
        with open(out_dir / f"kgrec.{name}.inter", "w", encoding="utf-8") as f:
            f.write(header)
            for u, prefix, target in rows:
                f.write(f"{u}\t{' '.join(vocab.ids[i] for i in prefix[-max_len:])}\t{vocab.ids[target]}\n")
                n += 1
        return n

    seqs = D.user_sequences(split.train, vocab)
    counts = {"train": write("train", ((u, s[:t], s[t]) for u, s in seqs.items() for t in range(1, len(s))))}
    for name, hist, held in (("valid", [split.train], split.valid), ("test", [split.train, split.valid], split.test)):
        ex = D.eval_examples(hist, held, vocab, max_len)
        counts[name] = write(name, ((u, r[r != 0], t) for u, r, t in zip(ex.users, ex.seqs, ex.targets)))
    with open(out_dir / "kgrec.item", "w", encoding="utf-8") as f:
        f.write("item_id:token\n" + "".join(f"{i}\n" for i in vocab.ids[1:]))
    bad = [i for i in vocab.ids[1:] if not i or any(c.isspace() for c in i)]
    if bad:
        raise SystemExit(f"item ids with whitespace cannot be RecBole tokens, e.g. {bad[0]!r}")
    return counts


def run_ours(split, epochs: int, threads: int) -> dict:
    import torch

    from kgrec.recommender import data as D
    from kgrec.recommender.metrics import head_items
    from kgrec.recommender.sasrec import SASRec
    from kgrec.recommender.training import evaluate_scorer, fit, seed_everything

    torch.set_num_threads(threads)
    vocab = D.ItemVocab.from_frames(split.train, split.valid, split.test, items=split.items)
    ml = HP["max_len"]
    windows = D.training_windows(D.user_sequences(split.train, vocab), ml)
    valid = D.eval_examples([split.train], split.valid, vocab, ml)
    test = D.eval_examples([split.train, split.valid], split.test, vocab, ml)
    seed_everything(0)
    model = SASRec(len(vocab), hidden=HP["hidden"], num_blocks=HP["num_blocks"], num_heads=HP["num_heads"],
                   max_len=ml, dropout=HP["dropout"], loss_type="ce")
    stamps = [time.perf_counter()]
    fit(model, windows, valid, epochs=epochs, batch_size=HP["batch_size"], lr=HP["lr"], patience=HP["patience"],
        progress=lambda m: (stamps.append(time.perf_counter()), print("  ours:", m, flush=True)))
    per_epoch = [b - a for a, b in itertools.pairwise(stamps)]
    t = time.perf_counter()
    evaluate_scorer(model, valid)
    valid_s = time.perf_counter() - t
    m = evaluate_scorer(model, test, head_mask=head_items(D.item_counts(split.train, vocab)))
    return {"NDCG@10": m["NDCG@10"], "HR@10": m["HR@10"], "epochs_run": len(per_epoch),
            "s_per_epoch_train+valid": sum(per_epoch) / len(per_epoch),
            "s_per_epoch_train": sum(per_epoch) / len(per_epoch) - valid_s, "s_valid_eval": valid_s}


RECBOLE_RUNNER = r'''
import json, sys, time
import torch
_load = torch.load  # RecBole's own checkpoints hold its Config: torch>=2.6 defaults to weights_only=True
torch.load = lambda *a, **kw: _load(*a, **{"weights_only": False, **kw})
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.sequential_recommender import SASRec
from recbole.trainer import Trainer
from recbole.utils import init_seed
cfg = json.loads(sys.argv[1])
torch.set_num_threads(cfg.pop("threads"))
config = Config(model="SASRec", dataset="kgrec", config_dict=cfg)
init_seed(config["seed"], config["reproducibility"])
dataset = create_dataset(config)
train, valid, test = data_preparation(config, dataset)
model = SASRec(config, train.dataset).to(config["device"])
trainer = Trainer(config, model)
times = {"train": [], "valid": []}
def timed(fn, key):
    def wrap(*a, **kw):
        t = time.perf_counter(); out = fn(*a, **kw); times[key].append(time.perf_counter() - t); return out
    return wrap
trainer._train_epoch = timed(trainer._train_epoch, "train")
trainer._valid_epoch = timed(trainer._valid_epoch, "valid")
best, _ = trainer.fit(train, valid, saved=True, show_progress=False)
res = trainer.evaluate(test, load_best_model=True, show_progress=False)
tr, va = times["train"], times["valid"]
print("RESULT " + json.dumps({"NDCG@10": float(res["ndcg@10"]), "HR@10": float(res["hit@10"]),
      "epochs_run": len(tr), "s_per_epoch_train": sum(tr) / len(tr),
      "s_per_epoch_train+valid": (sum(tr) + sum(va)) / len(tr), "s_valid_eval": sum(va) / max(1, len(va)),
      "n_items": int(dataset.item_num) - 1, "n_train_rows": len(train.dataset)}))
'''


def recbole_config(data_dir: Path, work: Path, epochs: int, threads: int) -> dict:
    return {
        "data_path": str(data_dir.parent), "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"], "item": ["item_id"]},
        "MAX_ITEM_LIST_LENGTH": HP["max_len"], "hidden_size": HP["hidden"], "inner_size": HP["hidden"],
        "n_layers": HP["num_blocks"], "n_heads": HP["num_heads"], "hidden_dropout_prob": HP["dropout"],
        "attn_dropout_prob": HP["dropout"], "hidden_act": "gelu", "layer_norm_eps": 1e-5,
        "loss_type": "CE", "train_neg_sample_args": None, "learning_rate": HP["lr"], "weight_decay": 0.0,
        "train_batch_size": HP["batch_size"], "eval_batch_size": 1024, "epochs": epochs,
        "stopping_step": HP["patience"], "eval_step": 1, "eval_args": {"order": "TO", "mode": "full"},
        "metrics": ["NDCG", "Hit"], "topk": [10], "valid_metric": "NDCG@10", "device": "cpu",
        "use_gpu": False, "seed": 0, "reproducibility": True, "show_progress": False, "save_dataset": False,
        "save_dataloaders": False, "checkpoint_dir": str(work / "saved"), "log_wandb": False,
        "threads": threads,
    }


def install_venv(venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    subprocess.run([py, "-m", "pip", "install", "-q", "torch==2.13.0"], check=True)
    cons = venv / "constraints.txt"
    # RecBole 1.2.1 uses np.float_ (gone in numpy 2) and predates pandas 3
    cons.write_text("torch==2.13.0\nnumpy<2\npandas<3\n")
    subprocess.run([py, "-m", "pip", "install", "-q", "recbole==1.2.1", "-c", str(cons)], check=True)


def run_recbole(data_dir: Path, work: Path, epochs: int, threads: int, venv: Path, install: bool) -> dict:
    try:
        import recbole  # noqa: F401

        py = sys.executable
    except ImportError:
        py = str(venv / "bin" / "python")
        if not Path(py).exists():
            if not install:
                raise SystemExit(f"RecBole is not importable here and {venv} does not exist; rerun with --install")
            install_venv(venv)
    cfg = recbole_config(data_dir, work, epochs, threads)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([py, "-c", RECBOLE_RUNNER, json.dumps(cfg)], cwd=work, env=env, text=True,
                          capture_output=True, check=False)
    (work / "recbole.log").write_text(proc.stdout + proc.stderr)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"RecBole failed (exit {proc.returncode}); log: {work / 'recbole.log'}\n"
                         + (proc.stderr or proc.stdout)[-3000:])
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--home", type=Path, default=Path(".kgrec"))
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=None, help="export + RecBole working dir (default: a temp dir)")
    ap.add_argument("--recbole-venv", type=Path,
                    default=Path(os.environ.get("KGREC_RECBOLE_VENV", REPO / "benchmarks" / ".venv-recbole")))
    ap.add_argument("--install", action="store_true", help="create the RecBole venv if it is missing")
    ap.add_argument("--skip-ours", action="store_true")
    a = ap.parse_args()

    from kgrec.kg.build import load_split
    from kgrec.settings import Settings

    split = load_split(Settings(home=a.home))
    work = a.work or Path(tempfile.mkdtemp(prefix="kgrec-recbole-"))
    data_dir = work / "data" / "kgrec"
    counts = export_atomic(split, data_dir, HP["max_len"])
    print(f"exported {counts} rows to {data_dir}", flush=True)
    ours = None if a.skip_ours else run_ours(split, a.epochs, a.threads)
    print("training RecBole SASRec ...", flush=True)
    rb = run_recbole(data_dir, work, a.epochs, a.threads, a.recbole_venv, a.install)
    print(f"\nhome={a.home} epochs={a.epochs} threads={a.threads} "
          + " ".join(f"{k}={v}" for k, v in HP.items()))
    print("| model | test NDCG@10 | test HR@10 | epochs run | s/epoch (train) | s/epoch (train+valid) |")
    print("|---|---|---|---|---|---|")
    for name, r in (("kgrec SASRec", ours), ("RecBole 1.2.1 SASRec", rb)):
        if r:
            print(f"| {name} | {r['NDCG@10']:.4f} | {r['HR@10']:.4f} | {r['epochs_run']} | "
                  f"{r['s_per_epoch_train']:.1f} | {r['s_per_epoch_train+valid']:.1f} |")


if __name__ == "__main__":
    main()
