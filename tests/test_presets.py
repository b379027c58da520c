import shutil
from pathlib import Path

import pytest
import yaml

from zerodiffpp.config import ConfigError, load_config
from zerodiffpp.presets import apply_preset

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", ["AWA2", "CUB", "SUN"])
def test_presets_apply_and_validate(tmp_path, name):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    apply_preset(name, params, REPO / "presets")
    cfg = load_config(params)
    assert cfg.data.dataset == name
    assert cfg.dfg.hidden_dim == 4096 and cfg.dfg.batch_size == 64 and cfg.dfg.critic_steps == 5
    # untouched sections survive the merge
    assert cfg.runtime.threads == yaml.safe_load((REPO / "params.yaml").read_text())["runtime"]["threads"]


def test_unknown_preset_lists_known(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    with pytest.raises(ConfigError, match="known: AWA2, CUB, SUN"):
        apply_preset("AWA1", params, REPO / "presets")
