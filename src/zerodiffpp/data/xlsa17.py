"""xlsa17-format datasets (METHOD.md 1.1-1.2): the named GZSL benchmarks and any folder.

Named: AWA2 / CUB / SUN / APY / AWA1 from the official xlsa17 archive (GBU, Xian et al.
2017), FLO from the archive of f-CLSWGAN (Xian et al. 2018, ``cvpr18xian.zip``), which lays
FLO out the same way under ``cvpr18xian/data/FLO/``.  Either ``data.local_path`` names a
folder with ``res101.mat`` + ``att_splits.mat`` (or the unpacked archive root, or a local
copy of the archive), or the archive is downloaded (resumable) and only ``<root>/data/<DS>/``
is extracted, zip-slip-safely.  ``data.dataset: xlsa17`` reads such a folder for any other
dataset (``data.local_path`` required, no layout expectations).

``data.class_embedding: sent`` reads ``att`` from ``sent_splits.mat`` (CUB sentence
embeddings, default norm ``none``); ``data.feature_source: zerodiff`` additionally requires
ZeroDiff's ``ce_ce.mat`` and ``con_paco.mat`` beside ``res101.mat`` (METHOD.md 1.2 items
3-4), copied into data/raw.
"""
from __future__ import annotations

import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..config import DataConfig
from ..io import DataError
from .download import fetch, safe_extract_zip
from .matio import AUX_FILES, ATT_SPLITS, RES101, read_aux_features, read_xlsa17, sha256_file
from .schema import ZSLData

SENT_SPLITS = "sent_splits.mat"


URL = "http://datasets.d2.mpi-inf.mpg.de/xian/xlsa17.zip"           # ~879 MB
FLO_URL = "http://datasets.d2.mpi-inf.mpg.de/xian/cvpr18xian.zip"   # f-CLSWGAN code + FLO data


@dataclass(frozen=True)
class Archive:
    zip_name: str
    root: str            # top folder inside the zip; the datasets are under <root>/data/<DS>/

    @property
    def url(self) -> str:   # looked up at call time, so a test can point it at a local server
        return URL if self.root == "xlsa17" else FLO_URL


XLSA17 = Archive("xlsa17.zip", "xlsa17")
CVPR18 = Archive("cvpr18xian.zip", "cvpr18xian")
ARCHIVE_OF = {"AWA2": XLSA17, "CUB": XLSA17, "SUN": XLSA17, "APY": XLSA17, "AWA1": XLSA17,
              "FLO": CVPR18}


@dataclass(frozen=True)
class Layout:
    """Published size of a benchmark (GBU Table 2 proposed splits; FLO: f-CLSWGAN)."""

    images: int
    classes: int
    att_dim: int          # rows of att in att_splits.mat
    trainval: int
    test_seen: int
    test_unseen: int


# No checksum is published for either archive, so besides the digests below a download is
# verified by its layout: sample, class and split counts and the attribute dimension.
LAYOUT = {
    "AWA2": Layout(37322, 50, 85, 23527, 5882, 7913),
    "CUB": Layout(11788, 200, 312, 7057, 1764, 2967),
    "SUN": Layout(14340, 717, 102, 10320, 2580, 1440),
    "APY": Layout(15339, 32, 64, 5932, 1483, 7924),
    "AWA1": Layout(30475, 50, 85, 19832, 4958, 5685),
    "FLO": Layout(8189, 102, 1024, 5631, 1403, 1155),
}
# Known sha256 of single files (shared/data/README.md).  att_splits.mat digests match the
# files inside the xlsa17 zip (mismatch there = corrupt download); the others come from
# third-party copies, so a mismatch only warns.  None is known for APY/AWA1 att_splits.mat
# or for any FLO file: those are checked by LAYOUT only.
KNOWN_SHA256 = {
    ("AWA2", ATT_SPLITS): "dfe0e4f26ef5debaa77eff823a9316ac110e9b809b70d19c72dd11404f7be357",
    ("CUB", ATT_SPLITS): "4562b1f6306e21dca05071b9b070ce2b15ec659826c8cb87e5ea796b3770df21",
    ("SUN", ATT_SPLITS): "90dcb2a60704ce1117ba1897523ba78dc6b625e606008918c4eade9cd8a5bf43",
    ("CUB", SENT_SPLITS): "53f542c27e45f3ace55f4465ba2743a1c3400a329c61be7aa116e7ccb77c4087",
    ("AWA2", RES101): "3592d2002a4e2d7ea4ef19069f9c35b8ad86c5e1a43b2d30257eba7018fd6dfa",
    ("APY", RES101): "b4bae3b9964011d9d1848fb8db932daa1d8ddd16759f70a64ca2af5b63d82eca",
}


def _manual(url: str, root: str) -> str:
    return (f"without network access, download {url} yourself and set data.local_path "
            f"to the zip, to the unpacked {root} folder, or to a folder holding "
            f"{RES101} + {ATT_SPLITS}")


# What to do by hand, naming the official addresses (fixed at import).
MANUAL = _manual(URL, XLSA17.root)
MANUAL_OF = {XLSA17.root: MANUAL, CVPR18.root: _manual(FLO_URL, CVPR18.root)}


def _find_folder(root: Path, ds: str) -> Path:
    subdirs = (ds, f"data/{ds}", f"xlsa17/data/{ds}", f"cvpr18xian/data/{ds}")
    for cand in (root, *(root / s for s in subdirs)):
        if (cand / RES101).is_file():
            return cand
    raise DataError(f"data.local_path: no {RES101} in {root} (also looked in "
                    f"{', '.join(s + '/' for s in subdirs)}); expected the xlsa17 files of {ds}")


def _extract(zip_path: Path, archive: Archive, ds: str, target: Path) -> Path:
    prefix = f"{archive.root}/data/{ds}/"
    try:
        with zipfile.ZipFile(zip_path) as zf:
            infos = [i for i in zf.infolist() if i.filename.startswith(prefix) and not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{zip_path}: not a readable zip archive ({exc}); delete it and rerun") from exc
    if not infos:
        raise DataError(f"{zip_path}: no members under {prefix} (is this {archive.zip_name}? "
                        f"{ds} comes from {archive.url})")
    folder = target / prefix
    if not all((target / i.filename).is_file()
               and (target / i.filename).stat().st_size == i.file_size for i in infos):
        safe_extract_zip(zip_path, target, [i.filename for i in infos])
    return folder


def locate(cfg: DataConfig, show_progress: bool = True) -> tuple[Path, bool]:
    """Return (folder with res101.mat, whether it came from the official archive)."""
    ds = cfg.dataset
    archive = ARCHIVE_OF[ds]
    cache = Path(cfg.download_dir)
    extracted = cache / f"{archive.root}-extracted"
    if cfg.local_path:
        path = Path(cfg.local_path)
        if path.is_file() and path.suffix == ".zip":
            return _extract(path, archive, ds, extracted), True
        if not path.is_dir():
            raise DataError(f"data.local_path: {path} is neither a folder nor a .zip file")
        return _find_folder(path, ds), False
    zip_path = fetch(archive.url, cache / archive.zip_name, show_progress=show_progress,
                     hint=MANUAL_OF[archive.root])
    return _extract(zip_path, archive, ds, extracted), True


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
        why = "the known digest is of a third-party copy" if strict else "local copy"
        warnings.warn(f"{msg}; using it anyway ({why})", stacklevel=2)


def check_layout(data: ZSLData, ds: str, splits: Path, strict: bool, sent: bool) -> None:
    """Compare ``data`` with the published size of ``ds``: an error for the official archive
    (a mismatch means a wrong or damaged download), a warning for local copies (which may
    carry other splits on purpose, e.g. ZeroDiff's 10 %/30 % trainval files)."""
    want = LAYOUT[ds]
    got = {"images": data.labels.size, "classes": data.n_classes,
           "trainval": data.trainval_loc.size, "test_seen": data.test_seen_loc.size,
           "test_unseen": data.test_unseen_loc.size}
    if not sent:
        got["att_dim"] = data.class_embeddings.shape[1]
    diff = [f"{k} {v} (published {getattr(want, k)})" for k, v in got.items()
            if v != getattr(want, k)]
    if not diff:
        return
    msg = f"{splits.parent}: does not match the published {ds} layout: {', '.join(diff)}"
    if strict:
        raise DataError(msg + "; delete the download cache and rerun")
    warnings.warn(msg + "; using it anyway (local copy)", stacklevel=2)


def read_folder(folder: Path, cfg: DataConfig, name: str) -> tuple[ZSLData, Path]:
    """``res101.mat`` + ``att_splits.mat`` (or ``sent_splits.mat``) of ``folder``, with
    ZeroDiff's feature files when ``data.feature_source`` asks for them."""
    sent = cfg.class_embedding == "sent"
    splits = folder / (SENT_SPLITS if sent else ATT_SPLITS)
    if not (folder / RES101).is_file():
        others = sorted(p.name for p in folder.glob("*.mat"))
        hint = (f" (.mat files there: {', '.join(others)}; the xlsa17 layout names the "
                f"features file {RES101}, rename or link it)") if others else ""
        raise DataError(f"{folder / RES101}: file not found{hint}")
    if not splits.is_file():
        extra = (f" ({SENT_SPLITS} is not in xlsa17.zip: ZeroDiff's authors distribute it; put "
                 f"it beside {RES101} and set data.local_path to that folder)") if sent else ""
        raise DataError(f"{splits}: file not found{extra}")
    data = read_xlsa17(folder / RES101, splits, name=name)
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
    return data, splits


def _suffix(data: ZSLData, sent: bool) -> str:
    return ((f" with {SENT_SPLITS}" if sent else "")
            + (" + ZeroDiff ce_ce.mat/con_paco.mat" if "aux_files" in data.extra else ""))


def load(cfg: DataConfig, show_progress: bool = True, name: Optional[str] = None) -> ZSLData:
    """A named benchmark (``data.dataset`` in ARCHIVE_OF)."""
    ds = cfg.dataset
    folder, official = locate(cfg, show_progress)
    _check_known(folder, ds, strict=official)
    sent = cfg.class_embedding == "sent"
    data, splits = read_folder(folder, cfg, name or ds)
    check_layout(data, ds, splits, strict=official, sent=sent)
    archive = ARCHIVE_OF[ds]
    origin = (f"{archive.root} data/{ds} ({archive.url})" if official
              else f"local {archive.root} copy of {ds}")
    data.source = origin + _suffix(data, sent)
    return data


def default_folder_name(cfg: DataConfig) -> str:
    """``data.name`` when unset for ``data.dataset: xlsa17``: the folder's own name."""
    return Path(cfg.local_path).resolve().name


def load_any(cfg: DataConfig, name: Optional[str] = None) -> ZSLData:
    """``data.dataset: xlsa17``: the folder at ``data.local_path``, no layout expectations."""
    folder = Path(cfg.local_path)
    if not folder.is_dir():
        raise DataError(f"data.local_path: {folder} is not a folder (data.dataset=xlsa17 reads "
                        f"{RES101} + {ATT_SPLITS} from a folder)")
    data, _ = read_folder(folder, cfg, name or default_folder_name(cfg))
    data.source = f"xlsa17-format folder {folder.resolve().name}" + _suffix(
        data, cfg.class_embedding == "sent")
    return data
