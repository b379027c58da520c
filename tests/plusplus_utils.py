"""Shared fixtures of the DiffTTA / DiffGen / ZeroDiff++ tests: class-clustered prepared data
(so that classifiers are confident and pseudo-labels exist) and a tiny DRG + DFG trained on it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from zerodiffpp.config import DFGConfig, DiffusionConfig, DRGConfig, RuntimeConfig
from zerodiffpp.data.prepared import PreparedData
from zerodiffpp.synthesis import load_models
from zerodiffpp.train_dfg import DFGTrainer
from zerodiffpp.train_drg import DRGTrainer

DX, DC, DA, HIDDEN = 24, 20, 6, 32
N_SEEN, N_UNSEEN = 5, 3
TINY = dict(batch_size=32, critic_steps=2, hidden_dim=HIDDEN)


def clustered_data(seed: int = 0, per_class_train: int = 40, per_class_test: int = 12,
                   noise: float = 0.05, train_counts=None) -> PreparedData:
    """Features in (0, 1) around class means that depend on the class embedding."""
    rng = np.random.default_rng(seed)
    n_classes = N_SEEN + N_UNSEEN
    emb = rng.random((n_classes, DA)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    wx, wc = rng.normal(size=(DA, DX)) * 3, rng.normal(size=(DA, DC)) * 3
    mean_x = 1 / (1 + np.exp(-(emb - emb.mean(0)) @ wx))
    mean_c = 1 / (1 + np.exp(-(emb - emb.mean(0)) @ wc))
    seen, unseen = np.arange(N_SEEN), np.arange(N_SEEN, n_classes)

    def draw(classes, counts):
        y = np.repeat(classes, counts)
        x = np.clip(mean_x[y] + noise * rng.normal(size=(len(y), DX)), 0, 1).astype(np.float32)
        c = np.clip(mean_c[y] + noise * rng.normal(size=(len(y), DC)), 0, 1).astype(np.float32)
        return x, c, y.astype(np.int64)

    tr = draw(seen, train_counts if train_counts is not None else per_class_train)
    ts, tu = draw(seen, per_class_test), draw(unseen, per_class_test)
    return PreparedData(tr[0], tr[1], tr[2], *ts, *tu, emb, seen.astype(np.int64),
                        unseen.astype(np.int64), np.arange(1, len(tr[2]) + 1, dtype=np.int64))


def train_tiny(data: PreparedData, out: Path, epochs: int = 4, seed: int = 0):
    """DRG + DFG checkpoints in out/drg, out/dfg; returns the loaded ZeroDiffModels."""
    rt = RuntimeConfig(device="cpu", threads=1, progress=False)
    for cls, cfg, name in ((DRGTrainer, DRGConfig(epochs=epochs, **TINY), "drg"),
                           (DFGTrainer, DFGConfig(epochs=epochs, **TINY), "dfg")):
        trainer = cls(data, cfg, DiffusionConfig(), seed=seed, runtime=rt)
        trainer.train(epochs)
        trainer.save(out / name / "model.pt")
    return load_models(out / "drg", out / "dfg", "cpu")


def state(*nets) -> dict:
    return {f"{i}.{k}": v.detach().clone() for i, n in enumerate(nets) for k, v in n.state_dict().items()}


def same_state(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def random_models(seed: int = 0, diffusion_aug: bool = True, use_sc: bool = True):
    """Untrained ZeroDiffModels (eval mode, gradients off) with the clustered_data dimensions."""
    from zerodiffpp.diffusion import DiffusionSchedule
    from zerodiffpp.networks import DFG_NETWORKS, NetworkDims, build_networks
    from zerodiffpp.synthesis import ZeroDiffModels

    dims = NetworkDims(x_dim=DX, c_dim=DC, attr_dim=DA, hidden=HIDDEN)
    nets = build_networks(("R",) + DFG_NETWORKS, dims, True, generator=torch.Generator().manual_seed(seed))
    for net in nets.values():
        net.eval().requires_grad_(False)
    return ZeroDiffModels(R=nets["R"], E=nets["E"], G=nets["G"], D_x0=nets["D_x0"], D_xt=nets["D_xt"],
                          D_xc=nets["D_xc"], Dec=nets["Dec"], schedule=DiffusionSchedule(),
                          dims=dims, device=torch.device("cpu"), use_sc=use_sc,
                          diffusion_aug=diffusion_aug)
