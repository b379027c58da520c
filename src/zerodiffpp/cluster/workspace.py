"""The login-node side of a submission: the repository, its sweep cells, the shared DVC cache
and one git worktree per cell."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from .errors import ClusterError

SWEEP_STAGE = "sweep"          # dvc.yaml matrix stage of the cells: sweep@<cell>


def _env() -> dict:
    env = dict(os.environ)
    env.setdefault("DVC_NO_ANALYTICS", "1")
    return env


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, env=_env())
    if check and proc.returncode != 0:
        raise ClusterError(f"`git {' '.join(args)}` in {root} failed: "
                           f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def dvc(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """DVC of this Python environment (the one the stages run under)."""
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True,
                          text=True, env=_env())
    if check and proc.returncode != 0:
        raise ClusterError(f"`dvc {' '.join(args)}` in {root} failed: "
                           f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def repo_root(start: Path) -> Path:
    proc = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise ClusterError(f"{start} is not inside a git repository (run from the project's "
                           "checkout)")
    root = Path(proc.stdout.strip())
    if not (root / "dvc.yaml").is_file() or not (root / ".dvc").is_dir():
        raise ClusterError(f"{root}: no dvc.yaml / .dvc here: not a DVC project checkout")
    return root


def sweep_cells(root: Path) -> list[str]:
    """Every cell of the sweep matrix as DVC expands it from params.yaml (``dvc stage list``)."""
    names = dvc(root, "stage", "list", "--name-only").stdout.split()
    return [n.split("@", 1)[1] for n in names if n.startswith(SWEEP_STAGE + "@")]


def select_cells(available: list[str], requested: list[str] | None) -> list[str]:
    if not requested:
        return list(available)
    unknown = [c for c in requested if c not in available]
    if unknown:
        raise ClusterError(f"unknown sweep cell(s) {', '.join(unknown)}: dvc.yaml's sweep matrix "
                           f"(params.yaml sweep.methods x fractions x seeds) has "
                           f"{', '.join(available) or 'no cells'}")
    return list(dict.fromkeys(requested))


def upstream_stages(root: Path) -> list[str]:
    """The stages whose outputs the sweep cells read (data/raw, data/features today): they are
    checked out from the shared cache in each worktree instead of being rerun by every job."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    produced = {}
    for name, stage in stages.items():
        if "cmd" in stage:            # plain stages only; foreach / matrix outputs are templated
            for out in stage.get("outs") or []:
                produced[next(iter(out)) if isinstance(out, dict) else out] = name
    deps = stages[SWEEP_STAGE].get("deps") or []
    return sorted({produced[d] for d in deps if d in produced})


def shared_cache(root: Path) -> dict:
    """The repository's DVC cache settings, refused unless the cache can be shared by jobs in
    other worktrees on other nodes: ``cache.dir`` set explicitly (the default .dvc/cache is
    private to one checkout) and ``cache.shared group`` (files every job and group member can
    add to).  Whether the compute nodes see the directory is checked by each job (marker)."""
    fix = ("dvc cache dir /path/on/the/shared/filesystem/dvc-cache && "
           "dvc config cache.shared group")
    configured = dvc(root, "config", "cache.dir", check=False).stdout.strip()
    if not configured:
        raise ClusterError(f"the DVC cache of {root} is its private .dvc/cache, which jobs in "
                           f"their own worktrees do not see: set a cache on a filesystem shared "
                           f"by the login and compute nodes: {fix}")
    shared = dvc(root, "config", "cache.shared", check=False).stdout.strip()
    if shared != "group":
        raise ClusterError(f"DVC cache.shared is {shared or 'not set'}: jobs (and colleagues) "
                           f"writing to one cache need group-writable files: "
                           f"dvc config cache.shared group")
    path = Path(dvc(root, "cache", "dir").stdout.strip())
    if not path.is_dir():
        raise ClusterError(f"DVC cache dir {path} (cache.dir = {configured}) does not exist; "
                           f"create it on the shared filesystem or fix it: {fix}")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ClusterError(f"DVC cache dir {path} is not writable by {os.environ.get('USER', 'this user')}")
    cache_type = dvc(root, "config", "cache.type", check=False).stdout.strip()
    return {"dir": str(path), "shared": shared, "type": cache_type}


def check_committed(root: Path) -> str:
    """HEAD, refused when the code or params the jobs would run differ from it (each job's
    worktree is a checkout of HEAD, not of this workspace)."""
    dirty = git(root, "status", "--porcelain", "--", "dvc.yaml", "params.yaml", "src").stdout
    if dirty.strip():
        files = ", ".join(line[3:] for line in dirty.splitlines()[:8])
        raise ClusterError(f"uncommitted changes in {files}: each job checks out HEAD in its own "
                           "worktree, so commit them first (git commit)")
    return git(root, "rev-parse", "HEAD").stdout.strip()


def check_upstream(root: Path, stages: list[str]) -> None:
    """The upstream outputs are up to date and stored in the (shared) cache, so jobs only check
    them out."""
    if not stages:
        return
    proc = dvc(root, "status", "--json", *stages)
    status = json.loads(proc.stdout or "{}")
    if status:
        what = "; ".join(f"{stage}: {json.dumps(changes)}" for stage, changes in status.items())
        raise ClusterError(f"the sweep cells read the outputs of {', '.join(stages)}, which are "
                           f"not up to date in the shared cache ({what}): run `dvc repro "
                           f"{' '.join(stages)}` here first (after changing the cache dir: "
                           f"`dvc commit -f {' '.join(stages)}`)")


def prepare_worktree(root: Path, path: Path, commit: str, cache: dict, resume_name: str) -> None:
    """A detached worktree of ``commit`` at ``path`` whose DVC cache is the shared one, with this
    workspace's dvc.lock (the upstream outputs' hashes).  An existing worktree of the same commit
    is kept as it is (it may hold the cell's checkpoints); one of another commit is replaced,
    carrying the cell's resume directory over (the trainer's own check decides whether it
    fits)."""
    resume = Path("runs") / "sweep" / resume_name
    if path.exists():
        head = git(path, "rev-parse", "HEAD", check=False).stdout.strip()
        if head == commit:
            shutil.copy(root / "dvc.lock", path / "dvc.lock")
            write_cache_config(path, cache)
            return
        carried = path.parent / f"{path.name}.carry"
        if (path / resume).is_dir():
            shutil.rmtree(carried, ignore_errors=True)
            os.replace(path / resume, carried)
        git(root, "worktree", "remove", "--force", str(path), check=False)
        shutil.rmtree(path, ignore_errors=True)
        git(root, "worktree", "prune")
    path.parent.mkdir(parents=True, exist_ok=True)
    git(root, "worktree", "add", "--detach", "-q", str(path), commit)
    carried = path.parent / f"{path.name}.carry"
    if carried.is_dir():
        (path / resume).parent.mkdir(parents=True, exist_ok=True)
        os.replace(carried, path / resume)
    if (root / "dvc.lock").is_file():
        shutil.copy(root / "dvc.lock", path / "dvc.lock")
    write_cache_config(path, cache)


def write_cache_config(path: Path, cache: dict) -> None:
    """The worktree's .dvc/config.local: the shared cache as the login checkout resolves it."""
    lines = ["[cache]", f"    dir = {cache['dir']}", f"    shared = {cache['shared']}"]
    if cache.get("type"):
        lines.append(f"    type = {cache['type']}")
    (path / ".dvc" / "config.local").write_text("\n".join(lines) + "\n")
