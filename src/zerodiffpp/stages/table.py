"""DVC stage ``table``: the results table that ``dvc metrics show`` prints (rows = methods).

``python -m zerodiffpp.stages.table [--params params.yaml] [--metrics metrics]
[--sweep metrics/sweep.json] [--out metrics]``

Reads ``eval.selection`` and the detail files in ``--metrics`` (main run, selections) and
``--sweep`` (seed means); writes ``<out>/<method>/main.json`` and ``<out>/<method>/p<pct>.json``
(see :mod:`zerodiffpp.table`).  Each method folder is replaced as a whole, so an interrupted
run leaves the old rows.
"""
from __future__ import annotations

from pathlib import Path

from ..config import load_config
from ..table import ROWS, main_rows, read_detail, rows_by_method, sweep_rows, write_method_rows
from .common import atomic_dir, run_stage, stage_parser


@run_stage
def main(argv=None) -> None:
    parser = stage_parser("table", __doc__)
    parser.add_argument("--metrics", type=Path, default=Path("metrics"),
                        help="folder of the detail files (zerodiff.json, baselines/, selection/)")
    parser.add_argument("--sweep", type=Path, default=Path("metrics/sweep.json"),
                        help="the aggregate stage's seed means")
    parser.add_argument("--out", type=Path, default=Path("metrics"),
                        help="root of the <method>/ row folders")
    args = parser.parse_args(argv)
    cfg = load_config(args.params, sections=("eval",))
    rows = rows_by_method(main_rows(args.metrics, cfg.eval.selection),
                          sweep_rows(read_detail(args.sweep)))
    for method in ROWS:
        with atomic_dir(args.out / method) as tmp:
            write_method_rows(tmp, rows[method])
    for method in ROWS:
        for name, row in rows[method].items():
            cells = "  ".join(f"{k} {v}" for k, v in row.items())
            print(f"table {method:17s} {name:5s} {cells}")
    print(f"table: {len(ROWS)} methods -> {args.out}/<method>/")


if __name__ == "__main__":
    raise SystemExit(main())
