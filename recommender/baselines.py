"""Untrained baselines with the same ``score(seqs) -> [B, num_items]`` interface.

* :class:`Popularity`: training interaction counts (same ranking for everyone).
* :class:`LLMSeqSim` (Harte et al., RecSys 2023): cosine similarity between a
  session embedding and every item's LLM embedding. The session embedding is the
  LLM embedding of the last item (``mode="last"``) or the mean over the last
  ``window`` items of the prefix (``mode="mean"``); :func:`evaluate_all` picks the
  variant on validation.
"""

from __future__ import annotations

import numpy as np


class Popularity:
    def __init__(self, counts: np.ndarray):
        import torch

        self.counts = torch.as_tensor(np.asarray(counts, dtype=np.float32))
        self.training = False

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def score(self, seqs):
        import torch

        s = self.counts.to(seqs.device).unsqueeze(0).expand(seqs.shape[0], -1).clone()
        s[:, 0] = -torch.inf
        return s


class LLMSeqSim:
    def __init__(self, item_table: np.ndarray, mode: str = "mean", window: int | None = None):
        import torch

        from kgrec.errors import ConfigError

        if mode not in ("mean", "last"):
            raise ConfigError(f"LLMSeqSim mode must be 'mean' or 'last', got {mode!r}")
        t = torch.as_tensor(np.asarray(item_table, dtype=np.float32))
        self.table = t / t.norm(dim=1, keepdim=True).clamp_min(1e-8)
        self.table[0] = 0.0
        self.mode, self.window = mode, window
        self.training = False

    def eval(self):
        return self

    def train(self, mode: bool = True):
        return self

    def session_vectors(self, seqs):
        import torch

        seqs = seqs.to(self.table.device)
        if self.mode == "last":
            return self.table[seqs[:, -1]]
        s = seqs if self.window is None else seqs[:, -self.window:]
        e = self.table[s]  # padding rows are zero
        n = (s != 0).sum(1, keepdim=True).clamp_min(1)
        v = e.sum(1) / n
        return torch.nn.functional.normalize(v, dim=-1)

    def score(self, seqs):
        import torch

        s = self.session_vectors(seqs) @ self.table.T
        s[:, 0] = -torch.inf
        return s
