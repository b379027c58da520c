"""Spuriousness metrics of generated features, METHOD.md 6.2 [PROPOSAL] (docs/spuriousness.md).

``python -m zerodiffpp.stages.spuriousness [--params params.yaml] [--prepared runs/prepared]
--method NAME=PATH/generated.npz [--method ...] [--own-critic NAME=DFG_DIR ...]
[--out metrics/spuriousness.json]``

Reads ``runtime``, ``train`` (seed), ``eval`` (classifier schedule of the accuracy gaps) and
``spurious``.  Each ``generated.npz`` holds ``seen_x, seen_y, unseen_x, unseen_y`` (float32
features, 0-based class ids, every seen and unseen class).  At most ``spurious.syn_per_class``
features per class are used (the first ones of each class).  ``--own-critic NAME=DIR`` adds
ZeroDiff's delta_adv for method NAME, from the D_x0 of the DFG checkpoint ``DIR/model.pt``.

Output (one JSON, written atomically, 4 decimals; a non-finite value and a metric a method
does not have are written as null)::

    {"<method>": {"s_seen": .., "s_unseen": ..,                       # the two metrics
                  "nn_cost_train": .., "nn_cost_test": ..,             # terms of s_seen
                  "energy_seen": .., "energy_unseen": ..,              # terms of s_unseen
                  "classes_skipped": n,                                # fallback, see docs
                  "delta_adv": ..|null,                                # ZeroDiff's own critic
                  "acc_gap_seen": .., "acc_gap_unseen": .., "connectivity": ..}}

Accuracy gaps are fractions (0..1 scale), not percent.
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
from ..config import Config, ConfigError, load_config
from ..data.prepared import PreparedData
from ..io import DataError, read_npz, write_json
from ..spurious import companions, critic
from ..spurious import metrics as spm
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


def parse_pairs(specs: list[str], flag: str, what: str) -> list[tuple[str, Path]]:
    """``NAME=PATH`` pairs; names become JSON keys, so no dots (dvc metrics flattens on '.')."""
    pairs, seen = [], set()
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not path:
            raise ConfigError(f"{flag} {spec!r}: expected NAME={what}")
        if not NAME_RE.match(name):
            raise ConfigError(f"{flag} {spec!r}: name {name!r} may contain only letters, "
                              "digits, '_' and '-' (it becomes a metrics key)")
        if name in seen:
            raise ConfigError(f"{flag} {name}: given twice")
        seen.add(name)
        pairs.append((name, Path(path)))
    return pairs


def parse_methods(specs: list[str]) -> list[tuple[str, Path]]:
    methods = parse_pairs(specs, "--method", "PATH/generated.npz")
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


def check_prepared(path: Path, data: PreparedData) -> None:
    """Real features must be finite: a NaN would silently turn every distance into NaN."""
    for key in ("train_x", "test_seen_x", "test_unseen_x"):
        x = getattr(data, key)
        if not np.all(np.isfinite(x)):
            bad = np.flatnonzero(~np.all(np.isfinite(x), axis=1))
            raise DataError(f"{path}: key '{key}' has {bad.size} row(s) with NaN/Inf (first "
                            f"rows {bad[:5].tolist()}); rerun the prepare stage")


def evaluate_method(data: PreparedData, gen: Generated, cfg: Config, device,
                    d_x0=None) -> tuple[dict, list[int]]:
    """All metrics of one method (METHOD.md 6.2) and the class ids left out for too few real
    samples."""
    seed, spc = cfg.train.seed, cfg.spurious
    seen, unseen = data.seen_classes, data.unseen_classes
    gap = spm.seen_gap(data.train_x, data.train_y, data.test_seen_x, data.test_seen_y,
                       gen.seen_x, gen.seen_y, seen, seed=seed, repeats=spc.subsample_repeats,
                       min_real=spc.min_real_per_class)
    transfer = spm.transfer_gap(data.test_seen_x, data.test_seen_y, gen.seen_x, gen.seen_y,
                                data.test_unseen_x, data.test_unseen_y, gen.unseen_x, gen.unseen_y,
                                seen, unseen, min_real=spc.min_real_per_class)
    skipped = sorted(set(gap.skipped) | set(transfer.skipped))
    delta = math.nan
    if d_x0 is not None:
        scored = np.intersect1d(seen, data.test_seen_y)
        delta = critic.delta_adv(d_x0, data.train_x, data.train_y, data.test_seen_x,
                                 data.test_seen_y, data.class_emb, scored)
    fit = companions.softmax_fit(epochs=cfg.eval.classifier_epochs, lr=cfg.eval.classifier_lr,
                                 batch_size=cfg.eval.classifier_batch, seed=seed, device=device)
    gap_seen = companions.acc_gap_seen(fit, gen.seen_x, gen.seen_y, data.train_x, data.train_y,
                                       data.test_seen_x, data.test_seen_y)
    gap_unseen = companions.acc_gap_unseen(fit, gen.unseen_x, gen.unseen_y, data.test_unseen_x,
                                           data.test_unseen_y, seed)
    conn = companions.connectivity(data.test_unseen_x, data.test_unseen_y, gen.unseen_x,
                                   gen.unseen_y, unseen)
    return ({"s_seen": gap.s_seen, "s_unseen": transfer.s_unseen,
             "nn_cost_train": gap.cost_train, "nn_cost_test": gap.cost_test,
             "energy_seen": transfer.seen_term, "energy_unseen": transfer.unseen_term,
             "classes_skipped": len(skipped), "delta_adv": delta,
             "acc_gap_seen": gap_seen, "acc_gap_unseen": gap_unseen, "connectivity": conn},
            skipped)


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
    parser.add_argument("--own-critic", action="append", default=[], metavar="NAME=DFG_DIR",
                        help="delta_adv of method NAME from the D_x0 of DFG_DIR/model.pt "
                             "(repeatable; ZeroDiff variants)")
    parser.add_argument("--out", default="metrics/spuriousness.json", help="metrics JSON")
    args = parser.parse_args(argv)

    methods = parse_methods(args.method)
    own = dict(parse_pairs(args.own_critic, "--own-critic", "DFG_DIR"))
    unknown = sorted(set(own) - {name for name, _ in methods})
    if unknown:
        raise ConfigError(f"--own-critic {unknown[0]}: no --method of that name")
    cfg = load_config(args.params, sections=("runtime", "train", "eval", "spurious"))
    device = runtime.setup(cfg.runtime, cfg.train.seed)
    prepared = Path(args.prepared) / "prepared.npz"
    data = PreparedData.load(prepared)
    check_prepared(prepared, data)
    # Validate every input before any work, so a bad path fails fast.
    generated = {name: load_generated(path, data, cfg.spurious.syn_per_class)
                 for name, path in methods}
    critics = {name: critic.load_d_x0(path, device) for name, path in own.items()}

    results = {}
    for name, gen in generated.items():
        start = time.perf_counter()
        try:
            raw, skipped = evaluate_method(data, gen, cfg, device, critics.get(name))
        except spm.InsufficientData as exc:
            raise DataError(f"{prepared}: {exc} (spurious.min_real_per_class="
                            f"{cfg.spurious.min_real_per_class})") from exc
        if skipped:
            print(f"warning: {prepared}: class id(s) {skipped[:10]} have fewer than "
                  f"spurious.min_real_per_class={cfg.spurious.min_real_per_class} real samples "
                  f"and are left out of {name}'s s_seen / s_unseen", file=sys.stderr)
        metrics = results[name] = rounded(raw)
        print(f"spuriousness {name}: s_seen {metrics['s_seen']}  s_unseen {metrics['s_unseen']}  "
              f"delta_adv {metrics['delta_adv']}  acc-gap seen {metrics['acc_gap_seen']} "
              f"unseen {metrics['acc_gap_unseen']}  connectivity {metrics['connectivity']}"
              f"  [{time.perf_counter() - start:.1f} s]")
    write_json(args.out, results)


if __name__ == "__main__":
    raise SystemExit(main())
