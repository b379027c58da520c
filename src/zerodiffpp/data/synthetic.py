"""Deterministic synthetic ZSL data for fast tests and for validating the spuriousness metrics
(``data.dataset: synthetic``; docs/spuriousness.md "Validation").

Class embeddings a_y ~ U[0,1]^d; features x = W a_y + noise.  Two controlled knobs:

* ``spurious_strength`` (the *seen* knob): seen TRAINVAL samples additionally get
  ``strength * u_y`` (u_y a random unit direction per class): a shortcut that predicts the class
  in training but is absent from test_seen and test_unseen, so a model relying on it loses
  accuracy at test time (METHOD.md 6.2).
* ``unseen_shift`` (the *unseen* knob): every sample of an unseen class y additionally gets
  ``shift * h_y``, h_y a random unit direction per unseen class.  The factor h is zero on every
  seen class, so nothing learnt on seen classes (no attribute -> feature map, however good) can
  produce it: the seen->unseen transfer fails by ``shift``.

All random draws happen in a fixed order, and the unseen factor comes from its own stream, so
changing either knob changes nothing else (a knob at 0 gives the data of earlier versions).
:func:`class_model` exposes the true class distributions (an "oracle" generator samples them).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..config import SyntheticConfig
from .schema import ZSLData

TRAINVAL_FRACTION = 0.8
UNSEEN_FACTOR_STREAM = 1     # second seed word of the unseen-factor RNG (independent stream)


@dataclass(frozen=True)
class ClassModel:
    """The true (test-time) class-conditional distributions: x = W a_y + offset_y + noise * e,
    e ~ N(0, I).  ``offset_y`` = unseen_shift * h_y on unseen classes, 0 on seen classes; the
    seen-train nuisance is *not* part of it (it exists in the training sample only)."""

    att: np.ndarray          # (C, d) class embeddings
    W: np.ndarray            # (D, d)
    offset: np.ndarray       # (C, D)
    noise: float
    unseen: np.ndarray       # sorted 0-based unseen class ids

    def sample(self, classes, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``n`` fresh samples of each class in ``classes`` (float32 features, int64 ids)."""
        y = np.repeat(np.asarray(classes, dtype=np.int64), n)
        x = self.att[y] @ self.W.T + self.offset[y] + self.noise * rng.normal(
            size=(len(y), self.W.shape[0]))
        return x.astype(np.float32), y


def _draw(cfg: SyntheticConfig):
    rng = np.random.default_rng(cfg.seed)
    C, d, D = cfg.n_classes, cfg.attr_dim, cfg.feature_dim
    att = rng.uniform(0.0, 1.0, size=(C, d))
    W = rng.normal(0.0, 1.0 / np.sqrt(d), size=(D, d))
    spurious = rng.normal(size=(C, D))
    spurious /= np.linalg.norm(spurious, axis=1, keepdims=True)
    unseen = np.sort(rng.choice(C, size=cfg.n_unseen, replace=False))
    factor = np.random.default_rng([cfg.seed, UNSEEN_FACTOR_STREAM]).normal(size=(C, D))
    factor /= np.linalg.norm(factor, axis=1, keepdims=True)
    offset = np.zeros((C, D))
    offset[unseen] = cfg.unseen_shift * factor[unseen]
    return rng, ClassModel(att=att, W=W, offset=offset, noise=cfg.noise, unseen=unseen), spurious


def class_model(cfg: SyntheticConfig) -> ClassModel:
    """The true class distributions of :func:`make` with the same ``cfg``."""
    return _draw(cfg)[1]


def make(cfg: SyntheticConfig) -> ZSLData:
    rng, model, spurious = _draw(cfg)
    att, unseen = model.att, model.unseen
    C, D, n = cfg.n_classes, cfg.feature_dim, cfg.per_class
    labels0 = np.repeat(np.arange(C), n)
    feats = att[labels0] @ model.W.T + cfg.noise * rng.normal(size=(C * n, D))
    trainval, test_seen = [], []
    for c in range(C):
        if c in unseen:
            continue
        idx = rng.permutation(np.flatnonzero(labels0 == c))
        k = int(round(TRAINVAL_FRACTION * n))
        trainval.append(idx[:k])
        test_seen.append(idx[k:])
    trainval = np.sort(np.concatenate(trainval))
    feats[trainval] += cfg.spurious_strength * spurious[labels0[trainval]]
    feats += model.offset[labels0]                      # unseen knob (0 on seen classes)
    data = ZSLData(
        name="synthetic",
        features=feats.astype(np.float32),
        labels=labels0 + 1,
        class_embeddings=att.astype(np.float32),
        trainval_loc=trainval + 1,
        test_seen_loc=np.sort(np.concatenate(test_seen)) + 1,
        test_unseen_loc=np.flatnonzero(np.isin(labels0, unseen)) + 1,
        class_names=[f"class_{i + 1:02d}" for i in range(C)],
        original_att=att.astype(np.float32),
        source=(f"synthetic(seed={cfg.seed}, classes={C}, unseen={cfg.n_unseen}, per_class={n}, "
                f"D={D}, d={cfg.attr_dim}, noise={cfg.noise}, spurious={cfg.spurious_strength}, "
                f"unseen_shift={cfg.unseen_shift})"),
        extra={"embedding_norm_default": "none"},
    )
    return data.validate()
