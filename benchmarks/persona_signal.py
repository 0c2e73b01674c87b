"""Do HDGI personas carry more signal than the mean item embedding? (MovieLens latest-small)

On a built home (``kgrec build --dataset movielens ... --home /tmp/ml-home``), links DBpedia
first when the graph has no entities (a local Oxigraph over ../shared/data/dbpedia + the
LODrecsys mapping), trains personas for each encoder × epochs setting, and compares a
user's k nearest neighbours by cosine in

* ``hdgi-<features>-<encoder>-<epochs>``  the persona space written to ``User.persona``
* ``input-<features>``  HDGI's input features themselves (what the encoder starts from)
* ``mean``      the mean MiniLM embedding of the user's training items
* ``random``    k random other users

on (a) Jaccard of training items, (b) Jaccard of genre sets, (c) recall of the user's held-out
(valid+test) items among the neighbours' training items. Per-user values are compared with a
paired Wilcoxon test and a bootstrap 95 % CI of the mean difference (hdgi − mean).

    python benchmarks/persona_signal.py --home /tmp/ml-home --encoders gcn,gat --epochs 200 \
        --features mean,mean+cf
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def link_if_needed(store, settings) -> str:
    from kgrec.kg.dbpedia import default_data_files, default_mapping, link_items, serve

    if store.counts()["nodes"].get("Entity"):
        return "entities already linked"
    t = time.perf_counter()
    with serve(default_data_files(), settings.home / "oxigraph") as server:
        s = link_items(store, settings, mapping=default_mapping(), endpoint=server.endpoint)
    return f"linked {s.linked_total} of {s.items} items ({s.entities} entities, {s.relationships} edges) in {time.perf_counter() - t:.0f}s"


def neighbours(v: np.ndarray, users: np.ndarray, pool: np.ndarray, k: int) -> np.ndarray:
    unit = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    sim = unit[users] @ unit[pool].T
    sim[users[:, None] == pool[None, :]] = -np.inf
    top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
    return pool[top]


def per_user(nbrs: np.ndarray, users: np.ndarray, item_sets, genre_sets, held) -> dict[str, np.ndarray]:
    def jac(a: set, b: set) -> float:
        u = len(a | b)
        return len(a & b) / u if u else 0.0

    out = {"items": [], "genres": [], "heldout": []}
    for u, row in zip(users.tolist(), nbrs.tolist(), strict=True):
        out["items"].append(np.mean([jac(item_sets[u], item_sets[n]) for n in row]))
        out["genres"].append(np.mean([jac(genre_sets[u], genre_sets[n]) for n in row]))
        seen = set().union(*(item_sets[n] for n in row))
        out["heldout"].append(len(held[u] & seen) / len(held[u]) if held[u] else np.nan)
    return {k: np.asarray(v) for k, v in out.items()}


def compare(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    """(mean diff, bootstrap 95 % CI half-width, Wilcoxon p) of paired a − b."""
    from scipy.stats import wilcoxon

    ok = ~(np.isnan(a) | np.isnan(b))
    d = a[ok] - b[ok]
    boots = rng.choice(d, size=(2000, len(d))).mean(axis=1)
    lo, hi = np.percentile(boots, [2.5, 97.5])
    p = wilcoxon(d).pvalue if np.any(d != 0) else 1.0
    return float(d.mean()), float((hi - lo) / 2), float(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, default=Path(".kgrec"))
    ap.add_argument("--encoders", default="gcn,gat")
    ap.add_argument("--epochs", default="200")
    ap.add_argument("--features", default="mean+cf", help="comma-separated: mean, mean+cf, cf")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--sample", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-link", action="store_true")
    args = ap.parse_args()

    import torch

    from kgrec.settings import Settings

    torch.set_num_threads(args.threads)
    settings = Settings(home=args.home)
    rng = np.random.default_rng(args.seed)
    from kgrec.kg import falkordb_server

    t = time.perf_counter()  # replaying a big append-only file can take longer than open_store waits
    server = falkordb_server.start(settings.home, timeout_s=600)
    print(f"graph server ready in {time.perf_counter() - t:.0f}s")
    try:
        spaces, notes = run(args, settings, rng)
    finally:
        server.stop()
    report(spaces, notes, rng)


def run(args, settings, rng):
    import torch

    from kgrec.kg.artefacts import load_split
    from kgrec.kg.store import open_store
    from kgrec.personas.data import user_features
    from kgrec.personas.features import UserFeaturizer
    from kgrec.personas.projection import graph_arrays
    from kgrec.personas.workflow import train_personas

    with open_store(settings) as store:
        if not args.no_link:
            print(link_if_needed(store, settings))
        arrays = graph_arrays(store)
        split = load_split(settings)
        pos = {u: i for i, u in enumerate(arrays.user_ids)}
        item_pos = {it: i for i, it in enumerate(arrays.item_ids)}
        n = arrays.n_users
        item_sets = [set() for _ in range(n)]
        for u, i in arrays.user_item.T.tolist():
            item_sets[u].add(i)
        genres_of = [set() for _ in range(arrays.n_items)]
        for i, f in arrays.item_feature.T.tolist():
            if arrays.feature_names[f].startswith("genre:"):
                genres_of[i].add(f)
        genre_sets = [set().union(*(genres_of[i] for i in s)) if s else set() for s in item_sets]
        held = [set() for _ in range(n)]
        for part in (split.valid, split.test):
            for u, i in zip(part["user"].astype(str), part["item"].astype(str), strict=True):
                if u in pos and i in item_pos:
                    held[pos[u]].add(item_pos[i])
        pool = np.flatnonzero([len(s) > 0 for s in item_sets])
        users = rng.choice(pool, size=min(args.sample, len(pool)), replace=False)
        print(f"users {n}, items {arrays.n_items}, entities {arrays.n_entities}, "
              f"sampled {len(users)}, k {args.k}, torch threads {torch.get_num_threads()}")

        mean_emb = user_features(arrays)
        spaces = {"mean": per_user(neighbours(mean_emb, users, pool, args.k), users, item_sets,
                                   genre_sets, held)}
        rand = np.stack([rng.choice(pool[pool != u], size=args.k, replace=False) for u in users])
        spaces["random"] = per_user(rand, users, item_sets, genre_sets, held)
        notes = []
        for feats in args.features.split(","):
            x = UserFeaturizer.fit(arrays, feats, seed=args.seed).users(arrays)
            spaces[f"input-{feats}"] = per_user(neighbours(x, users, pool, args.k), users, item_sets,
                                                genre_sets, held)
        for feats, enc, ep in ((f, e, int(p)) for f in args.features.split(",")
                           for e in args.encoders.split(",") for p in args.epochs.split(",")):
            t = time.perf_counter()
            s = train_personas(store, settings, encoder=enc, epochs=ep, hidden=args.hidden,
                               lr=args.lr, seed=args.seed, k=8, features=feats)
            rows = store.stream_nodes("User", ["persona"])
            z = np.zeros((n, s.dim), dtype=np.float32)
            for uid, vec in zip(rows.ids, rows.properties["persona"], strict=True):
                z[pos[uid]] = vec
            notes.append(f"{feats}/{enc}/{ep}: {time.perf_counter() - t:.1f}s, {len(s.losses)} epochs run, "
                         f"best {s.best_epoch} loss {min(s.losses):.4f}, attention "
                         + ", ".join(f"{m} {w:.2f}" for m, w in s.attention.items())
                         + (f", dropped {s.dropped}" if s.dropped else ""))
            spaces[f"hdgi-{feats}-{enc}-{ep}"] = per_user(neighbours(z, users, pool, args.k), users,
                                                          item_sets, genre_sets, held)
    return spaces, notes


def report(spaces, notes, rng) -> None:
    print()
    for line in notes:
        print(line)
    metrics = ("items", "genres", "heldout")
    print(f"\n{'space':<26}" + "".join(f"{m:>10}" for m in metrics)
          + "".join(f"{'Δ vs mean ' + m:>30}" for m in metrics))
    for name, vals in spaces.items():
        row = f"{name:<26}" + "".join(f"{np.nanmean(vals[m]):>10.4f}" for m in metrics)
        if name != "mean":
            for m in metrics:
                d, ci, p = compare(vals[m], spaces["mean"][m], rng)
                row += f"{d:>+12.4f} ±{ci:.4f} p={p:<8.2g}"
        print(row)
    print("\nΔ: mean paired difference vs the mean-embedding space, bootstrap 95% CI half-width, "
          "Wilcoxon signed-rank p.")


if __name__ == "__main__":
    main()
