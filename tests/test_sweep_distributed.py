"""Scaling a sweep past one process / one machine (README "Running a sweep on several workers
and machines"), on tiny params:

* a 2-cell grid queued with ``dvc exp run --queue -S ...`` and run by 2 workers
  (``dvc exp run --run-all -j 2``, one torch thread each): both results in ``dvc exp show``, and
  the workspace then assembles the full sweep from the run-cache without training again;
* an experiment pushed from one clone (``dvc exp push`` to a bare git repo + a local DVC remote)
  and pulled into a second clone (``dvc exp pull``), where its metrics and outputs are visible
  and its run-cache reproduces the cell without training.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from pipeline_utils import make_pipeline_repo, run
from test_sweep_pipeline import ran, sweep_params

pytestmark = pytest.mark.slow

GRID = {"methods": ["fvaegan"], "fractions": [1.0], "seeds": [0]}
METRIC = "fvaegan.p100.h.mean"


def exp_rows(repo, env) -> list[dict]:
    """``dvc exp show --json`` flattened: one dict per experiment (name, state, params, metrics)."""
    data = json.loads(run(["dvc", "exp", "show", "--json", "--no-pager"], repo, env).stdout)
    rows = []

    def flat(prefix, obj, out):
        for k, v in obj.items():
            if isinstance(v, dict):
                flat(f"{prefix}{k}.", v, out)
            else:
                out[f"{prefix}{k}"] = v
        return out

    def visit(entry):
        for exp in entry.get("experiments") or []:
            for rev in exp.get("revs") or []:
                d = rev.get("data") or {}
                metrics = ((d.get("metrics") or {}).get("metrics/sweep.json") or {}).get("data") or {}
                params = ((d.get("params") or {}).get("params.yaml") or {}).get("data") or {}
                state = (exp.get("executor") or {}).get("state")   # None once pulled
                rows.append({"name": rev.get("name") or exp.get("name"), "state": state,
                             "seeds": (params.get("sweep") or {}).get("seeds"),
                             **flat("", metrics, {})})
    for entry in data:
        visit(entry)
    return rows


def test_queued_grid_with_two_workers(tmp_path):
    repo, env = make_pipeline_repo(tmp_path, sweep_params(**GRID))
    # Two cells of the sweep as a queued grid: seeds [0] and [1], one torch thread per worker.
    queued = run(["dvc", "exp", "run", "--queue", "-S", "sweep.seeds=[0],[1]",
                  "-S", "runtime.threads=1", "aggregate"], repo, env)
    assert queued.stdout.count("Queued experiment") == 2
    done = run(["dvc", "exp", "run", "--run-all", "-j", "2"], repo, env)
    assert "Ran experiment(s)" in done.stdout
    rows = exp_rows(repo, env)
    by_seeds = {tuple(r["seeds"]): r for r in rows if r["seeds"] in ([0], [1])}
    assert set(by_seeds) == {(0,), (1,)}, rows
    for seeds, row in by_seeds.items():
        assert row["state"] == "success", row
        assert 0.0 <= row[METRIC] <= 100.0 and row["fvaegan.p100.n"] == 1
    # The human-readable table shows the same two experiments.
    table = run(["dvc", "exp", "show", "--no-pager", "--csv", "--drop", ".*", "--keep",
                 f"Experiment|State|sweep.seeds|{re.escape(METRIC)}"], repo, env).stdout
    assert table.count("Success") == 2

    # Assemble the whole grid in the workspace: both cells come from the run-cache the workers
    # filled (cells do not track runtime.threads), so nothing trains again.
    assembled = run(["dvc", "exp", "run", "-S", "sweep.seeds=[0,1]", "aggregate"], repo, env)
    assert [s for s in ran(assembled.stdout) if s.startswith("sweep@")] == [], assembled.stdout
    assert "sweep@fvaegan-1.0-1' is cached" in assembled.stdout
    summary = json.loads((repo / "metrics" / "sweep.json").read_text())
    assert summary["fvaegan"]["p100"]["n"] == 2
    means = sorted(by_seeds[s][METRIC] for s in by_seeds)
    assert summary["fvaegan"]["p100"]["h"]["mean"] == pytest.approx(sum(means) / 2, abs=0.01)


def test_exp_push_from_one_clone_and_pull_into_another(tmp_path):
    origin = tmp_path / "origin.git"
    store = tmp_path / "dvc-store"
    subprocess.run(["git", "init", "-q", "--bare", str(origin)], check=True)
    repo, env = make_pipeline_repo(tmp_path, sweep_params(**GRID))
    run(["dvc", "remote", "add", "-d", "shared", str(store)], repo, env)
    run(["git", "commit", "-qam", "shared DVC remote"], repo, env)
    run(["git", "branch", "-M", "main"], repo, env)
    run(["git", "remote", "add", "origin", str(origin)], repo, env)
    run(["git", "push", "-q", "origin", "main"], repo, env)

    run(["dvc", "exp", "run", "-n", "seed1", "-S", "sweep.seeds=[1]", "aggregate"], repo, env)
    made = json.loads((repo / "metrics" / "sweep.json").read_text())
    cell = (repo / "runs" / "sweep" / "fvaegan-1.0-1" / "metrics.json").read_text()
    pushed = run(["dvc", "exp", "push", "--run-cache", "origin", "seed1"], repo, env)
    assert "seed1" in pushed.stdout

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", "-b", "main", str(origin), str(clone)], tmp_path, env)
    assert "seed1" not in run(["dvc", "exp", "show", "--no-pager", "--csv"], clone, env).stdout
    run(["dvc", "exp", "pull", "--run-cache", "origin", "seed1"], clone, env)
    rows = [r for r in exp_rows(clone, env) if r["name"] == "seed1"]
    assert len(rows) == 1 and rows[0]["seeds"] == [1]
    assert rows[0][METRIC] == made["fvaegan"]["p100"]["h"]["mean"]
    # Outputs come from the shared DVC remote: check the experiment out and read its files.
    # (`dvc exp apply seed1` wants every stage of dvc.lock checked out; this experiment only ran
    # `aggregate` and its upstream stages, from a commit without results: check out those.)
    run(["dvc", "exp", "branch", "seed1", "from-a"], clone, env)
    run(["git", "checkout", "-q", "from-a"], clone, env)
    run(["dvc", "checkout", "aggregate", "sweep@fvaegan-1.0-1"], clone, env)
    assert json.loads((clone / "metrics" / "sweep.json").read_text()) == made
    assert (clone / "runs" / "sweep" / "fvaegan-1.0-1" / "metrics.json").read_text() == cell
    assert yaml.safe_load((clone / "params.yaml").read_text())["sweep"]["seeds"] == [1]

    # The pulled run-cache lets the second machine reproduce the cell without training.
    run(["git", "checkout", "-q", "main"], clone, env)
    for produced in ("runs", "data/raw", "data/features", "metrics", "plots"):
        shutil.rmtree(clone / produced, ignore_errors=True)
    run(["git", "checkout", "-q", "--", "."], clone, env)
    again = run(["dvc", "exp", "run", "-S", "sweep.seeds=[1]", "aggregate"], clone, env)
    assert [s for s in ran(again.stdout) if s != "aggregate"] == [], again.stdout
    assert json.loads((clone / "metrics" / "sweep.json").read_text()) == made
