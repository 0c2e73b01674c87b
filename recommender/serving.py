"""What ``kgrec serve`` calls: a loaded snapshot of everything a request needs, hot reload, and
a batched write-back of ``RECOMMENDED`` edges off the request path.

* :class:`Snapshot` — the recommender and the persona model's past encoder
  (:func:`~kgrec.recommender.workflow.load_context`; a known user's persona is that of their
  past, computed once and cached), every user id and item title (one stream each: no database
  round trip per request), the persona groups, and the versions and fingerprints ``/health``
  reports.
* :class:`Service` — the current snapshot behind one reference. :meth:`Service.reload` builds a new
  snapshot beside the old one and swaps the reference, so requests in flight finish on the old one
  and none is dropped. With several worker processes, a reload touches ``$KGREC_HOME/serve/reload``
  and every worker's watcher reloads within ``watch_s``.
* :class:`WriteBack` — a thread that drains queued recommendation lists in batches (one
  ``UNWIND`` clear + one upsert per batch).

Recommending itself is :func:`kgrec.recommender.workflow.recommend`, the same function the CLI
calls.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kgrec.errors import NotFoundError, StoreUnavailable
from kgrec.recommender import workflow as W

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    context: W.Context
    groups: list[dict[str, Any]]
    versions: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def group(self, group_id: str) -> dict[str, Any]:
        for g in self.groups:
            if str(g.get("persona")) == group_id:
                return g
        raise NotFoundError(f"unknown persona group {group_id!r}")


def load_snapshot(store, settings, generation: int = 0) -> Snapshot:
    """Everything a request needs, read once. Raises :class:`ModelError` without a recommender."""
    from kgrec.personas.plot import persona_table

    t0 = time.perf_counter()
    ctx = W.load_context(store, settings).snapshot(store)
    meta = ctx.meta
    versions = {
        "generation": generation,
        "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_seconds": round(time.perf_counter() - t0, 2),
        "recommender": {k: meta.get(k) for k in ("fingerprint", "persona_version", "fusion", "trained_at",
                                                  "n_items")},
        "persona_model": _persona_model_hash(settings) if ctx.encoder is not None else None,
        "users": len(ctx.users or ()),
        "items": len(ctx.titles or {}),
    }
    snapshot = Snapshot(ctx, persona_table(store), versions, list(ctx.notes))
    _warm_up(snapshot, store, settings)
    return snapshot


def _warm_up(snapshot: Snapshot, store, settings) -> None:
    """One known-user and one anonymous request before the snapshot serves: lazy initialisation
    (first-call kernels, code generation) is paid here, not by the first clients (measured: the
    first seconds of a load run at 10 clients had a p95 of 12 s without it)."""
    users = sorted(snapshot.context.history)[:1]
    items = [i for i in snapshot.context.model.vocab.ids[1:4]]
    t0 = time.perf_counter()
    try:
        if users:
            recommend(snapshot, store, settings, user=users[0], session=[], k=10, exclude_seen=False)
        if items:
            recommend(snapshot, store, settings, user=None, session=items, k=10, exclude_seen=False)
    except NotFoundError as e:  # an item of the recommender unknown to the persona model: serve anyway
        log.warning("warm-up request failed: %s", e)
    snapshot.versions["warm_up_seconds"] = round(time.perf_counter() - t0, 2)


def _persona_model_hash(settings) -> str | None:
    import json

    from kgrec.personas.workflow import model_dir

    try:
        return json.loads((model_dir(settings) / "config.json").read_text()).get("model_hash")
    except (OSError, ValueError):
        return None


def recommend(snapshot: Snapshot, store, settings, *, user: str | None, session: Sequence[str], k: int,
              exclude_seen: bool) -> W.RecList:
    """One request on ``snapshot`` (no database round trip; write-back is the caller's)."""
    return W.recommend(store, settings, user=user, session=session, k=k, exclude_seen=exclude_seen,
                       context=snapshot.context)


class Service:
    """The current :class:`Snapshot`, reloadable while requests run."""

    def __init__(self, store, settings, *, watch_s: float = 1.0) -> None:
        self.store, self.settings = store, settings
        self._reload_lock = threading.Lock()
        self._signal = Path(settings.home) / "serve" / "reload"
        self._seen = self._signal_mtime()
        self.generation = 0
        self.snapshot = load_snapshot(store, settings, self.generation)
        self._stop = threading.Event()
        self._watcher = None
        if watch_s > 0:
            self._watcher = threading.Thread(target=self._watch, args=(watch_s,), daemon=True,
                                             name="kgrec-reload-watch")
            self._watcher.start()

    def _signal_mtime(self) -> int:
        try:
            return self._signal.stat().st_mtime_ns
        except OSError:
            return 0

    def reload(self, *, broadcast: bool = True) -> Snapshot:
        """Load a new snapshot and swap it in (one reload at a time; requests keep running)."""
        with self._reload_lock:
            fresh = load_snapshot(self.store, self.settings, self.generation + 1)
            self.generation += 1
            self.snapshot = fresh  # one reference assignment: a request sees the old or the new one
            if broadcast:
                self._signal.parent.mkdir(parents=True, exist_ok=True)
                self._signal.write_text(f"{os.getpid()} {time.time()}\n")
            self._seen = self._signal_mtime()
            return fresh

    def _watch(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            mtime = self._signal_mtime()
            if mtime != self._seen:
                try:
                    self.reload(broadcast=False)
                    log.info("reloaded on a signal from another worker (generation %d)", self.generation)
                except Exception:  # keep serving the old snapshot; /health shows the generation
                    log.exception("reload requested by another worker failed")
                    self._seen = mtime

    def close(self) -> None:
        self._stop.set()


class WriteBack:
    """Batched ``RECOMMENDED`` write-back on a background thread."""

    def __init__(self, store, *, max_batch: int = 500, flush_s: float = 0.5,
                 on_done: Callable[[int, bool], None] | None = None) -> None:
        self.store, self.max_batch, self.flush_s = store, max_batch, flush_s
        self.on_done = on_done or (lambda n, ok: None)
        self._q: queue.Queue[tuple[str, str, list[W.Rec]] | None] = queue.Queue(maxsize=10_000)
        self._thread = threading.Thread(target=self._run, daemon=True, name="kgrec-writeback")
        self._thread.start()

    def submit(self, user: str, run_id: str, recs: Sequence[W.Rec]) -> None:
        try:
            self._q.put_nowait((user, run_id, list(recs)))
        except queue.Full as e:
            raise StoreUnavailable("the write-back queue is full; retry later or without write") from e

    @property
    def pending(self) -> int:
        return self._q.qsize()

    def _run(self) -> None:
        done = False
        while not done:
            batch: dict[tuple[str, str], list[W.Rec]] = {}
            deadline = None
            while len(batch) < self.max_batch:
                timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    item = self._q.get(timeout=timeout)
                except queue.Empty:
                    break
                if item is None:
                    done = True
                    break
                batch[(item[0], item[1])] = item[2]  # a repeated (user, run) keeps the last list
                deadline = deadline or time.monotonic() + self.flush_s
            if batch:
                self._write(batch)

    def _write(self, batch: dict[tuple[str, str], list[W.Rec]]) -> None:
        try:
            self.store.run("recommended_clear_many", {"pairs": [{"user": u, "run": r} for u, r in batch]})
            self.store.upsert_relationships("RECOMMENDED", (
                {"src": u, "dst": rec.item, "props": {"rank": rec.rank, "score": rec.score, "run": r}}
                for (u, r), recs in batch.items() for rec in recs))
            self.on_done(len(batch), True)
        except Exception:  # a failed batch is logged and counted; serving goes on
            log.exception("write-back of %d recommendation lists failed", len(batch))
            self.on_done(len(batch), False)

    def close(self, timeout_s: float = 30.0) -> None:
        """Write what is queued, then stop."""
        self._q.put(None)
        self._thread.join(timeout_s)
