"""Reliability, determinism (docs/reliability.md): `dvc repro` from scratch in two fresh
repositories on CPU gives byte-identical metrics files -- every ``metrics/**/*.json`` the
pipeline writes, whatever stages dvc.yaml has by now."""
from __future__ import annotations

import subprocess

import pytest

from pipeline_utils import deep_update, make_pipeline_repo, tiny_params

pytestmark = pytest.mark.slow

# Shrink every stage further; a key is only set where params.yaml has it (the file keeps growing).
SMALLER = {
    "data": {"dataset": "synthetic",
             "synthetic": {"n_classes": 6, "n_unseen": 2, "per_class": 40, "feature_dim": 16,
                           "attr_dim": 8}},
    "runtime": {"device": "cpu", "threads": 1, "progress": False},
    "eval": {"syn_per_class": 20, "classifier_epochs": 2, "max_classifier_epochs": 3,
             "max_zsl_epochs": 3, "variant_candidates": ["V", "VCS"]},
    "tta": {"rounds": 1, "epochs": 1},
    "spurious": {"syn_per_class": 10},
    "baselines": {"epochs": 1, "hidden_dim": 16, "critic_steps": 1, "batch_size": 64},
    "sweep": {"fractions": [0.5], "seeds": [0], "methods": ["fclswgan"]},
}


def test_two_fresh_repros_give_byte_identical_metrics(tmp_path):
    params = deep_update(tiny_params(), SMALLER, only_existing=True)
    repos = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        repos.append(make_pipeline_repo(tmp_path / name, params))
    procs = [subprocess.Popen(["dvc", "repro"], cwd=repo, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for repo, env in repos]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0, out
    metrics = [{str(p.relative_to(repo)): p.read_bytes()
                for p in sorted((repo / "metrics").rglob("*.json"))} for repo, _ in repos]
    assert metrics[0], "the pipeline wrote no metrics/**/*.json"
    assert metrics[0].keys() == metrics[1].keys()
    differ = [name for name in metrics[0] if metrics[0][name] != metrics[1][name]]
    assert differ == [], f"metrics differ between two identical runs: {differ}"
