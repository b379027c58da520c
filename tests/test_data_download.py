"""fetch(): resume via Range, checksum/size checks, offline message; zip-slip-safe extraction.
All HTTP goes to a local server on 127.0.0.1 (conftest.http_files)."""
from __future__ import annotations

import hashlib
import socket
import stat
import zipfile

import pytest

from zerodiffpp.data.download import fetch, safe_extract_zip
from zerodiffpp.io import DataError

BODY = bytes(range(256)) * 40  # 10 KiB
SHA = hashlib.sha256(BODY).hexdigest()


def test_fetch_full(http_files, tmp_path):
    http_files.files["/f.bin"] = BODY
    dest = fetch(http_files.url("/f.bin"), tmp_path / "f.bin", sha256=SHA, expected_size=len(BODY))
    assert dest.read_bytes() == BODY and not (tmp_path / "f.bin.part").exists()
    # a verified file is reused without another request
    fetch(http_files.url("/f.bin"), dest, sha256=SHA)
    assert len(http_files.requests) == 1


def test_resume_from_part(http_files, tmp_path):
    http_files.files["/f.bin"] = BODY
    (tmp_path / "f.bin.part").write_bytes(BODY[:3000])
    dest = fetch(http_files.url("/f.bin"), tmp_path / "f.bin", sha256=SHA)
    assert dest.read_bytes() == BODY
    assert http_files.requests == [("/f.bin", "bytes=3000-")]


def test_interrupted_download_resumes(http_files, tmp_path):
    http_files.files["/f.bin"] = BODY
    http_files.cut_after = 4096
    with pytest.raises(DataError, match="interrupted after 4096 bytes.*rerun to resume"):
        fetch(http_files.url("/f.bin"), tmp_path / "f.bin", sha256=SHA)
    assert (tmp_path / "f.bin.part").stat().st_size == 4096
    dest = fetch(http_files.url("/f.bin"), tmp_path / "f.bin", sha256=SHA)
    assert dest.read_bytes() == BODY
    assert http_files.requests[-1] == ("/f.bin", "bytes=4096-")


def test_server_ignoring_range_restarts(http_files, tmp_path):
    http_files.files["/f.bin"] = BODY
    http_files.honour_range = False
    (tmp_path / "f.bin.part").write_bytes(b"x" * 100)
    assert fetch(http_files.url("/f.bin"), tmp_path / "f.bin", sha256=SHA).read_bytes() == BODY


def test_complete_part_416(http_files, tmp_path):
    http_files.files["/f.bin"] = BODY
    (tmp_path / "f.bin.part").write_bytes(BODY)
    assert fetch(http_files.url("/f.bin"), tmp_path / "f.bin", sha256=SHA).read_bytes() == BODY


def test_checksum_mismatch_deletes(http_files, tmp_path):
    http_files.files["/f.bin"] = BODY
    with pytest.raises(DataError, match="sha256 mismatch.*deleted"):
        fetch(http_files.url("/f.bin"), tmp_path / "f.bin", sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="expected 5;.*deleted"):
        fetch(http_files.url("/f.bin"), tmp_path / "g.bin", expected_size=5)
    assert list(tmp_path.iterdir()) == []


def test_http_error_and_no_network(http_files, tmp_path):
    with pytest.raises(DataError, match="HTTP error 404.*data.local_path"):
        fetch(http_files.url("/missing"), tmp_path / "m.bin")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match="cannot download.*set data.local_path"):
        fetch(f"http://127.0.0.1:{port}/x", tmp_path / "x.bin", timeout=5)


def _zip(path, entries):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in entries:
            if isinstance(data, zipfile.ZipInfo):
                zf.writestr(data, name)
            else:
                zf.writestr(name, data)
    return path


@pytest.mark.parametrize("evil", ["../evil", "a/../../evil", "/abs/evil", "C:/evil",
                                  "..\\evil"])
def test_zip_slip_refused(tmp_path, evil):
    z = _zip(tmp_path / "a.zip", [("ok/good.txt", b"fine"), (evil, b"bad")])
    target = tmp_path / "out"
    with pytest.raises(DataError, match="refusing to extract"):
        safe_extract_zip(z, target)
    assert not (tmp_path / "evil").exists() and not target.exists()  # nothing written


def test_zip_symlink_refused(tmp_path):
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    z = _zip(tmp_path / "a.zip", [("/etc/passwd", info)])
    with pytest.raises(DataError, match="symbolic link"):
        safe_extract_zip(z, tmp_path / "out")


def test_zip_members_subset(tmp_path):
    z = _zip(tmp_path / "a.zip", [("d/A/x.mat", b"1"), ("d/B/y.mat", b"2"), ("../evil", b"3")])
    out = safe_extract_zip(z, tmp_path / "out", ["d/A/x.mat"])
    assert out == [(tmp_path / "out/d/A/x.mat").resolve()]
    assert not (tmp_path / "out/d/B").exists()
    with pytest.raises(DataError, match="no member"):
        safe_extract_zip(z, tmp_path / "out", ["nope"])
    (tmp_path / "bad.zip").write_bytes(b"PK garbage")
    with pytest.raises(DataError, match="not a readable zip"):
        safe_extract_zip(tmp_path / "bad.zip", tmp_path / "out")
