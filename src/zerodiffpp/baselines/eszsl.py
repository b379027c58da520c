"""ESZSL, a closed-form zero-shot baseline: B. Romera-Paredes and P. H. S. Torr, "An
embarrassingly simple approach to zero-shot learning", ICML 2015 (PMLR 37:2152-2161).

The paper's notation (features as columns): X in R^{d x m} the m seen training features,
Y in {-1, +1}^{m x z} their ground truth over the z seen classes (+1 at the true class, -1
elsewhere), S in R^{a x z} the seen classes' attribute vectors, V in R^{d x a} the learnt map.
A class is scored by x^T V s; V minimises the square loss with the paper's regulariser

    ||X^T V S - Y||_F^2 + gamma ||V S||_F^2 + lambda ||X^T V||_F^2 + beta ||V||_F^2 .

With beta = gamma * lambda the normal equations factor,
(X X^T + gamma I) V (S S^T + lambda I) = X Y S^T, so

    V = (X X^T + gamma I)^{-1} X Y S^T (S S^T + lambda I)^{-1}.

Here, as everywhere in this repository, samples are rows: ``x`` (n x d) is X^T, so
V = (x^T x + gamma I)^{-1} x^T Y S^T (S S^T + lambda I)^{-1}, and the scores of any class set
K are ``x V S_K`` (n x |K|), S_K the attribute vectors of K as columns (rows of
``PreparedData.class_emb``).  Computed in float64 with linear solves, never an explicit
inverse; the two Gram matrices do not depend on (gamma, lambda), so a whole grid costs one
d x d solve per gamma and one a x a solve per pair (:func:`fit_grid`).

Protocols (docs/protocol.md): ZSL = argmax over the unseen classes; GZSL = argmax over seen and
unseen after calibrated stacking, i.e. ``protocol.calibration`` applied to these scores in place
of log-probabilities (the regression targets are +-1, so the scores, and with them the offset,
have the same scale in the validation view and the final round).  The offset is chosen on the
validation view by :func:`score_view` with ``calibration=None`` and then applied as it is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import numpy as np
import torch

from .. import metrics
from ..data.prepared import PreparedData
from ..io import DataError
from ..protocol.calibration import best_gamma, decisions

DTYPE = torch.float64


def _finite_matrix(a, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a), dtype=DTYPE)
    if t.ndim != 2:
        raise DataError(f"ESZSL: {name} must be a 2-d array, got shape {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()):
        raise DataError(f"ESZSL: {name} contains NaN or infinite values")
    return t


def _class_ids(classes, n_classes: int, name: str) -> np.ndarray:
    ids = np.unique(np.asarray(classes, dtype=np.int64))
    if len(ids) == 0:
        raise DataError(f"ESZSL: no {name}")
    if ids[0] < 0 or ids[-1] >= n_classes:
        raise DataError(f"ESZSL: {name} {ids.tolist()[:10]} outside 0..{n_classes - 1} "
                        "(rows of the class embedding)")
    return ids


def sign_indicator(y, classes: np.ndarray) -> torch.Tensor:
    """The paper's Y: (n, len(classes)), +1 where ``y`` is that column's class, -1 elsewhere.
    DataError for a label outside ``classes`` (a training sample of no seen class)."""
    y = np.asarray(y, dtype=np.int64)
    pos = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
    bad = classes[pos] != y
    if bad.any():
        raise DataError(f"ESZSL: training label(s) {sorted(set(y[bad].tolist()))[:10]} are not "
                        "seen classes")
    out = -torch.ones(len(y), len(classes), dtype=DTYPE)
    out[torch.arange(len(y)), torch.from_numpy(pos)] = 1.0
    return out


@dataclass(frozen=True)
class ESZSL:
    """A fitted map V (d x a) and the regularisers it was fitted with."""

    v: torch.Tensor
    gamma: float
    lam: float

    def scores(self, x, class_emb, classes) -> torch.Tensor:
        """(n, len(classes)) float64 scores x V S_K; columns in the order of ``classes``."""
        emb = _finite_matrix(class_emb, "class embedding")
        classes = np.asarray(classes, dtype=np.int64)
        x = _finite_matrix(x, "features")
        if x.shape[1] != self.v.shape[0]:
            raise DataError(f"ESZSL: features have {x.shape[1]} columns, the model was fitted "
                            f"on {self.v.shape[0]}")
        return (x @ self.v) @ emb[torch.from_numpy(classes)].T

    def predict(self, x, class_emb, classes) -> np.ndarray:
        """Class ids (of ``classes``) with the highest score, no calibration (ZSL)."""
        classes = np.asarray(classes, dtype=np.int64)
        return classes[self.scores(x, class_emb, classes).argmax(dim=1).numpy()]


@dataclass(frozen=True)
class Gram:
    """The parts of the closed form that do not depend on (gamma, lambda)."""

    xtx: torch.Tensor      # (d, d)  x^T x
    xtys: torch.Tensor     # (d, a)  x^T Y S^T
    sst: torch.Tensor      # (a, a)  S S^T


def gram(x, y, seen_classes, class_emb) -> Gram:
    """Gram matrices of the training set (``x`` rows = samples, ``y`` class ids, every one a
    seen class; the columns of Y and S are ``seen_classes`` in sorted order)."""
    emb = _finite_matrix(class_emb, "class embedding")
    seen = _class_ids(seen_classes, emb.shape[0], "seen classes")
    x = _finite_matrix(x, "training features")
    if x.shape[0] != len(np.asarray(y)):
        raise DataError(f"ESZSL: {x.shape[0]} training features but {len(np.asarray(y))} labels")
    if x.shape[0] == 0:
        raise DataError("ESZSL: no training samples")
    big_y = sign_indicator(y, seen)
    s = emb[torch.from_numpy(seen)].T                    # (a, z)
    return Gram(x.T @ x, x.T @ (big_y @ s.T), s @ s.T)


def _check_regulariser(value: float, name: str) -> float:
    value = float(value)
    if not (np.isfinite(value) and value > 0.0):
        raise DataError(f"ESZSL: {name}={value!r} must be a finite number > 0")
    return value


def _left(g: Gram, gamma: float) -> torch.Tensor:
    """(x^T x + gamma I)^{-1} x^T Y S^T by one solve (symmetric positive definite, gamma > 0)."""
    eye = torch.eye(g.xtx.shape[0], dtype=DTYPE)
    return torch.linalg.solve(g.xtx + gamma * eye, g.xtys)


def _right(g: Gram, left: torch.Tensor, lam: float) -> torch.Tensor:
    """left (S S^T + lambda I)^{-1}, as the transpose of a solve (S S^T is symmetric)."""
    eye = torch.eye(g.sst.shape[0], dtype=DTYPE)
    return torch.linalg.solve(g.sst + lam * eye, left.T).T


def solve(g: Gram, gamma: float, lam: float) -> ESZSL:
    gamma, lam = _check_regulariser(gamma, "gamma"), _check_regulariser(lam, "lambda")
    return ESZSL(_right(g, _left(g, gamma), lam), gamma, lam)


def fit(x, y, seen_classes, class_emb, gamma: float, lam: float) -> ESZSL:
    """The closed form on one training set (module docstring)."""
    return solve(gram(x, y, seen_classes, class_emb), gamma, lam)


def fit_grid(g: Gram, gammas: Sequence[float], lams: Sequence[float]) -> Iterator[ESZSL]:
    """Every (gamma, lambda) pair, gamma-major in the given order; one d x d solve per gamma."""
    lams = [_check_regulariser(v, "lambda") for v in lams]
    for gamma in gammas:
        left = _left(g, _check_regulariser(gamma, "gamma"))
        for lam in lams:
            yield ESZSL(_right(g, left, lam), float(gamma), lam)


def fit_view(data: PreparedData, gamma: float, lam: float) -> ESZSL:
    """ESZSL on a prepared view's seen training samples (``train_x``, ``train_y``)."""
    return fit(data.train_x, data.train_y, data.seen_classes, data.class_emb, gamma, lam)


# --------------------------------------------------------------------------- protocols


def check_view(data: PreparedData, where: str) -> None:
    """What ZSL + GZSL need from a prepared view, as a DataError naming ``where``."""
    seen, unseen = np.asarray(data.seen_classes), np.asarray(data.unseen_classes)
    if len(seen) == 0 or len(unseen) == 0:
        raise DataError(f"{where}: ESZSL needs seen and unseen classes "
                        f"(got {len(seen)} seen, {len(unseen)} unseen)")
    both = np.intersect1d(seen, unseen)
    if len(both):
        raise DataError(f"{where}: classes {both[:10].tolist()} are both seen and unseen")
    for name, y, cls in (("test_seen", data.test_seen_y, seen),
                         ("test_unseen", data.test_unseen_y, unseen)):
        if not np.isin(np.asarray(y), cls).any():
            raise DataError(f"{where}: {name} has no sample of its {len(cls)} target classes")
    for name in ("train_x", "test_seen_x", "test_unseen_x", "class_emb"):
        if not np.isfinite(getattr(data, name)).all():
            raise DataError(f"{where}: {name} contains NaN or infinite values")


@dataclass
class ViewScores:
    """ZSL and GZSL of one fitted model on one view; accuracies are fractions in [0, 1]."""

    t1: float
    u: float
    s: float
    h: float
    h_uncalibrated: float     # the same scores at calibration 0: what calibration adds
    calibration: float
    zsl_pred: np.ndarray      # on test_unseen, over the unseen classes
    gzsl_seen_pred: np.ndarray
    gzsl_unseen_pred: np.ndarray


def score_view(model: ESZSL, data: PreparedData, calibration: Optional[float] = None) -> ViewScores:
    """ZSL T1 and GZSL U / S / H (METHOD.md 4.4) of ``model`` on ``data``'s test sets.  GZSL
    subtracts ``calibration`` from the seen classes' scores; ``None`` = choose it here, the
    offset with the best H on these very labels (only ever on the validation view)."""
    seen, unseen = np.asarray(data.seen_classes), np.asarray(data.unseen_classes)
    classes = np.union1d(seen, unseen)
    zsl_pred = model.predict(data.test_unseen_x, data.class_emb, unseen)
    t1 = metrics.zsl_t1(data.test_unseen_y, zsl_pred, unseen)
    x = np.concatenate([data.test_seen_x, data.test_unseen_x])
    y = np.concatenate([data.test_seen_y, data.test_unseen_y]).astype(np.int64)
    dec = decisions(model.scores(x, data.class_emb, classes), classes, seen, y)
    if calibration is None:
        calibration = best_gamma(dec, seen, unseen).gamma
    n_seen = len(data.test_seen_y)

    def gzsl(gamma: float):
        pred = dec.predict(gamma)
        return pred, metrics.gzsl_scores(data.test_seen_y, pred[:n_seen], data.test_unseen_y,
                                         pred[n_seen:], seen, unseen)

    pred, cal = gzsl(float(calibration))
    _, plain = gzsl(0.0)
    return ViewScores(t1, cal["u"], cal["s"], cal["h"], plain["h"], float(calibration),
                      zsl_pred, pred[:n_seen], pred[n_seen:])


@dataclass
class GridPoint:
    """Validation scores of one (gamma, lambda) pair at its best calibration."""

    gamma: float
    lam: float
    calibration: float
    u: float
    s: float
    h: float
    h_uncalibrated: float
    t1: float

    def as_json(self) -> dict:
        """Percent with 2 decimals (as the selection files of the other methods)."""
        return {"gamma": self.gamma, "lambda": self.lam,
                "calibration": round(self.calibration, 6),
                **{k: round(100.0 * getattr(self, k), 2)
                   for k in ("u", "s", "h", "h_uncalibrated", "t1")}}


def grid_point(model: ESZSL, view: PreparedData, calibration: Optional[float] = None) -> GridPoint:
    r = score_view(model, view, calibration)
    return GridPoint(model.gamma, model.lam, r.calibration, r.u, r.s, r.h, r.h_uncalibrated, r.t1)


def select_regularisers(view: PreparedData, gammas: Sequence[float],
                        lams: Sequence[float]) -> tuple[GridPoint, list[GridPoint]]:
    """Scan gamma x lambda on the validation view (seen = train-classes, unseen =
    validation-classes, docs/protocol.md): fit on its training samples, calibrate on its
    held-out and validation-class samples.  The best validation GZSL H wins, ties broken by
    validation ZSL T1, then by grid order (gamma-major).  Returns (best, every point)."""
    check_view(view, "validation view")
    g = gram(view.train_x, view.train_y, view.seen_classes, view.class_emb)
    points = [grid_point(model, view) for model in fit_grid(g, gammas, lams)]
    best = max(points, key=lambda p: (p.h, p.t1))     # max keeps the first of equal keys
    return best, points
