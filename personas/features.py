"""User input features for HDGI, and the same features for an anonymous session.

Two blocks, each scaled so that its mean row norm over the training users is 1 (neither
block drowns the other):

``mean``  the mean LLM embedding of the user's distinct training items (the paper's
          initialisation);
``cf``    a collaborative block from the training user–item edges of the graph: item factors
          ``V`` from a truncated SVD of the binary user–item matrix with rows scaled by
          ``1/sqrt(|items of u|)``; a user's block is ``sum_{i in I_u} V_i / sqrt(|I_u|)``,
          i.e. the user's SVD coordinates ``U S``.

The ``cf`` block is a fold-in: an anonymous session gets its block from its items with the
same formula, so `UserFeaturizer.sessions` on a training user's items reproduces that
user's row exactly. Only numpy and scikit-learn are used; the fitted state is saved with the
persona model (``features.npz``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kgrec.choices import Features, choice
from kgrec.errors import ConfigError, DataError, ModelError

from .data import GraphArrays


def _binary_user_items(arrays: GraphArrays):  # -> scipy.sparse.csr_matrix
    import scipy.sparse as sp

    src, dst = arrays.user_item
    m = sp.csr_matrix((np.ones(src.size, dtype=np.float64), (src, dst)), shape=(arrays.n_users, arrays.n_items))
    m.data[:] = 1.0  # duplicate edges (repeat interactions) count once
    return m


def _scaled_user_items(arrays: GraphArrays):  # -> scipy.sparse.csr_matrix
    """The binary user–item matrix with each row divided by ``sqrt(|items of u|)``."""
    import scipy.sparse as sp

    m = _binary_user_items(arrays)
    deg = np.asarray(m.sum(axis=1)).ravel()
    return (sp.diags(1.0 / np.sqrt(np.maximum(deg, 1.0))) @ m).tocsr()


def _mean_block(arrays: GraphArrays, items_of: list[np.ndarray] | None = None) -> np.ndarray:
    """Mean embedding over each user's distinct training items (or each given item set)."""
    emb = arrays.item_emb.astype(np.float64)
    if items_of is None:
        m = _binary_user_items(arrays)
        return (m @ emb) / np.maximum(np.asarray(m.sum(axis=1)).ravel(), 1.0)[:, None]
    return np.stack([emb[i].mean(axis=0) if i.size else np.zeros(arrays.emb_dim) for i in items_of])


@dataclass
class UserFeaturizer:
    """Fitted feature map (see the module doc). Build with :meth:`fit`."""

    kind: str
    mean_scale: float
    cf_scale: float
    item_factors: np.ndarray  # [n_items, cf_dim]; [n_items, 0] without a cf block
    emb_dim: int  # the item-embedding width the mean block was fitted on

    @property
    def has_mean(self) -> bool:
        return "mean" in self.kind.split("+")

    @property
    def dim(self) -> int:
        return (self.emb_dim if self.has_mean else 0) + self.item_factors.shape[1]

    @classmethod
    def fit(cls, arrays: GraphArrays, kind: str = "mean+cf", cf_dim: int = 64, seed: int = 0) -> UserFeaturizer:
        kind = str(choice(Features, kind, "features"))
        if cf_dim < 1 and "cf" in kind:
            raise ConfigError(f"cf_dim must be ≥ 1 for features {kind!r} (got {cf_dim})")
        if arrays.user_item.shape[1] == 0:
            raise DataError("no training user–item edges: cannot compute user features")
        factors = np.zeros((arrays.n_items, 0), dtype=np.float32)
        if "cf" in kind:
            from sklearn.utils.extmath import randomized_svd

            m = _scaled_user_items(arrays)
            k = min(int(cf_dim), min(m.shape) - 1)
            if k < 1:
                raise DataError(f"too few users or items ({m.shape}) for a collaborative block")
            _, _, vt = randomized_svd(m, n_components=k, n_iter=5, random_state=seed)
            factors = np.ascontiguousarray(vt.T, dtype=np.float32)
        f = cls(kind=kind, mean_scale=1.0, cf_scale=1.0, item_factors=factors, emb_dim=arrays.emb_dim)
        mean, cf = f._blocks(arrays)
        active = np.bincount(arrays.user_item[0], minlength=arrays.n_users) > 0
        if mean is not None:
            f.mean_scale = 1.0 / max(float(np.linalg.norm(mean[active], axis=1).mean()), 1e-12)
        if cf is not None:
            f.cf_scale = 1.0 / max(float(np.linalg.norm(cf[active], axis=1).mean()), 1e-12)
        return f

    def _blocks(self, arrays: GraphArrays, items_of: list[np.ndarray] | None = None
                ) -> tuple[np.ndarray | None, np.ndarray | None]:
        mean = _mean_block(arrays, items_of) if self.has_mean else None
        cf = None
        if self.item_factors.shape[1]:
            if items_of is None:
                cf = _scaled_user_items(arrays) @ self.item_factors.astype(np.float64)
            else:
                cf = np.stack([self.item_factors[i].astype(np.float64).sum(axis=0) / np.sqrt(max(i.size, 1))
                               for i in items_of])
        return mean, cf

    def _join(self, mean: np.ndarray | None, cf: np.ndarray | None) -> np.ndarray:
        parts = ([mean * self.mean_scale] if mean is not None else []) + ([cf * self.cf_scale] if cf is not None else [])
        return np.concatenate(parts, axis=1).astype(np.float32)

    def users(self, arrays: GraphArrays) -> np.ndarray:
        """``[n_users, dim]`` float32 features of the training users."""
        self._check(arrays)
        return self._join(*self._blocks(arrays))

    def sessions(self, arrays: GraphArrays, sessions: list[np.ndarray] | list[list[int]]) -> np.ndarray:
        """``[len(sessions), dim]`` features of anonymous sessions (item indices; repeats count once)."""
        self._check(arrays)
        items_of = []
        for s in sessions:
            idx = np.unique(np.asarray(s, dtype=np.int64))
            if idx.size and (idx.min() < 0 or idx.max() >= arrays.n_items):
                raise DataError(f"session item index out of range (0..{arrays.n_items - 1})")
            items_of.append(idx)
        return self._join(*self._blocks(arrays, items_of))

    def _check(self, arrays: GraphArrays) -> None:
        """The item count matters only to a ``cf`` block (its factors are per item of the arrays
        it was fitted on): a ``mean``-only featurizer serves any arrays of its embedding width,
        e.g. each server-side sample (:mod:`kgrec.personas.sampled`)."""
        stale = self.item_factors.shape[1] and self.item_factors.shape[0] != arrays.n_items
        if stale or (self.emb_dim and self.emb_dim != arrays.emb_dim):
            raise ModelError(f"user features were fitted on {self.item_factors.shape[0]} items × "
                             f"{self.emb_dim}-d embeddings, not {arrays.n_items} × {arrays.emb_dim}")

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        np.savez(Path(path), kind=np.asarray(self.kind), mean_scale=self.mean_scale, cf_scale=self.cf_scale,
                 item_factors=self.item_factors, emb_dim=self.emb_dim)

    @classmethod
    def load(cls, path: str | Path) -> UserFeaturizer:
        try:
            with np.load(Path(path), allow_pickle=False) as z:
                return cls(kind=str(z["kind"]), mean_scale=float(z["mean_scale"]), cf_scale=float(z["cf_scale"]),
                           item_factors=np.asarray(z["item_factors"], dtype=np.float32),
                           emb_dim=int(z["emb_dim"]))
        except (OSError, KeyError, ValueError) as e:
            raise ModelError(f"cannot read user features {path}: {e}") from e
