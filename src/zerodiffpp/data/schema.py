"""The one in-memory dataset schema every source produces (METHOD.md 1.1).

Conventions follow the xlsa17 files exactly so nothing is lost in translation:
``labels`` and every ``*_loc`` array are **1-based**; ``features`` is N x D (one row
per sample, i.e. the transpose of ``res101.mat``); ``class_embeddings`` is C x d (one
row per class, the transpose of ``att``).  Use :meth:`ZSLData.idx` for 0-based
indices.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..io import DataError

SPLITS = ("trainval", "test_seen", "test_unseen")


@dataclass
class ZSLData:
    name: str
    features: np.ndarray            # (N, D) float32; raw pixels for image sources
    labels: np.ndarray              # (N,) int64, 1-based class index
    class_embeddings: np.ndarray    # (C, d) float32, as stored in att (already normalised or not)
    trainval_loc: np.ndarray        # (n,) int64, 1-based rows of features
    test_seen_loc: np.ndarray
    test_unseen_loc: np.ndarray
    class_names: list[str]
    original_att: Optional[np.ndarray] = None   # (C, d) raw attributes, optional
    train_loc: Optional[np.ndarray] = None      # optional GBU validation split
    val_loc: Optional[np.ndarray] = None
    image_shape: Optional[tuple[int, ...]] = None  # (channels, H, W) when features are pixels
    source: str = ""                 # file or URL the data came from, for error messages
    extra: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ helpers
    @property
    def n_classes(self) -> int:
        return int(self.class_embeddings.shape[0])

    def loc(self, split: str) -> np.ndarray:
        if split not in SPLITS:
            raise KeyError(f"unknown split {split!r}; expected one of {SPLITS}")
        return getattr(self, f"{split}_loc")

    def idx(self, split: str) -> np.ndarray:
        """0-based row indices of ``split``."""
        return self.loc(split) - 1

    def seen_classes(self) -> np.ndarray:
        """0-based seen class ids (classes with trainval samples)."""
        return np.unique(self.labels[self.idx("trainval")] - 1)

    def unseen_classes(self) -> np.ndarray:
        """0-based unseen class ids (classes of test_unseen samples)."""
        return np.unique(self.labels[self.idx("test_unseen")] - 1)

    # ------------------------------------------------------------------ validation
    def validate(self) -> "ZSLData":
        """Raise :class:`DataError` naming the source, key and problem on any inconsistency."""
        default = self.source or self.name
        files = self.extra.get("key_files", {})   # key -> file it was read from (read_xlsa17)

        def at(key: str) -> str:
            return str(files.get(key, default))

        where = at("features")
        if self.features.ndim != 2:
            raise DataError(f"{where}: key 'features' must be 2-D (N x D), got shape {self.features.shape}")
        n = self.features.shape[0]
        if not np.issubdtype(self.features.dtype, np.number):
            raise DataError(f"{where}: key 'features' has non-numeric dtype {self.features.dtype}")
        if not np.all(np.isfinite(self.features)):
            bad = int(np.argwhere(~np.isfinite(self.features))[0, 0])
            raise DataError(f"{where}: key 'features' contains NaN/Inf (first at sample row {bad + 1})")
        if self.labels.shape != (n,):
            raise DataError(f"{at('labels')}: key 'labels' has shape {self.labels.shape}, expected ({n},) "
                            f"to match {n} feature rows")
        if self.class_embeddings.ndim != 2:
            raise DataError(f"{at('att')}: key 'att' must be 2-D, got shape {self.class_embeddings.shape}")
        if not np.all(np.isfinite(self.class_embeddings)):
            raise DataError(f"{at('att')}: key 'att' contains NaN/Inf")
        n_cls = self.n_classes
        if n and (self.labels.min() < 1 or self.labels.max() > n_cls):
            hint = " (labels look 0-based; xlsa17 labels are 1-based)" if self.labels.min() == 0 else ""
            raise DataError(f"{at('labels')}: key 'labels' has values in [{self.labels.min()}, "
                            f"{self.labels.max()}], expected 1..{n_cls} (columns of 'att'){hint}")
        for split in SPLITS:
            self._check_loc(f"{split}_loc", self.loc(split), n, at(f"{split}_loc"), required=True)
        for key in ("train_loc", "val_loc"):
            self._check_loc(key, getattr(self, key), n, at(key), required=False)
        seen = set(self.seen_classes().tolist())
        test_seen = set(np.unique(self.labels[self.idx("test_seen")] - 1).tolist())
        unseen = set(self.unseen_classes().tolist())
        overlap = seen & unseen
        if overlap:
            names = [self.class_names[c] if c < len(self.class_names) else str(c + 1) for c in sorted(overlap)[:5]]
            raise DataError(f"{at('test_unseen_loc')}: seen and unseen classes overlap ({len(overlap)} classes, "
                            f"e.g. {', '.join(names)}); trainval_loc and test_unseen_loc must cover "
                            "disjoint classes")
        if not test_seen <= seen:
            raise DataError(f"{at('test_seen_loc')}: key 'test_seen_loc' contains classes with no "
                            "trainval sample (every test_seen class must be a seen class)")
        if len(self.class_names) != n_cls:
            raise DataError(f"{at('allclasses_names')}: {len(self.class_names)} class names for "
                            f"{n_cls} classes")
        if self.original_att is not None and self.original_att.shape[0] != n_cls:
            raise DataError(f"{at('original_att')}: key 'original_att' has {self.original_att.shape[0]} classes, "
                            f"'att' has {n_cls}")
        return self

    @staticmethod
    def _check_loc(key: str, loc: Optional[np.ndarray], n: int, where: str, required: bool) -> None:
        if loc is None:
            if required:
                raise DataError(f"{where}: missing required key '{key}'")
            return
        if loc.ndim != 1:
            raise DataError(f"{where}: key '{key}' must be a vector, got shape {loc.shape}")
        if loc.size == 0:
            if required:
                raise DataError(f"{where}: key '{key}' is empty")
            return
        if loc.min() < 1 or loc.max() > n:
            hint = " (indices look 0-based; xlsa17 *_loc are 1-based)" if loc.min() == 0 else ""
            raise DataError(f"{where}: key '{key}' has indices in [{loc.min()}, {loc.max()}], "
                            f"expected 1..{n}{hint}")
        if np.unique(loc).size != loc.size:
            raise DataError(f"{where}: key '{key}' contains duplicate indices")


def as_index(arr, key: str, where: str) -> np.ndarray:
    """Flatten a MATLAB index/label array to int64, refusing non-integer values."""
    a = np.asarray(arr)
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not np.issubdtype(a.dtype, np.floating) or not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise DataError(f"{where}: key '{key}' must hold integers, got dtype {a.dtype}")
    return a.reshape(-1).astype(np.int64)
