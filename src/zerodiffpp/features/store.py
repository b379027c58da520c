"""The ``data/features`` files (docs/CONTRACTS.md): ``ce_ce.mat`` = x, ``con_paco.mat`` = c,
each with key ``features`` of shape N x D (one ROW per sample, res101.mat order, like
ZeroDiff's files, METHOD.md 1.2 items 3-4), plus ``features.json``.  numpy/scipy only.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.io as sio

from ..data.matio import read_aux_features
from ..io import DataError, atomic_path, read_json

X_FILE = "ce_ce.mat"
C_FILE = "con_paco.mat"
INFO_FILE = "features.json"
# savemat stamps the creation time into the 116-byte text header; a fixed header keeps
# reruns byte-identical (DVC hashes outputs).
_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, written by zerodiffpp.features".ljust(116, b" ")


def write_feature_mat(path: str | Path, features: np.ndarray) -> None:
    """Write ``features`` (N x D) as float32 under key ``features``, atomically."""
    features = np.asarray(features)
    if features.ndim != 2:
        raise ValueError(f"features must be N x D, got shape {features.shape}")
    with atomic_path(path, suffix=".mat") as tmp:
        sio.savemat(tmp, {"features": features.astype(np.float32, copy=False)},
                    appendmat=False, format="5", do_compression=False)
        with open(tmp, "r+b") as f:
            f.write(_HEADER)


def read_feature_mat(path: str | Path, n_samples: int) -> np.ndarray:
    """Read and validate one feature file (N x D, finite) as float32."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found (did the features stage run?)")
    return np.ascontiguousarray(read_aux_features(path, n_samples), dtype=np.float32)


def read_features_dir(features_dir: str | Path, n_samples: int,
                      dataset: str | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(x, c, info) from a ``data/features`` directory; checks the row counts against the
    dataset's ``n_samples`` and, when given, the dataset name recorded in features.json."""
    features_dir = Path(features_dir)
    info_path = features_dir / INFO_FILE
    info = read_json(info_path) if info_path.is_file() else {}
    if dataset is not None and info.get("dataset") not in (None, dataset):
        raise DataError(f"{info_path}: features were made for dataset {info['dataset']!r}, "
                        f"but data/raw holds {dataset!r}; rerun the features stage")
    x = read_feature_mat(features_dir / X_FILE, n_samples)
    c = read_feature_mat(features_dir / C_FILE, n_samples)
    return x, c, info
