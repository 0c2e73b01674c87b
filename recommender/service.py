"""Serving object: the evaluated kernel (:class:`~kgrec.recommender.fusion.Kernel`), saved to / loaded
from a directory.

Directory layout (:meth:`Recommender.save`)::

    config.json    format version, the three parts' hyper-parameters, the fusion plan
    items.json     the item vocabulary (ids of indices 1..n)
    sasrec.pt      SASRec state_dict
    session.pt     the session retriever's state_dict (no persona)
    persona.pt     the persona part's state_dict: the persona retriever, or SASRec with the persona
                   residual (``config.json`` says which, ``"kind": "sasrec_residual"``)

:meth:`Recommender.recommend` runs :meth:`Kernel.final_scores` on one example, the function the
evaluation's ``full_pipeline`` runs on every test batch, so what is served is what was measured.

``from_persona`` (in :meth:`Recommender.recommend`): an item is marked ``True`` iff it is in the
top-``k`` for the given persona **and not** in the top-``k`` of the same kernel for the same session
with no persona (the learned no-persona state of a user without a past). It is a counterfactual
on the list, not a claim about the score.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from kgrec.errors import ModelError
from kgrec.recommender.data import ItemVocab, pad_left

FORMAT_VERSION = 3
PART_FILES = {"sasrec": "sasrec.pt", "session": "session.pt", "persona": "persona.pt"}


class Recommender:
    def __init__(self, vocab: ItemVocab, parts: Mapping[str, object], plan):
        from kgrec.recommender.fusion import Kernel

        sizes = {name: m.num_items for name, m in parts.items()}
        if any(n != len(vocab) for n in sizes.values()):
            raise ModelError(f"vocabulary ({len(vocab)}) and models {sizes} disagree on the number of items")
        self.vocab, self.kernel = vocab, Kernel(parts, plan).eval()
        self.max_len = max(m.max_len for m in parts.values())

    @property
    def plan(self):
        return self.kernel.plan

    @property
    def persona_dim(self) -> int:
        return int(self.kernel.parts["persona"].persona_dim)

    # ------------------------------------------------------------------ inference
    def recommend(self, user_persona: np.ndarray | None, session_items: Sequence[str], k: int = 10,
                  exclude_seen: bool = False, known_items: Sequence[str] = ()) -> list[tuple[str, float, bool]]:
        """Top-``k`` ``(item_id, score, from_persona)``, best first.

        ``user_persona`` is the persona of the user's past (None or a zero row: no past, the
        learned no-persona state). ``score`` is the kernel's final score. An unknown id in
        ``session_items`` raises ``NotFoundError``. With ``exclude_seen`` the session items and
        ``known_items`` (the user's past items, unknown ids ignored) are not recommended.
        """
        import torch

        idx = self.vocab.encode(session_items)
        seq = torch.as_tensor(pad_left([idx], self.max_len))
        seen = None
        if exclude_seen:
            known = [self.vocab.index[i] for i in map(str, known_items) if i in self.vocab.index]
            seen = torch.as_tensor(np.unique(np.concatenate([idx, known]).astype(np.int64)) if len(idx) or known
                                   else np.zeros(1, np.int64)).view(1, -1)
        rows = [np.zeros(self.persona_dim, np.float32)]
        if user_persona is not None:
            v = np.asarray(user_persona, dtype=np.float32).reshape(-1)
            if v.shape[0] != self.persona_dim:
                raise ModelError(f"the persona has {v.shape[0]} dims but the recommender was trained on "
                                 f"{self.persona_dim}-d personas; retrain it (kgrec train recommender)")
            rows.insert(0, v)
        n = len(rows)
        with torch.inference_mode():
            final = self.kernel.final_scores(seq.expand(n, -1), torch.as_tensor(np.stack(rows)),
                                             np.full(n, len(idx)), None if seen is None else seen.expand(n, -1))
            kk = min(k, int(torch.isfinite(final[0]).sum()))
            vals, top = final[0].topk(kk)
            base = set(final[1].topk(kk).indices.tolist()) if n == 2 else None
        return [(self.vocab.ids[int(i)], float(s), bool(base is not None and int(i) not in base))
                for s, i in zip(vals.tolist(), top.tolist(), strict=True)]

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        import torch

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        cfg = {"format_version": FORMAT_VERSION, "plan": self.plan.to_dict(),
               **{name: m.config() for name, m in self.kernel.parts.items()}}
        (d / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
        self.vocab.save(d / "items.json")
        for name, file in PART_FILES.items():
            torch.save(self.kernel.parts[name].state_dict(), d / file)
        return d

    @classmethod
    def load(cls, directory: str | Path) -> Recommender:
        import torch

        from kgrec.recommender.fusion import Plan

        d = Path(directory)
        try:
            cfg = json.loads((d / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ModelError(f"cannot read recommender config in {d}: {e}") from e
        if cfg.get("format_version") != FORMAT_VERSION:
            raise ModelError(f"recommender in {d} has format {cfg.get('format_version')}, "
                             f"expected {FORMAT_VERSION}; retrain it")
        vocab = ItemVocab.load(d / "items.json")
        try:
            parts = {name: _build(name, cfg[name]) for name in PART_FILES}
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"recommender config in {d} is incompatible: {e}") from e
        for name, file in PART_FILES.items():
            try:
                parts[name].load_state_dict(torch.load(d / file, map_location="cpu", weights_only=True))
            except Exception as e:  # torch.load raises many unpickling error types on corrupt files
                raise ModelError(f"recommender weights {d / file} are missing, corrupt or incompatible: {e}") from e
        return cls(vocab, parts, Plan.from_dict(cfg["plan"]))


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
