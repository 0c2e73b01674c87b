"""Our SASRec vs RecBole 1.2.1's SASRec on one identical ``loo`` split, same hyper-parameters, one run.

    benchmarks/install_recbole.sh            # once: RecBole's own venv (or `make recbole-venv`)
    nice -n 10 .venv/bin/python benchmarks/recbole_compare.py --dataset movielens \\
        --data ../shared/data/movielens-latest-small --threads 1 --log docs/results/recbole-compare-movielens.log
    nice -n 10 .venv/bin/python benchmarks/recbole_compare.py --dataset recbole \\
        --data ../shared/data/amazon-games-2018 --users 10000 --threads 1 \\
        --log docs/results/recbole-compare-games.log

Protocol ``loo`` (standard time-ordered leave-one-out, as SASRec and RecBole use): the project's
own loader and :func:`kgrec.kg.preprocess.preprocess` (dedupe user–item pairs keeping the
earliest, iterative 5-core) with each user's whole time-ordered stream as one sequence
(``Ordering.ORDER``): last item test, second-to-last validation, the rest train; users with
fewer than 3 items stay in train. Input = the user's full history (train, + the validation item
for test), cut to the last ``max_len`` items. Every model ranks the **full catalogue**; items
already seen are **not** excluded (on either side). ``--users N`` keeps a seeded sample of N
held-out users with all their rows (:func:`kgrec.recommender.evaluate.subsample_users`); the
catalogue stays whole.

1. The split is exported as RecBole atomic benchmark files (``benchmark_filename: [train,
   valid, test]``, rows ``user_id  item_id_list  item_id`` = (history, next item), the list
   aliased to ``item_id`` so both share one token space): train = every prefix of each
   user's train sequence (what RecBole's own augmentation makes), valid / test = exactly our
   evaluation examples (:func:`kgrec.recommender.protocols.loo_examples`). ``kgrec.item`` lists
   the whole catalogue so both rank the same items.
2. Our ``SASRec`` (ID embeddings only, no LLM table, CE over the catalogue) is trained with
   :func:`kgrec.recommender.training.fit`, RecBole's SASRec with its ``Trainer`` in a
   subprocess of its own venv. Both early-stop on **validation** NDCG@10 with the same
   patience and restore the best-validation weights; test is evaluated once, after.
3. Test metrics of both sides are computed by the same code
   (:func:`kgrec.recommender.metrics.metrics_from_ranks`; ties count against the target, MRR
   over the full ranking) from full-catalogue ranks; RecBole's own ``hit@10`` / ``ndcg@10``
   are printed beside as a cross-check.

Matched: hidden 64, 2 blocks, 2 heads, feed-forward 256 (RecBole's default inner size), max
length 50, dropout 0.2 (hidden and attention), CE (full softmax), Adam lr 1e-3, no weight
decay, batch 256 (sequences), patience, epoch cap, torch threads. Not matched (the two
implementations' own choices, see ``recommender/sasrec.py``): layer-norm placement, and
that ours trains every position of a window (one sequence = up to 50 targets) while RecBole
trains one target per prefix row.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

PROTOCOL = "loo"
HP = {"hidden": 64, "num_blocks": 2, "num_heads": 2, "inner_size": 256, "max_len": 50, "dropout": 0.2,
      "lr": 1e-3, "batch_size": 256}
REPO = Path(__file__).resolve().parents[1]


class Tee:
    """print() to stdout and, optionally, a log file."""

    def __init__(self, path: Path | None):
        self.f = None
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.f = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in main

    def __call__(self, *parts: object) -> None:
        line = " ".join(str(p) for p in parts)
        print(line, flush=True)
        if self.f:
            self.f.write(line + "\n")
            self.f.flush()


class Budget:
    """Stop before an epoch that, at the pace of the last one, would end after ``deadline`` (epoch s)."""

    def __init__(self, deadline: float | None):
        self.deadline = deadline

    def __call__(self, last_epoch_s: float) -> bool:
        return self.deadline is not None and time.time() + last_epoch_s > self.deadline


def parse_deadline(text: str | None) -> float | None:
    """``HH:MM`` (UTC, today) -> epoch seconds."""
    if not text:
        return None
    import datetime as dt

    hh, mm = (int(x) for x in text.split(":"))
    now = dt.datetime.now(dt.UTC)
    return now.replace(hour=hh, minute=mm, second=0, microsecond=0).timestamp()


def loo_split(kind: str, data: Path, *, k_core: int, users: int | None, seed: int):
    """The project's loader + preprocessing with one time-ordered sequence per user (ORDER)."""
    from kgrec.kg.loaders import load_dataset
    from kgrec.kg.preprocess import preprocess
    from kgrec.kg.tables import Ordering
    from kgrec.recommender.evaluate import subsample_users

    ds = load_dataset(kind, data)
    if Ordering(ds.ordering) is Ordering.TIMESTAMP:
        # ORDER keeps the (ts, order) sort but makes each user's stream one session: leave-one-out
        ds = dataclasses.replace(ds, ordering=Ordering.ORDER)
    split = preprocess(ds, k_core=k_core)
    frames = {k: getattr(split, k) for k in ("train", "valid", "test", "items")}
    if users:
        frames = subsample_users(frames, users, seed=seed)
    return frames, dict(split.stats)


def export_atomic(frames, out_dir: Path, max_len: int) -> dict[str, int]:
    """Write ``kgrec.{train,valid,test}.inter`` and ``kgrec.item`` into ``out_dir``."""
    from kgrec.recommender import data as D
    from kgrec.recommender.protocols import loo_examples

    out_dir.mkdir(parents=True, exist_ok=True)
    vocab = D.ItemVocab.from_frames(frames["train"], frames["valid"], frames["test"], items=frames["items"])
    bad = [i for i in vocab.ids[1:] if not i or any(c.isspace() for c in i)]
    if bad:
        raise SystemExit(f"item ids with whitespace cannot be RecBole tokens, e.g. {bad[0]!r}")
    header = "user_id:token\titem_id_list:token_seq\titem_id:token\n"

    def write(name: str, rows) -> int:
        n = 0
        with open(out_dir / f"kgrec.{name}.inter", "w", encoding="utf-8") as f:
            f.write(header)
            for u, prefix, target in rows:
                f.write(f"{u}\t{' '.join(vocab.ids[i] for i in prefix[-max_len:])}\t{vocab.ids[target]}\n")
                n += 1
        return n

    seqs = D.user_sequences(frames["train"], vocab)
    counts = {"train": write("train", ((u, s[:t], s[t]) for u, s in seqs.items() for t in range(1, len(s))))}
    loo = loo_examples(frames["train"], frames["valid"], frames["test"], vocab, max_len)
    for name, ex in (("valid", loo.valid), ("test", loo.test)):
        counts[name] = write(name, ((u, r[r != 0], t) for u, r, t in zip(ex.users, ex.seqs, ex.targets, strict=True)))
    with open(out_dir / "kgrec.item", "w", encoding="utf-8") as f:
        f.write("item_id:token\n" + "".join(f"{i}\n" for i in vocab.ids[1:]))
    counts["catalogue"] = len(vocab) - 1
    return counts


def run_ours(frames, *, epochs: int, patience: int, threads: int, seed: int, say, budget: Budget,
             batch_size: int = HP["batch_size"], stride: int | None = None, norm_first: bool = True,
             recbole_init: bool = False) -> dict:
    import torch

    from kgrec.recommender import data as D
    from kgrec.recommender.metrics import metrics_from_ranks, ranks_from_scores
    from kgrec.recommender.protocols import loo_examples
    from kgrec.recommender.sasrec import SASRec
    from kgrec.recommender.training import fit, score_examples, seed_everything

    t0 = time.perf_counter()
    torch.set_num_threads(threads)
    ml = HP["max_len"]
    vocab = D.ItemVocab.from_frames(frames["train"], frames["valid"], frames["test"], items=frames["items"])
    loo = loo_examples(frames["train"], frames["valid"], frames["test"], vocab, ml, stride=stride)
    windows, valid, test = loo.windows, loo.valid, loo.test
    seed_everything(seed)
    model = SASRec(len(vocab), hidden=HP["hidden"], num_blocks=HP["num_blocks"], num_heads=HP["num_heads"],
                   inner_size=HP["inner_size"], max_len=ml, dropout=HP["dropout"], loss_type="ce",
                   norm_first=norm_first)
    if recbole_init:
        recbole_style_init(model.encoder)
    stamps = [time.perf_counter()]
    res = fit(model, windows, valid, epochs=epochs, batch_size=batch_size, lr=HP["lr"], patience=patience,
              seed=seed, name="kgrec",
              progress=lambda m: (stamps.append(time.perf_counter()), say(f"  [{stamps[-1] - t0:6.0f} s] {m}")),
              should_stop=lambda _e: budget(stamps[-1] - stamps[-2]))
    ranks = [ranks_from_scores(s, torch.as_tensor(test.targets[sl])).numpy() for sl, s in score_examples(model, test)]
    import numpy as np

    out = metrics_from_ranks(np.concatenate(ranks))
    n_ep = len(stamps) - 1
    out.update(epochs_run=n_ep, best_epoch=res.best_epoch + 1, deadline_stop=res.stopped, best_valid_ndcg=res.best_valid_ndcg,
               s_per_epoch=(stamps[-1] - stamps[0]) / max(1, n_ep), wall_s=time.perf_counter() - t0,
               train_rows=len(windows), steps_per_epoch=-(-len(windows) // batch_size),
               batch_windows=batch_size, stride=stride or ml, norm_first=norm_first, recbole_init=recbole_init)
    return out


def recbole_style_init(module) -> None:
    """RecBole's initialisation of a transformer: N(0, 0.02) weights, zero biases."""
    import torch

    for mod in module.modules():
        if isinstance(mod, torch.nn.Linear):
            torch.nn.init.normal_(mod.weight, std=0.02)
            torch.nn.init.zeros_(mod.bias)
        elif isinstance(mod, torch.nn.MultiheadAttention):
            torch.nn.init.normal_(mod.in_proj_weight, std=0.02)
            torch.nn.init.zeros_(mod.in_proj_bias)


RECBOLE_RUNNER = Path(__file__).resolve().parent / "recbole_runner.py"  # runs in RecBole's own venv


def recbole_config(data_dir: Path, work: Path, *, epochs: int, patience: int, threads: int, seed: int,
                   deadline: float | None = None) -> dict:
    return {
        "data_path": str(data_dir.parent), "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"], "item": ["item_id"]},
        "alias_of_item_id": ["item_id_list"],
        "MAX_ITEM_LIST_LENGTH": HP["max_len"], "hidden_size": HP["hidden"], "inner_size": HP["inner_size"],
        "n_layers": HP["num_blocks"], "n_heads": HP["num_heads"], "hidden_dropout_prob": HP["dropout"],
        "attn_dropout_prob": HP["dropout"], "hidden_act": "gelu",
        "loss_type": "CE", "train_neg_sample_args": None, "learning_rate": HP["lr"], "weight_decay": 0.0,
        "train_batch_size": HP["batch_size"], "eval_batch_size": 1024, "epochs": epochs,
        "stopping_step": patience, "eval_step": 1, "eval_args": {"order": "TO", "mode": "full"},
        "metrics": ["NDCG", "Hit"], "topk": [10], "valid_metric": "NDCG@10", "device": "cpu",
        "use_gpu": False, "seed": seed, "reproducibility": True, "show_progress": False, "save_dataset": False,
        "save_dataloaders": False, "checkpoint_dir": str(work / "saved"), "log_wandb": False,
        "threads": threads, "deadline": deadline,
    }


def start_recbole(data_dir: Path, work: Path, venv: Path, *, epochs: int, patience: int, threads: int,
                  seed: int, deadline: float | None, say):
    """Start RecBole's trainer in its venv; returns a ``finish()`` that waits and gives the result row."""
    import threading

    py = venv / "bin" / "python"
    if not py.exists():
        raise SystemExit(f"{py} does not exist: create RecBole's venv with benchmarks/install_recbole.sh")
    cfg = recbole_config(data_dir, work, epochs=epochs, patience=patience, threads=threads, seed=seed,
                         deadline=deadline)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([str(py), str(RECBOLE_RUNNER), json.dumps(cfg)], cwd=work, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log: list[str] = []

    def pump() -> None:
        for line in proc.stdout:
            log.append(line)
            if line.startswith("  recbole epoch"):
                say(f"  [{time.perf_counter() - t0:6.0f} s] {line.strip()}")

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()

    def finish() -> dict:
        import numpy as np

        from kgrec.recommender.metrics import metrics_from_ranks

        proc.wait()
        reader.join()
        (work / "recbole.log").write_text("".join(log))
        results = [json.loads(ln[len("RESULT "):]) for ln in log if ln.startswith("RESULT ")]
        if proc.returncode or not results:
            raise SystemExit(f"RecBole failed (exit {proc.returncode}); log: {work / 'recbole.log'}\n"
                             + "".join(log)[-3000:])
        result = results[-1]
        valid = [float(ln.split()[-1]) for ln in log if ln.startswith("  recbole epoch")]
        out = metrics_from_ranks(np.asarray(result.pop("ranks")))
        out.update(result, wall_s=time.perf_counter() - t0,
                   best_epoch=int(np.argmax(valid)) + 1 if valid else 0)
        return out

    return finish


def split_digest(data_dir: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for p in sorted(data_dir.iterdir()):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:16]


def table(rows, say) -> None:
    cols = ("HR@10", "NDCG@10", "MRR", "HR@100")
    say("| model | " + " | ".join(f"test {c}" for c in cols)
        + " | s/epoch | epochs to best valid (run) | best valid NDCG@10 | train rows (steps/epoch) | total wall s |")
    say("|---|" + "---|" * (len(cols) + 6))
    for name, r in rows:
        say(f"| {name} | " + " | ".join(f"{r[c]:.4f}" for c in cols)
            + f" | {r['s_per_epoch']:.1f} | {r['best_epoch']} ({r['epochs_run']}"
            + (", deadline" if r.get("deadline_stop") else "") + f") | {r['best_valid_ndcg']:.4f}"
            f" | {r['train_rows']:,} ({r['steps_per_epoch']}) | {r['wall_s']:.0f} |")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="movielens", help="a kgrec data set kind (movielens, recbole, ...)")
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "movielens-latest-small")
    ap.add_argument("--users", type=int, default=None, help="seeded subsample of N held-out users")
    ap.add_argument("--k-core", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=200, help="epoch cap (both sides)")
    ap.add_argument("--recbole-epochs", type=int, default=None,
                    help="a lower epoch cap for RecBole only (to fit a deadline; printed)")
    ap.add_argument("--patience", type=int, default=5, help="early-stopping patience on valid NDCG@10 (both)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (both sides)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None, help="export + RecBole working dir (default: a temp dir)")
    ap.add_argument("--log", type=Path, default=None, help="also write the output here")
    ap.add_argument("--recbole-venv", type=Path,
                    default=Path(os.environ.get("KGREC_RECBOLE_VENV", REPO / "benchmarks" / ".venv-recbole")))
    ap.add_argument("--ours-batch", type=int, default=HP["batch_size"],
                    help="our side's batch in windows (a window holds up to max_len targets; RecBole's batch "
                         "row is one target)")
    ap.add_argument("--stride", type=int, default=None,
                    help="our side's training-window stride (default max_len: side by side; 1 = one window "
                         "per target, as RecBole's prefix rows)")
    ap.add_argument("--post-ln", action="store_true",
                    help="our side with post-LN blocks (RecBole's layout) instead of our default pre-LN")
    ap.add_argument("--recbole-init", action="store_true",
                    help="our side's encoder initialised as RecBole's (N(0, 0.02) weights, zero biases)")
    ap.add_argument("--side", choices=("both", "ours", "recbole"), default="both")
    ap.add_argument("--parallel", action="store_true",
                    help="train both sides at the same time (RecBole in its subprocess), each timed on its own")
    ap.add_argument("--deadline", default=None,
                    help="HH:MM UTC: neither side starts an epoch that, at its last epoch's pace, would end "
                         "later (the table marks a side stopped so)")
    ap.add_argument("--recbole-result", type=Path, default=None,
                    help="with --side ours: add the RecBole row saved by a --side recbole run on the same "
                         "exported split (checked by its hash; the table says so), waiting for it if that run "
                         "is still going")
    return ap.parse_args()


def saved_recbole_row(path: Path, digest: str, say) -> tuple[str, dict]:
    """The RecBole row of a ``--side recbole`` run on the same exported split (waiting for it)."""
    while not path.exists():  # a --side recbole run still going: wait for its result
        say(f"waiting for {path} ...")
        time.sleep(60)
    saved = json.loads(path.read_text())
    if saved.get("split_sha256") != digest:
        raise SystemExit(f"{path} was measured on another split ({saved.get('split_sha256')})")
    say(f"RecBole row: from the --side recbole run started {saved['started']} on this same split")
    return f"RecBole 1.2.1 SASRec (run of {saved['started']})", saved


def main() -> None:
    a = parse_args()
    say = Tee(a.log)
    t_all = time.perf_counter()
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    rb_epochs = a.recbole_epochs or a.epochs
    say(f"protocol={PROTOCOL} (time-ordered leave-one-out: last item test, second-to-last valid, full history"
        f" input, full-catalogue ranking, seen items not excluded) dataset={a.dataset} data={a.data}"
        f" users={a.users or 'all'} k_core={a.k_core}")
    say(f"hyper-parameters (both): {json.dumps(HP)} loss=CE patience={a.patience} epoch cap={a.epochs}"
        + (f" (RecBole capped at {rb_epochs})" if rb_epochs != a.epochs else "")
        + f" early stop on valid NDCG@10; threads={a.threads} seed={a.seed}"
        + f" deadline={a.deadline or 'none'} parallel={a.parallel}")
    say(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (shared), "
        f"load average {os.getloadavg()[0]:.2f}; started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")

    frames, stats = loo_split(a.dataset, a.data, k_core=a.k_core, users=a.users, seed=a.seed)
    work = a.work or Path(tempfile.mkdtemp(prefix="kgrec-recbole-"))
    data_dir = work / "data" / "kgrec"
    counts = export_atomic(frames, data_dir, HP["max_len"])
    say(f"split: {stats.get('users')} users / {stats.get('items')} items after {a.k_core}-core; exported rows"
        f" {counts} to {data_dir}")
    digest = split_digest(data_dir)
    say(f"exported split sha256 {digest}")
    rows = []
    budget = Budget(parse_deadline(a.deadline))
    rb_kw = {"epochs": rb_epochs, "patience": a.patience, "threads": a.threads, "seed": a.seed,
             "deadline": budget.deadline, "say": say}
    finish = None
    if a.side == "recbole" or (a.side == "both" and a.parallel):
        say("training RecBole 1.2.1 SASRec" + (" (in parallel with ours)" if a.side == "both" else "") + " ...")
        finish = start_recbole(data_dir, work, a.recbole_venv, **rb_kw)
    if a.side in ("both", "ours"):
        say("training kgrec SASRec ...")
        ours = f"batch {a.ours_batch} windows, window stride {a.stride or HP['max_len']}, " + \
            ("post-LN" if a.post_ln else "pre-LN") + (", RecBole init" if a.recbole_init else "")
        default = (a.ours_batch, a.stride, a.post_ln, a.recbole_init) == (HP["batch_size"], None, False, False)
        label = "kgrec SASRec" + ("" if default else f" ({ours})")
        say(f"our side: {ours}")
        rows.append((label, run_ours(frames, epochs=a.epochs, patience=a.patience, threads=a.threads,
                                     seed=a.seed, say=say, budget=budget, batch_size=a.ours_batch,
                                     stride=a.stride, norm_first=not a.post_ln,
                                     recbole_init=a.recbole_init)))
    if a.side != "ours":
        if finish is None:
            say("training RecBole 1.2.1 SASRec ...")
            finish = start_recbole(data_dir, work, a.recbole_venv, **rb_kw)
        rb = finish()
        say(f"RecBole's own test metrics (cross-check): hit@10 {rb['recbole_hit@10']:.4f} "
            f"ndcg@10 {rb['recbole_ndcg@10']:.4f}")
        rows.append(("RecBole 1.2.1 SASRec", rb))
        (work / "recbole-result.json").write_text(json.dumps({"split_sha256": digest, "started": started, **rb}))
        say(f"RecBole result saved to {work / 'recbole-result.json'}")
    elif a.recbole_result:
        rows.append(saved_recbole_row(a.recbole_result, digest, say))
    say("")
    say(f"protocol={PROTOCOL}, {a.dataset}, {counts['test']:,} test users, {counts['catalogue']:,} items ranked;"
        f" threads={a.threads}")
    table(rows, say)
    if len(rows) == 2:
        o, r = rows[0][1], rows[1][1]
        say(f"\nkgrec - RecBole: NDCG@10 {o['NDCG@10'] - r['NDCG@10']:+.4f}; RecBole's total wall time / ours: "
            f"{r['wall_s'] / o['wall_s']:.1f}x")
    say(f"benchmark wall {time.perf_counter() - t_all:.0f} s; finished {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")


if __name__ == "__main__":
    main()
