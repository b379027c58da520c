"""DVC stage ``table``: the main run's rows of the results table (``dvc metrics show``).

``python -m zerodiffpp.stages.table [--params params.yaml] [--metrics metrics]
[--out metrics/main]``

Reads ``eval.selection`` and the detail files in ``--metrics`` (``zerodiff.json``,
``baselines/``, ``selection/``); writes ``<out>/<method>.json`` = {T1, U, S, H, chosen} (see
:mod:`zerodiffpp.table`; the sweep's rows come from the aggregate stage).  The folder is
replaced as a whole, so an interrupted run leaves the old rows.
"""
from __future__ import annotations

from pathlib import Path

from ..config import load_config
from ..table import main_rows, write_rows
from .common import atomic_dir, run_stage, stage_parser


@run_stage
def main(argv=None) -> None:
    parser = stage_parser("table", __doc__)
    parser.add_argument("--metrics", type=Path, default=Path("metrics"),
                        help="folder of the detail files (zerodiff.json, baselines/, selection/)")
    parser.add_argument("--out", type=Path, default=Path("metrics/main"),
                        help="folder of the rows (one <method>.json each)")
    args = parser.parse_args(argv)
    cfg = load_config(args.params, sections=("eval",))
    rows = main_rows(args.metrics, cfg.eval.selection)
    with atomic_dir(args.out) as tmp:
        write_rows(tmp, rows)
    for method, row in rows.items():
        print(f"table {method:17s} " + "  ".join(f"{k} {v}" for k, v in row.items()))
    print(f"table: {len(rows)} rows -> {args.out}/")


if __name__ == "__main__":
    raise SystemExit(main())
