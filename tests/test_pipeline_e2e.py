"""End to end: `dvc repro` and `dvc exp run -S ...` on tiny params in a temporary git repo."""
from __future__ import annotations

import json

import pytest

from pipeline_utils import SHARED_DATA, make_pipeline_repo, run, tiny_params

pytestmark = pytest.mark.slow

WHEEL_DIR = SHARED_DATA / "animal-mnist"


def read_metrics(repo):
    return json.loads((repo / "metrics" / "zerodiff.json").read_text())


@pytest.fixture(scope="module")
def animals_repo(tmp_path_factory):
    if not WHEEL_DIR.exists():
        pytest.skip("shared animal-mnist wheel not available")
    tmp = tmp_path_factory.mktemp("e2e")
    params = tiny_params(data={"dataset": "animals", "local_path": str(WHEEL_DIR)})
    repo, env = make_pipeline_repo(tmp, params)
    first = run(["dvc", "repro"], repo, env)
    return repo, env, first


def test_repro_produces_gzsl_metrics(animals_repo):
    repo, env, first = animals_repo
    metrics = read_metrics(repo)["zerodiff"]
    for key in ("u", "s", "h"):
        assert 0.0 <= metrics["gzsl"][key] <= 100.0
    assert 0.0 <= metrics["zsl"]["t1"] <= 100.0
    assert (repo / "plots" / "history" / "dfg.csv").exists()
    assert (repo / "runs" / "prepared" / "seen_subset.csv").exists()


def test_metrics_show_is_a_results_table(animals_repo):
    """Declared metrics = one row per method (main run, sweep seed means), a few columns."""
    repo, env, _ = animals_repo
    out = run(["dvc", "metrics", "show"], repo, env).stdout
    lines = out.rstrip().splitlines()
    assert max(map(len, lines)) <= 100, out
    assert lines[0].split() == ["Path", "H", "H_sd", "S", "T1", "U", "chosen"], lines[0]
    paths = [line.split()[0] for line in lines[1:]]
    assert "metrics/main/zerodiffpp.json" in paths and "metrics/main/eszsl.json" in paths
    assert "metrics/sweep/p50/fvaegan.json" in paths      # tiny sweep: fvaegan at 0.5
    assert not any(p in paths for p in ("metrics/zerodiff.json", "metrics/spuriousness.json"))


def test_second_repro_is_a_no_op(animals_repo):
    repo, env, _ = animals_repo
    again = run(["dvc", "repro"], repo, env)
    assert "Running stage" not in again.stdout
    status = run(["dvc", "status"], repo, env)
    assert "up to date" in status.stdout


def test_exp_run_seen_fraction_reruns_only_dependent_stages(animals_repo):
    repo, env, _ = animals_repo
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "baseline results"], repo, env)
    before = read_metrics(repo)
    exp = run(["dvc", "exp", "run", "-S", "train.seen_fraction=0.1"], repo, env)
    out = exp.stdout
    assert "Running stage 'download'" not in out and "Running stage 'features'" not in out
    for stage in ("prepare", "train_drg", "train_dfg", "evaluate"):
        assert f"Running stage '{stage}'" in out, stage
    assert read_metrics(repo) != before
    diff = run(["dvc", "metrics", "diff"], repo, env).stdout
    assert "metrics/main/zerodiff.json" in diff and max(map(len, diff.splitlines())) <= 100, diff
    subset = (repo / "runs" / "prepared" / "seen_subset.csv").read_text().splitlines()
    # 7 seen classes x 800 trainval images, 10 % per class -> 560 rows + header.
    assert len(subset) - 1 == 560


@pytest.mark.parametrize("value, fragment", [("abc", "expected a number"), ("0", "must be > 0"),
                                             ("1.5", "must be <= 1")])
def test_bad_exp_value_fails_clearly(animals_repo, value, fragment):
    repo, env, _ = animals_repo
    proc = run(["dvc", "exp", "run", "-S", f"train.seen_fraction={value}"], repo, env, check=False)
    assert proc.returncode != 0
    assert "train.seen_fraction" in proc.stderr + proc.stdout
    assert fragment in proc.stderr + proc.stdout
    run(["git", "checkout", "--", "params.yaml"], repo, env)


SNU_DIR = SHARED_DATA / "snu-b36-ex"


def test_exp_run_snu_b36_ex_produces_gzsl_metrics(animals_repo):
    """A real feature dataset through the same pipeline (shared copy instead of the download)."""
    if not SNU_DIR.exists():
        pytest.skip("shared SNU-B36-EX copy not available")
    repo, env, _ = animals_repo
    run(["dvc", "exp", "run", "-S", "data.dataset=snu-b36-ex", "-S",
         f"data.local_path={SNU_DIR}", "-S", "train.seen_fraction=1.0"], repo, env)
    metrics = read_metrics(repo)["zerodiff"]
    assert 0.0 <= metrics["gzsl"]["h"] <= 100.0 and metrics["zsl"]["t1"] > 0.0
    raw = json.loads((repo / "data" / "raw" / "dataset.json").read_text())
    assert raw["name"] == "snu-b36-ex"
