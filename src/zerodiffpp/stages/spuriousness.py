"""Spuriousness metrics of generated features, METHOD.md 6.2 [PROPOSAL] (docs/spuriousness.md).

``python -m zerodiffpp.stages.spuriousness [--params params.yaml] [--prepared runs/prepared]
--method NAME=PATH/generated.npz [--method ...] [--out metrics/spuriousness.json]``

Reads ``runtime``, ``train`` (seed), ``eval`` (classifier schedule of the accuracy gaps) and
``spurious``.  Each ``generated.npz`` holds ``seen_x, seen_y, unseen_x, unseen_y`` (float32
features, 0-based class ids, every seen and unseen class).  At most ``spurious.syn_per_class``
features per class are used (the first ones of each class).  For every method a fresh probe
critic is trained with the same seed (``train.seed``), so methods are scored "in the same way".

Output (one JSON, written atomically, 4 decimals; a non-finite value is written as null)::

    {"<method>": {"s_seen": .., "s_unseen": .., "delta_adv": .., "denom": ..,
                  "unnormalised": 0|1, "acc_gap_seen": .., "acc_gap_unseen": ..,
                  "connectivity": ..}}

``unnormalised`` = 1 when the probe's real-vs-generated gap ``denom`` is below
``spurious.min_denominator``; s_seen / s_unseen are then the raw critic gaps.  Accuracy gaps
are fractions (0..1 scale), not percent.
"""
from __future__ import annotations

import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import runtime
from .. import spuriousness as sp
from ..config import Config, ConfigError, load_config
from ..data.prepared import PreparedData
from ..io import DataError, read_npz, write_json
from .common import run_stage, stage_parser

KEYS = ("seen_x", "seen_y", "unseen_x", "unseen_y")
NAME_RE = re.compile(r"^[A-Za-z0-9_-]+$")
DECIMALS = 4


@dataclass
class Generated:
    seen_x: np.ndarray
    seen_y: np.ndarray
    unseen_x: np.ndarray
    unseen_y: np.ndarray


def parse_methods(specs: list[str]) -> list[tuple[str, Path]]:
    """``NAME=PATH`` pairs; names become JSON keys, so no dots (dvc metrics flattens on '.')."""
    methods, seen = [], set()
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not path:
            raise ConfigError(f"--method {spec!r}: expected NAME=PATH/generated.npz")
        if not NAME_RE.match(name):
            raise ConfigError(f"--method {spec!r}: name {name!r} may contain only letters, "
                              "digits, '_' and '-' (it becomes a metrics key)")
        if name in seen:
            raise ConfigError(f"--method {name}: given twice")
        seen.add(name)
        methods.append((name, Path(path)))
    if not methods:
        raise ConfigError("no --method NAME=PATH given")
    return methods


def _check_part(path: Path, arrays: dict, part: str, classes: np.ndarray, x_dim: int,
                per_class: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``<part>_x``/``<part>_y``; keep the first ``per_class`` rows of each class."""
    x, y = arrays[f"{part}_x"], arrays[f"{part}_y"]
    kx, ky = f"'{part}_x'", f"'{part}_y'"
    if x.ndim != 2 or x.shape[1] != x_dim or not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"{path}: key {kx} must be a float (n, {x_dim}) array, got "
                        f"{x.dtype} {x.shape}")
    if not np.all(np.isfinite(x)):
        raise DataError(f"{path}: key {kx} contains NaN/Inf")
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: key {ky} must be an integer vector of length {x.shape[0]} "
                        f"(rows of {kx}), got {y.dtype} {y.shape}")
    extra = np.setdiff1d(np.unique(y), classes)
    if extra.size:
        raise DataError(f"{path}: key {ky} has class ids {extra[:5].tolist()} that are not "
                        f"{part} classes (0-based ids {classes.tolist()})")
    keep = []
    for c in classes:
        rows = np.flatnonzero(y == c)
        if rows.size < 2:
            raise DataError(f"{path}: key {ky} has {rows.size} sample(s) of {part} class {int(c)}"
                            " (0-based); need at least 2 per class")
        if rows.size < per_class:
            print(f"warning: {path}: {part} class {int(c)} has {rows.size} generated features "
                  f"< spurious.syn_per_class={per_class}", file=sys.stderr)
        keep.append(rows[:per_class])
    keep = np.sort(np.concatenate(keep))
    return x[keep].astype(np.float32), y[keep].astype(np.int64)


def load_generated(path: Path, data: PreparedData, per_class: int) -> Generated:
    arrays = read_npz(path, required=KEYS)   # names file + missing keys
    sx, sy = _check_part(path, arrays, "seen", data.seen_classes, data.x_dim, per_class)
    ux, uy = _check_part(path, arrays, "unseen", data.unseen_classes, data.x_dim, per_class)
    return Generated(sx, sy, ux, uy)


def evaluate_method(data: PreparedData, gen: Generated, cfg: Config, device) -> dict:
    """All metrics of one method (METHOD.md 6.2) as a dict of floats."""
    seed, spc = cfg.train.seed, cfg.spurious
    critic = sp.train_probe_critic(
        data.train_x, data.train_y, gen.seen_x, gen.seen_y, data.class_emb,
        epochs=spc.probe_epochs, hidden=spc.probe_hidden, lr=spc.probe_lr,
        batch_size=spc.probe_batch, seed=seed, device=device)

    # Seen terms over the seen classes that have test-seen samples (all, on GBU splits).
    seen = np.intersect1d(data.seen_classes, data.test_seen_y)
    if seen.size == 0:
        raise DataError("prepared data: no seen class has test_seen samples")
    unseen = data.unseen_classes

    def mean_d(x, y, classes):
        mask = np.isin(y, classes)
        return sp.macro_mean(sp.critic_scores(critic, x[mask], y[mask], data.class_emb),
                             y[mask], classes)

    crit = sp.critic_spuriousness(
        d_train=mean_d(data.train_x, data.train_y, seen),
        d_test_seen=mean_d(data.test_seen_x, data.test_seen_y, seen),
        d_gen_seen=mean_d(gen.seen_x, gen.seen_y, seen),
        d_gen_unseen=mean_d(gen.unseen_x, gen.unseen_y, unseen),
        d_test_unseen=mean_d(data.test_unseen_x, data.test_unseen_y, unseen),
        min_denominator=spc.min_denominator)

    fit = sp.softmax_fit(epochs=cfg.eval.classifier_epochs, lr=cfg.eval.classifier_lr,
                         batch_size=cfg.eval.classifier_batch, seed=seed, device=device)
    gap_seen = sp.acc_gap_seen(fit, gen.seen_x, gen.seen_y, data.train_x, data.train_y,
                               data.test_seen_x, data.test_seen_y)
    gap_unseen = sp.acc_gap_unseen(fit, gen.unseen_x, gen.unseen_y, data.test_unseen_x,
                                   data.test_unseen_y, seed)
    conn = sp.connectivity(data.test_unseen_x, data.test_unseen_y, gen.unseen_x, gen.unseen_y,
                           unseen)
    return {"s_seen": crit.s_seen, "s_unseen": crit.s_unseen, "delta_adv": crit.delta_adv,
            "denom": crit.denominator, "unnormalised": int(not crit.normalised),
            "acc_gap_seen": gap_seen, "acc_gap_unseen": gap_unseen, "connectivity": conn}


def rounded(metrics: dict) -> dict:
    out = {}
    for k, v in metrics.items():
        if isinstance(v, int):
            out[k] = v
        else:
            out[k] = round(float(v), DECIMALS) if math.isfinite(v) else None
    return out


@run_stage
def main(argv=None) -> None:
    parser = stage_parser("spuriousness", __doc__)
    parser.add_argument("--prepared", default="runs/prepared", help="prepare stage output dir")
    parser.add_argument("--method", action="append", default=[], metavar="NAME=PATH",
                        help="method name and its generated.npz (repeatable)")
    parser.add_argument("--out", default="metrics/spuriousness.json", help="metrics JSON")
    args = parser.parse_args(argv)

    methods = parse_methods(args.method)
    cfg = load_config(args.params, sections=("runtime", "train", "eval", "spurious"))
    device = runtime.setup(cfg.runtime, cfg.train.seed)
    data = PreparedData.load(Path(args.prepared) / "prepared.npz")
    # Validate every input before any training, so a bad path fails fast.
    generated = {name: load_generated(path, data, cfg.spurious.syn_per_class)
                 for name, path in methods}

    results = {}
    for name, gen in generated.items():
        start = time.perf_counter()
        metrics = rounded(evaluate_method(data, gen, cfg, device))
        results[name] = metrics
        flag = (" (unnormalised: denom < spurious.min_denominator)"
                if metrics["unnormalised"] else "")
        print(f"spuriousness {name}: S_seen {metrics['s_seen']}  S_unseen {metrics['s_unseen']}  "
              f"delta_adv {metrics['delta_adv']}  acc-gap seen {metrics['acc_gap_seen']} "
              f"unseen {metrics['acc_gap_unseen']}  connectivity {metrics['connectivity']}{flag}"
              f"  [{time.perf_counter() - start:.1f} s]")
    write_json(args.out, results)


if __name__ == "__main__":
    raise SystemExit(main())
