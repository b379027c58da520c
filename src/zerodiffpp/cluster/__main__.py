"""``python -m zerodiffpp.cluster submit|status|requeue``: the sweep grid on a SLURM cluster."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import ClusterError
from .jobscript import JobOptions


def _cells(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [c for v in values for c in v.split(",") if c]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m zerodiffpp.cluster",
        description="Run the scarce-data sweep cells (dvc.yaml sweep@<cell>) as SLURM jobs, one "
                    "git worktree per cell, against a shared DVC cache (README 'Running the grid "
                    "on a SLURM cluster').")
    parser.add_argument("--repo", type=Path, default=Path.cwd(), help="project checkout (default: .)")
    parser.add_argument("--state-dir", type=Path, default=Path(".cluster"),
                        help="records, logs and worktrees; relative to the checkout; must be on "
                             "the shared filesystem (default: .cluster)")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("submit", help="submit sweep cells as one SLURM array job")
    s.add_argument("--cells", action="append", metavar="CELL[,CELL]",
                   help="cells such as zerodiff-0.1-0 (default: every cell of the sweep matrix)")
    s.add_argument("--partition", help="SLURM partition (default: the cluster's default)")
    s.add_argument("--time", default="04:00:00", help="time limit per cell (default 04:00:00)")
    s.add_argument("--cpus", type=int, default=1,
                   help="CPUs per cell, also its runtime.threads (default 1)")
    s.add_argument("--gpus", type=int, default=0, help="GPUs per cell (--gres=gpu:N; default 0)")
    s.add_argument("--mem", help="memory per cell, e.g. 16G (default: the partition's)")
    s.add_argument("--account", help="SLURM account")
    s.add_argument("--setup", action="append", default=[], metavar="LINE",
                   help="shell line run before the cell, e.g. 'module load cuda/12.1' (repeatable)")
    s.add_argument("--python", default=sys.executable,
                   help="Python on the compute nodes (default: this one; with --setup lines "
                        "that activate an environment, use 'python')")
    s.add_argument("--sbatch-arg", action="append", default=[], metavar="OPTION",
                   help="extra sbatch option, e.g. --qos=normal (repeatable)")
    s.add_argument("--dry-run", action="store_true",
                   help="check the checkout and cache, print the job script, submit nothing")

    st = sub.add_parser("status", help="per cell: pending, running, done or failed (+ log tail)")
    st.add_argument("--cells", action="append", metavar="CELL[,CELL]")
    st.add_argument("--lines", type=int, default=5, help="log lines shown per failed/running cell")

    r = sub.add_parser("requeue", help="submit the failed cells again; they resume from their "
                                       "checkpoints")
    r.add_argument("--cells", action="append", metavar="CELL[,CELL]",
                   help="only these failed cells (default: every failed cell)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from . import launcher

    try:
        if args.command == "submit":
            options = JobOptions(partition=args.partition, time=args.time, cpus=args.cpus,
                                 gpus=args.gpus, mem=args.mem, account=args.account,
                                 setup=tuple(args.setup), python=args.python,
                                 sbatch_args=tuple(args.sbatch_arg))
            launcher.submit(args.repo, args.state_dir, _cells(args.cells), options, args.dry_run)
        elif args.command == "status":
            launcher.print_status(args.repo, args.state_dir, _cells(args.cells), args.lines)
        else:
            launcher.requeue(args.repo, args.state_dir, _cells(args.cells))
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
