"""The SLURM job options and the sbatch array script that runs one sweep cell per task."""
from __future__ import annotations

import re
import shlex
import sys
from dataclasses import asdict, dataclass, field

from .errors import ClusterError

# SLURM --time forms: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS
TIME_RE = re.compile(r"^(\d+-\d{1,2}(:\d{2}){0,2}|\d+(:\d{2}){0,2})$")
MEM_RE = re.compile(r"^\d+[KMGT]?$")


@dataclass(frozen=True)
class JobOptions:
    partition: str | None = None
    time: str = "04:00:00"
    cpus: int = 1               # --cpus-per-task; also the cell's runtime.threads
    gpus: int = 0               # --gres=gpu:N
    mem: str | None = None      # --mem, e.g. 16G
    account: str | None = None
    setup: tuple[str, ...] = ()    # shell lines before the cell runs (module load ..., source venv)
    python: str = field(default_factory=lambda: sys.executable)
    sbatch_args: tuple[str, ...] = ()  # extra "#SBATCH" options, verbatim (--qos=..., --constraint=...)

    def __post_init__(self):
        if not TIME_RE.match(self.time):
            raise ClusterError(f"--time {self.time!r}: expected a SLURM time limit "
                               "(minutes, HH:MM:SS or D-HH:MM:SS)")
        if self.cpus < 1:
            raise ClusterError(f"--cpus {self.cpus}: at least 1 CPU per task")
        if self.gpus < 0:
            raise ClusterError(f"--gpus {self.gpus}: expected 0 or more GPUs per task")
        if self.mem is not None and not MEM_RE.match(self.mem):
            raise ClusterError(f"--mem {self.mem!r}: expected a SLURM memory size such as 16G")
        for arg in self.sbatch_args:
            if not arg.startswith("-"):
                raise ClusterError(f"--sbatch-arg {arg!r}: expected an sbatch option such as "
                                   "--qos=normal")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "JobOptions":
        data = dict(data)
        data["setup"] = tuple(data.get("setup") or ())
        data["sbatch_args"] = tuple(data.get("sbatch_args") or ())
        return cls(**data)


def render(options: JobOptions, cells: list[str], state_dir: str, job_name: str,
           header: str) -> str:
    """An sbatch script with one array task per cell.  Each task appends to its cell's log,
    enters the cell's worktree, runs the setup lines and hands over to
    ``python -m zerodiffpp.cluster.job`` (of the worktree's own code)."""
    q = shlex.quote
    lines = ["#!/bin/bash", f"#SBATCH --job-name={job_name}",
             f"#SBATCH --array=0-{len(cells) - 1}",
             f"#SBATCH --output={state_dir}/logs/slurm-%A_%a.out",
             f"#SBATCH --time={options.time}",
             f"#SBATCH --cpus-per-task={options.cpus}",
             "#SBATCH --ntasks=1",
             "#SBATCH --requeue"]     # preemption / node failure: SLURM reruns it, it resumes
    if options.partition:
        lines.append(f"#SBATCH --partition={options.partition}")
    if options.gpus:
        lines.append(f"#SBATCH --gres=gpu:{options.gpus}")
    if options.mem:
        lines.append(f"#SBATCH --mem={options.mem}")
    if options.account:
        lines.append(f"#SBATCH --account={options.account}")
    lines += [f"#SBATCH {arg}" for arg in options.sbatch_args]
    lines += [f"# {h}" for h in header.splitlines()]
    lines += [
        "cells=(" + " ".join(q(c) for c in cells) + ")",
        'cell="${cells[$SLURM_ARRAY_TASK_ID]}"',
        f'exec >>{q(state_dir)}/logs/"$cell".log 2>&1',
        'echo "=== zerodiffpp.cluster: sweep@$cell, job ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}'
        ' (restart ${SLURM_RESTART_COUNT:-0}), node $(hostname), $(date -u +%Y-%m-%dT%H:%M:%SZ) ==="',
        f'cd {q(state_dir)}/worktrees/"$cell" || exit 1',
    ]
    lines += list(options.setup)
    lines += [
        'export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"   # the worktree\'s code, not the login checkout\'s',
        f'exec {q(options.python)} -m zerodiffpp.cluster.job --state-dir {q(state_dir)} --cell "$cell"',
    ]
    return "\n".join(lines) + "\n"
