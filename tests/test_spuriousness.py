"""Spuriousness metrics (METHOD.md 6.2, docs/spuriousness.md): every formula on hand-made inputs,
ZeroDiff's delta_adv from a trained D_x0, the stage's I/O contract and its bad-input errors.
The controlled-data validation is in tests/test_spuriousness_validation.py."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml

from zerodiffpp.config import DFGConfig, DiffusionConfig, RuntimeConfig, SyntheticConfig
from zerodiffpp.data import synthetic
from zerodiffpp.io import DataError, write_npz
from zerodiffpp.preprocess import prepare
from zerodiffpp.spurious import companions as comp
from zerodiffpp.spurious import critic, distances as dist
from zerodiffpp.spurious import metrics as spm
from zerodiffpp.stages import spuriousness as stage


# --------------------------------------------------------------------------- set distances


def test_nn_cost_and_distances():
    q = np.array([[0.0, 0.0], [3.0, 0.0]])
    r = np.array([[0.0, 1.0], [3.0, 2.0], [9.0, 9.0]])
    assert dist.nn_distances(q, r).tolist() == [1.0, 2.0]
    assert dist.nn_cost(q, r) == 1.5
    with pytest.raises(ValueError, match="empty set"):
        dist.nn_cost(q[:0], r)


def test_energy_distance_unbiased_hand_made():
    x, y = np.array([[0.0], [2.0]]), np.array([[10.0], [12.0]])
    # cross: 10, 12, 8, 10 -> mean 10; within (i != j): 2 and 2
    assert dist.mean_cross(x, y) == 10.0 and dist.mean_within(x) == 2.0
    assert dist.energy_distance(x, y) == 2 * 10.0 - 2.0 - 2.0
    # Identical two-point sets: the unbiased estimate is below 0 (-2), not 0.
    assert dist.energy_distance(x, x) == 2 * 1.0 - 2.0 - 2.0
    with pytest.raises(ValueError, match="1 row"):
        dist.mean_within(x[:1])


def test_energy_distance_is_unbiased_for_unequal_sizes():
    """Same distribution, sizes 5 and 200: the mean over many draws is ~0 (a V-statistic would
    be biased upwards by about m/5 + m/200)."""
    rng = np.random.default_rng(0)
    vals = [dist.energy_distance(rng.normal(size=(5, 3)), rng.normal(size=(200, 3)))
            for _ in range(400)]
    spread = dist.mean_within(rng.normal(size=(500, 3)))
    assert abs(np.mean(vals)) < 0.02 * spread
    assert abs(np.mean(vals)) < 3 * np.std(vals) / math.sqrt(len(vals))


# --------------------------------------------------------------------------- s_seen


def _two_points(x0):
    return np.array([[x0, 0.0], [x0, 1.0]])


def test_seen_gap_hand_made():
    t, s = _two_points(-1.0), _two_points(1.0)
    y = np.zeros(2, dtype=np.int64)
    # Generated features halfway: no preference for training samples.
    r = spm.seen_gap(t, y, s, y, _two_points(0.0), y, [0], seed=0)
    assert (r.s_seen, r.cost_train, r.cost_test, r.set_size) == (0.0, 1.0, 1.0, {0: 2})
    # Closer to train (0.5 vs 1.5): 1 - 0.5 / 1.5.
    assert spm.seen_gap(t, y, s, y, _two_points(-0.5), y, [0], seed=0).s_seen == \
        pytest.approx(2 / 3, rel=1e-12)
    # Copies of the training samples: 1.  Beyond the test-seen samples (2.5 vs 0.5): 1 - 5 < 0.
    assert spm.seen_gap(t, y, s, y, t, y, [0], seed=0).s_seen == 1.0
    assert spm.seen_gap(t, y, s, y, _two_points(1.5), y, [0], seed=0).s_seen == \
        pytest.approx(1 - 2.5 / 0.5)


def test_seen_gap_equal_size_subsamples_and_macro_mean():
    rng = np.random.default_rng(0)
    tx, ty = rng.normal(size=(20, 3)), np.repeat([0, 1], 10)
    sx, sy = rng.normal(size=(7, 3)), np.array([0, 0, 0, 1, 1, 1, 1])
    gx, gy = rng.normal(size=(30, 3)), np.repeat([0, 1], 15)
    r = spm.seen_gap(tx, ty, sx, sy, gx, gy, [0, 1], seed=3, repeats=4)
    assert r.set_size == {0: 3, 1: 4}                                   # min(|T_y|, |S_y|)
    assert r.s_seen == pytest.approx(np.mean([r.per_class[0], r.per_class[1]]))
    # A class's number depends only on its own data and the seed (per-class RNG).
    alone = spm.seen_gap(tx, ty, sx, sy, gx, gy, [1], seed=3, repeats=4)
    assert alone.per_class[1] == r.per_class[1]
    again = spm.seen_gap(tx, ty, sx, sy, gx, gy, [0, 1], seed=3, repeats=4)
    assert again == r
    assert spm.seen_gap(tx, ty, sx, sy, gx, gy, [0, 1], seed=4, repeats=4) != r


def test_seen_gap_skips_small_classes_and_rejects_bad_inputs():
    t, y2 = np.vstack([_two_points(-1.0), _two_points(5.0)]), np.array([0, 0, 1, 1])
    s, sy = np.vstack([_two_points(1.0), [[5.0, 0.0]]]), np.array([0, 0, 1])  # class 1: 1 sample
    g = np.vstack([_two_points(0.0), _two_points(5.0)])
    r = spm.seen_gap(t, y2, s, sy, g, y2, [0, 1], seed=0)
    assert r.skipped == [1] and list(r.per_class) == [0] and r.s_seen == 0.0
    with pytest.raises(spm.InsufficientData, match="no seen class has >= 2"):
        spm.seen_gap(t, y2, s, sy, g, y2, [1], seed=0)
    bad = g.copy()
    bad[1, 0] = np.nan
    with pytest.raises(ValueError, match=r"generated seen features: 1 row\(s\) with NaN/Inf"):
        spm.seen_gap(t, y2, s, sy, bad, y2, [0, 1], seed=0)
    with pytest.raises(ValueError, match="seen class 0 contain exact copies of its test-seen"):
        spm.seen_gap(t, y2, s, sy, s, sy, [0], seed=0)
    with pytest.raises(ValueError, match="no generated feature of seen class 1"):
        spm.seen_gap(t, y2, s, sy, g[:2], y2[:2], [0, 1], seed=0)


# --------------------------------------------------------------------------- s_unseen


def test_transfer_gap_hand_made():
    real = np.array([[0.0], [2.0]])
    y0, y1 = np.zeros(2, dtype=np.int64), np.ones(2, dtype=np.int64)
    # seen class 0 generated = real: E = -2 (unbiased, two points), spread 2 -> e = -1
    # unseen class 1 generated at 10, 12: E = 16, spread 2 -> e = 8
    r = spm.transfer_gap(real, y0, real, y0, real, y1, real + 10.0, y1, [0], [1])
    assert (r.seen_term, r.unseen_term, r.s_unseen) == (-1.0, 8.0, 9.0)
    assert r.per_class == {0: -1.0, 1: 8.0}
    # Scale-free: every feature x 7 gives the same numbers.
    r7 = spm.transfer_gap(7 * real, y0, 7 * real, y0, 7 * real, y1, 7 * (real + 10.0), y1, [0], [1])
    assert r7.s_unseen == pytest.approx(9.0)


def test_transfer_gap_skips_small_classes_and_rejects_bad_inputs():
    real = np.array([[0.0], [2.0], [5.0]])
    y = np.array([0, 0, 2])                                             # class 2: 1 real sample
    gen, gy = np.array([[0.0], [2.0], [5.0], [6.0]]), np.array([0, 0, 2, 2])
    u, uy = np.array([[0.0], [2.0]]), np.array([1, 1])
    r = spm.transfer_gap(real, y, gen, gy, u, uy, u + 10.0, uy, [0, 2], [1])
    assert r.skipped == [2] and r.seen_term == -1.0
    with pytest.raises(spm.InsufficientData, match="no seen class has >= 3 real"):
        spm.transfer_gap(real, y, gen, gy, u, uy, u, uy, [0], [1], min_real=3)
    with pytest.raises(ValueError, match="1 generated feature.*unseen class 1"):
        spm.transfer_gap(real, y, gen, gy, u, uy, u[:1], uy[:1], [0], [1])
    with pytest.raises(ValueError, match=r"test-unseen features: 1 row\(s\) with NaN"):
        spm.transfer_gap(real, y, gen, gy, np.array([[0.0], [np.inf]]), uy, u, uy, [0], [1])


# --------------------------------------------------------------------------- companions


def test_macro_mean_averages_class_means():
    values = np.array([1.0, 2.0, 3.0, 10.0])
    y = np.array([0, 0, 0, 5])
    assert comp.macro_mean(values, y) == 6.0                       # (2 + 10) / 2, not 16 / 4
    assert comp.macro_mean(values, y, classes=np.array([5])) == 10.0
    with pytest.raises(ValueError, match="class 7 has no samples"):
        comp.macro_mean(values, y, classes=np.array([0, 7]))


def test_per_class_accuracy_is_macro():
    y = np.array([0, 0, 0, 0, 1])
    pred = np.array([0, 0, 0, 1, 0])
    assert comp.per_class_accuracy(pred, y) == 0.375                # (3/4 + 0/1) / 2


def _threshold_fit(calls=None):
    """Hand-made classifier: label 1 if x[:, 0] > 0.5 else 0 (records its training labels)."""
    def fit(x, y):
        if calls is not None:
            calls.append(np.asarray(y).copy())
        return lambda xq: (np.asarray(xq)[:, 0] > 0.5).astype(np.int64)
    return fit


def test_acc_gap_seen():
    train_x = np.array([[0.0], [0.1], [0.9], [1.0]])
    train_y = np.array([0, 0, 1, 1])                               # all correct -> 1.0
    test_x = np.array([[0.0], [0.9], [0.9], [1.0]])
    test_y = np.array([0, 0, 1, 1])                                # class 0: 1/2, class 1: 2/2
    calls = []
    gap = comp.acc_gap_seen(_threshold_fit(calls), np.zeros((2, 1)), np.array([0, 1]),
                            train_x, train_y, test_x, test_y)
    assert gap == 1.0 - 0.75
    assert calls[0].tolist() == [0, 1]                              # fitted on generated only


def test_half_split_per_class():
    y = np.array([4, 4, 4, 4, 4, 9, 9, 9])
    fit_idx, held = comp.half_split(y, seed=3)
    assert np.bincount(y[fit_idx]).tolist()[4::5] == [2, 1]         # floor(5/2), floor(3/2)
    assert sorted(np.concatenate([fit_idx, held]).tolist()) == list(range(8))
    again = comp.half_split(y, seed=3)
    assert np.array_equal(again[0], fit_idx) and np.array_equal(again[1], held)
    with pytest.raises(ValueError, match="class 2 has 1 sample"):
        comp.half_split(np.array([1, 1, 2]), seed=0)


def test_acc_gap_unseen():
    gen_x = np.array([[0.0], [0.1], [0.2], [0.3], [0.7], [0.8], [0.9], [1.0]])
    gen_y = np.array([0, 0, 0, 0, 1, 1, 1, 1])                      # held-out half: all correct
    test_x = np.array([[0.0], [0.9], [0.9], [0.9], [1.0], [1.0]])
    test_y = np.array([0, 0, 0, 0, 1, 1])                            # class 0: 1/4, class 1: 2/2
    calls = []
    gap = comp.acc_gap_unseen(_threshold_fit(calls), gen_x, gen_y, test_x, test_y, seed=0)
    assert gap == 1.0 - (0.25 + 1.0) / 2
    assert sorted(calls[0].tolist()) == [0, 0, 1, 1]                 # fitted on one half


def test_connectivity_hand_made():
    real_x = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [10.0, 0.0], [12.0, 0.0]])
    real_y = np.array([0, 0, 0, 1, 1])
    gen_x = np.array([[0.0, 2.0], [10.0, 0.0], [50.0, 0.0]])
    gen_y = np.array([0, 1, 1])
    # class 0: to generated (0,2): 2, sqrt5, sqrt13 -> median sqrt5; nearest other real 1,1,2 -> 1
    # class 1: to generated: 0, 2 -> median 1; nearest other real 2, 2 -> 2
    expected = (math.sqrt(5) / 1 + 1 / 2) / 2
    assert comp.connectivity(real_x, real_y, gen_x, gen_y) == pytest.approx(expected, rel=1e-12)
    assert comp.connectivity(real_x, real_y, real_x, real_y) == 0.0
    with pytest.raises(ValueError, match="class 0 has 3 real and 0 generated"):
        comp.connectivity(real_x, real_y, gen_x[1:], gen_y[1:])


def test_softmax_fit_maps_labels_back():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    x = (rng.normal(size=(60, 4)) * 0.1 + 3 * y[:, None]).astype(np.float32)
    labels = np.where(y == 0, 3, 7)                                   # non-contiguous ids
    predict = comp.softmax_fit(epochs=30, lr=1e-2, batch_size=32, seed=0)(x, labels)
    assert np.array_equal(predict(x), labels)


# --------------------------------------------------------------------------- delta_adv


class _FirstCoordinate(torch.nn.Module):
    """D(x, a) = x_0 + a_0 (hand-made critic)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, a):
        return (x[:, :1] + a[:, :1]) + 0 * self.w


def test_delta_adv_macro_hand_made():
    emb = np.array([[0.0], [5.0]], dtype=np.float32)
    tx = np.array([[1.0], [3.0], [0.0]], dtype=np.float32)
    ty = np.array([0, 0, 1])
    sx = np.array([[0.0], [1.0]], dtype=np.float32)
    sy = np.array([0, 1])
    # train: class 0 mean 2, class 1 mean 5 -> 3.5; test: class 0: 0, class 1: 6 -> 3.0
    assert critic.delta_adv(_FirstCoordinate(), tx, ty, sx, sy, emb, [0, 1]) == 0.5


def test_load_d_x0_rejects_non_dfg_checkpoints(tmp_path):
    with pytest.raises(DataError, match="checkpoint not found"):
        critic.load_d_x0(tmp_path, "cpu")
    torch.save({"meta": {"stage": "DRG"}, "models": {}}, tmp_path / "model.pt")
    with pytest.raises(DataError, match="not a DFG checkpoint"):
        critic.load_d_x0(tmp_path, "cpu")


# --------------------------------------------------------------------------- stage


def _synthetic_prepared(**kw):
    data = synthetic.make(SyntheticConfig(**kw))
    return prepare(data, data.features, data.features, seen_fraction=1.0, seed=0,
                   embedding_norm="none")


def _ridge_generated(p, n, rng, inflate=1.0):
    """Seen and unseen features from a ridge map class embedding -> feature (fitted on train)."""
    a = np.hstack([p.class_emb[p.train_y], np.ones((len(p.train_y), 1))])
    coef = np.linalg.lstsq(a, p.train_x, rcond=None)[0]
    sd = inflate * (p.train_x - a @ coef).std(0)

    def gen(classes):
        y = np.repeat(classes, n).astype(np.int64)
        x = np.hstack([p.class_emb[y], np.ones((len(y), 1))]) @ coef
        return (x + sd * rng.normal(size=x.shape)).astype(np.float32), y

    return (*gen(p.seen_classes), *gen(p.unseen_classes))


@pytest.fixture(scope="module")
def stage_inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("spurious")
    p = _synthetic_prepared(per_class=40, feature_dim=16, attr_dim=6, spurious_strength=1.0)
    p.save(root / "prepared" / "prepared.npz")
    rng = np.random.default_rng(0)
    for name, inflate in (("good", 1.0), ("wide", 3.0)):
        sx, sy, ux, uy = _ridge_generated(p, 12, rng, inflate)
        write_npz(root / f"{name}.npz", seen_x=sx, seen_y=sy, unseen_x=ux, unseen_y=uy)
    params = {"runtime": {"device": "cpu", "threads": 1, "progress": False},
              "train": {"seed": 0},
              "eval": {"classifier_epochs": 3, "classifier_batch": 64},
              "spurious": {"syn_per_class": 10, "subsample_repeats": 2}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root, p


def _run(root, *methods, out="out.json", prepared=None, extra=()):
    argv = ["--params", str(root / "params.yaml"), "--prepared", str(prepared or root / "prepared"),
            "--out", str(root / out), *extra]
    for m in methods:
        argv += ["--method", m]
    return stage.main(argv)


KEYS = {"s_seen", "s_unseen", "nn_cost_train", "nn_cost_test", "energy_seen", "energy_unseen",
        "classes_skipped", "delta_adv", "acc_gap_seen", "acc_gap_unseen", "connectivity"}


def test_stage_writes_metrics_json_deterministically(stage_inputs):
    root, _ = stage_inputs
    methods = (f"good={root / 'good.npz'}", f"f-vae_2={root / 'wide.npz'}")
    assert _run(root, *methods, out="a.json") == 0
    assert _run(root, *methods, out="b.json") == 0
    text = (root / "a.json").read_text()
    assert text == (root / "b.json").read_text()                      # deterministic on CPU
    result = json.loads(text)
    assert sorted(result) == ["f-vae_2", "good"]
    for metrics in result.values():
        assert set(metrics) == KEYS
        assert metrics["delta_adv"] is None                            # no --own-critic
        assert metrics["classes_skipped"] == 0
        # s_unseen = energy_unseen - energy_seen (each rounded to 4 decimals on its own)
        assert abs(metrics["s_unseen"] - (metrics["energy_unseen"] - metrics["energy_seen"])) \
            <= 1.5e-4
        for k in KEYS - {"classes_skipped", "delta_adv"}:
            assert round(metrics[k], 4) == metrics[k]
    # The over-dispersed generator matches its classes worse, seen and unseen.
    assert result["f-vae_2"]["energy_seen"] > result["good"]["energy_seen"]
    # A method's numbers do not depend on the other methods.
    assert _run(root, f"good={root / 'good.npz'}", out="c.json") == 0
    assert json.loads((root / "c.json").read_text())["good"] == result["good"]


def test_stage_truncates_to_syn_per_class(stage_inputs, tmp_path):
    root, p = stage_inputs
    sx, sy, ux, uy = _ridge_generated(p, 10, np.random.default_rng(1))
    write_npz(tmp_path / "exact.npz", seen_x=sx, seen_y=sy, unseen_x=ux, unseen_y=uy)
    pad = lambda x, y: (np.concatenate([x, x + 100]), np.concatenate([y, y]))  # noqa: E731
    write_npz(tmp_path / "padded.npz", **dict(zip(("seen_x", "seen_y"), pad(sx, sy))),
              **dict(zip(("unseen_x", "unseen_y"), pad(ux, uy))))
    assert _run(root, f"a={tmp_path / 'exact.npz'}", f"b={tmp_path / 'padded.npz'}",
                out="t.json") == 0
    result = json.loads((root / "t.json").read_text())
    assert result["a"] == result["b"]                                  # extra rows ignored


@pytest.mark.parametrize("change, message", [
    ({"drop": "unseen_y"}, "missing key(s) unseen_y"),
    ({"seen_x": np.zeros((3, 5), np.float32)}, "key 'seen_x' must be a float (n, 16) array"),
    ({"seen_x_nan": True}, "key 'seen_x' contains NaN/Inf"),
    ({"seen_y": "float"}, "key 'seen_y' must be an integer vector"),
    ({"unseen_y": "seen_ids"}, "key 'unseen_y' has class ids"),
    ({"seen_y": "one_class"}, "key 'seen_y' has 0 sample(s) of seen class"),
])
def test_stage_rejects_invalid_npz(stage_inputs, tmp_path, capsys, change, message):
    root, p = stage_inputs
    with np.load(root / "good.npz") as f:
        arrays = {k: f[k] for k in f.files}
    if "drop" in change:
        del arrays[change["drop"]]
    elif change.get("seen_x_nan"):
        arrays["seen_x"][3, 2] = np.nan
    elif change.get("seen_y") == "float":
        arrays["seen_y"] = arrays["seen_y"].astype(np.float32)
    elif change.get("unseen_y") == "seen_ids":
        arrays["unseen_y"] = np.full_like(arrays["unseen_y"], p.seen_classes[0])
    elif change.get("seen_y") == "one_class":
        arrays["seen_y"] = np.full_like(arrays["seen_y"], p.seen_classes[0])
    else:
        arrays.update(change)
    bad = tmp_path / "bad.npz"
    write_npz(bad, **arrays)
    assert _run(root, f"good={root / 'good.npz'}", f"bad={bad}", out="bad.json") == 2
    err = capsys.readouterr().err
    assert str(bad) in err and message in err
    assert not (root / "bad.json").exists()                            # nothing written


def _prepared_copy(p, tmp_path, **changes):
    import dataclasses

    q = dataclasses.replace(p, **changes)
    q.save(tmp_path / "prep" / "prepared.npz")
    return tmp_path / "prep"


def test_stage_rejects_nan_real_features(stage_inputs, tmp_path, capsys):
    root, p = stage_inputs
    x = p.test_unseen_x.copy()
    x[4, 1] = np.nan
    prep = _prepared_copy(p, tmp_path, test_unseen_x=x)
    assert _run(root, f"good={root / 'good.npz'}", prepared=prep, out="nan.json") == 2
    err = capsys.readouterr().err
    assert str(prep / "prepared.npz") in err and "'test_unseen_x' has 1 row(s) with NaN/Inf" in err


def test_stage_small_classes_fallback_and_error(stage_inputs, tmp_path, capsys):
    root, p = stage_inputs
    seen = p.seen_classes
    # Keep one test-seen sample of the first seen class: it is left out, with a warning.
    rows = np.flatnonzero(p.test_seen_y == seen[0])
    keep = np.setdiff1d(np.arange(len(p.test_seen_y)), rows[1:])
    prep = _prepared_copy(p, tmp_path, test_seen_x=p.test_seen_x[keep],
                          test_seen_c=p.test_seen_c[keep], test_seen_y=p.test_seen_y[keep])
    assert _run(root, f"good={root / 'good.npz'}", prepared=prep, out="small.json") == 0
    err = capsys.readouterr().err
    assert f"class id(s) [{int(seen[0])}] have fewer than spurious.min_real_per_class=2" in err
    assert json.loads((root / "small.json").read_text())["good"]["classes_skipped"] == 1
    # With min_real_per_class above every class size: a DataError naming the file and the key.
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["spurious"]["min_real_per_class"] = 1000
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(params))
    assert stage.main(["--params", str(tmp_path / "p.yaml"), "--prepared", str(root / "prepared"),
                       "--out", str(tmp_path / "x.json"), "--method",
                       f"good={root / 'good.npz'}"]) == 2
    err = capsys.readouterr().err
    assert "prepared.npz: s_seen: no seen class has >= 1000" in err
    assert "spurious.min_real_per_class=1000" in err


@pytest.mark.parametrize("args, message", [
    (["--method", "x.y=a.npz"], "may contain only letters"),
    (["--method", "noequals"], "expected NAME=PATH"),
    (["--method", "a=a.npz", "--own-critic", "b=runs/dfg"], "--own-critic b: no --method"),
    (["--method", "a=a.npz", "--own-critic", "a"], "expected NAME=DFG_DIR"),
])
def test_stage_rejects_bad_arguments(stage_inputs, capsys, args, message):
    root, _ = stage_inputs
    assert stage.main(["--params", str(root / "params.yaml"), "--out", str(root / "z.json"),
                       *args]) == 2
    assert message in capsys.readouterr().err


def test_stage_missing_file(stage_inputs, capsys):
    root, _ = stage_inputs
    assert _run(root, f"m={root / 'nope.npz'}") == 2
    assert "nope.npz: file not found" in capsys.readouterr().err


def test_stage_own_critic_delta_adv(stage_inputs, tmp_path):
    """--own-critic: delta_adv from the trained DFG's D_x0 (ZeroDiff's own critic), the same for
    every method scored with that checkpoint; null for the others."""
    from zerodiffpp.train_dfg import DFGTrainer

    root, p = stage_inputs
    cfg = DFGConfig(epochs=1, batch_size=32, critic_steps=1, hidden_dim=16)
    trainer = DFGTrainer(p, cfg, DiffusionConfig(), seed=0,
                         runtime=RuntimeConfig(device="cpu", threads=1, progress=False))
    trainer.train(1)
    trainer.save(tmp_path / "dfg" / "model.pt")
    good = f"{root / 'good.npz'}"
    assert _run(root, f"zd={good}", f"zd_tta={good}", f"other={good}", out="own.json",
                extra=["--own-critic", f"zd={tmp_path / 'dfg'}",
                       "--own-critic", f"zd_tta={tmp_path / 'dfg'}"]) == 0
    result = json.loads((root / "own.json").read_text())
    d_x0 = critic.load_d_x0(tmp_path / "dfg", "cpu")
    expected = critic.delta_adv(d_x0, p.train_x, p.train_y, p.test_seen_x, p.test_seen_y,
                                p.class_emb, p.seen_classes)
    assert result["zd"]["delta_adv"] == result["zd_tta"]["delta_adv"] == round(expected, 4)
    assert result["other"]["delta_adv"] is None
    assert {k: v for k, v in result["zd"].items() if k != "delta_adv"} == \
        {k: v for k, v in result["other"].items() if k != "delta_adv"}
