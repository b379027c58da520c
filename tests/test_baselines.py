"""f-CLSWGAN / f-VAEGAN baselines: shapes, determinism, NaN detection, that they learn on
separable data, checkpoints, resume (library and stage) and the ``baseline`` stage."""
from __future__ import annotations

import dataclasses
import json
import os
import signal

import numpy as np
import pytest
import torch
import yaml

from conftest import assert_same_state
from zerodiffpp.baselines import BASELINES, FCLSWGAN, get_baseline
from zerodiffpp.config import BaselinesConfig, EvalConfig
from zerodiffpp.data.prepared import PreparedData
from zerodiffpp.evaluation import evaluate_protocols
from zerodiffpp.io import DataError, load_checkpoint, read_npz, save_checkpoint
from zerodiffpp.stages import baseline as baseline_stage
from zerodiffpp.baselines.base import BaselineTrainer, load_baseline
from zerodiffpp.trainloop import TrainingDivergedError, fit, resume_path_for

METHODS = sorted(BASELINES)
# Tiny and fast; the high learning rate makes a few epochs enough on the separable data.
TINY = BaselinesConfig(epochs=2, batch_size=32, critic_steps=2, hidden_dim=32, lr=1e-2,
                       cls_weight=10.0)


def separable_data(seed: int = 0, n_seen: int = 10, n_unseen: int = 3, per_class: int = 20,
                   n_test: int = 20, x_dim: int = 16, attr_dim: int = 4,
                   noise: float = 0.05) -> PreparedData:
    """Class means are a linear function of the class embedding (so unseen classes are
    predictable from their attributes), features in [0, 1], small within-class noise."""
    rng = np.random.default_rng(seed)
    n_classes = n_seen + n_unseen
    emb = rng.random((n_classes, attr_dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    means = emb @ rng.normal(size=(attr_dim, x_dim))
    means = 0.1 + 0.8 * (means - means.min(0)) / (means.max(0) - means.min(0))
    seen, unseen = np.arange(n_seen), np.arange(n_seen, n_classes)

    def split(classes, n):
        y = np.repeat(classes, n).astype(np.int64)
        x = np.clip(means[y] + noise * rng.normal(size=(len(y), x_dim)), 0.0, 1.0).astype(np.float32)
        return x, np.zeros((len(y), 2), np.float32), y

    tr, ts, tu = split(seen, per_class), split(seen, n_test), split(unseen, n_test)
    return PreparedData(*tr, *ts, *tu, class_emb=emb, seen_classes=seen, unseen_classes=unseen,
                        train_subset=np.arange(1, len(tr[2]) + 1, dtype=np.int64))


@pytest.fixture(autouse=True)
def fast_and_single_threaded(monkeypatch):
    # f-CLSWGAN's fixed classifier schedule (lr 1e-3) is too gentle for 200 training samples.
    monkeypatch.setattr(FCLSWGAN, "pretrain_lr", 0.05)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)         # tiny networks: a second thread only adds overhead
    yield
    torch.set_num_threads(threads)


def train(method: str, data: PreparedData, seed: int = 0, **overrides):
    trainer = get_baseline(method)(data, dataclasses.replace(TINY, **overrides), seed=seed)
    trainer.prepare_once(data)
    trainer.train()
    return trainer


def generated(trainer, classes, n=30, seed=0):
    return trainer.generate(classes, n, torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- trainers


@pytest.mark.parametrize("method", METHODS)
def test_shapes_history_and_range(method):
    data = separable_data()
    trainer = train(method, data)
    x, y = generated(trainer, data.unseen_classes, n=7)
    assert x.shape == (3 * 7, data.x_dim) and x.dtype == np.float32
    assert y.dtype == np.int64 and y.tolist() == np.repeat(data.unseen_classes, 7).tolist()
    assert np.all((x >= 0) & (x <= 1))               # sigmoid output, like the scaled features
    history = trainer.history_frame()
    assert list(history["epoch"]) == [1, 2]
    assert {"loss_D", "W", "gp", "loss_G", "loss_G_adv"} <= set(history.columns)
    assert {"fclswgan": {"loss_cls"}, "fvaegan": {"bce", "kl"}}[method] <= set(history.columns)
    assert np.isfinite(history.drop(columns="epoch").to_numpy()).all()
    assert trainer.iters_per_epoch == 200 // 32 + 1


@pytest.mark.parametrize("method", METHODS)
def test_same_seed_same_features_other_seed_differs(method):
    data = separable_data()
    a, b, c = (train(method, data, seed=s, epochs=1) for s in (0, 0, 1))
    xa, xb, xc = (generated(t, data.unseen_classes)[0] for t in (a, b, c))
    assert np.array_equal(xa, xb)
    assert not np.allclose(xa, xc)


@pytest.mark.parametrize("method", METHODS)
def test_non_finite_loss_names_method_epoch_and_loss(method):
    data = separable_data()
    data.train_x[:] = np.nan
    with pytest.raises(TrainingDivergedError) as err:
        train(method, data, epochs=1)
    msg = str(err.value)
    assert method in msg and "epoch 1" in msg and "loss 'loss_D'" in msg


@pytest.mark.parametrize("method", METHODS)
def test_generated_unseen_features_give_above_chance_zsl(method):
    data = separable_data(seed=1)
    trainer = train(method, data, epochs=10)
    x, y = generated(trainer, data.unseen_classes)
    as_t = torch.as_tensor
    result = evaluate_protocols(
        as_t(data.train_x), data.train_y, as_t(x), y, as_t(data.test_seen_x), data.test_seen_y,
        as_t(data.test_unseen_x), data.test_unseen_y, data.seen_classes, data.unseen_classes,
        EvalConfig(classifier_epochs=20, classifier_batch=32, classifier_lr=1e-2),
        torch.Generator().manual_seed(0), variant="V")
    assert result.zsl_t1 >= 0.7, result.scores()     # chance: 1/3


def test_fclswgan_classification_loss_makes_seen_features_classifiable():
    data = separable_data()
    accuracy = {}
    for weight in (0.0, 10.0):
        trainer = train("fclswgan", data, epochs=8, cls_weight=weight)
        x, y = generated(trainer, data.seen_classes)
        with torch.no_grad():
            pred = trainer.classifier(torch.as_tensor(x)).argmax(1).numpy()
        accuracy[weight] = float((data.seen_classes[pred] == y).mean())
    assert accuracy[10.0] > 0.5 and accuracy[10.0] > accuracy[0.0] + 0.3, accuracy   # chance 0.1


@pytest.mark.parametrize("method", METHODS)
def test_checkpoint_round_trip(method, tmp_path):
    data = separable_data()
    trainer = train(method, data, epochs=1)
    save_checkpoint(tmp_path / "model.pt", trainer.state_dict())
    state = load_checkpoint(tmp_path / "model.pt")          # weights_only=True
    assert state["meta"]["method"] == method and state["meta"]["epochs_done"] == 1
    again = load_baseline(tmp_path / "model.pt", data)
    assert np.array_equal(generated(trainer, data.unseen_classes)[0],
                          generated(again, data.unseen_classes)[0])
    with pytest.raises(DataError, match="different prepared data"):
        load_baseline(tmp_path / "model.pt", separable_data(seed=5))


@pytest.mark.parametrize("method", METHODS)
def test_resume_equals_straight_run(method, tmp_path):
    """1 epoch, checkpoint, a new process-like trainer resumes to 3: identical to 3 straight."""
    data = separable_data()
    cfg = dataclasses.replace(TINY, epochs=3)
    ckpt, hist = tmp_path / "model.pt", tmp_path / "hist.csv"
    first = get_baseline(method)(data, cfg, seed=4)
    first.prepare_once(data)
    fit(first, 1, ckpt, hist, log=lambda *_: None)
    logs = []
    resumed = get_baseline(method)(data, cfg, seed=4)
    resumed.prepare_once(data)
    fit(resumed, 3, ckpt, hist, log=logs.append)
    assert logs == [f"{resumed.stage}: {ckpt}: resuming after epoch 1"]
    straight = train(method, data, seed=4, epochs=3)
    assert_same_state(resumed.state_dict(), straight.state_dict())
    assert np.array_equal(generated(resumed, data.unseen_classes)[0],
                          generated(straight, data.unseen_classes)[0])


@pytest.mark.parametrize("change, reason", [
    ({"seed": 5}, "seed"), ({"lr": 1e-3}, "cfg_lr"), ({"critic_steps": 3}, "cfg_critic_steps")])
def test_stale_baseline_checkpoint_is_ignored(tmp_path, change, reason):
    data = separable_data()
    ckpt, hist = tmp_path / "model.pt", tmp_path / "hist.csv"
    change = dict(change)
    seed = change.pop("seed", 0)
    old = get_baseline("fvaegan")(data, dataclasses.replace(TINY, epochs=1, **change), seed=seed)
    old.prepare_once(data)
    fit(old, 1, ckpt, hist, log=lambda *_: None)
    logs = []
    fresh = get_baseline("fvaegan")(data, dataclasses.replace(TINY, epochs=2), seed=0)
    fresh.prepare_once(data)
    fit(fresh, 2, ckpt, hist, log=logs.append)
    assert len(logs) == 1 and "not resuming" in logs[0] and reason in logs[0], logs
    assert_same_state(fresh.state_dict(), train("fvaegan", data, seed=0, epochs=2).state_dict())


def test_train_needs_prepare():
    trainer = get_baseline("fclswgan")(separable_data(), TINY, seed=0)
    with pytest.raises(RuntimeError, match="prepare_once"):
        trainer.train()


# --------------------------------------------------------------------------- stage


def write_inputs(tmp_path):
    separable_data().save(tmp_path / "prepared" / "prepared.npz")
    params = {"runtime": {"threads": 1, "progress": False, "device": "cpu"},
              "baselines": {**dataclasses.asdict(TINY), "epochs": 1},
              "eval": {"syn_per_class": 10, "classifier_epochs": 2, "selection": "fixed"},
              "spurious": {"syn_per_class": 4}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))


def stage_args(tmp_path, method):
    return ["--method", method, "--params", str(tmp_path / "params.yaml"),
            "--prepared", str(tmp_path / "prepared"), "--out", str(tmp_path / "out"),
            "--metrics", str(tmp_path / "metrics.json"), "--history", str(tmp_path / "hist.csv")]


def test_stage_writes_model_generated_features_and_metrics(tmp_path):
    write_inputs(tmp_path)
    assert baseline_stage.main(stage_args(tmp_path, "fvaegan")) == 0
    gen = read_npz(tmp_path / "out" / "generated.npz")
    assert sorted(gen) == ["seen_x", "seen_y", "unseen_x", "unseen_y"]
    assert gen["seen_x"].shape == (10 * 4, 16) and gen["seen_x"].dtype == np.float32
    assert gen["unseen_y"].tolist() == np.repeat([10, 11, 12], 4).tolist()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) == {"fvaegan"}
    assert set(metrics["fvaegan"]["zsl"]) == {"t1"}
    assert set(metrics["fvaegan"]["gzsl"]) == {"u", "s", "h"}
    assert load_checkpoint(tmp_path / "out" / "model.pt")["meta"]["method"] == "fvaegan"
    assert (tmp_path / "out" / "per_class.csv").exists() and (tmp_path / "hist.csv").exists()


@pytest.mark.parametrize("method, fragment", [("fgan", "unknown baseline")])
def test_stage_rejects_method(tmp_path, capsys, method, fragment):
    write_inputs(tmp_path)
    assert baseline_stage.main(stage_args(tmp_path, method)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and fragment in err and method in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("method", METHODS)
def test_interrupted_stage_resumes(tmp_path, capsys, monkeypatch, method):
    """SIGTERM in epoch 2 of 3: exit 130, the message names the resume checkpoint, no output
    directory; the rerun resumes and writes the metrics of an uninterrupted stage run."""
    write_inputs(tmp_path)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["baselines"]["epochs"] = 3
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    resume = resume_path_for(tmp_path / "out" / "model.pt")
    real = BaselineTrainer.run_epoch

    def run_epoch(self, bar=None):
        if self.epoch == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(self, bar)

    monkeypatch.setattr(BaselineTrainer, "run_epoch", run_epoch)
    assert baseline_stage.main(stage_args(tmp_path, method)) == 130
    stage = get_baseline(method).stage
    assert capsys.readouterr().err == (f"{stage} training interrupted by SIGTERM after epoch 1 "
                                       f"of 3; rerun to resume from {resume}\n")
    assert not (tmp_path / "out").exists() and resume.exists()
    monkeypatch.setattr(BaselineTrainer, "run_epoch", real)
    assert baseline_stage.main(stage_args(tmp_path, method)) == 0
    assert f"{stage}: {resume}: resuming after epoch 1" in capsys.readouterr().out
    assert not resume.parent.exists()
    resumed = (tmp_path / "metrics.json").read_text()
    assert load_checkpoint(tmp_path / "out" / "model.pt")["meta"]["epochs_done"] == 3

    straight = tmp_path / "straight"
    straight.mkdir()
    for name in ("prepared", "params.yaml"):
        os.symlink(tmp_path / name, straight / name)
    assert baseline_stage.main(stage_args(straight, method)) == 0
    assert "resuming" not in capsys.readouterr().out
    assert (straight / "metrics.json").read_text() == resumed
