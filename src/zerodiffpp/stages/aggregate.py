"""DVC stage ``aggregate``: mean and std over seeds of the scarce-data sweep cells.

``python -m zerodiffpp.stages.aggregate [--params params.yaml] [--cells runs/sweep]
[--metrics metrics/sweep.json] [--rows metrics/sweep] [--long plots/sweep.csv]
[--summary plots/sweep_summary.csv]``

Reads ``sweep`` (methods, fractions, seeds) and exactly the cells they name,
``<cells>/<method>-<fraction>-<seed>/metrics.json`` (see :mod:`zerodiffpp.aggregate`); a missing
cell stops the stage with a message naming it.  ``--rows``: the sweep's rows of the results
table, ``<rows>/<fraction key>/<method>.json`` = {T1, U, S, H, H_sd} (:mod:`zerodiffpp.table`),
the declared DVC metrics of this stage (the folder is replaced as a whole).
"""
from __future__ import annotations

from ..aggregate import SweepError, aggregate
from ..config import load_config
from ..io import DataError, write_csv, write_json
from ..table import sweep_rows, write_rows
from .common import atomic_dir, run_stage, stage_parser


@run_stage
def main(argv=None) -> None:
    parser = stage_parser("aggregate", __doc__)
    parser.add_argument("--cells", default="runs/sweep", help="directory of the sweep cells")
    parser.add_argument("--metrics", default="metrics/sweep.json", help="summary metrics JSON")
    parser.add_argument("--rows", default="metrics/sweep",
                        help="folder of the results-table rows (<fraction key>/<method>.json)")
    parser.add_argument("--long", default="plots/sweep.csv",
                        help="long-form CSV (method, fraction, seed, metric, value)")
    parser.add_argument("--summary", default="plots/sweep_summary.csv",
                        help="wide CSV of seed means per fraction (dvc plots)")
    args = parser.parse_args(argv)
    sweep = load_config(args.params, sections=("sweep",)).sweep
    try:
        summary, long, wide = aggregate(args.cells, sweep.methods, sweep.fractions, sweep.seeds)
    except SweepError as exc:
        raise DataError(str(exc)) from None
    write_json(args.metrics, summary)
    with atomic_dir(args.rows) as tmp:
        for frac, rows in sweep_rows(summary).items():
            write_rows(tmp / frac, rows)
    write_csv(args.long, long)
    write_csv(args.summary, wide)
    n = len(sweep.methods) * len(sweep.fractions) * len(sweep.seeds)
    for variant, per in summary.items():
        cols = "  ".join(f"{k} H {v['h']['mean']}±{v['h']['std']}" for k, v in per.items())
        print(f"aggregate {variant:17s} {cols}")
    print(f"aggregate: {n} cells -> {args.metrics}, {args.rows}/, {args.long}, {args.summary}")


if __name__ == "__main__":
    raise SystemExit(main())
