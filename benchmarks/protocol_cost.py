"""Cost of the validation-class protocol (docs/protocol.md), measured in one process, one run.

    python benchmarks/protocol_cost.py [--params params.yaml] [--runs runs] [--methods ...]
                                       [--repeat N]

After ``dvc repro`` (it reuses the trained generators in ``runs/``: ``drg``, ``dfg`` and the
validation round's ``val/drg``, ``val/dfg``), times three evaluations of the same models in a row:

1. ``fixed``    the evaluate stage under ``eval.selection: fixed`` (the protocol before this one);
2. ``select``   the validation round's selection (``evaluate --select`` on ``runs/val``);
3. ``final``    the evaluate stage with that selection;

and prints the ratio (select + final) / fixed, plus the validation round's generator training
time (from its history CSVs) next to the final generators' (the same params train both).
``--repeat N`` runs the three in turn N times and reports each part's fastest run (the usual
answer to a shared machine's noise, as ``timeit`` does) and every round's own ratio.

Wall time on a 2-core VM moves by 20 % between identical runs, so each part's classifier work
is also counted: the multiply-adds of the final classifiers' training products (batch x input
width x classes per step, forward and gradient; ``zerodiffpp.classifier._step``), which are 70-90
% of all three parts' time.  That count depends only on the params and the chosen settings, so
its ratio is the same on every machine and every run.
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


class WorkCounter:
    """Counts the multiply-adds of every classifier training step (forward + gradient)."""

    def __init__(self):
        from zerodiffpp import classifier

        self.module, self.step, self.total = classifier, classifier._step, 0

    def __enter__(self):
        def counted(xb, yb, wb, weight, bias):
            self.total += 2 * xb.shape[0] * xb.shape[1] * weight.shape[0]
            return self.step(xb, yb, wb, weight, bias)

        self.module._step = counted
        return self

    def __exit__(self, *exc):
        self.module._step = self.step


def main(argv=None) -> int:
    from zerodiffpp.stages import evaluate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--runs", default="runs", help="the pipeline's runs/ directory")
    parser.add_argument("--methods", default=",".join(evaluate.METHODS),
                        help="evaluate --methods for the fixed and final runs")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of (fixed, select, final); each part's fastest is reported")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
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

        parts = (
            ("fixed", final_args("fixed.yaml", "fixed")),
            ("select", ["--params", str(tmp / "validation.yaml"),
                        "--prepared", str(runs / "val" / "prepared"),
                        "--drg", str(runs / "val" / "drg"), "--dfg", str(runs / "val" / "dfg"),
                        "--methods", "zerodiff", "--select", str(tmp / "selection.json")]),
            ("final", final_args("validation.yaml", "final",
                                 "--selection", str(tmp / "selection.json"))))
        rounds, work = [], {}
        for _ in range(args.repeat):
            timings = {}
            for name, argv_ in parts:
                with WorkCounter() as counter:
                    start = time.perf_counter()
                    rc = evaluate.main(argv_)
                    timings[name] = time.perf_counter() - start
                if rc != 0:
                    print(f"protocol_cost: the {name} evaluation failed", file=sys.stderr)
                    return 1
                work[name] = counter.total     # the same in every round
            rounds.append(timings)

    def ratio(t):
        return (t["select"] + t["final"]) / t["fixed"]

    best = {name: min(r[name] for r in rounds) for name, _ in parts}
    base = best["fixed"]
    what = "fastest of %d rounds" % len(rounds) if len(rounds) > 1 else "one round"
    print(f"{'part (' + what + ')':34s} {'seconds':>8s} {'x fixed':>8s} "
          f"{'classifier GMAC':>16s} {'x fixed':>8s}")
    rows = [("fixed", "fixed evaluation (before)", best["fixed"], work["fixed"]),
            ("select", "validation selection", best["select"], work["select"]),
            ("final", "final evaluation (validation)", best["final"], work["final"]),
            ("both", "selection + final", best["select"] + best["final"],
             work["select"] + work["final"])]
    for _, label, seconds, macs in rows:
        print(f"{label:34s} {seconds:8.1f} {seconds / base:8.2f} {macs / 1e9:16.0f} "
              f"{macs / work['fixed']:8.2f}")
    if len(rounds) > 1:
        print("per round (fixed / select / final s, ratio): " + "; ".join(
            f"{r['fixed']:.1f} / {r['select']:.1f} / {r['final']:.1f}, {ratio(r):.2f}x"
            for r in rounds))
    val_train = history_seconds(runs / "val" / "history" / "drg.csv") + \
        history_seconds(runs / "val" / "history" / "dfg.csv")
    print(f"validation-round DRG+DFG training (history CSVs, earlier run): {val_train:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
