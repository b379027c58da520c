"""Loss functions of ZeroDiff (METHOD.md 3).  Inputs are cast to float32 so that a bf16 autocast
forward pass still gets its losses reduced in full precision."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable


def interpolate(real: torch.Tensor, fake: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """u-hat = alpha u + (1 - alpha) u-tilde, alpha ~ U(0, 1) per sample (METHOD.md 3.1); a leaf
    that requires grad, ready for :func:`gradient_penalty`."""
    alpha = torch.rand((real.shape[0], 1), generator=generator, device=real.device, dtype=real.dtype)
    return (alpha * real.detach() + (1.0 - alpha) * fake.detach()).requires_grad_(True)


def gradient_penalty(scores_at_interp: torch.Tensor, interp: torch.Tensor) -> torch.Tensor:
    """E[(||grad_u D(u-hat, kappa)||_2 - 1)^2], un-weighted (multiply by lambda yourself).

    Only the first critic input is interpolated (METHOD.md 3.1): the caller evaluates the critic on
    ``interp`` with the *real* conditioning.  ``create_graph`` so the penalty trains the critic."""
    (grad,) = torch.autograd.grad(scores_at_interp.float().sum(), interp, create_graph=True)
    return ((grad.float().norm(2, dim=1) - 1.0) ** 2).mean()


def wgan_gradient_penalty(critic, real, fake, generator, *cond) -> torch.Tensor:
    """Convenience form: critic(u, *cond) evaluated on interpolates of (real, fake)."""
    interp = interpolate(real, fake, generator)
    return gradient_penalty(critic(interp, *cond), interp)


def weighted_l1(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """TF-VAEGAN "weighted L1" (METHOD.md 3.3): per sample sum_j |d_j|^3 / ||d||_2, d = pred - target,
    averaged over the batch.  ``eps`` only guards d = 0 (the official code would return NaN)."""
    d = pred.float() - target.float()
    norm = d.pow(2).sum(dim=1, keepdim=True).sqrt()
    return (d.abs().pow(3) / (norm + eps)).sum(dim=1).mean()


def vae_loss(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, log_var: torch.Tensor):
    """(1/B) sum BCE(recon, x) + (1/B) KL(N(mu, sigma^2) || N(0, I))   (METHOD.md 3.5).

    BCE is written out (logs clamped at -100 like ``F.binary_cross_entropy``) because the built-in
    is refused under CUDA autocast.  Returns (total, bce, kl)."""
    p, x = recon.float(), x.float()
    log_p = torch.log(p).clamp(min=-100.0)
    log_1mp = torch.log1p(-p).clamp(min=-100.0)
    batch = x.shape[0]
    bce = -(x * log_p + (1.0 - x) * log_1mp).sum() / batch
    mu, log_var = mu.float(), log_var.float()
    kl = -0.5 * (1.0 + log_var - mu.pow(2) - log_var.exp()).sum() / batch
    return bce + kl, bce, kl


def mutual_learning_loss(w_x0: torch.Tensor, w_xt: torch.Tensor, w_xc: torch.Tensor | None,
                         weight: torch.Tensor) -> torch.Tensor:
    """Wasserstein mutual-learning ("distill") loss of METHOD.md 3.3 on per-sample critic gaps
    W_k(i) = D_k(real_i) - D_k(fake_i), shape (B,).  ``weight`` w_i = a_{t_i}^factor (B,).

      L = mean w [(W_x0 - sg W_xt)^2 + (W_xt - sg W_x0)^2 + (W_xc - sg W_xt)^2 + (W_xt - sg W_xc)^2]
        + mean   [(W_x0 - sg W_xc)^2 + (W_xc - sg W_x0)^2]

    Each critic is pulled towards the others' estimates (sg = stop-gradient); pairs with the
    diffusion critic are down-weighted at noisy steps.  ``w_xc=None`` (ablation without SC
    representations, no D_xc) keeps only the x0 <-> xt pair."""
    w_x0, w_xt, weight = w_x0.float(), w_xt.float(), weight.float()

    def pull(u, v):   # (u - sg v)^2
        return (u - v.detach()) ** 2

    loss = (weight * (pull(w_x0, w_xt) + pull(w_xt, w_x0))).mean()
    if w_xc is not None:
        w_xc = w_xc.float()
        loss = loss + (weight * (pull(w_xc, w_xt) + pull(w_xt, w_xc))).mean()
        loss = loss + (pull(w_x0, w_xc) + pull(w_xc, w_x0)).mean()
    return loss


class AdaptiveGP:
    """Adaptive gradient-penalty weight (METHOD.md 3.4): after the critic steps of one generator
    iteration, P = mean over steps of the un-weighted penalty sum (gamma_x0 P_x0 + gamma_xt P_xt
    + P_xc).  If P > 1.05: lambda <- 1.1 lambda; elif P < 1.001: lambda <- lambda / 1.1.

    lambda is kept as a 0-d float64 tensor on the training device, so the update needs no
    host synchronisation inside the training loop.  ``enabled=False`` keeps lambda fixed."""

    UPPER, LOWER, RATE = 1.05, 1.001, 1.1

    def __init__(self, initial: float, device, enabled: bool = True):
        self.value = torch.tensor(float(initial), dtype=torch.float64, device=device)
        self.enabled = enabled

    def update(self, mean_penalty: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            p = mean_penalty.detach().to(torch.float64)
            factor = torch.where(p > self.UPPER, torch.full_like(p, self.RATE),
                                 torch.where(p < self.LOWER, torch.full_like(p, 1.0 / self.RATE),
                                             torch.ones_like(p)))
            self.value = self.value * factor
        return self.value

    def weight(self, dtype=torch.float32) -> torch.Tensor:
        return self.value.to(dtype)


# --------------------------------------------------------------------------- fused critic pass
#
# The WGAN-GP critic update of METHOD.md 3.1 for the two-layer critics of networks._Critic,
#   h = u W_u^T + cond_h,  D(u) = w_o . lrelu(h) + b_o,
# with the first-order scores on real and fake inputs and the gradient penalty at interpolates,
# written out by hand.  Same math as ``trainloop.critic_pass`` (autograd with a double backward),
# but:
#   * real, fake and interpolated inputs go through ONE (3B x D) @ (D x H) product;
#   * the penalty's input gradient g = (w_o * lrelu'(h)) W_u is formed directly;
#   * the backward is analytic: lrelu is piecewise linear, so d lrelu'(h) / dh = 0 and the penalty
#     reaches W_u only through g (autograd instead pushes that structurally-zero second derivative
#     through two more full-size products per critic, and fills the unused gradient of the
#     interpolate leaf);
#   * the three weight-gradient contributions to W_u (real rows, fake rows, penalty) are one
#     (H x 3B) @ (3B x D) product instead of three with K = B (a far better shape for BLAS).
# The inputs (real, fake, interpolates) are treated as constants: this is for critic updates,
# where they are detached anyway.  fp32 only (the trainers use the autograd path under autocast).


def _lrelu_grad(grad: torch.Tensor, h: torch.Tensor, slope: float) -> torch.Tensor:
    """grad * lrelu'(h) -- the kernel autograd itself uses for leaky_relu's backward."""
    return torch.ops.aten.leaky_relu_backward(grad, h, slope, False)


class _CriticScoresPenalty(torch.autograd.Function):
    """(u3 = [real; fake; interp] (3B, D), cond_h (B, H), W_u (H, D), w_o (1, H), b_o (1,), slope)
    -> (scores (2B,) of the real and fake rows, un-weighted gradient penalty (scalar))."""

    @staticmethod
    def forward(ctx, u3, cond_h, w_u, w_o, b_o, slope):
        n = u3.shape[0] // 3
        h = torch.mm(u3, w_u.t())                                   # (3B, H)
        h.view(3, n, -1).add_(cond_h)
        h_rf, h_i = h[: 2 * n], h[2 * n:]
        act_rf = F.leaky_relu(h_rf, slope)                          # real and fake rows
        scores = torch.addmm(b_o, act_rf, w_o.t()).squeeze(1)       # (2B,)
        q = _lrelu_grad(w_o.expand(n, -1), h_i, slope)              # d D / d h at interpolates
        g = torch.mm(q, w_u)                                        # d D / d u   (B, D)
        norm = torch.linalg.vector_norm(g, 2, dim=1)
        gp = ((norm - 1.0) ** 2).mean()
        ctx.slope = slope
        ctx.save_for_backward(u3, w_u, w_o, h, act_rf, q, g, norm)
        return scores, gp

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_scores, grad_gp):
        u3, w_u, w_o, h, act_rf, q, g, norm = ctx.saved_tensors
        need = ctx.needs_input_grad
        n = g.shape[0]
        # penalty: d gp / d g_i = 2 (|g_i| - 1) g_i / (|g_i| B)   (0 where |g_i| = 0, like autograd)
        coef = torch.where(norm > 0, grad_gp * 2.0 * (norm - 1.0) / (norm * n), 0.0)
        gg = g * coef.unsqueeze(1)                                  # (B, D)
        # scores: d D / d h = lrelu'(h) * w_o * dL/dD
        dh_rf = _lrelu_grad(grad_scores.unsqueeze(1) * w_o, h[: 2 * n], ctx.slope)   # (2B, H)
        grad_cond = dh_rf.view(2, n, -1).sum(0) if need[1] else None
        grad_w_u = grad_w_o = grad_b_o = None
        if need[2]:
            # real + fake rows (dh^T u) and the penalty path (q^T gg) in one product
            grad_w_u = torch.mm(torch.cat([dh_rf, q]).t(), torch.cat([u3[: 2 * n], gg]))
        if need[3]:
            # q = lrelu'(h_i) * w_o, so d gp / d w_o = sum_i lrelu'(h_i) * (gg_i W_u^T)
            dq = torch.mm(gg, w_u.t())                              # (B, H)
            grad_w_o = (torch.mm(grad_scores.unsqueeze(0), act_rf)
                        + _lrelu_grad(dq, h[2 * n:], ctx.slope).sum(0, keepdim=True))
        if need[4]:
            grad_b_o = grad_scores.sum().reshape(1)
        return None, grad_cond, grad_w_u, grad_w_o, grad_b_o, None


def critic_scores_and_penalty(critic, cond_h: torch.Tensor, real: torch.Tensor, fake: torch.Tensor,
                              interp: torch.Tensor, slope: float):
    """Scores D(real), D(fake) (B,) and the un-weighted GP at ``interp`` for a networks._Critic
    (fc_u without bias, fc_out) with conditioning ``cond_h`` = critic.condition(...)."""
    u3 = torch.cat([real.detach(), fake.detach().to(real.dtype), interp.detach()])
    scores, gp = _CriticScoresPenalty.apply(u3, cond_h, critic.fc_u.weight, critic.fc_out.weight,
                                            critic.fc_out.bias, float(slope))
    n = real.shape[0]
    return scores[:n], scores[n:], gp


def critic_pass_fused(critic, cond_h: torch.Tensor, real: torch.Tensor, fake: torch.Tensor,
                      generator: torch.Generator, slope: float = 0.2):
    """Drop-in for ``trainloop.critic_pass`` in critic updates (same values, same gradients for
    the critic's parameters and ``cond_h``, same RNG draws): per-sample D(real), D(fake) (B,) and
    the un-weighted gradient penalty, via :func:`critic_scores_and_penalty`.  real / fake get no
    gradient (they are constants in a critic step)."""
    interp = interpolate(real, fake, generator)
    return critic_scores_and_penalty(critic, cond_h, real, fake, interp, slope)
