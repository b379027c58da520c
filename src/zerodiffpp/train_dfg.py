"""Stage 2: the Diffusion Feature Generator (DFG), METHOD.md 2.4 / 3.3-3.5.

A VAE encoder E and generator G produce visual features x from (z, a, c, x_{t+1}, t); three
critics judge them: D_x0 [x, a], D_xt [x_t | x_{t+1}, a, c, t] and D_xc [x, con_emb(c)], tied by
the Wasserstein mutual-learning loss.  Dec (x -> a, weighted L1) is trained on real features and
feeds the generator a reconstruction loss.  The frozen DRG R is not used here (only at synthesis,
METHOD.md 2.4).  Unlike the official code, no test data is touched during training (METHOD.md 8
item 2): the history holds train-side quantities only.

Ablations (DFGConfig):
* ``use_sc=False``: the SC representation input of G and D_xt is zeroed and D_xc is not built
  (no adversarial, GP or mutual-learning terms with it).
* ``gamma_dist=0``: no mutual learning.
* ``diffusion_aug=False``: no diffusion augmentation of the real data.  The forward-diffused pair
  collapses to the clean feature: t = 0 everywhere, so x_t = x_0 (no noise) and the posterior
  sample x-tilde_t = x-hat_0 (C1_0 = 1, C2_0 = 0, no noise at t = 0); the generator's x_{t+1}
  slot, which would otherwise carry a noised copy of the real x_0, gets pure N(0, I) noise -- the
  same input it gets at synthesis.  D_xt is kept (so only the augmentation changes; it becomes a
  critic of x_0 given a, c and the noise input) and all mutual-learning weights are a_0^f = 1.
  Synthesis then makes one G call at t = 0 from pure noise (see synthesis.reverse_chain).

Not reproduced: the official critic step gates the *real* D_xt term on gamma_x0 > 0 (a typo,
METHOD.md 8 item 10); here every D_xt term is weighted by gamma_xt.

Checkpoint layout: see train_drg.py (models E, G, D_x0, D_xt, [D_xc], Dec; meta adds cfg_use_sc,
cfg_diffusion_aug, ...).
"""
from __future__ import annotations

import torch

from .config import DFGConfig, DiffusionConfig, RuntimeConfig
from .data.prepared import PreparedData
from .losses import AdaptiveGP, critic_pass_fused, mutual_learning_loss, vae_loss, weighted_l1
from .networks import DFG_NETWORKS, LRELU_SLOPE, NetworkDims, build_networks, reparameterize
from .train_drg import keep_freed_memory, selected_path
from .trainloop import TrainLoop, critic_pass, make_adam, set_requires_grad

ADAM_BETAS = (0.5, 0.999)       # G, critics, Dec (METHOD.md 3.5)
ENCODER_BETAS = (0.9, 0.999)    # E uses Adam's defaults (METHOD.md 8 item 11)


class DFGTrainer(TrainLoop):
    """``fused``: see :class:`train_drg.DRGTrainer` (fused critic passes by default,
    ``fused=False`` = straightforward autograd reference; bf16 always uses the reference)."""

    stage = "DFG"
    averaged_network = "G"

    def __init__(self, data: PreparedData, cfg: DFGConfig, diffusion: DiffusionConfig, *,
                 seed: int, device="cpu", runtime: RuntimeConfig | None = None, fused: bool = True):
        super().__init__(data, cfg, diffusion, seed=seed, device=device, runtime=runtime)
        self.fused = bool(fused) and self.runtime.precision == "fp32"
        if self.device.type == "cpu":
            keep_freed_memory()
        self.network_names = tuple(n for n in DFG_NETWORKS if cfg.use_sc or n != "D_xc")
        self.dims = NetworkDims(x_dim=data.x_dim, c_dim=data.c_dim, attr_dim=data.attr_dim,
                                hidden=cfg.hidden_dim)
        self.train_x = torch.as_tensor(data.train_x, dtype=torch.float32, device=self.device)
        self.train_c = torch.as_tensor(data.train_c, dtype=torch.float32, device=self.device)
        if not cfg.use_sc:
            self.train_c = torch.zeros_like(self.train_c)   # ablation: no SC representation input
        self.nets = build_networks(self.network_names, self.dims, self.normalize_dec,
                                   device=self.device, generator=self.init_generator)
        self.E, self.G, self.D_x0, self.D_xt, self.Dec = (self.nets[n] for n in ("E", "G", "D_x0", "D_xt", "Dec"))
        self.D_xc = self.nets.get("D_xc")
        self.critics = [net for net in (self.D_x0, self.D_xt, self.D_xc) if net is not None]
        self.optimizers = {"E": make_adam(self.E.parameters(), cfg.lr, ENCODER_BETAS)}
        for name in self.network_names[1:]:
            lr = cfg.dec_lr if name == "Dec" else cfg.lr
            self.optimizers[name] = make_adam(self.nets[name].parameters(), lr, ADAM_BETAS)
        self.critic_opts = [self.optimizers[n] for n in self.network_names if n.startswith("D")]
        self.start_averaging()
        self.gp = AdaptiveGP(cfg.gp_weight, self.device, enabled=cfg.adaptive_gp)

    def sample_batch(self):
        idx = self.sample_indices()
        return self.train_x[idx], self.train_c[idx], self.class_emb[self.train_y[idx]]

    def critic_pass(self, critic, cond_h, real, fake):
        """D(real), D(fake) per sample and the un-weighted GP (fused or reference path)."""
        if self.fused:
            return critic_pass_fused(critic, cond_h, real, fake, self.generator, LRELU_SLOPE)
        return critic_pass(critic, cond_h, real, fake, self.generator)

    def diffuse(self, x0):
        """t and the forward pair (x_t, x_{t+1}) of METHOD.md 2.1 (see module docstring for
        ``diffusion_aug=False``)."""
        n = x0.shape[0]
        if self.cfg.diffusion_aug:
            t = self.schedule.sample_steps(n, self.generator, self.device)
            x_t, x_tp1 = self.schedule.q_sample_pair(x0, t, self.generator)
        else:
            t = torch.zeros(n, dtype=torch.int64, device=self.device)
            x_t, x_tp1 = x0, self.randn(*x0.shape)
        return t, x_t, x_tp1

    def fakes(self, x0, c, a):
        """z ~ E(x_0, a) (reparameterised), t, pair, x-hat_0 = G(z, a, c, x_{t+1}, t) and
        x-tilde_t ~ q(x_t | x-hat_0, x_{t+1})."""
        mu, log_var = self.E(x0, a)
        z = reparameterize(mu, log_var, self.generator)
        t, x_t, x_tp1 = self.diffuse(x0)
        x0_fake = self.G(z, a, c, x_tp1, t)
        xt_fake = self.schedule.sample_posterior(x0_fake, x_tp1, t, self.generator)
        return mu, log_var, t, x_t, x_tp1, x0_fake, xt_fake

    @selected_path
    def critic_step(self, x0, c, a) -> dict[str, torch.Tensor]:
        """One update of D_x0, D_xt, D_xc and Dec (METHOD.md 3.3); E and G are frozen."""
        cfg, lam = self.cfg, self.gp.weight()
        for opt in self.critic_opts:
            opt.zero_grad(set_to_none=True)
        with self.autocast():
            with torch.no_grad():
                _, _, t, x_t, x_tp1, x0_fake, xt_fake = self.fakes(x0, c, a)
            # Dec learns a from real features (TF-VAEGAN semantic decoder).
            loss_dec = cfg.gamma_rec * weighted_l1(self.Dec(x0), a)

            real_x0, fake_x0, gp_x0 = self.critic_pass(self.D_x0, self.D_x0.condition(a), x0, x0_fake)
            real_xt, fake_xt, gp_xt = self.critic_pass(self.D_xt, self.D_xt.condition(x_tp1, a, c, t),
                                                       x_t, xt_fake)
            w_x0 = (real_x0 - fake_x0).float()       # per-sample Wasserstein gaps
            w_xt = (real_xt - fake_xt).float()
            adv = cfg.gamma_x0 * -w_x0.mean() + cfg.gamma_xt * -w_xt.mean()
            penalty = cfg.gamma_x0 * gp_x0 + cfg.gamma_xt * gp_xt
            w_xc = None
            if self.D_xc is not None:
                real_xc, fake_xc, gp_xc = self.critic_pass(self.D_xc, self.D_xc.condition(c), x0,
                                                           x0_fake)
                w_xc = (real_xc - fake_xc).float()
                adv = adv - w_xc.mean()
                penalty = penalty + gp_xc
            loss_adv = cfg.gamma_adv * (adv + lam * penalty)

            if cfg.gamma_dist > 0:
                weight = self.schedule.signal_weight(t, cfg.factor_dist, w_x0)
                loss_ml = mutual_learning_loss(w_x0, w_xt, w_xc, weight)
            else:
                loss_ml = torch.zeros((), device=self.device)
        (loss_adv + cfg.gamma_dist * loss_ml + loss_dec).backward()
        for opt in self.critic_opts:
            opt.step()
        stats = {"loss_D": loss_adv, "loss_ml": loss_ml, "loss_dec": loss_dec,
                 "W_x0": w_x0.mean(), "W_xt": w_xt.mean(), "gp": penalty}
        if w_xc is not None:
            stats["W_xc"] = w_xc.mean()
        return stats

    @selected_path
    def generator_step(self, x0, c, a) -> dict[str, torch.Tensor]:
        """One update of E and G (and Dec unless freeze_dec), METHOD.md 3.5."""
        cfg = self.cfg
        set_requires_grad(self.critics, False)
        set_requires_grad([self.Dec], not cfg.freeze_dec)
        for name in ("E", "G", "Dec"):
            self.optimizers[name].zero_grad(set_to_none=True)
        with self.autocast():
            mu, log_var, t, _, x_tp1, x0_fake, xt_fake = self.fakes(x0, c, a)
            loss_vae, _, _ = vae_loss(x0_fake, x0, mu, log_var)
            adv_g = (-cfg.gamma_x0 * self.D_x0(x0_fake, a).float().mean()
                     - cfg.gamma_xt * self.D_xt(xt_fake, x_tp1, a, c, t).float().mean())
            if self.D_xc is not None:
                adv_g = adv_g - self.D_xc(x0_fake, c).float().mean()
            loss_rec = weighted_l1(self.Dec(x0_fake), a)
            loss_g = cfg.gamma_vae * loss_vae + cfg.gamma_adv * adv_g + cfg.gamma_rec * loss_rec
        loss_g.backward()
        self.optimizers["E"].step()
        self.optimizers["G"].step()
        if not cfg.freeze_dec:
            self.optimizers["Dec"].step()
        set_requires_grad(self.critics, True)
        set_requires_grad([self.Dec], True)
        return {"loss_G": loss_g, "loss_vae": loss_vae, "adv_G": adv_g, "loss_rec": loss_rec}

    def iteration(self) -> dict[str, torch.Tensor]:
        """critic_steps critic steps on fresh batches, the adaptive-lambda update (METHOD.md 3.4),
        then one generator step on the last batch."""
        sums = {}
        for _ in range(self.cfg.critic_steps):
            x0, c, a = self.sample_batch()
            for name, value in self.critic_step(x0, c, a).items():
                value = value.detach()
                sums[name] = sums[name] + value if name in sums else value
        stats = {name: value / self.cfg.critic_steps for name, value in sums.items()}
        self.gp.update(stats["gp"])
        stats.update(self.generator_step(x0, c, a))
        return stats
