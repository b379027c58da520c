"""From raw dataset + extracted features to :class:`PreparedData` (the ``prepare`` stage).

Steps (numpy only, so the stage starts fast):

1. Seen-fraction subsampling (METHOD.md 1.2 item 7, [PROPOSAL]): per seen class keep
   ``max(1, round(p * n_c))`` of its trainval samples, drawn without replacement with
   ``numpy.random.default_rng(train.seed)`` (classes in ascending order, one generator);
   the kept positions are sorted.  ``p == 1`` keeps everything and draws nothing.
2. MinMax scaling (METHOD.md 1.2 item 6), per dimension, fitted on the KEPT training
   samples only (not the full trainval set: avoids the leak of METHOD.md 8 item 6), separately
   for x and c; a zero-range dimension gets scale 1.  Test values may leave [0, 1].
3. Class embeddings (METHOD.md 1.2 item 2): ``l2`` = each class row of ``original_att``
   (else ``att``) divided by its L2 norm, as ZeroDiff's ``--class_embedding_norm``;
   ``none`` = ``att`` as stored; ``auto`` = the dataset's default from dataset.json.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data.prepared import PreparedData
from .data.schema import ZSLData
from .io import DataError

EMBEDDING_NORMS = ("l2", "none")


# --------------------------------------------------------------------------- subsampling


def n_kept(n_class: int, fraction: float) -> int:
    """max(1, round(fraction * n_class)), rounding halves up; never more than n_class."""
    return int(min(n_class, max(1, np.floor(fraction * n_class + 0.5))))


def subsample_seen(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted 0-based positions into ``labels`` (the trainval labels) that are kept.

    Stratified: every class present in ``labels`` keeps ``n_kept(n_c, fraction)`` samples.
    """
    labels = np.asarray(labels)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return np.arange(labels.size, dtype=np.int64)
    rng = np.random.default_rng(seed)
    kept = []
    for cls in np.unique(labels):
        positions = np.flatnonzero(labels == cls)
        kept.append(rng.choice(positions, size=n_kept(positions.size, fraction), replace=False))
    return np.sort(np.concatenate(kept)).astype(np.int64)


# --------------------------------------------------------------------------- scaling


@dataclass(frozen=True)
class MinMaxScaler:
    """Per-dimension (x - min) / (max - min), like sklearn's MinMaxScaler (range [0, 1])."""

    minimum: np.ndarray
    scale: np.ndarray          # max - min, with 0 replaced by 1

    @classmethod
    def fit(cls, train: np.ndarray) -> "MinMaxScaler":
        train = np.asarray(train, dtype=np.float64)
        if train.ndim != 2 or train.shape[0] == 0:
            raise ValueError(f"MinMaxScaler.fit needs a non-empty N x D matrix, got {train.shape}")
        lo, hi = train.min(axis=0), train.max(axis=0)
        scale = hi - lo
        scale[scale == 0] = 1.0
        return cls(minimum=lo, scale=scale)

    def transform(self, values: np.ndarray) -> np.ndarray:
        return ((np.asarray(values, dtype=np.float64) - self.minimum) / self.scale).astype(np.float32)


# --------------------------------------------------------------------------- class embeddings


def resolve_embedding_norm(setting: str, data: ZSLData) -> str:
    """``data.embedding_norm`` -> ``l2`` | ``none`` (``auto`` reads the dataset's default)."""
    if setting != "auto":
        return setting
    default = data.extra.get("embedding_norm_default")
    if default not in EMBEDDING_NORMS:
        raise DataError(f"{data.name}: dataset.json key 'embedding_norm_default' is {default!r}, "
                        f"expected one of {', '.join(EMBEDDING_NORMS)} (needed by "
                        "data.embedding_norm=auto)")
    return default


def class_embeddings(data: ZSLData, norm: str) -> np.ndarray:
    """(C, d) float32 class embeddings as the generators see them."""
    if norm == "none":
        return np.ascontiguousarray(data.class_embeddings, dtype=np.float32)
    if norm != "l2":
        raise ValueError(f"unknown embedding norm {norm!r}")
    base = data.class_embeddings
    # ZeroDiff normalises original_att; a differently sized original_att (e.g. next to CUB
    # sentence embeddings) describes another embedding, so fall back to att then.
    if data.original_att is not None and data.original_att.shape == base.shape:
        base = data.original_att
    base = np.asarray(base, dtype=np.float64)
    norms = np.linalg.norm(base, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] == 0)
    if zero.size:
        names = [data.class_names[i] for i in zero[:5]]
        raise DataError(f"{data.name}: class embedding of {', '.join(names)} is all zeros; "
                        "cannot L2-normalise it (use data.embedding_norm=none)")
    return (base / norms).astype(np.float32)


# --------------------------------------------------------------------------- assembly


def _check_features(name: str, feats: np.ndarray, n: int) -> None:
    if feats.ndim != 2 or feats.shape[0] != n:
        raise DataError(f"{name}: shape {feats.shape}, expected {n} rows (one per sample of "
                        "res101.mat); rerun the features stage for this dataset")
    if not np.all(np.isfinite(feats)):
        raise DataError(f"{name}: contains NaN/Inf")


def prepare(data: ZSLData, x: np.ndarray, c: np.ndarray, *, seen_fraction: float, seed: int,
            embedding_norm: str) -> PreparedData:
    """Subsample, scale and assemble the training-ready arrays (steps 1-3 above)."""
    n = data.labels.shape[0]
    _check_features("x (ce_ce.mat 'features')", x, n)
    _check_features("c (con_paco.mat 'features')", c, n)
    trainval = data.idx("trainval")
    trainval_y = data.labels[trainval] - 1
    seen = np.unique(trainval_y)
    unseen = data.unseen_classes()
    kept = subsample_seen(trainval_y, seen_fraction, seed)
    missing = np.setdiff1d(seen, trainval_y[kept])
    if missing.size:
        raise DataError(f"{data.name}: seen class(es) {(missing + 1).tolist()} have no training "
                        f"sample left after train.seen_fraction={seen_fraction}")
    train_rows = trainval[kept]
    x_scaler = MinMaxScaler.fit(x[train_rows])
    c_scaler = MinMaxScaler.fit(c[train_rows])

    def split(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        labels0 = (data.labels[rows] - 1).astype(np.int64)
        return x_scaler.transform(x[rows]), c_scaler.transform(c[rows]), labels0

    train_x, train_c, train_y = split(train_rows)
    ts_x, ts_c, ts_y = split(data.idx("test_seen"))
    tu_x, tu_c, tu_y = split(data.idx("test_unseen"))
    prepared = PreparedData(
        train_x=train_x, train_c=train_c, train_y=train_y,
        test_seen_x=ts_x, test_seen_c=ts_c, test_seen_y=ts_y,
        test_unseen_x=tu_x, test_unseen_c=tu_c, test_unseen_y=tu_y,
        class_emb=class_embeddings(data, resolve_embedding_norm(embedding_norm, data)),
        seen_classes=seen.astype(np.int64), unseen_classes=unseen.astype(np.int64),
        train_subset=(kept + 1).astype(np.int64))
    prepared.check(data.name)
    return prepared


def seen_subset_csv(data: ZSLData, prepared: PreparedData) -> str:
    """``seen_subset.csv``: kept trainval_position (1-based), res101 row (1-based), label (1-based)."""
    rows = data.trainval_loc[prepared.train_subset - 1]
    lines = ["trainval_position,row,label"]
    lines += [f"{p},{r},{lab}" for p, r, lab in
              zip(prepared.train_subset.tolist(), rows.tolist(), data.labels[rows - 1].tolist())]
    return "\n".join(lines) + "\n"
