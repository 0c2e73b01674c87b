"""Scale check (not a test): 70k users, 384-d.

Run with the repo importable as kgrec: ``python benchmarks/persona_scale_check.py [cuda|cpu]``; it
prints wall time, peak RSS and neighbour overlap of HDGI on a synthetic 70k-user graph.
"""

import resource
import sys
import time

import numpy as np
import torch

from kgrec.personas.data import GraphArrays, user_features
from kgrec.personas.hdgi import HDGI
from kgrec.personas.inductive import InductivePersonas
from kgrec.personas.metapaths import build_metapath_graphs, parse_metapaths
from kgrec.personas.signal import neighbour_overlap
from kgrec.personas.train import embed_personas, train_hdgi

dev = sys.argv[1] if len(sys.argv) > 1 else "cuda"
rng = np.random.default_rng(0)
nu, ni, nf, ne, d = 70000, 20000, 2000, 5000, 384
pop = rng.zipf(1.5, size=nu * 20) % ni
ui = np.stack([np.repeat(np.arange(nu), 20), pop])
itf = np.stack(
    [np.repeat(np.arange(ni), 3), np.concatenate([np.zeros(ni, int), rng.integers(0, nf, size=2 * ni)])]
)
ie = np.stack([np.arange(ni), rng.integers(0, ne, size=ni)])
ee = rng.integers(0, ne, size=(2, 20000))
a = GraphArrays(
    [str(i) for i in range(nu)],
    [str(i) for i in range(ni)],
    rng.normal(size=(ni, d)).astype(np.float32),
    ui,
    item_feature=itf,
    n_features=nf,
    item_entity=ie,
    n_entities=ne,
    entity_entity=ee,
)
specs = parse_metapaths(["UIU", "UIFIU", "UIEIU"], max_neighbors=20, max_fanout=50)
t = time.time()
gs = build_metapath_graphs(a, specs, seed=0, batch_size=4096)
print(
    "metapaths",
    [(g.name, g.num_edges, int(g.in_degree().max())) for g in gs],
    f"{time.time() - t:.1f}s",
    f"rss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}MB",
    flush=True,
)
x = user_features(a)
for enc in ["gcn", "gat"]:
    for bs in [None, 4096]:
        if dev == "cuda":
            torch.cuda.reset_peak_memory_stats()
        m = HDGI(d, 64, 3, encoder=enc)
        t = time.time()
        r = train_hdgi(
            m,
            x,
            gs,
            epochs=10 if bs is None else 2,
            lr=1e-3,
            seed=0,
            device=dev,
            batch_size=bs,
            num_neighbors=10,
        )
        if dev == "cuda":
            torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() / 2**20 if dev == "cuda" else float("nan")
        print(
            enc,
            "batch",
            bs,
            "epochs",
            r.epochs_run,
            f"{time.time() - t:.1f}s",
            "loss",
            f"{r.losses[0]:.4f}->{r.best_loss:.4f}",
            "att",
            np.round(r.attention, 3),
            f"peak {peak:.0f}MiB",
            flush=True,
        )
    z = embed_personas(m, x, gs)
    zb = embed_personas(m, x, gs, batch_size=8192)
    print(enc, "full vs batched embed max diff", float(np.abs(z - zb).max()), flush=True)
t = time.time()
inf = InductivePersonas(m, a, specs)
sess = [rng.choice(ni, size=5, replace=False) for _ in range(200)]
v = inf.infer_many(sess)
print("inductive 200 sessions", v.shape, f"{time.time() - t:.1f}s", flush=True)
print("overlap hdgi", neighbour_overlap(z, a.user_item, k=10, sample=1000).to_dict())
print("overlap mean-emb", neighbour_overlap(x, a.user_item, k=10, sample=1000).to_dict())
