"""Validation of the two spuriousness metrics on controlled synthetic data (docs/spuriousness.md
"Validation"; tests/test_spuriousness_validation.py asserts what this prints).

Three stand-in "generators", built directly (no training run, seconds on a CPU):

* **oracle**: samples the true test-time class distributions (:func:`synthetic.class_model`);
* **copier**: returns training samples of the class, drawn with replacement;
* **ridge**: x = W a_y + b + sigma * e, (W, b) a ridge regression of seen-train features on their
  class embeddings, sigma the per-dimension residual std: an attribute -> feature map learnt on
  seen training data only, i.e. what a conditional generator learns at best when it is linear.

Two knobs: ``data.synthetic.spurious_strength`` (seen: a nuisance in seen training data only)
and ``data.synthetic.unseen_shift`` (unseen: a factor that only unseen classes vary).

    python -m zerodiffpp.spurious.validation [--seeds 5] [--gen-per-class 200]

prints mean +- std over data seeds of s_seen and s_unseen for every knob value and generator.
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import numpy as np

from ..config import SyntheticConfig
from ..data import synthetic
from .metrics import seen_gap, transfer_gap

SEEN_KNOB = (0.0, 0.5, 1.0, 2.0, 3.0)      # data.synthetic.spurious_strength
UNSEEN_KNOB = (0.0, 0.5, 1.0, 2.0, 3.0)    # data.synthetic.unseen_shift
RIDGE_LAMBDA = 1e-3
REPEATS = 5


@dataclass
class Splits:
    """Real features of one synthetic data set, 0-based class ids (no scaling: the oracle
    samples in the same space)."""

    train_x: np.ndarray
    train_y: np.ndarray
    test_seen_x: np.ndarray
    test_seen_y: np.ndarray
    test_unseen_x: np.ndarray
    test_unseen_y: np.ndarray
    class_emb: np.ndarray
    seen: np.ndarray
    unseen: np.ndarray
    model: synthetic.ClassModel


def splits(cfg: SyntheticConfig) -> Splits:
    data = synthetic.make(cfg)

    def part(name):
        rows = data.idx(name)
        return data.features[rows], (data.labels[rows] - 1).astype(np.int64)

    (tx, ty), (sx, sy), (ux, uy) = part("trainval"), part("test_seen"), part("test_unseen")
    return Splits(tx, ty, sx, sy, ux, uy, data.class_embeddings, np.unique(ty), np.unique(uy),
                  synthetic.class_model(cfg))


def oracle(sp: Splits, classes, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    return sp.model.sample(classes, n, rng)


def copier(sp: Splits, classes, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    xs = [sp.train_x[sp.train_y == c] for c in classes]
    x = np.concatenate([xc[rng.integers(0, len(xc), n)] for xc in xs])
    return x, np.repeat(np.asarray(classes, dtype=np.int64), n)


def fit_ridge(sp: Splits, lam: float = RIDGE_LAMBDA):
    """Ridge of seen-train features on [a_y, 1]; returns (coef (d+1, D), residual std (D,))."""
    a = np.hstack([sp.class_emb[sp.train_y], np.ones((len(sp.train_y), 1))])
    reg = lam * len(a) * np.eye(a.shape[1])
    reg[-1, -1] = 0.0                                  # no penalty on the bias
    coef = np.linalg.solve(a.T @ a + reg, a.T @ sp.train_x)
    return coef, (sp.train_x - a @ coef).std(axis=0)


def ridge(sp: Splits, classes, n: int, rng, fitted=None) -> tuple[np.ndarray, np.ndarray]:
    coef, sd = fitted if fitted is not None else fit_ridge(sp)
    y = np.repeat(np.asarray(classes, dtype=np.int64), n)
    a = np.hstack([sp.class_emb[y], np.ones((len(y), 1))])
    return (a @ coef + sd * rng.normal(size=(len(y), coef.shape[1]))).astype(np.float32), y


GENERATORS = {"oracle": oracle, "copier": copier, "ridge": ridge}


def score(sp: Splits, generator: str, n_gen: int, seed: int) -> dict:
    """s_seen (and s_unseen, except for the copier, which has no unseen samples) of one
    generator on one data set; the generator's draws come from ``seed``."""
    rng = np.random.default_rng([seed, 7])
    make = GENERATORS[generator]
    fitted = fit_ridge(sp) if generator == "ridge" else None
    kw = {"fitted": fitted} if fitted is not None else {}
    gx, gy = make(sp, sp.seen, n_gen, rng, **kw)
    out = {"s_seen": seen_gap(sp.train_x, sp.train_y, sp.test_seen_x, sp.test_seen_y, gx, gy,
                              sp.seen, seed=seed, repeats=REPEATS).s_seen}
    if generator != "copier":
        ux, uy = make(sp, sp.unseen, n_gen, rng, **kw)
        out["s_unseen"] = transfer_gap(sp.test_seen_x, sp.test_seen_y, gx, gy, sp.test_unseen_x,
                                       sp.test_unseen_y, ux, uy, sp.seen, sp.unseen).s_unseen
    return out


def sweep(knob: str, values, generator: str, seeds, n_gen: int = 200,
          base: SyntheticConfig = SyntheticConfig()) -> dict:
    """{value: {metric: (mean, std over seeds, ddof=1)}} for one knob of SyntheticConfig."""
    table = {}
    for v in values:
        runs = [score(splits(dataclasses.replace(base, **{knob: v}, seed=s)), generator, n_gen, s)
                for s in seeds]
        table[v] = {m: (float(np.mean([r[m] for r in runs])),
                        float(np.std([r[m] for r in runs], ddof=1)) if len(runs) > 1 else 0.0)
                    for m in runs[0]}
    return table


def _fmt(stat) -> str:
    return f"{stat[0]:+.3f} ± {stat[1]:.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zerodiffpp.spurious.validation",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="data seeds 0..N-1 (default 5)")
    parser.add_argument("--gen-per-class", type=int, default=200,
                        help="generated features per class (default 200)")
    args = parser.parse_args(argv)
    if args.seeds < 2 or args.gen_per_class < 2:
        parser.error("--seeds and --gen-per-class must be >= 2")
    seeds = range(args.seeds)
    print(f"synthetic defaults {SyntheticConfig()}; mean ± std over {args.seeds} data seeds")
    for knob, values in (("spurious_strength", SEEN_KNOB), ("unseen_shift", UNSEEN_KNOB)):
        print(f"\nknob data.synthetic.{knob}")
        for gen in ("ridge", "oracle"):
            table = sweep(knob, values, gen, seeds, args.gen_per_class)
            for v, row in table.items():
                print(f"  {gen:7s} {knob}={v:<4g} s_seen {_fmt(row['s_seen'])}   "
                      f"s_unseen {_fmt(row['s_unseen'])}")
    print("\ncopier (training samples drawn with replacement), default data")
    row = sweep("spurious_strength", (0.0,), "copier", seeds, args.gen_per_class)[0.0]
    print(f"  copier  s_seen {_fmt(row['s_seen'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
