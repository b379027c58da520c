"""Train the Diffusion Representation Generator (stage 1, METHOD.md 2.3 / 3.2).

``python -m zerodiffpp.stages.train_drg [--params params.yaml] [--prepared runs/prepared]
[--out runs/drg] [--history plots/history/drg.csv]``

Reads ``runtime``, ``train``, ``diffusion`` and ``drg``; see :mod:`.train_generator`.
"""
from __future__ import annotations

from .common import run_stage
from .train_generator import train_stage


@run_stage
def main(argv=None) -> None:
    train_stage("drg", "zerodiffpp.train_drg:DRGTrainer", __doc__.splitlines()[0], argv)


if __name__ == "__main__":
    raise SystemExit(main())
