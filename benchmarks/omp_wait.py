"""OpenMP wait policy vs training speed: DRG / DFG milliseconds per iteration on the default data.

    python benchmarks/omp_wait.py [--iters 40] [--prepared runs/prepared/prepared.npz]

Each setting runs in a fresh subprocess (libgomp reads OMP_WAIT_POLICY once, when torch loads)
and all of them in this one run, so the printed ratios are comparable.  Needs the `prepare`
stage output (`dvc repro prepare`).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time
import torch
from zerodiffpp.config import load_config
from zerodiffpp.data.prepared import PreparedData
from zerodiffpp.train_dfg import DFGTrainer
from zerodiffpp.train_drg import DRGTrainer
threads, iters, prepared = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)
cfg = load_config("params.yaml")
data = PreparedData.load(prepared)
out = {}
for name, cls, section in (("DRG", DRGTrainer, cfg.drg), ("DFG", DFGTrainer, cfg.dfg)):
    trainer = cls(data, section, cfg.diffusion, seed=0, runtime=cfg.runtime)
    for _ in range(3):
        trainer.iteration()
    start = time.perf_counter()
    for _ in range(iters):
        trainer.iteration()
    out[name] = (time.perf_counter() - start) / iters * 1000
print(json.dumps(out))
"""


def measure(policy: str | None, threads: int, iters: int, prepared: str) -> dict:
    env = dict(os.environ)
    env.pop("OMP_WAIT_POLICY", None)
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    res = subprocess.run([sys.executable, "-c", CHILD, str(threads), str(iters), prepared],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=40)
    parser.add_argument("--prepared", default="runs/prepared/prepared.npz")
    args = parser.parse_args()
    rows = [(policy, threads) for threads in (2, 1) for policy in (None, "PASSIVE")]
    results = {row: measure(*row, args.iters, args.prepared) for row in rows}
    base = results[(None, 2)]
    print(f"{'OMP_WAIT_POLICY':<16}{'threads':>8}{'DRG ms/it':>11}{'DFG ms/it':>11}"
          f"{'DRG x':>8}{'DFG x':>8}")
    for (policy, threads), ms in results.items():
        print(f"{policy or 'unset':<16}{threads:>8}{ms['DRG']:>11.1f}{ms['DFG']:>11.1f}"
              f"{ms['DRG'] / base['DRG']:>8.2f}{ms['DFG'] / base['DFG']:>8.2f}")
    print("x = time relative to the first row (unset, 2 threads); larger is slower")


if __name__ == "__main__":
    main()
