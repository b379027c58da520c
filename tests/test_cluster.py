"""zerodiffpp.cluster against a real single-node SLURM cluster on localhost (tests/slurm/), plus
the launcher's messages for bad input.

The end-to-end test submits a 4-cell tiny grid (f-VAEGAN x 2 fractions x 2 seeds) from a temporary
git + DVC repository with a shared cache, kills one cell's job with ``scancel`` after its first
checkpoint, requeues it (it must resume from that checkpoint), and then requires ``dvc repro
aggregate`` on the "login node" to take every cell from the run-cache (no cell retrained).
Where SLURM cannot run (not installed, not root, a daemon that does not start) it is skipped with
the exact reason.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline_utils import REPO, make_pipeline_repo, run
from test_sweep_pipeline import sweep_params

from zerodiffpp.cluster import launcher
from zerodiffpp.cluster.jobscript import JobOptions, render
from zerodiffpp.cluster.state import CellRecord, StateDir
from zerodiffpp.cluster.workspace import upstream_stages

GRID = {"methods": ["fvaegan"], "fractions": [0.5, 0.25], "seeds": [0, 1]}
CELLS = ["fvaegan-0.5-0", "fvaegan-0.5-1", "fvaegan-0.25-0", "fvaegan-0.25-1"]
KILLED = "fvaegan-0.5-0"      # array task 0: starts first
# Enough epochs that the killed cell is still training when scancel arrives (tiny epochs take
# ~0.1 s on 2 cores); the whole grid still takes seconds per cell.
EPOCHS = 60


def _load_local_cluster():
    spec = importlib.util.spec_from_file_location("local_cluster",
                                                  REPO / "tests" / "slurm" / "local_cluster.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cluster_cli(repo: Path, env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "zerodiffpp.cluster", *args], repo, env, check=check)


def grid_repo(tmp: Path, shared: bool = True, epochs: int = 1) -> tuple[Path, dict]:
    """A tiny pipeline repo with the 4-cell grid; with ``shared``, a cache dir outside the
    checkout with cache.shared group, and download + features already in it."""
    params = sweep_params(**GRID)
    params["baselines"]["epochs"] = epochs
    if "selection" in params["eval"]:
        # schedules as written: a sweep cell has no validation round to choose them from
        params["eval"]["selection"] = "fixed"
    repo, env = make_pipeline_repo(tmp, params)
    if shared:
        (tmp / "cache").mkdir()
        run(["dvc", "cache", "dir", str(tmp / "cache")], repo, env)
        run(["dvc", "config", "cache.shared", "group"], repo, env)
        run(["dvc", "repro", *upstream_stages(repo)], repo, env)   # download, features, ...
        run(["git", "add", "-A"], repo, env)
        run(["git", "commit", "-qm", "shared cache, features"], repo, env)
    return repo, env


# ----------------------------------------------------------------- messages for bad input


@pytest.fixture(scope="module")
def plain_repo(tmp_path_factory):
    return grid_repo(tmp_path_factory.mktemp("cluster-inputs"))


def test_unknown_cell_is_refused_with_the_cells_that_exist(plain_repo):
    repo, env = plain_repo
    proc = cluster_cli(repo, env, "submit", "--cells", "fvaegan-0.3-0", check=False)
    assert proc.returncode == 2
    assert "unknown sweep cell(s) fvaegan-0.3-0" in proc.stderr
    assert ", ".join(CELLS) in proc.stderr


def test_no_slurm_client_on_path_is_refused(plain_repo, tmp_path):
    repo, env = plain_repo
    bin_dir = tmp_path / "bin"          # git only: no sbatch / squeue / sinfo / scontrol
    bin_dir.mkdir()
    git = subprocess.run(["which", "git"], capture_output=True, text=True).stdout.strip()
    (bin_dir / "git").symlink_to(git)
    proc = cluster_cli(repo, {**env, "PATH": str(bin_dir)}, "submit", check=False)
    assert proc.returncode == 2
    assert "sbatch, squeue, sinfo, scontrol not found on PATH" in proc.stderr


@pytest.mark.skipif(subprocess.run(["which", "scontrol"], capture_output=True).returncode != 0,
                    reason="needs the SLURM client (scontrol) to talk to a controller that is down")
def test_controller_down_is_refused(plain_repo, tmp_path):
    repo, env = plain_repo
    conf = tmp_path / "slurm.conf"       # a controller port nothing listens on
    conf.write_text("ClusterName=down\nSlurmctldHost=localhost\nSlurmctldPort=1\n"
                    "AuthType=auth/none\nNodeName=localhost CPUs=1\n"
                    "PartitionName=p Nodes=ALL Default=YES\n")
    proc = cluster_cli(repo, {**env, "SLURM_CONF": str(conf)}, "submit", check=False)
    assert proc.returncode == 2
    assert "no SLURM controller reachable" in proc.stderr and "scontrol ping" in proc.stderr


def test_private_or_unshared_cache_is_refused(tmp_path):
    repo, env = grid_repo(tmp_path, shared=False)
    proc = cluster_cli(repo, env, "submit", check=False)
    assert proc.returncode == 2
    assert "private .dvc/cache" in proc.stderr and "dvc cache dir" in proc.stderr
    (tmp_path / "cache").mkdir()
    run(["dvc", "cache", "dir", str(tmp_path / "cache")], repo, env)
    proc = cluster_cli(repo, env, "submit", check=False)
    assert proc.returncode == 2
    assert "cache.shared is not set" in proc.stderr and "dvc config cache.shared group" in proc.stderr
    run(["dvc", "config", "cache.shared", "group"], repo, env)
    # shared now, but download/features were never stored in it
    proc = cluster_cli(repo, env, "submit", check=False)
    assert proc.returncode == 2
    assert "not up to date in the shared cache" in proc.stderr
    assert f"dvc repro {' '.join(upstream_stages(repo))}`" in proc.stderr


def test_uncommitted_code_is_refused(plain_repo):
    repo, env = plain_repo
    params = repo / "params.yaml"
    text = params.read_text()
    params.write_text(text + "\n# edited\n")
    try:
        proc = cluster_cli(repo, env, "submit", check=False)
    finally:
        params.write_text(text)
    assert proc.returncode == 2 and "uncommitted changes in params.yaml" in proc.stderr


def test_bad_job_options_are_refused():
    for kwargs, message in (({"time": "4h"}, "--time '4h'"), ({"cpus": 0}, "--cpus 0"),
                            ({"gpus": -1}, "--gpus -1"), ({"mem": "lots"}, "--mem 'lots'"),
                            ({"sbatch_args": ("qos=x",)}, "--sbatch-arg 'qos=x'")):
        with pytest.raises(launcher.ClusterError, match=re.escape(message)):
            JobOptions(**kwargs)


def test_dry_run_prints_one_array_task_per_cell(plain_repo):
    repo, env = plain_repo
    proc = cluster_cli(repo, env, "submit", "--dry-run", "--partition", "gpu", "--gpus", "1",
                       "--cpus", "8", "--time", "1-00:00:00", "--setup", "module load cuda")
    script = proc.stdout
    for line in ("#SBATCH --array=0-3", "#SBATCH --partition=gpu", "#SBATCH --gres=gpu:1",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --time=1-00:00:00", "module load cuda",
                 "cells=(" + " ".join(CELLS) + ")", "-m zerodiffpp.cluster.job"):
        assert line in script, line
    assert not (repo / ".cluster" / "cells").exists()      # nothing submitted or recorded


def test_status_states_from_queue_and_exit_records(tmp_path):
    state = StateDir(tmp_path)
    state.create()
    record = CellRecord("m-0.5-0", "sweep@m-0.5-0", "c0ffee", "", "", "7_0", 1, "", "")
    assert launcher.cell_status(state, record, {"7_0": ("PENDING", "Resources")}).state == "pending"
    assert launcher.cell_status(state, record, {"7_0": ("RUNNING", "None")}).state == "running"
    lost = launcher.cell_status(state, record, {})
    assert lost.state == "failed" and "without an exit record" in lost.detail
    state.write_exit("m-0.5-0", {"job_id": "6_0", "rc": 0})            # an older attempt's
    assert launcher.cell_status(state, record, {}).state == "failed"
    state.write_exit("m-0.5-0", {"job_id": "7_0", "rc": -15, "signal": "SIGTERM", "host": "n1"})
    failed = launcher.cell_status(state, record, {})
    assert failed.state == "failed" and "SIGTERM" in failed.detail
    state.write_exit("m-0.5-0", {"job_id": "7_0", "rc": 0, "host": "n1"})
    assert launcher.cell_status(state, record, {}).state == "done"
    # SLURM requeued a preempted job: the queue wins over the killed attempt's record
    assert launcher.cell_status(state, record, {"7_0": ("PENDING", "BeginTime")}).state == "pending"


def test_job_refuses_a_cache_its_node_cannot_see(tmp_path):
    state = StateDir(tmp_path / "state")
    state.create()
    state.save(CellRecord("m-0.5-0", "sweep@m-0.5-0", "c0ffee", str(tmp_path), "", "1_0", 1, "",
                          str(tmp_path / "cache" / "not-there")))
    env = {**os.environ, "SLURM_ARRAY_JOB_ID": "1", "SLURM_ARRAY_TASK_ID": "0",
           "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-m", "zerodiffpp.cluster.job", "--state-dir",
                           str(state.path), "--cell", "m-0.5-0"], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 2
    assert "is not visible on" in proc.stdout and "not on a filesystem the compute nodes share" in proc.stdout
    exit_record = state.read_exit("m-0.5-0")
    assert exit_record["rc"] == 2 and exit_record["job_id"] == "1_0"


def test_nothing_else_in_the_package_imports_the_launcher():
    pkg = REPO / "src" / "zerodiffpp"
    offenders = [str(p.relative_to(pkg)) for p in pkg.rglob("*.py")
                 if "cluster" not in p.relative_to(pkg).parts
                 and re.search(r"zerodiffpp\.cluster|from \.+cluster", p.read_text())]
    assert offenders == []


# ----------------------------------------------------------------- a real SLURM cluster


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory):
    local_cluster = _load_local_cluster()
    cluster = local_cluster.LocalCluster(tmp_path_factory.mktemp("slurm"), cpus=2)
    try:
        env = cluster.start()
    except local_cluster.Unavailable as exc:
        pytest.skip(f"SLURM cannot run here: {exc}")
    try:
        yield env
    finally:
        cluster.stop()


def _record(repo: Path, cell: str) -> dict:
    return json.loads((repo / ".cluster" / "cells" / f"{cell}.json").read_text())


def _states(repo: Path, env: dict) -> dict[str, str]:
    out = cluster_cli(repo, env, "status", "--lines", "0").stdout
    return {m.group(1): m.group(2) for m in re.finditer(r"^(\S+)\s+(pending|running|done|failed)\s+job ",
                                                        out, re.M)}


def _wait(repo: Path, env: dict, until, timeout: float, what: str) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = _states(repo, env)
        if until(states):
            return states
        time.sleep(1)
    logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                     for p in sorted((repo / ".cluster" / "logs").glob("*")))
    raise AssertionError(f"{what}: not reached within {timeout} s: {states}\n{logs}")


@pytest.mark.slow
def test_grid_on_slurm_killed_cell_resumes_and_login_node_assembles_from_run_cache(
        slurm_env, tmp_path):
    repo, env = grid_repo(tmp_path, epochs=EPOCHS)
    env = {**env, "SLURM_CONF": slurm_env["SLURM_CONF"]}
    out = cluster_cli(repo, env, "submit", "--time", "10", "--cpus", "1").stdout
    assert "submitted 4 sweep cell(s)" in out

    # kill the first cell once it has written a checkpoint (its trainer saves every epoch)
    worktree = Path(_record(repo, KILLED)["worktree"])
    checkpoint = worktree / "runs" / "sweep" / f".{KILLED}.resume" / "fvaegan.resume" / "model.pt"
    ended = repo / ".cluster" / "exit" / f"{KILLED}.json"     # the job's own exit record
    deadline = time.monotonic() + 120
    while not checkpoint.exists():
        if ended.exists() or time.monotonic() > deadline:
            raise AssertionError(f"no checkpoint {checkpoint} before the job ended / 120 s:\n"
                                 + (repo / ".cluster" / "logs" / f"{KILLED}.log").read_text())
        time.sleep(0.1)
    job = _record(repo, KILLED)["job_id"]
    run(["scancel", job], repo, env)

    states = _wait(repo, env, lambda s: len(s) == 4 and not {"pending", "running"} & set(s.values()),
                   240, "all four jobs ended")
    assert states == {**{c: "done" for c in CELLS}, KILLED: "failed"}, states
    status = cluster_cli(repo, env, "status", "--cells", KILLED).stdout
    assert "after SIGTERM" in status and "training interrupted by SIGTERM" in status, status

    out = cluster_cli(repo, env, "requeue").stdout
    assert re.search(rf"requeued 1 cell\(s\) as SLURM array job \d+: {KILLED}$", out, re.M), out
    assert _record(repo, KILLED)["attempt"] == 2 and _record(repo, KILLED)["job_id"] != job
    _wait(repo, env, lambda s: s.get(KILLED) == "done", 180, "requeued cell done")
    log = (repo / ".cluster" / "logs" / f"{KILLED}.log").read_text()
    second = log.split(f"job {_record(repo, KILLED)['job_id']} (restart", 1)[1]
    assert re.search(r"f-VAEGAN: \S+fvaegan\.resume/model\.pt: resuming after epoch \d+", second), second

    # the login node: every cell comes from the shared run-cache, nothing is retrained
    repro = run(["dvc", "repro", "aggregate"], repo, env).stdout
    assert not re.findall(r"Running stage 'sweep@", repro), repro
    cached = re.findall(r"Stage 'sweep@(\S+)' is cached - skipping run", repro)
    assert sorted(cached) == sorted(CELLS), repro
    sweep = json.loads((repo / "metrics" / "sweep.json").read_text())
    assert sweep["fvaegan"]["p50"]["n"] == 2 and sweep["fvaegan"]["p25"]["n"] == 2
