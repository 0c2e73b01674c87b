"""SASRec input layer A/B: LayerNorm(item + pos), both N(0, 0.02) (``input_norm=True``, the default)
vs the older ``item * sqrt(H) + pos`` with PyTorch's N(0, 1) positions, on the planted ring rule of
``tests/recommender/test_sasrec.py`` (80 users, next item = current + 1). Prints validation NDCG@10 per
epoch, mean over 3 seeds; hidden 32, 2 blocks, 2 heads, max_len 16, dropout 0.2, Adam 1e-3, batch 16.

    nice -n 10 .venv/bin/python benchmarks/sasrec_input_ab.py
"""

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "recommender"))
from test_sasrec import _examples, _ring

from kgrec.recommender import data as D
from kgrec.recommender.sasrec import SASRec
from kgrec.recommender.training import fit

torch.set_num_threads(1)
print("threads=1; valid NDCG@10 per epoch, mean of seeds 0-2")
for n_items, epochs in ((15, 10), (60, 10), (200, 15)):
    vocab, seqs = _ring(n_users=80, n_items=n_items, length=20)
    train = {u: s[:-1] for u, s in seqs.items()}
    w, valid = D.training_windows(train, max_len=16), _examples(train, 16)
    for norm in (False, True):
        curves = []
        for seed in range(3):
            torch.manual_seed(seed)
            m = SASRec(len(vocab), hidden=32, num_blocks=2, num_heads=2, max_len=16, dropout=0.2, input_norm=norm)
            r = fit(m, w, valid, epochs=epochs, batch_size=16, lr=1e-3, patience=99, seed=seed)
            curves.append([h["valid_NDCG@10"] for h in r.history])
        name = "input_norm (new)" if norm else "legacy input"
        print(f"{n_items:4d} items  {name:17s}", " ".join(f"{v:.3f}" for v in np.mean(curves, 0)), flush=True)
