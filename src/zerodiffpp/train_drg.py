"""Stage 1: the Diffusion Representation Generator (DRG), METHOD.md 2.3 / 3.2.

R learns to generate SC representations c from class embeddings a with a WGAN-GP on two critics:
D_r0 judges clean representations [c_0, a], D_rt judges denoising transitions
[c_t | c_{t+1}, a, t].  Dec_r (c -> a, MSE) is trained alongside but never used by R (METHOD.md 8
item 8).  lambda is fixed (no adaptive rule in DRG).  No test data is read.

Checkpoint ``runs/drg/model.pt`` (plain dict, loads with ``weights_only=True``):
  meta        plain values: format, stage, x_dim, c_dim, attr_dim, hidden, z_dim, t_dim,
              normalize_dec, n_steps, beta_min, beta_max, seed, n_train, data_fingerprint,
              iters_per_epoch, device_type, precision, epochs_done, lambda_gp, torch_version,
              cfg_<field> for every field of the stage config (DRGConfig / DFGConfig)
  models      {network name: state_dict}      (R, D_r0, D_rt, Dec_r)
  optimizers  {network name: optimizer state_dict}
  state       {"generator": uint8 RNG state tensor, "lambda_gp": float64 0-d tensor}
  history     {column: [per-epoch values]}
"""
from __future__ import annotations

import ctypes
import functools
import os
import sys

import torch
import torch.nn.functional as F

from .config import DiffusionConfig, DRGConfig, RuntimeConfig
from .data.prepared import PreparedData
from .losses import AdaptiveGP, critic_pass_fused
from .networks import DRG_NETWORKS, LRELU_SLOPE, NetworkDims, build_networks, plain_autograd
from .trainloop import TrainLoop, critic_pass, make_adam, set_requires_grad

ADAM_BETAS = (0.5, 0.999)   # METHOD.md 3.2


def keep_freed_memory() -> bool:
    """Ask glibc malloc to serve large blocks from its heap and keep freed memory (mallopt
    M_MMAP_THRESHOLD / M_TRIM_THRESHOLD = 1 GiB) instead of mapping fresh pages for every large
    tensor: at paper shapes each training iteration otherwise allocates ~1 GB of new pages (the
    32-38 MB weight gradients, mmap'ed and freed every step), ~8 % of the CPU time in page faults.
    Process-wide and idempotent; a no-op (False) without glibc or with ZERODIFFPP_MALLOPT=0."""
    if os.environ.get("ZERODIFFPP_MALLOPT", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, 1 << 30)) and bool(libc.mallopt(-1, 1 << 30))
    except (OSError, AttributeError):
        return False


def selected_path(step):
    """Run a trainer's step method with the networks' plain autograd layers when the trainer
    is on the reference path (``fused=False``), see networks.plain_autograd."""
    @functools.wraps(step)
    def wrapper(self, *args, **kwargs):
        with plain_autograd(not self.fused):
            return step(self, *args, **kwargs)
    return wrapper


class DRGTrainer(TrainLoop):
    """``fused=True`` (default) runs the critics' scores and gradient penalties through
    :func:`losses.critic_pass_fused` (one product for real/fake/interpolated inputs, analytic
    double backward) and the concatenated first layers through :func:`networks.concat_linear`;
    ``fused=False`` is the straightforward autograd reference (:func:`trainloop.critic_pass`,
    ``linear(torch.cat(...))``).  Same math, same RNG draws (tests/test_performance_equivalence.py);
    bf16 autocast always uses the reference path.  Timings: benchmarks/README.md."""

    stage = "DRG"
    averaged_network = "R"
    network_names = DRG_NETWORKS

    def __init__(self, data: PreparedData, cfg: DRGConfig, diffusion: DiffusionConfig, *,
                 seed: int, device="cpu", runtime: RuntimeConfig | None = None, fused: bool = True):
        super().__init__(data, cfg, diffusion, seed=seed, device=device, runtime=runtime)
        self.fused = bool(fused) and self.runtime.precision == "fp32"
        if self.device.type == "cpu":
            keep_freed_memory()
        self.dims = NetworkDims(x_dim=data.x_dim, c_dim=data.c_dim, attr_dim=data.attr_dim,
                                hidden=cfg.hidden_dim)
        self.train_c = torch.as_tensor(data.train_c, dtype=torch.float32, device=self.device)
        self.nets = build_networks(self.network_names, self.dims, self.normalize_dec,
                                   device=self.device, generator=self.init_generator)
        self.R, self.D_r0, self.D_rt, self.Dec_r = (self.nets[n] for n in self.network_names)
        self.optimizers = {
            "R": make_adam(self.R.parameters(), cfg.lr, ADAM_BETAS),
            "D_r0": make_adam(self.D_r0.parameters(), cfg.lr, ADAM_BETAS),
            "D_rt": make_adam(self.D_rt.parameters(), cfg.lr, ADAM_BETAS),
            "Dec_r": make_adam(self.Dec_r.parameters(), cfg.dec_lr, ADAM_BETAS),
        }
        self.critic_opts = [self.optimizers[n] for n in ("D_r0", "D_rt", "Dec_r")]
        self.start_averaging()
        self.gp = AdaptiveGP(cfg.gp_weight, self.device, enabled=False)   # fixed lambda in DRG

    def sample_batch(self):
        idx = self.sample_indices()
        return self.train_c[idx], self.class_emb[self.train_y[idx]]

    def critic_pass(self, critic, cond_h, real, fake):
        """D(real), D(fake) per sample and the un-weighted GP (fused or reference path)."""
        if self.fused:
            return critic_pass_fused(critic, cond_h, real, fake, self.generator, LRELU_SLOPE)
        return critic_pass(critic, cond_h, real, fake, self.generator)

    def fake_pair(self, c0, a):
        """t, (c_t, c_{t+1}), c-hat_0 = R(z, a, c_t, t) and c-tilde_t ~ q(c_t | c-hat_0, c_{t+1})."""
        n = c0.shape[0]
        t = self.schedule.sample_steps(n, self.generator, self.device)
        c_t, c_tp1 = self.schedule.q_sample_pair(c0, t, self.generator)
        z = self.randn(n, self.dims.z_dim)
        # Documented quirk of the official code (METHOD.md 2.3, 8 item 7): R is fed the *less
        # noisy* c_t, not c_{t+1}; the author reports that the "correct" c_{t+1} input performs much
        # worse.  Kept for faithfulness.  At sampling time R gets pure noise with t = n_T - 1.
        c0_fake = self.R(z, a, c_t, t)
        ct_fake = self.schedule.sample_posterior(c0_fake, c_tp1, t, self.generator)
        return t, c_t, c_tp1, c0_fake, ct_fake

    @selected_path
    def critic_step(self, c0, a) -> dict[str, torch.Tensor]:
        """One update of D_r0, D_rt (WGAN-GP, fixed lambda) and Dec_r (MSE on real c), METHOD.md 3.2."""
        cfg, lam = self.cfg, self.gp.weight()
        for opt in self.critic_opts:
            opt.zero_grad(set_to_none=True)
        with self.autocast():
            loss_dec = F.mse_loss(self.Dec_r(c0).float(), a)
            with torch.no_grad():
                t, c_t, c_tp1, c0_fake, ct_fake = self.fake_pair(c0, a)
            real_r0, fake_r0, gp_r0 = self.critic_pass(self.D_r0, self.D_r0.condition(a), c0, c0_fake)
            real_rt, fake_rt, gp_rt = self.critic_pass(self.D_rt, self.D_rt.condition(c_tp1, a, t),
                                                       c_t, ct_fake)
            loss_d = (cfg.gamma_x0 * (fake_r0.float().mean() - real_r0.float().mean() + lam * gp_r0)
                      + cfg.gamma_xt * (fake_rt.float().mean() - real_rt.float().mean() + lam * gp_rt))
        (loss_d + loss_dec).backward()
        for opt in self.critic_opts:
            opt.step()
        return {"loss_D": loss_d, "loss_dec": loss_dec,
                "W_r0": (real_r0 - fake_r0).float().mean(), "W_rt": (real_rt - fake_rt).float().mean(),
                "gp": cfg.gamma_x0 * gp_r0 + cfg.gamma_xt * gp_rt}

    @selected_path
    def generator_step(self, c0, a) -> dict[str, torch.Tensor]:
        """One update of R on the last critic batch with fresh t and noise (METHOD.md 3.2)."""
        cfg = self.cfg
        critics = (self.D_r0, self.D_rt, self.Dec_r)
        set_requires_grad(critics, False)
        self.optimizers["R"].zero_grad(set_to_none=True)
        with self.autocast():
            t, c_t, c_tp1, c0_fake, ct_fake = self.fake_pair(c0, a)
            loss_g = (-cfg.gamma_x0 * self.D_r0(c0_fake, a).float().mean()
                      - cfg.gamma_xt * self.D_rt(ct_fake, c_tp1, a, t).float().mean())
        loss_g.backward()
        self.optimizers["R"].step()
        set_requires_grad(critics, True)
        with torch.no_grad(), self.autocast():
            # Logged only (the official DRG does not train R with it).
            dec_mse_fake = F.mse_loss(self.Dec_r(c0_fake.detach()).float(), a)
        return {"loss_G": loss_g, "dec_mse_fake": dec_mse_fake}

    def iteration(self) -> dict[str, torch.Tensor]:
        """critic_steps critic steps on fresh random batches, then one generator step."""
        sums = {}
        for _ in range(self.cfg.critic_steps):
            c0, a = self.sample_batch()
            for name, value in self.critic_step(c0, a).items():
                value = value.detach()
                sums[name] = sums[name] + value if name in sums else value
        stats = {name: value / self.cfg.critic_steps for name, value in sums.items()}
        stats.update(self.generator_step(c0, a))
        return stats
