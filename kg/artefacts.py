"""What a build leaves under ``$KGREC_HOME`` besides the graph: the split, ``build.json`` and
the item embeddings it wrote into ``Item.emb``.

Readers (personas, the recommender, benchmarks) import this small module, not the build
workflow; only :func:`kgrec.kg.build.build` writes. The embeddings file is a copy of what
the build wrote to the graph, so that training stages read one float32 array instead of
streaming every vector back out of the database; a build without embeddings removes it, and
readers without it (a graph built from another home) stream ``Item.emb`` from the store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from kgrec.errors import NotFoundError
from kgrec.settings import Settings

SPLIT_DIR = "split"
BUILD_META = "build.json"
ITEM_EMBEDDINGS = "item_emb.npz"


def split_dir(settings: Settings) -> Path:
    return settings.home / SPLIT_DIR


def read_build_meta(settings: Settings) -> dict[str, Any] | None:
    """``build.json`` of the last build (dataset, data, split fingerprint, counts), or None."""
    path = settings.home / BUILD_META
    return json.loads(path.read_text()) if path.is_file() else None


def write_build_meta(settings: Settings, meta: dict[str, Any]) -> Path:
    settings.home.mkdir(parents=True, exist_ok=True)
    path = settings.home / BUILD_META
    path.write_text(json.dumps(meta, indent=2))
    return path


def save_split(settings: Settings, split: Any) -> Path:
    d = split_dir(settings)
    split.save(d)
    return d


def save_item_embeddings(settings: Settings, ids: list[str], vectors: np.ndarray, fingerprint: str) -> Path:
    path = split_dir(settings) / ITEM_EMBEDDINGS
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, ids=np.asarray(ids, dtype=str), vectors=np.asarray(vectors, dtype=np.float32),
             fingerprint=np.asarray(fingerprint))
    return path


def drop_item_embeddings(settings: Settings) -> None:
    (split_dir(settings) / ITEM_EMBEDDINGS).unlink(missing_ok=True)


def load_item_embeddings(settings: Settings) -> tuple[list[str], np.ndarray] | None:
    """``(item ids, [n, d] float32)`` as the last build wrote them to ``Item.emb``, or None when
    that build wrote none or the file belongs to another split."""
    path = split_dir(settings) / ITEM_EMBEDDINGS
    meta = read_build_meta(settings)
    if not path.is_file() or meta is None:
        return None
    with np.load(path, allow_pickle=False) as z:
        if str(z["fingerprint"]) != meta.get("fingerprint"):
            return None
        return [str(i) for i in z["ids"]], z["vectors"].astype(np.float32, copy=False)


def load_split(settings: Settings) -> Any:
    """The split saved by the last build (a :class:`kgrec.kg.preprocess.Split`)."""
    from kgrec.kg.preprocess import Split

    d = split_dir(settings)
    if not d.is_dir():
        raise NotFoundError(f"no build found under {settings.home}; run `kgrec build` first")
    return Split.load(d)
