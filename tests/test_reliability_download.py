"""Reliability, downloads through the ``download`` stage (docs/reliability.md): an interrupted
download is resumed by the rerun, a checksum mismatch deletes the file and says so, no network
names the manual alternative (``data.local_path``); in every failure data/raw is not created.
The fetch()-level tests (Range resume, 416, zip-slip) are in test_data_download.py."""
from __future__ import annotations

import socket

import pytest
import yaml

from zerodiffpp.data import snu, xlsa17
from zerodiffpp.stages import download


def _params(tmp_path, **data):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"data": {"download_dir": str(tmp_path / "cache"), **data},
                                    "runtime": {"progress": False}}))
    return path


def _run(tmp_path, params):
    return download.main(["--params", str(params), "--out", str(tmp_path / "raw")])


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_network_names_local_path(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(xlsa17, "URL", f"http://127.0.0.1:{_closed_port()}/xlsa17.zip")
    assert _run(tmp_path, _params(tmp_path, dataset="AWA2")) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {xlsa17.URL}: cannot download (")
    assert err.rstrip().endswith("; " + xlsa17.MANUAL)
    assert xlsa17.MANUAL.startswith("without network access, download http") and \
        "yourself and set data.local_path to the zip" in xlsa17.MANUAL
    assert not (tmp_path / "raw").exists()
    assert list((tmp_path / "cache").iterdir()) == []           # nothing half-downloaded


def test_checksum_mismatch_deletes_and_says_so(tmp_path, capsys, monkeypatch, http_files):
    for f in snu.FILES:
        http_files.files[f"/snu/{f}"] = b"not the pinned file" * 100
    monkeypatch.setattr(snu, "BASE_URL", http_files.url("/snu/"))
    assert _run(tmp_path, _params(tmp_path, dataset="snu-b36-ex")) == 2
    err = capsys.readouterr().err
    part = tmp_path / "cache" / "snu-b36-ex" / "CNN_fea.mat.part"
    assert err.startswith(f"error: {snu.BASE_URL}CNN_fea.mat: sha256 mismatch (got ")
    assert err.rstrip().endswith(f"expected {snu.FILES['CNN_fea.mat']}); the downloaded file "
                                 f"{part} was deleted, rerun to download again")
    assert not part.exists() and not (tmp_path / "raw").exists()


def test_interrupted_download_resumes_on_rerun(shared_data, tmp_path, capsys, monkeypatch,
                                               http_files):
    for f in snu.FILES:
        http_files.files[f"/snu/{f}"] = (shared_data / "snu-b36-ex" / f).read_bytes()
    monkeypatch.setattr(snu, "BASE_URL", http_files.url("/snu/"))
    http_files.cut_after = 100_000                               # connection drops mid-file
    params = _params(tmp_path, dataset="snu-b36-ex")
    assert _run(tmp_path, params) == 2
    err = capsys.readouterr().err
    part = tmp_path / "cache" / "snu-b36-ex" / "CNN_fea.mat.part"
    assert err == (f"error: {snu.BASE_URL}CNN_fea.mat: download interrupted after 100000 bytes "
                   f"(IncompleteRead); rerun to resume from {part}\n")
    assert part.stat().st_size == 100_000 and not (tmp_path / "raw").exists()
    assert _run(tmp_path, params) == 0                           # the rerun resumes
    assert ("/snu/CNN_fea.mat", "bytes=100000-") in http_files.requests
    assert not part.exists() and (tmp_path / "raw" / "res101.mat").is_file()


@pytest.mark.parametrize("evil", ["../../../../evil.mat", "sub/../../../../../evil.mat"])
def test_zip_escaping_target_is_refused_by_the_stage(tmp_path, capsys, evil):
    import zipfile

    z = tmp_path / "xlsa17.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("xlsa17/data/AWA2/res101.mat", b"x")
        zf.writestr("xlsa17/data/AWA2/att_splits.mat", b"x")
        zf.writestr(f"xlsa17/data/AWA2/{evil}", b"x")   # under the extracted prefix
    assert _run(tmp_path, _params(tmp_path, dataset="AWA2", local_path=str(z))) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: refusing to extract zip member "), err
    assert "would escape the target directory" in err
    assert not (tmp_path / "raw").exists() and not (tmp_path / "evil.mat").exists()
    assert not (tmp_path / "cache").exists() or not any(
        p.is_file() for p in (tmp_path / "cache").rglob("*"))            # nothing extracted
