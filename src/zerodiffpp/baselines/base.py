"""Shared machinery of the feature-generating baselines (f-CLSWGAN, f-VAEGAN).

Both are conditional WGAN-GPs on (x, a) pairs (METHOD.md 3.1) trained in the same harness as
ZeroDiff: the same :class:`~zerodiffpp.data.prepared.PreparedData` (features, splits, seen
fraction), an i.i.d. random batch per critic step and one generator step on the last critic
batch (METHOD.md 3.2 / 4.1), ``epochs * ceil(n_train / batch)`` generator iterations,
Adam(lr, betas=(0.5, 0.999)), z ~ N(0, I) with dim z = dim a.

Networks are the ZeroDiff building blocks (:mod:`zerodiffpp.networks`): G(z, a) is an
``MLPHead`` [z, a] -> hidden -> LeakyReLU(0.2) -> x_dim -> Sigmoid (sigmoid rather than the
original f-CLSWGAN ReLU because prepared features are MinMax-scaled to [0, 1], METHOD.md 2.4);
the critic D(x, a) is ``CriticX0`` (the same architecture as ZeroDiff's D_x0).

Randomness: weights from a CPU generator seeded with ``seed``, every training draw (batches, z,
GP alphas) from one generator on the training device seeded with ``seed + 1`` (as in
:mod:`zerodiffpp.trainloop`); global RNGs are never used, so same seed -> same run on CPU.

Resume: checkpoints hold weights, both Adam states, the training generator's state and the
history, and :func:`zerodiffpp.trainloop.fit` drives training exactly as for DRG/DFG (per-epoch
checkpoints, SIGINT/SIGTERM -> resumable stop, the same compatibility check).  Call
:meth:`BaselineTrainer.prepare_once` before resuming: f-CLSWGAN's frozen classifier is a network
of the checkpoint, so it must exist before the checkpoint is loaded.
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from ..config import BaselinesConfig, RuntimeConfig
from ..data.prepared import PreparedData
from ..io import DataError, load_checkpoint
from ..networks import CriticX0, MLPHead, init_weights
from ..runtime import autocast
from ..trainloop import (Resumable, add_stats, critic_pass, data_fingerprint, epoch_means,
                         make_adam, run_epochs, run_iterations, set_requires_grad)

ADAM_BETAS = (0.5, 0.999)
CHECKPOINT_FORMAT = 1


class ConditionalGenerator(nn.Module):
    """G(z, a) -> x in (0, 1)^x_dim."""

    def __init__(self, z_dim: int, attr_dim: int, hidden: int, x_dim: int):
        super().__init__()
        self.net = MLPHead(z_dim + attr_dim, hidden, x_dim, sigmoid=True)

    def forward(self, z: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, a], dim=1))


class BaselineTrainer(Resumable):
    """Base class.  Subclasses set ``name`` / ``stage`` and implement :meth:`generator_step`
    (returning a dict of 0-d loss tensors, ``loss_G`` first), and where needed
    :meth:`build_networks`, :meth:`generator_parameters` and :meth:`prepare`; the critic step is
    the shared WGAN-GP update of D(x, a)."""

    name: ClassVar[str] = ""
    progress_meta = ("epochs_done", "torch_version", "pretrain_train_accuracy")
    code_dependencies = ("classifier", "losses", "networks")

    def __init__(self, data: PreparedData, cfg: BaselinesConfig, *, seed: int, device="cpu",
                 runtime: RuntimeConfig | None = None):
        self.cfg = cfg
        self.runtime = runtime or RuntimeConfig(device="cpu", progress=False)
        self.device = torch.device(device)
        self.seed = int(seed)
        self.x_dim, self.attr_dim = data.x_dim, data.attr_dim
        self.z_dim = data.attr_dim                      # noise size = attribute size
        self.n_classes = data.n_classes
        self.seen_classes = np.asarray(data.seen_classes, dtype=np.int64)
        self.n_train = int(len(data.train_y))
        self.batch_size = min(int(cfg.batch_size), self.n_train)
        # One epoch = ceil(n_train / B) generator iterations (METHOD.md 4.1).
        self.iters_per_epoch = math.ceil(self.n_train / cfg.batch_size)
        self.fingerprint = data_fingerprint(data)
        self.train_x = torch.as_tensor(data.train_x, dtype=torch.float32, device=self.device)
        self.train_y = torch.as_tensor(data.train_y, dtype=torch.int64, device=self.device)
        self.class_emb = torch.as_tensor(data.class_emb, dtype=torch.float32, device=self.device)
        self.init_generator = torch.Generator().manual_seed(self.seed)
        self.generator = torch.Generator(device=self.device).manual_seed(self.seed + 1)
        self.nets: dict[str, nn.Module] = {
            "G": ConditionalGenerator(self.z_dim, self.attr_dim, cfg.hidden_dim, self.x_dim),
            "D": CriticX0(self.x_dim, self.attr_dim, cfg.hidden_dim),
        }
        self.nets.update(self.build_networks())
        for name, net in self.nets.items():
            self.nets[name] = init_weights(net, self.init_generator).to(self.device)
        self.G, self.D = self.nets["G"], self.nets["D"]
        self.critic_params = list(self.D.parameters())
        self.opt_D = make_adam(self.critic_params, cfg.lr, ADAM_BETAS)
        self.opt_G = make_adam(self.generator_parameters(), cfg.lr, ADAM_BETAS)
        self.optimizers = {"D": self.opt_D, "G": self.opt_G}
        self.epoch = 0
        self.history: list[dict] = []
        self.prepared = False

    # ------------------------------------------------------------------ subclass hooks

    def build_networks(self) -> dict[str, nn.Module]:
        """Extra networks (built after G and D, so init draws are reproducible)."""
        return {}

    def generator_parameters(self) -> list[nn.Parameter]:
        """What the generator-side Adam updates."""
        return list(self.G.parameters())

    def prepare(self, data: PreparedData) -> None:
        """Work before the first epoch that is not in the checkpoint's state (e.g. f-CLSWGAN
        pre-trains its classifier); deterministic, so a resumed run repeats it identically."""

    def generator_step(self, x: torch.Tensor, a: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers

    def autocast(self):
        return autocast(self.runtime, self.device)

    def randn(self, *shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, device=self.device)

    def sample_batch(self):
        """randperm(n_train)[:B]: a fresh i.i.d. batch without replacement, as in ZeroDiff."""
        idx = torch.randperm(self.n_train, generator=self.generator, device=self.device)[: self.batch_size]
        y = self.train_y[idx]
        return self.train_x[idx], self.class_emb[y], y

    def critic_step(self, x: torch.Tensor, a: torch.Tensor) -> dict[str, torch.Tensor]:
        """WGAN-GP critic update, fakes G(z ~ N(0, I), a) (METHOD.md 3.1)."""
        self.opt_D.zero_grad(set_to_none=True)
        with self.autocast():
            with torch.no_grad():
                fake = self.G(self.randn(x.shape[0], self.z_dim), a)
            real_s, fake_s, gp = critic_pass(self.D, self.D.condition(a), x, fake, self.generator)
            w_dist = real_s.float().mean() - fake_s.float().mean()
            loss_d = -w_dist + self.cfg.gp_weight * gp
        # inputs=: no gradient for the interpolates themselves (saves one matmul per step).
        loss_d.backward(inputs=self.critic_params)
        self.opt_D.step()
        return {"loss_D": loss_d, "W": w_dist, "gp": gp}

    def adversarial_loss(self, fake: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """-E D(fake, a); call with the critic frozen (see :meth:`iteration`)."""
        return -self.D(fake, a).float().mean()

    # ------------------------------------------------------------------ training

    def iteration(self) -> dict[str, torch.Tensor]:
        """``critic_steps`` critic updates on fresh batches, then one generator update on the
        last batch; returns per-iteration means (device tensors, no host sync)."""
        sums: dict[str, torch.Tensor] = {}
        for _ in range(self.cfg.critic_steps):
            x, a, y = self.sample_batch()
            add_stats(sums, self.critic_step(x, a))
        stats = {key: value / self.cfg.critic_steps for key, value in sums.items()}
        set_requires_grad([self.D], False)
        try:
            stats.update({k: v.detach().float() for k, v in self.generator_step(x, a, y).items()})
        finally:
            set_requires_grad([self.D], True)
        return stats

    def run_epoch(self, bar=None) -> dict:
        start = time.perf_counter()
        sums = run_iterations(self.iteration, self.iters_per_epoch, bar)
        epoch = self.epoch + 1
        means = epoch_means(sums, list(sums), self.iters_per_epoch, self.name, epoch,
                            "lower baselines.lr or check the prepared features")
        row = {"epoch": epoch, **means, "seconds": time.perf_counter() - start}
        self.epoch = epoch
        self.history.append(row)
        return row

    def prepare_once(self, data: PreparedData) -> None:
        if not self.prepared:
            self.prepare(data)
            self.prepared = True

    def train(self, epochs: int | None = None, on_epoch_end=None) -> list[dict]:
        """Train until ``epochs`` (default ``cfg.epochs``) epochs are done in total, continuing
        after a resume; :meth:`prepare_once` must have run."""
        if not self.prepared:
            raise RuntimeError(f"{self.name}: call prepare_once(data) before train()")
        for net in self.nets.values():
            net.train()
        epochs = self.cfg.epochs if epochs is None else epochs
        run_epochs(self, max(0, epochs - self.epoch), self.name, on_epoch_end)
        return self.history

    # ------------------------------------------------------------------ synthesis

    @torch.no_grad()
    def generate(self, classes, n_per_class: int, generator: torch.Generator,
                 chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
        """``n_per_class`` features per class, x = G(z ~ N(0, I), a_y), classes in the given order
        (consecutive rows).  ``generator`` lives on the training device.  Returns
        (x float32 (n, x_dim), y int64 0-based class ids)."""
        labels = torch.as_tensor(np.asarray(classes, dtype=np.int64), device=self.device)
        labels = labels.repeat_interleave(int(n_per_class))
        out = np.empty((labels.shape[0], self.x_dim), dtype=np.float32)
        was_training = self.G.training
        self.G.eval()
        try:
            for start in range(0, labels.shape[0], chunk):
                y = labels[start:start + chunk]
                z = torch.randn((y.shape[0], self.z_dim), generator=generator, device=self.device)
                with self.autocast():
                    x = self.G(z, self.class_emb[y])
                out[start:start + y.shape[0]] = x.float().cpu().numpy()
        finally:
            self.G.train(was_training)
        return out, labels.cpu().numpy()

    # ------------------------------------------------------------------ checkpoints

    def meta(self) -> dict:
        meta = {"format": CHECKPOINT_FORMAT, "method": self.name, "x_dim": self.x_dim,
                "attr_dim": self.attr_dim, "z_dim": self.z_dim, "n_classes": self.n_classes,
                "seed": self.seed, "n_train": self.n_train, "data_fingerprint": self.fingerprint,
                "iters_per_epoch": self.iters_per_epoch, "device_type": self.device.type,
                "precision": self.runtime.precision, "epochs_done": self.epoch,
                "torch_version": str(torch.__version__), "code_version": self.code_version()}
        for key, value in dataclasses.asdict(self.cfg).items():
            meta[f"cfg_{key}"] = value
        return meta

    def load_state_dict(self, checkpoint: dict) -> None:
        meta = checkpoint.get("meta", {})
        if meta.get("method") != self.name:
            raise DataError(f"checkpoint is for method {meta.get('method')!r}, not {self.name!r}")
        missing = [name for name in self.nets if name not in checkpoint["models"]]
        if missing:
            raise DataError(f"{self.name} checkpoint: network {missing[0]!r} missing")
        super().load_state_dict(checkpoint)


def load_baseline(path: str | Path, data: PreparedData, device="cpu",
                  runtime: RuntimeConfig | None = None) -> BaselineTrainer:
    """Rebuild a trained baseline from its ``model.pt``; ``data`` must be the prepared data it
    was trained on (dimensions and class embeddings; checked by fingerprint)."""
    from . import BASELINES   # the registry imports this module

    checkpoint = load_checkpoint(path, map_location=device)
    meta = checkpoint.get("meta", {})
    if meta.get("method") not in BASELINES:
        raise DataError(f"{path}: unknown baseline method {meta.get('method')!r}")
    if meta.get("data_fingerprint") != data_fingerprint(data):
        raise DataError(f"{path}: trained on different prepared data (fingerprint mismatch)")
    cfg = BaselinesConfig(**{k[len("cfg_"):]: v for k, v in meta.items() if k.startswith("cfg_")})
    trainer = BASELINES[meta["method"]](data, cfg, seed=int(meta["seed"]), device=device,
                                        runtime=runtime)
    trainer.load_state_dict(checkpoint)
    return trainer
