"""What one array task runs on a compute node: ``python -m zerodiffpp.cluster.job --state-dir D
--cell C`` (called by the generated sbatch script, inside the cell's worktree).

1. refuse to run unless the submission's marker file is visible in the DVC cache dir (a cache
   that is not on a filesystem this node shares would give the login node nothing);
2. check the upstream outputs (data/raw, data/features) out of the shared cache;
3. ``dvc repro --single-item sweep@<cell>``: the cell's outputs and its run-cache entry go to the
   shared cache; an interrupted cell keeps ``runs/sweep/.<cell>.resume/`` in this worktree and
   the next attempt resumes from it;
4. write ``exit/<cell>.json`` (job id, exit status, signal, node) for ``status``.

SIGTERM/SIGINT (scancel, time limit, preemption) are passed on as SIGINT to the DVC process
group when SLURM did not signal it itself: DVC ignores SIGINT while its command runs, so the
cell stops at its next checkpoint boundary and DVC exits cleanly.
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from .errors import ClusterError
from .state import StateDir

FORWARD_AFTER_S = 2.0     # SLURM signals every process of the job; forward only if it did not
GROUP_EXIT_WAIT_S = 60.0  # after DVC exits, how long the cell may take to save and stop


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_id() -> str:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array and task:
        return f"{array}_{task}"
    return os.environ.get("SLURM_JOB_ID", "local")


def set_threads(params: Path, cpus: str | None) -> None:
    """``runtime.threads`` = the CPUs SLURM gave the task.  The sweep stage does not track
    runtime.threads (dvc.yaml), so this changes neither the run-cache key nor the numbers."""
    if not cpus or not cpus.isdigit():
        return
    data = yaml.safe_load(params.read_text()) or {}
    runtime = data.setdefault("runtime", {})
    if runtime.get("threads") != int(cpus):
        runtime["threads"] = int(cpus)
        params.write_text(yaml.safe_dump(data, sort_keys=False))


class _Stopper:
    """Remembers a stop signal; the wait loop forwards it to the child's process group."""

    def __init__(self):
        self.signum: int | None = None
        self.at = 0.0

    def __call__(self, signum, frame):
        if self.signum is None:
            self.signum, self.at = signum, time.monotonic()


def run_group(cmd: list[str], env: dict, cwd: Path, stopper: _Stopper) -> int:
    print(f"+ {' '.join(cmd[2:] if cmd[1:2] == ['-m'] else cmd)}", flush=True)
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, start_new_session=True)
    forwarded = False
    while proc.poll() is None:
        time.sleep(0.2)
        if stopper.signum is not None and not forwarded and \
                time.monotonic() - stopper.at > FORWARD_AFTER_S:
            forwarded = True
            try:
                os.killpg(proc.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
    # DVC can end (killed by the same SIGTERM) before the cell has saved and stopped.
    deadline = time.monotonic() + GROUP_EXIT_WAIT_S
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except (ProcessLookupError, PermissionError):
            break
        time.sleep(0.2)
    return proc.returncode


def run(state: StateDir, cell: str) -> int:
    record = state.load(cell)
    me, host = job_id(), socket.gethostname()
    stopper = _Stopper()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, stopper)
    result = {"job_id": me, "attempt": record.attempt, "host": host, "started": _now()}
    try:
        rc = _run_cell(record, stopper)
    except ClusterError as exc:
        print(f"error: {exc}", flush=True)
        rc = 2
        result["error"] = str(exc)
    result.update(rc=rc, finished=_now(),
                  signal=signal.Signals(stopper.signum).name if stopper.signum else None)
    state.write_exit(cell, result)
    print(f"=== zerodiffpp.cluster: sweep@{cell} job {me} ended with exit status {rc}"
          + (f" after {result['signal']}" if result["signal"] else "") + f", {_now()} ===",
          flush=True)
    return rc


def _run_cell(record, stopper: _Stopper) -> int:
    marker = Path(record.marker)
    if not marker.is_file():
        raise ClusterError(f"the DVC cache's marker {marker}, written by the submit on the login "
                           f"node, is not visible on {socket.gethostname()}: the cache dir is not "
                           "on a filesystem the compute nodes share (set `dvc cache dir` to one)")
    worktree = Path(record.worktree)
    if not (worktree / "dvc.yaml").is_file():
        raise ClusterError(f"worktree {worktree} is missing: submit the cell again")
    # A DVC killed by an earlier attempt leaves its read/write lock behind; this job is the only
    # user of this worktree (the launcher never queues a cell twice).
    (worktree / ".dvc" / "tmp" / "rwlock").unlink(missing_ok=True)
    set_threads(worktree / "params.yaml", os.environ.get("SLURM_CPUS_PER_TASK"))
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.update(DVC_NO_ANALYTICS="1", ZERODIFFPP_NO_PROGRESS="1",
               PYTHONPATH=os.pathsep.join([str(worktree / "src"), env.get("PYTHONPATH", "")]))
    dvc = [sys.executable, "-m", "dvc"]
    if record.upstream:
        rc = run_group(dvc + ["checkout", *record.upstream], env, worktree, stopper)
        if rc or stopper.signum:
            return rc or 130
    return run_group(dvc + ["repro", "--single-item", record.stage], env, worktree, stopper)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zerodiffpp.cluster.job",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--cell", required=True)
    args = parser.parse_args(argv)
    try:
        return run(StateDir(Path(args.state_dir)), args.cell)
    except ClusterError as exc:      # no record: nothing to report into
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
