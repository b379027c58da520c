"""Calibrated stacking (Chao et al. 2016), docs/protocol.md "Calibration".

A GZSL classifier trained on real seen and synthetic unseen features over-scores the seen
classes.  Calibrated stacking subtracts one constant ``gamma`` from the seen classes' scores
(here: log-probabilities) before the argmax:

    y-hat(x) = argmax_y  log p(y | x) - gamma * [y is seen]

For one sample only three numbers matter: the best seen class ``ps``, the best unseen class
``pu`` and the margin ``m = max_seen log p - max_unseen log p``; the prediction is ``ps`` when
``m > gamma`` and ``pu`` otherwise.  So every gamma between two consecutive margins gives the
same predictions, and :func:`best_gamma` finds the gamma that maximises H on a labelled set
exactly, by scoring every such interval at once (no retraining, no grid of fits).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MAX_CANDIDATES = 1024


@dataclass
class Decisions:
    """Per-sample summary of a GZSL classifier's scores on a labelled set (original ids)."""

    best_seen: np.ndarray      # (n,) int64 class id of the best seen class
    best_unseen: np.ndarray    # (n,) int64 class id of the best unseen class
    margin: np.ndarray         # (n,) float64 max seen log p - max unseen log p
    y: np.ndarray              # (n,) int64 true class id

    def predict(self, gamma: float) -> np.ndarray:
        return np.where(self.margin > gamma, self.best_seen, self.best_unseen)


def seen_mask(classes: np.ndarray, seen_classes: np.ndarray) -> np.ndarray:
    return np.isin(np.asarray(classes), np.asarray(seen_classes))


def calibrate(log_probs: torch.Tensor, is_seen: np.ndarray, gamma: float) -> torch.Tensor:
    """Log-probabilities after calibrated stacking, renormalised (a log-softmax over the shifted
    scores), so that thresholds on p (DiffTTA / DiffGen pseudo-labels) see calibrated
    confidences.  ``gamma = 0`` returns the input unchanged."""
    if gamma == 0.0 or not is_seen.any():
        return log_probs
    shift = torch.as_tensor(is_seen, dtype=log_probs.dtype, device=log_probs.device) * gamma
    return torch.log_softmax(log_probs - shift, dim=1)


def decisions(log_probs: torch.Tensor, classes: np.ndarray, seen_classes: np.ndarray,
              y: np.ndarray) -> Decisions:
    """:class:`Decisions` of (n, K) log-probabilities whose columns are ``classes``."""
    classes = np.asarray(classes)
    mask = torch.as_tensor(seen_mask(classes, seen_classes), device=log_probs.device)
    if bool(mask.all()) or not bool(mask.any()):
        raise ValueError("calibration needs both seen and unseen columns")
    lp = log_probs.detach().double()
    neg = torch.tensor(float("-inf"), dtype=lp.dtype, device=lp.device)
    s_val, s_idx = torch.where(mask, lp, neg).max(dim=1)
    u_val, u_idx = torch.where(~mask, lp, neg).max(dim=1)
    return Decisions(classes[s_idx.cpu().numpy()], classes[u_idx.cpu().numpy()],
                     (s_val - u_val).cpu().numpy(), np.asarray(y, np.int64))


@dataclass
class CalibrationScore:
    gamma: float
    u: float      # fraction in [0, 1]
    s: float
    h: float


def _candidate_gammas(margin: np.ndarray) -> np.ndarray:
    """One gamma inside every interval between consecutive distinct margins (midpoints), plus
    one below and one above all of them, plus 0 (no calibration)."""
    m = np.unique(margin[np.isfinite(margin)])
    if len(m) == 0:
        return np.zeros(1)
    mids = (m[1:] + m[:-1]) / 2
    if len(mids) > MAX_CANDIDATES:   # bound the (n, G) matrix; quantiles keep the resolution
        mids = np.quantile(mids, np.linspace(0.0, 1.0, MAX_CANDIDATES))
    return np.unique(np.concatenate([[m[0] - 1.0, 0.0], mids, [m[-1] + 1.0]]))


def scores_over_gammas(dec: Decisions, seen_classes, unseen_classes,
                       gammas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """U, S, H (fractions, METHOD.md 4.4: per-class means over classes present) for every
    gamma (sorted ascending), vectorised.  A sample counts as right for the gammas below its
    margin when its best seen class is right and for the others when its best unseen class is;
    so per class the number right is a step function of gamma, built from a binary search and
    a cumulative sum in integers (no (n, G) matrix; the same floats as that matrix's mean)."""
    seen, unseen = np.asarray(seen_classes), np.asarray(unseen_classes)
    y = dec.y
    correct_seen = (dec.best_seen == y).astype(np.int64)      # right when predicted seen
    correct_unseen = (dec.best_unseen == y).astype(np.int64)  # right when predicted unseen
    # k_i = number of gammas below margin_i: sample i is predicted seen for gammas[:k_i]
    margin = np.nan_to_num(dec.margin, nan=-np.inf)           # NaN margin: never seen
    below = np.searchsorted(gammas, margin, side="left")

    def class_mean(target):
        present = np.asarray(target)[np.isin(np.asarray(target), y)]
        if len(present) == 0:
            return np.zeros(len(gammas))
        row = np.searchsorted(present, y)                     # present is sorted
        mine = (row < len(present)) & (present[np.minimum(row, len(present) - 1)] == y)
        row, k = row[mine], below[mine]
        delta = correct_seen[mine] - correct_unseen[mine]
        # right(gamma) = right if all predicted seen, minus the switches to unseen so far
        steps = np.zeros((len(present), len(gammas) + 1), np.int64)
        np.add.at(steps, (row, k), delta)
        right = np.bincount(row, correct_seen[mine], len(present))[:, None] \
            - np.cumsum(steps, axis=1)[:, :len(gammas)]
        n = np.bincount(row, minlength=len(present)).astype(np.float64)
        per_class = right.astype(np.float64) / n[:, None]                          # (C, G)
        return per_class.mean(axis=0)

    s, u = class_mean(seen), class_mean(unseen)
    total = u + s
    # metrics.harmonic_mean element-wise (same operations in the same order)
    h = np.where(total == 0, 0.0, 2.0 * u * s / np.where(total == 0, 1.0, total))
    return u, s, h


def best_gamma(dec: Decisions, seen_classes, unseen_classes) -> CalibrationScore:
    """The gamma with the highest H on ``dec``'s labelled set.  H is flat between margins and
    often over a run of intervals; among the best ones the median candidate is taken, so the
    choice sits inside the plateau rather than on its edge."""
    gammas = _candidate_gammas(dec.margin)
    u, s, h = scores_over_gammas(dec, seen_classes, unseen_classes, gammas)
    best = np.flatnonzero(h >= h.max() - 1e-9)
    i = int(best[len(best) // 2])
    return CalibrationScore(float(gammas[i]), float(u[i]), float(s[i]), float(h[i]))
