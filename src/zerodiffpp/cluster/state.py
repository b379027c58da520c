"""What the launcher keeps between commands, in one directory beside the checkout
(``.cluster/`` by default, git-ignored by its own .gitignore)::

    cells/<cell>.json      the cell's record: job id, attempt, commit, worktree, job options
    exit/<cell>.json       written by the job when it ends: job id, exit status, signal, node
    logs/<cell>.log        every attempt's output, appended (a header line per attempt)
    logs/slurm-*.out       SLURM's own output file (empty unless the job script itself fails)
    jobs/<job>.sbatch      each submitted job script
    worktrees/<cell>/      the cell's git worktree (kept: it holds runs/sweep/.<cell>.resume)

It must be on the filesystem the compute nodes share, like the DVC cache.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import ClusterError

MARKER_DIR = ".zerodiffpp-cluster"     # inside the DVC cache dir: one token file per submission


@dataclass
class CellRecord:
    cell: str
    stage: str                 # sweep@<cell>
    commit: str
    worktree: str
    log: str
    job_id: str                # "<array job>_<task>"
    attempt: int
    submitted: str             # UTC ISO time
    marker: str                # token file the job must see in the cache (shared filesystem)
    upstream: list[str] = field(default_factory=list)
    options: dict = field(default_factory=dict)


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


class StateDir:
    def __init__(self, path: Path):
        self.path = Path(path).resolve()

    def create(self) -> None:
        for sub in ("cells", "exit", "logs", "jobs", "worktrees"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)
        ignore = self.path / ".gitignore"
        if not ignore.exists():
            ignore.write_text("# zerodiffpp.cluster state (job records, logs, worktrees)\n*\n")

    def record_path(self, cell: str) -> Path:
        return self.path / "cells" / f"{cell}.json"

    def exit_path(self, cell: str) -> Path:
        return self.path / "exit" / f"{cell}.json"

    def log_path(self, cell: str) -> Path:
        return self.path / "logs" / f"{cell}.log"

    def worktree(self, cell: str) -> Path:
        return self.path / "worktrees" / cell

    def cells(self) -> list[str]:
        return sorted(p.stem for p in (self.path / "cells").glob("*.json"))

    def load(self, cell: str) -> CellRecord:
        path = self.record_path(cell)
        if not path.is_file():
            raise ClusterError(f"cell {cell} was never submitted from {self.path} "
                               f"(no {path}); submitted: {', '.join(self.cells()) or 'none'}")
        try:
            return CellRecord(**json.loads(path.read_text()))
        except (ValueError, TypeError) as exc:
            raise ClusterError(f"{path}: unreadable cell record ({exc})") from None

    def save(self, record: CellRecord) -> None:
        _write_json(self.record_path(record.cell), asdict(record))

    def read_exit(self, cell: str) -> dict | None:
        path = self.exit_path(cell)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            return {"job_id": "?", "rc": None, "error": f"{path} unreadable"}

    def write_exit(self, cell: str, data: dict) -> None:
        _write_json(self.exit_path(cell), data)

    def log_tail(self, cell: str, lines: int) -> list[str]:
        path = self.log_path(cell)
        if not path.is_file():
            return []
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode(errors="replace")
        return text.splitlines()[-lines:] if lines > 0 else []
