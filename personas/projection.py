"""The typed subgraph persona training needs, streamed from the graph store into arrays.

On Neo4j the store projects it with GDS (``gds.graph.project`` →
``gds.graph.nodeProperties.stream`` / ``gds.graph.relationships.stream``); on the embedded
store it is streamed with batched Cypher. Both go through the port's ``stream_projection``.

The graph holds training interactions only (the build never writes valid/test
interactions), so the ``user_item`` edges here are the training split.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from kgrec.errors import DataError
from kgrec.kg import schema
from kgrec.kg.store import GraphStore, Projection
from kgrec.personas.data import GraphArrays

#: Labels and the properties streamed for each.
NODE_PROPERTIES: dict[str, list[str]] = {"User": [], "Item": ["emb"], "Feature": [], "Entity": []}
#: Relationship types streamed (entity relations only where present).
BASE_RELATIONSHIPS = ("INTERACTED", "HAS_FEATURE", "SAME_AS", "CO_OCCURS")


def training_spec(store: GraphStore, *, with_embeddings: bool = True) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """The labels (with their properties) and relationship types of the training projection,
    as far as the graph has them."""
    counts = store.counts()
    nodes = {label: props for label, props in NODE_PROPERTIES.items() if counts["nodes"].get(label)}
    if not with_embeddings and "Item" in nodes:
        nodes["Item"] = []
    if "User" not in nodes or "Item" not in nodes:
        raise DataError(f"{store.uri} has no users or items; run `kgrec build` first")
    present = counts["relationships"]
    rels: dict[str, list[str]] = {t: [] for t in BASE_RELATIONSHIPS if present.get(t)}
    if "Entity" in nodes:
        rels.update({t: [] for t in schema.ENTITY_REL_TYPES if present.get(t)})
    if "INTERACTED" not in rels:
        raise DataError(f"{store.uri} has no INTERACTED relationships; run `kgrec build` first")
    return nodes, rels


def training_projection(store: GraphStore, *, with_embeddings: bool = True) -> Projection:
    return store.stream_projection(*training_spec(store, with_embeddings=with_embeddings))


def graph_arrays(store: GraphStore, item_embeddings: tuple[list[str], np.ndarray] | None = None) -> GraphArrays:
    """Stream the training projection and index it into :class:`GraphArrays`. ``item_embeddings``
    (ids, vectors: the build's copy of ``Item.emb``, :func:`kgrec.kg.artefacts.load_item_embeddings`)
    saves streaming the vectors back out of the store."""
    proj = training_projection(store, with_embeddings=item_embeddings is None)
    entity_labels = None
    if proj.nodes.get("Entity") is not None and proj.nodes["Entity"].ids:
        labels = store.stream_nodes("Entity", ["label"]).properties["label"]
        entity_labels = [str(lbl) if lbl else iri.rsplit("/", 1)[-1]
                         for iri, lbl in zip(proj.nodes["Entity"].ids, labels)]
    return arrays_of(proj, item_embeddings, entity_labels)


#: the relationship types each meta-path relation (letter pair, either way) walks
_REL_TYPES = {"UI": ("INTERACTED",), "IF": ("HAS_FEATURE",), "IE": ("SAME_AS",), "II": ("CO_OCCURS",),
              "EE": schema.ENTITY_REL_TYPES}


def relation_types(relations: Iterable[str]) -> set[str]:
    """The relationship types that meta-path relations (``"UI"``, ``"FI"``, ...) walk."""
    return {t for r in relations for t in _REL_TYPES.get(r, _REL_TYPES.get(r[::-1], ()))}


def sampled_graph_arrays(store: GraphStore, batches: Iterable[Sequence[str]], *, relations: Iterable[str],
                         nodes_per_user: int, restart_probability: float, seed: int) -> Iterator[GraphArrays]:
    """One :class:`GraphArrays` per batch of user keys: a server-side random-walk sample of the
    training projection around them (:meth:`~kgrec.kg.store.GraphStore.sampled_projections`),
    item vectors included, so the client holds one sample at a time. Only the relationship types
    the meta-paths' ``relations`` walk are projected, so the walks stay on them."""
    nodes, rels = training_spec(store)
    wanted = relation_types(relations)
    rels = {t: ps for t, ps in rels.items() if t in wanted}
    for proj in store.sampled_projections(nodes, rels, batches, seed_label="User", nodes_per_seed=nodes_per_user,
                                          restart_probability=restart_probability, seed=seed):
        yield arrays_of(proj)


def arrays_of(proj: Projection, item_embeddings: tuple[list[str], np.ndarray] | None = None,
              entity_labels: list[str] | None = None) -> GraphArrays:
    """A streamed projection indexed into :class:`GraphArrays` (item vectors from the projection,
    or from ``item_embeddings``)."""
    items = proj.nodes["Item"]
    if item_embeddings is None:
        embs = items.properties["emb"]
    else:
        row = {i: k for k, i in enumerate(item_embeddings[0])}
        embs = [item_embeddings[1][row[i]] if i in row else None for i in items.ids]
    missing = [i for i, e in zip(items.ids, embs) if e is None]
    if missing:
        raise DataError(f"{len(missing)} items have no embedding (e.g. {missing[:3]}); "
                        "rebuild with embeddings on")
    item_emb = np.asarray(embs, dtype=np.float32).reshape(len(items.ids), -1)
    feature_ids = proj.nodes["Feature"].ids if "Feature" in proj.nodes else []
    entity_ids = proj.nodes["Entity"].ids if "Entity" in proj.nodes else []

    def edges(rel: str) -> np.ndarray | None:
        return proj.edge_index(rel) if rel in proj.relationships else None

    ee_types = [t for t in schema.ENTITY_REL_TYPES if t in proj.relationships]
    ee_parts, ee_codes = [], []
    for code, t in enumerate(ee_types):
        ei = proj.edge_index(t)
        ee_parts.append(ei)
        ee_codes.append(np.full(ei.shape[1], code, dtype=np.int64))
    entity_entity = np.concatenate(ee_parts, axis=1) if ee_parts else None
    return GraphArrays(
        user_ids=proj.nodes["User"].ids, item_ids=items.ids, item_emb=item_emb,
        user_item=edges("INTERACTED"),
        item_feature=edges("HAS_FEATURE"), n_features=len(feature_ids), feature_names=feature_ids or None,
        item_entity=edges("SAME_AS"), n_entities=len(entity_ids), entity_labels=entity_labels,
        entity_entity=entity_entity,
        entity_entity_type=np.concatenate(ee_codes) if ee_codes else None,
        entity_rel_types=ee_types, item_item=edges("CO_OCCURS"))
