"""Critic-free companions of the spuriousness metrics (METHOD.md 6.2 [PROPOSAL],
docs/spuriousness.md "Companions"): accuracy gaps of a classifier trained on generated features,
and the connectivity of generated unseen features to real test-unseen ones.

* :func:`macro_mean` - per-class mean, then mean over classes (6.2: "macro").
* :func:`per_class_accuracy`, :func:`acc_gap_seen`, :func:`acc_gap_unseen` - accuracy gaps.
* :func:`connectivity` - nearest-generated / nearest-other-real distance ratio.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch

from .. import classifier as clf
from .distances import pairwise

# fit(x, y) -> predict; predict(x) -> labels in the label space of y.
Predictor = Callable[[np.ndarray], np.ndarray]
FitFn = Callable[[np.ndarray, np.ndarray], Predictor]


def macro_mean(values: np.ndarray, y: np.ndarray, classes: Optional[np.ndarray] = None) -> float:
    """Mean of ``values`` within each class, then the mean over classes (METHOD.md 6.2).
    ``classes`` (default: those in y) must each have at least one sample."""
    values, y = np.asarray(values, dtype=np.float64), np.asarray(y)
    classes = np.unique(y) if classes is None else np.asarray(classes)
    if len(classes) == 0:
        raise ValueError("macro_mean: no classes")
    means = []
    for c in classes:
        mask = y == c
        if not mask.any():
            raise ValueError(f"macro_mean: class {int(c)} has no samples")
        means.append(values[mask].mean())
    return float(np.mean(means))


# --------------------------------------------------------------------------- accuracy gaps


def per_class_accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean over the classes present in y of (# correct / # samples) - METHOD.md 4.4."""
    return macro_mean((np.asarray(pred) == np.asarray(y)).astype(np.float64), y)


def acc_gap_seen(fit: FitFn, gen_x, gen_y, train_x, train_y, test_x, test_y) -> float:
    """A(f -> seen-train real) - A(f -> seen-test real), f fitted on generated seen only."""
    predict = fit(gen_x, gen_y)
    return (per_class_accuracy(predict(train_x), train_y)
            - per_class_accuracy(predict(test_x), test_y))


def half_split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a seeded random floor(n/2) indices for fitting and the rest held out."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    fit_idx, held_idx = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < 2:
            raise ValueError(f"half_split: class {int(c)} has {len(idx)} sample(s), need >= 2")
        idx = rng.permutation(idx)
        fit_idx.append(idx[:len(idx) // 2])
        held_idx.append(idx[len(idx) // 2:])
    return np.sort(np.concatenate(fit_idx)), np.sort(np.concatenate(held_idx))


def acc_gap_unseen(fit: FitFn, gen_x, gen_y, test_x, test_y, seed: int) -> float:
    """A(f -> held-out generated unseen) - A(f -> test-unseen real); f (over unseen classes
    only, ZSL) is fitted on one half of the generated unseen features per class."""
    gen_x, gen_y = np.asarray(gen_x), np.asarray(gen_y)
    fit_idx, held_idx = half_split(gen_y, seed)
    predict = fit(gen_x[fit_idx], gen_y[fit_idx])
    return (per_class_accuracy(predict(gen_x[held_idx]), gen_y[held_idx])
            - per_class_accuracy(predict(test_x), test_y))


# --------------------------------------------------------------------------- connectivity


def connectivity(real_x, real_y, gen_x, gen_y, classes: Optional[np.ndarray] = None) -> float:
    """Mean over classes of  median_r min_g ||r - g|| / median_r min_{r' != r} ||r - r'||,
    r over real test features of the class, g over its generated features (METHOD.md 6.2).
    1 ~ generated features are as close to real ones as real ones are to each other;
    >> 1 = disconnected.  Each class needs >= 2 real and >= 1 generated sample."""
    real_x, real_y = np.asarray(real_x), np.asarray(real_y)
    gen_x, gen_y = np.asarray(gen_x), np.asarray(gen_y)
    classes = np.unique(real_y) if classes is None else np.asarray(classes)
    ratios = []
    for c in classes:
        r, g = real_x[real_y == c], gen_x[gen_y == c]
        if len(r) < 2 or len(g) < 1:
            raise ValueError(f"connectivity: class {int(c)} has {len(r)} real and {len(g)} "
                             "generated samples (need >= 2 and >= 1)")
        to_gen = pairwise(r, g).min(axis=1)
        rr = pairwise(r, r)
        np.fill_diagonal(rr, np.inf)
        to_real = rr.min(axis=1)
        num, den = float(np.median(to_gen)), float(np.median(to_real))
        ratios.append(num / den if den > 0 else (math.inf if num > 0 else 1.0))
    return float(np.mean(ratios))


# --------------------------------------------------------------------------- classifier


def softmax_fit(*, epochs: int, lr: float, batch_size: int, seed: int,
                device: str | torch.device = "cpu") -> FitFn:
    """A :data:`FitFn` training the project's METHOD.md 4.3 softmax classifier
    (:func:`zerodiffpp.classifier.train_classifier`: fixed epochs, last epoch kept, seeded)
    over the classes present in the training labels; predictions are mapped back to them."""

    def fit(x: np.ndarray, y: np.ndarray) -> Predictor:
        classes, y_local = np.unique(np.asarray(y), return_inverse=True)
        dev = torch.device(device)
        model = clf.train_classifier(
            torch.as_tensor(np.asarray(x), dtype=torch.float32, device=dev),
            torch.as_tensor(y_local, dtype=torch.int64), len(classes), epochs=epochs, lr=lr,
            batch_size=batch_size, generator=torch.Generator().manual_seed(seed)).model

        def predict(xq: np.ndarray) -> np.ndarray:
            xq = torch.as_tensor(np.asarray(xq), dtype=torch.float32, device=dev)
            return classes[clf.predict(model, xq).cpu().numpy()]

        return predict

    return fit
