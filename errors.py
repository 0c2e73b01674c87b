"""The kgrec exception tree.

Every error kgrec raises on purpose is a :class:`KgrecError`. The CLI maps each
subclass to an exit code and prints a one-line message; library users catch the
base class. Wrap lower-level exceptions with ``raise ... from e``.
"""

from __future__ import annotations


class KgrecError(Exception):
    """Base class for every kgrec error."""

    exit_code = 1


class ConfigError(KgrecError):
    """A setting, parameter or option is invalid."""

    exit_code = 2


class DataError(KgrecError):
    """Input data is missing or malformed (the message names file and line)."""

    exit_code = 3


class StoreError(KgrecError):
    """The graph store rejected a query or could not be used."""

    exit_code = 4


class StoreUnavailable(StoreError):
    """The graph store cannot be reached (the message names the URI and how to start it)."""

    exit_code = 5


class SparqlError(KgrecError):
    """The SPARQL endpoint failed (used internally; builds never abort on it)."""

    exit_code = 6


class ModelError(KgrecError):
    """A model artefact is missing, stale or incompatible."""

    exit_code = 7


class NotFoundError(KgrecError):
    """A user, item or artefact named by the caller does not exist."""

    exit_code = 8
