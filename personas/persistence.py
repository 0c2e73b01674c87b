"""Saving and loading a trained :class:`~kgrec.personas.hdgi.HDGI`: ``model.pt`` (state dict),
``config.json`` (constructor arguments, training hyper-parameters, meta-paths, attention and
a hash of it all) and ``attention.json``. A model whose files do not match their hash, or of
another format version, is refused with a "retrain" :class:`~kgrec.errors.ModelError`.

Imports torch at import time: import lazily from the CLI.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from kgrec.errors import ConfigError, ModelError

from .hdgi import HDGI
from .metapaths import MetaPathSpec
from .train import resolve_device

FORMAT_VERSION = 2  # 2: root weights, path-count edge weights, saved user features
MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
ATTENTION_FILE = "attention.json"


def _state_bytes(state: dict[str, Tensor]) -> bytes:
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.digest()


def model_hash(model_or_state: HDGI | dict[str, Tensor], config: dict[str, Any]) -> str:
    """sha256 of the state-dict bytes + the config (without its hash), first 12 hex chars."""
    state = model_or_state.state_dict() if isinstance(model_or_state, torch.nn.Module) else model_or_state
    cfg = {k: v for k, v in config.items() if k != "model_hash"}
    h = hashlib.sha256(_state_bytes(state))
    h.update(json.dumps(cfg, sort_keys=True, default=str).encode())
    return h.hexdigest()[:12]


def save_model(
    path_dir: str | Path,
    model: HDGI,
    hparams: dict[str, Any],
    metapaths: Sequence[MetaPathSpec | str],
    attention: Sequence[float] | Tensor | np.ndarray | None = None,
) -> str:
    """Write ``model.pt`` (state dict), ``config.json`` (constructor args, training
    hyper-parameters, meta-paths, attention, hash) and ``attention.json``; returns the hash."""
    path = Path(path_dir)
    specs = [s if isinstance(s, MetaPathSpec) else MetaPathSpec(name=str(s)) for s in metapaths]
    if len(specs) != model.num_metapaths:
        raise ConfigError(f"model has {model.num_metapaths} meta-paths, {len(specs)} given")
    att = model.attention if attention is None else attention
    att_list = [float(a) for a in torch.as_tensor(att).detach().cpu().flatten().tolist()]
    if len(att_list) != model.num_metapaths:
        raise ConfigError("attention must have one weight per meta-path")
    config: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "model": model.init_args,
        "hparams": dict(hparams),
        "metapaths": [s.to_dict() for s in specs],
        "attention": {s.name: a for s, a in zip(specs, att_list, strict=True)},
    }
    try:
        json.dumps(config)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"hparams must be JSON-serialisable: {e}") from e
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    config["model_hash"] = model_hash(state, config)
    try:
        path.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(state, buf)
        (path / MODEL_FILE).write_bytes(buf.getvalue())
        (path / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (path / ATTENTION_FILE).write_text(json.dumps(config["attention"], indent=2) + "\n")
    except OSError as e:
        raise ModelError(f"cannot write model to {path}: {e}") from e
    return config["model_hash"]


def load_model(path_dir: str | Path, *, device: str | torch.device = "cpu") -> tuple[HDGI, dict[str, Any]]:
    """Rebuild the model from ``save_model``'s directory; the hash is checked (``ModelError``
    when files are missing, unreadable, of another format or do not match their hash)."""
    path = Path(path_dir)
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except FileNotFoundError as e:
        raise ModelError(f"no persona model at {path} (missing {CONFIG_FILE}); train one first") from e
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"cannot read {path / CONFIG_FILE}: {e}") from e
    if config.get("format") != FORMAT_VERSION:
        raise ModelError(f"{path}: model format {config.get('format')!r}, expected {FORMAT_VERSION}; retrain")
    try:
        model = HDGI(**config["model"])
        state = torch.load(path / MODEL_FILE, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except FileNotFoundError as e:
        raise ModelError(f"{path}: missing {MODEL_FILE}") from e
    except (KeyError, TypeError, RuntimeError, ConfigError, OSError) as e:
        raise ModelError(f"{path}: incompatible persona model: {e}") from e
    if model_hash(model, config) != config.get("model_hash"):
        raise ModelError(f"{path}: model files do not match their hash (stale or modified); retrain")
    model.to(resolve_device(device))
    model.eval()
    return model, config
