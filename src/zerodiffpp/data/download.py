"""Resumable, checksum-verified downloads and zip-slip-safe extraction.

``fetch`` streams into ``<dest>.part`` and resumes from its size with an HTTP ``Range``
request, so an interrupted multi-hundred-MB download (xlsa17.zip) continues where it
stopped.  The file is renamed to ``dest`` only after size and sha256 check out.
"""
from __future__ import annotations

import http.client
import os
import re
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterable, Optional

from ..io import DataError
from ..runtime import progress as progress_bar
from .matio import sha256_file

CHUNK = 1 << 20
MANUAL_HINT = ("without network access, download the file yourself and set data.local_path "
               "to it (see docs/data.md)")


def _verify(path: Path, sha256: Optional[str], expected_size: Optional[int], url: str) -> None:
    size = path.stat().st_size
    if expected_size is not None and size != expected_size:
        path.unlink(missing_ok=True)
        raise DataError(f"{url}: downloaded {size} bytes, expected {expected_size}; "
                        f"the partial file {path} was deleted, rerun to download again")
    if sha256 is not None:
        got = sha256_file(path)
        if got != sha256.lower():
            path.unlink(missing_ok=True)
            raise DataError(f"{url}: sha256 mismatch (got {got}, expected {sha256}); "
                            f"the downloaded file {path} was deleted, rerun to download again")


def fetch(url: str, dest: str | Path, sha256: Optional[str] = None,
          expected_size: Optional[int] = None, *, show_progress: bool = True,
          timeout: float = 60.0, hint: str = MANUAL_HINT) -> Path:
    """Download ``url`` to ``dest`` (resuming ``dest.part``), verify, return ``dest``.

    An existing ``dest`` that passes the checks is reused without network access."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        if sha256 is None or sha256_file(dest) == sha256.lower():
            return dest
        dest.unlink()  # stale/corrupt cache entry: fetch again
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    if expected_size is not None and offset > expected_size:
        part.unlink()
        offset = 0
    if expected_size is None or offset < expected_size:
        _stream(url, part, offset, show_progress, timeout, hint)
    _verify(part, sha256, expected_size, url)
    os.replace(part, dest)
    return dest


def _stream(url: str, part: Path, offset: int, show_progress: bool, timeout: float,
            hint: str) -> None:
    headers = {"User-Agent": "zerodiffpp-download"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # nothing left to fetch: .part is already complete
            return
        raise DataError(f"{url}: HTTP error {exc.code} {exc.reason}; {hint}") from exc
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DataError(f"{url}: cannot download ({reason}); {hint}") from exc
    with resp:
        if offset and resp.status == 206:
            match = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != offset:
                raise DataError(f"{url}: server answered the resume request with an unexpected "
                                f"Content-Range {resp.headers.get('Content-Range')!r}; delete "
                                f"{part} and rerun")
        elif offset:  # server ignored Range: start over
            offset = 0
        length = resp.headers.get("Content-Length")
        total = int(length) + offset if length is not None else None
        with open(part, "ab" if offset else "wb") as f, progress_bar(
                total=total, desc=f"download {part.name[:-5]}", enabled=show_progress,
                unit="B", unit_scale=True, initial=offset) as bar:
            try:
                while block := resp.read(CHUNK):
                    f.write(block)
                    bar.update(len(block))
                # http.client returns b"" (no error) when the peer closes early
                if total is not None and f.tell() < total:
                    raise http.client.IncompleteRead(b"", total - f.tell())
            except (OSError, http.client.HTTPException) as exc:
                f.flush()
                raise DataError(f"{url}: download interrupted after {f.tell()} bytes "
                                f"({type(exc).__name__}); rerun to resume from {part}") from exc


def _member_target(name: str, root: Path) -> Path:
    """Where ``name`` would land under ``root``; refuse anything that escapes it."""
    posix = name.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if (not name or posix.startswith("/") or re.match(r"^[A-Za-z]:", posix)
            or any(p == ".." for p in parts)):
        raise DataError(f"refusing to extract zip member {name!r}: absolute path or '..' "
                        "would escape the target directory")
    target = (root / posix).resolve()
    if target != root and root not in target.parents:
        raise DataError(f"refusing to extract zip member {name!r}: resolves outside {root}")
    return target


def safe_extract_zip(zip_path: str | Path, target: str | Path,
                     members: Optional[Iterable[str]] = None) -> list[Path]:
    """Extract ``members`` (default: all) of ``zip_path`` into ``target``; return file paths.

    Members with absolute paths, ``..`` components or symlink entries are refused
    (:class:`DataError`) before anything is written."""
    zip_path, root = Path(zip_path), Path(target).resolve()
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{zip_path}: not a readable zip archive ({exc})") from exc
    with zf:
        infos = {i.filename: i for i in zf.infolist()}
        names = list(infos) if members is None else list(members)
        missing = [n for n in names if n not in infos]
        if missing:
            raise DataError(f"{zip_path}: archive has no member {missing[0]!r}")
        plan = []
        for name in names:
            info = infos[name]
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise DataError(f"refusing to extract zip member {name!r}: symbolic link")
            plan.append((info, _member_target(name, root)))
        written = []
        for info, dest in plan:
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".extracting")
            try:
                with zf.open(info) as src, open(tmp, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                tmp.unlink(missing_ok=True)
                raise DataError(f"{zip_path}: member {info.filename!r} is corrupt ({exc})") from exc
            except BaseException:   # Ctrl-C / SIGTERM: leave no half-extracted file behind
                tmp.unlink(missing_ok=True)
                raise
            os.replace(tmp, dest)
            written.append(dest)
    return written
