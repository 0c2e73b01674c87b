"""Serving object: persona retriever top-K + SASRec rerank, saved to / loaded from a directory.

Directory layout (:meth:`Recommender.save`)::

    config.json    hyper-parameters of both models, alpha, k, top-k backend, format version
    items.json     the item vocabulary (ids of indices 1..n)
    retriever.pt   PersonaRetriever state_dict (includes the frozen projected LLM table)
    sasrec.pt      SASRec state_dict (includes the LLM item buffer when LLM-initialised)

``from_persona`` (in :meth:`Recommender.recommend`): an item is marked ``True`` iff it
is among the retriever's top-``K`` candidates for the given persona **and not** among
the top-``K`` of the same retriever for the same session with the persona switched
off (zero vector, the value used for users without a persona during training).
I.e. the persona is what brought the item into the candidate pool. With no persona
or a ``fusion="none"`` retriever every flag is ``False``. It is a counterfactual on
candidate membership, not a claim about the final score.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kgrec.errors import ConfigError, ModelError
from kgrec.recommender.data import ItemVocab, pad_left

FORMAT_VERSION = 2


class Recommender:
    def __init__(self, vocab: ItemVocab, retriever, sasrec, *, alpha: float = 1.0, k: int = 100,
                 backend: str | None = None):
        from kgrec.recommender.retriever import DEFAULT_TOPK_BACKEND

        if len(vocab) != retriever.num_items or len(vocab) != sasrec.num_items:
            raise ModelError(f"vocabulary ({len(vocab)}) and models ({retriever.num_items}, "
                             f"{sasrec.num_items}) disagree on the number of items")
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {alpha}")
        self.vocab, self.retriever, self.sasrec = vocab, retriever, sasrec
        self.alpha, self.k = float(alpha), int(k)
        self.backend = backend or DEFAULT_TOPK_BACKEND
        self.max_len = max(retriever.max_len, sasrec.max_len)
        self._prepare()

    def _prepare(self) -> None:
        import torch

        self.retriever.eval()
        self.sasrec.eval()
        with torch.inference_mode():
            self._rtable = self.retriever.item_table().detach().clone()
            self._stable = self.sasrec.items.weight().detach().clone()
        self._index = None
        if self.backend == "faiss":
            from kgrec.recommender.retriever import build_faiss_index

            self._index = build_faiss_index(self._rtable)

    # ------------------------------------------------------------------ inference
    def recommend(self, user_persona: np.ndarray | None, session_items: Sequence[str], k: int = 10,
                  exclude_seen: bool = False, known_items: Sequence[str] = ()) -> list[tuple[str, float, bool]]:
        """Top-``k`` ``(item_id, score, from_persona)``, best first.

        ``score`` is the blended rerank score (``alpha * z(sasrec) + (1 - alpha) * z(retriever)``
        over the candidates). An unknown id in ``session_items`` raises ``NotFoundError``.
        With ``exclude_seen`` the session items and ``known_items`` (the user's past items,
        unknown ids ignored) are not recommended. An empty session is the session protocol's
        cold start: the persona alone makes the query.
        """
        import torch

        from kgrec.recommender.rerank import blend
        from kgrec.recommender.retriever import topk

        idx = self.vocab.encode(session_items)
        seq = torch.as_tensor(pad_left([idx], self.max_len))
        if exclude_seen:
            idx = np.unique(np.concatenate([idx, [self.vocab.index[i] for i in map(str, known_items)
                                                  if i in self.vocab.index]]).astype(np.int64))
        use_persona = user_persona is not None and self.retriever.fusion != "none"
        with torch.inference_mode():
            if self.retriever.fusion != "none":
                p = torch.zeros(2 if use_persona else 1, self.retriever.persona_dim)
                if use_persona:
                    v = np.asarray(user_persona, dtype=np.float32).reshape(-1)
                    if v.shape[0] != self.retriever.persona_dim:
                        raise ModelError(f"the persona has {v.shape[0]} dims but the recommender was "
                                         f"trained on {self.retriever.persona_dim}-d personas; retrain it "
                                         "(kgrec train recommender)")
                    p[0] = torch.from_numpy(v)
                q = self.retriever.query_vectors(seq.expand(len(p), -1), p, table=self._rtable)
            else:
                q = self.retriever.query_vectors(seq, None, table=self._rtable)
            kk = self.k + (len(idx) if exclude_seen else 0)
            rv, rc = topk(q, self._rtable, kk, self.backend, index=self._index)
            cand, rscore = rc[:1], rv[:1]
            if exclude_seen and len(idx):
                keep = ~torch.isin(cand[0], torch.as_tensor(idx))
                cand, rscore = cand[:, keep][:, :self.k], rscore[:, keep][:, :self.k]
            else:
                cand, rscore = cand[:, :self.k], rscore[:, :self.k]
            sscore = self.sasrec.score_candidates(seq[:, -self.sasrec.max_len:], cand, table=self._stable)
            final = blend(sscore, rscore, self.alpha)[0]
            order = torch.sort(final, descending=True, stable=True).indices[:k]
            base = None
            if use_persona:  # the no-persona pool, with the same exclusions and cut
                pool = rc[1].tolist()
                if exclude_seen:
                    seen = set(idx.tolist())
                    pool = [i for i in pool if i not in seen]
                base = set(pool[:self.k])
        out = []
        for j in order.tolist():
            item = int(cand[0, j])
            out.append((self.vocab.ids[item], float(final[j]), bool(base is not None and item not in base)))
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        import torch

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        cfg = {"format_version": FORMAT_VERSION, "alpha": self.alpha, "k": self.k, "backend": self.backend,
               "retriever": self.retriever.config(), "sasrec": self.sasrec.config()}
        (d / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
        self.vocab.save(d / "items.json")
        torch.save(self.retriever.state_dict(), d / "retriever.pt")
        torch.save(self.sasrec.state_dict(), d / "sasrec.pt")
        return d

    @classmethod
    def load(cls, directory: str | Path, backend: str | None = None) -> Recommender:
        import torch

        from kgrec.recommender.retriever import PersonaRetriever
        from kgrec.recommender.sasrec import SASRec

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
            rc = dict(cfg["retriever"])
            llm_dim = rc.pop("llm_dim")
            retriever = PersonaRetriever(item_emb=np.zeros((rc["num_items"], llm_dim), np.float32), **rc)
            sc = dict(cfg["sasrec"])
            init_dim = sc.pop("item_init_dim")
            init = None if init_dim is None else np.zeros((sc["num_items"], init_dim), np.float32)
            sasrec = SASRec(item_init=init, **sc)
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"recommender config in {d} is incompatible: {e}") from e
        for model, name in ((retriever, "retriever.pt"), (sasrec, "sasrec.pt")):
            try:
                state = torch.load(d / name, map_location="cpu", weights_only=True)
                model.load_state_dict(state)
            except Exception as e:  # torch.load raises many unpickling error types on corrupt files
                raise ModelError(f"recommender weights {d / name} are missing, corrupt or incompatible: {e}") from e
        return cls(vocab, retriever, sasrec, alpha=cfg["alpha"], k=cfg["k"], backend=backend or cfg["backend"])
