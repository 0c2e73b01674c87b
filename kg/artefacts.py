"""What a build leaves under ``$KGREC_HOME`` besides the graph: the split and ``build.json``.

Readers (the recommender, persona benchmarks) import this small module, not the build
workflow. :func:`write_build_meta` is the only writer, called by :func:`kgrec.kg.build.build`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kgrec.errors import NotFoundError
from kgrec.settings import Settings

SPLIT_DIR = "split"
BUILD_META = "build.json"


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


def load_split(settings: Settings) -> Any:
    """The split saved by the last build (a :class:`kgrec.kg.preprocess.Split`)."""
    from kgrec.kg.preprocess import Split

    d = split_dir(settings)
    if not d.is_dir():
        raise NotFoundError(f"no build found under {settings.home}; run `kgrec build` first")
    return Split.load(d)
