"""Classifier inputs, ZSL/GZSL protocols and the evaluate stage on hand-made data and fake models."""
import json
import sys
import types

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from zerodiffpp import evaluation as ev
from zerodiffpp.config import EvalConfig
from zerodiffpp.data.prepared import PreparedData
from zerodiffpp.io import DataError

SEEN, UNSEEN, EMPTY = np.array([0, 1, 2, 3, 4]), np.array([6, 7, 8]), 5   # class 5: no samples
N_CLASSES, DX, DC, DA = 9, 12, 6, 4
CFG = EvalConfig(syn_per_class=40, classifier_epochs=8, classifier_lr=1e-2, classifier_batch=64)


class FakeDec(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.fc1, self.fc2 = nn.Linear(DX, 16), nn.Linear(16, DA)
        for p in self.parameters():
            nn.init.normal_(p, 0, 0.3, generator=g)
        self.drop = nn.Dropout(0.5)   # must be off: Dec is applied in eval mode

    def forward_with_hidden(self, x):
        h = torch.nn.functional.leaky_relu(self.drop(self.fc1(x)), 0.2)
        return self.fc2(h), h

    def forward(self, x):
        return self.forward_with_hidden(x)[0]


def world(seed=0):
    g = torch.Generator().manual_seed(seed)
    cx = torch.randn(N_CLASSES, DX, generator=g) * 2
    cc = torch.randn(N_CLASSES, DC, generator=g) * 2

    def draw(classes, n):
        y = torch.as_tensor(np.repeat(classes, n))
        return (cx[y] + torch.randn(len(y), DX, generator=g), cc[y] + torch.randn(len(y), DC, generator=g),
                y.numpy())
    return draw


def sets(seed=0, dec=None, variants=ev.VARIANTS):
    draw = world(seed)
    dec = dec or FakeDec()
    out = {}
    for name, classes, n in (("train", SEEN, 50), ("syn", UNSEEN, 40), ("test_seen", SEEN, 10),
                             ("test_unseen", UNSEEN, 12)):
        x, c, y = draw(classes, n)
        out[name] = (ev.build_blocks(x, c, dec, variants), y)
    return out


def run(s, variants=ev.VARIANTS, seed=0, **kw):
    return ev.evaluate_variants(s["train"][0], s["train"][1], s["syn"][0], s["syn"][1],
                                s["test_seen"][0], s["test_seen"][1], s["test_unseen"][0],
                                s["test_unseen"][1], SEEN, UNSEEN, CFG,
                                torch.Generator().manual_seed(seed), variants=variants, **kw)


def test_blocks_and_variants():
    x, c = torch.rand(5, DX), torch.rand(5, DC)
    dec = FakeDec().train()
    b = ev.build_blocks(x, c, dec, ("VCS",))
    assert b["S"].shape == (5, DA + 16) and dec.training   # mode restored
    out, hidden = dec.eval().forward_with_hidden(x)
    assert torch.allclose(b["S"], torch.cat([out, hidden], 1))   # eval mode: no dropout
    assert [t.shape[1] for t in ev.select(b, "VCS")] == [DX, DA + 16, DC]
    assert [t.shape[1] for t in ev.select(b, "VC")] == [DX, DC]
    assert set(ev.build_blocks(x, None, None, ("V",))) == {"V"}
    with pytest.raises(DataError, match="needs the DFG semantic decoder"):
        ev.build_blocks(x, c, None, ("VS",))
    with pytest.raises(DataError, match="unknown classifier input variant"):
        ev.variant_blocks("SV")
    with pytest.raises(DataError, match="not built"):
        ev.select({"V": x}, "VC")


def test_protocols_plausible_and_compact_classes():
    res = run(sets())
    for v, r in res.items():
        assert r.zsl_t1 > 0.9, v
        assert r.gzsl_s > 0.8 and r.gzsl_u > 0.8, v
        assert r.gzsl_h == pytest.approx(2 * r.gzsl_u * r.gzsl_s / (r.gzsl_u + r.gzsl_s))
        assert r.gzsl.classes.tolist() == [0, 1, 2, 3, 4, 6, 7, 8]   # empty class 5 excluded
        assert r.zsl.classes.tolist() == [6, 7, 8]
        assert r.gzsl.model.fc.out_features == 8 and r.zsl.model.fc.out_features == 3
    t = res["VCS"].per_class
    assert list(t.columns) == ["protocol", "split", "class_id", "n_test", "n_correct", "accuracy"]
    assert len(t) == 3 + 3 + 5
    zsl = t[t.protocol == "zsl"]
    assert zsl["accuracy"].mean() == pytest.approx(res["VCS"].zsl_t1)


def test_deterministic_and_variant_independent():
    s = sets()
    a = run(s)
    b = run(s, variants=("VCS",))
    assert a["VCS"].scores() == b["VCS"].scores()
    assert torch.equal(a["VCS"].gzsl.model.fc.weight, b["VCS"].gzsl.model.fc.weight)
    pd.testing.assert_frame_equal(a["VCS"].per_class, b["VCS"].per_class)


def test_leaky_best_of_test_is_separate_and_at_least_headline():
    r = run(sets(), variants=("V",), best_of_test=True)["V"]
    plain = run(sets(), variants=("V",))["V"]
    assert r.scores() == plain.scores()   # the diagnostic does not change headline numbers
    assert r.leaky["gzsl_h"] >= r.gzsl_h and r.leaky["zsl_t1"] >= r.zsl_t1
    assert 1 <= r.leaky["gzsl_epoch"] <= CFG.classifier_epochs
    js = ev.metrics_json(r)
    assert set(js) == {"zsl", "gzsl", "leaky_best_of_test"}
    assert set(ev.metrics_json(plain)) == {"zsl", "gzsl"}


def test_weights_reach_the_classifier():
    s = sets()
    base = run(s, variants=("V",))["V"]
    ones = run(s, variants=("V",), syn_weights=np.ones(len(s["syn"][1])))["V"]
    assert ones.scores() == pytest.approx(base.scores(), abs=1e-6)
    # zero weight on all synthetic unseen samples: GZSL never learns unseen classes
    w0 = run(s, variants=("V",), syn_weights=np.zeros(len(s["syn"][1])))["V"]
    assert w0.gzsl_u < 0.2
    with pytest.raises(DataError, match="weights"):
        run(s, variants=("V",), train_weights=np.ones(3))


def test_label_errors():
    s = sets()
    bad = dict(s)
    bad["syn"] = (s["syn"][0], np.where(s["syn"][1] == 6, 0, s["syn"][1]))   # seen label in syn
    with pytest.raises(DataError, match="must be unseen"):
        run(bad, variants=("V",))
    bad["syn"] = (s["syn"][0], np.where(s["syn"][1] == 6, EMPTY, s["syn"][1]))
    with pytest.raises(DataError, match="not among"):
        run(bad, variants=("V",))


def test_seen_diagnostic():
    s = sets(variants=("V",))
    acc = ev.seen_diagnostic(s["train"][0], s["train"][1], s["test_seen"][0], s["test_seen"][1],
                             SEEN, CFG, torch.Generator().manual_seed(0))
    assert acc > 0.8


def test_metrics_json_layout_percent_two_decimals():
    r = ev.EvalResult("VCS", 0.873456, 0.747, 0.8934999, 0.81, pd.DataFrame(), None, None)
    assert ev.metrics_json(r) == {"zsl": {"t1": 87.35}, "gzsl": {"u": 74.7, "s": 89.35, "h": 81.0}}


# --------------------------------------------------------------------------- stage


@pytest.fixture
def stage_dir(tmp_path, monkeypatch):
    draw = world(1)
    tr, ts, tu = draw(SEEN, 40), draw(SEEN, 10), draw(UNSEEN, 10)
    f = lambda t: t.numpy().astype(np.float32)
    PreparedData(f(tr[0]), f(tr[1]), tr[2], f(ts[0]), f(ts[1]), ts[2], f(tu[0]), f(tu[1]), tu[2],
                 np.random.default_rng(0).random((N_CLASSES, DA), dtype=np.float32), SEEN, UNSEEN,
                 np.arange(1, len(tr[2]) + 1)).save(tmp_path / "prepared" / "prepared.npz")

    # Fake synthesis module (contract of docs/CONTRACTS.md): samples near the true class means.
    def load_models(drg, dfg, device):
        return types.SimpleNamespace(Dec=FakeDec(), device=torch.device("cpu"))

    def generate(models, class_emb, classes, n_per_class, mode, generator):
        assert class_emb.shape == (N_CLASSES, DA) and mode == "one_step"
        d = world(1)   # same class centers as the real data
        x, c, y = d(np.asarray(classes), n_per_class)
        noise = torch.randn(x.shape, generator=generator) * 0.1
        return x + noise, c, torch.as_tensor(y)

    fake = types.ModuleType("zerodiffpp.synthesis")
    fake.load_models, fake.generate = load_models, generate
    monkeypatch.setitem(sys.modules, "zerodiffpp.synthesis", fake)
    params = {"runtime": {"device": "cpu", "threads": 1, "progress": False},
              "train": {"seed": 3},
              "eval": {"syn_per_class": 30, "classifier_epochs": 5, "classifier_batch": 64,
                       "classifier_lr": 0.01, "variant": "VCS", "sampling": "one_step",
                       "selection": "fixed"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def stage_args(d, out):
    return ["--params", str(d / "params.yaml"), "--prepared", str(d / "prepared"),
            "--metrics", str(d / out / "m.json"), "--per-class", str(d / out / "pc.csv"),
            "--eval-dir", str(d / out / "eval"), "--methods", "zerodiff"]


def test_stage_writes_deterministic_metrics(stage_dir):
    from zerodiffpp.stages.evaluate import main

    assert main(stage_args(stage_dir, "a")) == 0
    assert main(stage_args(stage_dir, "b") + ["--best-of-test"]) == 0
    assert main(stage_args(stage_dir, "c")) == 0
    a = (stage_dir / "a" / "m.json").read_bytes()
    assert a == (stage_dir / "c" / "m.json").read_bytes()
    assert (stage_dir / "a" / "pc.csv").read_bytes() == (stage_dir / "c" / "pc.csv").read_bytes()
    m = json.loads(a)
    assert set(m) == {"zerodiff"} and set(m["zerodiff"]) == {"zsl", "gzsl"}
    assert set(m["zerodiff"]["gzsl"]) == {"u", "s", "h"} and m["zerodiff"]["zsl"]["t1"] > 50
    b = json.loads((stage_dir / "b" / "m.json").read_bytes())
    assert b["zerodiff"]["gzsl"] == m["zerodiff"]["gzsl"]
    assert "leaky_best_of_test" in b["zerodiff"]
    pc = pd.read_csv(stage_dir / "a" / "pc.csv")
    assert list(pc.columns) == ["method", "variant", "protocol", "split", "class_id", "n_test", "n_correct",
                                "accuracy"]
    assert pc["accuracy"].between(0, 100).all()


def test_stage_bad_params_exit_2(stage_dir, capsys):
    from zerodiffpp.stages.evaluate import main

    p = yaml.safe_load((stage_dir / "params.yaml").read_text())
    p["eval"]["variant"] = "XYZ"
    (stage_dir / "params.yaml").write_text(yaml.safe_dump(p))
    assert main(stage_args(stage_dir, "a")) == 2
    assert "eval.variant" in capsys.readouterr().err


def test_empty_test_split_fails_before_training():
    s = sets(variants=("V",))
    bad = dict(s)
    bad["test_unseen"] = ({"V": torch.zeros(0, DX)}, np.zeros(0, np.int64))
    with pytest.raises(DataError, match="test-unseen: no sample"):
        run(bad, variants=("V",))


# --------------------------------------------------------------------------- ZeroDiff++ variants

PP_METHODS = ("zerodiff", "zerodiff_tta", "zerodiff_diffgen", "zerodiffpp")


@pytest.fixture(scope="module")
def pp_dir(tmp_path_factory):
    """Clustered prepared data + a tiny trained DRG/DFG (tests/plusplus_utils.py)."""
    import plusplus_utils as ppu

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    d = tmp_path_factory.mktemp("pp")
    data = ppu.clustered_data()
    data.save(d / "prepared" / "prepared.npz")
    ppu.train_tiny(data, d, epochs=1)
    torch.set_num_threads(old)
    params = {"runtime": {"device": "cpu", "threads": 1, "progress": False}, "train": {"seed": 3},
              "eval": {"syn_per_class": 30, "classifier_epochs": 5, "classifier_batch": 64,
                       "classifier_lr": 0.01, "selection": "fixed"},
              "tta": {"rounds": 2, "epochs": 2, "batch_size": 32, "confidence": 0.2},
              "diffgen": {"start_levels": [1, 2, 4]}, "spurious": {"syn_per_class": 20}}
    (d / "params.yaml").write_text(yaml.safe_dump(params))
    return d, data


@pytest.fixture
def good_generator(pp_dir, monkeypatch):
    """A tiny GAN trained for seconds cannot generate unseen classes, so no test sample would
    ever be pseudo-labelled unseen.  Stand-in for a well-trained generator: the real G's output
    pulled half-way to the class mean of the data (still a function of G, so DiffTTA matters)."""
    import zerodiffpp.synthesis as synthesis

    data = pp_dir[1]
    xs = np.concatenate([data.train_x, data.test_unseen_x])
    ys = np.concatenate([data.train_y, data.test_unseen_y])
    means = torch.as_tensor(np.stack([xs[ys == k].mean(0) for k in range(data.n_classes)]))
    real = synthesis.generate

    def generate(models, class_emb, classes, n_per_class, mode, generator, chunk_size=4096):
        x, c, y = real(models, class_emb, classes, n_per_class, mode, generator, chunk_size)
        return 0.5 * x + 0.5 * means[y], c, y

    monkeypatch.setattr(synthesis, "generate", generate)


def pp_args(d, out, *extra):
    return ["--params", str(d / "params.yaml"), "--prepared", str(d / "prepared"),
            "--drg", str(d / "drg"), "--dfg", str(d / "dfg"), "--metrics", str(d / out / "m.json"),
            "--per-class", str(d / out / "eval" / "pc.csv"), "--eval-dir", str(d / out / "eval"),
            *extra]


def read_generated(d, out):
    from zerodiffpp.io import read_npz

    return {m: read_npz(d / out / "eval" / m / "generated.npz") for m in PP_METHODS}


def test_plusplus_stage_writes_four_methods(pp_dir, good_generator):
    from zerodiffpp.stages.evaluate import main

    d, data = pp_dir
    assert main(pp_args(d, "a")) == 0
    m = json.loads((d / "a" / "m.json").read_text())
    assert set(m) == set(PP_METHODS)
    for name, scores in m.items():
        extra = set() if name == "zerodiff" else {"pseudo"}     # transductive: pseudo-labels
        assert set(scores) == {"zsl", "gzsl"} | extra and set(scores["gzsl"]) == {"u", "s", "h"}
        if extra:
            assert set(scores["pseudo"]) == {"per_class", "precision"}
    pc = pd.read_csv(d / "a" / "eval" / "pc.csv")
    assert list(pc.columns[:2]) == ["method", "variant"] and set(pc["method"]) == set(PP_METHODS)
    assert len(pc) == 4 * (2 * len(data.unseen_classes) + len(data.seen_classes))
    diag = json.loads((d / "a" / "eval" / "zerodiffpp.json").read_text())
    assert [r["skipped"] for r in diag["tta_rounds"]] == [False, False]
    for key in ("diffgen_zerodiff_diffgen", "diffgen_zerodiffpp"):   # 0.5 * 30 per unseen class
        assert diag[key]["unseen"] == {str(k): 15 for k in data.unseen_classes}
        assert diag[key]["seen"] == {}       # 40 real per seen class >= 0.25 * 30
    gen = read_generated(d, "a")
    for arrays in gen.values():
        assert set(arrays) == {"seen_x", "seen_y", "unseen_x", "unseen_y"}
        for part, classes in (("seen", data.seen_classes), ("unseen", data.unseen_classes)):
            x, y = arrays[f"{part}_x"], arrays[f"{part}_y"]
            assert x.dtype == np.float32 and x.shape == (20 * len(classes), data.x_dim)
            assert np.array_equal(np.unique(y, return_counts=True)[1], np.full(len(classes), 20))
            assert set(y.tolist()) == set(classes.tolist()) and np.isfinite(x).all()
    # TTA changes the generator; DiffGen mixes partial features into the unseen set only
    assert not np.array_equal(gen["zerodiff"]["unseen_x"], gen["zerodiff_tta"]["unseen_x"])
    assert np.array_equal(gen["zerodiff"]["seen_x"], gen["zerodiff_diffgen"]["seen_x"])
    assert not np.array_equal(gen["zerodiff"]["unseen_x"], gen["zerodiff_diffgen"]["unseen_x"])

    # deterministic: a rerun is byte-identical
    assert main(pp_args(d, "b")) == 0
    assert (d / "a" / "m.json").read_bytes() == (d / "b" / "m.json").read_bytes()
    assert (d / "a" / "eval" / "pc.csv").read_bytes() == (d / "b" / "eval" / "pc.csv").read_bytes()
    again = read_generated(d, "b")
    assert all(np.array_equal(gen[m][k], again[m][k]) for m in PP_METHODS for k in gen[m])


def test_plusplus_stage_never_reads_test_labels(pp_dir, good_generator, tmp_path):
    """Transductive methods see test *features* only: shuffling the test labels changes the
    scores but not a single generated feature or pseudo-label count."""
    import dataclasses

    from zerodiffpp.stages.evaluate import main

    d, data = pp_dir
    rng = np.random.default_rng(0)
    shuffled = dataclasses.replace(data, test_seen_y=rng.permutation(data.test_seen_y),
                                   test_unseen_y=rng.permutation(data.test_unseen_y))
    shuffled.save(tmp_path / "prepared" / "prepared.npz")
    assert main(pp_args(d, "c")) == 0
    args = pp_args(d, "s")
    args[args.index("--prepared") + 1] = str(tmp_path / "prepared")
    assert main(args) == 0
    a, b = read_generated(d, "c"), read_generated(d, "s")
    assert all(np.array_equal(a[m][k], b[m][k]) for m in PP_METHODS for k in a[m])
    da, db = (json.loads((d / o / "eval" / "zerodiffpp.json").read_text()) for o in ("c", "s"))
    assert da["tta_rounds"][0]["n_pseudo"] == db["tta_rounds"][0]["n_pseudo"]
    assert da["pseudo_tta"]["per_class"] == db["pseudo_tta"]["per_class"]


def test_plusplus_stage_subset_and_errors(pp_dir, capsys):
    from zerodiffpp.stages.evaluate import main

    d, _ = pp_dir
    assert main(pp_args(d, "z", "--methods", "zerodiff")) == 0
    assert set(json.loads((d / "z" / "m.json").read_text())) == {"zerodiff"}
    assert not (d / "z" / "eval" / "zerodiff_tta").exists()
    assert main(pp_args(d, "z", "--methods", "zerodiff,bogus")) == 2
    assert "--methods" in capsys.readouterr().err
    p = yaml.safe_load((d / "params.yaml").read_text())
    p["diffgen"]["start_levels"] = [1, 5]
    (d / "bad.yaml").write_text(yaml.safe_dump(p))
    args = pp_args(d, "z")
    args[1] = str(d / "bad.yaml")
    assert main(args) == 2
    assert "diffgen.start_levels[1]=5" in capsys.readouterr().err
    # without a DiffGen method the start levels are not needed
    assert main(args + ["--methods", "zerodiff_tta"]) == 0


def test_with_zsl_from_retrains_only_the_zsl_half():
    """Given the set evaluate_variants trained its ZSL classifier on, with_zsl_from reproduces
    that half exactly (same seed, weights, table); another set changes ZSL only."""
    s = sets(0)
    seed_gen = lambda: torch.Generator().manual_seed(5)   # noqa: E731
    res = run(s, variants=("VCS",), seed=5)["VCS"]
    same = ev.with_zsl_from(res, s["syn"][0], s["syn"][1], s["test_unseen"][0],
                            s["test_unseen"][1], UNSEEN, CFG, seed_gen())
    assert same.zsl_t1 == res.zsl_t1
    pd.testing.assert_frame_equal(same.per_class, res.per_class)
    for a, b in zip(same.zsl.model.parameters(), res.zsl.model.parameters()):
        assert torch.equal(a, b)
    other = sets(1)["syn"]       # another draw of the unseen classes
    moved = ev.with_zsl_from(res, other[0], other[1], s["test_unseen"][0], s["test_unseen"][1],
                             UNSEEN, CFG, seed_gen())
    assert moved.gzsl is res.gzsl and (moved.gzsl_u, moved.gzsl_s, moved.gzsl_h) == (
        res.gzsl_u, res.gzsl_s, res.gzsl_h)
    g_old, g_new = (r.per_class[r.per_class["protocol"] == "gzsl"].reset_index(drop=True)
                    for r in (res, moved))
    pd.testing.assert_frame_equal(g_old, g_new)
    assert not torch.equal(next(moved.zsl.model.parameters()), next(res.zsl.model.parameters()))
    assert list(moved.per_class["protocol"]) == list(res.per_class["protocol"])
    with pytest.raises(DataError, match="ZSL: must be unseen"):
        ev.with_zsl_from(res, s["train"][0], s["train"][1], s["test_unseen"][0],
                         s["test_unseen"][1], UNSEEN, CFG, seed_gen())


def test_gzsl_only_result_filled_by_with_zsl_from_equals_the_full_one():
    """evaluate_variants(zsl=False) skips the ZSL classifier (what the DiffGen methods do under
    tta.zsl_pool: unseen) and leaves the GZSL half unchanged; with_zsl_from then gives exactly
    the full result: T1, per-class rows in order, leaky fields in order."""
    import math

    s = sets(0)
    full = run(s, variants=("VCS",), seed=5, best_of_test=True)["VCS"]
    half = run(s, variants=("VCS",), seed=5, best_of_test=True, zsl=False)["VCS"]
    assert half.zsl is None and math.isnan(half.zsl_t1)
    assert set(half.per_class["protocol"]) == {"gzsl"}
    assert (half.gzsl_u, half.gzsl_s, half.gzsl_h) == (full.gzsl_u, full.gzsl_s, full.gzsl_h)
    assert "zsl_t1" not in half.leaky
    filled = ev.with_zsl_from(half, s["syn"][0], s["syn"][1], s["test_unseen"][0],
                              s["test_unseen"][1], UNSEEN, CFG, torch.Generator().manual_seed(5))
    assert filled.zsl_t1 == full.zsl_t1
    pd.testing.assert_frame_equal(filled.per_class, full.per_class)
    assert list(filled.leaky.items()) == list(full.leaky.items())
    for a, b in zip(filled.zsl.model.parameters(), full.zsl.model.parameters()):
        assert torch.equal(a, b)


def test_plusplus_zsl_pool_unseen_changes_only_transductive_zsl(pp_dir, good_generator, tmp_path):
    """tta.zsl_pool: unseen retrains the transductive methods' ZSL halves from the ZSL test
    set's own pseudo-labels: ZeroDiff, every GZSL number, the generated sets for the
    spuriousness stage stay byte-identical to zsl_pool: gzsl; test labels are never read."""
    import dataclasses

    from zerodiffpp.stages.evaluate import main

    d, data = pp_dir
    p = yaml.safe_load((d / "params.yaml").read_text())
    p["tta"]["zsl_pool"] = "unseen"
    (d / "zsl.yaml").write_text(yaml.safe_dump(p))
    assert main(pp_args(d, "g")) == 0
    args = pp_args(d, "u")
    args[1] = str(d / "zsl.yaml")
    assert main(args) == 0
    mg, mu = (json.loads((d / o / "m.json").read_text()) for o in ("g", "u"))
    assert mg["zerodiff"] == mu["zerodiff"]
    for name in PP_METHODS:
        assert mg[name]["gzsl"] == mu[name]["gzsl"]
    pg, pu = (pd.read_csv(d / o / "eval" / "pc.csv") for o in ("g", "u"))
    gz = pg["protocol"] == "gzsl"
    pd.testing.assert_frame_equal(pg[gz], pu[gz])
    assert list(pg["method"]) == list(pu["method"])
    zsl = (pg["protocol"] == "zsl") & (pg["method"] != "zerodiff")
    assert not pg[zsl]["n_correct"].equals(pu[zsl]["n_correct"])     # the ZSL pool was used
    gen_g, gen_u = read_generated(d, "g"), read_generated(d, "u")
    assert all(np.array_equal(gen_g[m][k], gen_u[m][k]) for m in PP_METHODS for k in gen_g[m])
    diag = json.loads((d / "u" / "eval" / "zerodiffpp.json").read_text())["zsl_pool"]
    assert [r["skipped"] for r in diag["tta_rounds"]] == [False, False]
    assert set(diag) == {"pseudo_f0", "tta_rounds", "pseudo_tta"}
    assert diag["pseudo_tta"]["n"] > 0
    # the ZSL pool is read without its labels: shuffled test labels, same pseudo-label counts
    rng = np.random.default_rng(1)
    shuffled = dataclasses.replace(data, test_seen_y=rng.permutation(data.test_seen_y),
                                   test_unseen_y=rng.permutation(data.test_unseen_y))
    shuffled.save(tmp_path / "prepared" / "prepared.npz")
    args = pp_args(d, "s")
    args[1] = str(d / "zsl.yaml")
    args[args.index("--prepared") + 1] = str(tmp_path / "prepared")
    assert main(args) == 0
    ds = json.loads((d / "s" / "eval" / "zerodiffpp.json").read_text())["zsl_pool"]
    assert ds["tta_rounds"] == diag["tta_rounds"]
    for key in ("pseudo_f0", "pseudo_tta"):
        assert ds[key]["n"] == diag[key]["n"]
