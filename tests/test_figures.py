"""Figures stage on small hand-made inputs: four readable PNGs, reproducible bytes, clear errors."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from zerodiffpp import figures
from zerodiffpp.data.prepared import PreparedData
from zerodiffpp.stages import figures as stage

PNGS = ("h_vs_fraction.png", "spuriousness_vs_fraction.png", "training_curves.png", "embedding.png")


def fake_inputs(tmp):
    rng = np.random.default_rng(0)
    rows = []
    for method in ("zerodiff", "zerodiffpp", "fclswgan"):
        for f in (1.0, 0.3, 0.1):
            for seed in (0, 1):
                for metric, base in (("h", 40 * f), ("s_seen", 0.1 / f), ("s_unseen", 0.2 / f)):
                    rows.append({"method": method, "fraction": f, "seed": seed, "metric": metric,
                                 "value": base + rng.normal()})
    rows.append({"method": "fclswgan", "fraction": 0.1, "seed": 0, "metric": "s_seen",
                 "value": None})                         # a null spuriousness value is skipped
    pd.DataFrame(rows).to_csv(tmp / "sweep.csv", index=False)
    hist = {}
    for name in ("drg", "dfg"):
        pd.DataFrame({"epoch": [1, 2, 3], "loss_D": [-1.0, -2.0, -1.5],
                      "loss_G": [1.0, 0.5, 0.2], "seconds": [1, 1, 1]}).to_csv(
            tmp / f"{name}.csv", index=False)
        hist[name] = tmp / f"{name}.csv"
    d, n_cls, seen, unseen = 8, 5, np.array([0, 1, 2]), np.array([3, 4])

    def block(classes, n):
        y = np.repeat(classes, n).astype(np.int64)
        return rng.normal(size=(len(y), d)).astype(np.float32) + y[:, None], y

    tx, ty = block(seen, 10)
    sx, sy = block(seen, 4)
    ux, uy = block(unseen, 6)
    PreparedData(tx, tx, ty, sx, sx, sy, ux, ux, uy, rng.normal(size=(n_cls, 4)).astype(np.float32),
                 seen, unseen, np.arange(1, len(ty) + 1)).save(tmp / "prepared" / "prepared.npz")
    for name in ("zd", "zdpp"):
        gx, gy = block(unseen, 7)
        np.savez(tmp / f"{name}.npz", seen_x=gx, seen_y=gy, unseen_x=gx, unseen_y=gy)
    raw = tmp / "raw"
    raw.mkdir()
    (raw / "dataset.json").write_text(json.dumps({"name": "toy"}))
    return hist


def argv(tmp, out, **extra):
    args = {"--sweep": tmp / "sweep.csv", "--raw": tmp / "raw", "--prepared": tmp / "prepared",
            "--without-diffgen": tmp / "zd.npz", "--with-diffgen": tmp / "zdpp.npz", "--out": out}
    args.update(extra)
    out_args = [a for k, v in args.items() for a in (k, str(v))]
    return out_args + ["--history", f"DRG={tmp / 'drg.csv'}", "--history", f"DFG={tmp / 'dfg.csv'}"]


def test_figures_stage_writes_four_reproducible_pngs(tmp_path):
    fake_inputs(tmp_path)
    assert stage.main(argv(tmp_path, tmp_path / "a")) == 0
    assert stage.main(argv(tmp_path, tmp_path / "b")) == 0
    for name in PNGS:
        data = (tmp_path / "a" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
        assert data == (tmp_path / "b" / name).read_bytes(), f"{name} differs between runs"
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(PNGS)   # no temp files


def test_figures_have_titles_labels_and_legends(tmp_path, monkeypatch):
    fake_inputs(tmp_path)
    seen = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: seen.append((path.name, fig)) or path)
    assert stage.main(argv(tmp_path, tmp_path / "out")) == 0
    assert [n for n, _ in seen] == list(PNGS)
    for name, fig in seen:
        axes = [ax for ax in fig.axes if ax.get_visible()]
        assert axes, name
        for ax in axes:
            assert ax.get_xlabel() and ax.get_ylabel(), name
        assert any(ax.get_title() for ax in axes) or fig._suptitle is not None, name
        assert fig.legends or any(ax.get_legend() for ax in axes), name
    h_fig = dict(seen)["h_vs_fraction.png"]
    labels = [t.get_text() for t in h_fig.axes[0].get_legend().get_texts()]
    assert labels == ["ZeroDiff", "ZeroDiff++", "f-CLSWGAN"]
    assert [t.get_text() for t in h_fig.axes[0].get_xticklabels()] == ["10%", "30%", "100%"]


def test_missing_input_is_a_clear_error(tmp_path, capsys):
    fake_inputs(tmp_path)
    rc = stage.main(argv(tmp_path, tmp_path / "out", **{"--with-diffgen": tmp_path / "nope.npz"}))
    assert rc == 2
    assert "nope.npz: file not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_sweep_csv_names_the_column(tmp_path, capsys):
    fake_inputs(tmp_path)
    pd.DataFrame({"method": ["x"], "value": [1.0]}).to_csv(tmp_path / "sweep.csv", index=False)
    assert stage.main(argv(tmp_path, tmp_path / "out")) == 2
    assert "missing column(s) fraction, seed, metric" in capsys.readouterr().err


def test_pca_is_deterministic_and_centred():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 6)) * np.array([5, 3, 1, 1, 1, 1])
    a, b = figures.pca_2d(x, x[:5])
    assert np.allclose(a.mean(0), 0, atol=1e-9)
    assert a.var(0)[0] > a.var(0)[1]
    assert np.allclose(b, a[:5])
    assert np.allclose(figures.pca_2d(-x + 0)[0], figures.pca_2d(-x)[0])



def test_spuriousness_figure_states_the_direction_and_draws_zero(tmp_path, monkeypatch):
    """Both metrics: "lower is better, 0 = none" on the axis, a y = 0 reference line, one line
    per method, and the null value of fake_inputs left out of its mean."""
    fake_inputs(tmp_path)
    long = pd.read_csv(tmp_path / "sweep.csv")
    seen = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: seen.append(fig) or path)
    figures.spuriousness_vs_fraction(long, tmp_path / "s.png", "toy")
    fig = seen[0]
    for ax, metric in zip(fig.axes, ("s_seen", "s_unseen")):
        assert metric in ax.get_ylabel() and "lower is better, 0 = none" in ax.get_ylabel()
        flat = [ln for ln in ax.get_lines() if np.allclose(ln.get_ydata(), 0.0)]
        assert len(flat) == 1                                          # the zero line
        curves = [ln for ln in ax.get_lines() if ln not in flat]
        assert [ln.get_label() for ln in curves] == ["ZeroDiff", "ZeroDiff++", "f-CLSWGAN"]
    fcls = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "f-CLSWGAN"][0]
    rows = long[(long.method == "fclswgan") & (long.metric == "s_seen") & (long.fraction == 0.1)]
    assert rows["value"].isna().sum() == 1 and rows["value"].notna().sum() == 2
    assert fcls.get_ydata()[0] == pytest.approx(rows["value"].dropna().mean())   # 10 %, no null
    assert "on toy" in fig._suptitle.get_text()
