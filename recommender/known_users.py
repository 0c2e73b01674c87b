"""Every known user's past, the persona of it and the recommender's query for it, saved with the
recommender (``known_users.npz``) so that serving a known user reads no split, no persona model
and, with an empty session, no torch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np


def known_histories(split) -> dict[str, list[str]]:
    """user -> their train + valid item ids in time order: the past a known user is served with."""
    history: dict[str, list[str]] = {}
    for frame in (split.train, split.valid):  # train first, then valid, each in time order
        f = frame.sort_values(["user", *[c for c in ("ts", "order") if c in frame]], kind="stable")
        for u, items in f.groupby(f["user"].astype(str), sort=False)["item"]:
            history.setdefault(u, []).extend(items.astype(str).tolist())
    return history


class KnownUsers(Mapping):
    """Every known user's train + valid past, for one persona ``version``, saved at training so that
    serving a known user reads no split, no persona model and (with an empty session) no torch:

    * as a mapping, user -> their past item ids in time order (:func:`known_histories`);
    * :meth:`persona` -- the persona of that past (``encoder.encode``, as a test example gets it);
    * :meth:`query` -- the recommender's persona-part query for an empty session with that persona
      (:meth:`~kgrec.recommender.service.Recommender.persona_queries`).
    """

    def __init__(self, users, z, queries, ptr, items, item_ids: Sequence[str], version: str):
        self.users = [str(u) for u in users]
        self.index = {u: i for i, u in enumerate(self.users)}
        self.z, self.queries = np.asarray(z, dtype=np.float32), np.asarray(queries, dtype=np.float32)
        self.ptr, self.items, self.item_ids, self.version = np.asarray(ptr), np.asarray(items), item_ids, version

    @classmethod
    def build(cls, model, encoder, history: Mapping[str, Sequence[str]], progress=None) -> KnownUsers:
        users = sorted(history)
        z = np.asarray(encoder.encode(users, [history[u] for u in users], progress=progress), dtype=np.float32)
        idx = [model.vocab.encode(history[u]) for u in users]
        ptr = np.concatenate([[0], np.cumsum([len(i) for i in idx])]).astype(np.int64)
        items = np.concatenate(idx).astype(np.int32) if idx else np.zeros(0, np.int32)
        return cls(users, z, model.persona_queries(z), ptr, items, model.vocab.ids,
                   "" if encoder.version is None else str(encoder.version))

    def save(self, path: Path) -> None:
        np.savez(path, users=np.asarray(self.users, dtype=str), z=self.z, queries=self.queries, ptr=self.ptr,
                 items=self.items, version=np.asarray(self.version))

    @classmethod
    def load(cls, path: Path, version: str | None, item_ids: Sequence[str]) -> KnownUsers | None:
        """The saved table when it belongs to persona ``version`` (and this vocabulary), else None."""
        try:
            with np.load(path, allow_pickle=False) as f:
                if version is None or str(f["version"]) != str(version):
                    return None
                known = cls(f["users"].tolist(), f["z"], f["queries"], f["ptr"], f["items"], item_ids,
                            str(f["version"]))
        except (OSError, KeyError, ValueError):
            return None
        return known if known.items.size == 0 or int(known.items.max()) < len(item_ids) else None

    def __getitem__(self, user: str) -> list[str]:
        i = self.index[user]
        return [self.item_ids[j] for j in self.items[self.ptr[i]:self.ptr[i + 1]].tolist()]

    def __iter__(self):
        return iter(self.users)

    def __len__(self) -> int:
        return len(self.users)

    def __contains__(self, user) -> bool:
        return user in self.index

    def persona(self, user: str) -> np.ndarray | None:
        i = self.index.get(user)
        return None if i is None else self.z[i]

    def query(self, user: str) -> np.ndarray | None:
        i = self.index.get(user)
        return None if i is None else self.queries[i]
