"""One sweep cell in process on tiny synthetic data: its files and metrics, and a failing stage
leaves neither a half cell nor a work directory behind."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from pipeline_utils import tiny_params
from test_sweep_pipeline import SWEEP_TINY
from zerodiffpp.stages import download, features, sweep_cell


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("cell")
    params = tmp / "params.yaml"
    raw = tiny_params(**SWEEP_TINY)
    raw["sweep"] = {"methods": ["fvaegan"], "fractions": [0.5], "seeds": [3]}
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    assert download.main(["--params", str(params), "--out", str(tmp / "raw")]) == 0
    assert features.main(["--params", str(params), "--raw", str(tmp / "raw"),
                          "--out", str(tmp / "features")]) == 0
    yield tmp, params
    torch.set_num_threads(threads)


def cell_argv(tmp, params, method, fraction, seed, out, raw="raw"):
    return ["--method", method, "--fraction", fraction, "--seed", seed, "--out", str(out),
            "--params", str(params), "--raw", str(tmp / raw), "--features", str(tmp / "features")]


def test_baseline_cell_writes_its_directory(inputs):
    tmp, params = inputs
    out = tmp / "sweep" / "fvaegan-0.5-3"
    assert sweep_cell.main(cell_argv(tmp, params, "fvaegan", "0.5", "3", out)) == 0
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == ["eval.json", "history/fvaegan.csv", "metrics.json", "models/fvaegan.pt",
                     "params.yaml", "per_class.csv", "seen_subset.csv", "spuriousness.json"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["method"], metrics["fraction"], metrics["seed"]) == ("fvaegan", 0.5, 3)
    m = metrics["variants"]["fvaegan"]
    assert {"t1", "u", "s", "h", "s_seen", "s_unseen", "delta_adv"} <= set(m)
    assert 0.0 <= m["h"] <= 100.0
    cell_params = yaml.safe_load((out / "params.yaml").read_text())
    assert cell_params["train"] == {"seen_fraction": 0.5, "seed": 3} and "sweep" not in cell_params
    assert sorted(p.name for p in out.parent.iterdir()) == ["fvaegan-0.5-3"]   # no work dirs left


def test_failing_stage_leaves_nothing(inputs, capsys):
    tmp, params = inputs
    out = tmp / "failed" / "fvaegan-0.5-0"
    rc = sweep_cell.main(cell_argv(tmp, params, "fvaegan", "0.5", "0", out, raw="missing"))
    assert rc == 2
    err = capsys.readouterr().err
    assert "missing" in err and "sweep cell: stage prepare failed (exit 2)" in err
    assert list(out.parent.iterdir()) == []
