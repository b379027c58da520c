"""prepare-stage logic: seen-fraction subsampling, MinMax scaling, class-embedding norm."""
from __future__ import annotations

import numpy as np
import pytest

from zerodiffpp.data.schema import ZSLData
from zerodiffpp.io import DataError
from zerodiffpp.preprocess import (MinMaxScaler, class_embeddings, n_kept, prepare,
                                   resolve_embedding_norm, seen_subset_csv, subsample_seen)


def make_data(per_class=(30, 12, 3), n_unseen=2, n_test_seen=4, dim=6, seed=0,
              original_att=True) -> ZSLData:
    """Feature dataset: seen classes 1..S with ``per_class`` trainval samples (+ test_seen),
    unseen classes S+1..S+U with 5 samples each; rows shuffled so locs are not contiguous."""
    rng = np.random.default_rng(seed)
    s = len(per_class)
    labels, split = [], []
    for c, n in enumerate(per_class, start=1):
        labels += [c] * (n + n_test_seen)
        split += ["tv"] * n + ["ts"] * n_test_seen
    for c in range(s + 1, s + n_unseen + 1):
        labels += [c] * 5
        split += ["tu"] * 5
    order = rng.permutation(len(labels))
    labels = np.asarray(labels)[order]
    split = np.asarray(split)[order]
    n_cls = s + n_unseen
    att = rng.uniform(0.1, 1.0, size=(n_cls, 4)).astype(np.float32)
    return ZSLData(
        name="toy", features=rng.normal(size=(len(labels), dim)).astype(np.float32),
        labels=labels.astype(np.int64), class_embeddings=att,
        trainval_loc=np.flatnonzero(split == "tv") + 1,
        test_seen_loc=np.flatnonzero(split == "ts") + 1,
        test_unseen_loc=np.flatnonzero(split == "tu") + 1,
        class_names=[f"c{i}" for i in range(n_cls)],
        original_att=(att * 100 + 5).astype(np.float32) if original_att else None,
        extra={"embedding_norm_default": "l2"}).validate()


# --------------------------------------------------------------------------- subsampling


def test_n_kept_rounds_half_up_and_keeps_at_least_one():
    assert n_kept(10, 0.3) == 3
    assert n_kept(16, 0.1) == 2
    assert n_kept(5, 0.5) == 3          # 2.5 -> 3
    assert n_kept(3, 0.1) == 1          # 0.3 -> at least one
    assert n_kept(7, 1.0) == 7


def test_subsample_is_stratified_sorted_and_deterministic():
    labels = np.repeat([4, 1, 9], [30, 12, 3])
    np.random.default_rng(1).shuffle(labels)
    kept = subsample_seen(labels, 0.3, seed=5)
    assert np.array_equal(kept, np.sort(kept)) and np.unique(kept).size == kept.size
    counts = {c: int((labels[kept] == c).sum()) for c in (4, 1, 9)}
    assert counts == {4: 9, 1: 4, 9: 1}
    assert np.array_equal(kept, subsample_seen(labels, 0.3, seed=5))
    assert not np.array_equal(kept, subsample_seen(labels, 0.3, seed=6))


def test_subsample_tiny_fraction_keeps_one_per_class():
    labels = np.repeat(np.arange(5), [1, 2, 3, 4, 50])
    kept = subsample_seen(labels, 0.01, seed=0)
    assert np.array_equal(np.bincount(labels[kept]), [1, 1, 1, 1, 1])


def test_subsample_full_fraction_is_identity():
    labels = np.array([2, 1, 2, 3, 1])
    assert np.array_equal(subsample_seen(labels, 1.0, seed=123), np.arange(5))


def test_subsample_rejects_bad_fraction():
    with pytest.raises(ValueError):
        subsample_seen(np.array([1, 2]), 0.0, seed=0)


# --------------------------------------------------------------------------- scaling


def test_minmax_scaler_guards_zero_range():
    train = np.array([[0.0, 5.0], [2.0, 5.0]])
    scaler = MinMaxScaler.fit(train)
    out = scaler.transform(np.array([[1.0, 5.0], [4.0, 6.0]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.5, 0.0], [2.0, 1.0]])


def test_prepare_fits_minmax_on_kept_subset_only():
    data = make_data()
    x = data.features.copy()
    c = data.features[:, :3] * 10.0
    prep = prepare(data, x, c, seen_fraction=0.3, seed=0, embedding_norm="none")
    kept_rows = data.idx("trainval")[prep.train_subset - 1]
    assert len(prep.train_y) == 9 + 4 + 1
    np.testing.assert_array_equal(prep.train_y, data.labels[kept_rows] - 1)
    # scaler is fitted on the kept rows: exactly [0, 1] there ...
    np.testing.assert_allclose(prep.train_x.min(0), 0.0, atol=1e-6)
    np.testing.assert_allclose(prep.train_x.max(0), 1.0, atol=1e-6)
    np.testing.assert_allclose(prep.train_c.max(0), 1.0, atol=1e-6)
    lo, hi = x[kept_rows].min(0), x[kept_rows].max(0)
    ts = data.idx("test_seen")
    np.testing.assert_allclose(prep.test_seen_x, (x[ts] - lo) / (hi - lo), rtol=1e-5, atol=1e-5)
    # ... and the full trainval set falls outside [0, 1] (discarded samples do not leak in)
    full = (x[data.idx("trainval")] - lo) / (hi - lo)
    assert full.min() < 0 or full.max() > 1
    # test values are not clipped
    assert prep.test_unseen_x.min() < 0 or prep.test_unseen_x.max() > 1
    assert prep.seen_classes.tolist() == [0, 1, 2] and prep.unseen_classes.tolist() == [3, 4]


def test_prepare_full_fraction_keeps_trainval_order():
    data = make_data()
    prep = prepare(data, data.features, data.features, seen_fraction=1.0, seed=0,
                   embedding_norm="l2")
    assert np.array_equal(prep.train_subset, np.arange(1, data.trainval_loc.size + 1))
    np.testing.assert_array_equal(prep.train_y, data.labels[data.idx("trainval")] - 1)


def test_prepare_rejects_mismatched_rows_and_nan():
    data = make_data()
    with pytest.raises(DataError, match="rows"):
        prepare(data, data.features[:-1], data.features, seen_fraction=1.0, seed=0,
                embedding_norm="none")
    bad = data.features.copy()
    bad[0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        prepare(data, data.features, bad, seen_fraction=1.0, seed=0, embedding_norm="none")


def test_seen_subset_csv_lists_kept_samples():
    data = make_data()
    prep = prepare(data, data.features, data.features, seen_fraction=0.5, seed=3,
                   embedding_norm="none")
    lines = seen_subset_csv(data, prep).strip().splitlines()
    assert lines[0] == "trainval_position,row,label"
    assert len(lines) == 1 + len(prep.train_y)
    pos, row, label = map(int, lines[1].split(","))
    assert row == data.trainval_loc[pos - 1] and label == data.labels[row - 1]


# --------------------------------------------------------------------------- embeddings


def test_l2_norm_uses_original_att_rows():
    data = make_data()
    emb = class_embeddings(data, "l2")
    expected = data.original_att / np.linalg.norm(data.original_att, axis=1, keepdims=True)
    np.testing.assert_allclose(emb, expected, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-6)


def test_l2_norm_falls_back_to_att_and_none_keeps_att():
    data = make_data(original_att=False)
    emb = class_embeddings(data, "l2")
    np.testing.assert_allclose(emb, data.class_embeddings / np.linalg.norm(
        data.class_embeddings, axis=1, keepdims=True), rtol=1e-6)
    np.testing.assert_array_equal(class_embeddings(data, "none"), data.class_embeddings)


def test_auto_norm_reads_dataset_default():
    data = make_data()
    assert resolve_embedding_norm("auto", data) == "l2"
    data.extra["embedding_norm_default"] = "none"
    assert resolve_embedding_norm("auto", data) == "none"
    assert resolve_embedding_norm("l2", data) == "l2"
    del data.extra["embedding_norm_default"]
    with pytest.raises(DataError, match="embedding_norm_default"):
        resolve_embedding_norm("auto", data)


def test_l2_norm_rejects_zero_rows():
    data = make_data(original_att=False)
    data.class_embeddings[1] = 0.0
    with pytest.raises(DataError, match="all zeros"):
        class_embeddings(data, "l2")
