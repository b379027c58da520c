"""Loss functions of ZeroDiff (METHOD.md 3).  Inputs are cast to float32 so that a bf16 autocast
forward pass still gets its losses reduced in full precision."""
from __future__ import annotations

import torch


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
