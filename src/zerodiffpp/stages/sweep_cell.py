"""One cell of the scarce-data sweep: train and evaluate one method at one seen fraction and seed.

``python -m zerodiffpp.stages.sweep_cell --method zerodiff|fclswgan|fvaegan --fraction F
--seed S --out runs/sweep/<method>-<F>-<S> [--params params.yaml] [--raw data/raw]
[--features data/features]``

The cell writes a params file equal to ``--params`` with ``train.seen_fraction = F`` and
``train.seed = S`` (validated; the ``sweep`` section dropped: a cell never reads the grid) and runs
the pipeline's own stage mains in this process on it, with every path inside the cell:

* ``zerodiff``: prepare -> [validation round: validation_split -> train_drg, train_dfg and
  evaluate --select on the validation view] -> train_drg -> train_dfg -> evaluate (zerodiff,
  zerodiff_tta, zerodiff_diffgen, zerodiffpp) -> spuriousness of the four generators;
* ``fclswgan`` / ``fvaegan``: prepare -> [validation_split -> baseline --select] -> baseline ->
  spuriousness.
The bracketed validation round runs under ``eval.selection: validation`` (docs/protocol.md), at
the cell's own fraction and seed, so every cell chooses its settings on its own data.

Cell directory (replaced as a whole once everything is written)::

    metrics.json       {"method", "fraction", "seed",
                        "variants": {<variant>: {t1, u, s, h, s_seen, s_unseen, delta_adv,
                                                 ... (spuriousness stage terms), acc_gap_seen, acc_gap_unseen,
                                                 connectivity}}}
    params.yaml        the parameters the cell ran with
    seen_subset.csv    the kept seen training samples (prepare)
    eval.json          the evaluate / baseline stage metrics (percent)
    selection.json     what the cell's own validation round chose (eval.selection: validation)
    spuriousness.json  the spuriousness stage metrics
    per_class.csv      per-class accuracies
    history/*.csv      training histories
    models/            drg.pt + dfg.pt (zerodiff) or <method>.pt (baselines)
    zerodiffpp.json    DiffTTA / DiffGen diagnostics (zerodiff cells)

Prepared data, generated features and the generators' per-epoch checkpoints live in a work
directory beside the cell, ``.<cell>.resume/`` (git-ignored; ``dvc repro`` deletes only the cell),
removed when the cell is complete.  A cell that is interrupted or fails after a checkpoint was
written keeps it, and its rerun resumes (docs/reliability.md): each generator (DRG, DFG or the
baseline) continues from its last epoch, or, when finished, is reused with nothing left to
train -- in both cases only if the trainer's own check (configuration, seed, data, code version)
accepts the checkpoint.
The cell at the main run's own fraction and seed (``train.seen_fraction`` / ``train.seed``)
trains exactly the main pipeline's generators; with ``--reuse-from runs`` it offers them
(``runs/drg``, ``runs/val/dfg``, ``runs/baselines/<method>``, ...) to its trainers through the
same resume slot, so they are reused when they pass that check and retrained otherwise: a
memo, not an input -- the cell's metrics are the same either way (tested), and DVC does not
list the main run's outputs as its dependencies.  It saves the default ``dvc repro`` about a
minute (benchmarks/README.md).
Accuracies are percent (2 decimals); spuriousness values as the spuriousness stage writes them.
"""
from __future__ import annotations

import argparse
import shutil
import os
import sys
import time
from pathlib import Path

import yaml

from ..config import ConfigError, config_from_dict
from ..io import DataError, read_json, write_json, write_text
from ..sweep_layout import METHODS, VARIANTS, fraction_str
from .common import atomic_dir, run_stage, stage_parser


def parse_args(argv=None) -> argparse.Namespace:
    parser = stage_parser("sweep_cell", __doc__)
    parser.add_argument("--method", required=True, help=f"one of {', '.join(METHODS)}")
    parser.add_argument("--fraction", required=True,
                        help="seen fraction in (0, 1], written as a decimal (1.0, 0.3)")
    parser.add_argument("--seed", required=True, help="train.seed of the cell")
    parser.add_argument("--out", required=True, help="cell directory")
    parser.add_argument("--raw", default="data/raw", help="dataset directory (download stage)")
    parser.add_argument("--features", default="data/features", help="features stage output")
    parser.add_argument("--val-features", default="runs/val/features",
                        help="the validation round's features (val_features stage)")
    parser.add_argument("--val-split", default="runs/val/split.json",
                        help="the validation classes (validation_classes stage)")
    parser.add_argument("--reuse-from", default="runs", metavar="DIR",
                        help="the main pipeline's run folder: a cell at the main run's own "
                             "fraction and seed offers its finished generators to the trainers "
                             "(reused only if they pass the resume check); '' = never")
    return parser.parse_args(argv)


def check_cell(method: str, fraction: str, seed: str) -> tuple[float, int]:
    if method not in METHODS:
        raise ConfigError(f"--method {method!r}: must be one of {', '.join(METHODS)}")
    try:
        value = float(fraction)
    except ValueError:
        raise ConfigError(f"--fraction {fraction!r}: expected a number in (0, 1]") from None
    if fraction_str(value) != fraction:
        # The cell directory and the stage name carry the value as written; the aggregate
        # stage looks for str(float) -- so '1' or '0.10' would never be found.
        raise ConfigError(f"--fraction {fraction!r}: write it as {fraction_str(value)} "
                          "(in params.yaml sweep.fractions too): cell directory names use the "
                          "value verbatim")
    try:
        seed_value = int(seed)
    except ValueError:
        raise ConfigError(f"--seed {seed!r}: expected an integer >= 0") from None
    if str(seed_value) != seed:
        raise ConfigError(f"--seed {seed!r}: write it as {seed_value}")
    return value, seed_value


def cell_params(params: str | Path, fraction: float, seed: int) -> dict:
    """The parameter file with this cell's train.* values, validated; no ``sweep`` section."""
    path = Path(params)
    if not path.exists():
        raise ConfigError(f"{path}: parameter file not found")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at top level")
    config_from_dict(raw)      # the whole file, as every stage checks it (sweep section too)
    raw = dict(raw)
    raw.pop("sweep", None)
    train = dict(raw.get("train") or {})
    train.update({"seen_fraction": fraction, "seed": seed})
    raw["train"] = train
    config_from_dict(raw)      # same rules as every stage (fraction range, seed >= 0, ...)
    return raw


def _call(name: str, main, argv: list[str], timings: dict) -> None:
    start = time.perf_counter()
    rc = main(argv)
    timings[name] = time.perf_counter() - start
    if rc == 130:
        raise SystemExit(130)
    if rc:
        raise DataError(f"sweep cell: stage {name} failed (exit {rc}); its message is above")


def _variant_metrics(eval_json: dict, spurious_json: dict, variants) -> dict:
    out = {}
    for v in variants:
        if v not in eval_json or v not in spurious_json:
            raise DataError(f"sweep cell: no metrics for {v}")
        s = eval_json[v]
        out[v] = {"t1": s["zsl"]["t1"], "u": s["gzsl"]["u"], "s": s["gzsl"]["s"],
                  "h": s["gzsl"]["h"], **spurious_json[v]}
    return out


def run_cell(method: str, fraction: float, seed: int, out: Path, params: Path, raw: Path,
             features: Path, timings: dict, val_inputs: tuple[Path, Path],
             reuse_from: str = "") -> dict:
    variants = VARIANTS[method]
    text = yaml.safe_dump(cell_params(params, fraction, seed), sort_keys=False)
    work = resume_dir(out)
    work.mkdir(parents=True, exist_ok=True)
    try:
        metrics = _run_in(work, method, fraction, seed, out, text, raw, features, variants, timings,
                          val_inputs, main_run_donors(params, fraction, seed, reuse_from))
    except BaseException:
        if _has_checkpoint(work):
            print(f"sweep cell: kept {work} (generator checkpoints); rerun the cell to resume",
                  file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
        raise
    shutil.rmtree(work, ignore_errors=True)
    return metrics


def resume_dir(out: Path) -> Path:
    """The cell's work directory: a sibling (same disk; prepared data can be large) that
    atomic_dir's clean-up of killed runs (``.<cell>.*-*``) leaves alone."""
    return out.parent / f".{out.name}.resume"


def _has_checkpoint(work: Path) -> bool:
    """Whether the work directory holds a generator checkpoint (DRG, DFG or a baseline's) that
    a rerun can resume."""
    from ..trainloop import resume_path_for

    trainers = ("drg", "dfg", *(m for m in METHODS if m != "zerodiff"))
    models = [base / name / "model.pt" for base in (work, work / "val") for name in trainers]
    return any(m.exists() or resume_path_for(m).exists() for m in models)


def _offer_finished(model: Path) -> None:
    """Put a generator an earlier run of this cell finished back into its trainer's resume
    slot, so the rerun reuses it when the trainer accepts it (nothing left to train) and trains
    from scratch, with a logged reason, when it does not."""
    from ..trainloop import resume_path_for

    slot = resume_path_for(model)
    if model.exists() and not slot.exists():
        slot.parent.mkdir(parents=True, exist_ok=True)
        os.replace(model, slot)


def main_run_donors(params: Path, fraction: float, seed: int, runs: str) -> dict[str, Path]:
    """Finished generators of the main pipeline that this cell may reuse: only when the cell's
    fraction and seed are the main run's own (``train.seen_fraction`` / ``train.seed`` of
    ``params``; the main run and that cell then train the same models on the same data), keyed
    by the cell's work path (``drg``, ``val/dfg``, ``fvaegan``, ...).  Whether one is actually
    used is the trainer's decision: the resume check compares configuration, seed, data
    fingerprint and code version, exactly as for an interrupted cell, so the cell's outputs are
    the same with or without them (tests/test_sweep_cell.py)."""
    if not runs:
        return {}
    train = config_from_dict(yaml.safe_load(Path(params).read_text()) or {}).train
    if (train.seen_fraction, train.seed) != (fraction, seed):
        return {}
    root = Path(runs)
    donors = {"drg": root / "drg", "dfg": root / "dfg",
              "val/drg": root / "val" / "drg", "val/dfg": root / "val" / "dfg"}
    for m in METHODS:
        if m != "zerodiff":
            donors[m] = root / "baselines" / m
            donors[f"val/{m}"] = root / "val" / "baselines" / m
    return {k: v / "model.pt" for k, v in donors.items() if (v / "model.pt").exists()}


def _offer(work: Path, name: str, donors: dict[str, Path]) -> None:
    """Fill the resume slot of the cell's ``name`` generator (``drg``, ``val/dfg``, ...) before
    its trainer runs: with this cell's own finished model (:func:`_offer_finished`), else with
    the main run's (``donors``, :func:`main_run_donors`); the trainer's check decides."""
    from ..trainloop import resume_path_for

    model = work / name / "model.pt"
    _offer_finished(model)
    slot = resume_path_for(model)
    if name in donors and not slot.exists():
        slot.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(donors[name], slot)
        print(f"sweep cell: offering the main run's {donors[name]} as {name} "
              "(the trainer checks it)")


def _run_in(work: Path, method: str, fraction: float, seed: int, out: Path, text: str,
            raw: Path, features: Path, variants, timings: dict,
            val_inputs: tuple[Path, Path], donors: dict[str, Path]) -> dict:
    from . import (baseline, evaluate, prepare, spuriousness, train_dfg, train_drg,
                   validation_split)

    with atomic_dir(out) as cell:
        write_text(work / "params.yaml", text)
        write_text(cell / "params.yaml", text)
        p = ["--params", str(work / "params.yaml")]
        prepared = work / "prepared"
        _call("prepare", prepare.main, p + ["--raw", str(raw), "--features", str(features),
                                            "--out", str(prepared)], timings)
        shutil.copy(prepared / "seen_subset.csv", cell / "seen_subset.csv")
        (cell / "history").mkdir()
        (cell / "models").mkdir()
        validate = yaml.safe_load(text).get("eval", {}).get("selection", "validation") != "fixed"
        selection = cell / "selection.json"
        if validate:      # the validation round of this cell (docs/protocol.md), same stages
            val = work / "val"
            _call("validation_split", validation_split.main, p + [
                "--prepared", str(prepared), "--raw", str(raw), "--features", str(val_inputs[0]),
                "--split", str(val_inputs[1]), "--out", str(val / "prepared")], timings)
        if method == "zerodiff":
            trainers = (("drg", train_drg.main), ("dfg", train_dfg.main))
            if validate:
                for name, stage_main in trainers:
                    _offer(work, f"val/{name}", donors)
                    _call(f"val_train_{name}", stage_main, p + [
                        "--prepared", str(val / "prepared"), "--out", str(val / name),
                        "--history", str(val / f"{name}.csv")], timings)
                _call("val_select", evaluate.main, p + [
                    "--prepared", str(val / "prepared"), "--drg", str(val / "drg"),
                    "--dfg", str(val / "dfg"), "--methods", "zerodiff",
                    "--select", str(selection)], timings)
            for name, stage_main in trainers:
                _offer(work, name, donors)
                _call(f"train_{name}", stage_main, p + ["--prepared", str(prepared), "--out",
                      str(work / name), "--history", str(cell / "history" / f"{name}.csv")],
                      timings)
            _call("evaluate", evaluate.main, p + [
                "--prepared", str(prepared), "--drg", str(work / "drg"), "--dfg", str(work / "dfg"),
                "--metrics", str(cell / "eval.json"), "--per-class", str(cell / "per_class.csv"),
                "--eval-dir", str(work / "eval")]
                + (["--selection", str(selection)] if validate else []), timings)
            shutil.copy(work / "drg" / "model.pt", cell / "models" / "drg.pt")
            shutil.copy(work / "dfg" / "model.pt", cell / "models" / "dfg.pt")
            shutil.copy(work / "eval" / "zerodiffpp.json", cell / "zerodiffpp.json")
            generated = {v: work / "eval" / v / "generated.npz" for v in variants}
        else:
            if validate:
                _offer(work, f"val/{method}", donors)
                _call("val_baseline", baseline.main, p + [
                    "--method", method, "--prepared", str(val / "prepared"),
                    "--out", str(val / method), "--history", str(val / f"{method}.csv"),
                    "--select", str(selection)], timings)
            _offer(work, method, donors)
            _call("baseline", baseline.main, p + [
                "--method", method, "--prepared", str(prepared), "--out", str(work / method),
                "--metrics", str(cell / "eval.json"),
                "--history", str(cell / "history" / f"{method}.csv")]
                + (["--selection", str(selection)] if validate else []), timings)
            shutil.copy(work / method / "model.pt", cell / "models" / f"{method}.pt")
            shutil.copy(work / method / "per_class.csv", cell / "per_class.csv")
            generated = {method: work / method / "generated.npz"}
        # ZeroDiff's own D_x0 gives its delta_adv companion (docs/spuriousness.md)
        own = [a for v in generated for a in ("--own-critic", f"{v}={work / 'dfg'}")] \
            if method == "zerodiff" else []
        _call("spuriousness", spuriousness.main, p + ["--prepared", str(prepared)] + [
            a for v, path in generated.items() for a in ("--method", f"{v}={path}")] + own + [
            "--out", str(cell / "spuriousness.json")], timings)
        metrics = {"method": method, "fraction": fraction, "seed": seed,
                   "variants": _variant_metrics(read_json(cell / "eval.json"),
                                                read_json(cell / "spuriousness.json"), variants)}
        write_json(cell / "metrics.json", metrics)
    return metrics


@run_stage
def main(argv=None) -> None:
    args = parse_args(argv)
    fraction, seed = check_cell(args.method, args.fraction, args.seed)
    timings: dict = {}
    start = time.perf_counter()
    metrics = run_cell(args.method, fraction, seed, Path(args.out), Path(args.params),
                       Path(args.raw), Path(args.features), timings,
                       (Path(args.val_features), Path(args.val_split)), args.reuse_from)
    for variant, m in metrics["variants"].items():
        print(f"sweep cell {args.method} fraction {args.fraction} seed {seed}: {variant:17s} "
              f"T1 {m['t1']:6.2f}  U {m['u']:6.2f}  S {m['s']:6.2f}  H {m['h']:6.2f}  "
              f"S_seen {m['s_seen']}  S_unseen {m['s_unseen']}")
    print(f"sweep cell {args.out}: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
          + f", total {time.perf_counter() - start:.1f} s", file=sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
