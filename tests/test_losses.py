"""Loss functions on hand-made inputs (METHOD.md 3)."""
import math

import pytest
import torch

from zerodiffpp.losses import (AdaptiveGP, gradient_penalty, interpolate, mutual_learning_loss,
                               vae_loss, weighted_l1, wgan_gradient_penalty)
from zerodiffpp.trainloop import critic_pass


class LinearCritic(torch.nn.Module):
    """D(u, k) = w . u + v . k: grad_u D = w everywhere, so GP = (||w|| - 1)^2."""

    def __init__(self, w, v):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w))
        self.v = torch.nn.Parameter(torch.tensor(v))

    def condition(self, k):
        return k @ self.v

    def score(self, u, cond_h):
        return (u @ self.w + cond_h).unsqueeze(-1)

    def forward(self, u, k):
        return self.score(u, self.condition(k))


def test_gradient_penalty_linear_critic():
    critic = LinearCritic([3.0, 4.0], [10.0])          # ||w|| = 5 -> GP = 16
    g = torch.Generator().manual_seed(0)
    real, fake, cond = torch.rand(7, 2), torch.rand(7, 2), torch.rand(7, 1)
    gp = wgan_gradient_penalty(critic, real, fake, g, cond)
    assert gp.item() == pytest.approx(16.0)
    # the penalty trains the critic: d GP / d w = 2 (||w|| - 1) w / ||w||
    gp.backward()
    assert torch.allclose(critic.w.grad, torch.tensor([2 * 4 * 3 / 5.0, 2 * 4 * 4 / 5.0]))
    assert critic.v.grad is None or torch.all(critic.v.grad == 0)   # conditioning not interpolated


def test_gradient_penalty_unit_norm_is_zero():
    critic = LinearCritic([0.6, 0.8], [1.0])
    interp = interpolate(torch.rand(4, 2), torch.rand(4, 2), torch.Generator().manual_seed(0))
    assert gradient_penalty(critic(interp, torch.rand(4, 1)), interp).item() == pytest.approx(0.0, abs=1e-10)


def test_interpolate_between_real_and_fake():
    real, fake = torch.zeros(1000, 3), torch.ones(1000, 3)
    u = interpolate(real, fake, torch.Generator().manual_seed(0))
    assert u.requires_grad
    alpha = 1 - u[:, 0]                                    # u = alpha*real + (1-alpha)*fake
    assert torch.all(u == u[:, :1]) and 0 <= alpha.min() and alpha.max() <= 1
    assert alpha.mean().item() == pytest.approx(0.5, abs=0.05)


def test_critic_pass_scores_and_gp():
    critic = LinearCritic([3.0, 4.0], [2.0])
    real, fake, k = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0]])
    d_real, d_fake, gp = critic_pass(critic, critic.condition(k), real, fake, torch.Generator())
    assert d_real.tolist() == [5.0] and d_fake.tolist() == [6.0]
    assert gp.item() == pytest.approx(16.0)


def test_weighted_l1_hand_made():
    pred = torch.tensor([[3.0, 4.0], [1.0, 0.0]])
    target = torch.zeros(2, 2)
    # sample 1: (27 + 64) / 5 = 18.2; sample 2: 1 / 1 = 1; mean 9.6
    assert weighted_l1(pred, target).item() == pytest.approx(9.6)
    assert weighted_l1(target, target).item() == 0.0          # no NaN at d = 0
    # equals the TF-VAEGAN form sum (d^2 / ||d||) |d| / B
    p, q = torch.randn(5, 4), torch.randn(5, 4)
    d = p - q
    ref = ((d ** 2 / d.norm(dim=1, keepdim=True)) * d.abs()).sum() / 5
    assert weighted_l1(p, q).item() == pytest.approx(ref.item(), rel=1e-6)


def test_vae_loss_hand_made():
    x = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    recon = torch.full((2, 3), 0.5)
    total, bce, kl = vae_loss(recon, x, torch.zeros(2, 4), torch.zeros(2, 4))
    assert bce.item() == pytest.approx(3 * math.log(2), rel=1e-6)       # summed over dims, / B
    assert kl.item() == pytest.approx(0.0, abs=1e-7)
    _, _, kl = vae_loss(recon, x, torch.ones(2, 4), torch.zeros(2, 4))
    assert kl.item() == pytest.approx(0.5 * 4)                          # 1/2 sum mu^2 per sample
    ref = torch.nn.functional.binary_cross_entropy(torch.full((2, 3), 0.2), x, reduction="sum") / 2
    assert vae_loss(torch.full((2, 3), 0.2), x, torch.zeros(2, 1), torch.zeros(2, 1))[1].item() == pytest.approx(ref.item())


def test_mutual_learning_hand_made():
    w_x0 = torch.tensor([1.0, 2.0], requires_grad=True)
    w_xt = torch.tensor([0.0, 0.0], requires_grad=True)
    w_xc = torch.tensor([2.0, 2.0], requires_grad=True)
    weight = torch.tensor([1.0, 0.5])
    loss = mutual_learning_loss(w_x0, w_xt, w_xc, weight)
    # weighted pairs: i=1: 1*(1+1+4+4)=10, i=2: 0.5*(4+4+4+4)=8 -> mean 9
    # unweighted x0<->xc: i=1: 1+1=2, i=2: 0 -> mean 1
    assert loss.item() == pytest.approx(10.0)
    loss.backward()
    # d/dW_x0 (stop-gradient on the targets): mean_i w_i*2(x0-xt) + mean_i 2(x0-xc)
    assert torch.allclose(w_x0.grad, torch.tensor([(1 * 2 * 1 + 2 * -1) / 2, (0.5 * 2 * 2 + 0) / 2]))
    # d/dW_xt: mean_i w_i*(2(xt-x0) + 2(xt-xc))
    assert torch.allclose(w_xt.grad, torch.tensor([1 * (-2 - 4) / 2, 0.5 * (-4 - 4) / 2]))


def test_mutual_learning_without_sc():
    w_x0, w_xt = torch.tensor([1.0, 3.0]), torch.tensor([0.0, 1.0])
    loss = mutual_learning_loss(w_x0, w_xt, None, torch.tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx((1 + 1) / 2)


def test_adaptive_gp_rule():
    gp = AdaptiveGP(10.0, "cpu")
    assert gp.update(torch.tensor(2.0)).item() == pytest.approx(11.0)          # > 1.05
    assert gp.update(torch.tensor(1.02)).item() == pytest.approx(11.0)         # in band
    assert gp.update(torch.tensor(0.5)).item() == pytest.approx(10.0)          # < 1.001
    fixed = AdaptiveGP(10.0, "cpu", enabled=False)
    assert fixed.update(torch.tensor(5.0)).item() == 10.0
