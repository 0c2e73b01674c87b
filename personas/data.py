"""The array form of the knowledge graph that the persona models consume.

The graph store is streamed (elsewhere) into a :class:`GraphArrays`; everything in
:mod:`kgrec.personas` works from it and never talks to the database.

Edge arrays are int64 ``[2, E]`` (row 0 = source index, row 1 = destination index),
indices into the matching id/embedding tables:

``user_item``      user → item, training interactions only (duplicates allowed)
``item_feature``   item → feature (``n_features`` feature nodes)
``item_entity``    item → DBpedia entity (SAME_AS, ``n_entities`` entity nodes)
``entity_entity``  entity → entity (DBpedia relations; ``entity_entity_type`` optional
                   int codes into ``entity_rel_types``)
``item_item``      item → item co-occurrence (optional)

Only numpy is imported at module level; torch / torch_geometric are imported inside
:func:`to_hetero_data`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kgrec.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

    from torch_geometric.data import HeteroData

_EMPTY = np.zeros((2, 0), dtype=np.int64)


def _edges(name: str, value: Any, n_src: int, n_dst: int) -> np.ndarray:
    if value is None:
        return _EMPTY.copy()
    try:
        arr = np.asarray(value)
        if arr.size == 0:
            return _EMPTY.copy()
        if arr.ndim != 2 or arr.shape[0] != 2:
            raise DataError(f"GraphArrays.{name}: expected shape [2, E], got {list(arr.shape)}")
        if not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"GraphArrays.{name}: expected integer indices, got {arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise DataError(f"GraphArrays.{name}: cannot read edge array: {e}") from e
    if arr.min() < 0 or arr[0].max() >= n_src or arr[1].max() >= n_dst:
        raise DataError(f"GraphArrays.{name}: index out of range (sources < {n_src}, destinations < {n_dst})")
    return arr


@dataclass
class GraphArrays:
    """Users, items, features, entities and their edges as numpy arrays.

    ``feature_names`` (``"kind:value"``) and ``entity_labels`` are optional and only used
    to label persona groups. Construction validates shapes and index ranges and coerces
    dtypes (float32 embeddings, int64 edges); malformed input raises :class:`DataError`.
    """

    user_ids: list[str]
    item_ids: list[str]
    item_emb: np.ndarray
    user_item: np.ndarray
    item_feature: np.ndarray | None = None
    n_features: int = 0
    item_entity: np.ndarray | None = None
    n_entities: int = 0
    entity_entity: np.ndarray | None = None
    entity_entity_type: np.ndarray | None = None
    entity_rel_types: list[str] = field(default_factory=list)
    item_item: np.ndarray | None = None
    feature_names: list[str] | None = None
    entity_labels: list[str] | None = None

    def __post_init__(self) -> None:
        self.user_ids = list(self.user_ids)
        self.item_ids = list(self.item_ids)
        try:
            emb = np.asarray(self.item_emb, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise DataError(f"GraphArrays.item_emb: not a float matrix: {e}") from e
        if emb.ndim != 2 or emb.shape[0] != len(self.item_ids):
            raise DataError(
                f"GraphArrays.item_emb: expected [{len(self.item_ids)}, d], got {list(emb.shape)}"
            )
        if not np.isfinite(emb).all():
            raise DataError("GraphArrays.item_emb: contains NaN or infinite values")
        self.item_emb = np.ascontiguousarray(emb)
        nu, ni = len(self.user_ids), len(self.item_ids)
        self.n_features = int(self.n_features)
        self.n_entities = int(self.n_entities)
        if self.feature_names is not None:
            self.feature_names = list(self.feature_names)
            if self.n_features == 0:
                self.n_features = len(self.feature_names)
            if len(self.feature_names) != self.n_features:
                raise DataError(
                    f"GraphArrays.feature_names: {len(self.feature_names)} names for "
                    f"{self.n_features} features"
                )
        if self.entity_labels is not None:
            self.entity_labels = list(self.entity_labels)
            if self.n_entities == 0:
                self.n_entities = len(self.entity_labels)
            if len(self.entity_labels) != self.n_entities:
                raise DataError(
                    f"GraphArrays.entity_labels: {len(self.entity_labels)} labels for "
                    f"{self.n_entities} entities"
                )
        self.user_item = _edges("user_item", self.user_item, nu, ni)
        self.item_feature = _edges("item_feature", self.item_feature, ni, self.n_features)
        self.item_entity = _edges("item_entity", self.item_entity, ni, self.n_entities)
        self.entity_entity = _edges("entity_entity", self.entity_entity, self.n_entities, self.n_entities)
        self.item_item = _edges("item_item", self.item_item, ni, ni)
        self.entity_rel_types = list(self.entity_rel_types)
        if self.entity_entity_type is not None:
            t = np.asarray(self.entity_entity_type)
            if t.size == 0 and self.entity_entity.shape[1] == 0:
                t = np.zeros(0, dtype=np.int64)
            if t.shape != (self.entity_entity.shape[1],) or not np.issubdtype(t.dtype, np.integer):
                raise DataError(
                    "GraphArrays.entity_entity_type: expected int array [E] matching entity_entity"
                )
            t = t.astype(np.int64)
            if t.size and (t.min() < 0 or (self.entity_rel_types and t.max() >= len(self.entity_rel_types))):
                raise DataError("GraphArrays.entity_entity_type: code out of range of entity_rel_types")
            self.entity_entity_type = t

    # -- sizes -----------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def emb_dim(self) -> int:
        return int(self.item_emb.shape[1])

    def num_nodes(self, node_type: str) -> int:
        return {
            "user": self.n_users,
            "item": self.n_items,
            "feature": self.n_features,
            "entity": self.n_entities,
        }[node_type]

    # -- persistence (npz + json-able metadata) --------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write everything to one ``.npz`` file (ids and names included)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload: dict[str, Any] = {
            "user_ids": _strings(self.user_ids),
            "item_ids": _strings(self.item_ids),
            "item_emb": self.item_emb,
            "user_item": self.user_item,
            "item_feature": self.item_feature,
            "item_entity": self.item_entity,
            "entity_entity": self.entity_entity,
            "item_item": self.item_item,
            "sizes": np.asarray([self.n_features, self.n_entities], dtype=np.int64),
            "entity_rel_types": _strings(self.entity_rel_types),
        }
        if self.entity_entity_type is not None:
            payload["entity_entity_type"] = self.entity_entity_type
        if self.feature_names is not None:
            payload["feature_names"] = _strings(self.feature_names)
        if self.entity_labels is not None:
            payload["entity_labels"] = _strings(self.entity_labels)
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **payload)
        return path

    @classmethod
    def load(cls, path: str | Path) -> GraphArrays:
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:  # never unpickle: a model dir is not code
                d = {k: z[k] for k in z.files}
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: cannot read graph arrays ({e}); files written before pickles "
                            "were dropped need `kgrec train personas` again") from e
        try:
            n_feat, n_ent = (int(v) for v in d["sizes"])
            return cls(
                user_ids=[str(u) for u in d["user_ids"]],
                item_ids=[str(i) for i in d["item_ids"]],
                item_emb=d["item_emb"],
                user_item=d["user_item"],
                item_feature=d["item_feature"],
                n_features=n_feat,
                item_entity=d["item_entity"],
                n_entities=n_ent,
                entity_entity=d["entity_entity"],
                entity_entity_type=d.get("entity_entity_type"),
                entity_rel_types=[str(t) for t in d["entity_rel_types"]],
                item_item=d["item_item"],
                feature_names=[str(f) for f in d["feature_names"]] if "feature_names" in d else None,
                entity_labels=[str(e) for e in d["entity_labels"]] if "entity_labels" in d else None,
            )
        except KeyError as e:
            raise DataError(f"{path}: missing array {e}") from e


def _strings(values: Sequence[str]) -> np.ndarray:
    """A fixed-width unicode array (``np.load`` reads it without pickle, unlike ``dtype=object``)."""
    return np.asarray([str(v) for v in values], dtype=np.str_)


# -- derived arrays ------------------------------------------------------------------------


def user_features(arrays: GraphArrays, extra: np.ndarray | None = None) -> np.ndarray:
    """User feature matrix: mean item embedding of each user's training items (zeros when a
    user has none), optionally concatenated with ``extra`` ``[n_users, k]``. float32."""
    nu, d = arrays.n_users, arrays.emb_dim
    src, dst = arrays.user_item
    out = np.zeros((nu, d), dtype=np.float64)
    if src.size:
        np.add.at(out, src, arrays.item_emb[dst].astype(np.float64))
    cnt = np.bincount(src, minlength=nu).astype(np.float64)
    out /= np.maximum(cnt, 1.0)[:, None]
    out = out.astype(np.float32)
    if extra is not None:
        extra = np.asarray(extra, dtype=np.float32)
        if extra.ndim != 2 or extra.shape[0] != nu:
            raise DataError(f"extra user features: expected [{nu}, k], got {list(extra.shape)}")
        out = np.concatenate([out, extra], axis=1)
    return out


def session_features(arrays: GraphArrays, items: np.ndarray | list[int], extra_dim: int = 0) -> np.ndarray:
    """Features of an anonymous session, consistent with :func:`user_features`: the mean
    embedding of its items, padded with ``extra_dim`` zeros. float32 ``[d + extra_dim]``."""
    items = np.asarray(items, dtype=np.int64)
    if items.size == 0:
        vec = np.zeros(arrays.emb_dim, dtype=np.float32)
    else:
        if items.min() < 0 or items.max() >= arrays.n_items:
            raise DataError(f"session item index out of range (0..{arrays.n_items - 1})")
        vec = arrays.item_emb[items].astype(np.float64).mean(axis=0).astype(np.float32)
    if extra_dim:
        vec = np.concatenate([vec, np.zeros(extra_dim, dtype=np.float32)])
    return vec


def _lists(edges: np.ndarray, n_items: int, names: list[str] | None) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in range(n_items)]
    for i, t in zip(edges[0].tolist(), edges[1].tolist(), strict=True):
        out[i].append(names[t] if names is not None else str(t))
    return out


def item_feature_lists(arrays: GraphArrays) -> list[list[str]]:
    """Per item, its feature names (``"kind:value"``; the index as text when unnamed)."""
    return _lists(arrays.item_feature, arrays.n_items, arrays.feature_names)


def item_entity_lists(arrays: GraphArrays) -> list[list[str]]:
    """Per item, the labels of its SAME_AS entities (the index as text when unlabelled)."""
    return _lists(arrays.item_entity, arrays.n_items, arrays.entity_labels)


def item_neighbour_entity_lists(arrays: GraphArrays) -> list[list[str]]:
    """Per item, the labels of the entities one relation away from its SAME_AS resources (its
    director, cast, author, genre, …): what describes a taste, unlike the work's own resource.
    Falls back to :func:`item_entity_lists` when the graph has no entity relations."""
    if arrays.entity_entity.shape[1] == 0:
        return item_entity_lists(arrays)
    names = arrays.entity_labels
    out_nbrs: list[list[int]] = [[] for _ in range(arrays.n_entities)]
    for s, t in zip(arrays.entity_entity[0].tolist(), arrays.entity_entity[1].tolist(), strict=True):
        out_nbrs[s].append(t)
    lists: list[list[str]] = [[] for _ in range(arrays.n_items)]
    for i, e in zip(arrays.item_entity[0].tolist(), arrays.item_entity[1].tolist(), strict=True):
        lists[i].extend(names[t] if names is not None else str(t) for t in out_nbrs[e])
    return [list(dict.fromkeys(x)) for x in lists]


def to_hetero_data(
    arrays: GraphArrays,
    *,
    user_extra: np.ndarray | None = None,
    item_extra: np.ndarray | None = None,
    reverse_edges: bool = True,
) -> HeteroData:
    """A PyG :class:`HeteroData` with node types ``user``/``item``/``feature``/``entity``.

    ``item.x`` = LLM embeddings (+ ``item_extra``), ``user.x`` = mean embedding of the user's
    training items (+ ``user_extra``); feature/entity nodes carry ``num_nodes`` only.
    Edge types: ``(user, interacts, item)``, ``(item, has_feature, feature)``,
    ``(item, same_as, entity)``, ``(entity, related, entity)`` (``edge_type`` codes when
    typed), ``(item, co_occurs, item)``; with ``reverse_edges`` the ``rev_*`` reverses too.
    """
    import torch
    from torch_geometric.data import HeteroData

    data = HeteroData()
    data["user"].x = torch.from_numpy(user_features(arrays, user_extra))
    item_x = arrays.item_emb
    if item_extra is not None:
        item_extra = np.asarray(item_extra, dtype=np.float32)
        if item_extra.ndim != 2 or item_extra.shape[0] != arrays.n_items:
            raise DataError(
                f"extra item features: expected [{arrays.n_items}, k], got {list(item_extra.shape)}"
            )
        item_x = np.concatenate([item_x, item_extra], axis=1)
    data["item"].x = torch.from_numpy(np.ascontiguousarray(item_x, dtype=np.float32))
    data["feature"].num_nodes = arrays.n_features
    data["entity"].num_nodes = arrays.n_entities

    def put(src: str, rel: str, dst: str, edges: np.ndarray) -> None:
        ei = torch.from_numpy(np.ascontiguousarray(edges, dtype=np.int64))
        data[src, rel, dst].edge_index = ei
        if reverse_edges and src != dst:
            data[dst, f"rev_{rel}", src].edge_index = ei.flip(0).contiguous()

    put("user", "interacts", "item", arrays.user_item)
    if arrays.item_feature.shape[1]:
        put("item", "has_feature", "feature", arrays.item_feature)
    if arrays.item_entity.shape[1]:
        put("item", "same_as", "entity", arrays.item_entity)
    if arrays.entity_entity.shape[1]:
        put("entity", "related", "entity", arrays.entity_entity)
        if arrays.entity_entity_type is not None:
            data["entity", "related", "entity"].edge_type = torch.from_numpy(arrays.entity_entity_type)
    if arrays.item_item.shape[1]:
        put("item", "co_occurs", "item", arrays.item_item)
    return data
