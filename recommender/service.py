"""Serving object: the evaluated kernel (:class:`~kgrec.recommender.fusion.Kernel`), saved to / loaded
from a directory.

Directory layout (:meth:`Recommender.save`)::

    config.json    format version, the catalogue's shape, the three parts' hyper-parameters, the fusion plan
    items.json     the item vocabulary (ids of indices 1..n)
    tables.npz     each part's item table and its query for an empty session without a persona
                   (what the parts' weights give; read without torch)
    sasrec.pt      SASRec state_dict
    session.pt     the session retriever's state_dict (no persona)
    persona.pt     the persona part's state_dict: the persona retriever, or SASRec with the persona
                   residual (``config.json`` says which, ``"kind": "sasrec_residual"``)

:meth:`Recommender.recommend` runs the kernel's :func:`~kgrec.recommender.fusion.score_parts` and
:func:`~kgrec.recommender.fusion.fuse` on one example, the functions the evaluation's
``full_pipeline`` runs on every test batch, so what is served is what was measured. Only the
parts' query vectors need torch: an empty session takes them from ``tables.npz`` (and, for a
known user, the persona part's query from :meth:`persona_queries`, computed once), so
:meth:`Recommender.load` does not load the weights, and torch is imported only when a session
has items or a persona has no cached query.

``from_persona`` (in :meth:`Recommender.recommend`): an item is marked ``True`` iff it is in the
top-``k`` for the given persona **and not** in the top-``k`` of the same kernel for the same session
with no persona (the learned no-persona state of a user without a past). It is a counterfactual
on the list, not a claim about the score.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from kgrec.errors import ModelError
from kgrec.recommender.data import ItemVocab, pad_left
from kgrec.recommender.fusion import PARTS, Kernel, fuse, score_parts, top_indices

FORMAT_VERSION = 4
PART_FILES = {"sasrec": "sasrec.pt", "session": "session.pt", "persona": "persona.pt"}
TABLES = "tables.npz"


class Recommender:
    """``parts``: the three trained encoders, or a function that loads them (:meth:`load`); then
    ``tables`` (each part's item table), ``empty`` (each part's empty-session, no-persona query) and
    ``shape`` (``max_len``, ``persona_dim``) say what the weights would."""

    def __init__(self, vocab: ItemVocab, parts: Mapping[str, object] | Callable[[], Mapping[str, object]], plan, *,
                 tables: Sequence[np.ndarray] | None = None, empty: Sequence[np.ndarray] | None = None,
                 shape: Mapping[str, int] | None = None):
        self.vocab, self.kernel = vocab, Kernel(parts, plan, tables).eval()
        if shape is None:  # in memory: read it off the parts
            shape = {"max_len": max(m.max_len for m in self.kernel.parts.values()),
                     "persona_dim": int(self.kernel.parts["persona"].persona_dim)}
        self.max_len, self.persona_dim = int(shape["max_len"]), int(shape["persona_dim"])
        rows = {name: int(t.shape[0]) for name, t in zip(PARTS, self.kernel.tables, strict=True)}
        if any(n != len(vocab) for n in rows.values()):
            raise ModelError(f"vocabulary ({len(vocab)}) and models {rows} disagree on the number of items")
        self._empty = None if empty is None else [np.asarray(q, dtype=np.float32) for q in empty]

    @property
    def plan(self):
        return self.kernel.plan

    @property
    def empty_queries(self) -> list[np.ndarray]:
        """Each part's [H] query for an empty session without a persona."""
        if self._empty is None:
            self._empty = [q[0] for q in self.kernel.queries(self._seqs([], 1), None)]
        return self._empty

    def persona_queries(self, personas: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """[U, H] the persona part's query for an empty session with each persona row (the cache a
        known user is served from: :meth:`recommend`'s ``persona_query``)."""
        import torch

        personas = np.asarray(personas, dtype=np.float32)
        out = [self.kernel.queries(self._seqs([], len(b)), torch.as_tensor(b))[PARTS.index("persona")]
               for b in np.array_split(personas, max(1, -(-len(personas) // batch_size)))]
        return np.concatenate(out) if out else np.zeros((0, len(self.empty_queries[-1])), np.float32)

    # ------------------------------------------------------------------ inference
    def recommend(self, user_persona: np.ndarray | None, session_items: Sequence[str], k: int = 10,
                  exclude_seen: bool = False, known_items: Sequence[str] = (),
                  persona_query: np.ndarray | None = None) -> list[tuple[str, float, bool]]:
        """Top-``k`` ``(item_id, score, from_persona)``, best first.

        ``user_persona`` is the persona of the user's past (None or a zero row: no past, the
        learned no-persona state). ``score`` is the kernel's final score. An unknown id in
        ``session_items`` raises ``NotFoundError``. With ``exclude_seen`` the session items and
        ``known_items`` (the user's past items, unknown ids ignored) are not recommended.
        ``persona_query``: the persona part's cached empty-session query for ``user_persona``
        (:meth:`persona_queries`); with an empty session it saves the encoders (and torch).
        """
        idx = self.vocab.encode(session_items)
        persona = self._checked(user_persona)
        queries = self._queries(idx, persona, persona_query)
        n = len(queries[0])
        seen = None
        if exclude_seen:
            known = [self.vocab.index[i] for i in map(str, known_items) if i in self.vocab.index]
            seen = np.unique(np.concatenate([idx, known]).astype(np.int64)) if len(idx) or known \
                else np.zeros(1, np.int64)
            seen = np.broadcast_to(seen, (n, len(seen)))
        final = self.final_scores(queries, np.full(n, len(idx)), seen)
        kk = min(k, int(np.isfinite(final[0]).sum()))
        top = top_indices(final[:1], kk)[0]
        base = set(top_indices(final[1:], kk)[0].tolist()) if n == 2 else None
        return [(self.vocab.ids[int(i)], float(final[0, i]), bool(base is not None and int(i) not in base))
                for i in top]

    def final_scores(self, queries: Sequence[np.ndarray], prefix_len: np.ndarray, seen: np.ndarray | None = None):
        """[B, N] the kernel's full-catalogue scores from each part's [B, H] ``queries`` (the
        evaluation's :func:`score_parts` then :func:`fuse`); ``seen`` [B, S] indices are -inf."""
        return fuse(self.plan, score_parts(queries, self.kernel.tables, seen), prefix_len)

    def _checked(self, user_persona) -> np.ndarray | None:
        if user_persona is None:
            return None
        v = np.asarray(user_persona, dtype=np.float32).reshape(-1)
        if v.shape[0] != self.persona_dim:
            raise ModelError(f"the persona has {v.shape[0]} dims but the recommender was trained on "
                             f"{self.persona_dim}-d personas; retrain it (kgrec train recommender)")
        return v

    def _seqs(self, idx, n: int):
        import torch

        return torch.as_tensor(pad_left([idx], self.max_len)).expand(n, -1)

    def _queries(self, idx, persona: np.ndarray | None, persona_query) -> list[np.ndarray]:
        """Each part's [n, H] queries: row 0 for ``persona``, row 1 (with a persona) without it."""
        if not len(idx) and (persona is None or persona_query is not None):
            empty = self.empty_queries
            if persona is None:
                return [q[None] for q in empty]
            return [np.stack([q, q]) for q in empty[:-1]] + \
                [np.stack([np.asarray(persona_query, dtype=np.float32).reshape(-1), empty[-1]])]
        import torch

        rows = [np.zeros(self.persona_dim, np.float32)] if persona is None else \
            [persona, np.zeros(self.persona_dim, np.float32)]
        return self.kernel.queries(self._seqs(idx, len(rows)), torch.as_tensor(np.stack(rows)))

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        import torch

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        cfg = {"format_version": FORMAT_VERSION, "shape": {"max_len": self.max_len, "persona_dim": self.persona_dim},
               "plan": self.plan.to_dict(), **{name: m.config() for name, m in self.kernel.parts.items()}}
        (d / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
        self.vocab.save(d / "items.json")
        for name, file in PART_FILES.items():
            torch.save(self.kernel.parts[name].state_dict(), d / file)
        np.savez(d / TABLES, **{f"table_{n}": t for n, t in zip(PARTS, self.kernel.tables, strict=True)},
                 **{f"empty_{n}": q for n, q in zip(PARTS, self.empty_queries, strict=True)})
        return d

    @classmethod
    def load(cls, directory: str | Path, before_weights: Callable[[], None] | None = None) -> Recommender:
        """The saved recommender; the weights are read (with torch) on the first call that needs
        them, or now by :meth:`load_weights`, after ``before_weights()`` (e.g. setting torch's
        thread count)."""
        from kgrec.recommender.fusion import Plan

        d = Path(directory)
        try:
            cfg = json.loads((d / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot read recommender config in {d}: {e}") from e
        if cfg.get("format_version") != FORMAT_VERSION:
            raise ModelError(f"recommender in {d} has format {cfg.get('format_version')}, "
                             f"expected {FORMAT_VERSION}; retrain it")
        missing = [f for f in (*PART_FILES.values(), TABLES) if not (d / f).is_file()]
        if missing:
            raise ModelError(f"recommender files {missing} are missing in {d}; retrain it")
        vocab = ItemVocab.load(d / "items.json")
        try:
            with np.load(d / TABLES, allow_pickle=False) as f:
                tables = [np.asarray(f[f"table_{n}"]) for n in PARTS]
                empty = [np.asarray(f[f"empty_{n}"]) for n in PARTS]
            return cls(vocab, lambda: _load_parts(d, cfg, before_weights), Plan.from_dict(cfg["plan"]), tables=tables,
                       empty=empty, shape=cfg["shape"])
        except (OSError, KeyError, TypeError, ValueError) as e:
            raise ModelError(f"recommender in {d} is incomplete or incompatible: {e}; retrain it") from e

    def load_weights(self) -> Recommender:
        """Read the parts' weights now (a server does this before it takes traffic)."""
        self.kernel.parts  # noqa: B018 - the property loads them
        return self


def _load_parts(d: Path, cfg: Mapping, before: Callable[[], None] | None = None) -> dict[str, object]:
    import torch

    if before is not None:
        before()
    try:
        parts = {name: _build(name, cfg[name]) for name in PART_FILES}
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"recommender config in {d} is incompatible: {e}") from e
    for name, file in PART_FILES.items():
        try:
            parts[name].load_state_dict(torch.load(d / file, map_location="cpu", weights_only=True))
        except Exception as e:  # torch.load raises many unpickling error types on corrupt files
            raise ModelError(f"recommender weights {d / file} are missing, corrupt or incompatible: {e}") from e
    return parts


def _build(name: str, config: Mapping):
    """An untrained part from its saved ``config()`` (weights are loaded after)."""
    from kgrec.recommender.retriever import PersonaRetriever
    from kgrec.recommender.sasrec import PersonaSASRec, SASRec

    c = dict(config)
    if c.pop("kind", None) == "sasrec_residual":
        return PersonaSASRec(_build("sasrec", c.pop("sasrec")), **c)
    if name == "sasrec":
        init_dim = c.pop("item_init_dim")
        return SASRec(item_init=None if init_dim is None else np.zeros((c["num_items"], init_dim), np.float32), **c)
    llm_dim = c.pop("llm_dim")
    return PersonaRetriever(item_emb=np.zeros((c["num_items"], llm_dim), np.float32), **c)
