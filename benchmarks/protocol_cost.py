"""Cost of the validation-class protocol (docs/protocol.md), measured in one process, one run.

    python benchmarks/protocol_cost.py [--params params.yaml] [--runs runs] [--methods ...]

After ``dvc repro`` (it reuses the trained generators in ``runs/``: ``drg``, ``dfg`` and the
validation round's ``val/drg``, ``val/dfg``), times three evaluations of the same models in a row:

1. ``fixed``    the evaluate stage under ``eval.selection: fixed`` (the protocol before this one);
2. ``select``   the validation round's selection (``evaluate --select`` on ``runs/val``);
3. ``final``    the evaluate stage with that selection;

and prints the ratio (select + final) / fixed, plus the validation round's generator training
time (from its history CSVs) next to the final generators' (the same params train both).
Nothing in ``runs/`` or ``metrics/`` is written: outputs go to a temporary directory.
"""
from __future__ import annotations

import argparse
import csv
import sys
import tempfile
import time
from pathlib import Path

import yaml


def history_seconds(path: Path) -> float:
    if not path.exists():
        return float("nan")
    with path.open() as f:
        return sum(float(row["seconds"]) for row in csv.DictReader(f))


def main(argv=None) -> int:
    from zerodiffpp.stages import evaluate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--runs", default="runs", help="the pipeline's runs/ directory")
    parser.add_argument("--methods", default=",".join(evaluate.METHODS),
                        help="evaluate --methods for the fixed and final runs")
    args = parser.parse_args(argv)
    runs = Path(args.runs)
    raw = yaml.safe_load(Path(args.params).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fixed = dict(raw, eval={**raw.get("eval", {}), "selection": "fixed"},
                     runtime={**raw.get("runtime", {}), "progress": False})
        valid = dict(raw, eval={**raw.get("eval", {}), "selection": "validation"},
                     runtime={**raw.get("runtime", {}), "progress": False})
        for name, body in (("fixed", fixed), ("validation", valid)):
            (tmp / f"{name}.yaml").write_text(yaml.safe_dump(body, sort_keys=False))

        def final_args(params, out, *extra):
            return ["--params", str(tmp / params), "--prepared", str(runs / "prepared"),
                    "--drg", str(runs / "drg"), "--dfg", str(runs / "dfg"),
                    "--methods", args.methods, "--metrics", str(tmp / out / "m.json"),
                    "--per-class", str(tmp / out / "pc.csv"), "--eval-dir", str(tmp / out), *extra]

        timings = {}
        for name, argv_ in (
                ("fixed", final_args("fixed.yaml", "fixed")),
                ("select", ["--params", str(tmp / "validation.yaml"),
                            "--prepared", str(runs / "val" / "prepared"),
                            "--drg", str(runs / "val" / "drg"), "--dfg", str(runs / "val" / "dfg"),
                            "--methods", "zerodiff", "--select", str(tmp / "selection.json")]),
                ("final", final_args("validation.yaml", "final",
                                     "--selection", str(tmp / "selection.json")))):
            start = time.perf_counter()
            if evaluate.main(argv_) != 0:
                print(f"protocol_cost: the {name} evaluation failed", file=sys.stderr)
                return 1
            timings[name] = time.perf_counter() - start

    base = timings["fixed"]
    print(f"{'part':34s} {'seconds':>8s} {'x fixed':>8s}")
    for name, label in (("fixed", "fixed evaluation (before)"), ("select", "validation selection"),
                        ("final", "final evaluation (validation)")):
        print(f"{label:34s} {timings[name]:8.1f} {timings[name] / base:8.2f}")
    both = timings["select"] + timings["final"]
    print(f"{'selection + final':34s} {both:8.1f} {both / base:8.2f}")
    val_train = history_seconds(runs / "val" / "history" / "drg.csv") + \
        history_seconds(runs / "val" / "history" / "dfg.csv")
    print(f"validation-round DRG+DFG training (history CSVs, earlier run): {val_train:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
