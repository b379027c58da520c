"""METHOD.md 4.4 metrics on hand-made predictions with exact expected values."""
import numpy as np
import pytest
import torch

from zerodiffpp import metrics
from zerodiffpp.io import DataError


def test_per_class_table_skips_classes_without_test_samples():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 0, 1, 1, 0, 2]
    table = metrics.per_class_table(y_true, y_pred, [3, 0, 1, 2])  # 3 has no test sample
    assert table["class_id"].tolist() == [0, 1, 2]
    assert table["n_test"].tolist() == [3, 2, 1]
    assert table["n_correct"].tolist() == [2, 1, 1]
    assert table["accuracy"].tolist() == pytest.approx([2 / 3, 1 / 2, 1.0], abs=0, rel=1e-15)
    # macro mean over present classes, not micro (4/6)
    assert metrics.mean_class_accuracy(y_true, y_pred, [0, 1, 2, 3]) == pytest.approx(13 / 18, rel=1e-15)


def test_non_target_labels_are_ignored_and_torch_inputs_work():
    y_true = torch.tensor([5, 5, 7, 9])
    y_pred = torch.tensor([5, 7, 7, 5])
    # class 9 is not a target: its sample does not count
    assert metrics.mean_class_accuracy(y_true, y_pred, np.array([5, 7])) == pytest.approx(0.75)


def test_no_present_class_is_an_error_not_a_division_by_zero():
    with pytest.raises(DataError, match="no test sample"):
        metrics.mean_class_accuracy([1, 1], [1, 1], [0, 2])
    with pytest.raises(DataError, match="lengths differ"):
        metrics.per_class_table([0, 1], [0], [0, 1])
    with pytest.raises(DataError, match="integer"):
        metrics.per_class_table(np.array([0.5]), np.array([0.5]), [0])


def test_harmonic_mean_exact_and_zero():
    assert metrics.harmonic_mean(0.5, 0.75) == pytest.approx(0.6, rel=1e-15)
    assert metrics.harmonic_mean(0.0, 0.0) == 0.0
    assert metrics.harmonic_mean(0.0, 0.9) == 0.0
    assert metrics.harmonic_mean(1.0, 1.0) == 1.0


def test_gzsl_and_zsl_scores():
    seen, unseen = [0, 1], [2, 3]
    # test-seen: class 0 -> 1/2 right (other predicted as unseen 2), class 1 -> 1/1
    s_true, s_pred = [0, 0, 1], [0, 2, 1]
    # test-unseen: class 2 -> 0/2 (predicted seen), class 3 -> 2/2
    u_true, u_pred = [2, 2, 3, 3], [0, 1, 3, 3]
    out = metrics.gzsl_scores(s_true, s_pred, u_true, u_pred, seen, unseen)
    assert out["s"] == pytest.approx(0.75)
    assert out["u"] == pytest.approx(0.5)
    assert out["h"] == pytest.approx(0.6)
    assert metrics.zsl_t1(u_true, [3, 2, 3, 3], unseen) == pytest.approx(0.75)
