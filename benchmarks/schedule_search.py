"""Training schedules measured on validation classes only (issue: default schedules sized by
measurement, never by test accuracy).

    python benchmarks/schedule_search.py --method zerodiff --seeds 0 1 2 \
        --config "drg.epochs=6,dfg.epochs=6" --config "drg.epochs=4,dfg.epochs=4"

For every config and seed: the validation round of that seed on the default data, i.e. the
pipeline's own stages in a scratch folder -- prepare -> validation_split -> (train_drg, train_dfg,
evaluate --select | baseline --select) -- with params.yaml plus the config's overrides.  It
prints the validation-class scores of the chosen setting (GZSL H, U, S and ZSL T1, seed mean
+- sample std) and the round's wall time, so the schedules are compared on validation data and
on cost at once.  Nothing here reads test labels: the validation view holds seen classes only.
Needs `dvc repro val_features` (the validation round's feature extractors) first; a config
that changes a `features.*` value (e.g. `features.sc_source=x`) trains its own validation-round
extractors (the `val_features` stage's command) inside the round, so it is timed too.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def override(params: dict, assignments: str) -> dict:
    """``a.b=v,c.d=w`` applied to a copy of ``params`` (values parsed as YAML)."""
    out = copy.deepcopy(params)      # not a JSON round trip: it turns 0.1: keys into '0.1'
    for item in filter(None, (s.strip() for s in assignments.split(","))):
        key, _, value = item.partition("=")
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        if leaf not in node:
            raise SystemExit(f"--config {assignments!r}: unknown key {key}")
        node[leaf] = yaml.safe_load(value)
    return out


def stage(name: str, *args: str) -> None:
    cmd = [sys.executable, "-m", f"zerodiffpp.stages.{name}", *args]
    res = subprocess.run(cmd, capture_output=True, text=True,
                         env={**os.environ, "ZERODIFFPP_NO_PROGRESS": "1"})
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")


def validation_round(method: str, params: dict, work: Path,
                     base_features: dict) -> tuple[dict, float]:
    p = work / "params.yaml"
    p.write_text(yaml.safe_dump(params, sort_keys=False))
    P = ("--params", str(p))
    start = time.perf_counter()
    stage("prepare", *P, "--raw", "data/raw", "--features", "data/features", "--out", str(work / "prepared"))
    val_features = "runs/val/features"
    if params["features"] != base_features:      # e.g. features.sc_source=x: own extractors
        val_features = str(work / "val_features")
        stage("features", *P, "--raw", "data/raw", "--out", val_features,
              "--exclude-classes", "runs/val/split.json")
    stage("validation_split", *P, "--prepared", str(work / "prepared"), "--raw", "data/raw",
          "--features", val_features, "--split", "runs/val/split.json", "--out", str(work / "val"))
    sel = work / "selection.json"
    if method == "zerodiff":
        stage("train_drg", *P, "--prepared", str(work / "val"), "--out", str(work / "drg"),
              "--history", str(work / "drg.csv"))
        stage("train_dfg", *P, "--prepared", str(work / "val"), "--out", str(work / "dfg"),
              "--history", str(work / "dfg.csv"))
        stage("evaluate", *P, "--prepared", str(work / "val"), "--drg", str(work / "drg"),
              "--dfg", str(work / "dfg"), "--methods", "zerodiff", "--select", str(sel))
    else:
        stage("baseline", *P, "--method", method, "--prepared", str(work / "val"),
              "--out", str(work / method), "--history", str(work / f"{method}.csv"),
              "--select", str(sel))
    return json.loads(sel.read_text())[method]["val"], time.perf_counter() - start


def fmt(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):5.1f} +- {sd:4.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="zerodiff", choices=["zerodiff", "fclswgan", "fvaegan"])
    parser.add_argument("--config", action="append", required=True,
                        help="comma-separated overrides of params.yaml, e.g. dfg.epochs=4")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--params", default="params.yaml")
    args = parser.parse_args()
    base = yaml.safe_load(Path(args.params).read_text())
    print(f"{args.method}: validation-class scores of the chosen setting, seeds {args.seeds}")
    print(f"{'config':<44}{'val H':>14}{'val U':>14}{'val S':>14}{'val T1':>14}{'s/round':>9}")
    for config in args.config:
        scores, seconds = [], []
        for seed in args.seeds:
            params = override(base, config)
            params["train"]["seed"] = seed
            with tempfile.TemporaryDirectory(prefix="schedule-") as tmp:
                val, sec = validation_round(args.method, params, Path(tmp), base["features"])
            scores.append(val)
            seconds.append(sec)
        cols = "".join(f"{fmt([s[k] for s in scores]):>14}" for k in ("h", "u", "s", "t1"))
        print(f"{config or '(params.yaml)':<44}{cols}{statistics.mean(seconds):>9.1f}", flush=True)


if __name__ == "__main__":
    main()
