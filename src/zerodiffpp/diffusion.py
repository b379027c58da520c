"""The short VP diffusion process of ZeroDiff (METHOD.md 2.1) and the step embedding (2.2).

Index conventions (the same as the official code, so the METHOD.md table applies verbatim):

* levels k = 0..n_T of the forward chain; x_0 is the clean feature, x_{n_T} is (almost) pure noise.
* a training step t is drawn from {0..n_T-1} and always comes with the pair (x_t, x_{t+1}).
* the posterior q(x_t | x_0, x_{t+1}) is indexed by that same t (it uses beta'_t := beta_{t+1}).

All coefficient tables are kept in float64 (so that e.g. sigma-bar_0 = 1e-4 survives; in float32
1 - 1e-8 rounds to 1) and cast to the dtype of the data whenever they are used.
"""
from __future__ import annotations

import math

import torch

from .config import DiffusionConfig

_EPS_SMALL = 1e-3     # time grid offset, METHOD.md 2.1
_BETA_0 = 1e-8        # beta_0 := 1e-8 (so that a_0 ~= 1)


def vp_variance(s: torch.Tensor, beta_min: float, beta_max: float) -> torch.Tensor:
    """var(s) = 1 - exp(-1/2 s^2 (beta_max - beta_min) - s beta_min)   (METHOD.md 2.1)."""
    return 1.0 - torch.exp(-0.5 * s ** 2 * (beta_max - beta_min) - s * beta_min)


def _randn_like(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """N(0, I) shaped like ``x`` drawn from ``generator`` (which may live on another device)."""
    return torch.randn(x.shape, generator=generator, device=generator.device, dtype=x.dtype).to(x.device)


def _gather(table: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """table[t] as a (B, 1) column in the dtype/device of ``like`` (for broadcasting over features)."""
    return table.to(like.device)[t.to(like.device)].to(like.dtype).unsqueeze(1)


class DiffusionSchedule:
    """Coefficients of the Denoising-Diffusion-GAN style VP schedule (METHOD.md 2.1).

    Attributes (float64, CPU):
      betas (n_T+1,)           beta_k, beta_0 = 1e-8
      sqrt_alphas (n_T+1,)     sqrt(1 - beta_k): one-step signal factor x_k -> x_{k+1}
      sigmas (n_T+1,)          sqrt(beta_k): one-step noise std
      signal (n_T+1,)          a_k = prod_{j<=k} sqrt(1 - beta_j)
      noise (n_T+1,)           sigma-bar_k = sqrt(1 - a_k^2)
      post_c1, post_c2 (n_T,)  posterior mean = C1_t x_0 + C2_t x_{t+1}
      post_var (n_T,)          posterior variance var_t
      post_log_var (n_T,)      log(var_t) clipped at log(1e-20) (var_0 = 0)
    """

    def __init__(self, n_steps: int = 4, beta_min: float = 0.1, beta_max: float = 20.0):
        self.n_steps = int(n_steps)
        self.beta_min = float(beta_min)
        self.beta_max = float(beta_max)
        n_T = self.n_steps
        dt = torch.float64

        # The betas are computed in float32 exactly as the official code does: 1 - var(s_k) is
        # cancellation-prone near s = 1, so float32 and float64 betas differ by ~1e-5 at k = n_T
        # (the METHOD.md table, e.g. C2_3 = 0.11189, follows the float32 betas).  Everything
        # downstream is float64 so that tiny values such as sigma-bar_0 = 1e-4 are not lost.
        f32 = torch.float32
        s = _EPS_SMALL + (1.0 - _EPS_SMALL) * (torch.arange(n_T + 1, dtype=f32) / n_T)
        alphas_bar = 1.0 - vp_variance(s, self.beta_min, self.beta_max)
        betas = torch.cat([torch.tensor([_BETA_0], dtype=dt),
                           (1.0 - alphas_bar[1:] / alphas_bar[:-1]).to(dt)])

        self.betas = betas
        self.sqrt_alphas = torch.sqrt(1.0 - betas)
        self.sigmas = torch.sqrt(betas)
        self.signal = torch.cumprod(self.sqrt_alphas, dim=0)
        self.noise = torch.sqrt(1.0 - self.signal ** 2)

        # Posterior q(x_t | x_0, x_{t+1}), t = 0..n_T-1, with beta'_t = beta_{t+1}.
        post_betas = betas[1:]
        post_alphas_bar = torch.cumprod(1.0 - post_betas, dim=0)
        post_alphas_bar_prev = torch.cat([torch.ones(1, dtype=dt), post_alphas_bar[:-1]])
        self.post_c1 = post_betas * torch.sqrt(post_alphas_bar_prev) / (1.0 - post_alphas_bar)
        self.post_c2 = (1.0 - post_alphas_bar_prev) * torch.sqrt(1.0 - post_betas) / (1.0 - post_alphas_bar)
        self.post_var = post_betas * (1.0 - post_alphas_bar_prev) / (1.0 - post_alphas_bar)
        self.post_log_var = torch.log(self.post_var.clamp(min=1e-20))

    @classmethod
    def from_config(cls, cfg: DiffusionConfig) -> "DiffusionSchedule":
        return cls(cfg.n_steps, cfg.beta_min, cfg.beta_max)

    TABLES = ("betas", "sqrt_alphas", "sigmas", "signal", "noise", "post_c1", "post_c2", "post_var",
              "post_log_var")

    def to(self, device) -> "DiffusionSchedule":
        """Move the (tiny) tables to ``device`` once, so lookups need no host-device copies."""
        for name in self.TABLES:
            setattr(self, name, getattr(self, name).to(device))
        return self

    # ------------------------------------------------------------------ sampling

    def sample_steps(self, n: int, generator: torch.Generator, device) -> torch.Tensor:
        """t ~ U{0..n_T-1}, one per sample (int64)."""
        return torch.randint(0, self.n_steps, (n,), generator=generator, device=device)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """x_t = a_t x_0 + sigma-bar_t eps  (level t of the forward chain)."""
        eps = _randn_like(x0, generator)
        return _gather(self.signal, t, x0) * x0 + _gather(self.noise, t, x0) * eps

    def q_sample_pair(self, x0: torch.Tensor, t: torch.Tensor, generator: torch.Generator):
        """(x_t, x_{t+1}): x_t ~ q(x_t | x_0), then one forward step
        x_{t+1} = sqrt(1 - beta_{t+1}) x_t + sqrt(beta_{t+1}) eps'  (eps, eps' independent)."""
        x_t = self.q_sample(x0, t, generator)
        eps = _randn_like(x0, generator)
        x_tp1 = _gather(self.sqrt_alphas, t + 1, x0) * x_t + _gather(self.sigmas, t + 1, x0) * eps
        return x_t, x_tp1

    def posterior_mean(self, x0: torch.Tensor, x_tp1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return _gather(self.post_c1, t, x_tp1) * x0 + _gather(self.post_c2, t, x_tp1) * x_tp1

    def sample_posterior(self, x0: torch.Tensor, x_tp1: torch.Tensor, t: torch.Tensor,
                         generator: torch.Generator) -> torch.Tensor:
        """x_t ~ q(x_t | x_0, x_{t+1}); noise is added only where t > 0 (METHOD.md 2.1)."""
        mean = self.posterior_mean(x0, x_tp1, t)
        eps = _randn_like(mean, generator)
        std = torch.exp(0.5 * _gather(self.post_log_var, t, mean))
        nonzero = (t > 0).to(mean.dtype).unsqueeze(1)
        return mean + nonzero * std * eps

    def signal_weight(self, t: torch.Tensor, factor: float, like: torch.Tensor) -> torch.Tensor:
        """a_t^factor per sample, shape (B,): weights of the mutual-learning loss (METHOD.md 3.3)."""
        return _gather(self.signal, t, like).squeeze(1) ** factor


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer steps (METHOD.md 2.2): half = dim // 2 frequencies
    f_i = exp(-ln(max_period) i / half); [cos(t f), sin(t f)], zero-padded if dim is odd."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float().unsqueeze(1) * freqs.unsqueeze(0)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb
