"""Reliability, nothing half-written and untrusted files (docs/reliability.md): a writer that
crashes half-way (disk full, Ctrl-C) leaves the previous file byte-identical and no temp file;
checkpoints and pickles that try to run code are refused."""
from __future__ import annotations

import errno
import os
import pickle
import zipfile

import numpy as np
import pandas as pd
import pytest
import scipy.io as sio
import torch

from zerodiffpp import io as zio
from zerodiffpp.config import SyntheticConfig
from zerodiffpp.data import synthetic
from zerodiffpp.data.download import safe_extract_zip
from zerodiffpp.data.matio import write_raw
from zerodiffpp.features.store import write_feature_mat
from zerodiffpp.io import DataError, load_checkpoint


def _partial_then_fail(exc):
    """A stand-in writer: writes a few bytes to its target, then raises ``exc``."""
    def writer(*args, **kwargs):
        target = next(a for a in args if isinstance(a, (str, os.PathLike)) or hasattr(a, "write"))
        if hasattr(target, "write"):
            target.write(b"PARTIAL")
        else:
            with open(target, "wb") as f:
                f.write(b"PARTIAL")
        raise exc
    return writer


def _frame_partial_then_fail(exc):
    def to_csv(self, target, *args, **kwargs):
        with open(target, "w") as f:
            f.write("a,b\n1,")
        raise exc
    return to_csv


def _text_partial_then_fail(exc):
    def write_text(self, text, *args, **kwargs):
        with open(self, "w") as f:
            f.write(text[: len(text) // 2])
        raise exc
    return write_text


# (name, write(path) -> None, (object, attribute, fake factory) to patch)
SMALL = synthetic.make(SyntheticConfig(n_classes=5, n_unseen=2, per_class=6, feature_dim=3,
                                       attr_dim=2))
WRITERS = [
    ("write_text", lambda p: zio.write_text(p, "new text " * 100),
     (__import__("pathlib").Path, "write_text", _text_partial_then_fail)),
    ("write_json", lambda p: zio.write_json(p, {"new": list(range(100))}),
     (__import__("pathlib").Path, "write_text", _text_partial_then_fail)),
    ("write_csv", lambda p: zio.write_csv(p, pd.DataFrame({"a": range(50), "b": 1.5})),
     (pd.DataFrame, "to_csv", _frame_partial_then_fail)),
    ("write_npz", lambda p: zio.write_npz(p, a=np.arange(100)),
     (np, "savez", _partial_then_fail)),
    ("save_checkpoint", lambda p: zio.save_checkpoint(p, {"w": torch.ones(100)}),
     (torch, "save", _partial_then_fail)),
    ("write_feature_mat", lambda p: write_feature_mat(p, np.ones((10, 3))),
     (sio, "savemat", _partial_then_fail)),
    ("write_raw (.mat)", lambda p: write_raw(SMALL, p.parent),
     (sio, "savemat", _partial_then_fail)),
]
TARGETS = {"write_raw (.mat)": "res101.mat", "write_npz": "out.npz", "save_checkpoint": "model.pt",
           "write_feature_mat": "ce_ce.mat", "write_csv": "out.csv", "write_json": "out.json"}


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"),
                                 KeyboardInterrupt()], ids=["disk-full", "interrupt"])
@pytest.mark.parametrize("name, write, patch", WRITERS, ids=[w[0] for w in WRITERS])
def test_crash_mid_write_keeps_old_file(tmp_path, monkeypatch, name, write, patch, exc):
    target = tmp_path / "out" / TARGETS.get(name, "out.txt")
    target.parent.mkdir()
    target.write_bytes(b"the previous, complete version")
    obj, attr, fake = patch
    monkeypatch.setattr(obj, attr, fake(exc))
    with pytest.raises(type(exc)):
        write(target)
    monkeypatch.undo()
    assert target.read_bytes() == b"the previous, complete version"
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]   # no temp file


@pytest.mark.parametrize("name, write, patch", WRITERS, ids=[w[0] for w in WRITERS])
def test_writers_replace_complete_files(tmp_path, name, write, patch):
    """Without a fault the same writers produce the new file and no leftovers."""
    target = tmp_path / "out" / TARGETS.get(name, "out.txt")
    target.parent.mkdir()
    target.write_bytes(b"old")
    write(target)
    assert target.read_bytes() != b"old"
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]


def test_crash_during_checkpoint_rename_keeps_old_checkpoint(tmp_path, monkeypatch):
    """Even a failure at the very last step (the rename) leaves the old checkpoint loadable."""
    path = tmp_path / "model.pt"
    zio.save_checkpoint(path, {"epoch": torch.tensor(1)})

    def failing_replace(src, dst):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        zio.save_checkpoint(path, {"epoch": torch.tensor(2)})
    monkeypatch.undo()
    assert int(load_checkpoint(path)["epoch"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


def test_interrupted_zip_extraction_leaves_no_partial_file(tmp_path, monkeypatch):
    import shutil

    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("d/x.mat", b"x" * 1000)

    def interrupted_copy(src, dst, length=0):
        dst.write(src.read(10))
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copyfileobj", interrupted_copy)
    with pytest.raises(KeyboardInterrupt):
        safe_extract_zip(z, tmp_path / "out")
    assert [p for p in (tmp_path / "out").rglob("*") if p.is_file()] == []


# ------------------------------------------------------------------ untrusted files


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


def test_malicious_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    torch.save({"meta": {"stage": "DRG"}, "models": {"R": _RunsCode(marker)}}, path)
    with pytest.raises(DataError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: refusing to load checkpoint: it references ")
    assert msg.endswith("only tensors and plain containers are allowed (weights_only=True), "
                        "so this is not a checkpoint written by zerodiffpp")
    assert "system" in msg and "weights_only=False" not in msg
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_plain_pickle_renamed_to_pt_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(DataError, match=r"model\.pt: (refusing to load checkpoint|cannot load "
                                        r"checkpoint, truncated or corrupt\?)"):
        load_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("content, fragment", [
    (b"", "cannot load checkpoint, truncated or corrupt?"),
    (b"hello world" * 10, "cannot load checkpoint, truncated or corrupt?"),
    (None, "checkpoint not found (did the training stage run?)"),
])
def test_unreadable_checkpoint_messages(tmp_path, content, fragment):
    path = tmp_path / "model.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError) as err:
        load_checkpoint(path)
    assert str(err.value).startswith(f"{path}: {fragment}")
    assert "\n" not in str(err.value)


def test_truncated_checkpoint_message_is_one_sentence(tmp_path):
    path = tmp_path / "model.pt"
    zio.save_checkpoint(path, {"w": torch.ones(1000)})
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError) as err:
        load_checkpoint(path)
    assert str(err.value).startswith(f"{path}: cannot load checkpoint, truncated or corrupt? (")
    assert len(str(err.value)) < 400


def test_npz_with_pickled_object_is_refused(tmp_path):
    path = tmp_path / "prepared.npz"
    np.savez(path, a=np.array([_RunsCode(tmp_path / "pwned")], dtype=object))
    with pytest.raises(DataError, match=r"prepared\.npz: cannot read \(ValueError: Object arrays "
                                        r"cannot be loaded when allow_pickle=False"):
        zio.read_npz(path)
    assert not (tmp_path / "pwned").exists()
