"""A small, defensive SPARQL client (SPARQLWrapper, JSON results).

* **Timeout** per query (``timeout_s``), **retries** with exponential backoff (tenacity) on
  transient failures only (refused/reset connections, timeouts, HTTP 5xx/429); a malformed
  query (HTTP 400) fails at once.
* **Circuit breaker**: after ``breaker_threshold`` consecutive failed queries the endpoint is
  considered down and later queries fail fast (no network), so a dead endpoint costs a few
  seconds, not ``batches × attempts × timeout``.
* **Rate limit**: at least ``min_interval_s`` between two queries sent (cache hits are free).
* **Disk cache**: one JSON file per query under ``cache_dir``, named by the sha256 of the
  normalised query (whitespace outside string literals collapsed) and of the *cache scope*: the
  endpoint URL by default, so answers from a local DBpedia subset are never reused against full
  DBpedia (or any other endpoint). A local Oxigraph passes the fingerprint of its data files as the
  scope instead of its random-port URL, so re-runs over the same files share answers. Failures are
  never cached.
* Counters in :class:`SparqlStats`: ``queries_sent``, ``cache_hits``, ``failures``.

Everything put into a query goes through :func:`escape_literal` (literals) or :func:`iri`
(IRIs, validated, never escaped into validity).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
import urllib.error
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from kgrec.errors import ConfigError, SparqlError
from kgrec.settings import DEFAULT_SPARQL_ENDPOINT, Settings
from kgrec.templates import fill

# --- escaping and validation ------------------------------------------------------------------

_ECHAR = {
    "\\": "\\\\", '"': '\\"', "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b",
    "\f": "\\f",
}
_LANG = re.compile(r"^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$")
#: Characters never allowed inside ``<...>`` (SPARQL IRIREF), plus control characters and space.
_BAD_IRI = re.compile(r'[<>"{}|^`\\\x00-\x20\x7f]')
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def escape_literal(s: str) -> str:
    """The body of a SPARQL 1.1 string literal (to go between double quotes) for ``s``.

    Uses the ECHAR escapes (``\\\\ \\" \\' \\n \\r \\t \\b \\f``); any other control
    character becomes ``\\uXXXX``. A ``u``/``U`` right after an (escaped) backslash is written
    as ``\\u0075``/``\\u0055``, so engines that decode ``\\u`` codepoint escapes before parsing
    (SPARQL 1.1 §19.2) and engines that do it in the lexer read the same string.
    """
    if not isinstance(s, str):
        raise ConfigError(f"SPARQL literal must be a string, got {type(s).__name__}")
    out: list[str] = []
    prev_backslash = False
    for ch in s:
        if prev_backslash and ch in "uU":
            out.append(f"\\u{ord(ch):04X}")
        elif ch in _ECHAR:
            out.append(_ECHAR[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
        prev_backslash = ch == "\\"
    return "".join(out)


def literal(s: str, lang: str | None = None) -> str:
    """A complete, escaped string literal (``"..."`` or ``"..."@lang``)."""
    if lang is not None and not _LANG.match(lang):
        raise ConfigError(f"invalid language tag {lang!r}")
    return f'"{escape_literal(s)}"' + (f"@{lang}" if lang else "")


def validate_iri(value: str) -> str:
    """``value`` if it is an absolute IRI that may go between ``<...>``; else :class:`ConfigError`."""
    if not isinstance(value, str) or not value or _BAD_IRI.search(value) or not _SCHEME.match(value):
        raise ConfigError(f"invalid IRI {value!r}")
    return value


def iri(value: str) -> str:
    """``<value>`` after :func:`validate_iri`."""
    return f"<{validate_iri(value)}>"


def normalise_query(query: str) -> str:
    """Collapse runs of whitespace outside string literals and IRIs (the cache key's input)."""
    out: list[str] = []
    i, n = 0, len(query)
    pending_space = False
    while i < n:
        ch = query[i]
        if ch in "\"'<":
            close = ">" if ch == "<" else ch
            j = i + 1
            while j < n and query[j] != close:
                if query[j] == "\\" and ch != "<":
                    j += 1
                elif ch == "<" and query[j] in " \n\t{}":  # a less-than operator, not an IRI
                    break
                j += 1
            if ch == "<" and (j >= n or query[j] != ">"):
                j = i  # not an IRI: emit the single character
            if pending_space and out:
                out.append(" ")
            pending_space = False
            out.append(query[i:j + 1])
            i = j + 1
            continue
        if ch.isspace():
            pending_space = True
        else:
            if pending_space and out:
                out.append(" ")
            pending_space = False
            out.append(ch)
        i += 1
    return "".join(out)


def query_key(query: str, scope: str = "") -> str:
    """The cache key of ``query`` sent to the endpoint (or data set) named by ``scope``."""
    return hashlib.sha256(f"{scope}\x00{normalise_query(query)}".encode()).hexdigest()


# --- templates --------------------------------------------------------------------------------

def template(name: str, **values: str) -> str:
    """``queries/NAME.rq`` with ``{{placeholders}}`` filled. Values must already be escaped
    literals / validated IRIs (built with :func:`literal` / :func:`iri`)."""
    path = resources.files(__package__).joinpath("queries", f"{name}.rq")
    if not path.is_file():
        raise ConfigError(f"no SPARQL template named {name!r}")
    text = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines()
                     if not line.lstrip().startswith("#"))
    return fill(text, values, f"SPARQL template {name!r}")


# --- client -----------------------------------------------------------------------------------


@dataclass
class SparqlStats:
    queries_sent: int = 0
    cache_hits: int = 0
    failures: int = 0


class _Transient(Exception):
    """A failure worth retrying."""


class SparqlClient:
    """SELECT queries against one endpoint; rows are ``{var: value}`` dicts (unbound vars absent)."""

    def __init__(self, endpoint: str, *, cache_dir: Path | None = None, timeout_s: float = 10.0,
                 attempts: int = 3, backoff_initial_s: float = 0.25, backoff_max_s: float = 2.0,
                 min_interval_s: float = 0.1, breaker_threshold: int = 3,
                 user_agent: str = "kgrec/0.1 (+https://github.com/kgrec)",
                 cache_scope: str | None = None) -> None:
        if not re.match(r"^https?://", endpoint or ""):
            raise ConfigError(f"SPARQL endpoint must be an http(s) URL, got {endpoint!r}")
        if attempts < 1 or timeout_s <= 0 or min_interval_s < 0:
            raise ConfigError("attempts must be ≥ 1, timeout_s > 0, min_interval_s ≥ 0")
        self.endpoint = endpoint
        self.cache_scope = cache_scope or endpoint
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.timeout_s = timeout_s
        self.attempts = attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.min_interval_s = min_interval_s
        self.breaker_threshold = breaker_threshold
        self.user_agent = user_agent
        self.stats = SparqlStats()
        self._lock = threading.Lock()
        self._last_sent = 0.0
        self._consecutive_failures = 0
        self.last_error: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, endpoint: str | None = None, **kw: Any) -> SparqlClient:
        kw.setdefault("timeout_s", settings.sparql_timeout_s)
        kw.setdefault("min_interval_s", 1.0 / settings.sparql_rate_limit_per_s)
        kw.setdefault("cache_dir", settings.cache_dir / "sparql")
        return cls(endpoint or settings.sparql_endpoint or DEFAULT_SPARQL_ENDPOINT, **kw)

    @property
    def circuit_open(self) -> bool:
        return self.breaker_threshold > 0 and self._consecutive_failures >= self.breaker_threshold

    # --- cache ----------------------------------------------------------------------------
    def _cache_path(self, query: str) -> Path | None:
        if self.cache_dir is None:
            return None
        key = query_key(query, self.cache_scope)
        return self.cache_dir / key[:2] / f"{key}.json"

    def _cache_get(self, path: Path | None) -> list[dict[str, str]] | None:
        if path is None or not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))["rows"]
        except (OSError, ValueError, KeyError):
            return None  # a corrupt entry is a miss

    def _cache_put(self, path: Path | None, query: str, rows: list[dict[str, str]]) -> None:
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"scope": self.cache_scope, "query": normalise_query(query), "rows": rows}), encoding="utf-8")
        tmp.replace(path)

    # --- network --------------------------------------------------------------------------
    def _throttle(self) -> None:
        with self._lock:
            wait = self._last_sent + self.min_interval_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_sent = time.monotonic()

    def _send_once(self, query: str) -> list[dict[str, str]]:
        from SPARQLWrapper import JSON, POST, SPARQLWrapper
        from SPARQLWrapper.SPARQLExceptions import (
            EndPointInternalError,
            EndPointNotFound,
            QueryBadFormed,
            SPARQLWrapperException,
        )

        self._throttle()
        self.stats.queries_sent += 1
        sw = SPARQLWrapper(self.endpoint, agent=self.user_agent)
        sw.setQuery(query)
        sw.setMethod(POST)
        sw.setReturnFormat(JSON)
        sw.setTimeout(max(1, int(self.timeout_s)))
        sw.timeout = self.timeout_s  # setTimeout() truncates to int (0.5 → 0 = no timeout at all)
        try:
            result = sw.queryAndConvert()
        except QueryBadFormed as e:
            raise SparqlError(f"{self.endpoint}: malformed query: {str(e)[:300]}") from e
        except (EndPointInternalError, EndPointNotFound) as e:
            raise _Transient(f"{self.endpoint}: {type(e).__name__}: {str(e)[:200]}") from e
        except urllib.error.HTTPError as e:
            if e.code >= 500 or e.code == 429:
                raise _Transient(f"{self.endpoint}: HTTP {e.code}") from e
            raise SparqlError(f"{self.endpoint}: HTTP {e.code}") from e
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            raise _Transient(f"{self.endpoint}: {type(e).__name__}: {e}") from e
        except SPARQLWrapperException as e:
            raise SparqlError(f"{self.endpoint}: {type(e).__name__}: {str(e)[:200]}") from e
        except ValueError as e:  # JSON decoding of a non-JSON answer
            raise _Transient(f"{self.endpoint}: unreadable answer: {e}") from e
        if not isinstance(result, dict) or "results" not in result:
            raise _Transient(f"{self.endpoint}: answer is not SPARQL JSON results")
        rows = []
        for b in result["results"].get("bindings", []):
            rows.append({k: v.get("value", "") for k, v in b.items()})
        return rows

    def select(self, query: str) -> list[dict[str, str]]:
        """Run a SELECT; cached answers are returned without network. Raises :class:`SparqlError`."""
        path = self._cache_path(query)
        cached = self._cache_get(path)
        if cached is not None:
            self.stats.cache_hits += 1
            return cached
        if self.circuit_open:
            self.stats.failures += 1
            raise SparqlError(f"{self.endpoint}: endpoint unavailable (circuit open after "
                              f"{self._consecutive_failures} failures; last: {self.last_error})")
        from tenacity import (
            RetryError,
            Retrying,
            retry_if_exception_type,
            stop_after_attempt,
            wait_exponential,
        )

        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.backoff_initial_s, max=self.backoff_max_s),
            retry=retry_if_exception_type(_Transient),
            reraise=False,
        )
        try:
            rows = retrying(self._send_once, query)
        except RetryError as e:
            inner = e.last_attempt.exception()
            self._fail(str(inner))
            raise SparqlError(f"{inner} (after {self.attempts} attempts)") from inner
        except SparqlError as e:
            self._fail(str(e))
            raise
        self._consecutive_failures = 0
        self._cache_put(path, query, rows)
        return rows

    def _fail(self, msg: str) -> None:
        self.stats.failures += 1
        self._consecutive_failures += 1
        self.last_error = msg
