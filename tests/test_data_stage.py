"""The ``download`` stage CLI: writes data/raw as a whole, one-line summary, exit 2 on errors."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import REPO
from zerodiffpp.data import matio
from zerodiffpp.data.matio import read_raw
from zerodiffpp.stages import download


def _params(tmp_path, **data):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"data": data, "runtime": {"progress": False}}))
    return path


def test_stage_synthetic_replaces_dir(tmp_path, capsys):
    out = tmp_path / "data" / "raw"
    params = _params(tmp_path, dataset="synthetic", synthetic={"n_classes": 6, "n_unseen": 2,
                                                               "per_class": 10})
    assert download.main(["--params", str(params), "--out", str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0 and "4 seen / 2 unseen" in line and "trainval 32" in line
    first = read_raw(out)
    (out / "stray.txt").write_text("from an older run")
    assert download.main(["--params", str(params), "--out", str(out)]) == 0
    assert not (out / "stray.txt").exists()  # replaced as a whole
    assert np.array_equal(read_raw(out, verify=True).features, first.features)
    assert sorted(p.name for p in out.parent.iterdir()) == ["raw"]  # no temp leftovers


def test_stage_interrupted_leaves_old_output(tmp_path, monkeypatch, capsys):
    out = tmp_path / "raw"
    params = _params(tmp_path, dataset="synthetic")
    assert download.main(["--params", str(params), "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def crash(data, folder, **kw):
        matio.write_raw(data, folder)
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "write_raw", crash)
    with pytest.raises(KeyboardInterrupt):
        download.main(["--params", str(params), "--out", str(out)])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "raw"]


def test_stage_errors_exit_2(tmp_path, capsys):
    bad = _params(tmp_path, dataset="MNIST")
    assert download.main(["--params", str(bad), "--out", str(tmp_path / "raw")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data.dataset='MNIST': must be one of") and "Traceback" not in err
    missing = _params(tmp_path, dataset="animals", local_path=str(tmp_path / "none"))
    assert download.main(["--params", str(missing), "--out", str(tmp_path / "raw")]) == 2
    assert "error: data.local_path:" in capsys.readouterr().err
    assert not (tmp_path / "raw").exists()


def test_stage_cli_animals(shared_data, tmp_path):
    params = _params(tmp_path, dataset="animals", local_path=str(shared_data / "animal-mnist"))
    out = tmp_path / "raw"
    proc = subprocess.run([sys.executable, "-m", "zerodiffpp.stages.download", "--params",
                           str(params), "--out", str(out)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "animals: 10 classes (7 seen / 3 unseen)" in proc.stdout
    d = read_raw(out, verify=True)
    assert d.image_shape == (1, 28, 28) and d.test_unseen_loc.size == 3000
    proc = subprocess.run([sys.executable, "-m", "zerodiffpp.stages.download", "--params",
                           str(tmp_path / "nope.yaml")], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ")
    assert "Traceback" not in proc.stderr
