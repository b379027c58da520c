"""ESZSL, the closed-form baseline (zerodiffpp.baselines.eszsl, stage zerodiffpp.stages.eszsl):
the closed form against a least-squares solve of the paper's objective, zero-shot transfer on
class-clustered toy data, the stage end to end on a validation view, a selection that never
depends on the test set, and clear errors for bad input."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import plusplus_utils as ppu
from zerodiffpp.baselines import eszsl
from zerodiffpp.config import ConfigError, config_from_dict
from zerodiffpp.data.prepared import PreparedData
from zerodiffpp.io import DataError, write_json
from zerodiffpp.protocol.split import choose_classes, validation_view
from zerodiffpp.stages import eszsl as stage

GRID = [0.01, 0.1, 1.0, 10.0]


@pytest.fixture(autouse=True)
def one_thread():
    """The stage sets torch's thread count from runtime.threads; restore it afterwards."""
    old = torch.get_num_threads()
    yield
    torch.set_num_threads(old)


# --------------------------------------------------------------------------- closed form


def random_problem(seed=0, n=30, d=5, a=4, n_classes=6, seen=(0, 2, 3)):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    seen = np.array(seen)
    y = seen[rng.integers(0, len(seen), n)]
    emb = rng.normal(size=(n_classes, a))
    return x, y, seen, emb


def test_closed_form_solves_the_regularised_least_squares_problem():
    """V of the closed form = the least-squares minimiser of the paper's objective
    ||X^T V S - Y||^2 + g ||V S||^2 + l ||X^T V||^2 + g l ||V||^2, written out as one stacked
    linear system in vec(V) (column-major: vec(A V B) = (B^T kron A) vec(V))."""
    x, y, seen, emb = random_problem()
    gamma, lam = 0.7, 0.3
    big_y = np.where(y[:, None] == seen[None, :], 1.0, -1.0)       # n x z
    s = emb[seen].T                                                  # a x z
    d, a = x.shape[1], s.shape[0]
    eye_d, eye_a = np.eye(d), np.eye(a)
    system = np.vstack([np.kron(s.T, x),                             # X^T V S
                        np.sqrt(gamma) * np.kron(s.T, eye_d),        # V S
                        np.sqrt(lam) * np.kron(eye_a, x),            # X^T V
                        np.sqrt(gamma * lam) * np.eye(d * a)])       # V
    target = np.concatenate([big_y.ravel(order="F"), np.zeros(system.shape[0] - big_y.size)])
    direct = np.linalg.lstsq(system, target, rcond=None)[0].reshape((d, a), order="F")

    model = eszsl.fit(x, y, seen, emb, gamma, lam)
    assert model.v.dtype == torch.float64
    np.testing.assert_allclose(model.v.numpy(), direct, rtol=1e-9, atol=1e-11)
    classes = np.array([5, 1, 0])          # any class set, columns in the given order
    np.testing.assert_allclose(model.scores(x, emb, classes).numpy(), x @ direct @ emb[classes].T,
                               rtol=1e-9, atol=1e-11)
    assert np.array_equal(model.predict(x, emb, classes),
                          classes[(x @ direct @ emb[classes].T).argmax(axis=1)])


def test_grid_reuses_the_gram_matrices_but_equals_single_fits():
    x, y, seen, emb = random_problem(seed=1)
    g = eszsl.gram(x, y, seen, emb)
    grid = list(eszsl.fit_grid(g, [0.1, 10.0], [1.0, 0.01, 100.0]))
    assert [(m.gamma, m.lam) for m in grid] == [(0.1, 1.0), (0.1, 0.01), (0.1, 100.0),
                                                (10.0, 1.0), (10.0, 0.01), (10.0, 100.0)]
    for m in grid:
        np.testing.assert_allclose(m.v.numpy(), eszsl.fit(x, y, seen, emb, m.gamma, m.lam).v.numpy(),
                                   rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- zero-shot transfer


def test_zero_shot_transfer_on_clustered_data_is_well_above_chance():
    """Toy classes whose features depend on their attributes: ESZSL fitted on the 5 seen classes
    recognises the 3 unseen ones (chance 1/3); with the unseen classes' attribute rows permuted
    among themselves the same features are mostly misnamed, so the transfer is the attributes'."""
    t1, permuted = [], []
    for seed in range(6):
        data = ppu.clustered_data(seed=seed)
        model = eszsl.fit_view(data, 0.1, 0.1)
        t1.append(eszsl.score_view(model, data).t1)
        emb = data.class_emb.copy()
        u = data.unseen_classes
        emb[u] = emb[np.roll(u, 1)]
        permuted.append(eszsl.score_view(model, dataclasses.replace(data, class_emb=emb)).t1)
    assert np.mean(t1) >= 0.6, t1
    assert np.mean(permuted) < 0.4, permuted


def test_validation_selection_scans_the_grid_and_calibration_helps():
    data = ppu.clustered_data(seed=0)
    view = validation_view(data, choose_classes(data.seen_classes, 0.4, seed=3), 0.25, seed=3)
    best, points = eszsl.select_regularisers(view, GRID, GRID[:2])
    assert [(p.gamma, p.lam) for p in points] == [(g, l) for g in GRID for l in GRID[:2]]
    assert best.h == max(p.h for p in points)
    assert all(p.h >= p.h_uncalibrated - 1e-12 for p in points)   # gamma 0 is a candidate
    again = eszsl.score_view(eszsl.fit_view(view, best.gamma, best.lam), view, best.calibration)
    assert (again.u, again.s, again.h, again.t1) == (best.u, best.s, best.h, best.t1)


# --------------------------------------------------------------------------- the stage


def write_inputs(root, data: PreparedData, params: dict | None = None):
    """runs/prepared + the validation view beside it (as the validation_split stage writes)."""
    split = choose_classes(data.seen_classes, 0.4, seed=3)
    view = validation_view(data, split, 0.25, seed=3)
    data.save(root / "prepared" / "prepared.npz")
    view.save(root / "val" / "prepared.npz")
    write_json(root / "val" / "split.json", split.as_json())
    base = {"runtime": {"device": "cpu", "threads": 1, "progress": False},
            "eszsl": {"gamma_grid": GRID, "lam_grid": GRID}}
    for section, values in (params or {}).items():
        base.setdefault(section, {}).update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(base))
    return view


def run(root, *extra) -> int:
    out = root / "out"
    return stage.main(["--params", str(root / "params.yaml"), "--prepared", str(root / "prepared"),
                       "--val-prepared", str(root / "val"), "--metrics", str(out / "metrics.json"),
                       "--selection-out", str(out / "selection.json"),
                       "--select-details", str(out / "grid.json"),
                       "--per-class", str(out / "per_class.csv"), *extra])


def read(root, name):
    return json.loads((root / "out" / name).read_text())


def test_stage_end_to_end(tmp_path):
    data = ppu.clustered_data(seed=0)
    view = write_inputs(tmp_path, data)
    assert run(tmp_path) == 0
    sel = read(tmp_path, "selection.json")["eszsl"]
    assert sel["version"] == 1 and sel["selection"] == "validation"
    assert sel["split"] == {"source": "seeded", "n_train_classes": 3, "n_val_classes": 2}
    chosen = sel["chosen"]
    assert set(chosen) == {"gamma", "lambda", "calibration"}
    assert chosen["gamma"] in GRID and chosen["lambda"] in GRID
    assert set(sel["val"]) == {"u", "s", "h", "h_uncalibrated", "t1"}

    # The selection is the library's on the validation view ...
    best, _ = eszsl.select_regularisers(view, GRID, GRID)
    assert (chosen["gamma"], chosen["lambda"]) == (best.gamma, best.lam)
    assert sel["val"]["h"] == round(100 * best.h, 2) and sel["val"]["t1"] == round(100 * best.t1, 2)
    grid = read(tmp_path, "grid.json")["grid"]
    assert len(grid) == len(GRID) ** 2 and max(p["h"] for p in grid) == sel["val"]["h"]

    # ... and the metrics are a refit on all seen classes, tested once with that offset.
    r = eszsl.score_view(eszsl.fit_view(data, best.gamma, best.lam), data, best.calibration)
    expected = {"zsl": {"t1": round(100 * r.t1, 2)},
                "gzsl": {"u": round(100 * r.u, 2), "s": round(100 * r.s, 2),
                         "h": round(100 * r.h, 2)}}
    assert read(tmp_path, "metrics.json") == {"eszsl": expected}
    assert expected["zsl"]["t1"] > 100 / 3

    table = pd.read_csv(tmp_path / "out" / "per_class.csv")
    assert list(table.columns) == ["variant", "protocol", "split", "class_id", "n_test",
                                   "n_correct", "accuracy"]
    zsl = table[table.protocol == "zsl"]
    assert sorted(zsl.class_id) == data.unseen_classes.tolist()
    assert zsl.accuracy.mean() == pytest.approx(100 * r.t1, abs=1e-3)
    gz_seen = table[(table.protocol == "gzsl") & (table.split == "seen")]
    assert gz_seen.accuracy.mean() == pytest.approx(100 * r.s, abs=1e-3)

    # Deterministic: a rerun writes the same bytes.
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert run(tmp_path) == 0
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before


def test_selection_never_depends_on_the_test_set(tmp_path):
    """Scrambled test labels (across seen and unseen) and test features replaced by noise:
    byte-identical selection and grid files, while the test metrics do change."""
    data = ppu.clustered_data(seed=0)
    rng = np.random.default_rng(5)
    labels = rng.permutation(np.concatenate([data.test_seen_y, data.test_unseen_y]))
    n = len(data.test_seen_y)
    variants = {
        "ref": data,
        "scrambled": dataclasses.replace(data, test_seen_y=labels[:n], test_unseen_y=labels[n:]),
        "noise": dataclasses.replace(
            data, test_seen_x=rng.random(data.test_seen_x.shape, dtype=np.float32),
            test_unseen_x=rng.random(data.test_unseen_x.shape, dtype=np.float32)),
    }
    files = {}
    for name, d in variants.items():
        write_inputs(tmp_path / name, d)
        assert run(tmp_path / name) == 0
        files[name] = {f: (tmp_path / name / "out" / f).read_bytes()
                       for f in ("selection.json", "grid.json", "metrics.json")}
    for name in ("scrambled", "noise"):
        assert files[name]["selection.json"] == files["ref"]["selection.json"]
        assert files[name]["grid.json"] == files["ref"]["grid.json"]
        assert files[name]["metrics.json"] != files["ref"]["metrics.json"]


def test_fixed_selection_uses_the_params_and_no_calibration(tmp_path):
    data = ppu.clustered_data(seed=1)
    view = write_inputs(tmp_path, data, {"eval": {"selection": "fixed"},
                                         "eszsl": {"gamma": 0.5, "lam": 2.0}})
    assert run(tmp_path) == 0
    sel = read(tmp_path, "selection.json")["eszsl"]
    assert sel["selection"] == "fixed"
    assert sel["chosen"] == {"gamma": 0.5, "lambda": 2.0, "calibration": 0.0}
    v = eszsl.score_view(eszsl.fit_view(view, 0.5, 2.0), view, 0.0)
    assert sel["val"]["h"] == sel["val"]["h_uncalibrated"] == round(100 * v.h, 2)
    r = eszsl.score_view(eszsl.fit_view(data, 0.5, 2.0), data, 0.0)
    assert read(tmp_path, "metrics.json")["eszsl"]["gzsl"]["h"] == round(100 * r.h, 2)
    assert len(read(tmp_path, "grid.json")["grid"]) == 1


# --------------------------------------------------------------------------- bad input


def _break_view(root, **changes):
    path = root / "val" / "prepared.npz"
    PreparedData.save(dataclasses.replace(PreparedData.load(path), **changes), path)


def _nan_train(root):
    path = root / "prepared" / "prepared.npz"
    data = PreparedData.load(path)
    x = data.train_x.copy()
    x[3, 2] = np.nan
    dataclasses.replace(data, train_x=x).save(path)


@pytest.mark.parametrize("breakage, message", [
    (lambda root: (root / "val" / "prepared.npz").unlink(),
     "prepared.npz: file not found (did the upstream stage run?)"),
    (lambda root: (root / "val" / "split.json").unlink(),
     "split.json: missing; the validation_split stage writes it"),
    (lambda root: _break_view(root, class_emb=PreparedData.load(
        root / "val" / "prepared.npz").class_emb[:, ::-1].copy()),
     "class embedding differs from"),
    (lambda root: _break_view(root, unseen_classes=np.array([3, 4, 6])),
     "classes [6] are not seen classes of"),
    (_nan_train, "train_x contains NaN or infinite values"),
    (lambda root: (root / "params.yaml").write_text(yaml.safe_dump(
        {"eszsl": {"lam_grid": [1.0, 0.0]}})),
     "eszsl.lam_grid[1]=0.0: must be > 0"),
])
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path, capsys, breakage, message):
    write_inputs(tmp_path, ppu.clustered_data(seed=0))
    breakage(tmp_path)
    assert run(tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out").exists()


def test_library_errors():
    x, y, seen, emb = random_problem()
    with pytest.raises(DataError, match=r"training label\(s\) \[1\] are not seen classes"):
        eszsl.fit(x, np.where(y == 0, 1, y), seen, emb, 1.0, 1.0)
    with pytest.raises(DataError, match="gamma=0.0 must be a finite number > 0"):
        eszsl.fit(x, y, seen, emb, 0.0, 1.0)
    with pytest.raises(DataError, match="outside 0..5"):
        eszsl.fit(x, y, np.array([0, 2, 9]), emb, 1.0, 1.0)
    model = eszsl.fit(x, y, seen, emb, 1.0, 1.0)
    with pytest.raises(DataError, match="features have 4 columns, the model was fitted on 5"):
        model.scores(x[:, :4], emb, seen)


@pytest.mark.parametrize("raw, message", [
    ({"eszsl": {"gamma_grid": []}}, "eszsl.gamma_grid: must list at least one value"),
    ({"eszsl": {"gamma_grid": [1.0, 1]}}, "eszsl.gamma_grid: 1.0 listed twice"),
    ({"eszsl": {"lam": -1}}, "eszsl.lam=-1.0: must be > 0.0 (allowed: (0.0, inf))"),
    ({"eszsl": {"lambda": 1}}, "eszsl.lambda: unknown parameter (known in eszsl: gamma, "
                               "gamma_grid, lam, lam_grid)"),
])
def test_params_are_validated(raw, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    assert str(err.value) == message
