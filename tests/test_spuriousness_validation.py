"""Validation of s_seen / s_unseen on controlled synthetic data (docs/spuriousness.md
"Validation"; the numbers there come from ``python -m zerodiffpp.spurious.validation``).

Generated feature sets are built directly (oracle, copier, ridge attribute -> feature map fitted
on seen train data), so the whole file runs in seconds.  Statistics are mean and std (ddof=1)
over 5 data seeds."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from zerodiffpp.config import SyntheticConfig
from zerodiffpp.data import synthetic
from zerodiffpp.spurious import validation as val

SEEDS = range(5)


@pytest.fixture(scope="module")
def seen_knob():
    return val.sweep("spurious_strength", val.SEEN_KNOB, "ridge", SEEDS)


@pytest.fixture(scope="module")
def unseen_knob():
    return val.sweep("unseen_shift", val.UNSEEN_KNOB, "ridge", SEEDS)


def _means(table, metric):
    return [table[v][metric][0] for v in table]


def _within_seed_std(table, metric):
    """Every knob value's mean lies within the seed std (the larger of the two) of knob 0's."""
    m0, s0 = table[0.0][metric]
    return all(abs(m - m0) <= max(s, s0) for m, s in (table[v][metric] for v in table))


def test_unseen_knob_draws_leave_everything_else_unchanged():
    base = synthetic.make(SyntheticConfig())
    shifted = synthetic.make(SyntheticConfig(unseen_shift=2.0))
    moved = np.flatnonzero(np.abs(shifted.features - base.features).max(axis=1) > 0) + 1
    assert np.array_equal(moved, base.test_unseen_loc)                 # unseen samples only
    model = synthetic.class_model(SyntheticConfig(unseen_shift=2.0))
    for c in base.unseen_classes():
        rows = base.labels == c + 1
        d = shifted.features[rows] - base.features[rows]
        assert np.allclose(d, d[0], atol=1e-5)                         # one direction per class
        assert np.isclose(np.linalg.norm(d[0]), 2.0, atol=1e-4)
        assert np.allclose(model.offset[c], d[0], atol=1e-5)
    assert not model.offset[base.seen_classes()].any()                 # seen classes never vary


def test_class_model_is_the_test_distribution():
    """The oracle's sampler has the moments of the real test-unseen samples (same cfg)."""
    cfg = SyntheticConfig(per_class=400, unseen_shift=3.0)
    sp = val.splits(cfg)
    c = int(sp.unseen[0])
    real = sp.test_unseen_x[sp.test_unseen_y == c]
    fake, _ = sp.model.sample([c], 4000, np.random.default_rng(0))
    assert np.abs(real.mean(0) - fake.mean(0)).max() < 5 * cfg.noise / np.sqrt(400)
    assert abs(real.std(0).mean() - cfg.noise) < 0.03


def test_seen_metric_rises_with_the_seen_knob(seen_knob):
    means = _means(seen_knob, "s_seen")
    assert all(a < b for a, b in zip(means, means[1:])), means
    # each step is larger than the seed std of both ends (a real rise, not noise)
    stats = [seen_knob[v]["s_seen"] for v in seen_knob]
    for (m_a, s_a), (m_b, s_b) in zip(stats, stats[1:]):
        assert m_b - m_a > max(s_a, s_b)


def test_unseen_metric_stays_within_its_seed_std_under_the_seen_knob(seen_knob):
    assert _within_seed_std(seen_knob, "s_unseen"), seen_knob


def test_unseen_metric_rises_with_the_unseen_knob(unseen_knob):
    means = _means(unseen_knob, "s_unseen")
    assert all(a < b for a, b in zip(means, means[1:])), means
    assert means[-1] - means[0] > 5 * unseen_knob[0.0]["s_unseen"][1]


def test_seen_metric_stays_within_its_seed_std_under_the_unseen_knob(unseen_knob):
    assert _within_seed_std(unseen_knob, "s_seen"), unseen_knob


def test_oracle_scores_about_zero_on_both():
    row = val.sweep("spurious_strength", (0.0,), "oracle", SEEDS)[0.0]
    for metric in ("s_seen", "s_unseen"):
        mean, std = row[metric]
        assert abs(mean) < 0.01 and abs(mean) <= 3 * std / np.sqrt(len(SEEDS)) + 1e-3, row


def test_oracle_is_not_fooled_by_either_knob():
    """Sampling the test distributions, the oracle never inherits the training nuisance
    (s_seen <= 0: it is closer to held-out samples) and always transfers (s_unseen ~ 0)."""
    seen = val.sweep("spurious_strength", (3.0,), "oracle", SEEDS)[3.0]
    unseen = val.sweep("unseen_shift", (3.0,), "oracle", SEEDS)[3.0]
    assert seen["s_seen"][0] < 0 and abs(seen["s_unseen"][0]) < 0.01
    assert abs(unseen["s_unseen"][0]) < 0.01 and abs(unseen["s_seen"][0]) < 0.01


def test_copier_scores_a_high_seen_metric():
    copier = val.sweep("spurious_strength", (0.0,), "copier", SEEDS)[0.0]["s_seen"]
    ridge = val.sweep("spurious_strength", (0.0,), "ridge", SEEDS)[0.0]["s_seen"]
    # 200 draws with replacement from 96 training samples cover 1 - exp(-200/96) ~ 0.88 of them
    assert copier[0] > 0.8 and copier[0] - ridge[0] > 50 * max(copier[1], ridge[1])


def test_validation_cli_prints_the_tables(capsys):
    assert val.main(["--seeds", "2", "--gen-per-class", "50"]) == 0
    out = capsys.readouterr().out
    assert "knob data.synthetic.spurious_strength" in out
    assert "knob data.synthetic.unseen_shift" in out
    assert out.count("ridge ") == len(val.SEEN_KNOB) + len(val.UNSEEN_KNOB)
    assert "copier  s_seen" in out


def test_knobs_default_to_zero():
    assert dataclasses.asdict(SyntheticConfig())["unseen_shift"] == 0.0
