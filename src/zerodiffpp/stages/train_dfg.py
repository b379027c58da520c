"""Train the Diffusion Feature Generator (stage 2, METHOD.md 2.4 / 3.3-3.5).

``python -m zerodiffpp.stages.train_dfg [--params params.yaml] [--prepared runs/prepared]
[--out runs/dfg] [--history plots/history/dfg.csv]``

Reads ``runtime``, ``train``, ``diffusion`` and ``dfg`` and the seen training samples of
``prepared.npz`` (no test data).  The DRG is not used for training, only at synthesis, so
the two stages are independent DVC stages (``synthesis.load_models`` checks that the pair
matches).  Writes ``<out>/model.pt`` (after every epoch, atomically; a compatible
checkpoint found there is resumed) and the per-epoch history CSV.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import runtime
from ..config import load_config
from ..data.prepared import PreparedData
from .common import run_stage


@run_stage
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m zerodiffpp.stages.train_dfg",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="parameter file")
    parser.add_argument("--prepared", default="runs/prepared", help="prepare stage output dir")
    parser.add_argument("--out", default="runs/dfg", help="output dir (model.pt)")
    parser.add_argument("--history", default="plots/history/dfg.csv", help="per-epoch history CSV")
    args = parser.parse_args(argv)

    cfg = load_config(args.params, sections=("runtime", "train", "diffusion", "dfg"))
    device = runtime.setup(cfg.runtime, cfg.train.seed)
    data = PreparedData.load(Path(args.prepared) / "prepared.npz")

    from ..train_dfg import DFGTrainer   # heavy imports only once the inputs are valid
    from ..trainloop import TrainingDivergedError, fit_to_output

    trainer = DFGTrainer(data, cfg.dfg, cfg.diffusion, seed=cfg.train.seed, device=device,
                         runtime=cfg.runtime)
    try:
        fit_to_output(trainer, cfg.dfg.epochs, Path(args.out) / "model.pt", args.history)
    except TrainingDivergedError as exc:
        raise SystemExit(f"error: {exc}") from None
    last = trainer.history[-1]
    total = sum(row["seconds"] for row in trainer.history)
    print(f"train_dfg: {trainer.epoch} epochs x {trainer.iters_per_epoch} it on {device}, "
          f"loss_D {last['loss_D']:.4g}, loss_G {last['loss_G']:.4g}, lambda {last['lambda']:.4g}, "
          f"{total:.1f} s -> {Path(args.out) / 'model.pt'}")


if __name__ == "__main__":
    raise SystemExit(main())
