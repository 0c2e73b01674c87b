"""User–user meta-path graphs built by capped, sampled sparse composition.

A meta-path is named by the letters of its node types, ``U`` user, ``I`` item,
``F`` feature, ``E`` entity, starting and ending at ``U``:

``UIU``      co-interaction (users who interacted with the same item)
``UIFIU``    shared feature
``UIEIU``    shared DBpedia entity (through SAME_AS)
``UIEEIU``   one hop through an entity–entity relation (optionally only some relation types)
``UIIU``     item co-occurrence

Each consecutive letter pair is a relation (``UI``/``IU``, ``IF``/``FI``, ``IE``/``EI``,
``EE`` and ``II`` are symmetrised). Composition never builds the full sparse product:
paths are expanded hop by hop from a batch of source users with CSR look-ups; a node
expands into at most ``max_fanout`` neighbours (sampled with replacement beyond that,
re-weighted so the weights stay unbiased path-count estimates) and each source keeps at
most ``max_fanout`` distinct nodes per intermediate step. Memory per batch is therefore
bounded by ``batch_size * max_fanout**2`` entries, whatever the hub sizes. At the end
each user keeps at most ``max_neighbors`` neighbours (``weighted`` by estimated path
count, ``uniform``, or ``topk``). Same seed → same graph.

Output edges point neighbour → user (``edge_index[0]`` neighbour, ``edge_index[1]`` the
user that aggregates), so every user has in-degree ≤ ``max_neighbors``. Self-loops are
excluded here; the encoder adds them.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from kgrec.errors import ConfigError

from .data import GraphArrays
from .sparse import CSR, Sampling, cap_per_source, csr_from_edges

if TYPE_CHECKING:  # pragma: no cover
    import torch


LETTERS = {"U": "user", "I": "item", "F": "feature", "E": "entity"}
RELATIONS = ("UI", "IU", "IF", "FI", "IE", "EI", "EE", "II")
DEFAULT_METAPATHS = ("UIU", "UIFIU", "UIEIU")


@dataclass(frozen=True)
class MetaPathSpec:
    """One meta-path and its sampling caps."""

    name: str
    max_neighbors: int = 20
    max_fanout: int = 50
    sampling: Sampling = "weighted"
    #: for paths with an ``EE`` hop: only these entity relation types (None = all)
    entity_rel_types: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        name = str(self.name).upper()
        object.__setattr__(self, "name", name)
        if len(name) < 3 or name[0] != "U" or name[-1] != "U":
            raise ConfigError(f"meta-path {self.name!r}: must start and end at U and have ≥ 3 letters")
        bad = set(name) - set(LETTERS)
        if bad:
            raise ConfigError(
                f"meta-path {self.name!r}: unknown node letter(s) {sorted(bad)}; use U, I, F, E"
            )
        for rel in self.relations:
            if rel not in RELATIONS:
                raise ConfigError(
                    f"meta-path {self.name!r}: no relation {rel!r}; allowed: {', '.join(RELATIONS)}"
                )
        if int(self.max_neighbors) < 1 or int(self.max_fanout) < 1:
            raise ConfigError(f"meta-path {self.name!r}: max_neighbors and max_fanout must be ≥ 1")
        if self.sampling not in ("weighted", "uniform", "topk"):
            raise ConfigError(f"meta-path {self.name!r}: sampling must be weighted, uniform or topk")
        object.__setattr__(self, "max_neighbors", int(self.max_neighbors))
        object.__setattr__(self, "max_fanout", int(self.max_fanout))
        if self.entity_rel_types is not None:
            object.__setattr__(self, "entity_rel_types", tuple(str(t) for t in self.entity_rel_types))

    @property
    def relations(self) -> tuple[str, ...]:
        return tuple(self.name[i : i + 2] for i in range(len(self.name) - 1))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if d["entity_rel_types"] is not None:
            d["entity_rel_types"] = list(d["entity_rel_types"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MetaPathSpec:
        try:
            return cls(**d)
        except TypeError as e:
            raise ConfigError(f"invalid meta-path spec {d!r}: {e}") from e


def parse_metapaths(
    specs: Iterable[str | MetaPathSpec | dict[str, Any]] = DEFAULT_METAPATHS, **defaults: Any
) -> list[MetaPathSpec]:
    """Specs from names (``"UIU"``, comma-separated strings too), dicts or specs; ``defaults``
    (e.g. ``max_neighbors=30``) apply to names and dicts that do not set them."""
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    out: list[MetaPathSpec] = []
    for s in specs:
        if isinstance(s, MetaPathSpec):
            out.append(s)
        elif isinstance(s, str):
            try:
                out.append(MetaPathSpec(name=s.strip(), **defaults))
            except TypeError as e:
                raise ConfigError(f"invalid meta-path option: {e}") from e
        elif isinstance(s, dict):
            out.append(MetaPathSpec.from_dict({**defaults, **s}))
        else:
            raise ConfigError(f"cannot read meta-path spec {s!r}")
    if not out:
        raise ConfigError("at least one meta-path is needed")
    names = [s.name for s in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"duplicate meta-paths: {names}")
    return out


# -- relations ----------------------------------------------------------------------------


class RelationIndex:
    """CSR adjacency of every relation of a :class:`GraphArrays`, built lazily and cached."""

    def __init__(self, arrays: GraphArrays) -> None:
        self.arrays = arrays
        self._cache: dict[tuple[str, tuple[str, ...] | None], CSR] = {}

    def csr(self, rel: str, entity_rel_types: tuple[str, ...] | None = None) -> CSR:
        key = (rel, entity_rel_types if rel == "EE" else None)
        if key not in self._cache:
            self._cache[key] = self._build(rel, key[1])
        return self._cache[key]

    def _build(self, rel: str, ee_types: tuple[str, ...] | None) -> CSR:
        a = self.arrays
        n = {"U": a.n_users, "I": a.n_items, "F": a.n_features, "E": a.n_entities}
        edges = {"UI": a.user_item, "IF": a.item_feature, "IE": a.item_entity}
        if rel in edges:
            e = edges[rel]
            return csr_from_edges(e[0], e[1], n[rel[0]], n[rel[1]])
        if rel[::-1] in edges:
            e = edges[rel[::-1]]
            return csr_from_edges(e[1], e[0], n[rel[0]], n[rel[1]])
        if rel == "EE":
            e = a.entity_entity
            if ee_types is not None:
                if a.entity_entity_type is None:
                    raise ConfigError(
                        "meta-path filters entity relation types but the entity edges are untyped"
                    )
                unknown = set(ee_types) - set(a.entity_rel_types)
                if unknown:
                    raise ConfigError(f"unknown entity relation type(s) {sorted(unknown)}")
                codes = [a.entity_rel_types.index(t) for t in ee_types]
                e = e[:, np.isin(a.entity_entity_type, codes)]
        elif rel == "II":
            e = a.item_item
        else:  # pragma: no cover - guarded by MetaPathSpec
            raise ConfigError(f"unknown relation {rel!r}")
        keep = e[0] != e[1]
        e = e[:, keep]
        return csr_from_edges(
            np.concatenate([e[0], e[1]]), np.concatenate([e[1], e[0]]), n[rel[0]], n[rel[1]]
        )


# -- sampled hop expansion -----------------------------------------------------------------


def expand_hop(
    src: np.ndarray,
    node: np.ndarray,
    weight: np.ndarray,
    csr: CSR,
    max_fanout: int,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One hop of path expansion, aggregated by (source, new node).

    Every frontier entry ``(src, node, w)`` moves to all neighbours of ``node`` when its
    degree is ≤ ``max_fanout``, else to ``max_fanout`` neighbours drawn with replacement
    (weights scaled by ``degree / max_fanout`` so the total stays an unbiased path count).
    Returns ``(src, new_node, weight)`` sorted by ``(src, new_node)`` without duplicates.
    """
    deg = csr.degree(node)
    k = np.minimum(deg, max_fanout)
    total = int(k.sum())
    if total == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z.copy(), np.zeros(0, dtype=np.float64)
    rep = np.repeat(np.arange(len(node), dtype=np.int64), k)
    starts = np.cumsum(k) - k
    j = np.arange(total, dtype=np.int64) - np.repeat(starts, k)
    d_rep = deg[rep]
    hub = d_rep > max_fanout
    offs = j
    if hub.any():
        offs = j.copy()
        offs[hub] = rng.integers(0, d_rep[hub])
    new_node = csr.indices[csr.indptr[node[rep]] + offs]
    new_w = weight[rep] * (d_rep / k[rep])
    new_src = src[rep]
    n_cols = np.int64(max(csr.n_cols, 1))
    key, inv = np.unique(new_src * n_cols + new_node, return_inverse=True)
    w = np.bincount(inv.ravel(), weights=new_w, minlength=len(key))
    return key // n_cols, key % n_cols, w


def _rescale(src: np.ndarray, w: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Weights of the kept entries, scaled so each source keeps its total weight."""
    n_src = int(src.max()) + 1 if len(src) else 0
    tot = np.bincount(src, weights=w, minlength=n_src)
    kept = np.bincount(src[mask], weights=w[mask], minlength=n_src)
    scale = tot / np.maximum(kept, 1e-12)
    return w[mask] * scale[src[mask]]


def _walk(
    index: RelationIndex,
    spec: MetaPathSpec,
    relations: Sequence[str],
    src: np.ndarray,
    node: np.ndarray,
    w: np.ndarray,
    rng: np.random.Generator,
    exclude: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expand local sources along ``relations``; returns capped ``(src, user, weight)``."""
    inner: Sampling = "uniform" if spec.sampling == "uniform" else "weighted"
    for h, rel in enumerate(relations):
        csr = index.csr(rel, spec.entity_rel_types)
        src, node, w = expand_hop(src, node, w, csr, spec.max_fanout, rng)
        if h < len(relations) - 1:
            mask = cap_per_source(src, w, spec.max_fanout, rng, inner)
            if not mask.all():
                w = _rescale(src, w, mask)
                src, node = src[mask], node[mask]
    if exclude is not None and len(src):
        keep = node != exclude[src]
        src, node, w = src[keep], node[keep], w[keep]
    mask = cap_per_source(src, w, spec.max_neighbors, rng, spec.sampling)
    return src[mask], node[mask], w[mask]


def _rng(seed: int, name: str, part: int = 0) -> np.random.Generator:
    return np.random.default_rng(
        np.random.SeedSequence([int(seed) & 0xFFFFFFFF, zlib.crc32(name.encode()), part])
    )


# -- public builders -----------------------------------------------------------------------


@dataclass
class MetaPathGraph:
    """A sampled user–user graph: ``edge_index[0]`` neighbour → ``edge_index[1]`` user."""

    name: str
    edge_index: np.ndarray
    weight: np.ndarray
    num_nodes: int

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    def in_degree(self) -> np.ndarray:
        return np.bincount(self.edge_index[1], minlength=self.num_nodes)

    def edge_index_tensor(self) -> torch.Tensor:
        import torch

        return torch.from_numpy(np.ascontiguousarray(self.edge_index))


def build_metapath_graph(
    arrays: GraphArrays | RelationIndex,
    spec: MetaPathSpec | str,
    *,
    seed: int = 0,
    batch_size: int = 4096,
) -> MetaPathGraph:
    """The sampled user–user graph of one meta-path (see the module doc for the caps)."""
    index = arrays if isinstance(arrays, RelationIndex) else RelationIndex(arrays)
    spec = parse_metapaths([spec])[0] if not isinstance(spec, MetaPathSpec) else spec
    if batch_size < 1:
        raise ConfigError("batch_size must be ≥ 1")
    n_users = index.arrays.n_users
    rels = spec.relations
    rows, cols, ws = [], [], []
    for b, start in enumerate(range(0, n_users, batch_size)):
        users = np.arange(start, min(start + batch_size, n_users), dtype=np.int64)
        rng = _rng(seed, spec.name, b)
        local = np.arange(len(users), dtype=np.int64)
        s, u, w = _walk(index, spec, rels, local, users, np.ones(len(users)), rng, exclude=users)
        rows.append(u)
        cols.append(users[s])
        ws.append(w)
    ei = np.stack([np.concatenate(rows), np.concatenate(cols)]) if rows else np.zeros((2, 0), np.int64)
    w = np.concatenate(ws) if ws else np.zeros(0)
    return MetaPathGraph(spec.name, ei.astype(np.int64), w.astype(np.float32), n_users)


def build_metapath_graphs(
    arrays: GraphArrays | RelationIndex,
    specs: Iterable[str | MetaPathSpec | dict[str, Any]] = DEFAULT_METAPATHS,
    *,
    seed: int = 0,
    batch_size: int = 4096,
) -> list[MetaPathGraph]:
    """One :class:`MetaPathGraph` per spec, sharing one relation index."""
    index = arrays if isinstance(arrays, RelationIndex) else RelationIndex(arrays)
    return [build_metapath_graph(index, s, seed=seed, batch_size=batch_size) for s in parse_metapaths(specs)]


def sample_from_items(
    arrays: GraphArrays | RelationIndex,
    spec: MetaPathSpec,
    items: Sequence[int] | np.ndarray,
    *,
    seed: int = 0,
    exclude_user: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours (user indices, weights) of a virtual user whose items are ``items``: the
    meta-path walked from its item step on, with the same caps as for trained users.
    ``exclude_user`` (a training user's own index) is never a neighbour: a persona of that
    user's past must not read the user's node, whose features hold all of their items."""
    index = arrays if isinstance(arrays, RelationIndex) else RelationIndex(arrays)
    items = np.asarray(items, dtype=np.int64)
    if items.size == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    nodes, counts = np.unique(items, return_counts=True)
    src = np.zeros(len(nodes), dtype=np.int64)
    w = counts.astype(np.float64)
    rng = _rng(seed, spec.name, 1 << 30)
    mask = cap_per_source(
        src, w, spec.max_fanout, rng, "uniform" if spec.sampling == "uniform" else "weighted"
    )
    if not mask.all():
        w = _rescale(src, w, mask)
        src, nodes = src[mask], nodes[mask]
    exclude = None if exclude_user is None else np.asarray([exclude_user], dtype=np.int64)
    _, users, w = _walk(index, spec, spec.relations[1:], src, nodes, w, rng, exclude=exclude)
    return users, w.astype(np.float32)
