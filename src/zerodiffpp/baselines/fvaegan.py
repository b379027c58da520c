"""f-VAEGAN without D2 and without feedback (Xian, Sharma, Schiele, Akata, "f-VAEGAN-D2: A
Feature Generating Framework for Any-Shot Learning", CVPR 2019) in the ZeroDiff harness.

A conditional VAE and a conditional WGAN-GP share the generator/decoder G(z, a):

* Encoder E(x, a) -> (mu, log sigma^2): ZeroDiff's ``DFGEncoder`` layout, [x, a] -> hidden ->
  LeakyReLU -> 2 d_z -> LeakyReLU -> two heads (METHOD.md 2.4).
* Critic: WGAN-GP with fakes G(z, a), z ~ N(0, I) (METHOD.md 3.1; shared with f-CLSWGAN).
* Generator step (E and G together, one Adam(lr, (0.5, 0.999))):
    vae_weight * (BCE(G(z_E, a), x) + KL(N(mu, sigma^2) || N(0, I)))
    + gen_adv_weight * (-E D(G(z, a), a)),
  z_E = mu + sigma * eps (reparameterised), z ~ N(0, I) for the adversarial term as in the
  paper; BCE and KL summed over dimensions, averaged over the batch (``losses.vae_loss``).
* Synthesis samples the prior z ~ N(0, I).
"""
from __future__ import annotations

import torch
from torch import nn

from ..losses import vae_loss
from ..networks import DFGEncoder, NetworkDims, reparameterize
from .base import BaselineTrainer


class FVAEGAN(BaselineTrainer):
    name = "fvaegan"
    stage = "f-VAEGAN"

    def build_networks(self) -> dict[str, nn.Module]:
        # DFGEncoder reads x_dim, attr_dim, hidden and z_dim only (no SC representation c).
        dims = NetworkDims(x_dim=self.x_dim, c_dim=0, attr_dim=self.attr_dim,
                           hidden=self.cfg.hidden_dim, z_dim=self.z_dim)
        return {"E": DFGEncoder(dims)}

    def generator_parameters(self):
        """E and G are updated together by one Adam."""
        return list(self.nets["E"].parameters()) + list(self.G.parameters())

    def generator_step(self, x, a, y):
        """One update of E and G on the last critic batch (critic frozen by the caller)."""
        cfg = self.cfg
        self.opt_G.zero_grad(set_to_none=True)
        with self.autocast():
            mu, log_var = self.nets["E"](x, a)
            z_post = reparameterize(mu, log_var, self.generator)
            z_prior = self.randn(x.shape[0], self.z_dim)
            # Both decodings in one batch through G: (reconstruction, prior sample).
            recon, fake = self.G(torch.cat([z_post, z_prior]), torch.cat([a, a])).chunk(2)
            loss_vae, bce, kl = vae_loss(recon, x, mu, log_var)
            loss_adv = self.adversarial_loss(fake, a)
            loss_g = cfg.vae_weight * loss_vae + cfg.gen_adv_weight * loss_adv
        loss_g.backward()
        self.opt_G.step()
        return {"loss_G": loss_g, "loss_G_adv": loss_adv, "bce": bce, "kl": kl}
