"""Feature extraction: SupCon loss, networks, augmentation, training on seen data only,
determinism, and the features/prepare stages end to end on tiny data."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from zerodiffpp.config import FeaturesConfig
from zerodiffpp.data.schema import ZSLData
from zerodiffpp.features import extract
from zerodiffpp.features.backbones import (ContrastiveModel, FeatureEncoder, ImageBackbone)
from zerodiffpp.features.supcon import supervised_contrastive_loss

CPU = torch.device("cpu")
TINY = FeaturesConfig(feature_dim=16, ce_epochs=1, sc_epochs=1, batch_size=16,
                      projection_dim=8, seed=3)
TINY_WIDTHS = (4, 8)


def make_images(seen=3, unseen=2, per_class=20, size=12, seed=0) -> ZSLData:
    """Image dataset: class-specific blob positions + noise, 1 x size x size, 0..255 floats.
    Seen classes: 16 trainval + 4 test_seen images each; unseen: all test_unseen."""
    rng = np.random.default_rng(seed)
    n_cls = seen + unseen
    labels = np.repeat(np.arange(1, n_cls + 1), per_class)
    imgs = rng.uniform(0, 60, size=(labels.size, 1, size, size))
    for i, lab in enumerate(labels):
        r = (lab * 3) % (size - 4)
        imgs[i, 0, r:r + 4, r:r + 4] += 180
    rows = np.arange(labels.size)
    is_seen = labels <= seen
    within = rows % per_class
    tv = rows[is_seen & (within < per_class - 4)]
    ts = rows[is_seen & (within >= per_class - 4)]
    return ZSLData(
        name="toy-images", features=np.round(imgs).reshape(labels.size, -1).astype(np.float32),
        labels=labels.astype(np.int64),
        class_embeddings=rng.uniform(0.1, 1, size=(n_cls, 5)).astype(np.float32),
        trainval_loc=tv + 1, test_seen_loc=ts + 1, test_unseen_loc=rows[~is_seen] + 1,
        class_names=[f"class{i}" for i in range(n_cls)], image_shape=(1, size, size),
        extra={"embedding_norm_default": "l2"}).validate()


def make_feature_data(seed=0) -> ZSLData:
    data = make_images(seed=seed)
    rng = np.random.default_rng(seed + 1)
    proto = rng.normal(size=(data.n_classes, 10))
    data.features = (proto[data.labels - 1] + 0.3 * rng.normal(size=(data.labels.size, 10))
                     ).astype(np.float32)
    data.image_shape = None
    return data.validate()


# --------------------------------------------------------------------------- SupCon loss


def _reference_supcon(z, labels, t):
    """Literal per-anchor formula of Khosla et al. (L_out), loops only."""
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    n, total, count = len(z), 0.0, 0
    for i in range(n):
        pos = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if not pos:
            continue
        denom = sum(math.exp(z[i] @ z[a] / t) for a in range(n) if a != i)
        total += -sum(math.log(math.exp(z[i] @ z[p] / t) / denom) for p in pos) / len(pos)
        count += 1
    return total / count


def test_supcon_known_value():
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    loss = supervised_contrastive_loss(z, torch.tensor([0, 0, 1]), temperature=1.0)
    # anchors 0 and 1: -log(e / (e + 1)); anchor 2 has no positive and is left out
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-6)


def test_supcon_matches_reference_formula():
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(12, 5, generator=gen)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 3, 0, 1, 2])
    loss = supervised_contrastive_loss(z, labels, temperature=0.2)
    assert loss.item() == pytest.approx(_reference_supcon(z.numpy().astype(float),
                                                          labels.tolist(), 0.2), rel=1e-5)


def test_supcon_lower_for_clustered_embeddings_and_has_gradient():
    gen = torch.Generator().manual_seed(1)
    labels = torch.arange(4).repeat(8)
    centres = torch.randn(4, 16, generator=gen) * 5
    clustered = centres[labels] + 0.1 * torch.randn(32, 16, generator=gen)
    scattered = torch.randn(32, 16, generator=gen).requires_grad_()
    low = supervised_contrastive_loss(clustered, labels, 0.1)
    high = supervised_contrastive_loss(scattered, labels, 0.1)
    assert low.item() < high.item()
    high.backward()
    assert scattered.grad is not None and torch.isfinite(scattered.grad).all()


def test_supcon_without_positives_is_zero():
    loss = supervised_contrastive_loss(torch.randn(3, 4), torch.tensor([0, 1, 2]), 0.1)
    assert loss.item() == 0.0


# --------------------------------------------------------------------------- networks


def test_backbone_and_encoder_shapes():
    net = ImageBackbone(1, 32, widths=(8, 16, 32)).eval()
    out = net(torch.randn(5, 1, 28, 28))
    assert out.shape == (5, 32) and (out >= 0).all()
    enc = FeatureEncoder(10, 10).eval()
    assert enc(torch.randn(5, 10)).shape == (5, 10)
    proj = ContrastiveModel(FeatureEncoder(10, 6), projection_dim=4).eval()(torch.randn(5, 10))
    assert proj.shape == (5, 4)
    np.testing.assert_allclose(proj.norm(dim=1).detach().numpy(), 1.0, rtol=1e-5)


def test_augment_images_shapes_determinism_and_identity():
    x = torch.randn(6, 1, 12, 12)
    a = extract.augment_images(x, torch.Generator().manual_seed(0), noise=0.1)
    b = extract.augment_images(x, torch.Generator().manual_seed(0), noise=0.1)
    assert a.shape == x.shape and torch.equal(a, b)
    ident = extract.augment_images(x, torch.Generator().manual_seed(0), shift=0, flip=False)
    assert torch.equal(ident, x)
    # a pure shift moves content but keeps the interior values of the image
    shifted = extract.augment_images(x, torch.Generator().manual_seed(0), flip=False)
    assert not torch.equal(shifted, x)


# --------------------------------------------------------------------------- extraction


def test_seen_training_set_is_trainval_with_reindexed_labels():
    data = make_images()
    train = extract.seen_training_set(data)
    np.testing.assert_array_equal(train.rows, data.idx("trainval"))
    assert set(train.targets.tolist()) == {0, 1, 2}
    assert train.seen_classes.tolist() == [0, 1, 2]


def test_image_extraction_uses_only_seen_trainval_and_is_deterministic(monkeypatch):
    data = make_images()
    trainval_pixels = data.features[data.idx("trainval")]
    seen_by_training = []
    for name in ("train_ce_backbone", "train_supcon_encoder"):
        original = getattr(extract, name)

        def spy(inputs, *args, _original=original, **kwargs):
            seen_by_training.append(inputs.shape[0])
            return _original(inputs, *args, **kwargs)
        monkeypatch.setattr(extract, name, spy)

    first = extract.extract_image_features(data, TINY, CPU, widths=TINY_WIDTHS,
                                           show_progress=False)
    assert seen_by_training == [len(trainval_pixels)] * 2
    n = data.labels.size
    assert first.x.shape == (n, 16) and first.c.shape == (n, 16)
    assert first.x.dtype == np.float32 and np.isfinite(first.x).all() and np.isfinite(first.c).all()

    again = extract.extract_image_features(data, TINY, CPU, widths=TINY_WIDTHS,
                                           show_progress=False)
    np.testing.assert_array_equal(first.x, again.x)
    np.testing.assert_array_equal(first.c, again.c)

    # Poison every test image: if any were used for training (or for the input
    # standardisation) the networks, and so the trainval features, would change / be NaN.
    poisoned = make_images()
    test_rows = np.concatenate([data.idx("test_seen"), data.idx("test_unseen")])
    poisoned.features[test_rows] = np.nan
    third = extract.extract_image_features(poisoned, TINY, CPU, widths=TINY_WIDTHS,
                                           show_progress=False)
    tv = data.idx("trainval")
    np.testing.assert_array_equal(third.x[tv], first.x[tv])
    np.testing.assert_array_equal(third.c[tv], first.c[tv])


def test_feature_dataset_extraction_keeps_x_and_trains_c_on_seen_only():
    data = make_feature_data()
    first = extract.extract_feature_dataset(data, TINY, CPU, show_progress=False)
    np.testing.assert_array_equal(first.x, data.features)
    assert first.c.shape == data.features.shape and np.isfinite(first.c).all()
    assert first.info["method"] == "feature-mlp"
    poisoned = make_feature_data()
    poisoned.features[data.idx("test_unseen")] = np.nan
    second = extract.extract_feature_dataset(poisoned, TINY, CPU, show_progress=False)
    tv = data.idx("trainval")
    np.testing.assert_array_equal(second.c[tv], first.c[tv])


def test_sc_source_x_sets_c_to_x_without_training_an_encoder(monkeypatch):
    import dataclasses

    def no_supcon(*args, **kwargs):
        raise AssertionError("sc_source=x must not train a SupCon encoder")

    monkeypatch.setattr(extract, "train_supcon_encoder", no_supcon)
    cfg = dataclasses.replace(TINY, sc_source="x")
    feats = extract.extract_feature_dataset(make_feature_data(), cfg, CPU, show_progress=False)
    np.testing.assert_array_equal(feats.c, feats.x)
    assert feats.c is not feats.x and feats.info["sc_source"] == "x"
    images = extract.extract_image_features(make_images(), cfg, CPU, show_progress=False)
    np.testing.assert_array_equal(images.c, images.x)
    assert images.info["method"] == "c=x" and "ce" in images.info


def test_sc_source_is_validated():
    from zerodiffpp.config import ConfigError, config_from_dict

    with pytest.raises(ConfigError, match="features.sc_source"):
        config_from_dict({"features": {"sc_source": "paco"}})


# --------------------------------------------------------------------------- stages


def _write_params(path, data=None, **features):
    import yaml

    params = {"data": data or {}, "runtime": {"progress": False, "threads": 1, "device": "cpu"},
              "features": {"feature_dim": 16, "ce_epochs": 1, "sc_epochs": 1,
                           "batch_size": 16, "projection_dim": 8, **features},
              "train": {"seen_fraction": 0.5, "seed": 0}}
    path.write_text(yaml.safe_dump(params))
    return path


def test_features_and_prepare_stages_end_to_end(tmp_path, capsys):
    from zerodiffpp.data.matio import write_raw
    from zerodiffpp.data.prepared import PreparedData
    from zerodiffpp.features.store import read_features_dir
    from zerodiffpp.stages import features as features_stage
    from zerodiffpp.stages import prepare as prepare_stage

    data = make_images(size=8)
    raw = write_raw(data, tmp_path / "raw", embedding_norm_default="l2")
    params = _write_params(tmp_path / "params.yaml")
    feats, prep = tmp_path / "features", tmp_path / "prepared"
    assert features_stage.main(["--params", str(params), "--raw", str(raw),
                                "--out", str(feats)]) == 0
    info = json.loads((feats / "features.json").read_text())
    assert info["method"] == "image-cnn" and info["x_dim"] == 16 and info["dataset"] == data.name
    x, c, _ = read_features_dir(feats, data.labels.size)
    assert x.shape == (data.labels.size, 16) and c.shape == x.shape
    rerun = tmp_path / "features_rerun"                 # same params -> identical bytes
    assert features_stage.main(["--params", str(params), "--raw", str(raw),
                                "--out", str(rerun)]) == 0
    for name in ("ce_ce.mat", "con_paco.mat"):
        assert (rerun / name).read_bytes() == (feats / name).read_bytes()

    assert prepare_stage.main(["--params", str(params), "--raw", str(raw), "--features",
                               str(feats), "--out", str(prep)]) == 0
    prepared = PreparedData.load(prep / "prepared.npz")
    assert len(prepared.train_y) == 3 * 8          # half of 16 trainval images per class
    assert prepared.x_dim == 16 and prepared.attr_dim == 5
    assert (prep / "seen_subset.csv").read_text().startswith("trainval_position,row,label\n")
    assert not list(tmp_path.glob(".features.*")) and not list(tmp_path.glob(".prepared.*"))

    # ZeroDiff's own files beside res101.mat are validated and copied (feature_source auto)
    import shutil
    shutil.copyfile(feats / "ce_ce.mat", raw / "ce_ce.mat")
    shutil.copyfile(feats / "con_paco.mat", raw / "con_paco.mat")
    out2 = tmp_path / "features2"
    assert features_stage.main(["--params", str(params), "--raw", str(raw),
                                "--out", str(out2)]) == 0
    assert json.loads((out2 / "features.json").read_text())["method"] == "zerodiff-files"
    assert (out2 / "ce_ce.mat").read_bytes() == (feats / "ce_ce.mat").read_bytes()


def test_stages_report_bad_inputs(tmp_path, capsys):
    from zerodiffpp.data.matio import write_raw
    from zerodiffpp.features.store import write_feature_mat
    from zerodiffpp.stages import features as features_stage
    from zerodiffpp.stages import prepare as prepare_stage

    data = make_feature_data()
    raw = write_raw(data, tmp_path / "raw", embedding_norm_default="none")
    params = _write_params(tmp_path / "params.yaml")
    feats = tmp_path / "features"
    feats.mkdir()
    write_feature_mat(feats / "ce_ce.mat", np.zeros((data.labels.size - 1, 3)))
    write_feature_mat(feats / "con_paco.mat", np.zeros((data.labels.size, 3)))
    code = prepare_stage.main(["--params", str(params), "--raw", str(raw), "--features",
                               str(feats), "--out", str(tmp_path / "prep")])
    assert code == 2 and "ce_ce.mat" in capsys.readouterr().err

    # (a dataset that can have ZeroDiff's files: every stage validates the whole data section)
    zd_params = _write_params(tmp_path / "zd.yaml",
                              data={"dataset": "AWA2", "feature_source": "zerodiff"})
    code = features_stage.main(["--params", str(zd_params), "--raw", str(raw),
                                "--out", str(tmp_path / "f2")])
    assert code == 2 and "not found" in capsys.readouterr().err

    write_feature_mat(raw / "ce_ce.mat", np.zeros((3, 3)))       # wrong row count
    write_feature_mat(raw / "con_paco.mat", np.zeros((3, 3)))
    code = features_stage.main(["--params", str(params), "--raw", str(raw),
                                "--out", str(tmp_path / "f2")])
    err = capsys.readouterr().err
    assert code == 2 and "expected" in err and "rows" in err
    assert not (tmp_path / "f2").exists()
