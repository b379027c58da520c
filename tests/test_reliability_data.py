"""Reliability, bad data files (docs/reliability.md): every bad input reaches the stage entry
point as ``error: <file>: <key> <problem>`` with exit status 2, no traceback, and no output
directory or metrics file is left behind."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import scipy.io as sio
import torch
import yaml

from conftest import REPO
from zerodiffpp.config import SyntheticConfig
from zerodiffpp.data import synthetic
from zerodiffpp.data.matio import write_raw
from zerodiffpp.features.store import write_feature_mat
from zerodiffpp.io import write_json
from zerodiffpp.stages import evaluate, prepare, train_drg
from zerodiffpp.trainloop import random_prepared_data


def small_data():
    return synthetic.make(SyntheticConfig(n_classes=6, n_unseen=2, per_class=10, feature_dim=6,
                                          attr_dim=4))


def write_inputs(tmp_path, data=None):
    """data/raw + data/features + params.yaml for the prepare stage; returns (raw, feats)."""
    data = data or small_data()
    raw, feats = tmp_path / "raw", tmp_path / "features"
    write_raw(data, raw)
    write_feature_mat(feats / "ce_ce.mat", data.features)
    write_feature_mat(feats / "con_paco.mat", data.features[:, ::-1])
    write_json(feats / "features.json", {"dataset": data.name})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(
        {"data": {"embedding_norm": "auto"}, "train": {"seen_fraction": 1.0, "seed": 0}}))
    return raw, feats


def edit_mat(path, **changes):
    """Rewrite a .mat file with keys replaced (value) or deleted (None)."""
    content = {k: v for k, v in sio.loadmat(path).items() if not k.startswith("__")}
    for key, value in changes.items():
        if value is None:
            del content[key]
        else:
            content[key] = value
    sio.savemat(path, content)


def run_prepare(tmp_path):
    return prepare.main(["--params", str(tmp_path / "params.yaml"), "--raw", str(tmp_path / "raw"),
                         "--features", str(tmp_path / "features"), "--out", str(tmp_path / "prepared")])


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _v73(path):
    b = bytearray(path.read_bytes())
    b[124:126] = b"\x00\x02"        # header version 0x0200 = MATLAB v7.3 (HDF5)
    path.write_bytes(bytes(b))


def _overlap(raw, d):
    locs = np.concatenate([d.test_unseen_loc, d.trainval_loc[:1]]).reshape(-1, 1)
    edit_mat(raw / "att_splits.mat", test_unseen_loc=locs)


def _nan_feature(raw, d):
    f = d.features.T.copy()
    f[1, 4] = np.nan
    edit_mat(raw / "res101.mat", features=f)


def _inf_att(raw, d):
    att = d.class_embeddings.T.copy()
    att[0, 2] = np.inf
    edit_mat(raw / "att_splits.mat", att=att)


def _cell_labels(raw, d):
    cell = np.empty((d.labels.size, 1), dtype=object)
    cell[:, 0] = ["x"] * d.labels.size
    edit_mat(raw / "res101.mat", labels=cell)


# (id, mutate(raw_dir, features_dir, data), expected message fragment (regex))
BAD_FILES = [
    ("truncated-mat", lambda r, f, d: _truncate(r / "att_splits.mat"),
     r"att_splits\.mat: cannot read MATLAB file, truncated or corrupt\?"),
    ("garbage-mat", lambda r, f, d: (r / "res101.mat").write_bytes(b"not a mat file " * 20),
     r"res101\.mat: cannot read MATLAB file, truncated or corrupt\?"),
    ("matlab-v7.3", lambda r, f, d: _v73(r / "att_splits.mat"),
     r"att_splits\.mat: MATLAB v7\.3 \(HDF5\) files are not supported; re-save with"),
    ("missing-key", lambda r, f, d: edit_mat(r / "att_splits.mat", att=None),
     r"att_splits\.mat: missing required key 'att' \(keys present: "),
    ("missing-loc", lambda r, f, d: edit_mat(r / "att_splits.mat", test_unseen_loc=None),
     r"att_splits\.mat: missing required key 'test_unseen_loc'"),
    ("features-transposed", lambda r, f, d: edit_mat(r / "res101.mat", features=d.features),
     r"res101\.mat: key 'features' has shape \(60, 6\), expected D x 60 .*stored N x D\?"),
    ("labels-float", lambda r, f, d: edit_mat(r / "res101.mat", labels=d.labels[:, None] + 0.5),
     r"res101\.mat: key 'labels' must hold integers, got dtype float64"),
    ("labels-cell", lambda r, f, d: _cell_labels(r, d),
     r"res101\.mat: key 'labels' must be a numeric vector, got a cell/struct array"),
    ("labels-0-based", lambda r, f, d: edit_mat(r / "res101.mat", labels=d.labels[:, None] - 1),
     r"res101\.mat: key 'labels' has values in \[0, 5\], expected 1\.\.6 .*labels look 0-based"),
    ("labels-out-of-range", lambda r, f, d: edit_mat(r / "res101.mat",
                                                      labels=np.where(d.labels == 6, 9, d.labels)[:, None]),
     r"res101\.mat: key 'labels' has values in \[1, 9\], expected 1\.\.6 \(columns of 'att'\)"),
    ("loc-out-of-range", lambda r, f, d: edit_mat(r / "att_splits.mat",
                                                   test_seen_loc=np.array([[1], [61]])),
     r"att_splits\.mat: key 'test_seen_loc' has indices in \[1, 61\], expected 1\.\.60"),
    ("loc-0-based", lambda r, f, d: edit_mat(r / "att_splits.mat",
                                              trainval_loc=np.r_[0, d.trainval_loc[1:]][:, None]),
     r"att_splits\.mat: key 'trainval_loc' has indices in \[0, \d+\], expected 1\.\.60 .*0-based"),
    ("loc-duplicates", lambda r, f, d: edit_mat(r / "att_splits.mat",
                                                 test_seen_loc=np.repeat(d.test_seen_loc[:2], 2)[:, None]),
     r"att_splits\.mat: key 'test_seen_loc' contains duplicate indices"),
    ("seen-unseen-overlap", lambda r, f, d: _overlap(r, d),
     r"att_splits\.mat: seen and unseen classes overlap \(1 classes, e\.g\. class_\d+\); trainval_loc and "
     r"test_unseen_loc must cover disjoint classes"),
    ("nan-feature", lambda r, f, d: _nan_feature(r, d),
     r"res101\.mat: key 'features' contains NaN/Inf \(first at sample row 5\)"),
    ("inf-att", lambda r, f, d: _inf_att(r, d), r"att_splits\.mat: key 'att' contains NaN/Inf"),
    ("nan-extracted-x", lambda r, f, d: write_feature_mat(
        f / "ce_ce.mat", np.where(np.arange(d.features.size).reshape(d.features.shape) == 7,
                                  np.nan, d.features)),
     r"ce_ce\.mat: key 'features' contains NaN/Inf"),
    ("extracted-row-count", lambda r, f, d: write_feature_mat(f / "con_paco.mat", d.features[:-1]),
     r"con_paco\.mat: key 'features' has shape \(59, 6\), expected 60 rows"),
    ("extracted-missing", lambda r, f, d: (f / "con_paco.mat").unlink(),
     r"con_paco\.mat: file not found \(did the features stage run\?\)"),
    ("features-of-other-dataset", lambda r, f, d: write_json(f / "features.json", {"dataset": "CUB"}),
     r"features\.json: features were made for dataset 'CUB', but data/raw holds 'synthetic'"),
    ("dataset-json-missing", lambda r, f, d: (r / "dataset.json").unlink(),
     r"dataset\.json: file not found"),
    ("dataset-json-corrupt", lambda r, f, d: (r / "dataset.json").write_text('{"name": '),
     r"dataset\.json: not valid JSON"),
]


@pytest.mark.parametrize("mutate, expected", [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_bad_data_file_fails_prepare_clearly(tmp_path, capsys, mutate, expected):
    data = small_data()
    raw, feats = write_inputs(tmp_path, data)
    assert run_prepare(tmp_path) == 0          # the untouched inputs are fine
    capsys.readouterr()
    (tmp_path / "prepared").rename(tmp_path / "good")
    mutate(raw, feats, data)
    assert run_prepare(tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert re.search(expected, err), err
    assert not (tmp_path / "prepared").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features", "good", "params.yaml", "raw"]


def test_class_without_training_sample_after_subsampling(tmp_path, capsys, monkeypatch):
    """n_kept() keeps at least one sample per class, so only a broken subsampler can empty a
    class; prepare() still checks it and names the class and the seen fraction."""
    from zerodiffpp import preprocess

    data = small_data()
    write_inputs(tmp_path, data)
    first_seen = int(data.seen_classes()[0])       # 0-based
    real = preprocess.subsample_seen

    def drop_a_class(labels, fraction, seed):
        kept = real(labels, fraction, seed)
        return kept[labels[kept] != first_seen]

    monkeypatch.setattr(preprocess, "subsample_seen", drop_a_class)
    assert run_prepare(tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: synthetic: seen class(es) [{first_seen + 1}] have no training "
                          "sample left after train.seen_fraction=1.0"), err
    assert not (tmp_path / "prepared").exists()


def test_bad_data_through_python_m(tmp_path):
    """The same through ``python -m`` as DVC runs it: exit 2, one line, no traceback."""
    raw, _ = write_inputs(tmp_path)
    _truncate(raw / "res101.mat")
    proc = subprocess.run([sys.executable, "-m", "zerodiffpp.stages.prepare", "--params",
                           str(tmp_path / "params.yaml"), "--raw", str(raw), "--features",
                           str(tmp_path / "features"), "--out", str(tmp_path / "prepared")],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {raw / 'res101.mat'}: cannot read MATLAB file")
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (tmp_path / "prepared").exists()


def _train_params(tmp_path):
    params = {"runtime": {"device": "cpu", "threads": 1, "progress": False},
              "train": {"seed": 0}, "drg": {"epochs": 1, "batch_size": 16, "hidden_dim": 8,
                                            "critic_steps": 1},
              "dfg": {"epochs": 1, "batch_size": 16, "hidden_dim": 8, "critic_steps": 1},
              "eval": {"selection": "fixed"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path / "params.yaml"


def test_corrupt_prepared_npz_stops_training_and_evaluation(tmp_path, capsys):
    params = _train_params(tmp_path)
    prepared = tmp_path / "prepared"
    random_prepared_data(n_train=32, x_dim=6, c_dim=5, attr_dim=4).save(prepared / "prepared.npz")
    _truncate(prepared / "prepared.npz")
    assert train_drg.main(["--params", str(params), "--prepared", str(prepared), "--out",
                           str(tmp_path / "drg"), "--history", str(tmp_path / "drg.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {prepared / 'prepared.npz'}: cannot read (")
    assert not (tmp_path / "drg").exists() and not (tmp_path / "drg.csv").exists()
    metrics = tmp_path / "metrics" / "zerodiff.json"
    assert evaluate.main(["--params", str(params), "--prepared", str(prepared), "--drg",
                          str(tmp_path / "drg"), "--dfg", str(tmp_path / "dfg"), "--metrics",
                          str(metrics), "--per-class", str(tmp_path / "eval" / "pc.csv"),
                          "--eval-dir", str(tmp_path / "eval")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {prepared / 'prepared.npz'}: cannot read")
    assert not metrics.exists() and not (tmp_path / "metrics").exists()
    # a prepared.npz missing an array names it
    random_prepared_data(n_train=32, x_dim=6, c_dim=5, attr_dim=4).save(prepared / "prepared.npz")
    with np.load(prepared / "prepared.npz") as z:
        arrays = {k: z[k] for k in z.files if k != "class_emb"}
    np.savez(prepared / "prepared.npz", **arrays)
    assert train_drg.main(["--params", str(params), "--prepared", str(prepared), "--out",
                           str(tmp_path / "drg")]) == 2
    assert "prepared.npz: missing key(s) class_emb" in capsys.readouterr().err


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


def test_malicious_checkpoint_stops_evaluation(tmp_path, capsys):
    params = _train_params(tmp_path)
    prepared = tmp_path / "prepared"
    random_prepared_data(n_train=32, x_dim=6, c_dim=5, attr_dim=4).save(prepared / "prepared.npz")
    marker = tmp_path / "pwned"
    for stage in ("drg", "dfg"):
        (tmp_path / stage).mkdir()
        torch.save({"meta": {"stage": stage.upper()}, "models": _Evil(marker)},
                   tmp_path / stage / "model.pt")
    metrics = tmp_path / "metrics" / "zerodiff.json"
    assert evaluate.main(["--params", str(params), "--prepared", str(prepared), "--drg",
                          str(tmp_path / "drg"), "--dfg", str(tmp_path / "dfg"), "--metrics",
                          str(metrics), "--eval-dir", str(tmp_path / "eval"), "--per-class",
                          str(tmp_path / "eval" / "pc.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'drg' / 'model.pt'}: refusing to load checkpoint: "
                          "it references "), err
    assert "system" in err and "weights_only=False" not in err
    assert not marker.exists() and not metrics.exists()
