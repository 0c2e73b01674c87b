"""Heterogeneous Deep Graph Infomax (Ren et al., 2019) over user meta-path graphs.

* node level: one GCNConv (HDGI-C) or GATConv (HDGI-A) per meta-path graph, plus (default)
  a root weight ``W_root x_i`` — a skip from the node's own input, as in GraphSAGE — then
  PReLU;
* semantic level: HAN attention — score of meta-path p = mean over nodes of
  ``q^T tanh(W z_p + b)``, softmax over meta-paths → one global weight per meta-path;
* readout ``s = sigmoid(mean(z))``; corruption = row shuffle of ``x`` (graphs unchanged);
* bilinear discriminator ``D(z, s) = z^T M s`` trained with BCE-with-logits;
* optionally (``var_weight``, ``cov_weight``, both 0 by default) a VICReg-style regulariser on
  the real embeddings of the batch (:func:`vicreg_penalty`): a hinge that keeps each dimension's
  standard deviation at 1 or more, and the squared off-diagonal covariances; with
  ``reg_normalize`` on the rows scaled to norm ``sqrt(hidden)`` (scale-free: it penalises the
  shared direction itself). DGI alone lets the
  personas share one dominant direction (MovieLens demo: cosine to the mean .98, per-dimension
  std about .017).

GCN normalisation defaults to ``"mean"``: a weighted mean over the node's in-neighbours
(edge weights = the meta-path's path counts when given, else 1), with a self-loop only when
there is no root weight (``D^-1 (A + I)``). A node's output then depends on itself and its
in-neighbours alone, so the
mini-batch subgraphs of :mod:`.train` and the inductive subgraph of :mod:`.inductive`
compute exactly what the full graph would. ``"sym"`` is the classic ``D^-1/2 (A+I) D^-1/2``
(exact only in full-batch mode).

The module imports torch at import time; import it lazily from the CLI.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kgrec.choices import Encoder as EncoderKind
from kgrec.choices import choice
from kgrec.errors import ConfigError

Encoder = Literal["gcn", "gat"]
Normalization = Literal["mean", "sym"]


def corrupt(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """DGI corruption: the rows of ``x`` shuffled (a permutation drawn from ``generator``,
    a CPU generator; the meta-path graphs are left as they are)."""
    perm = torch.randperm(x.size(0), generator=generator)
    return x[perm.to(x.device)]


#: the standard deviation the variance hinge asks of every dimension (VICReg's gamma)
VAR_TARGET = 1.0


def vicreg_penalty(z: Tensor, eps: float = 1e-4, normalize: bool = False) -> tuple[Tensor, Tensor]:
    """VICReg's variance and covariance terms (Bardes et al., 2022) of ``z`` [N, C]:
    ``mean_j relu(VAR_TARGET - sqrt(var_j + eps))`` and ``sum_{i != j} cov_ij^2 / C``
    (unbiased covariance over the N rows). Collapsed rows give a larger value of both.

    ``normalize`` first scales every row to norm ``sqrt(C)`` (root mean square 1 per dimension):
    the terms then depend on the directions alone, not on the scale of ``z``, and the hinge is
    0 only when the rows' mean is 0 (every variance 1) — it penalises a shared direction."""
    if z.dim() != 2 or z.size(0) < 2:
        raise ConfigError(f"vicreg_penalty needs [N >= 2, C] embeddings, got {list(z.shape)}")
    c = z.size(1)
    if normalize:
        z = F.normalize(z, dim=1) * math.sqrt(c)
    zc = z - z.mean(dim=0)
    var = torch.relu(VAR_TARGET - torch.sqrt(zc.var(dim=0) + eps)).mean()
    cov = zc.T @ zc / (z.size(0) - 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return var, off.pow(2).sum() / c


def mean_norm_edges(
    edge_index: Tensor,
    num_nodes: int,
    dtype: torch.dtype = torch.float32,
    edge_weight: Tensor | None = None,
    self_loops: bool = True,
) -> tuple[Tensor, Tensor]:
    """Existing self-loops dropped, new ones (weight 1) added when ``self_loops``, and each
    edge weighted ``w / sum of w into its target`` (``w`` = ``edge_weight`` or 1)."""
    src, dst = edge_index
    keep = src != dst
    dev = edge_index.device
    ei = edge_index[:, keep]
    w = (torch.ones(ei.size(1), dtype=dtype, device=dev) if edge_weight is None
         else edge_weight.to(dev, dtype)[keep])
    if self_loops:
        loops = torch.arange(num_nodes, device=dev)
        ei = torch.cat([ei, torch.stack([loops, loops])], dim=1)
        w = torch.cat([w, torch.ones(num_nodes, dtype=dtype, device=dev)])
    deg = torch.zeros(num_nodes, dtype=dtype, device=dev)
    deg.scatter_add_(0, ei[1], w)
    return ei, w / deg.clamp(min=torch.finfo(dtype).tiny)[ei[1]]


class SemanticAttention(nn.Module):
    """HAN semantic-level attention: one softmax weight per meta-path."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(channels, hidden)
        self.q = nn.Parameter(torch.empty(hidden))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.proj.reset_parameters()
        nn.init.uniform_(self.q, -1.0 / math.sqrt(self.q.numel()), 1.0 / math.sqrt(self.q.numel()))

    def scores(self, zs: Tensor) -> Tensor:
        """``zs`` [P, N, C] → per meta-path score [P] (mean over the N nodes)."""
        return (torch.tanh(self.proj(zs)) @ self.q).mean(dim=1)

    def forward(self, zs: Tensor) -> Tensor:
        return torch.softmax(self.scores(zs), dim=0)


class HDGI(nn.Module):
    """HDGI encoder + discriminator over ``num_metapaths`` user–user graphs.

    ``forward(x, edge_index_list) -> (z, weights)``; ``embed`` for inference;
    :meth:`dgi_loss` / :meth:`loss` for training. The buffer ``attention`` holds the
    global meta-path weights fixed after training (used for the inductive path).
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        num_metapaths: int,
        encoder: Encoder = "gcn",
        heads: int = 4,
        dropout: float = 0.0,
        semantic_hidden: int = 128,
        normalization: Normalization = "mean",
        root_weight: bool = True,
        var_weight: float = 0.0,
        cov_weight: float = 0.0,
        reg_normalize: bool = False,
    ) -> None:
        super().__init__()
        if in_channels < 1 or hidden_channels < 1 or num_metapaths < 1 or semantic_hidden < 1 or heads < 1:
            raise ConfigError("HDGI: channels, meta-path count, heads and semantic_hidden must be ≥ 1")
        encoder = choice(EncoderKind, encoder, "HDGI: encoder")
        if normalization not in ("mean", "sym"):
            raise ConfigError(f"HDGI: normalization must be 'mean' or 'sym', not {normalization!r}")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError("HDGI: dropout must be in [0, 1)")
        if not (var_weight >= 0.0 and cov_weight >= 0.0 and math.isfinite(var_weight + cov_weight)):
            raise ConfigError("HDGI: var_weight and cov_weight must be finite and ≥ 0")
        self.in_channels = int(in_channels)
        self.hidden_channels = int(hidden_channels)
        self.num_metapaths = int(num_metapaths)
        self.encoder_kind: Encoder = encoder
        self.heads = int(heads)
        self.dropout = float(dropout)
        self.semantic_hidden = int(semantic_hidden)
        self.normalization: Normalization = normalization
        self.root_weight = bool(root_weight)
        self.var_weight = float(var_weight)
        self.cov_weight = float(cov_weight)
        self.reg_normalize = bool(reg_normalize)

        self.convs = nn.ModuleList([self._conv() for _ in range(num_metapaths)])
        self.roots = nn.ModuleList(
            [nn.Linear(in_channels, hidden_channels, bias=False) for _ in range(num_metapaths)]
            if self.root_weight else []
        )
        self.acts = nn.ModuleList([nn.PReLU(hidden_channels) for _ in range(num_metapaths)])
        self.semantic = SemanticAttention(hidden_channels, semantic_hidden)
        self.disc_weight = nn.Parameter(torch.empty(hidden_channels, hidden_channels))
        self.register_buffer("attention", torch.full((num_metapaths,), 1.0 / num_metapaths))
        self.last_weights: Tensor | None = None
        self.reset_parameters()

    def _conv(self) -> nn.Module:
        """One meta-path encoder: GCN (path-count-weighted mean, or symmetric normalisation) or GAT."""
        from torch_geometric.nn import GATConv, GCNConv

        c_in, c_out = self.in_channels, self.hidden_channels
        if self.encoder_kind == "gat":
            return GATConv(c_in, c_out, heads=self.heads, concat=False, dropout=self.dropout, add_self_loops=True)
        if self.normalization == "mean":
            return GCNConv(c_in, c_out, normalize=False)
        return GCNConv(c_in, c_out, add_self_loops=True, normalize=True)

    # -- bookkeeping -----------------------------------------------------------------------
    @property
    def init_args(self) -> dict[str, Any]:
        """Constructor arguments (JSON-able), enough to rebuild the model."""
        return {
            "in_channels": self.in_channels,
            "hidden_channels": self.hidden_channels,
            "num_metapaths": self.num_metapaths,
            "encoder": self.encoder_kind,
            "heads": self.heads,
            "dropout": self.dropout,
            "semantic_hidden": self.semantic_hidden,
            "normalization": self.normalization,
            "root_weight": self.root_weight,
            "var_weight": self.var_weight,
            "cov_weight": self.cov_weight,
            "reg_normalize": self.reg_normalize,
        }

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()
        for root in self.roots:
            root.reset_parameters()
        for act in self.acts:
            nn.init.constant_(act.weight, 0.25)
        self.semantic.reset_parameters()
        nn.init.xavier_uniform_(self.disc_weight)
        self.attention.fill_(1.0 / self.num_metapaths)

    # -- encoder ---------------------------------------------------------------------------
    def encode(
        self,
        x: Tensor,
        edge_index_list: Sequence[Tensor],
        target_size: int | None = None,
        edge_weight_list: Sequence[Tensor | None] | None = None,
    ) -> Tensor:
        """Per-meta-path node embeddings ``[P, N, hidden]`` (only the first ``target_size``
        nodes when given — the targets of a sampled subgraph). ``edge_weight_list`` (one
        ``[E]`` tensor or None per meta-path) weights the neighbour mean of the mean-GCN;
        GAT learns its own edge weights and the symmetric GCN ignores them."""
        if len(edge_index_list) != self.num_metapaths:
            raise ConfigError(
                f"HDGI expects {self.num_metapaths} meta-path graphs, got {len(edge_index_list)}"
            )
        if x.dim() != 2 or x.size(1) != self.in_channels:
            raise ConfigError(f"HDGI expects features [N, {self.in_channels}], got {list(x.shape)}")
        if edge_weight_list is not None and len(edge_weight_list) != self.num_metapaths:
            raise ConfigError(f"HDGI expects {self.num_metapaths} edge-weight entries, got {len(edge_weight_list)}")
        n = x.size(0)
        x = F.dropout(x, p=self.dropout, training=self.training)
        edge_weights = list(edge_weight_list) if edge_weight_list is not None else [None] * self.num_metapaths
        outs = []
        for p, (conv, act, ei) in enumerate(zip(self.convs, self.acts, edge_index_list, strict=True)):
            ei = ei.to(x.device)
            if self.encoder_kind == "gcn" and self.normalization == "mean":
                ei_n, w = mean_norm_edges(ei, n, x.dtype, edge_weights[p], self_loops=not self.root_weight)
                h = conv(x, ei_n, w)
            else:
                h = conv(x, ei)
            if self.root_weight:
                h = h + self.roots[p](x)
            h = act(h)
            outs.append(h if target_size is None else h[:target_size])
        return torch.stack(outs)

    def combine(self, zs: Tensor, weights: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Semantic attention: ``zs`` [P, N, C] → (z [N, C], weights [P]). Fixed ``weights``
        (e.g. :attr:`attention`) skip the attention computation."""
        if weights is None:
            weights = self.semantic(zs)
        weights = weights.to(zs.device, zs.dtype)
        return (weights.view(-1, 1, 1) * zs).sum(dim=0), weights

    def forward(
        self,
        x: Tensor,
        edge_index_list: Sequence[Tensor],
        *,
        target_size: int | None = None,
        weights: Tensor | None = None,
        edge_weight_list: Sequence[Tensor | None] | None = None,
    ) -> tuple[Tensor, Tensor]:
        zs = self.encode(x, edge_index_list, target_size, edge_weight_list)
        z, w = self.combine(zs, weights)
        self.last_weights = w.detach()
        return z, w

    @torch.no_grad()
    def embed(
        self,
        x: Tensor,
        edge_index_list: Sequence[Tensor],
        *,
        weights: Tensor | None = None,
        target_size: int | None = None,
        edge_weight_list: Sequence[Tensor | None] | None = None,
    ) -> Tensor:
        """Persona vectors in eval mode (no dropout, no grad); training mode is restored."""
        was = self.training
        self.eval()
        try:
            z, _ = self.forward(x, edge_index_list, target_size=target_size, weights=weights,
                                edge_weight_list=edge_weight_list)
        finally:
            self.train(was)
        return z

    # -- DGI objective ---------------------------------------------------------------------
    @staticmethod
    def readout(z: Tensor) -> Tensor:
        return torch.sigmoid(z.mean(dim=0))

    def discriminate(self, z: Tensor, summary: Tensor) -> Tensor:
        """Bilinear scores ``z M s`` → logits [N]."""
        return z @ (self.disc_weight @ summary)

    def loss(self, pos_z: Tensor, neg_z: Tensor, summary: Tensor) -> Tensor:
        """BCE-with-logits: real embeddings vs. the summary labelled 1, corrupted labelled 0;
        plus ``var_weight`` x variance hinge + ``cov_weight`` x covariance of the real embeddings
        (:func:`vicreg_penalty`, on rows scaled to one norm when ``reg_normalize``) when either
        weight is > 0 and there are ≥ 2 rows (both 0: the plain DGI loss)."""
        pos = self.discriminate(pos_z, summary)
        neg = self.discriminate(neg_z, summary)
        logits = torch.cat([pos, neg])
        labels = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)])
        bce = F.binary_cross_entropy_with_logits(logits, labels)
        if (self.var_weight == 0.0 and self.cov_weight == 0.0) or pos_z.size(0) < 2:
            return bce
        var, cov = vicreg_penalty(pos_z, normalize=self.reg_normalize)
        return bce + self.var_weight * var + self.cov_weight * cov

    def dgi_loss(
        self,
        x: Tensor,
        edge_index_list: Sequence[Tensor],
        *,
        generator: torch.Generator | None = None,
        target_size: int | None = None,
        x_corrupt: Tensor | None = None,
        edge_weight_list: Sequence[Tensor | None] | None = None,
    ) -> Tensor:
        """One DGI objective: encode ``x`` and its corruption over the same (weighted) graphs."""
        pos_z, _ = self.forward(x, edge_index_list, target_size=target_size, edge_weight_list=edge_weight_list)
        weights = self.last_weights
        neg_x = corrupt(x, generator) if x_corrupt is None else x_corrupt
        neg_z, _ = self.forward(neg_x, edge_index_list, target_size=target_size, edge_weight_list=edge_weight_list)
        self.last_weights = weights  # keep the weights of the real graph, not the corrupted one
        return self.loss(pos_z, neg_z, self.readout(pos_z))
