"""Training and batched inference of :class:`~kgrec.personas.hdgi.HDGI` (saving and loading:
:mod:`.persistence`).

Full-batch by default. With ``batch_size`` set, each step samples target users, takes
their (optionally further subsampled, ``num_neighbors``) 1-hop meta-path neighbourhoods
from CSR, builds the subgraph (targets first, then neighbours; edges into targets only)
and computes the DGI loss on the targets. With the default ``"mean"`` GCN normalisation
or GAT, target outputs equal the full-graph ones, so memory is bounded by
``batch_size * (1 + sum of max_neighbors)`` rows whatever the user count.

Imports torch at import time: import lazily from the CLI.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kgrec.errors import ConfigError, ModelError

from .hdgi import HDGI
from .metapaths import MetaPathGraph
from .sparse import CSR, cap_per_source, csr_from_edges

EdgeLike = Tensor | np.ndarray | MetaPathGraph


@dataclass
class TrainResult:
    losses: list[float]
    best_epoch: int
    best_loss: float
    attention: list[float]
    epochs_run: int
    stopped_early: bool
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- input normalisation -------------------------------------------------------------------


def _as_x(x: Tensor | np.ndarray) -> Tensor:
    t = torch.as_tensor(np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x)
    if t.dim() != 2:
        raise ConfigError(f"features must be [N, d], got {list(t.shape)}")
    return t.float()


def _as_weights(edge_index_list: Sequence[EdgeLike], weighted: bool = True) -> list[Tensor | None]:
    """Per graph, its path-count weights (a :class:`MetaPathGraph`) or None (plain edges)."""
    return [torch.from_numpy(np.ascontiguousarray(e.weight, dtype=np.float32))
            if weighted and isinstance(e, MetaPathGraph) else None for e in edge_index_list]


def _as_edges(edge_index_list: Sequence[EdgeLike], n: int) -> list[Tensor]:
    out = []
    for e in edge_index_list:
        if isinstance(e, MetaPathGraph):
            e = e.edge_index
        t = torch.as_tensor(np.ascontiguousarray(e) if isinstance(e, np.ndarray) else e).long().cpu()
        if t.dim() != 2 or t.size(0) != 2:
            raise ConfigError(f"edge_index must be [2, E], got {list(t.shape)}")
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
            raise ConfigError(f"edge_index refers to node ≥ {n} or < 0")
        out.append(t)
    return out


def resolve_device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ConfigError(f"invalid device {device!r}: {e}") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available")
    return dev


def _to(weights: Sequence[Tensor | None], dev: torch.device) -> list[Tensor | None]:
    return [None if w is None else w.to(dev) for w in weights]


# -- mini-batch subgraphs ------------------------------------------------------------------


class SubgraphSampler:
    """Targets + sampled 1-hop meta-path neighbourhoods, relabelled locally (targets first)."""

    def __init__(
        self,
        edge_index_list: Sequence[Tensor],
        num_nodes: int,
        num_neighbors: int | None = None,
        edge_weight_list: Sequence[Tensor | None] | None = None,
    ) -> None:
        self.num_nodes = num_nodes
        self.num_neighbors = num_neighbors
        ws = list(edge_weight_list) if edge_weight_list is not None else [None] * len(edge_index_list)
        self.csrs: list[CSR] = [
            csr_from_edges(e[1].numpy(), e[0].numpy(), num_nodes, num_nodes,
                           None if w is None else w.numpy())
            for e, w in zip(edge_index_list, ws, strict=True)
        ]
        self._local = np.full(num_nodes, -1, dtype=np.int64)

    def sample(
        self, targets: np.ndarray, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, list[Tensor], list[Tensor | None]]:
        """``(nodes, local_edge_index_list, edge_weight_list)``: ``nodes[:len(targets)] == targets``.
        Subsampled neighbours (``num_neighbors``) are drawn uniformly; their weights are kept
        as they are (the encoder renormalises per target)."""
        targets = np.asarray(targets, dtype=np.int64)
        per_path = []
        for csr in self.csrs:
            deg = csr.degree(targets)
            rep = np.repeat(np.arange(len(targets), dtype=np.int64), deg)
            offs = np.arange(int(deg.sum()), dtype=np.int64) - np.repeat(np.cumsum(deg) - deg, deg)
            at = csr.indptr[targets[rep]] + offs
            nbr = csr.indices[at]
            w = None if csr.data is None else csr.data[at]
            if self.num_neighbors is not None and rng is not None and len(rep):
                keep = cap_per_source(rep, np.ones(len(rep)), self.num_neighbors, rng, "uniform")
                rep, nbr = rep[keep], nbr[keep]
                w = None if w is None else w[keep]
            per_path.append((rep, nbr, w))
        all_nbr = np.concatenate([nbr for _, nbr, _ in per_path]) if per_path else np.zeros(0, np.int64)
        others = np.setdiff1d(np.unique(all_nbr), targets, assume_unique=False)
        nodes = np.concatenate([targets, others])
        local = self._local
        local[nodes] = np.arange(len(nodes), dtype=np.int64)
        eil = [torch.from_numpy(np.stack([local[nbr], rep])) for rep, nbr, _ in per_path]
        ews = [None if w is None else torch.from_numpy(w) for _, _, w in per_path]
        local[nodes] = -1
        return nodes, eil, ews


# -- training ------------------------------------------------------------------------------


def _check_train_args(epochs: int, patience: int, lr: float, weight_decay: float, batch_size: int | None,
                      num_neighbors: int | None) -> None:
    if epochs < 1 or patience < 1:
        raise ConfigError("epochs and patience must be ≥ 1")
    if lr <= 0 or weight_decay < 0:
        raise ConfigError("lr must be > 0 and weight_decay ≥ 0")
    if batch_size is not None and batch_size < 1:
        raise ConfigError("batch_size must be ≥ 1 (or None for full batch)")
    if num_neighbors is not None and num_neighbors < 1:
        raise ConfigError("num_neighbors must be ≥ 1")


@dataclass
class _EarlyStop:
    """Keeps the weights of the lowest loss; says stop after ``patience`` epochs without one."""

    patience: int
    min_delta: float = 0.0
    best_loss: float = math.inf
    best_epoch: int = -1
    bad: int = 0
    best_state: dict[str, Tensor] | None = None

    def should_stop(self, epoch: int, loss: float, model: HDGI) -> bool:
        if loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch, self.bad = loss, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        self.bad += 1
        return self.bad >= self.patience


class _Epochs:
    """One DGI epoch: a single step over the whole graph, or one step per batch of target users
    (with their sampled meta-path neighbourhoods, see :class:`SubgraphSampler`)."""

    def __init__(self, model: HDGI, x: Tensor, eil: list[Tensor], ewl: list[Tensor | None], dev: torch.device,
                 opt: torch.optim.Optimizer, seed: int, batch_size: int | None, num_neighbors: int | None) -> None:
        self.model, self.opt, self.dev, self.batch_size = model, opt, dev, batch_size
        self.n = x.size(0)
        self.x = x.to(dev)
        self.gen = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.sampler = SubgraphSampler(eil, self.n, num_neighbors, ewl) if batch_size is not None else None
        self.eil = [e.to(dev) for e in eil] if self.sampler is None else []
        self.ewl = _to(ewl, dev)

    def run(self) -> float:
        self.model.train()
        return self._full() if self.sampler is None else self._batched()

    def _step(self, loss: Tensor) -> float:
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return float(loss.detach())

    def _full(self) -> float:
        return self._step(self.model.dgi_loss(self.x, self.eil, generator=self.gen, edge_weight_list=self.ewl))

    def _batched(self) -> float:
        assert self.sampler is not None and self.batch_size is not None
        order = self.rng.permutation(self.n)
        total, seen = 0.0, 0
        for start in range(0, self.n, self.batch_size):
            targets = order[start : start + self.batch_size]
            nodes, sub, sub_w = self.sampler.sample(targets, self.rng)
            perm = torch.randperm(self.n, generator=self.gen)
            nodes_t = torch.from_numpy(nodes)
            loss = self.model.dgi_loss(
                self.x[nodes_t.to(self.dev)], [e.to(self.dev) for e in sub], target_size=len(targets),
                x_corrupt=self.x[perm[nodes_t].to(self.dev)], edge_weight_list=_to(sub_w, self.dev))
            total += self._step(loss) * len(targets)
            seen += len(targets)
        return total / max(seen, 1)


def _run_epochs(model: HDGI, epoch_loss: Callable[[int], float], epochs: int, stop: _EarlyStop,
                on_epoch: Callable[[int, float], None] | None) -> tuple[list[float], bool]:
    """Up to ``epochs`` epochs of ``epoch_loss`` under ``stop``; the best weights are restored and
    the model left in eval mode. Returns (losses, whether it stopped early)."""
    losses: list[float] = []
    stopped = False
    for epoch in range(epochs):
        loss = epoch_loss(epoch)
        if not math.isfinite(loss):
            raise ModelError(f"HDGI training diverged at epoch {epoch} (loss {loss}); lower lr")
        losses.append(loss)
        if on_epoch is not None:
            on_epoch(epoch, loss)
        if stop.should_stop(epoch, loss, model):
            stopped = True
            break
    if stop.best_state is not None:
        model.load_state_dict(stop.best_state)
    model.eval()
    return losses, stopped


def train_hdgi(
    model: HDGI,
    x: Tensor | np.ndarray,
    edge_index_list: Sequence[EdgeLike],
    *,
    epochs: int = 200,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    patience: int = 20,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    num_neighbors: int | None = None,
    on_epoch: Callable[[int, float], None] | None = None,
    reset: bool = True,
    min_delta: float = 0.0,
) -> TrainResult:
    """Train ``model`` with the DGI objective; early stopping on the training loss.

    ``reset`` re-initialises the parameters under ``seed`` so the same seed gives the same
    losses on CPU. The best weights are restored, the global meta-path attention is
    computed on the whole graph and stored in ``model.attention``. The model is left on
    ``device`` in eval mode.
    """
    _check_train_args(epochs, patience, lr, weight_decay, batch_size, num_neighbors)
    dev = resolve_device(device)
    x_t = _as_x(x)
    eil = _as_edges(edge_index_list, x_t.size(0))
    if len(eil) != model.num_metapaths:
        raise ConfigError(f"model has {model.num_metapaths} meta-paths, got {len(eil)} graphs")
    torch.manual_seed(seed)
    if reset:
        model.reset_parameters()
    model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    epoch_of = _Epochs(model, x_t, eil, _as_weights(edge_index_list), dev, opt, seed, batch_size, num_neighbors)
    stop = _EarlyStop(patience, min_delta)
    t0 = time.perf_counter()
    losses, stopped = _run_epochs(model, lambda _epoch: epoch_of.run(), epochs, stop, on_epoch)
    _, weights = embed_personas(model, x_t, edge_index_list, batch_size=batch_size, device=dev,
                                return_weights=True)
    model.attention.copy_(torch.as_tensor(weights, device=model.attention.device))
    return TrainResult(losses=losses, best_epoch=stop.best_epoch, best_loss=stop.best_loss,
                       attention=[float(w) for w in weights], epochs_run=len(losses), stopped_early=stopped,
                       seconds=time.perf_counter() - t0)


@torch.no_grad()
def embed_personas(
    model: HDGI,
    x: Tensor | np.ndarray,
    edge_index_list: Sequence[EdgeLike],
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    use_stored_attention: bool = False,
    return_weights: bool = False,
) -> Any:
    """Persona vectors ``[N, hidden]`` (numpy float32) for every user.

    Full graph at once, or in target batches (exact for mean-GCN/GAT) with the semantic
    weights accumulated over all nodes, so both modes agree. ``use_stored_attention`` uses
    ``model.attention`` instead of recomputing. ``return_weights`` → ``(z, weights)``.
    """
    dev = resolve_device(device) if device is not None else next(model.parameters()).device
    x_t = _as_x(x)
    n = x_t.size(0)
    eil = _as_edges(edge_index_list, n)
    ewl = _as_weights(edge_index_list)
    was = model.training
    model.eval()
    model.to(dev)
    fixed = model.attention if use_stored_attention else None
    try:
        if batch_size is None:
            z, w = model(x_t.to(dev), [e.to(dev) for e in eil], weights=fixed, edge_weight_list=_to(ewl, dev))
        else:
            sampler = SubgraphSampler(eil, n, None, ewl)
            x_dev = x_t.to(dev)
            zs_all = torch.empty(model.num_metapaths, n, model.hidden_channels)
            score_sum = torch.zeros(model.num_metapaths, dtype=torch.float64)
            for start in range(0, n, batch_size):
                targets = np.arange(start, min(start + batch_size, n), dtype=np.int64)
                nodes, sub, sub_w = sampler.sample(targets)
                zs = model.encode(
                    x_dev[torch.from_numpy(nodes).to(dev)], [e.to(dev) for e in sub], len(targets),
                    _to(sub_w, dev),
                )
                zs_all[:, start : start + len(targets)] = zs.cpu()
                if fixed is None:
                    score_sum += model.semantic.scores(zs).double().cpu() * len(targets)
            w = fixed if fixed is not None else torch.softmax(score_sum / max(n, 1), dim=0).float()
            z, w = model.combine(zs_all, w.cpu())
    finally:
        model.train(was)
    model.last_weights = w.detach()
    z_np = z.detach().cpu().numpy().astype(np.float32)
    if return_weights:
        return z_np, w.detach().cpu().numpy().astype(np.float64)
    return z_np


# -- training on a stream of sampled subgraphs (personas/sampled.py) -----------------------------
def fit_batches(model: HDGI, batches: Callable[[int], Iterable[Any]], *, epochs: int, lr: float, patience: int,
                seed: int, device: str | torch.device = "cpu",
                on_epoch: Callable[[int, float], None] | None = None) -> TrainResult:
    """DGI on the samples ``batches(epoch)`` gives (each with ``x``, ``graphs`` and its targets
    first): one step per sample, the corruption a shuffle of the sample's rows. Early stopping
    on an epoch's mean loss over targets; the best weights are restored. The attention is left
    to :func:`embed_batches`, which sees every user."""
    _check_train_args(epochs, patience, lr, 0.0, None, None)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    model.reset_parameters()
    model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    stop, t0 = _EarlyStop(patience), time.perf_counter()

    def epoch_loss(epoch: int) -> float:
        model.train()
        total, seen = 0.0, 0
        for b in batches(epoch):
            if b.n_targets == 0:
                continue
            x = _as_x(b.x).to(dev)
            perm = torch.randperm(x.size(0), generator=gen).to(dev)
            loss = model.dgi_loss(x, [e.to(dev) for e in _as_edges(b.graphs, x.size(0))], target_size=b.n_targets,
                                  x_corrupt=x[perm], edge_weight_list=_to(_as_weights(b.graphs), dev))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, seen = total + float(loss.detach()) * b.n_targets, seen + b.n_targets
        return total / max(seen, 1)

    losses, stopped = _run_epochs(model, epoch_loss, epochs, stop, on_epoch)
    return TrainResult(losses=losses, best_epoch=stop.best_epoch, best_loss=stop.best_loss,
                       attention=[float(w) for w in model.attention], epochs_run=len(losses), stopped_early=stopped,
                       seconds=time.perf_counter() - t0)


@torch.no_grad()
def embed_batches(model: HDGI, batches: Iterable[Any]) -> tuple[list[str], np.ndarray, list[str]]:
    """Personas of every batch's targets, the semantic attention averaged over all of them (and
    stored in ``model.attention``); a target its sample missed gets its batch's mean persona.
    Returns ``(ids, z, missing ids)``."""
    dev = next(model.parameters()).device
    model.eval()
    parts: list[Tensor] = []
    ids: list[str] = []
    missing: list[str] = []
    score_sum = torch.zeros(model.num_metapaths, dtype=torch.float64)
    for b in batches:
        if b.n_targets == 0:
            missing.extend(b.missing)
            continue
        x = _as_x(b.x).to(dev)
        zs = model.encode(x, [e.to(dev) for e in _as_edges(b.graphs, x.size(0))], b.n_targets,
                          _to(_as_weights(b.graphs), dev)).cpu()
        score_sum += model.semantic.scores(zs).double() * b.n_targets
        if b.missing:
            zs = torch.cat([zs, zs.mean(dim=1, keepdim=True).expand(-1, len(b.missing), -1)], dim=1)
        parts.append(zs)
        ids.extend(list(b.target_ids) + list(b.missing))
        missing.extend(b.missing)
    if not parts:
        return [], np.zeros((0, model.hidden_channels), dtype=np.float32), missing
    w = torch.softmax(score_sum / max(len(ids), 1), dim=0).float()
    model.attention.copy_(w.to(model.attention.device))
    z, _ = model.combine(torch.cat(parts, dim=1), w)
    return ids, z.numpy().astype(np.float32), missing
