"""DiffTTA (METHOD.md 6.3): pseudo-label selection, the no-confident-sample guard, what is and is
not updated, determinism, the anchor/replay terms and the GZSL labeller."""
import dataclasses

import numpy as np
import pytest
import torch

from plusplus_utils import clustered_data, random_models, same_state, state
from zerodiffpp.config import DFGConfig, EvalConfig, TTAConfig
from zerodiffpp.evaluation import build_blocks, concat_inputs
from zerodiffpp.losses import vae_loss
from zerodiffpp.tta import (GZSLLabeller, PseudoLabels, ReplaySet, bce_kl_per_sample, run_difftta,
                            select_pseudo_labels)

DFG = DFGConfig()
FAST = TTAConfig(rounds=2, epochs=2, batch_size=16)


@pytest.fixture(scope="module")
def data():
    return clustered_data()


def pool(data):
    return (torch.as_tensor(np.concatenate([data.test_seen_x, data.test_unseen_x])),
            torch.as_tensor(np.concatenate([data.test_seen_c, data.test_unseen_c])))


def replay(data):
    return ReplaySet(torch.as_tensor(data.train_x), torch.as_tensor(data.train_c),
                     torch.as_tensor(data.train_y))


def confident_probs(n, classes, seed=0, low=0.55, high=0.99):
    """Each row: one class with p in [low, high], the rest spread evenly."""
    g = torch.Generator().manual_seed(seed)
    k = len(classes)
    top = low + (high - low) * torch.rand(n, generator=g)
    col = torch.randint(0, k, (n,), generator=g)
    probs = ((1 - top) / (k - 1)).unsqueeze(1).repeat(1, k)
    probs[torch.arange(n), col] = top
    return probs


def test_class_balanced_selection():
    classes = np.array([0, 1, 5])
    p = torch.full((16, 3), 0.0)
    conf0 = torch.linspace(0.6, 0.95, 10)          # rows 0..9 -> class 0, all eligible
    p[:10, 0], p[:10, 1] = conf0, 1 - conf0
    p[10:13, 1], p[10:13, 0] = torch.tensor([0.7, 0.9, 0.8]), torch.tensor([0.3, 0.1, 0.2])
    p[13:, 2], p[13:, 0] = 0.45, 0.3               # class 5 predicted, below threshold
    p[13:, 1] = 0.25
    sel = select_pseudo_labels(p, classes, TTAConfig(confidence=0.5, keep_fraction=0.5, min_per_class=3))
    assert sel.index.tolist() == [5, 6, 7, 8, 9, 10, 11, 12]   # top 5 of class 0, all 3 of class 1
    assert sel.y.tolist() == [0] * 5 + [1] * 3 and sel.counts() == {0: 5, 1: 3}
    assert np.allclose(sel.p, p.max(1).values[sel.index].numpy())
    assert len(select_pseudo_labels(p, classes, TTAConfig(keep_fraction=0.3, min_per_class=0)).restrict([0])) == 3
    assert len(select_pseudo_labels(p, classes, TTAConfig(confidence=0.99))) == 0
    assert sel.restrict([1, 5]).index.tolist() == [10, 11, 12]


def test_bce_kl_matches_the_training_vae_loss():
    g = torch.Generator().manual_seed(0)
    recon, x = torch.rand(5, 7, generator=g), torch.rand(5, 7, generator=g)
    mu, lv = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    torch.testing.assert_close(bce_kl_per_sample(recon, x, mu, lv).mean(), vae_loss(recon, x, mu, lv)[0])


def test_no_confident_sample_leaves_generator_bit_identical(data):
    models = random_models(0)
    before = state(models.E, models.G)
    x, c = pool(data)
    uniform = torch.full((len(x), 8), 1 / 8)
    notes = []

    def labeller(m):
        raise AssertionError("no round may run")

    res = run_difftta(models, x, c, uniform, np.arange(8), labeller, torch.as_tensor(data.class_emb),
                      replay(data), FAST, DFG, torch.Generator().manual_seed(0), log=notes.append)
    assert same_state(state(res.models.E, res.models.G), before)
    assert same_state(state(models.E, models.G), before)
    assert [r["skipped"] for r in res.rounds] == [True, True] and len(res.pseudo) == 0
    assert len(notes) == 2 and "generator left unchanged" in notes[0]


def test_adapts_only_copies_of_E_and_G_deterministically(data):
    models = random_models(0)
    nets = ("R", "E", "G", "D_x0", "D_xt", "D_xc", "Dec")
    before = state(*(getattr(models, n) for n in nets))
    x, c = pool(data)
    classes = np.arange(8)
    calls = []

    def labeller(m):
        calls.append(m)
        return confident_probs(len(x), classes, seed=len(calls) % 2)

    def run():
        return run_difftta(models, x, c, confident_probs(len(x), classes), classes, labeller,
                           torch.as_tensor(data.class_emb), replay(data), FAST, DFG,
                           torch.Generator().manual_seed(5), log=lambda m: None)

    a = run()
    assert same_state(state(*(getattr(models, n) for n in nets)), before)      # originals untouched
    assert not same_state(state(a.models.G), state(models.G))
    assert not same_state(state(a.models.E), state(models.E))
    for n in ("R", "D_x0", "D_xt", "D_xc", "Dec"):                              # frozen, shared
        assert getattr(a.models, n) is getattr(models, n)
        assert all(p.grad is None for p in getattr(models, n).parameters())
    assert all(not p.requires_grad for p in a.models.G.parameters())
    assert len(calls) == 2 and all(m.G is a.models.G for m in calls)   # relabelled after each round
    assert [r["round"] for r in a.rounds] == [1, 2] and a.rounds[0]["steps"] == 2 * int(np.ceil(a.rounds[0]["n_pseudo"] / 16))
    b = run()
    assert same_state(state(a.models.E, a.models.G), state(b.models.E, b.models.G))
    assert np.array_equal(a.pseudo.index, b.pseudo.index)


def test_anchor_and_replay_terms_act(data):
    models = random_models(0)
    x, c = pool(data)
    classes = np.arange(8)
    probs = confident_probs(len(x), classes)

    def drift(cfg, rp=replay(data)):
        res = run_difftta(models, x, c, probs, classes, lambda m: probs, torch.as_tensor(data.class_emb),
                          rp, cfg, DFG, torch.Generator().manual_seed(0), log=lambda m: None)
        return sum(((p - q) ** 2).sum() for p, q in zip(res.models.G.parameters(), models.G.parameters()))

    one = dataclasses.replace(FAST, rounds=1, lr_scale=1.0)
    free, pinned = drift(dataclasses.replace(one, anchor_weight=0.0)), drift(dataclasses.replace(one, anchor_weight=1e4))
    assert pinned < 0.5 * free
    assert drift(dataclasses.replace(one, replay=False)) != drift(one)
    # replay off: the replay set is not even looked at
    assert drift(dataclasses.replace(one, replay=False), rp=None) == drift(dataclasses.replace(one, replay=False))


@pytest.mark.parametrize("change", [dict(diffusion_aug=False), dict(use_sc=False)])
def test_ablated_models_adapt(data, change):
    models = random_models(0, **change)
    x, c = pool(data)
    probs = confident_probs(len(x), np.arange(8))
    res = run_difftta(models, x, c, probs, np.arange(8), lambda m: probs, torch.as_tensor(data.class_emb),
                      replay(data), dataclasses.replace(FAST, rounds=1, epochs=1), DFG,
                      torch.Generator().manual_seed(0), log=lambda m: None)
    assert np.isfinite(res.rounds[0]["mean_loss"])


def test_gzsl_labeller_probabilities(data):
    models = random_models(0)
    cfg = EvalConfig(syn_per_class=20, classifier_epochs=10, classifier_lr=1e-2, classifier_batch=64)
    blocks = {s: build_blocks(getattr(data, f"{s}_x"), getattr(data, f"{s}_c"), models.Dec, ("VCS",))
              for s in ("train", "test_seen", "test_unseen")}
    pool_blocks = concat_inputs(blocks["test_seen"], blocks["test_unseen"])
    lab = GZSLLabeller(blocks["train"], data.train_y, pool_blocks, torch.as_tensor(data.class_emb),
                       data.seen_classes, data.unseen_classes, cfg, 1, 2)
    p = lab(models)
    assert p.shape == (len(data.test_seen_y) + len(data.test_unseen_y), 8)
    torch.testing.assert_close(p.sum(1), torch.ones(len(p)))
    assert torch.equal(p, lab(models))
    # seen test samples of well separated clusters are recognised confidently
    seen_part = p[: len(data.test_seen_y)]
    assert (seen_part.argmax(1).numpy() == data.test_seen_y).mean() > 0.9
    sel = select_pseudo_labels(p, lab.classes, TTAConfig())
    assert isinstance(sel, PseudoLabels) and len(sel) > 0


def test_zsl_labeller_is_over_unseen_classes_of_the_zsl_pool(data):
    """The ZSL protocol's labeller (tta.zsl_pool: unseen): probabilities over the unseen classes
    on test-unseen, from a classifier on regenerated unseen features only."""
    from zerodiffpp.tta import ZSLLabeller

    models = random_models(0)
    cfg = EvalConfig(syn_per_class=20, classifier_epochs=10, zsl_epochs=4, classifier_lr=1e-2,
                     classifier_batch=64)
    pool_blocks = build_blocks(data.test_unseen_x, data.test_unseen_c, models.Dec, ("VCS",))
    lab = ZSLLabeller(pool_blocks, torch.as_tensor(data.class_emb), data.unseen_classes, cfg, 1, 2)
    run = lab.fit(models)
    assert list(run.classes) == list(np.sort(data.unseen_classes))
    assert run.model.fc.out_features == len(data.unseen_classes)
    p = lab(models)
    assert p.shape == (len(data.test_unseen_y), len(data.unseen_classes))
    torch.testing.assert_close(p.sum(1), torch.ones(len(p)))
    assert torch.equal(p, lab(models))
