"""The saved persona model at inference: an anonymous session's inductive persona
(:func:`load_inductive`, raw) and the recommender's persona of a user's past
(:func:`load_past_encoder`, centred like ``User.persona``). Training is :mod:`kgrec.personas.workflow`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kgrec.errors import ModelError, NotFoundError
from kgrec.kg.store import GraphStore
from kgrec.progress import NullProgress
from kgrec.settings import Settings

from .data import GraphArrays
from .features import UserFeaturizer
from .workflow import ARRAYS_FILE, CENTRE_FILE, FEATURES_FILE, model_dir


def graph_personas_version(store: GraphStore) -> str | None:
    """The version of the personas written to the graph (None: none written)."""
    return next((r["version"] for r in store.run("personas_version", read_only=True)), None)


def _inductive_encoder(store: GraphStore, settings: Settings):
    """The saved persona model as an :class:`~.inductive.InductivePersonas` (checked against the
    graph's personas), the arrays' item id → index map, and the graph's persona version."""
    from .inductive import InductivePersonas
    from .metapaths import MetaPathSpec
    from .persistence import load_model

    path = model_dir(settings)
    model, config = load_model(path)
    if not (path / ARRAYS_FILE).is_file():
        how = ("it was trained on GDS samples (--sampled), which keep no whole-graph arrays; "
               if config.get("hparams", {}).get("sampled") else "")
        raise ModelError(f"{path}: missing {ARRAYS_FILE}: {how}retrain the personas without --sampled "
                         "for a past or session persona")
    written = graph_personas_version(store)
    if written is not None and not str(written).startswith(config["model_hash"]):
        raise ModelError(f"the graph's personas ({written}) were written by another model than "
                         f"{path} ({config['model_hash']}); retrain the personas")
    if not (path / FEATURES_FILE).is_file():
        raise ModelError(f"{path}: missing {FEATURES_FILE}; retrain the personas")
    arrays = GraphArrays.load(path / ARRAYS_FILE)
    featurizer = UserFeaturizer.load(path / FEATURES_FILE)
    specs = [MetaPathSpec.from_dict(d) for d in config["metapaths"]]
    encoder = InductivePersonas(model, arrays, specs, featurizer=featurizer,
                                seed=int(config["hparams"].get("seed", 0)))
    return encoder, {iid: i for i, iid in enumerate(arrays.item_ids)}, written


def load_inductive(store: GraphStore, settings: Settings) -> Callable[[list[str]], np.ndarray]:
    """A function mapping a session (item ids known to the trained model) to a persona vector.

    Raises :class:`ModelError` when no model is saved or the graph's personas come from
    another model; the returned function raises :class:`NotFoundError` for an unknown item.
    """
    encoder, pos, _ = _inductive_encoder(store, settings)

    def infer(item_ids: list[str]) -> np.ndarray:
        idx = []
        for iid in item_ids:
            if str(iid) not in pos:
                raise NotFoundError(f"item {iid!r} is not in the persona model's graph")
            idx.append(pos[str(iid)])
        return encoder.infer(np.asarray(idx, dtype=np.int64))

    return infer


@dataclass
class PastEncoder:
    """Personas of users' pasts, as the recommender pairs them with targets: ``encode(users, pasts)``
    gives ``[len(pasts), dim]`` rows, each the inductive persona of that list of item ids built
    without the user's own node (so from that past alone), minus the training users' mean persona
    when ``centre`` is set; an empty past is a zero row ("no persona"). Items the persona model's
    graph lacks are skipped."""

    encoder: Any
    positions: dict[str, int]
    version: str | None = None
    centre: np.ndarray | None = None

    @property
    def dim(self) -> int:
        return int(self.encoder.model.hidden_channels)

    def encode(self, users: Sequence[str], pasts: Sequence[Sequence[str]], progress=None) -> np.ndarray:
        idx = [np.asarray([self.positions[i] for i in map(str, p) if i in self.positions], dtype=np.int64)
               for p in pasts]
        progress = progress or NullProgress()
        with progress.stage("personas of the users' pasts", total=sum(1 for i in idx if len(i))) as advance:
            z = self.encoder.encode_pasts(users, idx, advance=advance)
        if self.centre is not None:
            has = np.abs(z).sum(1) > 0
            z[has] -= self.centre.astype(np.float32)
        return z


def load_past_encoder(store: GraphStore, settings: Settings, *, centre: bool = True) -> PastEncoder:
    """:class:`PastEncoder` over the saved persona model (:class:`ModelError` without one); ``centre``
    subtracts the training users' mean persona saved with this persona version."""
    encoder, pos, written = _inductive_encoder(store, settings)
    mean = None
    if centre:
        path = model_dir(settings) / CENTRE_FILE
        try:
            with np.load(path, allow_pickle=False) as z:
                if written is not None and str(z["version"]) != str(written):
                    raise ModelError(f"{path} belongs to personas {z['version']}, not {written}; retrain the personas")
                mean = np.asarray(z["mean"], dtype=np.float32)
        except (OSError, KeyError, ValueError) as e:
            raise ModelError(f"cannot read the persona centre {path}: {e}; retrain the personas") from e
    return PastEncoder(encoder, pos, None if written is None else str(written), mean)
