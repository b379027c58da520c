"""DRG/DFG training loops: determinism, NaN detection, checkpoints and resume, ablations, bf16,
and a tiny end-to-end DRG -> DFG -> generate run through the stage entry points."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import TINY_TRAINER, assert_same_state, write_trainer_params
from zerodiffpp.config import DFGConfig, DiffusionConfig, DRGConfig, RuntimeConfig
from zerodiffpp.io import load_checkpoint
from zerodiffpp.synthesis import generate, load_models, reverse_chain
from zerodiffpp.train_dfg import DFGTrainer
from zerodiffpp.train_drg import DRGTrainer
from zerodiffpp.trainloop import TrainingDivergedError, WeightAverage, fit, random_prepared_data

TINY = TINY_TRAINER
DIFF = DiffusionConfig()


@pytest.fixture(scope="module")
def data():
    return random_prepared_data(n_train=80, x_dim=24, c_dim=20, attr_dim=6, seed=0)


def weights(trainer):
    return {f"{n}.{k}": v.clone() for n, net in trainer.nets.items() for k, v in net.state_dict().items()}


def assert_same_run(a, b):
    """Same weights, optimiser and RNG states, meta and history (conftest.assert_same_state)."""
    assert_same_state(a.state_dict(), b.state_dict())
    ha, hb = (a.history_frame().drop(columns="seconds"), b.history_frame().drop(columns="seconds"))
    pd.testing.assert_frame_equal(ha, hb, check_exact=True)


@pytest.mark.parametrize("cls, cfg", [(DRGTrainer, DRGConfig(**TINY)), (DFGTrainer, DFGConfig(**TINY))])
def test_epoch_structure_and_determinism(data, cls, cfg):
    a = cls(data, cfg, DIFF, seed=3)
    b = cls(data, cfg, DIFF, seed=3)
    assert a.iters_per_epoch == 3                 # ceil(80 / 32)
    a.train(2)
    b.train(2)
    assert_same_run(a, b)
    row = a.history[-1]
    assert row["epoch"] == 2 and all(np.isfinite(v) for v in row.values())
    expected = {"loss_D", "loss_G", "gp", "lambda", "seconds", "loss_dec"}
    expected |= {"W_r0", "W_rt"} if cls is DRGTrainer else {"W_x0", "W_xt", "W_xc", "loss_ml", "loss_vae"}
    assert expected <= set(row)
    c = cls(data, cfg, DIFF, seed=4)
    c.train(1)
    assert not torch.equal(weights(c)[next(iter(weights(c)))], weights(a)[next(iter(weights(a)))])


def test_dfg_adaptive_lambda_moves_drg_lambda_fixed(data):
    dfg = DFGTrainer(data, DFGConfig(**TINY), DIFF, seed=0)
    dfg.train(1)
    assert dfg.history[-1]["lambda"] != 10.0
    fixed = DFGTrainer(data, DFGConfig(**TINY, adaptive_gp=False), DIFF, seed=0)
    fixed.train(1)
    assert fixed.history[-1]["lambda"] == 10.0
    drg = DRGTrainer(data, DRGConfig(**TINY), DIFF, seed=0)
    drg.train(1)
    assert drg.history[-1]["lambda"] == 10.0


def test_nan_in_data_is_reported(data):
    bad = dataclasses.replace(data, train_x=data.train_x.copy())
    bad.train_x[5, 3] = np.nan
    trainer = DFGTrainer(bad, DFGConfig(**TINY), DIFF, seed=0)
    with pytest.raises(TrainingDivergedError, match=r"DFG .*loss '\w+' is nan in epoch 1"):
        trainer.run_epoch()


def test_huge_learning_rate_is_reported(data):
    trainer = DRGTrainer(data, DRGConfig(**TINY, lr=1e10), DIFF, seed=0)
    with pytest.raises(TrainingDivergedError, match=r"DRG training diverged: loss '\w+' is (nan|inf|-inf) in epoch \d"):
        trainer.train(5)


@pytest.mark.parametrize("cls, cfg", [(DRGTrainer, DRGConfig(**TINY)),
                                      (DFGTrainer, DFGConfig(**TINY, freeze_dec=False)),
                                      (DRGTrainer, DRGConfig(**TINY, ema_decay=0.9)),
                                      (DFGTrainer, DFGConfig(**TINY, ema_decay=0.9))])
def test_resume_equals_straight_run(tmp_path, data, cls, cfg):
    ckpt, hist = tmp_path / "model.pt", tmp_path / "history.csv"
    first = fit(cls(data, cfg, DIFF, seed=1), 2, ckpt, hist, log=lambda m: None)
    assert first.epoch == 2 and len(pd.read_csv(hist)) == 2
    messages = []
    resumed = fit(cls(data, cfg, DIFF, seed=1), 4, ckpt, hist, log=messages.append)
    assert "resuming after epoch 2" in messages[0]
    straight = cls(data, cfg, DIFF, seed=1)
    straight.train(4)
    assert_same_run(resumed, straight)
    assert list(pd.read_csv(hist)["epoch"]) == [1, 2, 3, 4]
    # a different configuration is not resumed
    other = dataclasses.replace(cfg, lr=cfg.lr * 2)
    messages.clear()
    fit(cls(data, other, DIFF, seed=1), 1, tmp_path / "model.pt", hist, log=messages.append)
    assert "configuration differs (cfg_lr)" in messages[0]


def test_checkpoint_is_weights_only_with_plain_meta(tmp_path, data):
    trainer = DFGTrainer(data, DFGConfig(**TINY), DIFF, seed=0)
    fit(trainer, 1, tmp_path / "model.pt", tmp_path / "h.csv", log=lambda m: None)
    ckpt = torch.load(tmp_path / "model.pt", weights_only=True)
    assert set(ckpt) == {"meta", "models", "optimizers", "state", "history"}
    plain = (int, float, str, bool)

    def is_plain(v):   # a *_by_fraction table (float -> int) is plain data too
        return type(v) in plain or (type(v) is dict and all(
            type(k) in plain and type(x) in plain for k, x in v.items()))

    assert all(is_plain(v) for v in ckpt["meta"].values())
    assert ckpt["meta"]["cfg_epochs_by_fraction"] == {}
    meta = ckpt["meta"]
    assert (meta["stage"], meta["x_dim"], meta["c_dim"], meta["attr_dim"], meta["hidden"],
            meta["epochs_done"], meta["cfg_use_sc"]) == ("DFG", 24, 20, 6, 16, 1, True)
    assert set(ckpt["models"]) == {"E", "G", "D_x0", "D_xt", "D_xc", "Dec"}
    assert ckpt["state"]["generator"].dtype == torch.uint8


@pytest.mark.parametrize("change", [dict(use_sc=False), dict(diffusion_aug=False), dict(gamma_dist=0.0)])
def test_dfg_ablations_train(tmp_path, data, change):
    trainer = DFGTrainer(data, DFGConfig(**TINY, **change), DIFF, seed=0)
    trainer.train(1)
    row = trainer.history[-1]
    assert all(np.isfinite(v) for v in row.values())
    if change.get("use_sc") is False:
        assert "D_xc" not in trainer.nets and "W_xc" not in row
    if change.get("gamma_dist") == 0.0:
        assert row["loss_ml"] == 0.0


def test_bf16_autocast_runs(data):
    runtime = RuntimeConfig(device="cpu", precision="bf16", progress=False)
    for cls, cfg in [(DRGTrainer, DRGConfig(**TINY)), (DFGTrainer, DFGConfig(**TINY))]:
        trainer = cls(data, cfg, DIFF, seed=0, runtime=runtime)
        trainer.iters_per_epoch = 1
        row = trainer.run_epoch()
        assert all(np.isfinite(v) for v in row.values())


def test_end_to_end_stages_and_generate(tmp_path, data):
    from zerodiffpp.stages import train_dfg, train_drg

    # test arrays are poisoned: training must never read them (METHOD.md 8 item 2)
    poisoned = dataclasses.replace(
        data, test_seen_x=np.full_like(data.test_seen_x, np.nan),
        test_seen_c=np.full_like(data.test_seen_c, np.nan),
        test_unseen_x=np.full_like(data.test_unseen_x, np.nan),
        test_unseen_c=np.full_like(data.test_unseen_c, np.nan))
    poisoned.save(tmp_path / "prepared" / "prepared.npz")
    write_trainer_params(tmp_path / "params.yaml")
    common = ["--params", str(tmp_path / "params.yaml"), "--prepared", str(tmp_path / "prepared")]
    assert train_drg.main(common + ["--out", str(tmp_path / "drg"),
                                    "--history", str(tmp_path / "plots/drg.csv")]) == 0
    assert train_dfg.main(common + ["--out", str(tmp_path / "dfg"),
                                    "--history", str(tmp_path / "plots/dfg.csv")]) == 0
    hist = pd.read_csv(tmp_path / "plots/dfg.csv")
    assert list(hist["epoch"]) == [1, 2] and hist.columns[0] == "epoch"
    assert load_checkpoint(tmp_path / "drg" / "model.pt")["meta"]["epochs_done"] == 2

    models = load_models(tmp_path / "drg", tmp_path / "dfg", "cpu")
    assert not models.G.training and models.D_xc is not None
    emb = torch.as_tensor(data.class_emb)
    for mode in ("one_step", "progressive"):
        g = torch.Generator().manual_seed(0)
        x, c, y = generate(models, emb, data.unseen_classes, 7, mode, g, chunk_size=5)
        assert x.shape == (21, 24) and c.shape == (21, 20) and y.tolist() == sorted(y.tolist())
        assert set(y.tolist()) == set(data.unseen_classes.tolist())
        assert torch.all((x > 0) & (x < 1)) and torch.isfinite(c).all()
        x2, _, _ = generate(models, emb, data.unseen_classes, 7, mode, torch.Generator().manual_seed(0),
                            chunk_size=5)
        assert torch.equal(x, x2)
    # reverse_chain from an intermediate level
    z, a = torch.randn(3, 6), emb[:3]
    out = reverse_chain(models, z, a, torch.rand(3, 20), torch.rand(3, 24), 2, "progressive",
                        torch.Generator().manual_seed(0))
    assert out.shape == (3, 24)

    # rerunning with more epochs resumes; a bad config is a clean error
    write_trainer_params(tmp_path / "params.yaml", drg=dict(epochs=3, **TINY))
    assert train_drg.main(common + ["--out", str(tmp_path / "drg"),
                                    "--history", str(tmp_path / "plots/drg.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "plots/drg.csv")) == 3
    write_trainer_params(tmp_path / "params.yaml", drg=dict(epochs=0, **TINY))
    assert train_drg.main(common + ["--out", str(tmp_path / "drg")]) == 2


def test_weight_average_follows_the_warmed_up_decay():
    """shadow <- shadow + r (w - shadow), r = 1 - min(decay, (1 + n) / (10 + n)) at update n."""
    net = torch.nn.Linear(3, 2)
    avg = WeightAverage(net, decay=0.5)
    start = [p.detach().clone() for p in net.parameters()]
    expected = [p.clone() for p in start]
    for n in (1, 2, 3, 4):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)
        rate = 1.0 - min(0.5, (1.0 + n) / (10.0 + n))
        assert avg.rate() == pytest.approx(rate)
        avg.update(net)
        expected = [e + rate * (p.detach() - e) for e, p in zip(expected, net.parameters())]
    assert avg.updates == 4
    for e, s in zip(expected, avg.shadow.parameters()):
        torch.testing.assert_close(s, e, rtol=0, atol=1e-6)
        assert not s.requires_grad
    # the network itself is untouched by the average
    for p, p0 in zip(net.parameters(), start):
        torch.testing.assert_close(p.detach(), p0 + 4.0)
    restored = WeightAverage(net, decay=0.5)
    restored.load_state_dict(avg.state_dict())
    assert restored.updates == 4 and restored.rate() == avg.rate()
    with pytest.raises(ValueError, match="decay=1.0"):
        WeightAverage(net, decay=1.0)


@pytest.mark.parametrize("cls, cfg_cls, name", [(DRGTrainer, DRGConfig, "R"), (DFGTrainer, DFGConfig, "G")])
def test_ema_decay_averages_only_the_generator_and_synthesis_uses_it(tmp_path, data, cls, cfg_cls, name):
    plain = cls(data, cfg_cls(**TINY), DIFF, seed=2)
    plain.train(2)
    assert "averaged" not in plain.state_dict()          # ema_decay 0: checkpoint as before
    averaged = cls(data, cfg_cls(**TINY, ema_decay=0.9), DIFF, seed=2)
    averaged.train(2)
    # the average only watches: the training trajectory is the same
    assert_same_state({**plain.state_dict(), "meta": {}}, {**averaged.state_dict(), "meta": {},
                                                          "averaged": {}})
    state = averaged.state_dict()
    assert set(state["averaged"]) == {name}
    assert state["averaged"][name]["updates"] == 2 * averaged.iters_per_epoch
    shadow, last = state["averaged"][name]["weights"], state["models"][name]
    assert shadow.keys() == last.keys()
    assert any(not torch.equal(shadow[k], last[k]) for k in shadow)


def test_load_models_returns_the_averaged_generators(tmp_path, data):
    drg = fit(DRGTrainer(data, DRGConfig(**TINY, ema_decay=0.9), DIFF, seed=0), 1,
              tmp_path / "drg" / "model.pt", tmp_path / "drg.csv", log=lambda m: None)
    dfg = fit(DFGTrainer(data, DFGConfig(**TINY, ema_decay=0.9), DIFF, seed=0), 1,
              tmp_path / "dfg" / "model.pt", tmp_path / "dfg.csv", log=lambda m: None)
    ckpt = torch.load(tmp_path / "dfg" / "model.pt", weights_only=True)
    assert set(ckpt["averaged"]) == {"G"}
    models = load_models(tmp_path / "drg", tmp_path / "dfg", "cpu")
    for net, trainer, name in ((models.R, drg, "R"), (models.G, dfg, "G")):
        for key, value in net.state_dict().items():
            assert torch.equal(value, trainer.averages[name].shadow.state_dict()[key]), key
    # the other networks are the trained ones
    for key, value in models.D_x0.state_dict().items():
        assert torch.equal(value, dfg.nets["D_x0"].state_dict()[key])
