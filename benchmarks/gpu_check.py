"""GPU readiness check: what a GPU machine runs first (benchmarks/gpu_check.sh, ~5 min on one GPU).

    python benchmarks/gpu_check.py [--device cuda] [--shape awa2] [--iters 5]
                                   [--pipeline small] [--threads N] [--workdir DIR]

Prints one table in three parts:

1. training throughput: DRG and DFG generator iterations/s at ``--shape`` (AWA2: x 2048,
   c 2048, attr 85, hidden 4096, batch 64, 5 critic steps) in fp32 and in bf16 autocast on
   ``--device``, each next to the matmul rate measured in the same run at exactly that
   iteration's matmul shapes (benchmarks/bench_train.py's MachineRate: every matmul of one
   iteration recorded and re-timed in isolation) and a square matmul of the same precision;
2. a tiny end-to-end pipeline on ``--device``: synthetic dataset -> features -> one zerodiff sweep
   cell (prepare, DRG, DFG, evaluation of ZeroDiff, + DiffTTA, + DiffGen, ZeroDiff++,
   spuriousness), timed per step;
3. the same pipeline on the CPU and the absolute difference of every metric (T1, U, S, H in
   points, S_seen / S_unseen) between the two runs.  With ``--device cpu`` both runs are on the
   CPU and every difference must be 0 (the pipeline is deterministic on CPU), which is what the
   test (tests/test_benchmarks.py) checks on tiny sizes.

CPU and CUDA draw different random numbers (torch generators are per device) and CUDA kernels
sum in another order, so on a GPU the differences measure the run-to-run spread of the whole
pipeline at these sizes, not a bug; compare them with the seed spread of the sweep.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
import bench_train  # noqa: E402  (same folder: the trainer timing against the same-run matmul rate)

from zerodiffpp.config import DFGConfig, DRGConfig, RuntimeConfig  # noqa: E402
from zerodiffpp.train_dfg import DFGTrainer  # noqa: E402
from zerodiffpp.train_drg import DRGTrainer  # noqa: E402
from zerodiffpp.trainloop import random_prepared_data  # noqa: E402

SHAPES = {**bench_train.SHAPES,
          "tiny": dict(x_dim=32, c_dim=32, attr_dim=8, hidden=32, n_train=256, n_seen=8, n_unseen=2)}
SQUARE = {"awa2": 8192, "animals": 2048, "tiny": 256}     # square matmul size per --shape

# Pipeline sizes over the repo's params.yaml (synthetic data: no download, no network).
# "small" keeps the default widths (hidden 256, 256-d features) with fewer epochs.
PIPELINES = {
    "tiny": {
        "features": {"feature_dim": 32, "ce_epochs": 1, "sc_epochs": 1, "batch_size": 256,
                     "projection_dim": 16},
        "drg": {"epochs": 1, "hidden_dim": 32, "critic_steps": 2, "batch_size": 128},
        "dfg": {"epochs": 1, "hidden_dim": 32, "critic_steps": 2, "batch_size": 128},
        "eval": {"syn_per_class": 30, "classifier_epochs": 3},
        "tta": {"rounds": 1, "epochs": 1},
        "spurious": {"probe_epochs": 1, "probe_hidden": 16, "syn_per_class": 20},
    },
    "small": {
        "features": {"ce_epochs": 2, "sc_epochs": 2},
        "drg": {"epochs": 3},
        "dfg": {"epochs": 3},
        "tta": {"rounds": 1, "epochs": 3},
    },
}
METRICS = ("t1", "u", "s", "h", "s_seen", "s_unseen")


def _update(base: dict, over: dict) -> dict:
    """Merge ``over`` into ``base``, skipping keys params.yaml no longer has (the sizes above are
    written against a params.yaml that keeps changing; an unknown key would be refused)."""
    for key, value in over.items():
        if key not in base:
            continue
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _update(base[key], value)
        else:
            base[key] = value
    return base


def pipeline_params(size: str, threads: int) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params.pop("sweep", None)
    _update(params, copy.deepcopy(PIPELINES[size]))
    params["data"]["dataset"] = "synthetic"
    params["runtime"].update(threads=threads, progress=False, precision="fp32")
    if "selection" in params.get("eval", {}):
        params["eval"]["selection"] = "fixed"     # one cell, no validation round: as written
    return params


# --------------------------------------------------------------------------- 1. throughput


def square_rate(device: torch.device, n: int, dtype: torch.dtype) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    wall, _ = bench_train._time_call("mm", ((tuple(a.shape), a.stride(), dtype),
                                            (tuple(b.shape), b.stride(), dtype)), (), device,
                                     min_time=0.3, args=[a, b])
    return 2 * n ** 3 / wall


def throughput(device: torch.device, shape_name: str, iters: int, threads: int) -> list[dict]:
    shape = SHAPES[shape_name]
    data = random_prepared_data(n_train=shape["n_train"], x_dim=shape["x_dim"], c_dim=shape["c_dim"],
                                attr_dim=shape["attr_dim"], n_seen=shape["n_seen"],
                                n_unseen=shape["n_unseen"], n_test=8, seed=0)
    common = dict(batch_size=64, critic_steps=5, hidden_dim=shape["hidden"])
    rows = []
    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        runtime = RuntimeConfig(device=device.type, threads=threads, precision=precision,
                                progress=False)
        row = {"precision": precision, "square": square_rate(device, SQUARE[shape_name], dtype)}
        for name, cls, cfg in (("DRG", DRGTrainer, DRGConfig(**common)),
                               ("DFG", DFGTrainer, DFGConfig(**common))):
            (r,) = bench_train.bench_stage(name, cls, cfg, data, runtime, device, iters, False)
            best = r["best"]
            row[name] = {"it_s": 1.0 / best["wall"], "achieved": best["achieved"],
                         "machine": best["machine"], "gflop_it": r["flops"] / 1e9}
        rows.append(row)
    return rows


# --------------------------------------------------------------------------- 2./3. pipeline


def _stage(name: str, main, argv: list[str], log) -> float:
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        rc = main(argv)
    if rc:
        raise SystemExit(f"gpu_check: pipeline stage {name} failed (exit {rc}); its output is in "
                         f"{log.name}")
    return time.perf_counter() - t0


def run_pipeline(workdir: Path, params: dict, device: str) -> dict:
    """download (synthetic) -> features -> one zerodiff sweep cell at fraction 1.0, seed 0, on
    ``device``; returns the seconds per step and the cell's metrics per variant."""
    from zerodiffpp.stages import download, features, sweep_cell

    workdir.mkdir(parents=True, exist_ok=True)
    p = copy.deepcopy(params)
    p["runtime"]["device"] = device
    path = workdir / "params.yaml"
    path.write_text(yaml.safe_dump(p, sort_keys=False))
    raw, feats, cell = workdir / "raw", workdir / "features", workdir / "sweep" / "zerodiff-1.0-0"
    seconds = {}
    with open(workdir / "pipeline.log", "w") as log:
        seconds["download"] = _stage("download", download.main,
                                     ["--params", str(path), "--out", str(raw)], log)
        seconds["features"] = _stage("features", features.main,
                                     ["--params", str(path), "--raw", str(raw), "--out", str(feats)], log)
        seconds["cell"] = _stage("sweep_cell", sweep_cell.main,
                                 ["--params", str(path), "--method", "zerodiff", "--fraction", "1.0",
                                  "--seed", "0", "--out", str(cell), "--raw", str(raw),
                                  "--features", str(feats)], log)
    metrics = json.loads((cell / "metrics.json").read_text())["variants"]
    return {"seconds": seconds, "metrics": metrics, "log": str(workdir / "pipeline.log")}


def metric_differences(a: dict, b: dict) -> dict:
    return {v: {m: abs(float(a[v][m]) - float(b[v][m])) for m in METRICS
                if a[v].get(m) is not None and b[v].get(m) is not None} for v in a}


# --------------------------------------------------------------------------- table


def print_table(env: str, shape_name: str, rows: list[dict], pipeline: str, runs: dict,
                diffs: dict, device: str) -> None:
    print(f"\n## gpu_check: {env}\n")
    print(f"| training at {shape_name} shapes | " + " | ".join(r["precision"] for r in rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for name in ("DRG", "DFG"):
        print(f"| {name} it/s | " + " | ".join(f"{r[name]['it_s']:.2f}" for r in rows) + " |")
        print(f"| {name} achieved / same-run matmul rate at its shapes, GFLOP/s | " + " | ".join(
            f"{r[name]['achieved'] / 1e9:.0f} / {r[name]['machine'] / 1e9:.0f} "
            f"({r[name]['achieved'] / r[name]['machine']:.0%})" for r in rows) + " |")
    n = SQUARE[shape_name]
    print(f"| square matmul ({n}x{n})@({n}x{n}), GFLOP/s | "
          + " | ".join(f"{r['square'] / 1e9:.0f}" for r in rows) + " |")
    print()
    devices = list(runs)
    print(f"| {pipeline} pipeline (synthetic), seconds | " + " | ".join(devices) + " |")
    print("|---|" + "---:|" * len(devices))
    for step in ("download", "features", "cell"):
        print(f"| {step} | " + " | ".join(f"{runs[d]['seconds'][step]:.1f}" for d in devices) + " |")
    print()
    a, b = (runs[d]["metrics"] for d in devices)
    print(f"| variant | T1 / H ({devices[0]}) | T1 / H ({devices[1]}) | "
          + " | ".join(f"abs diff {m}" for m in METRICS) + " |")
    print("|---|---:|---:|" + "---:|" * len(METRICS))
    for v, d in diffs.items():
        print(f"| {v} | {a[v]['t1']:.2f} / {a[v]['h']:.2f} | {b[v]['t1']:.2f} / {b[v]['h']:.2f} | "
              + " | ".join(f"{d[m]:.4g}" if m in d else "-" for m in METRICS) + " |")
    worst = max((x for d in diffs.values() for x in d.values()), default=0.0)
    print(f"\nlargest CPU-vs-{device} metric difference: {worst:.4g} "
          f"(accuracies in points, spuriousness in its own units)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="awa2",
                        help="trainer shapes of the throughput part (default awa2)")
    parser.add_argument("--iters", type=int, default=5, help="timed rounds per trainer and precision")
    parser.add_argument("--pipeline", choices=sorted(PIPELINES), default="small",
                        help="size of the end-to-end pipeline (default small)")
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 16),
                        help="torch CPU threads (default: the machine's cores, at most 16)")
    parser.add_argument("--workdir", default=None, help="keep the pipeline runs here (default: a "
                                                        "temporary directory, removed)")
    args = parser.parse_args(argv)
    if args.iters < 1:
        parser.error(f"--iters {args.iters}: at least 1")
    if args.device not in ("cuda", "cpu"):
        parser.error(f"--device {args.device!r}: cuda or cpu")
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"error: --device cuda: torch {torch.__version__} sees no CUDA device "
              f"(built for CUDA {torch.version.cuda}); check nvidia-smi and the CUDA build of torch, "
              "or run with --device cpu", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    env = (f"torch {torch.__version__}, {args.threads} CPU threads, device {device}"
           + (f" ({torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}, bf16 "
              f"{'yes' if torch.cuda.is_bf16_supported() else 'no'})" if device.type == "cuda" else ""))
    print(f"gpu_check: {env}", flush=True)
    t0 = time.perf_counter()
    rows = throughput(device, args.shape, args.iters, args.threads)
    print(f"gpu_check: throughput part {time.perf_counter() - t0:.0f} s", flush=True)

    params = pipeline_params(args.pipeline, args.threads)
    with contextlib.ExitStack() as stack:
        work = Path(args.workdir) if args.workdir else Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="gpu_check-")))
        runs = {}
        # the reference CPU run and the device run (a second CPU run for --device cpu)
        for label, dev in ((f"{args.device}", args.device), ("cpu" if args.device != "cpu" else "cpu again", "cpu")):
            t = time.perf_counter()
            runs[label] = run_pipeline(work / label.replace(" ", "_"), params, dev)
            print(f"gpu_check: pipeline on {label}: {time.perf_counter() - t:.0f} s "
                  f"(log {runs[label]['log']})", flush=True)
        labels = list(runs)
        diffs = metric_differences(runs[labels[1]]["metrics"], runs[labels[0]]["metrics"])
        print_table(env, args.shape, rows, args.pipeline, runs, diffs, args.device)
    print(f"\ngpu_check: total {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
