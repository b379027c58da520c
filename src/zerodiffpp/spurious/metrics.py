"""The two spuriousness metrics, METHOD.md 6.2 [PROPOSAL] (docs/spuriousness.md "Definitions").

Per class y: T_y real seen-train features, S_y real test-seen features, R_y real test-unseen
features, G_y the method's generated features of y.

* **s_seen** (generalisation gap of the generator on seen classes).  T_y and S_y are drawn
  down to the same size n_y = min(|T_y|, |S_y|) (seeded, ``repeats`` times), and each real point
  is matched to its nearest generated feature of its class:
      gap_y = 1 - c(T'_y -> G_y) / c(S'_y -> G_y),   c(Q -> G) = mean_q min_g ||q - g||,
  s_seen = mean over seen classes of gap_y.  0: the generated features are as close to new real
  samples as to the training samples (no training-specific fit); 1: every training sample has
  an exact copy among them; < 0: they are closer to held-out samples than to training ones.
* **s_unseen** (transfer gap).  With the energy distance E (unbiased) and the class's own real
  spread m(X) = E||X - X'||:
      e_y = E(G_y, X_y) / m(X_y),  X_y = S_y for seen, R_y for unseen classes,
  s_unseen = mean_{y unseen} e_y - mean_{y seen} e_y.  0: generated unseen features match their
  real class as well as generated seen features match theirs; larger = worse transfer.

A class with fewer than ``min_real`` usable real samples is left out of the mean and listed in
the result (:attr:`SeenGap.skipped`); if no class is left, :class:`InsufficientData` is raised.
Non-finite inputs raise ``ValueError`` naming the set.  Everything here is a pure function of
numpy arrays, seeded, so it can be checked on hand-made inputs (tests/test_spuriousness.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import distances as dist


class InsufficientData(ValueError):
    """No class has enough samples for a metric."""


def check_finite(name: str, x: np.ndarray) -> None:
    if not np.all(np.isfinite(x)):
        rows = np.flatnonzero(~np.all(np.isfinite(np.asarray(x, dtype=np.float64)), axis=1))
        raise ValueError(f"{name}: {rows.size} row(s) with NaN/Inf "
                         f"(first rows {rows[:5].tolist()})")


def _rows(x: np.ndarray, y: np.ndarray, c: int) -> np.ndarray:
    return x[y == c]


@dataclass(frozen=True)
class SeenGap:
    s_seen: float                   # macro mean of per_class
    per_class: dict                 # class id -> gap_y
    cost_train: float               # macro mean of c(T' -> G)
    cost_test: float                # macro mean of c(S' -> G)
    set_size: dict                  # class id -> n_y (size of T' and S')
    skipped: list = field(default_factory=list)   # class ids with < min_real samples


def seen_gap(train_x, train_y, test_x, test_y, gen_x, gen_y, classes, *, seed: int,
             repeats: int = 5, min_real: int = 2) -> SeenGap:
    """s_seen over ``classes`` (see the module docstring).  Per class the subsample RNG is
    ``default_rng([seed, y])``, so a class's number does not depend on the other classes."""
    for name, x in (("seen-train features", train_x), ("test-seen features", test_x),
                    ("generated seen features", gen_x)):
        check_finite(name, np.asarray(x))
    if repeats < 1:
        raise ValueError(f"seen_gap: repeats={repeats} must be >= 1")
    per_class, set_size, skipped, c_tr, c_te = {}, {}, [], [], []
    for c in np.asarray(classes, dtype=np.int64):
        t, s, g = _rows(train_x, train_y, c), _rows(test_x, test_y, c), _rows(gen_x, gen_y, c)
        if len(g) == 0:
            raise ValueError(f"seen_gap: no generated feature of seen class {int(c)}")
        n = min(len(t), len(s))
        if n < min_real:
            skipped.append(int(c))
            continue
        rng = np.random.default_rng([seed, int(c)])
        cost_t = cost_s = 0.0
        for _ in range(repeats):
            cost_t += dist.nn_cost(t[rng.choice(len(t), n, replace=False)], g)
            cost_s += dist.nn_cost(s[rng.choice(len(s), n, replace=False)], g)
        if cost_s == 0:   # every drawn test-seen sample has an exact generated copy
            raise ValueError(f"seen_gap: the generated features of seen class {int(c)} contain "
                             "exact copies of its test-seen samples (test data leaked?)")
        per_class[int(c)] = 1.0 - cost_t / cost_s
        set_size[int(c)] = n
        c_tr.append(cost_t / repeats)
        c_te.append(cost_s / repeats)
    if not per_class:
        raise InsufficientData(
            f"s_seen: no seen class has >= {min_real} train and test-seen samples "
            f"(classes {[int(c) for c in classes][:10]})")
    return SeenGap(s_seen=float(np.mean(list(per_class.values()))), per_class=per_class,
                   cost_train=float(np.mean(c_tr)), cost_test=float(np.mean(c_te)),
                   set_size=set_size, skipped=skipped)


def relative_energy(gen: np.ndarray, real: np.ndarray) -> float:
    """e = E(G, X) / m(X): the energy distance between generated and real features of one
    class in units of the real class's own spread m(X) = E||X - X'|| (both unbiased)."""
    spread = dist.mean_within(real)
    if spread <= 0:
        raise ValueError("relative_energy: real samples of the class are all identical")
    return dist.energy_distance(gen, real) / spread


@dataclass(frozen=True)
class TransferGap:
    s_unseen: float                 # unseen_term - seen_term
    unseen_term: float              # mean over unseen classes of e_y
    seen_term: float                # mean over seen classes of e_y
    per_class: dict                 # class id -> e_y (seen and unseen)
    skipped: list = field(default_factory=list)   # class ids with < min_real real samples


def _energy_terms(real_x, real_y, gen_x, gen_y, classes, min_real, what):
    out, skipped = {}, []
    for c in np.asarray(classes, dtype=np.int64):
        r, g = _rows(real_x, real_y, c), _rows(gen_x, gen_y, c)
        if len(g) < 2:
            raise ValueError(f"s_unseen: {len(g)} generated feature(s) of {what} class {int(c)}, "
                             "need >= 2")
        if len(r) < max(min_real, 2):
            skipped.append(int(c))
            continue
        out[int(c)] = relative_energy(g, r)
    if not out:
        raise InsufficientData(f"s_unseen: no {what} class has >= {max(min_real, 2)} real test "
                               f"samples (classes {[int(c) for c in classes][:10]})")
    return out, skipped


def transfer_gap(test_seen_x, test_seen_y, gen_seen_x, gen_seen_y, test_unseen_x, test_unseen_y,
                 gen_unseen_x, gen_unseen_y, seen_classes, unseen_classes, *,
                 min_real: int = 2) -> TransferGap:
    """s_unseen (see the module docstring).  True test labels are used: analysis only, never
    for model selection."""
    for name, x in (("test-seen features", test_seen_x), ("generated seen features", gen_seen_x),
                    ("test-unseen features", test_unseen_x),
                    ("generated unseen features", gen_unseen_x)):
        check_finite(name, np.asarray(x))
    seen, skip_s = _energy_terms(test_seen_x, test_seen_y, gen_seen_x, gen_seen_y, seen_classes,
                                 min_real, "seen")
    unseen, skip_u = _energy_terms(test_unseen_x, test_unseen_y, gen_unseen_x, gen_unseen_y,
                                   unseen_classes, min_real, "unseen")
    seen_term = float(np.mean(list(seen.values())))
    unseen_term = float(np.mean(list(unseen.values())))
    return TransferGap(s_unseen=unseen_term - seen_term, unseen_term=unseen_term,
                       seen_term=seen_term, per_class={**seen, **unseen}, skipped=skip_s + skip_u)
