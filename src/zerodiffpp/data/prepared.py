"""The training-ready view of a dataset: what the ``prepare`` stage writes and every
later stage (DRG, DFG, evaluation, spuriousness, baselines) reads.

Class ids here are **0-based** indices into the full class list (rows of
``class_emb``); features are MinMax-scaled with a scaler fitted on the seen training
samples actually used (after seen-fraction subsampling, METHOD.md 8 item 6).
Stored as one ``prepared.npz`` (no pickle) so loading is safe and fast.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from ..io import DataError, read_npz, write_npz


@dataclass
class PreparedData:
    train_x: np.ndarray        # (n_tr, Dx) float32, scaled; seen classes only
    train_c: np.ndarray        # (n_tr, Dc) float32, scaled SC representations
    train_y: np.ndarray        # (n_tr,) int64, 0-based class ids
    test_seen_x: np.ndarray
    test_seen_c: np.ndarray
    test_seen_y: np.ndarray
    test_unseen_x: np.ndarray
    test_unseen_c: np.ndarray
    test_unseen_y: np.ndarray
    class_emb: np.ndarray      # (C, d) float32, normalised as configured
    seen_classes: np.ndarray   # (S,) int64, 0-based, sorted
    unseen_classes: np.ndarray  # (U,) int64, 0-based, sorted
    train_subset: np.ndarray   # (n_tr,) int64, 1-based positions within trainval kept by subsampling

    @property
    def x_dim(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def c_dim(self) -> int:
        return int(self.train_c.shape[1])

    @property
    def attr_dim(self) -> int:
        return int(self.class_emb.shape[1])

    @property
    def n_classes(self) -> int:
        return int(self.class_emb.shape[0])

    def save(self, path: str | Path) -> None:
        write_npz(path, **{f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def load(cls, path: str | Path) -> "PreparedData":
        names = tuple(f.name for f in fields(cls))
        arrays = read_npz(path, required=names)
        data = cls(**{k: arrays[k] for k in names})
        data.check(str(path))
        return data

    def check(self, where: str) -> None:
        for split in ("train", "test_seen", "test_unseen"):
            x, c, y = (getattr(self, f"{split}_{k}") for k in "xcy")
            if not (len(x) == len(c) == len(y)):
                raise DataError(f"{where}: {split} x/c/y lengths differ ({len(x)}, {len(c)}, {len(y)})")
            if len(y) and (y.min() < 0 or y.max() >= self.n_classes):
                raise DataError(f"{where}: {split}_y out of range 0..{self.n_classes - 1}")
        if len(self.train_y) == 0:
            raise DataError(f"{where}: no training samples")
