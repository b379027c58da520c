"""The benchmark commands of benchmarks/README.md still run and print what the README quotes
(small shapes; the numbers themselves are machine-dependent and not asserted)."""
from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest
import yaml

from conftest import REPO
from plusplus_utils import clustered_data, train_tiny


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_agreement_is_the_mean_share_of_equal_labels_over_seed_pairs():
    schedule = load_script("classifier_schedule")
    a, b = np.array([0, 1, 2, 3]), np.array([0, 1, 0, 0])
    assert schedule.agreement([a, b], [a, b], same_seed_ok=False) == (0.5, 0.0)
    mean, std = schedule.agreement([a, b], [a, b], same_seed_ok=True)
    assert mean == pytest.approx(0.75) and std == pytest.approx(0.25)


@pytest.mark.slow
def test_classifier_schedule_runs_on_a_trained_pipeline(tmp_path, capsys):
    data = clustered_data()
    train_tiny(data, tmp_path, epochs=1)
    (tmp_path / "prepared").mkdir()
    data.save(tmp_path / "prepared" / "prepared.npz")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"runtime": {"device": "cpu", "threads": 1, "progress": False},
                                      "eval": {"syn_per_class": 10, "classifier_batch": 32}}))
    load_script("classifier_schedule").main(
        ["--params", str(params), "--prepared", str(tmp_path / "prepared"), "--drg", str(tmp_path / "drg"),
         "--dfg", str(tmp_path / "dfg"), "--epochs", "1,3", "--seeds", "2", "--threads", "1"])
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 1 |") or line.startswith("| 3 |")]
    assert len(rows) == 2 and "reference: 3 epochs" in out
    assert "smallest schedule within the reference's seed noise" in out


@pytest.mark.slow
def test_bench_train_prints_utilisation_classifier_and_evaluation_lines(capsys):
    load_script("bench_train").main(
        ["--threads", "1", "--shape", "animals", "--iters", "1", "--stages", "DRG", "--eval-syn", "5",
         "--eval-epochs", "1", "--eval-variants", "V,VCS"])
    out = capsys.readouterr().out
    for expected in ("DRG fused", "DRG reference", "MFU (model FLOPs", "HFU (executed",
                     "classifier: one epoch", "previous (per-block autograd)", "eval: inputs",
                     "peak memory"):
        assert expected in out, expected


def test_epochs_argument_is_validated_with_a_clear_message(capsys):
    schedule = load_script("classifier_schedule")
    assert schedule.epoch_list("25,1, 5,5") == [1, 5, 25]
    for bad, message in (("1,a", "comma-separated integers"), ("5", "at least two"), ("0,5", "at least two")):
        with pytest.raises(SystemExit):
            schedule.main(["--epochs", bad])
        assert message in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_check_runs_on_cpu_and_two_cpu_pipelines_agree_exactly(capsys, tmp_path):
    """benchmarks/gpu_check.py with --device cpu on tiny sizes (what gpu_check.sh runs on CUDA):
    every part of its table is printed, and with both pipeline runs on the CPU every metric
    difference is exactly 0 (the CPU pipeline is deterministic)."""
    rc = load_script("gpu_check").main(["--device", "cpu", "--shape", "tiny", "--pipeline", "tiny",
                                        "--iters", "1", "--threads", "1", "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    for expected in ("| training at tiny shapes | fp32 | bf16 |", "| DRG it/s |", "| DFG it/s |",
                     "same-run matmul rate at its shapes", "| square matmul",
                     "| tiny pipeline (synthetic), seconds | cpu | cpu again |", "| cell |"):
        assert expected in out, expected
    rows = [line for line in out.splitlines()
            if line.startswith(("| zerodiff |", "| zerodiff_tta |", "| zerodiff_diffgen |", "| zerodiffpp |"))]
    assert len(rows) == 4, out
    for row in rows:
        diffs = row.strip("|").split("|")[3:]
        assert len(diffs) == 6 and all(d.strip() == "0" for d in diffs), row
    assert "largest CPU-vs-cpu metric difference: 0 " in out


def test_gpu_check_without_cuda_says_so(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the no-CUDA message does not apply")
    assert load_script("gpu_check").main(["--device", "cuda"]) == 2
    assert "--device cuda: torch" in capsys.readouterr().err


def test_schedule_search_overrides_are_parsed_and_checked():
    search = load_script("schedule_search")
    base = {"drg": {"epochs": 6, "batch_size": 64}, "dfg": {"epochs": 6}}
    out = search.override(base, "drg.epochs=4, dfg.epochs=10,drg.batch_size=128")
    assert out == {"drg": {"epochs": 4, "batch_size": 128}, "dfg": {"epochs": 10}}
    assert base["drg"]["epochs"] == 6                       # a copy, not an edit
    assert search.override(base, "") == base
    with pytest.raises(SystemExit, match="unknown key drg.epoch"):
        search.override(base, "drg.epoch=4")


def test_rate_matched_h_matches_the_source_methods_unseen_share():
    """calibration_ceiling's rate matching: the offset of ZeroDiff++ is moved until it predicts
    "unseen" for the share of the pool that + DiffGen predicts at its own offset; H is then the
    H at that offset (hand-made margins: 2 seen classes 0, 1; 2 unseen classes 2, 3)."""
    from zerodiffpp.protocol.calibration import Decisions

    ceiling = load_script("calibration_ceiling")
    y = np.array([0, 1, 2, 3])
    seen, unseen = np.array([0, 1]), np.array([2, 3])
    # + DiffGen at gamma 0: margins -1, 1, -2, 2 -> samples 0 and 2 unseen (share 0.5)
    base = Decisions(np.array([0, 1, 0, 0]), np.array([2, 2, 2, 3]),
                     np.array([-1.0, 1.0, -2.0, 2.0]), y)
    # ZeroDiff++: margins 5, 6, 3, 4: at gamma 0 all seen (H 0); at the median (4.5) samples 2
    # and 3 switch to unseen, both right, while the seen ones stay right: H 1
    plus = Decisions(np.array([0, 1, 0, 0]), np.array([2, 2, 2, 3]),
                     np.array([5.0, 6.0, 3.0, 4.0]), y)
    pools = {"zerodiff_diffgen": (base, 0.0, seen, unseen), "zerodiffpp": (plus, 0.0, seen, unseen)}
    assert ceiling.rate_matched_h(pools, "zerodiffpp") == pytest.approx(1.0)
    assert ceiling.rate_matched_h(pools, "zerodiff_diffgen") is None
    del pools["zerodiff_diffgen"]
    assert ceiling.rate_matched_h(pools, "zerodiffpp") is None
