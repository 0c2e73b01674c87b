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

Only numpy is imported at module level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kgrec.errors import DataError

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

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


def readable_entity(label: str) -> str:
    """An entity label for people: a bare IRI becomes its last segment with spaces."""
    if "://" in label:
        label = label.rstrip("/").rsplit("/", 1)[-1].replace("_", " ")
    return label


def item_term_lists(arrays: GraphArrays) -> list[list[tuple[str, str]]]:
    """Per item, the ``(category, name)`` terms that describe it for persona labels: its
    features (``genre:Comedy`` → ``("genre", "Comedy")``) and the entities one DBpedia relation
    away from its SAME_AS resources (``DIRECTOR`` → ``("people", "Woody Allen")``); categories
    from :func:`kgrec.personas.groups.category_of`. Unnamed features or entities are skipped."""
    from .groups import category_of

    out: list[list[tuple[str, str]]] = [[] for _ in range(arrays.n_items)]
    if arrays.feature_names is not None:
        for i, f in zip(arrays.item_feature[0].tolist(), arrays.item_feature[1].tolist(), strict=True):
            kind, _, value = arrays.feature_names[f].partition(":")
            out[i].append((category_of(kind), value or kind))
    ee = arrays.entity_entity
    if arrays.entity_labels is None or ee.shape[1] == 0:
        return out
    types = arrays.entity_entity_type
    rel_names = arrays.entity_rel_types or []
    nbrs: list[list[tuple[str, str]]] = [[] for _ in range(arrays.n_entities)]
    for j, (s, t) in enumerate(zip(ee[0].tolist(), ee[1].tolist(), strict=True)):
        rel = rel_names[int(types[j])] if types is not None and int(types[j]) < len(rel_names) else ""
        nbrs[s].append((category_of(rel), readable_entity(arrays.entity_labels[t])))
    for i, e in zip(arrays.item_entity[0].tolist(), arrays.item_entity[1].tolist(), strict=True):
        out[i].extend(nbrs[e])
    return [list(dict.fromkeys(terms)) for terms in out]
