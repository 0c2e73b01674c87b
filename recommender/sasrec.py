"""SASRec (Kang & McAuley 2018) with optional LLM item initialisation and gBCE loss.

Item indices follow :class:`kgrec.recommender.data.ItemVocab`: ``num_items`` counts
the padding index 0, score column 0 is always ``-inf``. Sequences are left-padded
``[B, L]`` with the most recent item last.

This module imports torch at import time; import it lazily (the package
``__init__`` does not).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kgrec.errors import ConfigError
from kgrec.recommender.losses import SampledSoftmax, sampled_softmax, sub_table_ids


def attention_mask(seqs: torch.Tensor, num_heads: int, prefix: int = 0) -> torch.Tensor:
    """Boolean [B*heads, L', L'] mask (True = blocked): causal + padded keys, self always allowed.

    ``prefix`` extra leading positions (e.g. a persona token) are never padding.
    """
    b, l = seqs.shape
    n = l + prefix
    pad = seqs == 0
    if prefix:
        pad = torch.cat([torch.zeros(b, prefix, dtype=torch.bool, device=seqs.device), pad], 1)
    causal = torch.triu(torch.ones(n, n, dtype=torch.bool, device=seqs.device), diagonal=1)
    m = causal.unsqueeze(0) | pad.unsqueeze(1)  # [B, n, n]
    eye = torch.eye(n, dtype=torch.bool, device=seqs.device).unsqueeze(0)
    m = m & ~eye
    return m.repeat_interleave(num_heads, dim=0)


class CausalEncoder(nn.Module):
    """Positional embedding + pre-LN causal transformer blocks + final LayerNorm.

    ``input_norm=True`` (what :class:`SASRec` uses): item + positional embedding, both initialised
    N(0, 0.02), go through a LayerNorm before the dropout and the first block, as in RecBole and
    BERT, so the residual stream starts at unit scale with item and position in balance.
    ``input_norm=False`` keeps the older input, ``x * sqrt(H) + pos`` with PyTorch's N(0, 1)
    positional init (still used by the persona retriever): with item rows of norm <= 1 the
    positions there outweigh the items about 8 : 1 at the start of training.

    ``norm_first=True`` (the default) is pre-LN blocks with a final LayerNorm; ``False`` is
    post-LN blocks (LayerNorm after each residual sum, no final LayerNorm), as in the original
    Transformer, Kang & McAuley's SASRec and RecBole.
    """

    def __init__(self, hidden: int, num_blocks: int, num_heads: int, max_positions: int, dropout: float,
                 inner_size: int | None = None, input_norm: bool = False, norm_first: bool = True):
        super().__init__()
        if hidden % num_heads:
            raise ConfigError(f"hidden ({hidden}) must be divisible by num_heads ({num_heads})")
        self.num_heads = num_heads
        self.pos = nn.Embedding(max_positions, hidden)
        self.input_norm = nn.LayerNorm(hidden) if input_norm else None
        if input_norm:
            nn.init.normal_(self.pos.weight, std=0.02)
        self.drop = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(hidden, num_heads, dim_feedforward=inner_size or hidden, dropout=dropout,
                                       activation="gelu", batch_first=True, norm_first=norm_first)
            for _ in range(num_blocks)
        ])
        self.norm = nn.LayerNorm(hidden) if norm_first else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """``x`` [B, n, H] embeddings, ``mask`` from :func:`attention_mask`, ``keep`` [B, n] float."""
        n = x.shape[1]
        pos = self.pos.weight[-n:].unsqueeze(0)
        x = self.input_norm(x + pos) if self.input_norm is not None else x * math.sqrt(x.shape[-1]) + pos
        x = self.drop(x) * keep.unsqueeze(-1)
        for blk in self.blocks:
            x = blk(x, src_mask=mask) * keep.unsqueeze(-1)
        return self.norm(x)


class LLMItemTable(nn.Module):
    """Item table = trainable embedding (+ learned projection of frozen LLM vectors)."""

    def __init__(self, num_items: int, hidden: int, item_init: np.ndarray | None):
        super().__init__()
        self.emb = nn.Embedding(num_items, hidden, padding_idx=0)
        nn.init.normal_(self.emb.weight, std=0.02 if item_init is None else 0.002)
        with torch.no_grad():
            self.emb.weight[0].zero_()
        if item_init is not None:
            init = torch.as_tensor(np.asarray(item_init, dtype=np.float32))
            if init.shape[0] != num_items:
                raise ConfigError(f"item_init has {init.shape[0]} rows, expected num_items={num_items}")
            init = init / init.norm(dim=1, keepdim=True).clamp_min(1e-8)
            self.register_buffer("llm", init)
            self.proj = nn.Linear(init.shape[1], hidden, bias=False)
        else:
            self.register_buffer("llm", None)
            self.proj = None

    def weight(self) -> torch.Tensor:
        w = self.emb.weight
        if self.proj is not None:
            w = w + self.proj(self.llm)
            w = torch.cat([torch.zeros_like(w[:1]), w[1:]])
        return w

    def rows(self, ids: torch.Tensor) -> torch.Tensor:
        """``weight()[ids]`` computed for those rows only (index 0 = the zero padding row)."""
        w = self.emb(ids)
        if self.proj is not None:
            w = torch.where((ids == 0).unsqueeze(-1), torch.zeros((), device=w.device), w + self.proj(self.llm[ids]))
        return w


def gbce_beta(num_negatives: int, num_items: int, t: float = 0.75) -> float:
    """gSASRec calibration exponent: beta = alpha (t (1 - 1/alpha) + 1/alpha), alpha = k / (n - 1)."""
    alpha = num_negatives / max(1, num_items - 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


class SASRec(nn.Module):
    """Self-attentive sequential recommender.

    Args:
        num_items: vocabulary size **including** padding index 0.
        hidden, num_blocks, num_heads, max_len, dropout: the usual SASRec sizes.
        item_init: optional ``[num_items, d]`` LLM item embeddings, L2-normalised, frozen,
            passed through a learned linear projection and added to the item table.
        loss_type: ``"ce"`` (full softmax over the catalogue), ``"sampled"`` (sampled softmax over
            ``num_negatives`` uniform negatives shared by the batch, :mod:`~kgrec.recommender.losses`)
            or ``"gbce"`` (gSASRec, Petrov & Macdonald 2023: uniform sampled negatives per position,
            calibrated BCE).
        num_negatives, gbce_t: settings of the sampled losses (``gbce_t`` for gBCE only).
        proposal: the sampled softmax's negatives, ``"uniform"`` or ``"popularity"`` (log-Q corrected).
        inner_size: feed-forward width of each block (default ``hidden``, as in Kang & McAuley;
            RecBole's default is 256).
        input_norm: LayerNorm over item + positional embedding (see :class:`CausalEncoder`);
            False is the older, position-dominated input.
        norm_first: pre-LN (True) or post-LN (False) blocks, see :class:`CausalEncoder`.
    """

    def __init__(self, num_items: int, hidden: int = 64, num_blocks: int = 2, num_heads: int = 1,
                 max_len: int = 50, dropout: float = 0.2, item_init: np.ndarray | None = None,
                 loss_type: str = "ce", num_negatives: int = 256, gbce_t: float = 0.75,
                 inner_size: int | None = None, input_norm: bool = True, norm_first: bool = True,
                 proposal: str = "uniform"):
        super().__init__()
        if loss_type not in ("ce", "sampled", "gbce"):
            raise ConfigError(f"loss_type must be 'ce', 'sampled' or 'gbce', got {loss_type!r}")
        if num_items < 2:
            raise ConfigError("num_items must count padding plus at least one item")
        self.num_items, self.hidden, self.max_len = num_items, hidden, max_len
        self.loss_type = loss_type
        self.num_negatives = min(num_negatives, num_items - 1)
        self.beta = gbce_beta(self.num_negatives, num_items, gbce_t)
        self.sampler = SampledSoftmax(num_items, self.num_negatives, proposal)
        self.items = LLMItemTable(num_items, hidden, item_init)
        self.encoder = CausalEncoder(hidden, num_blocks, num_heads, max_len, dropout, inner_size, input_norm,
                                     norm_first)

    def config(self) -> dict:
        return {"num_items": self.num_items, "hidden": self.hidden, "max_len": self.max_len,
                "num_blocks": len(self.encoder.blocks), "num_heads": self.encoder.num_heads,
                "inner_size": self.encoder.blocks[0].linear1.out_features,
                "input_norm": self.encoder.input_norm is not None,
                "norm_first": self.encoder.blocks[0].norm_first,
                "dropout": self.encoder.drop.p, "loss_type": self.loss_type,
                "num_negatives": self.num_negatives, "proposal": self.sampler.proposal,
                "item_init_dim": None if self.items.llm is None else int(self.items.llm.shape[1])}

    def _crop(self, seqs: torch.Tensor) -> torch.Tensor:
        return seqs[:, -self.max_len:]

    def set_item_counts(self, counts) -> None:
        """Training counts for the popularity proposal of the sampled softmax (else a no-op)."""
        self.sampler.set_item_counts(counts)

    def hidden_states(self, seqs: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """[B, L, H] causal states (position t has seen items 0..t); without ``table`` only the
        session's rows of the item table are computed."""
        seqs = self._crop(seqs)
        x = self.items.rows(seqs) if table is None else F.embedding(seqs, table)
        keep = (seqs != 0).float()
        return self.encoder(x, attention_mask(seqs, self.encoder.num_heads), keep)

    def forward(self, seqs: torch.Tensor) -> torch.Tensor:
        """Full-catalogue logits at every position: [B, L, num_items]."""
        table = self.items.weight()
        h = self.hidden_states(seqs, table)
        return self._mask_pad(h @ table.T)

    @staticmethod
    def _mask_pad(logits: torch.Tensor) -> torch.Tensor:
        logits[..., 0] = -torch.inf
        return logits

    def item_table(self) -> torch.Tensor:
        """[num_items, H]: :meth:`score` is ``query_vectors(seqs) @ item_table().T`` (column 0 = -inf)."""
        return self.items.weight()

    def query_vectors(self, seqs: torch.Tensor, table: torch.Tensor | None = None) -> torch.Tensor:
        """[B, H] the last position's state (``table``: a cached :meth:`item_table`)."""
        return self.hidden_states(seqs, table)[:, -1]

    def score(self, seqs: torch.Tensor) -> torch.Tensor:
        """[B, num_items] next-item scores from the last position."""
        table = self.item_table()
        return self._mask_pad(self.query_vectors(seqs, table) @ table.T)

    def score_candidates(self, seqs: torch.Tensor, cand: torch.Tensor,
                         table: torch.Tensor | None = None) -> torch.Tensor:
        """[B, K] scores of candidate indices ``cand`` [B, K] (no full-catalogue matmul).

        ``table`` may pass a cached ``self.items.weight()`` (inference only).
        """
        table = self.items.weight() if table is None else table
        h = self.hidden_states(seqs, table)[:, -1]
        s = torch.einsum("bh,bkh->bk", h, table[cand])
        return s.masked_fill(cand == 0, -torch.inf)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Training loss; padding targets (0) are ignored.

        ``ce``: ``logits`` [N, num_items] full-catalogue logits, ``targets`` [N] indices.
        ``gbce``: ``logits`` [N, 1 + k] with the positive in column 0 and k sampled
        negatives after it; ``targets`` [N] only marks padding (0 = ignore).
        """
        valid = targets != 0
        if not valid.any():
            return logits.sum() * 0.0
        logits, targets = logits[valid], targets[valid]
        if self.loss_type == "ce":
            logits = logits.clone()
            logits[:, 0] = -torch.inf
            return F.cross_entropy(logits, targets)
        pos, neg = logits[:, 0], logits[:, 1:]
        # gBCE: -[beta * log sigma(s+) + sum log(1 - sigma(s-))], averaged over positions
        return -(self.beta * F.logsigmoid(pos) + F.logsigmoid(-neg).sum(1)).mean()

    def training_loss(self, seqs: torch.Tensor, targets: torch.Tensor,
                      generator: torch.Generator | None = None, **_: object) -> torch.Tensor:
        """Loss on windows ``seqs`` [B, L] / ``targets`` [B, L] (0 = ignore)."""
        return self.loss_with_residual(seqs, targets, None, generator)

    def loss_with_residual(self, seqs: torch.Tensor, targets: torch.Tensor, residual: torch.Tensor | None,
                           generator: torch.Generator | None = None) -> torch.Tensor:
        """The training loss with ``residual`` [B, H] (or None) added to every position's state.
        The sampled softmax computes the item table only for the rows the batch touches (its items,
        targets and negatives): the LLM projection of the whole catalogue is most of a step's cost."""
        seqs, targets = self._crop(seqs), self._crop(targets)
        if self.loss_type == "sampled":
            neg = self.sampler.draw(seqs.device, generator)
            ids, (s_, t_, n_) = sub_table_ids(seqs, targets, neg)
            table = self.items.rows(ids)
            h = self.hidden_states(s_, table)
            if residual is not None:
                h = h + residual.unsqueeze(1)
            h, t_ = h.reshape(-1, self.hidden), t_.reshape(-1)
            keep = t_ != 0
            if not keep.any():
                return h.sum() * 0.0
            log_q = None if self.sampler.log_q is None else self.sampler.log_q[ids]
            return sampled_softmax(h[keep], table, t_[keep], n_, log_q)
        table = self.items.weight()
        h = self.hidden_states(seqs, table)
        return self.states_loss(h if residual is None else h + residual.unsqueeze(1), targets, table, generator)

    def states_loss(self, states: torch.Tensor, targets: torch.Tensor, table: torch.Tensor,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """The full-table training loss (``ce`` or ``gbce``) of states [B, L, H] against ``targets``
        [B, L] (0 = ignore); the sampled softmax runs on a sub-table in :meth:`loss_with_residual`."""
        h = states.reshape(-1, self.hidden)
        t = targets.reshape(-1)
        keep = t != 0
        h, t = h[keep], t[keep]
        if self.loss_type == "ce":
            return self.loss(h @ table.T, t)
        neg = torch.randint(1, self.num_items, (len(t), self.num_negatives), generator=generator,
                            device=t.device)
        # resample collisions with the positive once (rare; the rest are kept as is)
        clash = neg == t.unsqueeze(1)
        if clash.any():
            neg[clash] = torch.randint(1, self.num_items, (int(clash.sum()),), generator=generator,
                                       device=t.device)
        cand = torch.cat([t.unsqueeze(1), neg], 1)
        logits = torch.einsum("nh,nkh->nk", h, table[cand])
        return self.loss(logits, t)


class PersonaSASRec(nn.Module):
    """SASRec with the persona as a zero-initialised residual on its states (LSTUR / SSE-PT style).

    ``h'_t = h_t + W LN(p)``, with ``W`` (and its bias) initialised to zero, so the untrained wrapper
    scores exactly like the SASRec it wraps, and fine-tuning from a trained SASRec starts at
    plain SASRec (:func:`kgrec.recommender.training.fit` with ``score_initial=True`` keeps that
    state if no epoch beats it on validation). An all-zero persona row (no past) adds nothing;
    in training ``persona_dropout`` drops the residual of that share of the rows, so the model
    keeps working from the session alone. Fine-tuned end to end (SASRec's weights too).
    """

    def __init__(self, sasrec: SASRec, persona_dim: int, persona_dropout: float = 0.5):
        super().__init__()
        if not 0.0 <= persona_dropout < 1.0:
            raise ConfigError(f"persona_dropout must be in [0, 1), got {persona_dropout}")
        self.sasrec, self.persona_dim, self.persona_dropout = sasrec, int(persona_dim), float(persona_dropout)
        self.num_items, self.max_len = sasrec.num_items, sasrec.max_len
        self.proj = nn.Sequential(nn.LayerNorm(persona_dim), nn.Linear(persona_dim, sasrec.hidden))
        nn.init.zeros_(self.proj[1].weight)
        nn.init.zeros_(self.proj[1].bias)

    def set_item_counts(self, counts) -> None:
        self.sasrec.set_item_counts(counts)

    def config(self) -> dict:
        return {"kind": "sasrec_residual", "sasrec": self.sasrec.config(), "persona_dim": self.persona_dim,
                "persona_dropout": self.persona_dropout}

    def residual(self, persona: torch.Tensor | None, b: int, device) -> torch.Tensor:
        """[B, H]: ``W LN(p)``, zero for an all-zero row (and, in training, a dropped one)."""
        if persona is None:
            return torch.zeros(b, self.sasrec.hidden, device=device)
        persona = persona.float()
        has = persona.abs().sum(-1, keepdim=True) > 0
        if self.training and self.persona_dropout > 0:
            has = has & (torch.rand(has.shape, device=device) >= self.persona_dropout)
        return torch.where(has, self.proj(persona), torch.zeros((), device=device))

    def item_table(self) -> torch.Tensor:
        return self.sasrec.item_table()

    def query_vectors(self, seqs: torch.Tensor, persona: torch.Tensor | None = None,
                      table: torch.Tensor | None = None) -> torch.Tensor:
        """[B, H] SASRec's last state plus the persona residual."""
        return self.sasrec.query_vectors(seqs, table) + self.residual(persona, len(seqs), seqs.device)

    def score(self, seqs: torch.Tensor, persona: torch.Tensor | None = None) -> torch.Tensor:
        """[B, num_items] next-item scores (column 0 = -inf)."""
        table = self.item_table()
        return self.sasrec._mask_pad(self.query_vectors(seqs, persona, table) @ table.T)

    def training_loss(self, seqs: torch.Tensor, targets: torch.Tensor, persona: torch.Tensor | None = None,
                      generator: torch.Generator | None = None, **_: object) -> torch.Tensor:
        return self.sasrec.loss_with_residual(seqs, targets, self.residual(persona, len(seqs), seqs.device),
                                              generator)
