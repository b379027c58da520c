"""Shared fixtures: real data under ../shared/data, stand-in res101.mat files, a local HTTP
server with Range support (tests never touch the internet)."""
from __future__ import annotations

import http.server
import os
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml
import scipy.io as sio

os.environ.setdefault("ZERODIFFPP_NO_PROGRESS", "1")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = REPO.parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip(f"real data folder {path} not available")
    return path


def make_standin(shared: Path, ds: str, folder: Path, dim: int, seed: int = 0,
                 splits: tuple[str, ...] = ("att_splits.mat",)) -> np.ndarray:
    """Write ``folder/res101.mat`` with the real labels of ``ds`` and random float32 features
    (dim x N), copy its split files beside it; return the N x dim features."""
    folder.mkdir(parents=True, exist_ok=True)
    labels = sio.loadmat(shared / "xlsa17" / ds / "res101_labels.mat")["labels"]
    rng = np.random.default_rng(seed)
    feats = rng.random((labels.shape[0], dim), dtype=np.float32)   # N x D, C order
    sio.savemat(folder / "res101.mat", {"features": feats.T, "labels": labels})
    for name in splits:
        shutil.copyfile(shared / "xlsa17" / ds / name, folder / name)
    return feats


@pytest.fixture(scope="session")
def awa2_standin(shared_data, tmp_path_factory):
    """AWA2 folder with a true-shape (2048 x 37322) stand-in res101.mat; built once."""
    folder = tmp_path_factory.mktemp("awa2") / "AWA2"
    feats = make_standin(shared_data, "AWA2", folder, dim=2048)
    return folder, feats


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        srv = self.server
        srv.requests.append((self.path, self.headers.get("Range")))
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and srv.honour_range:
            start = int(re.match(r"bytes=(\d+)-", rng).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if srv.cut_after is not None:  # simulate a dropped connection mid-transfer
            self.wfile.write(chunk[:srv.cut_after])
            srv.cut_after = None
            self.close_connection = True
            return
        self.wfile.write(chunk)


@pytest.fixture
def http_files():
    """A local server: set ``server.files[path] = bytes``; ``server.url(path)``."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.files, server.requests = {}, []
    server.honour_range, server.cut_after = True, None
    server.url = lambda path: f"http://127.0.0.1:{server.server_address[1]}{path}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Toy-sized tensors: one intra-op thread is fastest and immune to CPU oversubscription.
    (Stage subprocesses started by the end-to-end tests use their params' threads.)"""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Small DRG/DFG sections shared by the trainer tests (test_training, test_reliability_training).
TINY_TRAINER = dict(batch_size=32, critic_steps=2, hidden_dim=16)


def write_trainer_params(path, **sections):
    """A params.yaml with the sections a train_drg / train_dfg stage reads (2 tiny epochs);
    ``sections`` replace whole sections."""
    params = {"runtime": {"device": "cpu", "threads": 1, "precision": "fp32", "progress": False},
              "train": {"seed": 0}, "diffusion": {"n_steps": 4, "beta_min": 0.1, "beta_max": 20.0},
              "drg": dict(epochs=2, **TINY_TRAINER), "dfg": dict(epochs=2, **TINY_TRAINER)}
    params.update(sections)
    path.write_text(yaml.safe_dump(params))
    return path


def assert_same_state(a: dict, b: dict) -> None:
    """Two trainer ``state_dict()``s / checkpoints: same meta, weights, optimiser states, RNG
    state and history (minus wall-clock seconds)."""
    import torch

    assert a["meta"] == b["meta"]
    for group in ("models", "optimizers"):
        assert a[group].keys() == b[group].keys()
    assert a.get("averaged", {}).keys() == b.get("averaged", {}).keys()
    for name, avg in a.get("averaged", {}).items():
        assert avg["updates"] == b["averaged"][name]["updates"]
        for key, value in avg["weights"].items():
            assert torch.equal(value, b["averaged"][name]["weights"][key]), f"averaged {name}.{key}"
    for name in a["models"]:
        for key, value in a["models"][name].items():
            assert torch.equal(value, b["models"][name][key]), f"{name}.{key}"
    for name in a["optimizers"]:
        sa, sb = a["optimizers"][name]["state"], b["optimizers"][name]["state"]
        assert sa.keys() == sb.keys()
        for idx in sa:
            for key, value in sa[idx].items():
                assert torch.equal(value, sb[idx][key]), f"{name}.{idx}.{key}"
    assert torch.equal(a["state"]["generator"], b["state"]["generator"])
    strip = lambda h: {k: v for k, v in h.items() if k != "seconds"}  # noqa: E731
    assert strip(a["history"]) == strip(b["history"])


def assert_same_checkpoint(a_path, b_path, a_hist=None, b_hist=None):
    """:func:`assert_same_state` of two checkpoint files, and of their history CSVs if given."""
    import pandas as pd

    from zerodiffpp.io import load_checkpoint

    assert_same_state(load_checkpoint(a_path), load_checkpoint(b_path))
    if a_hist is not None:
        pd.testing.assert_frame_equal(pd.read_csv(a_hist).drop(columns="seconds"),
                                      pd.read_csv(b_hist).drop(columns="seconds"), check_exact=True)
