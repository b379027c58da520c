"""Shared plumbing for ``python -m zerodiffpp.stages.<name>`` entry points."""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import sys
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from ..config import ConfigError
from ..io import DataError
from ..runtime import Interrupted


def run_stage(main: Callable[[Optional[Sequence[str]]], object]) -> Callable[..., int]:
    """Wrap a stage ``main(argv)``: ConfigError/DataError -> ``error: <message>`` on stderr
    and exit status 2 (no traceback); an interruption that saved resumable state
    (:class:`zerodiffpp.runtime.Interrupted`, e.g. SIGTERM during training) -> its message on
    stderr and exit status 130 (128 + SIGINT, what shells report for Ctrl-C); otherwise 0.
    Use ``raise SystemExit(main())``."""
    @functools.wraps(main)
    def wrapper(argv: Optional[Sequence[str]] = None) -> int:
        try:
            main(argv)
        except (ConfigError, DataError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except Interrupted as exc:
            print(str(exc), file=sys.stderr)
            return 130
        return 0
    return wrapper


def stage_parser(stage: str, doc: str, params: bool = True) -> argparse.ArgumentParser:
    """Argument parser of ``python -m zerodiffpp.stages.<stage>``: the first line of ``doc`` as
    its description and, unless ``params=False``, ``--params`` (default ``params.yaml``)."""
    parser = argparse.ArgumentParser(prog=f"python -m zerodiffpp.stages.{stage}",
                                     description=doc.splitlines()[0])
    if params:
        parser.add_argument("--params", default="params.yaml", help="parameter file")
    return parser


@contextlib.contextmanager
def atomic_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty temporary sibling directory; on success it replaces ``target`` as a
    whole, on failure it is removed, so an interrupted stage never leaves a half directory."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".{target.name}.*-*"):  # leftovers of killed runs
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    old = target.parent / f".{target.name}.old-{os.getpid()}"
    tmp.mkdir()
    try:
        yield tmp
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)
