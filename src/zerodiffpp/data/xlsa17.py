"""AWA2 / CUB / SUN from the official xlsa17 archive (METHOD.md 1.1-1.2).

Either ``data.local_path`` names a folder with ``res101.mat`` + ``att_splits.mat`` (or the
xlsa17 root / a local ``xlsa17.zip``), or the ~879 MB zip is downloaded (resumable) and
only ``xlsa17/data/<DS>/`` is extracted, zip-slip-safely.  ``data.class_embedding: sent``
reads ``att`` from ``sent_splits.mat`` (CUB sentence embeddings, default norm ``none``);
``data.feature_source: zerodiff`` additionally requires ZeroDiff's ``ce_ce.mat`` and
``con_paco.mat`` beside ``res101.mat`` (METHOD.md 1.2 items 3-4), copied into data/raw.
"""
from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

from ..config import DataConfig
from ..io import DataError
from .download import fetch, safe_extract_zip
from .matio import AUX_FILES, ATT_SPLITS, RES101, read_aux_features, read_xlsa17, sha256_file
from .schema import ZSLData

URL = "http://datasets.d2.mpi-inf.mpg.de/xian/xlsa17.zip"
ZIP_NAME = "xlsa17.zip"
# Known sha256 of single files (shared/data/README.md); none is published for the zip itself.
# att_splits.mat digests match the files inside the zip (mismatch there = corrupt download);
# the others come from third-party copies, so a mismatch only warns.
KNOWN_SHA256 = {
    ("AWA2", ATT_SPLITS): "dfe0e4f26ef5debaa77eff823a9316ac110e9b809b70d19c72dd11404f7be357",
    ("CUB", ATT_SPLITS): "4562b1f6306e21dca05071b9b070ce2b15ec659826c8cb87e5ea796b3770df21",
    ("SUN", ATT_SPLITS): "90dcb2a60704ce1117ba1897523ba78dc6b625e606008918c4eade9cd8a5bf43",
    ("CUB", "sent_splits.mat"): "53f542c27e45f3ace55f4465ba2743a1c3400a329c61be7aa116e7ccb77c4087",
    ("AWA2", RES101): "3592d2002a4e2d7ea4ef19069f9c35b8ad86c5e1a43b2d30257eba7018fd6dfa",
}
MANUAL = (f"without network access, download {URL} yourself and set data.local_path to the zip, "
          "to the unpacked xlsa17 folder, or to a folder holding res101.mat + att_splits.mat")


def _find_folder(root: Path, ds: str) -> Path:
    for cand in (root, root / ds, root / "data" / ds, root / "xlsa17" / "data" / ds):
        if (cand / RES101).is_file():
            return cand
    raise DataError(f"data.local_path: no {RES101} in {root} (also looked in {ds}/, data/{ds}/, "
                    f"xlsa17/data/{ds}/); expected the xlsa17 files of {ds}")


def _extract(zip_path: Path, ds: str, target: Path) -> Path:
    prefix = f"xlsa17/data/{ds}/"
    try:
        with zipfile.ZipFile(zip_path) as zf:
            infos = [i for i in zf.infolist() if i.filename.startswith(prefix) and not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{zip_path}: not a readable zip archive ({exc}); delete it and rerun") from exc
    if not infos:
        raise DataError(f"{zip_path}: no members under {prefix}")
    folder = target / prefix
    if not all((target / i.filename).is_file()
               and (target / i.filename).stat().st_size == i.file_size for i in infos):
        safe_extract_zip(zip_path, target, [i.filename for i in infos])
    return folder


def locate(cfg: DataConfig, show_progress: bool = True) -> tuple[Path, bool]:
    """Return (folder with res101.mat, whether it came from the official zip)."""
    ds = cfg.dataset
    cache = Path(cfg.download_dir)
    if cfg.local_path:
        path = Path(cfg.local_path)
        if path.is_file() and path.suffix == ".zip":
            return _extract(path, ds, cache / "xlsa17-extracted"), True
        if not path.is_dir():
            raise DataError(f"data.local_path: {path} is neither a folder nor a .zip file")
        return _find_folder(path, ds), False
    zip_path = fetch(URL, cache / ZIP_NAME, show_progress=show_progress, hint=MANUAL)
    return _extract(zip_path, ds, cache / "xlsa17-extracted"), True


def _check_known(folder: Path, ds: str, strict: bool) -> None:
    for (name, fname), digest in KNOWN_SHA256.items():
        path = folder / fname
        if name != ds or not path.is_file():
            continue
        got = sha256_file(path)
        if got == digest:
            continue
        msg = f"{path}: sha256 {got} differs from the known xlsa17 file ({digest})"
        if strict and fname == ATT_SPLITS:
            raise DataError(msg + "; delete the download cache and rerun")
        warnings.warn(msg + "; using it anyway (local copy)", stacklevel=2)


def load(cfg: DataConfig, show_progress: bool = True) -> ZSLData:
    ds = cfg.dataset
    folder, official = locate(cfg, show_progress)
    _check_known(folder, ds, strict=official)
    sent = cfg.class_embedding == "sent"
    splits = folder / ("sent_splits.mat" if sent else ATT_SPLITS)
    if not splits.is_file():
        extra = (" (sent_splits.mat is not in xlsa17.zip: ZeroDiff's authors distribute it; put "
                 "it beside res101.mat and set data.local_path to that folder)") if sent else ""
        raise DataError(f"{splits}: file not found{extra}")
    data = read_xlsa17(folder / RES101, splits, name=ds)
    origin = f"xlsa17 data/{ds} ({URL})" if official else f"local xlsa17 copy of {ds}"
    data.source = origin + (" with sent_splits.mat" if sent else "")
    data.extra["embedding_norm_default"] = "none" if sent else "l2"

    aux = {f: folder / f for f in AUX_FILES}
    have = all(p.is_file() for p in aux.values())
    if cfg.feature_source == "zerodiff" and not have:
        raise DataError(f"data.feature_source=zerodiff needs {' and '.join(AUX_FILES)} in {folder} "
                        f"(missing: {', '.join(f for f, p in aux.items() if not p.is_file())})")
    if cfg.feature_source == "zerodiff" or (cfg.feature_source == "auto" and have):
        for path in aux.values():
            read_aux_features(path, data.features.shape[0])
        data.extra["aux_files"] = aux
        data.source += " + ZeroDiff ce_ce.mat/con_paco.mat"
    return data
