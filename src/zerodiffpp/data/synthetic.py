"""Deterministic synthetic ZSL data for fast tests (``data.dataset: synthetic``).

Class embeddings a_y ~ U[0,1]^d; features x = W a_y + noise.  With ``spurious_strength`` > 0,
seen TRAINVAL samples additionally get ``strength * u_y`` (u_y a random unit direction per
class): a shortcut that predicts the class in training but is absent from test_seen and
test_unseen, so a model relying on it loses accuracy at test time (METHOD.md 6.2).
All random draws happen in a fixed order, so changing the strength changes nothing else.
"""
from __future__ import annotations

import numpy as np

from ..config import SyntheticConfig
from .schema import ZSLData

TRAINVAL_FRACTION = 0.8


def make(cfg: SyntheticConfig) -> ZSLData:
    rng = np.random.default_rng(cfg.seed)
    C, d, D, n = cfg.n_classes, cfg.attr_dim, cfg.feature_dim, cfg.per_class
    att = rng.uniform(0.0, 1.0, size=(C, d))
    W = rng.normal(0.0, 1.0 / np.sqrt(d), size=(D, d))
    spurious = rng.normal(size=(C, D))
    spurious /= np.linalg.norm(spurious, axis=1, keepdims=True)
    unseen = np.sort(rng.choice(C, size=cfg.n_unseen, replace=False))
    labels0 = np.repeat(np.arange(C), n)
    feats = att[labels0] @ W.T + cfg.noise * rng.normal(size=(C * n, D))
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
                f"D={D}, d={d}, noise={cfg.noise}, spurious={cfg.spurious_strength})"),
        extra={"embedding_norm_default": "none"},
    )
    return data.validate()
