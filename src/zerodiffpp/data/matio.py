"""Read and write xlsa17-format ``.mat`` files (METHOD.md 1.1) and ``data/raw`` directories.

``read_xlsa17`` turns a ``res101.mat`` + ``*_splits.mat`` pair into a validated
:class:`ZSLData`; every problem (unreadable file, missing key, wrong shape or dtype,
bad indices) raises :class:`DataError` naming the file, the key and the problem.
``write_raw`` / ``read_raw`` store a dataset as a ``data/raw`` directory (see
docs/CONTRACTS.md) and round-trip it exactly.
"""
from __future__ import annotations

import hashlib
import shutil
import zlib
from pathlib import Path
from typing import Any, Optional

import numpy as np
import scipy.io as sio

from ..io import DataError, atomic_path, read_json, write_json
from .schema import ZSLData, as_index

RES101 = "res101.mat"
ATT_SPLITS = "att_splits.mat"
DATASET_JSON = "dataset.json"
AUX_FILES = ("ce_ce.mat", "con_paco.mat")   # ZeroDiff fine-tuned features (METHOD.md 1.2 items 3-4)
REQUIRED_LOCS = ("trainval_loc", "test_seen_loc", "test_unseen_loc")
OPTIONAL_LOCS = ("train_loc", "val_loc")
# Keys that hold the class names in real files: xlsa17 writes allclasses_names; other
# xlsa17-style releases use all_classes.  The first one present is used.
CLASS_NAME_KEYS = ("allclasses_names", "all_classes")
# Fixed header text: savemat stamps the current time, which would make reruns differ byte-wise.
_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, written by zerodiffpp".ljust(116, b" ")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- reading


def load_mat(path: str | Path) -> dict[str, Any]:
    """``scipy.io.loadmat`` with every failure turned into a :class:`DataError`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        content = sio.loadmat(path)
    except NotImplementedError as exc:  # MATLAB v7.3 = HDF5
        raise DataError(f"{path}: MATLAB v7.3 (HDF5) files are not supported; re-save with "
                        f"save(..., '-v7') ({exc})") from exc
    except (ValueError, TypeError, OSError, EOFError, zlib.error, IndexError, KeyError,
            AttributeError, OverflowError, MemoryError) as exc:
        raise DataError(f"{path}: cannot read MATLAB file, truncated or corrupt? "
                        f"({type(exc).__name__}: {exc})") from exc
    return {k: v for k, v in content.items() if not k.startswith("__")}


def _require(mat: dict, key: str, path: Path) -> np.ndarray:
    if key not in mat:
        keys = ", ".join(sorted(mat)) or "none"
        raise DataError(f"{path}: missing required key '{key}' (keys present: {keys})")
    return mat[key]


def _numeric_2d(arr, key: str, path: Path) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise DataError(f"{path}: key '{key}' must be a numeric matrix, got dtype {a.dtype}")
    if a.ndim != 2:
        raise DataError(f"{path}: key '{key}' must be 2-D, got shape {a.shape}")
    return a


def _vector(arr, key: str, path: Path) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype == object:
        raise DataError(f"{path}: key '{key}' must be a numeric vector, got a cell/struct array")
    if a.ndim > 2 or (a.ndim == 2 and min(a.shape) > 1):
        raise DataError(f"{path}: key '{key}' must be an n x 1 vector, got shape {a.shape}")
    return as_index(a, key, str(path))


def _strings(arr, key: str, path: Path) -> list[str]:
    """A MATLAB cell array of strings (n x 1 or 1 x n) as a Python list."""
    out = []
    for item in np.asarray(arr, dtype=object).reshape(-1):
        while isinstance(item, np.ndarray) and item.dtype == object and item.size == 1:
            item = item.reshape(-1)[0]
        if isinstance(item, np.ndarray) and item.dtype.kind == "U":
            out.append("".join(item.reshape(-1).tolist()))
        elif isinstance(item, str):
            out.append(item)
        else:
            raise DataError(f"{path}: key '{key}' must be a cell array of strings, "
                            f"found element of type {type(item).__name__}")
    return out


def read_xlsa17(features_path: str | Path, splits_path: str | Path,
                name: Optional[str] = None) -> ZSLData:
    """Read ``res101.mat``-style features + ``att_splits.mat``-style splits (METHOD.md 1.1).

    ``features`` (D x N) is transposed to N x D float32, ``att`` (d x C) to C x d float32.
    Optional keys: ``original_att`` (any number of rows, one column per class), class names
    under ``allclasses_names`` or ``all_classes`` (else ``class_001``...), ``train_loc`` /
    ``val_loc`` (kept as they are, see docs/data.md), ``image_files``.  Returns a validated
    :class:`ZSLData`.
    """
    fpath, spath = Path(features_path), Path(splits_path)
    fmat, smat = load_mat(fpath), load_mat(spath)

    labels = _vector(_require(fmat, "labels", fpath), "labels", fpath)
    feats = _numeric_2d(_require(fmat, "features", fpath), "features", fpath)
    n = labels.size
    if feats.shape[1] != n:
        hint = " (stored N x D? xlsa17 stores one column per sample)" if feats.shape[0] == n else ""
        raise DataError(f"{fpath}: key 'features' has shape {feats.shape}, expected D x {n} "
                        f"(one column per entry of 'labels'){hint}")
    att = _numeric_2d(_require(smat, "att", spath), "att", spath)
    n_cls = att.shape[1]
    top = int(labels.max()) if labels.size else 0
    if top > n_cls and att.shape[0] >= top:
        raise DataError(f"{spath}: key 'att' has shape {att.shape} but 'labels' in {fpath.name} "
                        f"go up to {top}; xlsa17 stores att as d x C (one column per class): "
                        "transpose it")

    original_att = None
    if "original_att" in smat:
        original_att = _numeric_2d(smat["original_att"], "original_att", spath)
        if original_att.shape[1] != n_cls:
            raise DataError(f"{spath}: key 'original_att' has shape {original_att.shape}, "
                            f"expected {n_cls} columns like 'att' {att.shape}")
        original_att = np.ascontiguousarray(original_att.T, dtype=np.float32)
    name_key = next((k for k in CLASS_NAME_KEYS if k in smat), None)
    if name_key is not None:
        names = _strings(smat[name_key], name_key, spath)
        if len(names) != n_cls:
            raise DataError(f"{spath}: key '{name_key}' has {len(names)} names for "
                            f"{n_cls} columns of 'att'")
    else:
        names = [f"class_{i + 1:03d}" for i in range(n_cls)]
    locs = {k: _vector(_require(smat, k, spath), k, spath) for k in REQUIRED_LOCS}
    for k in OPTIONAL_LOCS:
        locs[k] = _vector(smat[k], k, spath) if k in smat else None
    extra = {}
    if "image_files" in fmat:
        extra["image_files"] = _strings(fmat["image_files"], "image_files", fpath)
        if len(extra["image_files"]) != n:
            raise DataError(f"{fpath}: key 'image_files' has {len(extra['image_files'])} "
                            f"entries for {n} labels")

    extra["key_files"] = {**{k: str(fpath) for k in ("features", "labels", "image_files")},
                          **{k: str(spath) for k in ("att", "original_att", *CLASS_NAME_KEYS,
                                                     *REQUIRED_LOCS, *OPTIONAL_LOCS)}}
    data = ZSLData(
        name=name or spath.parent.name,
        features=np.ascontiguousarray(feats.T, dtype=np.float32),
        labels=labels,
        class_embeddings=np.ascontiguousarray(att.T, dtype=np.float32),
        class_names=names, original_att=original_att,
        source=f"{fpath} + {spath.name}", extra=extra, **{k: v for k, v in locs.items()})
    return data.validate()


def read_aux_features(path: str | Path, n_samples: int) -> np.ndarray:
    """Validate a ZeroDiff ``ce_ce.mat`` / ``con_paco.mat``: ``features`` N x D, row per sample."""
    path = Path(path)
    feats = _numeric_2d(_require(load_mat(path), "features", path), "features", path)
    if feats.shape[0] != n_samples:
        raise DataError(f"{path}: key 'features' has shape {feats.shape}, expected {n_samples} rows "
                        "(N x D, one row per image in res101.mat order)")
    if not np.all(np.isfinite(feats)):
        raise DataError(f"{path}: key 'features' contains NaN/Inf")
    return feats


# --------------------------------------------------------------------------- writing


def _savemat(target: Path, arrays: dict[str, Any], compress: bool = False) -> None:
    with atomic_path(target, suffix=".mat") as tmp:
        sio.savemat(tmp, arrays, appendmat=False, format="5", do_compression=compress,
                    oned_as="column")
        with open(tmp, "r+b") as f:
            f.write(_HEADER)


def _col(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.int32).reshape(-1, 1)


def _cell(strings: list[str]) -> np.ndarray:
    cell = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        cell[i, 0] = s
    return cell


def _is_uint8_images(data: ZSLData) -> bool:
    f = data.features
    return (data.image_shape is not None and f.size > 0 and float(f.min()) >= 0
            and float(f.max()) <= 255 and bool(np.all(f == np.round(f))))


def write_raw(data: ZSLData, out_dir: str | Path,
              embedding_norm_default: Optional[str] = None) -> Path:
    """Write ``data`` as a ``data/raw`` directory (each file atomically, deterministic bytes).

    Image pixels (``image_shape`` set, integer 0..255) are stored as uint8.  Files named in
    ``data.extra['aux_files']`` ({name: path}) are copied beside ``res101.mat``.
    """
    data.validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    norm = embedding_norm_default or data.extra.get("embedding_norm_default", "l2")
    if norm not in ("l2", "none"):
        raise DataError(f"{data.name}: embedding_norm_default must be 'l2' or 'none', got {norm!r}")
    images = _is_uint8_images(data)
    feats = data.features.T.astype(np.uint8 if images else np.float32)
    res = {"features": feats, "labels": _col(data.labels)}
    if "image_files" in data.extra:
        res["image_files"] = _cell(list(data.extra["image_files"]))
    _savemat(out / RES101, res, compress=images)

    splits: dict[str, Any] = {"att": data.class_embeddings.T.astype(np.float32)}
    if data.original_att is not None:
        splits["original_att"] = data.original_att.T.astype(np.float32)
    for k in REQUIRED_LOCS + OPTIONAL_LOCS:
        if getattr(data, k) is not None:
            splits[k] = _col(getattr(data, k))
    splits["allclasses_names"] = _cell(list(data.class_names))
    _savemat(out / ATT_SPLITS, splits)

    for fname, src in sorted(data.extra.get("aux_files", {}).items()):
        if Path(src).resolve() != (out / fname).resolve():
            with atomic_path(out / fname, suffix=".mat") as tmp:
                shutil.copyfile(src, tmp)
    files = {p.name: sha256_file(p) for p in sorted(out.iterdir())
             if p.is_file() and p.name != DATASET_JSON and not p.name.startswith(".")}
    write_json(out / DATASET_JSON, {
        "name": data.name,
        "dataset": data.extra.get("dataset", data.name),
        "image_shape": list(data.image_shape) if data.image_shape is not None else None,
        "embedding_norm_default": norm,
        "source": data.source,
        "files": files,
    })
    return out


def read_raw(raw_dir: str | Path, verify: bool = False) -> ZSLData:
    """Read a ``data/raw`` directory written by :func:`write_raw`; ``verify`` re-checks sha256."""
    raw = Path(raw_dir)
    meta = read_json(raw / DATASET_JSON)
    where = raw / DATASET_JSON
    for key in ("name", "image_shape", "embedding_norm_default", "source", "files"):
        if key not in meta:
            raise DataError(f"{where}: missing required key '{key}'")
    for fname, digest in meta["files"].items():
        if not (raw / fname).is_file():
            raise DataError(f"{raw / fname}: listed in {DATASET_JSON} but missing")
        if verify and sha256_file(raw / fname) != digest:
            raise DataError(f"{raw / fname}: sha256 differs from {DATASET_JSON} (file modified?)")
    data = read_xlsa17(raw / RES101, raw / ATT_SPLITS, name=meta["name"])
    shape = meta["image_shape"]
    if shape is not None:
        shape = tuple(int(s) for s in shape)
        if int(np.prod(shape)) != data.features.shape[1]:
            raise DataError(f"{where}: key 'image_shape' {shape} does not match feature dim "
                            f"{data.features.shape[1]}")
    data.image_shape = shape
    data.source = meta["source"]
    data.extra["embedding_norm_default"] = meta["embedding_norm_default"]
    data.extra["files"] = dict(meta["files"])
    data.extra["dataset"] = meta.get("dataset", meta["name"])   # absent before data.name
    aux = {f: raw / f for f in AUX_FILES if (raw / f).is_file()}
    if aux:
        data.extra["aux_files"] = aux
    return data
