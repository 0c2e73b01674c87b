"""The closed vocabularies that options choose from, as enums.

The CLI declares its options with these, so Typer validates a choice and lists the allowed
values in ``--help``; the domain code validates with the same enums (one list, not copies).
A :class:`~enum.StrEnum` member *is* its string, so library callers may pass plain strings.
This module imports nothing heavy: ``kgrec --help`` must stay instant.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from kgrec.errors import ConfigError

E = TypeVar("E", bound=StrEnum)


class DatasetKind(StrEnum):
    """Input layouts ``kgrec build --dataset`` reads (one loader each, :mod:`kgrec.kg.loaders`)."""

    movielens = "movielens"
    amazon = "amazon"
    recbole = "recbole"
    sasrec = "sasrec"
    kgat = "kgat"


class Encoder(StrEnum):
    """HDGI meta-path encoders: HDGI-C (GCN) and HDGI-A (GAT)."""

    gcn = "gcn"
    gat = "gat"


class Features(StrEnum):
    """HDGI user inputs: mean LLM item embedding, plus/or a collaborative SVD block."""

    mean = "mean"
    mean_cf = "mean+cf"
    cf = "cf"


class Projection(StrEnum):
    """2-D projections for ``kgrec personas plot``."""

    tsne = "tsne"
    pca = "pca"


class Protocol(StrEnum):
    """Evaluation protocols (:mod:`kgrec.recommender.protocols`): the paper's session task and
    time-ordered leave-one-out."""

    session = "session"
    loo = "loo"


class Device(StrEnum):
    cpu = "cpu"
    cuda = "cuda"


def choice(enum: type[E], value: object, what: str) -> E:
    """``value`` as a member of ``enum``, or a :class:`ConfigError` naming ``what`` and the choices."""
    try:
        return enum(str(value).strip().lower())
    except ValueError as e:
        allowed = ", ".join(m.value for m in enum)
        raise ConfigError(f"{what} must be one of {allowed} (got {value!r})") from e
