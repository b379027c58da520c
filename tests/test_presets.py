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


# METHOD.md 1.2, DFG rows: syn_num at 100 / 30 / 10 % of the seen training data.
PAPER_SYN = {"AWA2": (5400, 1800, 600), "CUB": (1440, 440, 140), "SUN": (400, 120, 40)}


@pytest.mark.parametrize("name", sorted(PAPER_SYN))
def test_paper_sweep_uses_the_papers_syn_num_per_fraction(tmp_path, name):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    apply_preset(name, params, REPO / "presets")
    apply_preset("sweep-paper", params, REPO / "presets")
    raw = yaml.safe_load(params.read_text())
    assert raw["sweep"]["fractions"] == [1.0, 0.3, 0.1]
    counts = []
    for fraction in raw["sweep"]["fractions"]:       # what each sweep cell's stages will read
        raw["train"]["seen_fraction"] = fraction
        params.write_text(yaml.safe_dump(raw))
        counts.append(load_config(params, sections=("train", "eval")).eval.syn_per_class)
    assert tuple(counts) == PAPER_SYN[name]


def test_unknown_preset_lists_known(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    with pytest.raises(ConfigError, match="known: AWA2, CUB, SUN"):
        apply_preset("AWA1", params, REPO / "presets")
