"""f-CLSWGAN (Xian, Lorenz, Schiele, Akata, "Feature Generating Networks for Zero-Shot
Learning", CVPR 2018) in the ZeroDiff harness.

* G(z, a) -> x and critic D(x, a): one-hidden-layer MLPs of width ``baselines.hidden_dim``
  (see :mod:`.base`).
* Critic: WGAN-GP, -(E D(x, a) - E D(G(z, a), a)) + lambda * GP (METHOD.md 3.1).
* Generator: -E D(G(z, a), a) + beta * NLL(f(G(z, a)), y), where f is a softmax classifier
  over the seen classes, pre-trained on the real seen training features and then frozen
  (beta = ``baselines.cls_weight``).  f is the same Linear + log-softmax model as the final
  classifier (:mod:`zerodiffpp.classifier`); its schedule (50 epochs, Adam lr 1e-3, batch 100)
  follows the public description of the method.  f only ever sees seen training features.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..classifier import train_classifier
from ..data.prepared import PreparedData
from ..trainloop import set_requires_grad
from .base import BaselineTrainer


class FCLSWGAN(BaselineTrainer):
    name = "fclswgan"
    stage = "f-CLSWGAN"
    # Schedule of the pre-trained seen-class classifier f (not in params.yaml: fixed by the method).
    pretrain_epochs = 50
    pretrain_lr = 1e-3
    pretrain_batch = 100

    def prepare(self, data: PreparedData) -> None:
        seen = torch.as_tensor(self.seen_classes, device=self.device)
        # Global 0-based class id -> position among the seen classes (-1: unseen, never trained on).
        self.seen_index = torch.full((self.n_classes,), -1, dtype=torch.int64, device=self.device)
        self.seen_index[seen] = torch.arange(len(seen), device=self.device)
        pretrain = train_classifier(
            self.train_x, self.seen_index[self.train_y], len(seen), epochs=self.pretrain_epochs,
            lr=self.pretrain_lr, batch_size=self.pretrain_batch,
            generator=torch.Generator().manual_seed(self.seed + 2))
        self.classifier = self.nets["classifier"] = pretrain.model   # saved with the checkpoint
        set_requires_grad([self.classifier], False)
        self.classifier.eval()
        with torch.no_grad():
            pred = self.classifier(self.train_x).argmax(dim=1)
            self.pretrain_accuracy = float((pred == self.seen_index[self.train_y]).float().mean())

    def generator_step(self, x, a, y):
        """One update of G on the last critic batch with fresh z (critic frozen by the caller)."""
        self.opt_G.zero_grad(set_to_none=True)
        with self.autocast():
            fake = self.G(self.randn(x.shape[0], self.z_dim), a)
            loss_adv = self.adversarial_loss(fake, a)
            loss_cls = F.nll_loss(self.classifier(fake).float(), self.seen_index[y])
            loss_g = loss_adv + self.cfg.cls_weight * loss_cls
        loss_g.backward()
        self.opt_G.step()
        return {"loss_G": loss_g, "loss_G_adv": loss_adv, "loss_cls": loss_cls}

    def meta(self) -> dict:
        meta = super().meta()
        meta["pretrain_train_accuracy"] = float(getattr(self, "pretrain_accuracy", float("nan")))
        return meta
