"""The few SLURM client calls the launcher needs (sbatch, squeue, sinfo, scontrol), each with a
clear message when the cluster cannot be reached."""
from __future__ import annotations

import getpass
import shutil
import subprocess
from pathlib import Path

from .errors import ClusterError

CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol")
# squeue's long state names: queued (not started yet) vs started.  Anything else squeue still
# lists (e.g. SUSPENDED, STOPPED) is shown as running: the job holds its allocation.
PENDING_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
                  "RESV_DEL_HOLD", "SPECIAL_EXIT"}
TIMEOUT_S = 60   # a controller that is down makes clients retry for MessageTimeout (10 s) x a few


def _call(cmd: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ClusterError(f"`{' '.join(cmd)}` did not answer within {TIMEOUT_S} s: the SLURM "
                           "controller (slurmctld) is not reachable") from None


def _said(proc: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (proc.stdout + "\n" + proc.stderr).splitlines()
             if line.strip().strip("*").strip()]      # drop scontrol's "*****" banner lines
    return " / ".join(lines[:3]) or f"exit status {proc.returncode}"


def check_reachable() -> None:
    """The SLURM clients are installed and the controller answers."""
    missing = [c for c in CLIENTS if shutil.which(c) is None]
    if missing:
        raise ClusterError(f"{', '.join(missing)} not found on PATH: no SLURM client on this "
                           "machine (run this on the cluster's login node, or load the site's "
                           "SLURM module first)")
    proc = _call(["scontrol", "ping"])
    if proc.returncode != 0 or " is UP" not in proc.stdout:
        raise ClusterError(f"no SLURM controller reachable (slurmctld down or SLURM_CONF wrong): "
                           f"`scontrol ping` said: {_said(proc)}")


def partitions() -> list[str]:
    proc = _call(["sinfo", "-h", "-o", "%P"])
    if proc.returncode != 0:
        raise ClusterError(f"`sinfo` failed: {_said(proc)}")
    return [p.strip().rstrip("*") for p in proc.stdout.split() if p.strip()]


def check_partition(name: str) -> None:
    known = partitions()
    if name not in known:
        raise ClusterError(f"--partition {name!r}: no such partition on this cluster (sinfo "
                           f"lists: {', '.join(known) or 'none'})")


def submit(script: Path) -> str:
    """``sbatch`` the script; return the job id (of the array)."""
    proc = _call(["sbatch", "--parsable", str(script)])
    if proc.returncode != 0:
        raise ClusterError(f"sbatch {script} was refused: {_said(proc)}")
    job = proc.stdout.strip().split(";")[0]     # "<id>" or "<id>;<cluster>"
    if not job.isdigit():
        raise ClusterError(f"sbatch {script}: unexpected answer {proc.stdout.strip()!r}")
    return job


def queue() -> dict[str, tuple[str, str]]:
    """This user's jobs in the queue, one entry per array task: ``{"123_4": (state, reason)}``."""
    proc = _call(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T|%r"])
    if proc.returncode != 0:
        raise ClusterError(f"no SLURM controller reachable: `squeue` said: {_said(proc)}")
    jobs = {}
    for line in proc.stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) == 3:
            jobs[parts[0]] = (parts[1], parts[2])
    return jobs
