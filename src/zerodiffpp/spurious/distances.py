"""Distances between two sample sets, float64, vectorised with ``torch.cdist`` (docs/spuriousness.md
"Set distances").  No optimal-transport solver is needed: the seen metric uses a one-sided
nearest-neighbour cost (the cost of transporting every query point to its nearest reference
point, i.e. optimal transport with the reference marginal left free), the unseen metric the
energy distance (Szekely & Rizzo), both exact in O(n m D) time and O(n m) memory per class.
"""
from __future__ import annotations

import numpy as np
import torch

# Rows per cdist block: bounds the (block x m) distance matrix kept in memory.
BLOCK_ROWS = 4096


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


def pairwise(a, b) -> np.ndarray:
    """Euclidean distances, rows of ``a`` x rows of ``b`` (float64)."""
    return torch.cdist(_t(a), _t(b)).numpy()


def _blocks(a: torch.Tensor, b: torch.Tensor, reduce):
    return torch.cat([reduce(torch.cdist(a[i:i + BLOCK_ROWS], b))
                      for i in range(0, len(a), BLOCK_ROWS)])


def nn_distances(query, reference) -> np.ndarray:
    """For every query row, the distance to its nearest reference row."""
    q, r = _t(query), _t(reference)
    if len(q) == 0 or len(r) == 0:
        raise ValueError(f"nn_distances: empty set (query {len(q)}, reference {len(r)} rows)")
    return _blocks(q, r, lambda d: d.min(dim=1).values).numpy()


def nn_cost(query, reference) -> float:
    """c(Q -> R) = mean over q in Q of min over r in R of ||q - r||."""
    return float(nn_distances(query, reference).mean())


def mean_cross(a, b) -> float:
    """mean over all pairs (i, j) of ||a_i - b_j||."""
    ta, tb = _t(a), _t(b)
    return float(_blocks(ta, tb, lambda d: d.sum(dim=1)).sum()) / (len(ta) * len(tb))


def mean_within(a) -> float:
    """mean over pairs i != j of ||a_i - a_j|| (the U-statistic of E||X - X'||); needs >= 2 rows."""
    ta = _t(a)
    n = len(ta)
    if n < 2:
        raise ValueError(f"mean_within: {n} row(s), need >= 2")
    return float(_blocks(ta, ta, lambda d: d.sum(dim=1)).sum()) / (n * (n - 1))


def energy_distance(x, y) -> float:
    """Unbiased estimate of the energy distance
    E(P, Q) = 2 E||X - Y|| - E||X - X'|| - E||Y - Y'||  (X, X' ~ P; Y, Y' ~ Q):
    within-set means exclude i = j, so its expectation is 0 when P = Q whatever the two sample
    sizes (a finite-sample estimate can be slightly negative).  Each set needs >= 2 rows."""
    return 2.0 * mean_cross(x, y) - mean_within(x) - mean_within(y)
