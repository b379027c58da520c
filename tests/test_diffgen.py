"""DiffGen (METHOD.md 6.4): start-level validation, exactness of the denoising path against
ordinary generation, closeness to the anchor at k = 1, budgets and their spreading."""
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from plusplus_utils import DA, DC, DX, N_SEEN, N_UNSEEN, random_models
from zerodiffpp.config import ConfigError, DiffGenConfig
from zerodiffpp.diffgen import (Anchors, budgets, denoise_path, forward_marginal,
                                generate_from_anchors, plan, run_diffgen, validate_start_levels)
from zerodiffpp.synthesis import generate, reverse_chain, sample_representations

SEEN, UNSEEN = np.arange(N_SEEN), np.arange(N_SEEN, N_SEEN + N_UNSEEN)


@pytest.fixture(scope="module")
def models():
    return random_models(0)


@pytest.fixture(scope="module")
def emb():
    g = torch.Generator().manual_seed(1)
    return torch.nn.functional.normalize(torch.rand(N_SEEN + N_UNSEEN, DA, generator=g), dim=1)


def anchors(y, seed=0, w=None):
    g = torch.Generator().manual_seed(seed)
    y = np.asarray(y, np.int64)
    return Anchors(torch.rand(len(y), DX, generator=g), torch.rand(len(y), DC, generator=g), y,
                   np.ones(len(y), np.float32) if w is None else np.asarray(w, np.float32))


@pytest.mark.parametrize("levels, fragment", [([0], r"start_levels\[0\]=0"), ([1, 5], r"\[1\]=5"),
                                              ([], "at least one"), ([2, 2], "twice"),
                                              ([1.5], "integer")])
def test_bad_start_levels_are_config_errors(levels, fragment):
    with pytest.raises(ConfigError, match="diffgen.start_levels") as err:
        validate_start_levels(levels, 4)
    assert err.match(fragment)
    assert validate_start_levels([4, 1], 4) == (4, 1)


def test_run_diffgen_validates_against_the_model_schedule(models, emb):
    cfg = DiffGenConfig(start_levels=[1, 5])
    with pytest.raises(ConfigError, match=r"diffgen.start_levels\[1\]=5.*1\.\.4"):
        run_diffgen(models, cfg, 10, emb, SEEN, UNSEEN, None, anchors([5]), torch.Generator())


def test_full_level_path_reproduces_ordinary_generation(models, emb):
    """k = n_T from pure noise with the same draws = synthesis.generate (progressive), exactly."""
    n_T, classes = models.schedule.n_steps, np.array([5, 6])
    x_ref, c_ref, y = generate(models, emb, classes, 4, "progressive", torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    a = emb[y]
    c_hat = sample_representations(models, a, g)
    z = torch.randn(len(y), models.dims.z_dim, generator=g)
    x_T = torch.randn(len(y), DX, generator=g)
    path = denoise_path(models, z, a, c_hat, x_T, n_T, g)
    assert len(path) == n_T and torch.equal(c_hat, c_ref)
    assert torch.equal(path[-1], x_ref)
    # and every prefix is the chain from the corresponding intermediate level
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    x_k = torch.rand(len(y), DX)
    for k in range(1, n_T + 1):
        assert torch.equal(denoise_path(models, z, a, c_hat, x_k, k, g1)[-1],
                           reverse_chain(models, z, a, c_hat, x_k, k, "progressive", g2))


def test_anchor_path_uses_forward_marginal_then_reverse_chain(models, emb):
    """One anchor, k = n_T, all predictions kept: same numbers as x_k = a_k x + s_k eps followed
    by reverse_chain with the same generator stream (plan's permutation draw first)."""
    n_T = models.schedule.n_steps
    anc = anchors([6], seed=4)
    out = generate_from_anchors(models, anc, {6: n_T}, (n_T,), emb, torch.Generator().manual_seed(9))
    g = torch.Generator().manual_seed(9)
    torch.randperm(1, generator=g)
    x_k = forward_marginal(models.schedule, anc.x, n_T, g)
    z = torch.randn(1, models.dims.z_dim, generator=g)
    expect = reverse_chain(models, z, emb[[6]], anc.c, x_k, n_T, "progressive", g)
    assert len(out) == n_T and (out.level == n_T).all()
    torch.testing.assert_close(out.x[-1:], expect, rtol=0, atol=1e-6)
    assert torch.equal(out.c, anc.c.expand(n_T, -1))   # anchor's real SC representation


class OracleDenoiser(nn.Module):
    """Bayes posterior mean E[x_0 | x_k] for x_0 ~ N(mu, s^2 U U^T) (a rank-r Gaussian): the
    ideal denoiser of that data, standing in for a well-trained G."""

    def __init__(self, schedule, mu, U, s):
        super().__init__()
        self.schedule, self.mu, self.U, self.s2 = schedule, mu, U, s * s

    def forward(self, z, a, c, x_tp1, t):
        k = t + 1
        ak = self.schedule.signal[k].float().unsqueeze(1)
        sk = self.schedule.noise[k].float().unsqueeze(1)
        gain = ak * self.s2 / (ak ** 2 * self.s2 + sk ** 2)
        return self.mu + gain * ((x_tp1 - ak * self.mu) @ self.U) @ self.U.T


def test_small_start_level_stays_near_the_anchor(models, emb):
    g = torch.Generator().manual_seed(0)
    U, _ = torch.linalg.qr(torch.randn(DX, 2, generator=g))
    mu, s = torch.rand(DX, generator=g), 5.0
    oracle = dataclasses.replace(models, G=OracleDenoiser(models.schedule, mu, U, s))
    n = 60
    x = mu + s * torch.randn(n, 2, generator=g) @ U.T
    anc = Anchors(x, torch.rand(n, DC, generator=g), np.full(n, 6), np.ones(n, np.float32))
    near = generate_from_anchors(oracle, anc, {6: n}, (1,), emb, torch.Generator().manual_seed(1))
    assert len(near) == n and sorted(near.anchor.tolist()) == list(range(n))   # one path each
    d_near = (near.x - x[near.anchor]).norm(dim=1).mean()
    ordinary, _, _ = generate(oracle, emb, np.array([6]), n, "progressive", torch.Generator().manual_seed(1))
    d_ordinary = torch.cdist(x, ordinary).mean()
    assert d_near < 0.3 * d_ordinary, (float(d_near), float(d_ordinary))
    # k = n_T from an anchor behaves like ordinary generation (the anchor is forgotten)
    far = generate_from_anchors(oracle, anc, {6: 4 * n}, (4,), emb, torch.Generator().manual_seed(1))
    last = far.x.view(n, 4, DX)[:, -1]                  # final prediction of each path
    assert (last - x[far.anchor[3::4]]).norm(dim=1).mean() > 0.6 * d_ordinary


def test_budgets_and_even_spreading(models, emb):
    cfg = DiffGenConfig(start_levels=[1, 2, 3, 4], unseen_fraction=0.5, seen_fraction=0.25)
    train_y = np.repeat(SEEN, [2, 10, 30, 0, 5])
    want = budgets(cfg, 40, SEEN, train_y, UNSEEN)
    assert want == {0: 8, 3: 10, 4: 5, 5: 20, 6: 20, 7: 20}   # seen: up to 10 incl. real ones
    assert budgets(dataclasses.replace(cfg, seen_anchors=False), 40, SEEN, train_y, UNSEEN) == \
        {5: 20, 6: 20, 7: 20}
    assert budgets(dataclasses.replace(cfg, unseen_anchors=False), 40, SEEN, train_y, UNSEEN) == \
        {0: 8, 3: 10, 4: 5}

    y = np.array([5] * 3 + [6] * 12 + [7] * 1)
    rows, lv, keep = plan(y, {5: 20, 6: 20, 7: 20}, (1, 2, 3, 4), models, torch.Generator().manual_seed(0))
    for cls in (5, 6, 7):
        m = y[rows] == cls
        assert keep[m].sum() == 20 and (keep[m] >= 1).all() and (keep[m] <= lv[m]).all()
        uses = np.bincount(rows[m], minlength=len(y))[y == cls]
        assert uses.max() - uses.min() <= 1                        # anchors evenly used
        per_level = np.bincount(lv[m], minlength=5)[1:]
        assert per_level.max() - per_level.min() <= 1              # levels evenly used

    # reused anchors meet every level (even when A and L share a factor)
    rows, lv, _ = plan(np.array([5, 5]), {5: 12}, (1, 2), models, torch.Generator().manual_seed(0))
    assert all(set(lv[rows == a].tolist()) == {1, 2} for a in (0, 1))

    w = np.linspace(0.5, 1.0, len(y))
    anc = anchors(y, w=w)
    seen_anc = anchors(train_y, seed=1)
    s_set, u_set = run_diffgen(models, cfg, 40, emb, SEEN, UNSEEN, seen_anc, anc,
                               torch.Generator().manual_seed(2), log=lambda m: None)
    assert u_set.counts() == {5: 20, 6: 20, 7: 20}
    assert s_set.counts() == {0: 8, 4: 5}                          # class 3 has no anchor
    assert np.allclose(u_set.w, w[u_set.anchor]) and (u_set.y == y[u_set.anchor]).all()
    assert torch.equal(u_set.c, anc.c[torch.as_tensor(u_set.anchor)])
    assert u_set.x.dtype == torch.float32 and torch.isfinite(u_set.x).all()
    again = run_diffgen(models, cfg, 40, emb, SEEN, UNSEEN, seen_anc, anc,
                        torch.Generator().manual_seed(2), log=lambda m: None)[1]
    assert torch.equal(again.x, u_set.x)                           # deterministic


def test_missing_anchors_and_no_diffusion_aug(models, emb):
    notes = []
    cfg = DiffGenConfig(start_levels=[2, 3], seen_anchors=False)
    _, u = run_diffgen(models, cfg, 10, emb, SEEN, UNSEEN, None, anchors([5, 5]),
                       torch.Generator().manual_seed(0), log=notes.append)
    assert u.counts() == {5: 5} and "unseen class(es) [6, 7]" in notes[0]
    # budget only where there is no anchor: nothing, no error
    assert len(generate_from_anchors(models, anchors([5]), {6: 4}, (1,), emb, torch.Generator())) == 0
    flat = dataclasses.replace(models, diffusion_aug=False)   # one G call per path
    _, u = run_diffgen(flat, cfg, 10, emb, SEEN, UNSEEN, None, anchors([5, 5]),
                       torch.Generator().manual_seed(0), log=notes.append)
    assert u.counts() == {5: 5} and len(set(u.anchor.tolist())) == 2
