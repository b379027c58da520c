"""Train the Diffusion Feature Generator (stage 2, METHOD.md 2.4 / 3.3-3.5).

``python -m zerodiffpp.stages.train_dfg [--params params.yaml] [--prepared runs/prepared]
[--drg runs/drg] [--out runs/dfg] [--history plots/history/dfg.csv]``

Reads ``runtime``, ``train``, ``diffusion`` and ``dfg`` and the seen training samples of
``prepared.npz`` (no test data).  The DRG is not used for training (only at synthesis); if its
checkpoint exists it is checked for matching dimensions and schedule so that the pair can be
loaded together later.  Writes ``<out>/model.pt`` (after every epoch, atomically; a compatible
checkpoint found there is resumed) and the per-epoch history CSV.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from .. import runtime
from ..config import load_config
from ..data.prepared import PreparedData
from ..io import DataError
from .common import run_stage


def check_drg(drg_dir: Path, data: PreparedData, diffusion) -> None:
    """The DRG checkpoint (if any) must match this data's dims and the diffusion schedule."""
    path = drg_dir / "model.pt"
    if not path.exists():
        print(f"train_dfg: note: no DRG checkpoint at {path} yet (needed for synthesis only)")
        return
    from ..io import load_checkpoint

    meta = load_checkpoint(path).get("meta", {})
    expected = {"stage": "DRG", "c_dim": data.c_dim, "attr_dim": data.attr_dim,
                "n_steps": diffusion.n_steps, "beta_min": diffusion.beta_min,
                "beta_max": diffusion.beta_max}
    for key, value in expected.items():
        if meta.get(key) != value:
            raise DataError(f"{path}: {key}={meta.get(key)!r} does not match this run ({value!r}); "
                            f"retrain the DRG stage first")


@run_stage
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m zerodiffpp.stages.train_dfg",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="parameter file")
    parser.add_argument("--prepared", default="runs/prepared", help="prepare stage output dir")
    parser.add_argument("--drg", default="runs/drg", help="DRG output dir (checked, not trained)")
    parser.add_argument("--out", default="runs/dfg", help="output dir (model.pt)")
    parser.add_argument("--history", default="plots/history/dfg.csv", help="per-epoch history CSV")
    args = parser.parse_args(argv)

    cfg = load_config(args.params, sections=("runtime", "train", "diffusion", "dfg"))
    device = runtime.setup(cfg.runtime, cfg.train.seed)
    data = PreparedData.load(Path(args.prepared) / "prepared.npz")
    check_drg(Path(args.drg), data, cfg.diffusion)

    from ..train_dfg import DFGTrainer   # heavy imports only once the inputs are valid
    from ..trainloop import TrainingDivergedError, fit

    trainer = DFGTrainer(data, cfg.dfg, cfg.diffusion, seed=cfg.train.seed, device=device,
                         runtime=cfg.runtime)
    try:
        fit(trainer, cfg.dfg.epochs, Path(args.out) / "model.pt", args.history)
    except TrainingDivergedError as exc:
        raise SystemExit(f"error: {exc}") from None
    last = trainer.history[-1]
    total = sum(row["seconds"] for row in trainer.history)
    print(f"train_dfg: {trainer.epoch} epochs x {trainer.iters_per_epoch} it on {device}, "
          f"loss_D {last['loss_D']:.4g}, loss_G {last['loss_G']:.4g}, lambda {last['lambda']:.4g}, "
          f"{total:.1f} s -> {Path(args.out) / 'model.pt'}")


if __name__ == "__main__":
    raise SystemExit(main())
