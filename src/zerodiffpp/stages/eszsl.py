"""ESZSL (Romera-Paredes & Torr 2015), the closed-form baseline, in the same harness and protocol.

``python -m zerodiffpp.stages.eszsl [--params params.yaml] [--prepared runs/prepared]
[--val-prepared runs/val/prepared] [--metrics metrics/baselines/eszsl.json]
[--selection-out metrics/selection/eszsl.json] [--select-details PATH] [--per-class PATH]``

Reads ``runtime``, ``eval.selection`` and ``eszsl`` from the parameter file.  The same prepared
features, splits and seen fraction as every other method (:mod:`zerodiffpp.baselines.eszsl`
for the closed form); no randomness, so no seed.  Always on the CPU in float64: the whole stage
is a few d x d linear solves.

1. Validation round (docs/protocol.md), on ``--val-prepared`` only (train-classes play seen,
   validation-classes play unseen): under ``eval.selection: validation`` every pair of
   ``eszsl.gamma_grid`` x ``eszsl.lam_grid`` is fitted on the view's training samples and
   scored with its best calibration offset on the held-out and validation-class samples; the
   pair with the best validation GZSL H wins (ties: ZSL T1, then grid order).  Under ``fixed``:
   ``eszsl.gamma``, ``eszsl.lam`` and calibration 0 (their validation scores are still
   recorded).  Nothing of ``--prepared``'s test set enters this choice.
2. Final round: refit with the chosen (gamma, lambda) on all seen training samples of
   ``--prepared``; ZSL and GZSL (with the chosen offset) on its test set, once.

Outputs, all written only after everything is computed:
* metrics JSON ``{"eszsl": {"zsl": {"t1"}, "gzsl": {"u", "s", "h"}}}`` (percent, 2 decimals)
* selection JSON ``{"eszsl": {"chosen": {gamma, lambda, calibration}, "val": {u, s, h,
  h_uncalibrated, t1}, "split": {...}, "selection": "validation" | "fixed", "version": 1}}``
* optional ``--select-details``: every grid point's validation scores
* optional ``--per-class``: per-class accuracies (the evaluate stage's CSV layout)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics, runtime
from ..baselines.eszsl import (ViewScores, check_view, fit_view, grid_point, score_view,
                               select_regularisers)
from ..config import load_config
from ..data.prepared import PreparedData
from ..io import DataError, read_json, write_csv, write_json
from .common import run_stage, stage_parser

METHOD = "eszsl"
SELECTION_VERSION = 1
VARIANT = "V"            # visual features only, as the other baselines


def parse_args(argv=None) -> argparse.Namespace:
    parser = stage_parser("eszsl", __doc__)
    parser.add_argument("--prepared", default="runs/prepared", help="prepare stage output dir")
    parser.add_argument("--val-prepared", default="runs/val/prepared",
                        help="validation_split stage output dir (the validation view)")
    parser.add_argument("--metrics", default="metrics/baselines/eszsl.json", help="metrics JSON")
    parser.add_argument("--selection-out", default="metrics/selection/eszsl.json",
                        help="the validation round's choice (JSON)")
    parser.add_argument("--select-details", default=None,
                        help="every grid point's validation scores (JSON)")
    parser.add_argument("--per-class", default=None, help="per-class accuracy CSV")
    return parser.parse_args(argv)


def _pct(v: float) -> float:
    """Percent with 2 decimals, as ``evaluation.pct`` (not imported: it pulls the classifier)."""
    return round(100.0 * float(v), 2)


def check_views(main: PreparedData, view: PreparedData, main_path: Path, view_path: Path) -> None:
    """The validation view must come from ``main``: same class table, and its classes (train-
    and validation-classes) all seen in ``main`` -- a real unseen class in the view would leak."""
    if main.class_emb.shape != view.class_emb.shape or not np.array_equal(main.class_emb,
                                                                          view.class_emb):
        raise DataError(f"{view_path}: class embedding differs from {main_path}'s (a stale "
                        "validation view? rerun validation_split)")
    view_classes = np.union1d(view.seen_classes, view.unseen_classes)
    foreign = np.setdiff1d(view_classes, main.seen_classes)
    if len(foreign):
        raise DataError(f"{view_path}: classes {foreign[:10].tolist()} are not seen classes of "
                        f"{main_path} (the validation round may only use seen classes)")


def read_split_summary(view_dir: Path) -> dict:
    path = view_dir / "split.json"
    if not path.exists():
        raise DataError(f"{path}: missing; the validation_split stage writes it beside "
                        "prepared.npz")
    split = read_json(path)
    if not isinstance(split, dict) or not {"train_classes", "val_classes"} <= set(split):
        raise DataError(f"{path}: expected train_classes and val_classes")
    return {"source": split.get("source"), "n_train_classes": len(split["train_classes"]),
            "n_val_classes": len(split["val_classes"])}


def per_class_frame(r: ViewScores, data: PreparedData) -> pd.DataFrame:
    """protocol, split, class_id, n_test, n_correct, accuracy (percent) -- the evaluate stage's
    per-class CSV layout (``evaluation.per_class_csv_frame``)."""
    tables = []
    for protocol, split, y, pred, cls in (
            ("zsl", "unseen", data.test_unseen_y, r.zsl_pred, data.unseen_classes),
            ("gzsl", "unseen", data.test_unseen_y, r.gzsl_unseen_pred, data.unseen_classes),
            ("gzsl", "seen", data.test_seen_y, r.gzsl_seen_pred, data.seen_classes)):
        t = metrics.per_class_table(y, pred, cls)
        t.insert(0, "split", split)
        t.insert(0, "protocol", protocol)
        tables.append(t)
    out = pd.concat(tables, ignore_index=True)
    out["accuracy"] = (100.0 * out["accuracy"]).round(4)
    out.insert(0, "variant", VARIANT)
    return out


@run_stage
def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.params, sections=("runtime", "eval", "eszsl"))
    runtime.setup(cfg.runtime, 0)        # threads of the float64 solves; nothing is random
    main_dir, view_dir = Path(args.prepared), Path(args.val_prepared)
    data = PreparedData.load(main_dir / "prepared.npz")
    view = PreparedData.load(view_dir / "prepared.npz")
    check_views(data, view, main_dir, view_dir)
    check_view(data, str(main_dir / "prepared.npz"))
    split = read_split_summary(view_dir)

    # 1. Validation round: the validation view only.
    if cfg.eval.selection == "validation":
        best, grid = select_regularisers(view, cfg.eszsl.gamma_grid, cfg.eszsl.lam_grid)
    else:
        check_view(view, "validation view")
        best = grid_point(fit_view(view, cfg.eszsl.gamma, cfg.eszsl.lam), view, 0.0)
        grid = [best]

    # 2. Final round: all seen training samples, the test set once.
    model = fit_view(data, best.gamma, best.lam)
    result = score_view(model, data, best.calibration)

    chosen = {"gamma": best.gamma, "lambda": best.lam, "calibration": round(best.calibration, 6)}
    val = {k: v for k, v in best.as_json().items() if k not in chosen}
    write_json(args.selection_out, {METHOD: {"chosen": chosen, "val": val, "split": split,
                                             "selection": cfg.eval.selection,
                                             "version": SELECTION_VERSION}})
    if args.select_details:
        write_json(args.select_details, {"method": METHOD, "selection": cfg.eval.selection,
                                         "split": split, "grid": [p.as_json() for p in grid]})
    if args.per_class:
        write_csv(args.per_class, per_class_frame(result, data))
    scores = {"zsl": {"t1": _pct(result.t1)},
              "gzsl": {"u": _pct(result.u), "s": _pct(result.s), "h": _pct(result.h)}}
    write_json(args.metrics, {METHOD: scores})
    print(f"eszsl ({cfg.eval.selection}): gamma {best.gamma:g}, lambda {best.lam:g}, "
          f"calibration {best.calibration:.4f}; validation ZSL T1 {val['t1']:.2f}, GZSL U "
          f"{val['u']:.2f} S {val['s']:.2f} H {val['h']:.2f} (uncalibrated {val['h_uncalibrated']:.2f}); "
          f"test ZSL T1 {scores['zsl']['t1']:.2f}, GZSL U {scores['gzsl']['u']:.2f} "
          f"S {scores['gzsl']['s']:.2f} H {scores['gzsl']['h']:.2f} -> {args.metrics}")


if __name__ == "__main__":
    raise SystemExit(main())
