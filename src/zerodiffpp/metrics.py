"""ZSL / GZSL metrics (METHOD.md 4.4).

All accuracies are fractions in [0, 1] (the stages convert to percent).  Per-class
accuracy is averaged over the *target classes present in the test set*: a target class
without test samples is skipped instead of dividing by zero (METHOD.md 8 item 13).
Test samples whose true label is not a target class are ignored, as in the official
per-class loop.  Inputs may be numpy arrays, lists or torch tensors of class ids.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .io import DataError

TABLE_COLUMNS = ["class_id", "n_test", "n_correct", "accuracy"]


def _ids(a, name: str) -> np.ndarray:
    if hasattr(a, "detach"):  # torch tensor
        a = a.detach().cpu().numpy()
    a = np.asarray(a)
    if a.ndim != 1:
        raise DataError(f"{name}: expected a 1-d array of class ids, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise DataError(f"{name}: expected integer class ids, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def per_class_table(y_true, y_pred, classes) -> pd.DataFrame:
    """One row per target class with >= 1 test sample: class_id, n_test, n_correct, accuracy."""
    y_true, y_pred, classes = _ids(y_true, "y_true"), _ids(y_pred, "y_pred"), _ids(classes, "classes")
    if len(y_true) != len(y_pred):
        raise DataError(f"y_true and y_pred lengths differ ({len(y_true)} vs {len(y_pred)})")
    classes = np.unique(classes)
    if len(classes) == 0:
        raise DataError("no target classes given")
    # Position of each true label in `classes`; labels outside the targets are dropped.
    pos = np.minimum(np.searchsorted(classes, y_true), len(classes) - 1)
    is_target = classes[pos] == y_true
    pos = pos[is_target]
    n_test = np.bincount(pos, minlength=len(classes))
    n_correct = np.bincount(pos, weights=(y_pred[is_target] == y_true[is_target]),
                            minlength=len(classes)).astype(np.int64)
    keep = n_test > 0
    table = pd.DataFrame({
        "class_id": classes[keep],
        "n_test": n_test[keep].astype(np.int64),
        "n_correct": n_correct[keep],
    })
    table["accuracy"] = table["n_correct"] / table["n_test"]
    return table[TABLE_COLUMNS]


def mean_class_accuracy(y_true, y_pred, classes, name: str = "test set") -> float:
    """Macro mean of per-class accuracy over target classes present in ``y_true``."""
    table = per_class_table(y_true, y_pred, classes)
    if table.empty:
        raise DataError(f"{name}: no test sample belongs to any target class "
                        "(per-class accuracy undefined)")
    return float(table["accuracy"].mean())


def harmonic_mean(u: float, s: float) -> float:
    """H = 2US/(U+S); 0 when U + S = 0."""
    return 0.0 if u + s == 0 else float(2.0 * u * s / (u + s))


def zsl_t1(y_true, y_pred, unseen_classes) -> float:
    """ZSL top-1: mean per-class accuracy on test-unseen of a classifier over unseen classes."""
    return mean_class_accuracy(y_true, y_pred, unseen_classes, "test-unseen")


def gzsl_scores(seen_true, seen_pred, unseen_true, unseen_pred, seen_classes,
                unseen_classes) -> dict[str, float]:
    """GZSL U (unseen classes on test-unseen), S (seen classes on test-seen) and H."""
    u = mean_class_accuracy(unseen_true, unseen_pred, unseen_classes, "test-unseen")
    s = mean_class_accuracy(seen_true, seen_pred, seen_classes, "test-seen")
    return {"u": u, "s": s, "h": harmonic_mean(u, s)}
