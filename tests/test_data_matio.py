"""matio: reading real xlsa17/SNU files, exact data/raw round trip, bad-file errors."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.io as sio

from conftest import make_standin
from zerodiffpp.config import SyntheticConfig
from zerodiffpp.data import synthetic
from zerodiffpp.data.matio import read_aux_features, read_raw, read_xlsa17, write_raw
from zerodiffpp.io import DataError, read_json, write_json


def test_awa2_true_shape(awa2_standin):
    folder, feats = awa2_standin
    d = read_xlsa17(folder / "res101.mat", folder / "att_splits.mat", "AWA2")
    assert d.features.shape == (37322, 2048) and d.features.dtype == np.float32
    assert np.array_equal(d.features[[0, 123, 37321]], feats[[0, 123, 37321]])  # transposed right
    assert d.n_classes == 50 and d.class_embeddings.shape == (50, 85)
    assert d.original_att.shape == (50, 85)
    assert (len(d.seen_classes()), len(d.unseen_classes())) == (40, 10)
    assert (d.trainval_loc.size, d.test_seen_loc.size, d.test_unseen_loc.size) == (23527, 5882, 7913)
    assert d.class_names[0] == "antelope" and d.train_loc is not None
    assert np.allclose(np.linalg.norm(d.class_embeddings, axis=1), 1, atol=1e-5)


@pytest.mark.parametrize("ds,splits,n_cls,d_att,seen,sizes", [
    ("CUB", "att_splits.mat", 200, 312, 150, (7057, 1764, 2967)),
    ("CUB", "sent_splits.mat", 200, 1024, 150, (7057, 1764, 2967)),
    ("SUN", "att_splits.mat", 717, 102, 645, (10320, 2580, 1440)),
])
def test_cub_sun_real_splits(shared_data, tmp_path, ds, splits, n_cls, d_att, seen, sizes):
    make_standin(shared_data, ds, tmp_path, dim=4, splits=(splits,))
    d = read_xlsa17(tmp_path / "res101.mat", tmp_path / splits, ds)
    assert d.class_embeddings.shape == (n_cls, d_att)
    assert (len(d.seen_classes()), len(d.unseen_classes())) == (seen, n_cls - seen)
    assert (d.trainval_loc.size, d.test_seen_loc.size, d.test_unseen_loc.size) == sizes
    assert len(d.class_names) == n_cls and d.image_shape is None


def test_snu_real(shared_data):
    folder = shared_data / "snu-b36-ex"
    d = read_xlsa17(folder / "CNN_fea.mat", folder / "att_splits.mat", "snu-b36-ex")
    assert d.features.shape == (8450, 128) and d.class_embeddings.shape == (195, 7)
    assert d.original_att is None and d.class_names[:2] == ["class_001", "class_002"]
    assert (len(d.seen_classes()), len(d.unseen_classes())) == (135, 34)
    assert (d.trainval_loc.size, d.test_seen_loc.size, d.test_unseen_loc.size) == (5400, 1350, 1700)
    assert d.train_loc.size == 4080 and d.val_loc.size == 1320


def _small(**kw):
    return synthetic.make(SyntheticConfig(n_classes=5, n_unseen=2, per_class=10, feature_dim=6,
                                          attr_dim=3, **kw))


def _assert_same(a, b):
    for key in ("features", "labels", "class_embeddings", "trainval_loc", "test_seen_loc",
                "test_unseen_loc", "original_att", "train_loc", "val_loc"):
        x, y = getattr(a, key), getattr(b, key)
        assert (x is None) == (y is None), key
        if x is not None:
            assert x.dtype == y.dtype and np.array_equal(x, y), key
    assert a.class_names == b.class_names and a.image_shape == b.image_shape
    assert a.name == b.name and a.source == b.source


def test_roundtrip_exact_and_deterministic(tmp_path):
    d = _small()
    d.train_loc, d.val_loc = d.trainval_loc[:5], d.trainval_loc[5:9]
    d.extra["image_files"] = [f"img/{i}.jpg" for i in range(len(d.labels))]
    write_raw(d, tmp_path / "a")
    write_raw(d, tmp_path / "b")
    for name in ("res101.mat", "att_splits.mat", "dataset.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    r = read_raw(tmp_path / "a", verify=True)
    _assert_same(d, r)
    assert r.extra["image_files"] == d.extra["image_files"]
    meta = read_json(tmp_path / "a" / "dataset.json")
    assert meta["embedding_norm_default"] == "none" and meta["image_shape"] is None
    assert set(meta["files"]) == {"res101.mat", "att_splits.mat"}


def test_roundtrip_images_stored_uint8(tmp_path):
    d = _small()
    rng = np.random.default_rng(1)
    d.features = rng.integers(0, 256, size=(len(d.labels), 4)).astype(np.float32)
    d.image_shape = (1, 2, 2)
    write_raw(d, tmp_path)
    assert sio.loadmat(tmp_path / "res101.mat")["features"].dtype == np.uint8
    r = read_raw(tmp_path)
    _assert_same(d, r)
    assert r.features.dtype == np.float32


def _write_pair(tmp_path, data, **override):
    write_raw(data, tmp_path)
    res = sio.loadmat(tmp_path / "res101.mat")
    spl = sio.loadmat(tmp_path / "att_splits.mat")
    for k, v in override.items():
        target = res if k in ("features", "labels") else spl
        if v is None:
            del target[k]
        else:
            target[k] = v
    clean = lambda m: {k: v for k, v in m.items() if not k.startswith("__")}  # noqa: E731
    sio.savemat(tmp_path / "res101.mat", clean(res))
    sio.savemat(tmp_path / "att_splits.mat", clean(spl))
    return tmp_path / "res101.mat", tmp_path / "att_splits.mat"


def _bad(tmp_path, match, **override):
    d = _small()
    f, s = _write_pair(tmp_path, d, **override)
    with pytest.raises(DataError, match=match):
        read_xlsa17(f, s)


def test_missing_key(tmp_path):
    _bad(tmp_path, r"att_splits\.mat: missing required key 'att'", att=None)
    _bad(tmp_path, r"res101\.mat: missing required key 'labels'", labels=None)
    _bad(tmp_path, r"missing required key 'test_unseen_loc'", test_unseen_loc=None)


def test_zero_based_labels(tmp_path):
    d = _small()
    _bad(tmp_path, r"'labels'.*0-based", labels=(d.labels - 1).reshape(-1, 1))


def test_out_of_range_loc(tmp_path):
    _bad(tmp_path, r"'test_seen_loc'.*expected 1\.\.50", test_seen_loc=np.array([[1], [51]]))
    _bad(tmp_path, r"'trainval_loc'.*0-based", trainval_loc=np.array([[0], [1]]))


def test_overlapping_seen_unseen(tmp_path):
    d = _small()
    overlap = np.concatenate([d.test_unseen_loc, d.trainval_loc[:1]]).reshape(-1, 1)
    _bad(tmp_path, "overlap", test_unseen_loc=overlap)


def test_nan_features(tmp_path):
    d = _small()
    f = d.features.T.copy()
    f[2, 7] = np.nan
    _bad(tmp_path, r"'features'.*NaN.*row 8", features=f)


def test_wrong_shapes_and_dtypes(tmp_path):
    d = _small()
    _bad(tmp_path, r"'features'.*expected D x 50.*N x D", features=d.features)
    _bad(tmp_path, r"'labels'.*integers", labels=(d.labels + 0.5).reshape(-1, 1))
    cell = np.empty((1, 1), dtype=object)
    cell[0, 0] = "x"
    _bad(tmp_path, r"'att' must be a numeric matrix", att=cell)
    _bad(tmp_path, r"'allclasses_names' has 2 names for 5", allclasses_names=np.array(["a", "b"], dtype=object))
    _bad(tmp_path, r"'original_att'.*5 columns", original_att=np.ones((3, 4)))


def test_truncated_and_garbage_files(tmp_path):
    f, s = _write_pair(tmp_path, _small())
    data = s.read_bytes()
    s.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"att_splits\.mat: cannot read MATLAB file"):
        read_xlsa17(f, s)
    f.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(DataError, match=r"res101\.mat: cannot read"):
        read_xlsa17(f, s)
    with pytest.raises(DataError, match="file not found"):
        read_xlsa17(tmp_path / "nope.mat", s)


def test_read_raw_errors(tmp_path):
    d = _small()
    write_raw(d, tmp_path)
    meta = read_json(tmp_path / "dataset.json")
    meta["files"]["att_splits.mat"] = "0" * 64
    write_json(tmp_path / "dataset.json", meta)
    read_raw(tmp_path)  # hashes are only checked on request
    with pytest.raises(DataError, match="sha256 differs"):
        read_raw(tmp_path, verify=True)
    del meta["image_shape"]
    write_json(tmp_path / "dataset.json", meta)
    with pytest.raises(DataError, match="missing required key 'image_shape'"):
        read_raw(tmp_path)
    (tmp_path / "dataset.json").unlink()
    with pytest.raises(DataError, match="dataset.json: file not found"):
        read_raw(tmp_path)


def test_aux_features(tmp_path):
    sio.savemat(tmp_path / "ce_ce.mat", {"features": np.ones((7, 3), np.float32)})
    assert read_aux_features(tmp_path / "ce_ce.mat", 7).shape == (7, 3)
    with pytest.raises(DataError, match=r"ce_ce\.mat: key 'features'.*expected 8 rows"):
        read_aux_features(tmp_path / "ce_ce.mat", 8)
