"""The body shared by the ``train_drg`` and ``train_dfg`` entry points.

Reads ``runtime``, ``train``, ``diffusion`` and the stage's own section (``drg`` / ``dfg``) and
the seen training samples of ``prepared.npz`` (no test data).  Writes ``<out>/model.pt`` (after
every epoch, atomically; a compatible checkpoint found there is resumed, see
docs/reliability.md) and the per-epoch history CSV.
"""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional, Sequence

from .. import runtime
from ..config import load_config
from ..data.prepared import PreparedData
from .common import stage_parser


def train_stage(section: str, trainer: str, description: str, argv: Optional[Sequence[str]] = None,
                extra: Optional[str] = None) -> None:
    """``section``: ``drg`` or ``dfg`` (params section, output names); ``trainer``:
    ``"module:Class"`` of the TrainLoop, imported only once the inputs are valid; ``extra``: a
    history column to print besides the losses."""
    module, class_name = trainer.split(":")
    parser = stage_parser(f"train_{section}", description)
    parser.add_argument("--prepared", default="runs/prepared", help="prepare stage output dir")
    parser.add_argument("--out", default=f"runs/{section}", help="output dir (model.pt)")
    parser.add_argument("--history", default=f"plots/history/{section}.csv", help="per-epoch history CSV")
    args = parser.parse_args(argv)

    cfg = load_config(args.params, sections=("runtime", "train", "diffusion", section))
    device = runtime.setup(cfg.runtime, cfg.train.seed)
    data = PreparedData.load(Path(args.prepared) / "prepared.npz")

    # heavy imports only once the inputs are valid
    trainer_cls = getattr(importlib.import_module(module), class_name)
    from ..trainloop import TrainingDivergedError, fit_to_output

    stage_cfg = getattr(cfg, section)
    trainer = trainer_cls(data, stage_cfg, cfg.diffusion, seed=cfg.train.seed, device=device,
                          runtime=cfg.runtime)
    target = Path(args.out) / "model.pt"
    try:
        fit_to_output(trainer, stage_cfg.epochs, target, args.history)
    except TrainingDivergedError as exc:
        raise SystemExit(f"error: {exc}") from None
    last = trainer.history[-1]
    total = sum(row["seconds"] for row in trainer.history)
    more = f", {extra} {last[extra]:.4g}" if extra else ""
    print(f"train_{section}: {trainer.epoch} epochs x {trainer.iters_per_epoch} it on {device}, "
          f"loss_D {last['loss_D']:.4g}, loss_G {last['loss_G']:.4g}{more}, {total:.1f} s -> {target}")
