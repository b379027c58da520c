"""One sweep cell in process on tiny synthetic data: its files and metrics, a failing stage
leaves neither a half cell nor a work directory behind, and an interrupted ZeroDiff cell resumes
its generators and ends with the metrics of an uninterrupted run."""
from __future__ import annotations

import json
import os
import shutil
import signal

import pytest
import torch
import yaml

from conftest import assert_same_checkpoint
from pipeline_utils import tiny_params
from test_sweep_pipeline import SWEEP_TINY
from zerodiffpp.stages import download, features, spuriousness, sweep_cell, validation_classes
from zerodiffpp.train_dfg import DFGTrainer


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
    # the validation round's inputs (validation_classes and val_features stages)
    assert validation_classes.main(["--params", str(params), "--raw", str(tmp / "raw"),
                                    "--out", str(tmp / "val" / "split.json")]) == 0
    assert features.main(["--params", str(params), "--raw", str(tmp / "raw"),
                          "--out", str(tmp / "val" / "features"),
                          "--exclude-classes", str(tmp / "val" / "split.json")]) == 0
    yield tmp, params
    torch.set_num_threads(threads)


def cell_argv(tmp, params, method, fraction, seed, out, raw="raw"):
    return ["--method", method, "--fraction", fraction, "--seed", seed, "--out", str(out),
            "--params", str(params), "--raw", str(tmp / raw), "--features", str(tmp / "features"),
            "--val-features", str(tmp / "val" / "features"),
            "--val-split", str(tmp / "val" / "split.json")]


def test_baseline_cell_writes_its_directory(inputs):
    tmp, params = inputs
    out = tmp / "sweep" / "fvaegan-0.5-3"
    assert sweep_cell.main(cell_argv(tmp, params, "fvaegan", "0.5", "3", out)) == 0
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert names == ["eval.json", "history/fvaegan.csv", "metrics.json", "models/fvaegan.pt",
                     "params.yaml", "per_class.csv", "seen_subset.csv", "selection.json",
                     "spuriousness.json"]
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


def test_interrupted_zerodiff_cell_resumes(inputs, monkeypatch, capsys):
    """SIGTERM in the (validation round's) DFG's second epoch: the cell exits 130 and keeps
    ``.<cell>.resume`` (finished DRG, DFG's epoch-1 checkpoint) but no cell; the rerun reuses DRG with nothing left to train,
    resumes DFG after epoch 1, writes the metrics of an uninterrupted run and removes the work
    directory."""
    tmp, base = inputs
    raw = yaml.safe_load(base.read_text())
    raw["drg"]["epochs"], raw["dfg"]["epochs"] = 2, 3
    params = tmp / "resume-params.yaml"
    params.write_text(yaml.safe_dump(raw, sort_keys=False))
    out = tmp / "resume" / "zerodiff-0.5-1"
    argv = cell_argv(tmp, params, "zerodiff", "0.5", "1", out)
    work = sweep_cell.resume_dir(out)

    real_epoch = DFGTrainer.run_epoch

    def epoch_then_term(self, bar=None):
        if self.epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)    # turned into TrainingInterrupted by fit()
        return real_epoch(self, bar)

    monkeypatch.setattr(DFGTrainer, "run_epoch", epoch_then_term)
    with pytest.raises(SystemExit) as stopped:
        sweep_cell.main(argv)
    assert stopped.value.code == 130
    err = capsys.readouterr().err
    assert "DFG training interrupted by SIGTERM after epoch 1 of 3" in err
    assert f"sweep cell: kept {work} (generator checkpoints)" in err
    assert not out.exists()
    # the cell's validation round trains first: its DFG is the one stopped
    val = work / "val"
    assert (val / "drg" / "model.pt").exists() and (val / "dfg.resume" / "model.pt").exists()

    monkeypatch.setattr(DFGTrainer, "run_epoch", real_epoch)
    assert sweep_cell.main(argv) == 0
    log = capsys.readouterr().out
    assert "DRG: " in log and "resuming after epoch 2" in log          # finished: reused as is
    assert "DFG: " in log and "resuming after epoch 1" in log          # continued
    assert not work.exists()
    resumed = json.loads((out / "metrics.json").read_text())

    straight = tmp / "straight" / "zerodiff-0.5-1"
    assert sweep_cell.main(cell_argv(tmp, params, "zerodiff", "0.5", "1", straight)) == 0
    assert "resuming" not in capsys.readouterr().out
    assert resumed == json.loads((straight / "metrics.json").read_text())
    for name in ("drg", "dfg"):
        assert_same_checkpoint(out / "models" / f"{name}.pt", straight / "models" / f"{name}.pt",
                               out / "history" / f"{name}.csv", straight / "history" / f"{name}.csv")


def test_cell_stopped_after_its_baseline_reuses_it(inputs, monkeypatch, capsys):
    """Stopped in the spuriousness step: the finished f-VAEGAN is kept and the rerun reuses it
    (nothing left to train); the metrics equal an uninterrupted cell's."""
    tmp, params = inputs
    out = tmp / "stopped" / "fvaegan-0.5-2"
    argv = cell_argv(tmp, params, "fvaegan", "0.5", "2", out)
    work = sweep_cell.resume_dir(out)
    monkeypatch.setattr(spuriousness, "main", lambda argv: 130)
    with pytest.raises(SystemExit) as stopped:
        sweep_cell.main(argv)
    assert stopped.value.code == 130 and not out.exists()
    assert (work / "fvaegan" / "model.pt").exists()
    monkeypatch.undo()
    capsys.readouterr()
    assert sweep_cell.main(argv) == 0
    assert "f-VAEGAN: " in (log := capsys.readouterr().out) and "resuming after epoch 1" in log
    assert not work.exists()
    straight = tmp / "straight" / "fvaegan-0.5-2"
    assert sweep_cell.main(cell_argv(tmp, params, "fvaegan", "0.5", "2", straight)) == 0
    assert "resuming" not in capsys.readouterr().out
    assert (json.loads((out / "metrics.json").read_text())
            == json.loads((straight / "metrics.json").read_text()))


def test_cell_at_the_main_runs_fraction_and_seed_reuses_its_generators(inputs, capsys, tmp_path):
    """A finished f-VAEGAN of the 'main run' is offered to the cell with the same fraction and
    seed, reused (nothing trained), and the metrics equal a cell that trained its own; a cell
    at another seed is offered nothing."""
    tmp, params = inputs
    first = tmp / "donor-src" / "fvaegan-0.5-3"
    assert sweep_cell.main(cell_argv(tmp, params, "fvaegan", "0.5", "3", first)) == 0
    runs = tmp_path / "runs"
    (runs / "baselines" / "fvaegan").mkdir(parents=True)
    shutil.copy(first / "models" / "fvaegan.pt", runs / "baselines" / "fvaegan" / "model.pt")
    main_params = tmp_path / "params.yaml"
    raw = yaml.safe_load(params.read_text())
    raw["train"] = {**raw.get("train", {}), "seen_fraction": 0.5, "seed": 3}
    main_params.write_text(yaml.safe_dump(raw, sort_keys=False))
    capsys.readouterr()
    reused = tmp / "donor-dst" / "fvaegan-0.5-3"
    argv = cell_argv(tmp, main_params, "fvaegan", "0.5", "3", reused) + ["--reuse-from", str(runs)]
    assert sweep_cell.main(argv) == 0
    log = capsys.readouterr().out
    assert "offering the main run's" in log and "resuming after epoch" in log, log
    assert (json.loads((reused / "metrics.json").read_text())
            == json.loads((first / "metrics.json").read_text()))
    other = cell_argv(tmp, main_params, "fvaegan", "0.5", "4", tmp / "donor-dst" / "fvaegan-0.5-4")
    assert sweep_cell.main(other + ["--reuse-from", str(runs)]) == 0
    assert "offering" not in capsys.readouterr().out
