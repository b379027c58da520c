"""The diffusion schedule against every number of the METHOD.md 2.1 table, and the samplers."""
import math

import pytest
import torch

from zerodiffpp.diffusion import DiffusionSchedule, timestep_embedding

# METHOD.md 2.1, "Numerical values" (n_T = 4, beta_min = 0.1, beta_max = 20), 5 decimals.
TABLE_BETA = [1e-8, 0.47826, 0.84921, 0.95642, 0.98740]
TABLE_SIGNAL = [1.00000, 0.72232, 0.28049, 0.05856, 0.00657]
TABLE_NOISE = [0.0001, 0.69156, 0.95986, 0.99828, 0.99998]
TABLE_C1 = [1.0, 0.66578, 0.26919, 0.05782]
TABLE_C2 = [0.0, 0.20158, 0.19300, 0.11189]
TABLE_VAR = [0.0, 0.44082, 0.88420, 0.98405]
TABLE_ML_WEIGHT = [1.0, 0.614, 0.149, 0.014]     # a_t^1.5, 3 decimals


@pytest.fixture(scope="module")
def schedule():
    return DiffusionSchedule(4, 0.1, 20.0)


@pytest.mark.parametrize("attr, table", [("betas", TABLE_BETA), ("signal", TABLE_SIGNAL),
                                         ("noise", TABLE_NOISE), ("post_c1", TABLE_C1),
                                         ("post_c2", TABLE_C2), ("post_var", TABLE_VAR)])
def test_coefficients_match_method_table(schedule, attr, table):
    values = getattr(schedule, attr).tolist()
    assert len(values) == len(table)
    for k, (got, want) in enumerate(zip(values, table)):
        # the table is rounded to 5 decimals: agreement to half a unit in the last place
        assert got == pytest.approx(want, abs=5e-6 + 1e-12), f"{attr}[{k}] = {got}, table {want}"


def test_mutual_learning_weights_match_table(schedule):
    t = torch.arange(4)
    weights = schedule.signal_weight(t, 1.5, torch.zeros(4, 1)).tolist()
    for got, want in zip(weights, TABLE_ML_WEIGHT):
        assert got == pytest.approx(want, abs=5e-4)


def test_consistency_relations(schedule):
    # a_k = prod sqrt(1 - beta_j); sigma-bar^2 + a^2 = 1; beta_0 = 1e-8
    assert torch.allclose(schedule.signal, torch.cumprod(torch.sqrt(1 - schedule.betas), 0))
    assert torch.allclose(schedule.signal ** 2 + schedule.noise ** 2, torch.ones(5, dtype=torch.float64))
    assert schedule.betas[0].item() == pytest.approx(1e-8)
    assert schedule.post_log_var[0].item() == pytest.approx(math.log(1e-20))


def test_forward_pair_marginals(schedule):
    # x_0 = 0: x_t ~ N(0, sigma-bar_t^2) and x_{t+1} ~ N(0, sigma-bar_{t+1}^2) (one-step chain)
    g = torch.Generator().manual_seed(0)
    n, d = 4000, 64
    for t in range(4):
        steps = torch.full((n,), t)
        x_t, x_tp1 = schedule.q_sample_pair(torch.zeros(n, d), steps, g)
        assert x_t.std().item() == pytest.approx(schedule.noise[t].item(), rel=0.02, abs=1e-3)
        assert x_tp1.std().item() == pytest.approx(schedule.noise[t + 1].item(), rel=0.02)
    # signal part: x_0 = 1 -> E[x_t] = a_t
    steps = torch.full((n,), 2)
    x_t, _ = schedule.q_sample_pair(torch.ones(n, d), steps, g)
    assert x_t.mean().item() == pytest.approx(schedule.signal[2].item(), abs=0.01)


def test_posterior(schedule):
    g = torch.Generator().manual_seed(0)
    x0, x1 = torch.rand(8, 5), torch.rand(8, 5)
    # t = 0: the posterior sample is x_0 exactly (C1 = 1, C2 = 0, no noise)
    out = schedule.sample_posterior(x0, x1, torch.zeros(8, dtype=torch.int64), g)
    assert torch.allclose(out, x0, atol=1e-6)
    # t = 2: mean C1 x0 + C2 x1 and variance var_2
    n = 20000
    t = torch.full((n,), 2)
    a, b = torch.full((n, 1), 0.3), torch.full((n, 1), -0.5)
    s = schedule.sample_posterior(a, b, t, g)
    mean = 0.3 * TABLE_C1[2] - 0.5 * TABLE_C2[2]
    assert s.mean().item() == pytest.approx(mean, abs=0.02)
    assert s.var().item() == pytest.approx(TABLE_VAR[2], rel=0.03)
    assert torch.allclose(schedule.posterior_mean(a[:2], b[:2], t[:2]), torch.full((2, 1), mean), atol=1e-5)


def test_sample_steps_range(schedule):
    t = schedule.sample_steps(1000, torch.Generator().manual_seed(1), "cpu")
    assert t.dtype == torch.int64 and t.min() == 0 and t.max() == 3


def test_timestep_embedding():
    t = torch.tensor([0, 1, 3])
    emb = timestep_embedding(t, 6)
    assert emb.shape == (3, 6)
    assert torch.allclose(emb[0], torch.tensor([1.0, 1, 1, 0, 0, 0]))     # cos(0), sin(0)
    freqs = torch.exp(-math.log(1e4) * torch.arange(3) / 3)
    assert torch.allclose(emb[2], torch.cat([torch.cos(3 * freqs), torch.sin(3 * freqs)]))
    odd = timestep_embedding(t, 7)
    assert odd.shape == (3, 7) and torch.all(odd[:, -1] == 0)
