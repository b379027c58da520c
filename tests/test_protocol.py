"""The validation-class protocol (zerodiffpp.protocol, docs/protocol.md): calibration math on
hand-made scores, the validation view, the selection, and that no chosen setting depends on the
test set (scrambled test labels, dropped test features -> byte-identical selection files)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import yaml

import plusplus_utils as ppu
from zerodiffpp.config import Config, ConfigError, EvalConfig
from zerodiffpp.data.prepared import PreparedData
from zerodiffpp.io import DataError, write_json
from zerodiffpp.protocol import calibration as cal
from zerodiffpp.protocol.selection import apply_selection, load_selection, resolve
from zerodiffpp.protocol.split import choose_classes, dataset_val_classes, validation_view


# --------------------------------------------------------------------------- calibration


def hand_made():
    """Classes 0, 1 seen, 2, 3 unseen; four samples, log-probs chosen by hand."""
    lp = torch.log(torch.tensor([[0.50, 0.20, 0.25, 0.05],    # y=0: seen wins by log(2)
                                 [0.10, 0.40, 0.30, 0.20],    # y=2: seen 1 wins by log(4/3)
                                 [0.45, 0.05, 0.10, 0.40],    # y=3: seen 0 wins by log(9/8)
                                 [0.05, 0.15, 0.60, 0.20]]))  # y=2: unseen wins
    return lp, np.array([0, 1, 2, 3]), np.array([0, 1]), np.array([0, 2, 3, 2])


def test_decisions_and_calibrated_predictions():
    lp, classes, seen, y = hand_made()
    d = cal.decisions(lp, classes, seen, y)
    assert d.best_seen.tolist() == [0, 1, 0, 1] and d.best_unseen.tolist() == [2, 2, 3, 2]
    np.testing.assert_allclose(d.margin, np.log([0.5 / 0.25, 0.4 / 0.3, 0.45 / 0.4, 0.15 / 0.6]),
                               rtol=1e-5)
    assert d.predict(0.0).tolist() == [0, 1, 0, 2]                 # plain argmax
    assert d.predict(0.2).tolist() == [0, 1, 3, 2]                 # log(9/8) < 0.2 < log(4/3)
    assert d.predict(0.5).tolist() == [0, 2, 3, 2]                 # log(4/3) < 0.5 < log(2)
    assert d.predict(1.0).tolist() == [2, 2, 3, 2]


def test_best_gamma_matches_brute_force_and_sits_inside_the_plateau():
    lp, classes, seen, y = hand_made()
    d = cal.decisions(lp, classes, seen, y)
    best = cal.best_gamma(d, seen, [2, 3])
    # S = acc(class 0); U = mean(acc(2), acc(3)).  gamma in (log 4/3, log 2) -> all right: H = 1
    assert best.h == pytest.approx(1.0) and best.u == 1.0 and best.s == 1.0
    assert np.log(4 / 3) < best.gamma < np.log(2)
    grid = np.linspace(-3, 3, 6001)
    u, s, h = cal.scores_over_gammas(d, seen, [2, 3], grid)
    assert h.max() == pytest.approx(best.h)
    # vectorised scores equal the metric of the explicit predictions at every grid point
    from zerodiffpp import metrics
    for g in grid[::500]:
        p = d.predict(g)
        ref = metrics.gzsl_scores(y[:1], p[:1], y[1:], p[1:], seen, [2, 3])
        i = int(np.argmin(np.abs(grid - g)))
        assert (u[i], s[i]) == pytest.approx((ref["u"], ref["s"]))


def test_scores_over_gammas_equal_explicit_predictions_on_awkward_margins():
    """Ties, +-inf and NaN margins, a class with no sample: the sort-and-count scores equal
    the GZSL metric of the explicit predictions at every candidate gamma."""
    from zerodiffpp import metrics

    rng = np.random.default_rng(4)
    seen, unseen = np.array([0, 1, 2, 3]), np.array([4, 5, 6])      # class 6: no sample
    y = rng.choice([0, 1, 2, 3, 4, 5], 300)
    best_seen = np.where(rng.random(300) < 0.6, np.where(y < 4, y, 0), rng.choice(seen, 300))
    best_unseen = np.where(rng.random(300) < 0.5, np.where(y >= 4, y, 4), rng.choice(unseen, 300))
    margin = np.round(rng.normal(size=300), 1)                    # many ties
    margin[:3] = [np.inf, -np.inf, np.nan]
    d = cal.Decisions(best_seen, best_unseen, margin, y)
    gammas = cal._candidate_gammas(margin)
    u, s, h = cal.scores_over_gammas(d, seen, unseen, gammas)
    is_seen = np.isin(y, seen)
    for i, g in enumerate(gammas):
        p = d.predict(g)
        ref = metrics.gzsl_scores(y[is_seen], p[is_seen], y[~is_seen], p[~is_seen], seen, unseen)
        assert (u[i], s[i], h[i]) == pytest.approx((ref["u"], ref["s"], ref["h"]), abs=1e-12)


def toy_validation_sets(seed: int = 0):
    """A small, learnable validation view: 3 train-classes, 2 validation-classes, V block."""
    from zerodiffpp.protocol.selection import ValidationSets

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(5, 6)).astype(np.float32) * 2

    def draw(classes, n):
        y = np.repeat(classes, n)
        x = centres[y] + rng.normal(size=(len(y), 6)).astype(np.float32)
        return {"V": torch.from_numpy(x)}, y

    train, train_y = draw([0, 1, 2], 20)
    val_seen, val_seen_y = draw([0, 1, 2], 5)
    val_unseen, val_unseen_y = draw([3, 4], 8)
    return ValidationSets(train, train_y, val_seen, val_seen_y, val_unseen, val_unseen_y,
                          np.array([0, 1, 2]), np.array([3, 4])), draw


def toy_cfg(epochs: int = 8) -> Config:
    cfg = Config()
    return dataclasses.replace(cfg, eval=dataclasses.replace(
        cfg.eval, max_classifier_epochs=epochs, max_zsl_epochs=epochs, classifier_batch=16,
        classifier_lr=0.01))


def test_gzsl_scan_keeps_the_chosen_epochs_weights_so_no_refit_is_needed():
    from zerodiffpp.classifier import train_classifier
    from zerodiffpp.evaluation import compact_labels, concat_inputs, select, sub_generator
    from zerodiffpp.protocol.selection import scan_gzsl

    sets, draw = toy_validation_sets()
    syn, syn_y = draw([3, 4], 15)
    cfg = toy_cfg()
    scan = scan_gzsl(sets, sets.train, sets.train_y, syn, syn_y, "V", cfg, sub_generator(5, 1))
    assert 1 <= scan.epochs <= 8 and scan.classes.tolist() == [0, 1, 2, 3, 4]
    # the same seed and data for scan.epochs epochs: the very same weights
    y = torch.cat([compact_labels(sets.train_y, scan.classes, "t"),
                   compact_labels(syn_y, scan.classes, "s")])
    refit = train_classifier(select(concat_inputs(sets.train, syn), "V"), y, 5, epochs=scan.epochs,
                             lr=0.01, batch_size=16, generator=sub_generator(5, 1))
    assert torch.equal(refit.model.fc.weight, scan.model.fc.weight)
    assert torch.equal(refit.model.fc.bias, scan.model.fc.bias)
    assert scan.model.fc.weight.grad is None and not scan.model.training
    # and the scan's score is that classifier's calibrated validation H
    from zerodiffpp.classifier import log_probs
    pool = select(concat_inputs(sets.val_seen, sets.val_unseen), "V")
    d = cal.decisions(log_probs(scan.model, pool), scan.classes, sets.seen,
                      np.concatenate([sets.val_seen_y, sets.val_unseen_y]))
    assert cal.best_gamma(d, sets.seen, sets.unseen).h == scan.h


def test_only_the_winning_candidate_is_scanned_for_its_zsl_epoch():
    from zerodiffpp.protocol.selection import select_settings

    sets, draw = toy_validation_sets(1)
    calls = []

    def synthesise(n):
        calls.append(n)
        return draw([3, 4], n)

    cfg = toy_cfg()
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval,
                                                            syn_per_class_candidates=[6, 12]))
    sel = select_settings("toy", sets, synthesise, cfg, 0, ("V",), pseudo_labels=True, split={})
    assert calls == [6, 12]                             # one synthesis per count
    scanned = [c for c in sel.candidates if c["zsl_epochs"] is not None]
    assert len(sel.candidates) == 2 and len(scanned) == 1
    assert (scanned[0]["syn_per_class"], scanned[0]["zsl_epochs"]) == (sel.syn_per_class,
                                                                       sel.zsl_epochs)
    assert max(c["h"] for c in sel.candidates) == scanned[0]["h"]
    assert sel.run is not None and sel.run.calibration == sel.calibration


def test_calibrate_shifts_seen_columns_and_renormalises():
    lp, classes, seen, _ = hand_made()
    out = cal.calibrate(lp, cal.seen_mask(classes, seen), 0.5)
    assert torch.allclose(out.exp().sum(1), torch.ones(4), atol=1e-6)
    diff = (lp - out)
    assert torch.allclose(diff[:, 0], diff[:, 1]) and torch.allclose(diff[:, 2], diff[:, 3])
    assert torch.allclose(diff[:, 0] - diff[:, 2], torch.full((4,), 0.5), atol=1e-6)
    assert cal.calibrate(lp, cal.seen_mask(classes, seen), 0.0) is lp


def test_protocol_run_applies_calibration():
    from zerodiffpp.classifier import SoftmaxClassifier
    from zerodiffpp.evaluation import ProtocolRun

    model = SoftmaxClassifier(2, 3)
    with torch.no_grad():
        model.fc.weight.copy_(torch.eye(3, 2))
        model.fc.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
    x = {"V": torch.tensor([[0.0, 0.0]])}
    classes, seen = np.array([4, 7, 9]), np.array([4])
    assert ProtocolRun(model, classes).predict(x, "V").tolist() == [4]
    assert ProtocolRun(model, classes, calibration=2.0, seen=seen).predict(x, "V").tolist() == [7]


# --------------------------------------------------------------------------- split


def test_seeded_validation_classes():
    seen = np.arange(10)
    a = choose_classes(seen, 0.2, seed=0)
    assert a.source == "seeded" and len(a.val_classes) == 2 and len(a.train_classes) == 8
    assert np.array_equal(np.sort(np.concatenate([a.val_classes, a.train_classes])), seen)
    assert np.array_equal(choose_classes(seen, 0.2, seed=0).val_classes, a.val_classes)
    assert any(not np.array_equal(choose_classes(seen, 0.2, seed=s).val_classes, a.val_classes)
               for s in range(1, 6))
    assert len(choose_classes(np.arange(4), 0.9, seed=0).train_classes) == 2   # >= 2 remain
    with pytest.raises(DataError, match="need >= 3"):
        choose_classes(np.arange(2), 0.2, seed=0)


def test_dataset_split_is_used_only_when_class_disjoint():
    labels = np.repeat(np.arange(1, 7), 4)               # 1-based, classes 0..5, 4 rows each
    rows = {c: np.flatnonzero(labels == c + 1) + 1 for c in range(6)}
    seen = np.arange(5)
    train_loc = np.concatenate([rows[c] for c in (0, 1, 2)])
    val_loc = np.concatenate([rows[c] for c in (3, 4)])
    assert dataset_val_classes(labels, train_loc, val_loc, seen).tolist() == [3, 4]
    split = choose_classes(seen, 0.2, 0, dataset_val_classes(labels, train_loc, val_loc, seen))
    assert split.source == "dataset" and split.val_classes.tolist() == [3, 4]
    overlapping = np.concatenate([val_loc, rows[0][:1]])
    assert dataset_val_classes(labels, train_loc, overlapping, seen) is None
    assert dataset_val_classes(labels, train_loc, rows[5], seen) is None      # not a seen class
    assert dataset_val_classes(labels, None, val_loc, seen) is None


def test_validation_view_uses_seen_training_samples_only():
    data = ppu.clustered_data()
    split = choose_classes(data.seen_classes, 0.4, seed=1)
    view = validation_view(data, split, 0.25, seed=1)
    assert np.array_equal(view.seen_classes, split.train_classes)
    assert np.array_equal(view.unseen_classes, split.val_classes)
    assert set(view.train_y) == set(split.train_classes) == set(view.test_seen_y)
    assert set(view.test_unseen_y) == set(split.val_classes)
    # every row comes from the training set, none twice; 25 % of each train-class held out
    rows = np.concatenate([view.train_x, view.test_seen_x, view.test_unseen_x])
    assert len(rows) == len(data.train_x) and len(np.unique(rows, axis=0)) == len(rows)
    assert all(np.isin(r, data.train_x).all() for r in rows[:5])
    for c in split.train_classes:
        assert (view.test_seen_y == c).sum() == 10 and (view.train_y == c).sum() == 30


# --------------------------------------------------------------------------- selection files


def test_apply_and_resolve_selection(tmp_path):
    chosen = {"variant": "VS", "syn_per_class": 77, "gzsl_epochs": 9, "zsl_epochs": 4,
              "calibration": 1.5, "tta_confidence": 0.7}
    path = tmp_path / "sel.json"
    write_json(path, {"zerodiff": {"chosen": chosen, "version": 1}})
    cfg = resolve(Config(), path, "zerodiff")
    assert (cfg.eval.variant, cfg.eval.syn_per_class, cfg.eval.classifier_epochs,
            cfg.eval.zsl_epochs, cfg.eval.calibration, cfg.tta.confidence) == (
        "VS", 77, 9, 4, 1.5, 0.7)
    fixed = dataclasses.replace(Config(), eval=EvalConfig(selection="fixed"))
    assert resolve(fixed, path, "zerodiff") is fixed
    with pytest.raises(ConfigError, match="needs --selection"):
        resolve(Config(), None, "zerodiff")
    write_json(path, {"zerodiff": {"chosen": chosen}})
    with pytest.raises(DataError, match="not a selection file"):
        load_selection(path)
    # a per-method block the final round reads is checked too
    for block, missing in (({"diffgen": {"seen_fraction": 0.0, "unseen_fraction": 0.5,
                                         "gzsl_epochs": 3}}, "chosen.diffgen.calibration"),
                           ({"tta": {"calibration": 1.0}}, "chosen.tta.gzsl_epochs"),
                           ({"zerodiffpp": [1, 2]}, "chosen.zerodiffpp must be a mapping")):
        write_json(path, {"zerodiff": {"chosen": {**chosen, **block}, "version": 1}})
        with pytest.raises(DataError, match=missing):
            load_selection(path)
    assert apply_selection(Config(), {**chosen, "tta_confidence": None}).tta.confidence == 0.5
    # DiffGen's own budgets, epochs and calibration (protocol/diffgen_budget.py)
    dg = {"seen_fraction": 0.0, "unseen_fraction": 1.0, "gzsl_epochs": 12, "calibration": 3.25}
    cfg = apply_selection(Config(), {**chosen, "diffgen": dg})
    assert (cfg.diffgen.seen_fraction, cfg.diffgen.unseen_fraction, cfg.diffgen.classifier_epochs,
            cfg.diffgen.calibration) == (0.0, 1.0, 12, 3.25)
    assert cfg.eval.calibration == 1.5           # ZeroDiff's own choice is untouched


def test_every_transductive_method_runs_with_its_own_choice():
    from zerodiffpp.protocol.selection import method_config

    chosen = {"variant": "VS", "syn_per_class": 77, "gzsl_epochs": 9, "zsl_epochs": 4,
              "calibration": 1.5, "tta_confidence": 0.7,
              "diffgen": {"seen_fraction": 0.0, "unseen_fraction": 0.5, "gzsl_epochs": 12,
                          "zsl_epochs": 30, "calibration": 3.25}}
    own = {**chosen, "tta": {"gzsl_epochs": 11, "zsl_epochs": 20, "calibration": 2.5},
           "zerodiffpp": {"seen_fraction": 0.25, "unseen_fraction": 1.0, "gzsl_epochs": 7,
                          "zsl_epochs": 40, "calibration": 4.0}}

    def key(cfg):
        ev, dg = cfg.eval, cfg.diffgen
        return (ev.variant, ev.syn_per_class, ev.classifier_epochs, ev.zsl_epochs,
                ev.calibration, cfg.tta.confidence, dg.seen_fraction, dg.unseen_fraction)

    base = Config()
    assert key(method_config(base, own, "zerodiff")) == ("VS", 77, 9, 4, 1.5, 0.7, 0.0, 0.5)
    assert key(method_config(base, own, "zerodiff_tta")) == ("VS", 77, 11, 20, 2.5, 0.7, 0.0, 0.5)
    assert key(method_config(base, own, "zerodiff_diffgen")) == (
        "VS", 77, 12, 30, 3.25, 0.7, 0.0, 0.5)
    assert key(method_config(base, own, "zerodiffpp")) == ("VS", 77, 7, 40, 4.0, 0.7, 0.25, 1.0)
    # an older file without the transductive blocks: each falls back to the method it extends
    assert key(method_config(base, chosen, "zerodiff_tta")) == key(
        method_config(base, chosen, "zerodiff"))
    assert key(method_config(base, chosen, "zerodiffpp")) == key(
        method_config(base, chosen, "zerodiff_diffgen"))
    # fixed: the params as written
    fixed = dataclasses.replace(base, eval=dataclasses.replace(base.eval, selection="fixed"))
    assert method_config(fixed, None, "zerodiff_tta") is fixed
    assert method_config(fixed, None, "zerodiffpp").eval == method_config(
        fixed, None, "zerodiff_diffgen").eval
    with pytest.raises(ValueError, match="unknown method"):
        method_config(base, own, "fclswgan")


def test_diffgen_methods_use_their_own_classifier_settings():
    from zerodiffpp.protocol.selection import diffgen_eval

    cfg = Config()
    assert diffgen_eval(cfg) == cfg.eval                      # fixed defaults: eval's settings
    cfg = dataclasses.replace(cfg, eval=dataclasses.replace(cfg.eval, calibration=2.0),
                              diffgen=dataclasses.replace(cfg.diffgen, classifier_epochs=7,
                                                          calibration=0.0))
    ev = diffgen_eval(cfg)
    assert (ev.classifier_epochs, ev.calibration, ev.variant) == (7, 0.0, cfg.eval.variant)


# --------------------------------------------------------------------------- no test leakage


def without_test(data: PreparedData, mode: str) -> PreparedData:
    rng = np.random.default_rng(7)
    if mode == "scrambled":      # test labels permuted (and relabelled across seen/unseen)
        ys = rng.permutation(np.concatenate([data.test_seen_y, data.test_unseen_y]))
        n = len(data.test_seen_y)
        return dataclasses.replace(data, test_seen_y=ys[:n], test_unseen_y=ys[n:])
    empty = lambda a: a[:0]      # noqa: E731 -- test features dropped entirely
    return dataclasses.replace(
        data, **{f"{s}_{k}": empty(getattr(data, f"{s}_{k}"))
                 for s in ("test_seen", "test_unseen") for k in "xcy"})


def run_validation_round(data: PreparedData, root, method: str, choice: str = "inherit") -> bytes:
    """validation view -> tiny generator(s) on it -> the stage's --select output (bytes);
    ``choice``: eval.transductive_choice."""
    from zerodiffpp.stages import baseline as baseline_stage
    from zerodiffpp.stages import evaluate as evaluate_stage

    split = choose_classes(data.seen_classes, 0.4, seed=3)
    view = validation_view(data, split, 0.25, seed=3)
    view.save(root / "val" / "prepared.npz")
    write_json(root / "val" / "split.json", split.as_json())
    params = {"runtime": {"device": "cpu", "threads": 1, "progress": False}, "train": {"seed": 3},
              "eval": {"syn_per_class": 20, "syn_per_class_candidates": [10, 20],
                       "variant_candidates": ["V", "VC"], "max_classifier_epochs": 6,
                       "max_zsl_epochs": 6, "classifier_batch": 64, "classifier_lr": 0.01,
                       "transductive_choice": choice},
              "diffgen": {"seen_fraction_candidates": [0.0, 3.0]},  # 3 x 20 > real per class
              "baselines": {"epochs": 1, "hidden_dim": 16, "critic_steps": 1, "batch_size": 32}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    out = root / "selection.json"
    common = ["--params", str(root / "params.yaml"), "--prepared", str(root / "val"),
              "--select", str(out)]
    if method == "zerodiff":
        ppu.train_tiny(view, root, epochs=1)
        rc = evaluate_stage.main(common + ["--drg", str(root / "drg"), "--dfg", str(root / "dfg"),
                                           "--methods", "zerodiff",
                                           "--select-details", str(root / "details.json")])
    else:
        rc = baseline_stage.main(common + ["--method", method, "--out", str(root / "bl"),
                                           "--history", str(root / "history.csv")])
    assert rc == 0
    return out.read_bytes()


@pytest.mark.parametrize("method,choice", [("zerodiff", "inherit"), ("zerodiff", "own"),
                                           ("fvaegan", "inherit")])
def test_selection_never_depends_on_the_test_set(method, choice, tmp_path):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = ppu.clustered_data()
        ref = run_validation_round(data, tmp_path / "ref", method, choice)
        for mode in ("scrambled", "dropped"):
            assert run_validation_round(without_test(data, mode), tmp_path / mode, method,
                                        choice) == ref
    finally:
        torch.set_num_threads(old)
    body = json.loads(ref)[method]
    assert set(body["chosen"]) >= {"variant", "syn_per_class", "gzsl_epochs", "zsl_epochs",
                                   "calibration"}
    assert body["chosen"]["syn_per_class"] in (10, 20)
    assert 1 <= body["chosen"]["gzsl_epochs"] <= 6 and body["split"]["n_val_classes"] == 2
    if method == "zerodiff":
        assert body["chosen"]["variant"] in ("V", "VC") and "val_pseudo" in body
        dg = body["chosen"]["diffgen"]
        assert dg["seen_fraction"] in (0.0, 3.0) and 1 <= dg["gzsl_epochs"] <= 6
        assert body["val_diffgen"]["h"] >= 0 and body["val_diffgen"]["anchors"] > 0
        # one scanned candidate per seen top-up; the best validation H (first of equals) wins
        cands = json.loads((tmp_path / "ref" / "details.json").read_text())["diffgen_candidates"]
        assert [c["seen_fraction"] for c in cands] == [0.0, 3.0]
        assert cands[0]["n_seen"] == 0 < cands[1]["n_seen"]
        best = max(cands, key=lambda c: c["h"])
        assert (dg["seen_fraction"], dg["gzsl_epochs"], body["val_diffgen"]["h"]) == (
            best["seen_fraction"], best["gzsl_epochs"], best["h"])
        if choice == "inherit":       # ZeroDiff's ZSL epochs; no DiffTTA on the validation view
            assert "zsl_epochs" not in dg and "tta" not in body["chosen"]
            assert "zerodiffpp" not in body["chosen"] and "val_tta" not in body
            return
        assert 1 <= dg["zsl_epochs"] <= 6 and body["val_diffgen"]["t1"] >= 0
        # DiffTTA reran on the validation view: + DiffTTA's and ZeroDiff++'s own settings
        tta, pp = body["chosen"]["tta"], body["chosen"]["zerodiffpp"]
        assert 1 <= tta["gzsl_epochs"] <= 6 and 1 <= tta["zsl_epochs"] <= 6
        assert pp["seen_fraction"] in (0.0, 3.0) and 1 <= pp["gzsl_epochs"] <= 6
        # ZeroDiff++'s anchors are DiffTTA's final validation-class pseudo-labels
        assert body["val_zerodiffpp"]["anchors"] == body["val_tta"]["pseudo"]["n"]
        tr = json.loads((tmp_path / "ref" / "details.json").read_text())["transductive"]
        assert [r["round"] for r in tr["difftta_rounds"]] == [1, 2]
        assert not any(r["skipped"] for r in tr["difftta_rounds"])
        pcands = tr["zerodiffpp_candidates"]
        assert [c["seen_fraction"] for c in pcands] == [0.0, 3.0]
        assert body["val_zerodiffpp"]["h"] == max(c["h"] for c in pcands)


# --------------------------------------------------------------------------- own features


def test_without_classes_moves_validation_classes_out_of_training(shared_data):
    from zerodiffpp.data.sources import build_dataset
    from zerodiffpp.config import DataConfig
    from zerodiffpp.features.extract import seen_training_set
    from zerodiffpp.protocol.classes import without_classes

    data = build_dataset(DataConfig(dataset="snu-b36-ex",
                                    local_path=str(shared_data / "snu-b36-ex")))
    val = [3, 10, 20]
    held = without_classes(data, val)
    held.validate()
    seen = seen_training_set(held)
    assert not np.isin(val, seen.seen_classes).any()
    assert set(seen.seen_classes) == set(data.seen_classes()) - set(val)
    moved = np.isin(data.labels[held.test_unseen_loc - 1] - 1, val)
    n_val = np.isin(data.labels - 1, val).sum()
    assert moved.sum() == n_val                  # every sample of those classes, none lost
    assert len(held.trainval_loc) + len(held.test_seen_loc) + len(held.test_unseen_loc) == \
        len(data.trainval_loc) + len(data.test_seen_loc) + len(data.test_unseen_loc)


def test_view_from_features_keeps_the_subset_and_rescales_on_its_training_part():
    from zerodiffpp.data.schema import ZSLData
    from zerodiffpp.protocol.split import ClassSplit, view_from_features

    main = ppu.clustered_data()
    n_tr = len(main.train_y)
    # a raw dataset whose trainval rows are the prepared training rows, in order
    feats = np.concatenate([main.train_x, main.test_seen_x, main.test_unseen_x]) * 7.0 + 3.0
    labels = np.concatenate([main.train_y, main.test_seen_y, main.test_unseen_y]) + 1
    n = len(labels)
    raw = ZSLData("toy", feats.astype(np.float32), labels.astype(np.int64), main.class_emb,
                  np.arange(1, n_tr + 1), np.arange(n_tr + 1, n_tr + 1 + len(main.test_seen_y)),
                  np.arange(n_tr + 1 + len(main.test_seen_y), n + 1),
                  [f"c{i}" for i in range(main.n_classes)]).validate()
    split = ClassSplit(np.array([0, 1, 2]), np.array([3, 4]), "seeded")
    view = view_from_features(raw, feats, feats[:, :main.c_dim], main, split, 0.25, seed=0)
    assert view.train_x.min() == pytest.approx(0.0) and view.train_x.max() == pytest.approx(1.0)
    assert set(view.test_unseen_y) == {3, 4} and set(view.train_y) == {0, 1, 2}
    with pytest.raises(DataError, match="does not match data/raw"):
        bad = dataclasses.replace(main, train_y=np.roll(main.train_y, 1))
        view_from_features(raw, feats, feats[:, :main.c_dim], bad, split, 0.25, seed=0)


def test_epochs_by_fraction():
    from zerodiffpp.config import config_from_dict

    raw = {"train": {"seen_fraction": 0.1}, "dfg": {"epochs": 3, "epochs_by_fraction": {0.1: 30}},
           "baselines": {"epochs": 5, "epochs_by_fraction": {0.5: 9}}}
    cfg = config_from_dict(raw)
    assert (cfg.dfg.epochs, cfg.drg.epochs, cfg.baselines.epochs) == (30, 20, 5)
    with pytest.raises(ConfigError, match=r"drg.epochs_by_fraction\[1.5\]"):
        config_from_dict({"drg": {"epochs_by_fraction": {1.5: 3}}})


def test_report_renders_seed_means():
    from zerodiffpp.report import render_sweep, update_block

    sweep = {"zerodiff": {"p100": {"n": 3, "h": {"mean": 50.0, "std": 2.5},
                                   "t1": {"mean": 90.0, "std": 1.0}},
                          "p10": {"n": 3, "h": {"mean": 20.0, "std": 4.0}}}}
    table = render_sweep(sweep, "T")
    rows = table.splitlines()[4:]
    assert rows[0].startswith("| 100 % | ZeroDiff | inductive | 3 | 90.0 ± 1.0 |")
    assert "| 50.0 ± 2.5 |" in rows[0] and rows[1].startswith("| 10 % | ZeroDiff")
    readme = "a\n<!-- sweep:start -->\nold\n<!-- sweep:end -->\nb"
    assert update_block(readme, table, "sweep") == f"a\n<!-- sweep:start -->\n{table}\n<!-- sweep:end -->\nb"


def test_threshold_zero_is_a_candidate_that_reaches_unconfident_unseen_predictions():
    """When no unseen prediction reaches the smallest positive threshold (the seen classes keep
    most of the mass, as on the default data at 10 % seen), tau = 0 -- per predicted class, the
    top keep_fraction, no floor -- is the only candidate with unseen pseudo-labels, and F0.5
    picks it; without it the round has no threshold to offer (n = 0)."""
    from zerodiffpp.protocol.selection import ValidationSets, choose_threshold

    classes, seen, unseen = np.arange(5), np.arange(4), np.array([4])
    probs = torch.full((10, 5), 0.025)
    probs[:4, :4] = torch.eye(4) * 0.875 + 0.025          # 4 confident seen samples
    probs[4:] = 0.1875
    probs[4:, 4] = 0.25                                    # 6 unseen ones, argmax 4 at p = 0.25
    probs[9, 4], probs[9, 0] = 0.1875, 0.25                # one of them predicted as class 0

    class Run:
        def __init__(self):
            self.classes = classes

        def log_probs(self, pool, variant):
            assert pool.shape[0] == 10 and variant == "V"
            return probs.log()

    sets = ValidationSets(train=torch.zeros(1, 2), train_y=np.zeros(1, np.int64),
                          val_seen=torch.zeros(4, 2), val_seen_y=np.arange(4),
                          val_unseen=torch.zeros(6, 2), val_unseen_y=np.full(6, 4),
                          seen=seen, unseen=unseen)

    def pick(candidates):
        cfg = Config()
        cfg = dataclasses.replace(cfg, tta=dataclasses.replace(
            cfg.tta, confidence_candidates=candidates, keep_fraction=0.5, min_per_class=0))
        return choose_threshold(Run(), sets, "V", cfg)

    best = pick([0.0, 0.3, 0.5])
    assert best["tau"] == 0.0
    assert (best["n"], best["precision"], best["recall"]) == (3, 1.0, 0.5)   # top half of 5
    assert best["f05"] == pytest.approx(1.25 * 0.5 / (0.25 + 0.5), abs=1e-4)
    assert pick([0.3, 0.5])["n"] == 0
