"""End to end on tiny params: `dvc repro` runs the sweep cells, the aggregation and the figures;
changing one fraction or adding one seed reruns only the cells it adds."""
from __future__ import annotations

import json
import re

import pytest
import yaml

from pipeline_utils import make_pipeline_repo, run, tiny_params

pytestmark = pytest.mark.slow

# Tiny everything (one torch thread, TINY_OVERRIDES from pipeline_utils) plus the stages the
# sweep adds: baselines, spuriousness probe and DiffTTA cut to a few steps.
SWEEP_TINY = {
    "data": {"dataset": "synthetic"},
    "baselines": {"epochs": 1, "hidden_dim": 32, "critic_steps": 2, "batch_size": 128},
    "spurious": {"syn_per_class": 20},
    "tta": {"rounds": 1, "epochs": 1},
}


def sweep_params(**sweep) -> dict:
    params = tiny_params(**SWEEP_TINY)
    params["sweep"] = sweep
    return params


def ran(stdout: str) -> list[str]:
    return re.findall(r"Running stage '([^']+)'", stdout)


def set_sweep(repo, **values):
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["sweep"].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sweep")
    repo, env = make_pipeline_repo(tmp, sweep_params(methods=["zerodiff", "fvaegan"],
                                                     fractions=[1.0, 0.5], seeds=[0]))
    first = run(["dvc", "repro"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "results"], repo, env)
    return repo, env, first


def test_repro_runs_cells_aggregate_and_figures(swept):
    repo, _, first = swept
    stages = ran(first.stdout)
    cells = sorted(s for s in stages if s.startswith("sweep@"))
    assert cells == ["sweep@fvaegan-0.5-0", "sweep@fvaegan-1.0-0",
                     "sweep@zerodiff-0.5-0", "sweep@zerodiff-1.0-0"]
    assert stages.index("aggregate") > max(stages.index(c) for c in cells)
    assert stages[-1] == "figures" or stages.index("figures") > stages.index("aggregate")
    metrics = json.loads((repo / "metrics" / "sweep.json").read_text())
    assert set(metrics) == {"zerodiff", "zerodiff_tta", "zerodiff_diffgen", "zerodiffpp", "fvaegan"}
    for per in metrics.values():
        assert set(per) == {"p100", "p50"}
        assert 0.0 <= per["p50"]["h"]["mean"] <= 100.0 and per["p50"]["n"] == 1
    cell = json.loads((repo / "runs" / "sweep" / "zerodiff-0.5-0" / "metrics.json").read_text())
    assert cell["fraction"] == 0.5 and cell["seed"] == 0
    cell_params = yaml.safe_load((repo / "runs" / "sweep" / "zerodiff-0.5-0" / "params.yaml").read_text())
    assert cell_params["train"] == {"seen_fraction": 0.5, "seed": 0} and "sweep" not in cell_params
    for name in ("h_vs_fraction", "spuriousness_vs_fraction", "training_curves", "embedding"):
        assert (repo / "plots" / "figures" / f"{name}.png").stat().st_size > 10_000
    # The cells track every param they read except the grid lists and train.* (from cmd).
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    tracked = set(lock["sweep@zerodiff-0.5-0"]["params"]["params.yaml"])
    assert "sweep" not in tracked and not any(k.startswith(("train", "sweep.")) for k in tracked)
    assert {"drg", "dfg", "eval", "tta", "diffgen", "spurious", "baselines"} <= tracked
    assert "--fraction 0.5 --seed 0" in lock["sweep@zerodiff-0.5-0"]["cmd"]


def test_changing_one_fraction_reruns_only_its_cells(swept):
    repo, env, _ = swept
    set_sweep(repo, fractions=[1.0, 0.25])
    status = run(["dvc", "status"], repo, env).stdout
    assert "sweep@zerodiff-0.25-0" in status and "sweep@fvaegan-0.25-0" in status
    assert "1.0-0" not in status
    again = run(["dvc", "repro"], repo, env)
    assert sorted(ran(again.stdout)) == ["aggregate", "figures", "sweep@fvaegan-0.25-0",
                                         "sweep@zerodiff-0.25-0"]
    metrics = json.loads((repo / "metrics" / "sweep.json").read_text())
    assert set(metrics["zerodiffpp"]) == {"p100", "p25"}     # 0.5's cells stay on disk, unread
    assert (repo / "runs" / "sweep" / "zerodiff-0.5-0").is_dir()
    assert "up to date" in run(["dvc", "status"], repo, env).stdout


def test_adding_one_seed_marks_only_its_cells(swept):
    repo, env, _ = swept
    fractions = yaml.safe_load((repo / "params.yaml").read_text())["sweep"]["fractions"]
    set_sweep(repo, seeds=[0, 3])
    status = run(["dvc", "status"], repo, env).stdout
    changed = sorted(set(re.findall(r"^(sweep@\S+):", status, re.M)))
    assert changed == sorted(f"sweep@{m}-{f}-3" for m in ("fvaegan", "zerodiff") for f in fractions)
    assert re.search(r"^aggregate:", status, re.M)
