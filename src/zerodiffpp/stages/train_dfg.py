"""Train the Diffusion Feature Generator (stage 2, METHOD.md 2.4 / 3.3-3.5).

``python -m zerodiffpp.stages.train_dfg [--params params.yaml] [--prepared runs/prepared]
[--out runs/dfg] [--history plots/history/dfg.csv]``

Reads ``runtime``, ``train``, ``diffusion`` and ``dfg``; see :mod:`.train_generator`.  The DRG
is not used for training, only at synthesis, so the two stages are independent DVC stages
(``synthesis.load_models`` checks that the pair matches).
"""
from __future__ import annotations

from .common import run_stage
from .train_generator import train_stage


@run_stage
def main(argv=None) -> None:
    train_stage("dfg", "zerodiffpp.train_dfg:DFGTrainer", __doc__.splitlines()[0], argv, extra="lambda")


if __name__ == "__main__":
    raise SystemExit(main())
