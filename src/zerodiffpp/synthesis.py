"""Loading trained DRG + DFG checkpoints and synthesising features (METHOD.md 2.5).

    models = load_models("runs/drg", "runs/dfg", device)
    x, c, y = generate(models, class_emb, classes, n_per_class, "one_step", generator)

For each requested class y with embedding a_y:
  1. c-hat = R(z_c, a_y, N(0, I), t = n_T - 1), z_c ~ N(0, I)            (one DRG step from noise)
  2. z ~ N(0, I) (the prior, not the encoder), x_{n_T} ~ N(0, I)
  3. one_step:    x = G(z, a_y, c-hat, x_{n_T}, n_T - 1)
     progressive: for i = n_T-1 .. 0: x-hat_0 = G(z, a_y, c-hat, x_{i+1}, i);
                  x_i ~ q(x_i | x-hat_0, x_{i+1}); the output is the last x-hat_0.  Same z throughout.
:func:`reverse_chain` runs step 3 from any level k with a given x_k, so a caller can also start from
a partially noised real feature.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .diffusion import DiffusionSchedule
from .io import DataError, load_checkpoint
from .networks import DFG_NETWORKS, NetworkDims, build_networks

MODES = ("one_step", "progressive")
CHECKPOINT_NAME = "model.pt"


@dataclass
class ZeroDiffModels:
    R: torch.nn.Module
    E: torch.nn.Module
    G: torch.nn.Module
    D_x0: torch.nn.Module
    D_xt: torch.nn.Module
    D_xc: Optional[torch.nn.Module]      # None when the DFG was trained with use_sc=False
    Dec: torch.nn.Module
    schedule: DiffusionSchedule
    dims: NetworkDims
    device: torch.device
    use_sc: bool = True                  # False: G's SC input is zeroed (ablation)
    diffusion_aug: bool = True           # False: G was trained at t = 0 from pure noise (ablation)


def _load(stage_dir, stage: str) -> dict:
    ckpt = load_checkpoint(Path(stage_dir) / CHECKPOINT_NAME)
    meta = ckpt.get("meta") if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or meta.get("stage") != stage or "models" not in ckpt:
        raise DataError(f"{Path(stage_dir) / CHECKPOINT_NAME}: not a {stage} checkpoint")
    return ckpt


def _restore(ckpt: dict, names, device, where="checkpoint") -> dict[str, torch.nn.Module]:
    """The networks ``names``; a generator trained with ``ema_decay > 0`` comes back as its
    weight average (trainloop.WeightAverage), which is what that setting asks synthesis to use."""
    meta = ckpt["meta"]
    averaged = ckpt.get("averaged") or {}
    try:
        nets = build_networks(names, NetworkDims.from_meta(meta), bool(meta["normalize_dec"]))
        for name, net in nets.items():
            weights = averaged[name]["weights"] if name in averaged else ckpt["models"][name]
            net.load_state_dict(weights)
            net.to(device).eval().requires_grad_(False)
    except (KeyError, IndexError, TypeError, ValueError, RuntimeError) as exc:
        msg = (str(exc).strip().splitlines() or [""])[0][:300]
        raise DataError(f"{where}: networks cannot be restored ({type(exc).__name__}: {msg}); "
                        "rerun the training stage") from exc
    return nets


def load_models(drg_dir, dfg_dir, device="cpu") -> ZeroDiffModels:
    """Rebuild R (from the DRG checkpoint) and E, G, critics, Dec (from the DFG checkpoint), in
    eval mode with gradients off.  Dimensions and schedules of the two stages must agree."""
    device = torch.device(device)
    drg, dfg = _load(drg_dir, "DRG"), _load(dfg_dir, "DFG")
    m_r, m_f = drg["meta"], dfg["meta"]
    for key in ("c_dim", "attr_dim", "n_steps", "beta_min", "beta_max"):
        if m_r.get(key) != m_f.get(key):
            raise DataError(f"{drg_dir} and {dfg_dir}: checkpoints disagree on {key} "
                            f"({m_r.get(key)} vs {m_f.get(key)}); retrain both stages on the same data")
    use_sc = bool(m_f.get("cfg_use_sc", True))
    r_nets = _restore(drg, ("R",), device, Path(drg_dir) / CHECKPOINT_NAME)
    f_nets = _restore(dfg, tuple(n for n in DFG_NETWORKS if use_sc or n != "D_xc"), device,
                      Path(dfg_dir) / CHECKPOINT_NAME)
    schedule = DiffusionSchedule(int(m_f["n_steps"]), float(m_f["beta_min"]),
                                 float(m_f["beta_max"])).to(device)
    return ZeroDiffModels(R=r_nets["R"], E=f_nets["E"], G=f_nets["G"], D_x0=f_nets["D_x0"],
                          D_xt=f_nets["D_xt"], D_xc=f_nets.get("D_xc"), Dec=f_nets["Dec"],
                          schedule=schedule, dims=NetworkDims.from_meta(m_f), device=device,
                          use_sc=use_sc, diffusion_aug=bool(m_f.get("cfg_diffusion_aug", True)))


def _randn(shape, generator: torch.Generator, device) -> torch.Tensor:
    """N(0, I) from ``generator`` (any device), moved to ``device``."""
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


@torch.no_grad()
def sample_representations(models: ZeroDiffModels, a: torch.Tensor, generator: torch.Generator):
    """c-hat = R(z_c, a, c_in ~ N(0, I), t = n_T - 1): one DRG step from pure noise (METHOD.md 2.5)."""
    n = a.shape[0]
    z_c = _randn((n, models.dims.z_dim), generator, models.device)
    c_in = _randn((n, models.dims.c_dim), generator, models.device)
    t = torch.full((n,), models.schedule.n_steps - 1, dtype=torch.int64, device=models.device)
    return models.R(z_c, a, c_in, t)


@torch.no_grad()
def reverse_chain(models: ZeroDiffModels, z: torch.Tensor, a: torch.Tensor, c: torch.Tensor,
                  x_k: torch.Tensor, k: int, mode: str, generator: torch.Generator) -> torch.Tensor:
    """Denoise from level k (1..n_T) with the given x_k; returns x-hat_0.

    one_step: x-hat_0 = G(z, a, c, x_k, k - 1).
    progressive: for i = k-1 .. 0: x-hat_0 = G(z, a, c, x_{i+1}, i), x_i ~ q(x_i | x-hat_0, x_{i+1}).
    A DFG trained without diffusion augmentation only knows t = 0 with a pure-noise input, so it
    gets a single G call at t = 0 in either mode."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: must be one of {', '.join(MODES)}")
    if not 1 <= k <= models.schedule.n_steps:
        raise ValueError(f"k={k}: must be in 1..{models.schedule.n_steps}")
    if not models.use_sc:
        c = torch.zeros_like(c)
    n = z.shape[0]

    def step(i: int):
        return torch.full((n,), i, dtype=torch.int64, device=models.device)

    if not models.diffusion_aug:
        return models.G(z, a, c, x_k, step(0))
    if mode == "one_step":
        return models.G(z, a, c, x_k, step(k - 1))
    x = x_k
    for i in reversed(range(k)):
        t = step(i)
        x0_hat = models.G(z, a, c, x, t)
        if i > 0:   # at i = 0 the posterior sample equals x-hat_0 (C1_0 = 1, C2_0 = 0, no noise)
            x = models.schedule.sample_posterior(x0_hat, x, t, generator)
    return x0_hat


@torch.no_grad()
def generate(models: ZeroDiffModels, class_emb: torch.Tensor, classes: np.ndarray, n_per_class: int,
             mode: str, generator: torch.Generator, chunk_size: int = 4096):
    """Synthesise ``n_per_class`` (x, c-hat) per class in ``classes`` (0-based rows of class_emb).

    Returns CPU tensors x (n, x_dim) float32, c (n, c_dim) float32 and y (n,) int64, grouped by
    class in the order given.  Works in chunks of ``chunk_size`` rows so memory stays bounded."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: must be one of {', '.join(MODES)}")
    classes = np.asarray(classes, dtype=np.int64).reshape(-1)
    labels = torch.from_numpy(np.repeat(classes, int(n_per_class)))
    emb = torch.as_tensor(class_emb, dtype=torch.float32).to(models.device)
    n_T = models.schedule.n_steps
    xs, cs = [], []
    for labels_chunk in labels.split(chunk_size):
        a = emb[labels_chunk.to(models.device)]
        n = a.shape[0]
        c_hat = sample_representations(models, a, generator)
        z = _randn((n, models.dims.z_dim), generator, models.device)
        x_T = _randn((n, models.dims.x_dim), generator, models.device)
        x = reverse_chain(models, z, a, c_hat, x_T, n_T, mode, generator)
        xs.append(x.float().cpu())
        cs.append(c_hat.float().cpu())
    if not xs:
        return (torch.zeros(0, models.dims.x_dim), torch.zeros(0, models.dims.c_dim),
                torch.zeros(0, dtype=torch.int64))
    return torch.cat(xs), torch.cat(cs), labels
