"""The validation-class view of a prepared dataset (docs/protocol.md "Validation classes").

The seen classes are split into *train-classes* and *validation-classes*; the validation round
treats the validation-classes exactly as the final round treats the unseen classes:

    final round                       validation round (this view)
    seen classes                  ->  train-classes
    unseen classes                ->  validation-classes (their seen TRAINING samples)
    train samples                 ->  train-class samples minus a per-class holdout
    test_seen                     ->  that holdout
    test_unseen                   ->  every training sample of the validation-classes

Only the seen training samples of :class:`PreparedData` are read (after seen-fraction
subsampling, so a 10 % run validates on its 10 %): the test features and labels never enter,
so no setting chosen on this view can depend on them (tested).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..data.prepared import PreparedData
from ..data.schema import ZSLData
from ..io import DataError
from ..seeds import TAG_VAL_SPLIT, derived_seed


@dataclass(frozen=True)
class ClassSplit:
    train_classes: np.ndarray      # 0-based, sorted
    val_classes: np.ndarray        # 0-based, sorted
    source: str                    # "dataset" (train_loc/val_loc) or "seeded"

    def as_json(self) -> dict:
        return {"source": self.source, "train_classes": self.train_classes.tolist(),
                "val_classes": self.val_classes.tolist()}


def dataset_val_classes(labels: np.ndarray, train_loc: Optional[np.ndarray],
                        val_loc: Optional[np.ndarray], seen_classes: np.ndarray) -> Optional[np.ndarray]:
    """The dataset's own validation classes (0-based) when its ``train_loc`` / ``val_loc``
    (1-based rows, xlsa17) are class-disjoint and inside the seen classes; else None."""
    if train_loc is None or val_loc is None or len(train_loc) == 0 or len(val_loc) == 0:
        return None
    labels = np.asarray(labels)
    tr = np.unique(labels[np.asarray(train_loc) - 1] - 1)
    va = np.unique(labels[np.asarray(val_loc) - 1] - 1)
    seen = np.asarray(seen_classes)
    if np.intersect1d(tr, va).size or not np.isin(va, seen).all() or not np.isin(tr, seen).all():
        return None
    return va


def choose_classes(seen_classes: np.ndarray, fraction: float, seed: int,
                   dataset_classes: Optional[np.ndarray] = None) -> ClassSplit:
    """Validation classes: the dataset's own (restricted to the seen classes present) when
    given, else a seeded draw of ``max(2, round(fraction * S))`` seen classes.  At least two
    train-classes always remain (a GZSL task needs >= 2 classes on its seen side)."""
    seen = np.unique(np.asarray(seen_classes, np.int64))
    if len(seen) < 3:
        raise DataError(f"validation round: {len(seen)} seen classes; need >= 3 "
                        "(2 train-classes + 1 validation class); use eval.selection=fixed")
    if dataset_classes is not None:
        val = np.intersect1d(seen, dataset_classes)
        if 1 <= len(val) <= len(seen) - 2:
            return ClassSplit(np.setdiff1d(seen, val), val, "dataset")
    # >= 2 validation classes where possible: with one, ZSL is trivially 100 % and the
    # validation-class side of GZSL has nothing to confuse.
    n_val = int(min(len(seen) - 2, max(2, np.floor(fraction * len(seen) + 0.5))))
    rng = np.random.default_rng(derived_seed(seed, TAG_VAL_SPLIT))
    val = np.sort(rng.choice(seen, size=n_val, replace=False))
    return ClassSplit(np.setdiff1d(seen, val), val, "seeded")


def view_from_features(raw: ZSLData, x: np.ndarray, c: np.ndarray, main: PreparedData,
                       split: ClassSplit, holdout: float, seed: int) -> PreparedData:
    """The validation view built from the validation round's own features (extractors trained
    on the train-classes only): the seen training samples that ``main`` kept (same
    seen-fraction subset), split by :func:`validation_view`, then MinMax-scaled with a scaler
    fitted on the view's training samples only (METHOD.md 1.2 item 6, as the prepare stage)."""
    from ..preprocess import MinMaxScaler

    rows = raw.idx("trainval")[np.asarray(main.train_subset) - 1]
    if not np.array_equal(raw.labels[rows] - 1, main.train_y):
        raise DataError("validation split: the prepared training subset does not match data/raw "
                        "(rerun prepare)")
    unscaled = dataclasses.replace(main, train_x=np.asarray(x[rows], np.float32),
                                   train_c=np.asarray(c[rows], np.float32))
    view = validation_view(unscaled, split, holdout, seed)
    sx, sc = MinMaxScaler.fit(view.train_x), MinMaxScaler.fit(view.train_c)
    out = dataclasses.replace(view, **{f"{part}_{k}": scaler.transform(getattr(view, f"{part}_{k}"))
                                       for part in ("train", "test_seen", "test_unseen")
                                       for k, scaler in (("x", sx), ("c", sc))})
    out.check("validation view")
    return out


def validation_view(data: PreparedData, split: ClassSplit, holdout: float,
                    seed: int) -> PreparedData:
    """The :class:`PreparedData` of the validation round (module docstring); deterministic in
    ``seed``.  A train-class with one sample keeps it for training (no holdout)."""
    y = np.asarray(data.train_y)
    if not np.isin(split.val_classes, y).all() or not np.isin(split.train_classes, y).all():
        raise DataError("validation split: a class has no training sample")
    rng = np.random.default_rng(derived_seed(seed, TAG_VAL_SPLIT + 100))
    train_rows, held_rows = [], []
    for cls in split.train_classes:
        rows = np.flatnonzero(y == cls)
        n_held = int(np.floor(holdout * len(rows) + 0.5)) if len(rows) >= 2 else 0
        n_held = min(max(n_held, 1 if len(rows) >= 2 else 0), len(rows) - 1)
        perm = rng.permutation(rows)
        held_rows.append(perm[:n_held])
        train_rows.append(perm[n_held:])
    tr, ho = np.sort(np.concatenate(train_rows)), np.sort(np.concatenate(held_rows))
    va = np.flatnonzero(np.isin(y, split.val_classes))

    def part(rows):
        return data.train_x[rows], data.train_c[rows], y[rows]

    (tx, tc, ty), (sx, sc, sy), (ux, uc, uy) = part(tr), part(ho), part(va)
    view = PreparedData(tx, tc, ty, sx, sc, sy, ux, uc, uy, data.class_emb,
                        split.train_classes.astype(np.int64), split.val_classes.astype(np.int64),
                        np.asarray(data.train_subset)[tr])
    view.check("validation view")
    return view
