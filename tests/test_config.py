"""params.yaml -> typed config: every bad value is refused with a message naming it."""
from pathlib import Path

import pytest
import yaml

from zerodiffpp.config import Config, ConfigError, config_from_dict, load_config

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_load_and_cover_every_field():
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    cfg = load_config(REPO / "params.yaml")
    assert isinstance(cfg, Config)
    assert 0 < cfg.train.seen_fraction <= 1
    # params.yaml spells out every section the code knows, so `dvc params diff` shows all.
    for section in ("data", "runtime", "features", "train", "diffusion", "drg", "dfg", "eval"):
        assert section in raw, section


@pytest.mark.parametrize("value, fragment", [
    ("abc", "expected a number"),
    (0, "must be > 0"),
    (1.5, "must be <= 1"),
    (True, "expected a number"),
    (float("nan"), "finite"),
])
def test_bad_seen_fraction_is_named(value, fragment):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"train": {"seen_fraction": value}})
    assert "train.seen_fraction" in str(err.value)
    assert fragment in str(err.value)


@pytest.mark.parametrize("raw, fragment", [
    ({"train": {"seen_fractoin": 0.5}}, "train.seen_fractoin: unknown parameter"),
    ({"trian": {}}, "trian: unknown parameter section"),
    ({"data": {"dataset": "imagenet"}}, "data.dataset='imagenet': must be one of animals"),
    ({"runtime": {"device": "tpu"}}, "runtime.device='tpu': must be one of auto, cpu, cuda"),
    ({"runtime": {"threads": 0}}, "runtime.threads=0: must be >= 1"),
    ({"dfg": {"epochs": 2.5}}, "dfg.epochs=2.5: expected an integer"),
    ({"dfg": {"freeze_dec": "yes"}}, "dfg.freeze_dec='yes': expected true or false"),
    ({"dfg": {"ema_decay": 1.0}}, "dfg.ema_decay=1.0: must be < 1"),
    ({"drg": {"ema_decay": -0.1}}, "drg.ema_decay=-0.1: must be >= 0"),
    ({"eval": {"variant": "X"}}, "eval.variant='X': must be one of V, VS, C, VC, VCS"),
    ({"tta": {"zsl_pool": "test"}}, "tta.zsl_pool='test': must be one of gzsl, unseen"),
    ({"data": {"synthetic": {"n_classes": 3, "n_unseen": 2}}}, "data.synthetic.n_unseen=2"),
    ({"diffgen": {"start_levels": [1, "a"]}}, "diffgen.start_levels[1]"),
    ({"diffgen": {"seen_fraction_candidates": [0.25, -1]}},
     "diffgen.seen_fraction_candidates[1]=-1.0: must be >= 0"),
    ({"diffgen": {"calibration": "high"}}, "diffgen.calibration='high': expected a number"),
    ({"baselines": {"methods": ["gan"]}}, "baselines.methods: unknown parameter"),
    ({"train": [1, 2]}, "train: expected a mapping"),
])
def test_bad_values_name_param_and_allowed_values(raw, fragment):
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    assert fragment in str(err.value)


def test_ints_accepted_for_floats_and_sections_optional():
    cfg = config_from_dict({"train": {"seen_fraction": 1}})
    assert cfg.train.seen_fraction == 1.0 and isinstance(cfg.train.seen_fraction, float)
    assert cfg.dfg.critic_steps == 5


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "params.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
