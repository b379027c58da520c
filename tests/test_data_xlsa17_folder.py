"""Any xlsa17-format dataset (issue 11 item 4): ``data.dataset: xlsa17`` reads a folder under
its own ``data.name``; APY / AWA1 / FLO resolve by name to their archive or a local copy
(tested without network: a local HTTP server, local zips and folders built here); real-file
variations (optional keys, other key names, 0-based indices) are handled or refused with a
message naming the file and the key.  Folders are built in tmp_path from ../shared/data."""
from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import yaml

from conftest import make_standin
from pipeline_utils import REPO, deep_update
from zerodiffpp.config import ConfigError, DataConfig
from zerodiffpp.data import xlsa17
from zerodiffpp.data.matio import read_raw, write_raw
from zerodiffpp.data.sources import build_dataset
from zerodiffpp.io import DataError, read_json
from zerodiffpp.stages import download, features, prepare


def snu_as_xlsa17(shared: Path, folder: Path, **edit) -> Path:
    """The real SNU-B36-EX files laid out as an xlsa17 folder (CNN_fea.mat -> res101.mat);
    ``edit``: att_splits.mat keys to replace (None = delete)."""
    folder.mkdir(parents=True)
    shutil.copyfile(shared / "snu-b36-ex" / "CNN_fea.mat", folder / "res101.mat")
    if not edit:
        shutil.copyfile(shared / "snu-b36-ex" / "att_splits.mat", folder / "att_splits.mat")
        return folder
    mat = {k: v for k, v in sio.loadmat(shared / "snu-b36-ex" / "att_splits.mat").items()
           if not k.startswith("__")}
    for key, value in edit.items():
        if value is None:
            mat.pop(key)
        else:
            mat[key] = value
    sio.savemat(folder / "att_splits.mat", mat)
    return folder


def _stage_params(tmp_path: Path, **data) -> Path:
    """params.yaml with ``data`` and small download/features/prepare settings."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    deep_update(params, {"runtime": {"threads": 1, "progress": False},
                         "features": {"feature_dim": 32, "ce_epochs": 1, "sc_epochs": 1,
                                      "batch_size": 256, "projection_dim": 16},
                         "data": data}, only_existing=False)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


# ----------------------------------------------------------------------------- any folder
def test_snu_folder_runs_download_features_prepare_under_its_name(shared_data, tmp_path, capsys):
    folder = snu_as_xlsa17(shared_data, tmp_path / "in" / "snu-floor-noise")
    params = _stage_params(tmp_path, dataset="xlsa17", local_path=str(folder),
                           name="SNU floor noise (xlsa17 folder)")
    raw, feats, prep = tmp_path / "raw", tmp_path / "features", tmp_path / "prepared"
    assert download.main(["--params", str(params), "--out", str(raw)]) == 0
    assert features.main(["--params", str(params), "--raw", str(raw), "--out", str(feats)]) == 0
    assert prepare.main(["--params", str(params), "--raw", str(raw), "--features", str(feats),
                         "--out", str(prep)]) == 0
    out = capsys.readouterr().out
    for stage in ("download", "features", "prepare"):
        assert f"{stage}: SNU floor noise (xlsa17 folder): " in out, out

    meta = read_json(raw / "dataset.json")
    assert meta["name"] == "SNU floor noise (xlsa17 folder)" and meta["dataset"] == "xlsa17"
    assert meta["source"] == "xlsa17-format folder snu-floor-noise"      # no absolute path
    assert meta["embedding_norm_default"] == "l2"                         # xlsa17 convention
    assert read_json(feats / "features.json")["dataset"] == meta["name"]
    # the real optional validation split survives into data/raw (ZSLData.train_loc / val_loc)
    src = sio.loadmat(folder / "att_splits.mat")
    stored = sio.loadmat(raw / "att_splits.mat")
    back = read_raw(raw)
    for key in ("train_loc", "val_loc", "trainval_loc", "test_seen_loc", "test_unseen_loc"):
        assert np.array_equal(stored[key].ravel(), src[key].ravel()), key
        assert np.array_equal(getattr(back, key), src[key].ravel().astype(np.int64)), key
    assert back.original_att is None and "original_att" not in stored
    assert back.class_names[:2] == ["class_001", "class_002"]
    prepared = np.load(prep / "prepared.npz")
    assert prepared["class_emb"].shape == (195, 7)
    assert len(np.unique(prepared["unseen_classes"])) == 34


def test_default_name_is_the_folder_name_and_the_report_reads_it(shared_data, tmp_path,
                                                                 monkeypatch):
    folder = snu_as_xlsa17(shared_data, tmp_path / "my_benchmark")
    data = build_dataset(DataConfig(dataset="xlsa17", local_path=str(folder)))
    assert data.name == "my_benchmark"
    write_raw(data, tmp_path / "data" / "raw")
    # the README table header takes the recorded name (zerodiffpp.report)
    from zerodiffpp import report

    metrics = tmp_path / "metrics"
    metrics.mkdir()
    acc = {"zsl": {"t1": 50.0}, "gzsl": {"u": 40.0, "s": 60.0, "h": 48.0}}
    (metrics / "zerodiff.json").write_text(json.dumps({"zerodiff": acc}))
    readme = tmp_path / "README.md"
    readme.write_text(f"{report.START}\n{report.END}\n")
    monkeypatch.chdir(tmp_path)
    assert report.main(["--readme", str(readme), "--metrics", str(metrics)]) == 0
    assert "Dataset `my_benchmark`," in readme.read_text()
    # ... and so do the figures' titles (stages.figures.dataset_info)
    from zerodiffpp.stages.figures import dataset_info

    name, class_names = dataset_info(tmp_path / "data" / "raw")
    assert name == "my_benchmark" and class_names[0] == "class_001"
    # without data/raw the report falls back to params.yaml's data.name
    shutil.rmtree(tmp_path / "data")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"data": {"dataset": "xlsa17", "local_path": str(folder), "name": "from params"}}))
    assert report.main(["--readme", str(readme), "--metrics", str(metrics)]) == 0
    assert "Dataset `from params`," in readme.read_text()


def test_folder_name_unusable_as_a_name_asks_for_data_name(shared_data, tmp_path):
    folder = snu_as_xlsa17(shared_data, tmp_path / "bad`name")
    with pytest.raises(ConfigError, match=r"data.name \(unset: the folder name of "
                                          r"data.local_path\)='bad`name': must not contain"):
        build_dataset(DataConfig(dataset="xlsa17", local_path=str(folder)))
    assert build_dataset(DataConfig(dataset="xlsa17", local_path=str(folder),
                                    name="ok")).name == "ok"


def test_features_file_must_be_res101(shared_data, tmp_path):
    folder = tmp_path / "snu"
    shutil.copytree(shared_data / "snu-b36-ex", folder)
    with pytest.raises(DataError, match=r"res101\.mat: file not found \(\.mat files there: "
                                        r"CNN_fea\.mat, att_splits\.mat; .*rename or link it\)"):
        build_dataset(DataConfig(dataset="xlsa17", local_path=str(folder)))
    with pytest.raises(DataError, match="is not a folder"):
        build_dataset(DataConfig(dataset="xlsa17", local_path=str(folder / "CNN_fea.mat")))


# ----------------------------------------------------------------------------- real-file variations
def test_class_names_under_all_classes(shared_data, tmp_path):
    """AWA2's real names stored under the other key name real releases use."""
    folder = tmp_path / "awa2-renamed"
    make_standin(shared_data, "AWA2", folder, dim=2, splits=())
    mat = {k: v for k, v in sio.loadmat(shared_data / "xlsa17/AWA2/att_splits.mat").items()
           if not k.startswith("__")}
    mat["all_classes"] = mat.pop("allclasses_names")
    sio.savemat(folder / "att_splits.mat", mat)
    d = build_dataset(DataConfig(dataset="xlsa17", local_path=str(folder)))
    assert d.class_names[:2] == ["antelope", "grizzly+bear"] and len(d.class_names) == 50
    assert d.original_att.shape == (50, 85)
    mat["all_classes"] = mat["all_classes"][:49]
    sio.savemat(folder / "att_splits.mat", mat)
    with pytest.raises(DataError, match=r"att_splits\.mat: key 'all_classes' has 49 names for "
                                        r"50 columns of 'att'"):
        build_dataset(DataConfig(dataset="xlsa17", local_path=str(folder)))


def test_no_train_val_split_and_no_original_att(shared_data, tmp_path):
    """CUB's real att_splits.mat has no train_loc/val_loc: they stay absent in data/raw."""
    folder = tmp_path / "cub"
    make_standin(shared_data, "CUB", folder, dim=2)
    d = build_dataset(DataConfig(dataset="xlsa17", local_path=str(folder), name="CUB copy"))
    assert d.train_loc is None and d.val_loc is None
    write_raw(d, tmp_path / "raw")
    stored = sio.loadmat(tmp_path / "raw" / "att_splits.mat")
    assert "train_loc" not in stored and "val_loc" not in stored
    assert read_raw(tmp_path / "raw").train_loc is None


@pytest.mark.parametrize("key, change, message", [
    ("trainval_loc", lambda v: v - v.min(), r"key 'trainval_loc' has indices in \[0, .*0-based"),
    ("val_loc", lambda v: v - v.min(), r"key 'val_loc' has indices in \[0, .*0-based"),
    ("test_seen_loc", lambda v: v + 8450, r"key 'test_seen_loc' has indices in .*expected 1\.\.8450"),
    ("test_unseen_loc", None, r"missing required key 'test_unseen_loc'"),
    ("att", lambda v: v.T, r"key 'att' has shape \(195, 7\).*transpose it"),
    ("train_loc", lambda v: v.astype(np.float64) + 0.5, r"key 'train_loc' must hold integers"),
])
def test_bad_split_files_name_file_and_key(shared_data, tmp_path, key, change, message):
    src = sio.loadmat(shared_data / "snu-b36-ex" / "att_splits.mat")
    folder = snu_as_xlsa17(shared_data, tmp_path / "snu",
                           **{key: None if change is None else change(src[key].astype(np.int64))})
    with pytest.raises(DataError) as err:
        build_dataset(DataConfig(dataset="xlsa17", local_path=str(folder)))
    assert str(err.value).startswith(str(folder / "att_splits.mat") + ": ")
    assert __import__("re").search(message, str(err.value)), str(err.value)


def test_zero_based_labels_name_res101(shared_data, tmp_path):
    folder = snu_as_xlsa17(shared_data, tmp_path / "snu")
    mat = sio.loadmat(folder / "res101.mat")
    sio.savemat(folder / "res101.mat", {"features": mat["features"],
                                         "labels": mat["labels"].astype(np.int64) - 1})
    with pytest.raises(DataError, match=r"res101\.mat: key 'labels' has values in \[0, .*"
                                        r"labels look 0-based"):
        build_dataset(DataConfig(dataset="xlsa17", local_path=str(folder)))


# ----------------------------------------------------------------------------- APY / AWA1 / FLO by name
def fake_benchmark(ds: str, folder: Path, seed: int = 0, layout=None,
                   with_val: bool = True) -> None:
    """``res101.mat`` + ``att_splits.mat`` with the published layout of ``ds`` (sizes, class
    and attribute counts; seen classes first) and random 2-d features: the real files are
    hundreds of MB and not in ../shared/data."""
    lay = layout or xlsa17.LAYOUT[ds]
    rng = np.random.default_rng(seed)
    n_unseen = {"APY": 12, "AWA1": 10, "FLO": 20}[ds]
    n_seen = lay.classes - n_unseen
    n_seen_img = lay.trainval + lay.test_seen
    labels = np.concatenate([np.arange(n_seen_img) % n_seen + 1,
                             np.arange(lay.test_unseen) % n_unseen + n_seen + 1])
    seen_idx = rng.permutation(n_seen_img) + 1
    locs = {"trainval_loc": np.sort(seen_idx[:lay.trainval]),
            "test_seen_loc": np.sort(seen_idx[lay.trainval:]),
            "test_unseen_loc": np.arange(n_seen_img, labels.size) + 1}
    if with_val:   # a class-disjoint split of the seen classes, as in the GBU files
        val = np.isin(labels, np.arange(1, n_seen // 4 + 1))
        tv = np.zeros(labels.size, bool)
        tv[locs["trainval_loc"] - 1] = True
        locs["train_loc"] = np.flatnonzero(tv & ~val) + 1
        locs["val_loc"] = np.flatnonzero(tv & val) + 1
    folder.mkdir(parents=True, exist_ok=True)
    res = {"features": rng.random((2, labels.size), dtype=np.float32),
           "labels": labels.reshape(-1, 1)}
    if ds == "FLO":       # the real FLO res101.mat also lists its images
        res["image_files"] = np.empty((labels.size, 1), dtype=object)
        for i in range(labels.size):
            res["image_files"][i, 0] = f"jpg/image_{i + 1:05d}.jpg"
    sio.savemat(folder / "res101.mat", res)
    sio.savemat(folder / "att_splits.mat", {
        "att": rng.random((lay.att_dim, lay.classes)),
        **{k: v.reshape(-1, 1) for k, v in locs.items()}})


def zip_of(folder: Path, prefix: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(folder.iterdir()):
            zf.writestr(prefix + f.name, f.read_bytes())
        zf.writestr(prefix.split("/")[0] + "/README", b"not extracted")
    return buf.getvalue()


@pytest.mark.filterwarnings(r"ignore:.*res101\.mat. sha256 .* differs from the known")
@pytest.mark.parametrize("ds, archive", [("APY", "xlsa17"), ("AWA1", "xlsa17"),
                                         ("FLO", "cvpr18xian")])
def test_named_benchmark_download_local_zip_and_folder(ds, archive, tmp_path, http_files,
                                                       monkeypatch):
    stage = tmp_path / "stage"
    fake_benchmark(ds, stage)
    blob = zip_of(stage, f"{archive}/data/{ds}/")
    http_files.files[f"/{archive}.zip"] = blob
    monkeypatch.setattr(xlsa17, "URL" if archive == "xlsa17" else "FLO_URL",
                        http_files.url(f"/{archive}.zip"))
    lay = xlsa17.LAYOUT[ds]
    # 1. by name: downloaded into the cache, only <archive>/data/<ds>/ extracted
    cache = tmp_path / "cache"
    d = build_dataset(DataConfig(dataset=ds, download_dir=str(cache)))
    assert http_files.requests == [(f"/{archive}.zip", None)]
    assert d.name == ds and d.extra["dataset"] == ds
    assert (d.labels.size, d.n_classes, d.class_embeddings.shape[1]) == (lay.images, lay.classes,
                                                                         lay.att_dim)
    assert d.source.startswith(f"{archive} data/{ds} (http://127.0.0.1")
    assert d.train_loc is not None and d.val_loc is not None
    root = cache / f"{archive}-extracted" / archive
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == \
        [f"data/{ds}/att_splits.mat", f"data/{ds}/res101.mat"]
    # 2. a local copy of the archive, under another data.name
    (tmp_path / f"{archive}.zip").write_bytes(blob)
    d2 = build_dataset(DataConfig(dataset=ds, local_path=str(tmp_path / f"{archive}.zip"),
                                  download_dir=str(tmp_path / "c2"), name=f"my {ds}"))
    assert d2.name == f"my {ds}" and np.array_equal(d2.features, d.features)
    # 3. the unpacked archive root as a folder
    d3 = build_dataset(DataConfig(dataset=ds, local_path=str(cache / f"{archive}-extracted")))
    assert d3.source == f"local {archive} copy of {ds}"
    assert np.array_equal(d3.trainval_loc, d.trainval_loc)
    write_raw(d3, tmp_path / "raw")
    meta = read_json(tmp_path / "raw" / "dataset.json")
    assert (meta["name"], meta["dataset"]) == (ds, ds)
    back = read_raw(tmp_path / "raw")
    assert np.array_equal(back.val_loc, d.val_loc)
    if ds == "FLO":
        assert back.extra["image_files"][-1] == "jpg/image_08189.jpg"


def test_flo_offline_message_names_its_archive(tmp_path, monkeypatch):
    monkeypatch.setattr(xlsa17, "FLO_URL", "http://127.0.0.1:9/cvpr18xian.zip")
    with pytest.raises(DataError) as err:
        build_dataset(DataConfig(dataset="FLO", download_dir=str(tmp_path)))
    assert "cannot download" in str(err.value)
    assert str(err.value).endswith(xlsa17.MANUAL_OF["cvpr18xian"])
    assert "download http://datasets.d2.mpi-inf.mpg.de/xian/cvpr18xian.zip yourself" in \
        xlsa17.MANUAL_OF["cvpr18xian"]
    with pytest.raises(DataError, match=r"no res101\.mat in .*cvpr18xian/data/FLO/"):
        build_dataset(DataConfig(dataset="FLO", local_path=str(tmp_path)))


def test_archive_without_the_dataset_is_refused(tmp_path):
    stage = tmp_path / "stage"
    fake_benchmark("APY", stage)
    (tmp_path / "cvpr18xian.zip").write_bytes(zip_of(stage, "xlsa17/data/APY/"))
    with pytest.raises(DataError, match=r"no members under cvpr18xian/data/FLO/ \(is this "
                                        r"cvpr18xian\.zip\?"):
        build_dataset(DataConfig(dataset="FLO", local_path=str(tmp_path / "cvpr18xian.zip"),
                                 download_dir=str(tmp_path / "c")))


def test_layout_mismatch_error_from_archive_warning_for_local_copy(tmp_path):
    """No checksum is known for the APY/AWA1/FLO split files: the layout is the check."""
    lay = xlsa17.LAYOUT["AWA1"]
    wrong = type(lay)(lay.images - 10, lay.classes, lay.att_dim, lay.trainval - 10,
                      lay.test_seen, lay.test_unseen)
    stage = tmp_path / "xlsa17" / "data" / "AWA1"
    fake_benchmark("AWA1", stage, layout=wrong)
    (tmp_path / "xlsa17.zip").write_bytes(zip_of(stage, "xlsa17/data/AWA1/"))
    with pytest.raises(DataError, match=r"does not match the published AWA1 layout: images "
                                        r"30465 \(published 30475\), trainval 19822 "
                                        r"\(published 19832\); delete the download cache"):
        build_dataset(DataConfig(dataset="AWA1", local_path=str(tmp_path / "xlsa17.zip"),
                                 download_dir=str(tmp_path / "c")))
    with pytest.warns(UserWarning, match="does not match the published AWA1 layout.*using it "
                                         "anyway"):
        d = build_dataset(DataConfig(dataset="AWA1", local_path=str(tmp_path)))
    assert d.trainval_loc.size == 19822


def test_real_xlsa17_files_match_the_published_layout(shared_data, tmp_path):
    """The layout table is right for the real AWA2/CUB/SUN files (labels + split files)."""
    import warnings

    for ds in ("AWA2", "CUB", "SUN"):
        make_standin(shared_data, ds, tmp_path / ds, dim=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # stand-in res101.mat != the real digest
            d = build_dataset(DataConfig(dataset=ds, local_path=str(tmp_path / ds)))
        xlsa17.check_layout(d, ds, tmp_path / ds / "att_splits.mat", strict=True, sent=False)
