"""Reliability, training faults (docs/reliability.md): divergence stops the stage with a message
naming stage, epoch and loss; SIGTERM/SIGINT stop training at an epoch boundary with exit 130 and
a rerun resumes to exactly the uninterrupted result; stale or broken checkpoints are ignored."""
from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from conftest import REPO, TINY_TRAINER, assert_same_checkpoint, write_trainer_params
from zerodiffpp.config import DiffusionConfig, DRGConfig, RuntimeConfig
from zerodiffpp.data.prepared import PreparedData
from zerodiffpp.io import load_checkpoint, save_checkpoint
from zerodiffpp.stages import train_dfg, train_drg
from zerodiffpp.train_drg import DRGTrainer
from zerodiffpp.trainloop import TrainingInterrupted, fit, random_prepared_data, resume_path_for

TINY = TINY_TRAINER
DIFF = DiffusionConfig()
RUNTIME = RuntimeConfig(device="cpu", threads=1, progress=False)


@pytest.fixture(scope="module")
def data():
    return random_prepared_data(n_train=80, x_dim=24, c_dim=20, attr_dim=6, seed=0)


def quiet(_msg):
    pass


# ------------------------------------------------------------------ divergence


def test_divergence_through_python_m(tmp_path, data):
    """Exploding losses (lr 1e10) stop the stage: exit 1, ``error: DRG training diverged: loss
    '<name>' is <nan|inf> in epoch <n>``, no traceback."""
    data.save(tmp_path / "prepared" / "prepared.npz")
    params = write_trainer_params(tmp_path / "params.yaml", drg=dict(epochs=4, lr=1e10, **TINY))
    proc = subprocess.run([sys.executable, "-m", "zerodiffpp.stages.train_drg", "--params",
                           str(params), "--prepared", str(tmp_path / "prepared"), "--out",
                           str(tmp_path / "drg"), "--history", str(tmp_path / "drg.csv")],
                          capture_output=True, text=True, cwd=REPO, timeout=180)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: DRG training diverged: loss '"), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "in epoch " in proc.stderr and "lower the learning rate drg.lr" in proc.stderr


def test_nan_features_diverge_dfg_stage(tmp_path, data, capsys):
    bad = dataclasses.replace(data, train_x=data.train_x.copy())
    bad.train_x[3, 2] = float("nan")
    bad.save(tmp_path / "prepared" / "prepared.npz")
    params = write_trainer_params(tmp_path / "params.yaml")
    with pytest.raises(SystemExit) as exit_:
        train_dfg.main(["--params", str(params), "--prepared", str(tmp_path / "prepared"),
                        "--out", str(tmp_path / "dfg"), "--history", str(tmp_path / "dfg.csv")])
    message = str(exit_.value.code)
    assert message.startswith("error: DFG training diverged: loss '")
    epoch = int(re.search(r"is nan in epoch (\d+) \(", message).group(1))
    resume = resume_path_for(tmp_path / "dfg" / "model.pt")
    assert not (tmp_path / "dfg" / "model.pt").exists()   # no output from a diverged run
    if epoch > 1:   # the diverged epoch is never saved: the checkpoint holds the one before
        assert load_checkpoint(resume)["meta"]["epochs_done"] == epoch - 1
    else:
        assert not resume.exists()


# ------------------------------------------------------------------ interruption


def test_sigterm_then_rerun_equals_uninterrupted_run(tmp_path):
    """``python -m zerodiffpp.stages.train_drg`` gets SIGTERM once its first checkpoint exists:
    exit 130 with ``interrupted after epoch N; rerun to resume``, the checkpoint on disk holds
    epoch N; the rerun resumes and ends bit-identical to an uninterrupted run (CPU, same seed)."""
    epochs = 25
    data = random_prepared_data(n_train=128, x_dim=32, c_dim=32, attr_dim=8, seed=0)
    data.save(tmp_path / "prepared" / "prepared.npz")
    drg = dict(epochs=epochs, batch_size=32, critic_steps=2, hidden_dim=32)
    params = write_trainer_params(tmp_path / "params.yaml", drg=drg)
    out, hist = tmp_path / "drg", tmp_path / "drg.csv"
    # Per-epoch checkpoints live beside the output dir (dvc repro deletes the output dir).
    resume = resume_path_for(out / "model.pt")
    args = ["--params", str(params), "--prepared", str(tmp_path / "prepared"), "--out", str(out),
            "--history", str(hist)]
    proc = subprocess.Popen([sys.executable, "-m", "zerodiffpp.stages.train_drg", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        deadline = time.monotonic() + 120
        while not resume.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stderr
    assert stderr.startswith("DRG training interrupted by SIGTERM after epoch "), stderr
    n = int(stderr.split("after epoch ")[1].split()[0])
    assert 1 <= n < epochs
    assert stderr.rstrip().endswith(f"of {epochs}; rerun to resume from {resume}")
    assert load_checkpoint(resume)["meta"]["epochs_done"] == n
    assert not out.exists()                                           # no half-finished output
    assert list(pd.read_csv(hist)["epoch"]) == list(range(1, n + 1))
    assert sorted(p.name for p in resume.parent.iterdir()) == ["model.pt"]   # no temp files left

    assert train_drg.main(args) == 0                                  # rerun: resume
    # the uninterrupted reference run, in-process (identical to the stage: tested below)
    straight = tmp_path / "straight"
    fit(DRGTrainer(PreparedData.load(tmp_path / "prepared" / "prepared.npz"), DRGConfig(**drg),
                   DIFF, seed=0, runtime=RUNTIME), epochs, straight / "model.pt",
        straight / "h.csv", log=quiet)
    assert_same_checkpoint(out / "model.pt", straight / "model.pt", hist, straight / "h.csv")
    assert not resume.parent.exists()                                 # cleaned up on success


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("during", ["epoch", "save"])
def test_signal_in_epoch_or_during_save(tmp_path, data, sig, during):
    """A signal during an epoch abandons it; one during the checkpoint write is held back until
    checkpoint + history are complete.  Either way the rerun matches a straight run."""
    cfg = DRGConfig(**TINY)
    trainer = DRGTrainer(data, cfg, DIFF, seed=2, runtime=RUNTIME)
    orig_epoch, orig_save = trainer.run_epoch, trainer.save

    def run_epoch(bar=None):
        if during == "epoch" and trainer.epoch == 2:
            os.kill(os.getpid(), sig)
        return orig_epoch(bar)

    def save(ckpt, hist):
        if during == "save" and trainer.epoch == 2:
            os.kill(os.getpid(), sig)
        return orig_save(ckpt, hist)

    trainer.run_epoch, trainer.save = run_epoch, save
    ckpt, hist = tmp_path / "model.pt", tmp_path / "h.csv"
    previous = signal.getsignal(sig)
    with pytest.raises(TrainingInterrupted) as err:
        fit(trainer, 5, ckpt, hist, log=quiet)
    assert signal.getsignal(sig) is previous                       # handlers restored
    assert err.value.epoch == 2
    assert str(err.value) == (f"DRG training interrupted by {sig.name} after epoch 2 of 5; "
                              f"rerun to resume from {ckpt}")
    assert load_checkpoint(ckpt)["meta"]["epochs_done"] == 2 and len(pd.read_csv(hist)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.csv", "model.pt"]
    messages = []
    fit(DRGTrainer(data, cfg, DIFF, seed=2, runtime=RUNTIME), 5, ckpt, hist, log=messages.append)
    assert messages == [f"DRG: {ckpt}: resuming after epoch 2"]
    fit(DRGTrainer(data, cfg, DIFF, seed=2, runtime=RUNTIME), 5, tmp_path / "s.pt",
        tmp_path / "s.csv", log=quiet)
    assert_same_checkpoint(ckpt, tmp_path / "s.pt", hist, tmp_path / "s.csv")


def test_interrupt_before_first_checkpoint(tmp_path, data):
    trainer = DRGTrainer(data, DRGConfig(**TINY), DIFF, seed=0, runtime=RUNTIME)

    def boom(bar=None):
        raise KeyboardInterrupt

    trainer.run_epoch = boom
    with pytest.raises(TrainingInterrupted, match=r"^DRG training interrupted in epoch 1, before "
                                                   r"any checkpoint was written; rerun to start again$"):
        fit(trainer, 3, tmp_path / "model.pt", tmp_path / "h.csv", log=quiet)
    assert list(tmp_path.iterdir()) == []


def test_stage_reports_interrupt_with_exit_130(tmp_path, data, capsys, monkeypatch):
    import zerodiffpp.trainloop as trainloop

    data.save(tmp_path / "prepared" / "prepared.npz")
    params = write_trainer_params(tmp_path / "params.yaml", dfg=dict(epochs=4, **TINY))
    real = trainloop.TrainLoop.run_epoch

    def run_epoch(self, bar=None):
        if self.epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, bar)

    monkeypatch.setattr(trainloop.TrainLoop, "run_epoch", run_epoch)
    args = ["--params", str(params), "--prepared", str(tmp_path / "prepared"), "--out",
            str(tmp_path / "dfg"), "--history", str(tmp_path / "dfg.csv")]
    assert train_dfg.main(args) == 130
    assert capsys.readouterr().err == (f"DFG training interrupted by SIGTERM after epoch 1 of 4; "
                                       f"rerun to resume from {resume_path_for(tmp_path / 'dfg' / 'model.pt')}\n")
    monkeypatch.setattr(trainloop.TrainLoop, "run_epoch", real)
    assert train_dfg.main(args) == 0
    assert "DFG: " in capsys.readouterr().out
    assert list(pd.read_csv(tmp_path / "dfg.csv")["epoch"]) == [1, 2, 3, 4]


# ------------------------------------------------------------------ stale checkpoints


def _stale(kind, data, ckpt):
    """Write a checkpoint at ``ckpt`` that must NOT be resumed by DRG(TINY, seed 0, 3 epochs)."""
    if kind == "corrupt":
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        ckpt.write_bytes(b"PK\x03\x04 truncated")
        return "cannot load checkpoint, truncated or corrupt?"
    if kind == "not-a-dict":
        save_checkpoint(ckpt, [1, 2, 3])
        return "no meta in checkpoint"
    cfg, seed, d, epochs = DRGConfig(**TINY), 0, data, 2
    if kind == "other-config":
        cfg = dataclasses.replace(cfg, gp_weight=5.0)
    elif kind == "other-seed":
        seed = 1
    elif kind == "other-data":
        d = random_prepared_data(n_train=80, x_dim=24, c_dim=20, attr_dim=6, seed=9)
    elif kind == "more-epochs":
        epochs = 4
    trainer = DRGTrainer(d, cfg, DIFF, seed=seed, runtime=RUNTIME)
    fit(trainer, epochs, ckpt, ckpt.with_suffix(".csv"), log=quiet)
    if kind == "other-code":
        state = load_checkpoint(ckpt)
        state["meta"]["code_version"] = "0123456789abcdef"
        save_checkpoint(ckpt, state)
        return "configuration differs (code_version)"
    if kind == "broken-weights":
        state = load_checkpoint(ckpt)
        state["models"][next(iter(state["models"]))] = {"nonsense": torch.zeros(3)}
        save_checkpoint(ckpt, state)
        return "cannot restore it (RuntimeError: Error(s) in loading state_dict"
    return {"other-config": "configuration differs (cfg_gp_weight)",
            "other-seed": "configuration differs (seed)",
            "other-data": "configuration differs (data_fingerprint)",
            "more-epochs": "checkpoint has 4 epochs, more than the 3 asked for"}[kind]


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory, data):
    """DRG(TINY, seed 0) trained 3 epochs from scratch: (checkpoint, history CSV)."""
    folder = tmp_path_factory.mktemp("fresh")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fit(DRGTrainer(data, DRGConfig(**TINY), DIFF, seed=0, runtime=RUNTIME), 3,
            folder / "model.pt", folder / "h.csv", log=quiet)
    finally:
        torch.set_num_threads(before)
    return folder / "model.pt", folder / "h.csv"


@pytest.mark.parametrize("kind", ["corrupt", "not-a-dict", "other-config", "other-seed",
                                  "other-data", "other-code", "more-epochs", "broken-weights"])
def test_stale_checkpoint_is_ignored(tmp_path, data, fresh_run, kind):
    ckpt = tmp_path / "run" / "model.pt"
    why = _stale(kind, data, ckpt)
    messages = []
    fit(DRGTrainer(data, DRGConfig(**TINY), DIFF, seed=0, runtime=RUNTIME), 3, ckpt,
        tmp_path / "run" / "h.csv", log=messages.append)
    assert len(messages) == 1 and messages[0].startswith(f"DRG: not resuming {ckpt}: ")
    assert why in messages[0] and messages[0].endswith("; training from scratch")
    assert "\n" not in messages[0]
    assert_same_checkpoint(ckpt, fresh_run[0], tmp_path / "run" / "h.csv", fresh_run[1])


def test_stage_matches_library_run(tmp_path, data, capsys):
    """The stage entry point and ``fit`` give the same checkpoint (used as the reference above),
    and an unchanged rerun of the stage (finished runs leave no resume state) retrains to the
    same bytes."""
    data.save(tmp_path / "prepared" / "prepared.npz")
    params = write_trainer_params(tmp_path / "params.yaml")
    args = ["--params", str(params), "--prepared", str(tmp_path / "prepared"), "--out",
            str(tmp_path / "drg"), "--history", str(tmp_path / "drg.csv")]
    assert train_drg.main(args) == 0
    fit(DRGTrainer(data, DRGConfig(epochs=2, **TINY), DIFF, seed=0, runtime=RUNTIME), 2,
        tmp_path / "lib.pt", tmp_path / "lib.csv", log=quiet)
    assert_same_checkpoint(tmp_path / "drg" / "model.pt", tmp_path / "lib.pt",
                           tmp_path / "drg.csv", tmp_path / "lib.csv")
    assert not resume_path_for(tmp_path / "drg" / "model.pt").parent.exists()
    capsys.readouterr()
    assert train_drg.main(args) == 0
    assert "resuming" not in capsys.readouterr().out
    assert_same_checkpoint(tmp_path / "drg" / "model.pt", tmp_path / "lib.pt")
