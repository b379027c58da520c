"""Atomic, validated file I/O shared by every stage.

Every output goes through :func:`atomic_path`: the data is written to a temporary
file in the same directory and renamed over the target only once complete, so an
interrupted stage never leaves a truncated JSON, CSV, ``.mat``, ``.npz`` or
checkpoint for DVC to hash or ``dvc metrics diff`` to compare.
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np


_UMASK = os.umask(0)
os.umask(_UMASK)


class DataError(ValueError):
    """An input file is missing, corrupt or inconsistent; the message names file, key and problem."""


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    ``suffix`` keeps the extension for writers that insist on it (``np.savez`` appends
    ``.npz`` otherwise)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                               suffix=suffix if suffix is not None else target.suffix + ".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600 files; give outputs the usual umask-based mode.
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_UMASK)
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def _json_default(obj: Any):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj)}")


def write_json(path: str | Path, obj: Any) -> None:
    """Deterministic JSON (sorted keys, fixed indentation) so reruns are byte-identical."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc


def write_csv(path: str | Path, frame) -> None:
    """Write a pandas DataFrame atomically with a fixed float format."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g")


def write_npz(path: str | Path, **arrays: np.ndarray) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def read_npz(path: str | Path, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Load an ``.npz`` without pickle support; check required keys are present."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found (did the upstream stage run?)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # zipfile.BadZipFile, ValueError, EOFError...
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc
    missing = [k for k in required if k not in arrays]
    if missing:
        raise DataError(f"{path}: missing key(s) {', '.join(missing)}")
    return arrays


def save_checkpoint(path: str | Path, state: dict) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Checkpoints load with ``weights_only=True``: tensors and plain containers only."""
    import torch

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: checkpoint not found (did the training stage run?)")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message is long and suggests weights_only=False; name the offending global.
        found = re.search(r"GLOBAL\s+([\w.]+)", str(exc))
        other = re.search(r"(Unsupported [^\n.]+)", str(exc))
        what = (f"it references {found.group(1)}" if found else
                f"it is not a weights-only torch file ({other.group(1).strip()})" if other else
                "it is not a weights-only torch file")
        raise DataError(f"{path}: refusing to load checkpoint: {what}; only tensors and plain "
                        "containers are allowed (weights_only=True), so this is not a "
                        "checkpoint written by zerodiffpp") from exc
    except Exception as exc:
        raise DataError(f"{path}: cannot load checkpoint, truncated or corrupt? "
                        f"({type(exc).__name__}: {_first_line(exc)})") from exc


def _first_line(exc: BaseException) -> str:
    """The first sentence of an exception message (torch's are paragraphs)."""
    line = (str(exc).strip().splitlines() or [""])[0]
    return re.split(r"(?<=\.)\s", line, maxsplit=1)[0][:300]
