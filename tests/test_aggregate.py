"""Sweep aggregation on hand-made cell metrics: exact mean/std, exactly the listed cells,
clear errors; sweep params validation; the sweep cell's argument and params checks."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import yaml

from zerodiffpp import aggregate as agg
from zerodiffpp.config import SWEEP_METHODS, ConfigError, config_from_dict
from zerodiffpp.stages import aggregate as stage
from zerodiffpp.stages import sweep_cell


def write_cell(root, method, fraction, seed, values: dict, override: dict | None = None):
    """A cell metrics.json: ``values`` = {variant: {metric: value}}; other metrics default."""
    variants = {}
    for variant in agg.VARIANTS[method]:
        v = {"t1": 1.0, "u": 2.0, "s": 3.0, "h": 4.0, "s_seen": 0.1, "s_unseen": 0.2,
             "delta_adv": 0.5, "denom": 1.0, "unnormalised": 0, "acc_gap_seen": 0.0,
             "acc_gap_unseen": 0.0, "connectivity": 1.0}
        v.update(values.get(variant, {}))
        variants[variant] = v
    data = {"method": method, "fraction": fraction, "seed": seed, "variants": variants}
    data.update(override or {})
    path = root / agg.cell_name(method, fraction, seed) / "metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data))
    return path


H = {0: 10.0, 1: 20.0, 2: 36.0}      # mean 22, sample std sqrt(((12)^2+2^2+14^2)/2) = sqrt(172)


@pytest.fixture
def cells(tmp_path):
    root = tmp_path / "runs" / "sweep"
    for seed, h in H.items():
        write_cell(root, "zerodiff", 0.1, seed, {"zerodiffpp": {"h": h, "s_unseen": seed * 0.5},
                                                "zerodiff": {"h": 1.0}})
        write_cell(root, "zerodiff", 1.0, seed, {"zerodiffpp": {"h": 50.0}})
        write_cell(root, "fclswgan", 0.1, seed, {"fclswgan": {"h": h / 2, "s_seen": None}})
        write_cell(root, "fclswgan", 1.0, seed, {})
    return root


def test_mean_and_std_are_exact(cells):
    summary, long, wide = agg.aggregate(cells, ["zerodiff", "fclswgan"], [1.0, 0.1], [0, 1, 2])
    assert set(summary) == {"zerodiff", "zerodiff_tta", "zerodiff_diffgen", "zerodiffpp", "fclswgan"}
    p10 = summary["zerodiffpp"]["p10"]
    assert p10["n"] == 3
    assert p10["h"] == {"mean": 22.0, "std": round(math.sqrt(172.0), 2)}
    assert p10["s_unseen"] == {"mean": 0.5, "std": 0.5}
    assert summary["zerodiff"]["p10"]["h"] == {"mean": 1.0, "std": 0.0}
    assert summary["zerodiffpp"]["p100"]["h"] == {"mean": 50.0, "std": 0.0}
    assert summary["fclswgan"]["p10"]["h"] == {"mean": 11.0, "std": round(math.sqrt(43.0), 2)}
    # null in every seed -> null, not 0 and not an error
    assert summary["fclswgan"]["p10"]["s_seen"] == {"mean": None, "std": None}
    assert set(p10) == {"n", "t1", "u", "s", "h", "s_seen", "s_unseen"}
    # long form: one row per cell x variant x metric, all metrics
    assert list(long.columns) == ["method", "fraction", "seed", "metric", "value"]
    assert len(long) == (3 * 4 * 2 + 3 * 1 * 2) * 12
    row = long[(long.method == "zerodiffpp") & (long.fraction == 0.1) & (long.seed == 2)
               & (long.metric == "h")]
    assert row["value"].tolist() == [36.0]
    # wide summary: ascending fractions, <metric>_<variant> columns
    assert wide["fraction"].tolist() == [0.1, 1.0]
    assert wide.loc[0, "h_zerodiffpp"] == 22.0 and wide.loc[1, "h_zerodiffpp"] == 50.0
    assert "s_unseen_fclswgan_std" in wide.columns


def test_single_seed_has_zero_std_and_keys_have_no_dots(tmp_path):
    root = tmp_path / "cells"
    write_cell(root, "fvaegan", 0.025, 7, {"fvaegan": {"h": 12.345}})
    summary, _, _ = agg.aggregate(root, ["fvaegan"], [0.025], [7])
    assert summary == {"fvaegan": {"p2_5": {
        "n": 1, "t1": {"mean": 1.0, "std": 0.0}, "u": {"mean": 2.0, "std": 0.0},
        "s": {"mean": 3.0, "std": 0.0}, "h": {"mean": 12.35, "std": 0.0},
        "s_seen": {"mean": 0.1, "std": 0.0}, "s_unseen": {"mean": 0.2, "std": 0.0}}}}


@pytest.mark.parametrize("fraction, key", [(1.0, "p100"), (0.3, "p30"), (0.1, "p10"),
                                           (0.05, "p5"), (0.025, "p2_5"), (1 / 3, "p33_333333")])
def test_fraction_keys(fraction, key):
    assert agg.fraction_key(fraction) == key
    assert "." not in key


def test_reads_exactly_the_listed_cells(cells):
    """A stale cell of an older, larger grid is on disk: it must not be averaged in."""
    write_cell(cells, "zerodiff", 0.1, 9, {"zerodiffpp": {"h": 1000.0}})
    summary, long, _ = agg.aggregate(cells, ["zerodiff"], [0.1], [0, 1, 2])
    assert summary["zerodiffpp"]["p10"]["h"]["mean"] == 22.0
    assert 9 not in set(long["seed"])
    # and a subset of seeds works
    summary, _, _ = agg.aggregate(cells, ["zerodiff"], [0.1], [0, 1])
    assert summary["zerodiffpp"]["p10"]["h"] == {"mean": 15.0, "std": round(math.sqrt(50), 2)}


def test_missing_cell_is_named(cells):
    with pytest.raises(agg.SweepError) as err:
        agg.aggregate(cells, ["zerodiff", "fvaegan"], [1.0, 0.1], [0, 1])
    msg = str(err.value)
    assert "sweep cell fvaegan-1.0-0" in msg and "metrics.json not found" in msg
    assert "dvc repro sweep@fvaegan-1.0-0" in msg


def test_stage_main_missing_cell_exits_2(cells, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"sweep": {"methods": ["fclswgan"], "fractions": [0.1, 0.3],
                                                "seeds": [0]}}))
    rc = stage.main(["--params", str(params), "--cells", str(cells),
                     "--metrics", str(tmp_path / "m.json"), "--long", str(tmp_path / "l.csv"),
                     "--summary", str(tmp_path / "s.csv"), "--rows", str(tmp_path / "rows")])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error: sweep cell fclswgan-0.3-0 (method fclswgan, fraction 0.3, seed 0)")
    assert not (tmp_path / "m.json").exists()


def test_stage_main_writes_outputs(cells, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"sweep": {"methods": ["fclswgan"], "fractions": [1.0, 0.1],
                                                "seeds": [0, 1, 2]}}))
    out = tmp_path / "out"
    rc = stage.main(["--params", str(params), "--cells", str(cells), "--metrics",
                     str(out / "sweep.json"), "--long", str(out / "sweep.csv"),
                     "--summary", str(out / "summary.csv"), "--rows", str(out / "rows")])
    assert rc == 0
    metrics = json.loads((out / "sweep.json").read_text())
    # the results-table rows: one file per fraction and method, the same few keys
    row = json.loads((out / "rows" / "p10" / "fclswgan.json").read_text())
    assert set(row) == {"T1", "U", "S", "H", "H_sd"} and row["H"] == 11.0
    assert sorted(p.name for p in (out / "rows").iterdir()) == ["p10", "p100"]
    assert list(metrics) == ["fclswgan"] and set(metrics["fclswgan"]) == {"p10", "p100"}
    assert metrics["fclswgan"]["p10"]["h"]["mean"] == 11.0
    assert len(pd.read_csv(out / "sweep.csv")) == 2 * 3 * 12
    wide = pd.read_csv(out / "summary.csv")
    assert wide["fraction"].tolist() == [0.1, 1.0]
    assert wide["h_fclswgan"].tolist() == [11.0, 4.0]
    # every variant keeps its columns (empty here) so dvc.yaml's top-level plots find them
    assert wide["h_zerodiffpp"].isna().all() and "s_unseen_fvaegan_std" in wide.columns


@pytest.mark.parametrize("override, fragment", [
    ({"seed": 5}, "seed is 5, expected 0"),
    ({"method": "fvaegan"}, "method is 'fvaegan'"),
    ({"fraction": 0.2}, "fraction is 0.2, expected 0.1"),
    ({"variants": {}}, "variant 'fclswgan' missing"),
])
def test_malformed_cell_is_named(tmp_path, override, fragment):
    path = write_cell(tmp_path, "fclswgan", 0.1, 0, {}, override)
    with pytest.raises(agg.SweepError) as err:
        agg.aggregate(tmp_path, ["fclswgan"], [0.1], [0])
    assert str(path) in str(err.value) and fragment in str(err.value)


def test_metric_missing_and_bad_json(tmp_path):
    path = write_cell(tmp_path, "fclswgan", 0.1, 0, {})
    data = json.loads(path.read_text())
    del data["variants"]["fclswgan"]["h"]
    path.write_text(json.dumps(data))
    with pytest.raises(agg.SweepError, match="fclswgan.h missing"):
        agg.aggregate(tmp_path, ["fclswgan"], [0.1], [0])
    path.write_text("{not json")
    with pytest.raises(agg.SweepError, match="not valid JSON"):
        agg.aggregate(tmp_path, ["fclswgan"], [0.1], [0])


# --------------------------------------------------------------------------- params + cell args


def test_sweep_section_defaults_and_methods_match_cells():
    cfg = config_from_dict({})
    assert cfg.sweep.methods == list(SWEEP_METHODS) == list(agg.VARIANTS)
    assert all(0 < f <= 1 for f in cfg.sweep.fractions)


@pytest.mark.parametrize("raw, message", [
    ({"fractions": [1.0, 0.0]}, "sweep.fractions[1]=0.0: must be in (0, 1]"),
    ({"fractions": [1.5]}, "sweep.fractions[0]=1.5: must be in (0, 1]"),
    ({"fractions": []}, "sweep.fractions: must list at least one value"),
    ({"fractions": [0.1, 0.1]}, "sweep.fractions: 0.1 listed twice"),
    ({"fractions": ["a"]}, "sweep.fractions[0]='a': expected a number"),
    ({"seeds": [0, -1]}, "sweep.seeds[1]=-1: must be >= 0"),
    ({"seeds": [1.5]}, "sweep.seeds[0]=1.5: expected an integer"),
    ({"methods": ["zerodiff", "zerodiffpp"]},
     "sweep.methods[1]='zerodiffpp': must be one of zerodiff, fclswgan, fvaegan"),
    ({"grid": 1}, "sweep.grid: unknown parameter"),
])
def test_sweep_params_are_validated(raw, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"sweep": raw})
    assert str(err.value).startswith(message)


@pytest.mark.parametrize("args, fragment", [
    (("zerodiffpp", "0.1", "0"), "--method 'zerodiffpp': must be one of zerodiff, fclswgan, fvaegan"),
    (("zerodiff", "1", "0"), "--fraction '1': write it as 1.0"),
    (("zerodiff", "0.10", "0"), "--fraction '0.10': write it as 0.1"),
    (("zerodiff", "abc", "0"), "--fraction 'abc': expected a number"),
    (("zerodiff", "0.1", "x"), "--seed 'x': expected an integer"),
])
def test_cell_arguments_are_checked(args, fragment):
    with pytest.raises(ConfigError) as err:
        sweep_cell.check_cell(*args)
    assert str(err.value).startswith(fragment)


def test_cell_params_override_train_and_drop_the_grid(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"train": {"seen_fraction": 1.0, "seed": 0},
                                      "eval": {"syn_per_class": 7},
                                      "sweep": {"seeds": [0, 1]}}))
    raw = sweep_cell.cell_params(params, 0.3, 4)
    assert raw["train"] == {"seen_fraction": 0.3, "seed": 4}
    assert raw["eval"] == {"syn_per_class": 7} and "sweep" not in raw
    with pytest.raises(ConfigError, match=r"train.seen_fraction=0.0: must be > 0.0"):
        sweep_cell.cell_params(params, 0.0, 0)


def test_cell_main_rejects_bad_arguments_before_work(tmp_path, capsys):
    rc = sweep_cell.main(["--method", "zerodiff", "--fraction", "1", "--seed", "0",
                          "--out", str(tmp_path / "cell")])
    assert rc == 2
    assert "write it as 1.0" in capsys.readouterr().err
    assert not (tmp_path / "cell").exists()


def test_paper_sweep_preset_applies_over_a_dataset_preset(tmp_path):
    import shutil
    from pathlib import Path

    from zerodiffpp.config import load_config
    from zerodiffpp.presets import apply_preset

    repo = Path(__file__).resolve().parents[1]
    params = tmp_path / "params.yaml"
    shutil.copy(repo / "params.yaml", params)
    apply_preset("CUB", params, repo / "presets")
    apply_preset("sweep-paper", params, repo / "presets")
    cfg = load_config(params)
    assert cfg.data.dataset == "CUB"
    assert cfg.sweep.fractions == [1.0, 0.3, 0.1] and len(cfg.sweep.seeds) >= 3
    assert cfg.sweep.methods == ["zerodiff", "fclswgan", "fvaegan"]
    assert [agg.fraction_key(f) for f in cfg.sweep.fractions] == ["p100", "p30", "p10"]
