"""Run the evaluation harness away from the graph store (e.g. on a GPU box without the DB).

    # 1. on the machine with the built home: export what evaluate_all needs (~50 MB for Games)
    .venv/bin/python benchmarks/evaluate_offline.py export --home /tmp/games --out /tmp/games-eval
    # 2. anywhere with torch, numpy and pandas (the kgrec source on PYTHONPATH):
    python benchmarks/evaluate_offline.py run --inputs /tmp/games-eval --device cuda --seeds 3 --protocol session

`run` prints the Markdown table and writes results.md/json (+ png when matplotlib is there).
The inputs are exactly what `kgrec evaluate` feeds the harness: the saved split, Item.emb aligned
to the vocabulary, and the persona of every past the protocol pairs with a target (computed here
by the persona model's past encoder, then looked up by `run` through `recipe.PastTable`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def export(home: Path, out: Path, protocol: str = "session") -> None:
    from kgrec.kg.store import open_store
    from kgrec.recommender.recipe import prepare
    from kgrec.recommender.workflow import load_inputs
    from kgrec.settings import Settings

    settings = Settings(home=home)
    with open_store(settings) as store:
        inp = load_inputs(store, settings)
    out.mkdir(parents=True, exist_ok=True)
    frames = {name: getattr(inp.split, name) for name in ("train", "valid", "test", "items")}
    keep = ["user", "item", "ts", "order", "session"]
    frames = {k: (v[[c for c in keep if c in v.columns]] if k != "items" else v[["item"]]) for k, v in frames.items()}
    for name, frame in frames.items():  # parquet, not pickle: loading never runs code
        frame.to_parquet(out / f"{name}.parquet", index=False)
    prep = prepare(inp.split, inp.item_table, inp.personas, item_ids=inp.vocab.ids, protocol=protocol)
    h = prep.histories
    np.savez_compressed(out / "arrays.npz", item_table=inp.item_table.astype(np.float32),
                        item_ids=np.asarray(inp.vocab.ids, dtype=str),
                        past_users=np.asarray(h.users, dtype=str), past_ptr=h.ptr,
                        past_items=np.asarray(prep.vocab.decode(h.flat), dtype=str),
                        past_personas=prep.persona_table("persona"))
    (out / "meta.json").write_text(json.dumps({"fingerprint": inp.fingerprint, "protocol": protocol,
                                               "persona_version": inp.persona_version}))
    size = sum(p.stat().st_size for p in out.iterdir()) / 2**20
    print(f"exported {len(inp.vocab.ids)} vocab rows, personas of {len(h)} pasts to {out} ({size:.1f} MB)")


def run(inputs: Path, device: str, seeds: int, epochs: int, out: Path, threads: int | None,
        fit_kwargs: dict, users: int | None = None, protocol: str = "session", exclude_seen: bool = True,
        fusions: tuple[str, ...] = ("prefix",), first_seed: int = 0, model_kwargs: dict | None = None,
        residual: bool = True, stop_examples: int | None = None) -> None:
    import pandas as pd
    import torch

    from kgrec.recommender.evaluate import evaluate_all, subsample_users
    from kgrec.recommender.recipe import PastTable
    from kgrec.recommender.report import write_report

    if threads:
        torch.set_num_threads(threads)
    frames = {name: pd.read_parquet(inputs / f"{name}.parquet") for name in ("train", "valid", "test", "items")}
    if users:  # a seeded random subsample of users (all their rows), the catalogue stays whole
        n_test_users = frames["test"]["user"].nunique()
        frames = subsample_users(frames, users)
        print(f"subsample: {frames['test']['user'].nunique()} of {n_test_users} test users, "
              f"{len(frames['train'])} train rows")
    z = np.load(inputs / "arrays.npz", allow_pickle=False)
    ptr, flat = z["past_ptr"], z["past_items"].tolist()
    personas = PastTable(z["past_users"].tolist(), [flat[ptr[j]:ptr[j + 1]] for j in range(len(ptr) - 1)],
                         z["past_personas"])
    item_ids = z["item_ids"].tolist()

    class Split:  # the attributes evaluate_all reads
        train, valid, test, items = frames["train"], frames["valid"], frames["test"], frames["items"]

    t = time.perf_counter()
    results = evaluate_all(Split, z["item_table"], personas, item_ids=item_ids,
                           seeds=list(range(first_seed, first_seed + seeds)), epochs=epochs, device=device, fit_kwargs=fit_kwargs,
                           protocol=protocol, exclude_seen=exclude_seen, fusions=fusions,
                           sasrec_kwargs=model_kwargs, retriever_kwargs=model_kwargs, residual=residual,
                           **({} if stop_examples is None else {"early_stop_examples": stop_examples}),
                           progress=lambda m: print(f"[{time.perf_counter() - t:7.1f}s] {m}", flush=True))
    results.extra.update(json.loads((inputs / "meta.json").read_text()) | {
        "epochs": epochs, "device": device, "torch_threads": torch.get_num_threads(), "fit": fit_kwargs, "models": model_kwargs, "user_subsample": users,
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") else None,
        "seconds": round(time.perf_counter() - t, 1), "cpu_seconds": round(time.process_time(), 1)})
    try:
        paths = write_report(results, out)
        print(Path(paths["md"]).read_text())
    except ImportError as e:  # no matplotlib on the box: keep the numbers anyway
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps({"results": results, "extra": results.extra}, default=str))
        print(f"(no report writer: {e})")
        print(json.dumps(results, indent=1, default=str))
    print(f"total {time.perf_counter() - t:.0f}s wall, {time.process_time():.0f}s CPU on {device}")


def merge(parts: list[Path], out: Path) -> None:
    from kgrec.recommender.evaluate import merge_results
    from kgrec.recommender.report import write_report

    results = merge_results([json.loads(p.read_text())["extra"] for p in parts])
    paths = write_report(results, out)
    print(Path(paths["md"]).read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--home", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True)
    r = sub.add_parser("run")
    r.add_argument("--inputs", type=Path, required=True)
    r.add_argument("--device", default="cpu")
    r.add_argument("--seeds", type=int, default=3)
    r.add_argument("--epochs", type=int, default=50)
    r.add_argument("--threads", type=int, default=None)
    r.add_argument("--out", type=Path, default=Path("eval-out"))
    r.add_argument("--batch-size", type=int, default=128)
    r.add_argument("--lr", type=float, default=1e-3)
    r.add_argument("--patience", type=int, default=5)
    r.add_argument("--users", type=int, default=None, help="evaluate on a seeded subsample of N users")
    r.add_argument("--protocol", choices=("session", "loo"), default="session")
    r.add_argument("--exclude-seen", action=argparse.BooleanOptionalAction, default=True)
    r.add_argument("--fusions", default="prefix", help="persona fusions to try, comma-separated, from prefix,gate (chosen on validation)")
    r.add_argument("--first-seed", type=int, default=0, help="seeds are FIRST_SEED .. FIRST_SEED + SEEDS - 1")
    r.add_argument("--loss", choices=("ce", "sampled"), default=None,
                   help="training loss of SASRec and the retrievers (default: the models' own)")
    r.add_argument("--residual", action=argparse.BooleanOptionalAction, default=True,
                   help="also fine-tune SASRec with the persona residual (a candidate persona part)")
    r.add_argument("--negatives", type=int, default=None, help="negatives of --loss sampled")
    r.add_argument("--proposal", choices=("uniform", "popularity"), default=None,
                   help="where --loss sampled draws its negatives (popularity: log-Q corrected)")
    r.add_argument("--stop-examples", type=int, default=None,
                   help="validation examples early stopping scores per epoch (default: recipe.EARLY_STOP_EXAMPLES)")
    r.add_argument("--bucket-batches", type=int, default=None,
                   help="length-bucketed batches (training.epoch_batches; default: fit's own)")
    m = sub.add_parser("merge", help="one report from runs over disjoint seeds (e.g. one process per seed)")
    m.add_argument("parts", type=Path, nargs="+", help="results.json of each run")
    m.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.cmd == "export":
        export(args.home, args.out)
    elif args.cmd == "merge":
        merge(args.parts, args.out)
    else:
        fit = {"batch_size": args.batch_size, "lr": args.lr, "patience": args.patience}
        if args.bucket_batches is not None:
            fit["bucket_batches"] = args.bucket_batches
        models = {k: v for k, v in (("loss_type", args.loss), ("num_negatives", args.negatives),
                                               ("proposal", args.proposal)) if v is not None}
        run(args.inputs, args.device, args.seeds, args.epochs, args.out, args.threads, fit, args.users,
            args.protocol, args.exclude_seen, tuple(args.fusions.split(",")), args.first_seed, models or None,
            args.residual, args.stop_examples)


if __name__ == "__main__":
    main()
