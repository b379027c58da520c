"""Build a throw-away git + DVC repository holding this pipeline, for end-to-end tests
(pattern from DVC_NOTES.md: copy dvc.yaml, the package and shrunk params into tmp)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Small enough that a full `dvc repro` takes seconds, big enough that every stage does real work.
TINY_OVERRIDES = {
    "runtime": {"threads": 1, "progress": False},
    "features": {"feature_dim": 32, "ce_epochs": 1, "sc_epochs": 1, "batch_size": 256,
                 "projection_dim": 16},
    "drg": {"epochs": 1, "hidden_dim": 32, "critic_steps": 2, "batch_size": 128},
    "dfg": {"epochs": 1, "hidden_dim": 32, "critic_steps": 2, "batch_size": 128},
    "eval": {"syn_per_class": 30, "classifier_epochs": 3, "max_classifier_epochs": 4,
             "max_zsl_epochs": 4, "variant_candidates": ["V", "VCS"]},
    "eszsl": {"gamma_grid": [0.1, 10.0], "lam_grid": [0.1, 10.0]},
    "tta": {"rounds": 1, "epochs": 1},
    "spurious": {"syn_per_class": 20},
    "baselines": {"epochs": 1, "hidden_dim": 32, "critic_steps": 2, "batch_size": 128},
    "sweep": {"fractions": [0.5], "seeds": [0], "methods": ["fvaegan"]},
}


def deep_update(base: dict, overrides: dict, only_existing: bool = False) -> dict:
    """Merge ``overrides`` into ``base`` recursively; ``only_existing`` skips keys ``base``
    lacks (for overrides written against a params.yaml that keeps growing)."""
    for key, value in overrides.items():
        if only_existing and key not in base:
            continue
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_update(base[key], value, only_existing)
        else:
            base[key] = value
    return base


def tiny_params(**extra) -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    deep_update(params, TINY_OVERRIDES)
    return deep_update(params, extra)


def dvc_env(tmp: Path, repo: Path) -> dict:
    env = dict(os.environ)
    env.update({
        "DVC_NO_ANALYTICS": "1",
        "DVC_SITE_CACHE_DIR": str(tmp / "dvc-site-cache"),
        "ZERODIFFPP_NO_PROGRESS": "1",
        "PYTHONPATH": str(repo / "src"),
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com",
    })
    return env


def run(cmd: list[str], cwd: Path, env: dict, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_pipeline_repo(tmp: Path, params: dict) -> tuple[Path, dict]:
    """Copy the pipeline into ``tmp/repo``, init git + DVC, commit; return (repo, env)."""
    repo = tmp / "repo"
    repo.mkdir()
    for name in ("dvc.yaml", ".dvcignore", ".gitignore"):
        shutil.copy(REPO / name, repo / name)
    for folder in ("src",):
        shutil.copytree(REPO / folder, repo / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
    for folder in ("metrics", "plots", "data"):
        (repo / folder).mkdir(exist_ok=True)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dvc_env(tmp, repo)
    run(["git", "init", "-q"], repo, env)
    run(["dvc", "init", "-q"], repo, env)
    run(["dvc", "config", "core.analytics", "false"], repo, env)
    run(["dvc", "config", "core.check_update", "false"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "pipeline"], repo, env)
    return repo, env
