"""DiffGen: test-time generation along the denoising path (METHOD.md 6.4 [PROPOSAL];
ZeroDiff++ generation-time component v).

SDEdit-style: instead of starting the reverse chain from pure noise, start it from a *partially*
noised real feature (an "anchor" (x, c, y-hat, weight)):
  1. start level k in ``diffgen.start_levels`` (each in 1..n_T);
  2. x_k = a_k x + sigma-bar_k eps (forward marginal, METHOD.md 2.1); z ~ N(0, I);
  3. for i = k-1 .. 0: x-hat_0^(i) = G(z, a_y, c, x_{i+1}, i); x_i ~ q(x_i | x-hat_0^(i), x_{i+1});
  4. every intermediate x-hat_0^(i) is a "partially synthesised" feature labelled y-hat, with the
     anchor's real SC representation c and the anchor's weight.
Small k stays near the anchor; k = n_T is ordinary (progressive) generation up to the tiny
a_{n_T} x term.  The chain always runs progressively (the intermediates are the point), whatever
``eval.sampling`` says; a DFG trained without diffusion augmentation yields one G call per path.

Anchors (:func:`budgets`): seen classes = real seen-train samples with true labels (weight 1),
topped up to round(seen_fraction * syn_per_class) features per class (nothing when the class
already has that many real samples); unseen classes = pseudo-labelled *unlabelled test*
samples (DiffTTA's, or f0's when TTA is off; weight p(y-hat|x)), round(unseen_fraction *
syn_per_class) features per class.  **Transductive** for the unseen part: it reads test features;
true test labels are never used.

Budget spreading (:func:`plan`): the anchors of a class are put in a seeded random order; path
r uses anchor r mod A and start level start_levels[(r + floor(r / lcm(A, L))) mod L], so path
counts per anchor and per level differ by at most one, and the anchor/level pairing shifts every
lcm(A, L) paths (each anchor meets every level when it is reused).  A path from level k
contributes its k predictions (paths, not features, are balanced over levels); the last path is
cut to fit the budget exactly, keeping its final predictions (those nearest i = 0).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from .config import ConfigError, DiffGenConfig
from .synthesis import reverse_chain

CHUNK = 4096


def validate_start_levels(levels, n_steps: int) -> tuple[int, ...]:
    """Start levels must be distinct integers in 1..n_steps; ConfigError names the parameter."""
    levels = list(levels)
    if not levels:
        raise ConfigError(f"diffgen.start_levels=[]: list at least one start level in 1..{n_steps}")
    for i, k in enumerate(levels):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= int(k) <= n_steps:
            raise ConfigError(f"diffgen.start_levels[{i}]={k!r}: each start level must be an integer "
                              f"in 1..{n_steps} (diffusion.n_steps={n_steps})")
    if len(set(levels)) != len(levels):
        raise ConfigError(f"diffgen.start_levels={levels}: a level is listed twice")
    return tuple(int(k) for k in levels)


def _randn(shape, generator: torch.Generator, device) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def forward_marginal(schedule, x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """x_k = a_k x + sigma-bar_k eps (METHOD.md 2.1, 6.4 step 2)."""
    eps = _randn(x.shape, generator, x.device)
    return float(schedule.signal[k]) * x + float(schedule.noise[k]) * eps


def path_length(models, k: int) -> int:
    """Number of x-hat_0 predictions a path from level k yields."""
    return k if models.diffusion_aug else 1


@torch.no_grad()
def denoise_path(models, z, a, c, x_k, k: int, generator: torch.Generator) -> list[torch.Tensor]:
    """The predictions x-hat_0^(i), i = k-1 .. 0, of the progressive chain from x_k (METHOD.md 6.4
    step 3).  Each G call goes through ``synthesis.reverse_chain`` (one step from level i+1), and the
    posterior draws are the same as in its progressive mode, so the last element equals
    ``reverse_chain(models, z, a, c, x_k, k, "progressive", g)`` for an identically seeded g."""
    if not models.diffusion_aug:
        return [reverse_chain(models, z, a, c, x_k, k, "one_step", generator)]
    out, x = [], x_k
    for i in reversed(range(k)):
        x0_hat = reverse_chain(models, z, a, c, x, i + 1, "one_step", generator)
        out.append(x0_hat)
        if i > 0:
            t = torch.full((x.shape[0],), i, dtype=torch.int64, device=x.device)
            x = models.schedule.sample_posterior(x0_hat, x, t, generator)
    return out


@dataclass
class Anchors:
    """Real features that seed DiffGen paths (x, c on the model device)."""

    x: torch.Tensor
    c: torch.Tensor
    y: np.ndarray        # (n,) int64 0-based (true or pseudo) labels
    w: np.ndarray        # (n,) float32 weights (1 or p(y-hat|x))

    def __len__(self) -> int:
        return int(len(self.y))


@dataclass
class DiffGenSet:
    """Partially synthesised features (CPU float32) with provenance."""

    x: torch.Tensor
    c: torch.Tensor
    y: np.ndarray
    w: np.ndarray
    level: np.ndarray    # start level k of the path
    anchor: np.ndarray   # row in the Anchors it came from

    def __len__(self) -> int:
        return int(len(self.y))

    @classmethod
    def empty(cls, x_dim: int, c_dim: int) -> "DiffGenSet":
        z = np.zeros(0, np.int64)
        return cls(torch.zeros(0, x_dim), torch.zeros(0, c_dim), z, np.zeros(0, np.float32), z, z)

    def counts(self) -> dict[int, int]:
        ids, n = np.unique(self.y, return_counts=True)
        return {int(i): int(k) for i, k in zip(ids, n)}


def _half_up(v: float) -> int:
    return int(math.floor(v + 0.5))


def budgets(cfg: DiffGenConfig, syn_per_class: int, seen_classes, train_y,
            unseen_classes) -> dict[int, int]:
    """Features wanted per class (METHOD.md 6.4 "Budget per class"); 0 entries are dropped."""
    out = {}
    if cfg.unseen_anchors:
        n = _half_up(cfg.unseen_fraction * syn_per_class)
        out.update({int(y): n for y in unseen_classes})
    if cfg.seen_anchors:
        target = _half_up(cfg.seen_fraction * syn_per_class)
        real = np.bincount(np.asarray(train_y, np.int64), minlength=int(np.max(seen_classes)) + 1)
        out.update({int(y): max(0, target - int(real[y])) for y in seen_classes})
    return {y: n for y, n in out.items() if n > 0}


def plan(anchor_y: np.ndarray, budget: dict[int, int], levels, models, generator: torch.Generator):
    """Paths (anchor row, start level, predictions kept) per class, see the module docstring.
    Classes without anchors get nothing (reported by the caller)."""
    rows, lv, keep = [], [], []
    for y in sorted(budget):
        cand = np.flatnonzero(anchor_y == y)
        if len(cand) == 0:
            continue
        perm = torch.randperm(len(cand), generator=generator, device=generator.device)
        order = cand[perm.cpu().numpy()]
        total, r, block = 0, 0, math.lcm(len(order), len(levels))
        while total < budget[y]:
            k = levels[(r + r // block) % len(levels)]
            m = min(path_length(models, k), budget[y] - total)
            rows.append(order[r % len(order)]), lv.append(k), keep.append(m)
            total, r = total + m, r + 1
    return np.asarray(rows, np.int64), np.asarray(lv, np.int64), np.asarray(keep, np.int64)


@torch.no_grad()
def generate_from_anchors(models, anchors: Anchors, budget: dict[int, int], levels, class_emb,
                          generator: torch.Generator, chunk: int = CHUNK) -> DiffGenSet:
    """Run the planned paths (grouped by start level, in chunks) and collect the kept predictions."""
    dims = models.dims
    if len(anchors) == 0 or not budget:
        return DiffGenSet.empty(dims.x_dim, dims.c_dim)
    rows, lv, keep = plan(anchors.y, budget, levels, models, generator)
    emb = torch.as_tensor(class_emb, dtype=torch.float32).to(models.device)
    parts = []
    for k in sorted(set(lv.tolist())):
        sel = np.flatnonzero(lv == k)
        for s in range(0, len(sel), chunk):
            jobs = sel[s:s + chunk]
            r = torch.as_tensor(rows[jobs], device=models.device)
            x, c = anchors.x[r], anchors.c[r]
            y = anchors.y[rows[jobs]]
            x_k = forward_marginal(models.schedule, x, k, generator)
            z = _randn((len(jobs), dims.z_dim), generator, models.device)
            a = emb[torch.as_tensor(y, device=models.device)]
            path = torch.stack(denoise_path(models, z, a, c, x_k, k, generator), 1).float().cpu()
            n_pred = path.shape[1]
            # keep the last m predictions of each path (the ones nearest i = 0)
            mask = torch.arange(n_pred)[None, :] >= torch.as_tensor(n_pred - keep[jobs])[:, None]
            m = mask.sum(1).numpy()
            parts.append(DiffGenSet(
                path[mask], c.float().cpu().unsqueeze(1).expand(-1, n_pred, -1)[mask],
                np.repeat(y, m), np.repeat(anchors.w[rows[jobs]], m).astype(np.float32),
                np.repeat(np.full(len(jobs), k), m), np.repeat(rows[jobs], m)))
    if not parts:   # no anchor in any class with a budget
        return DiffGenSet.empty(dims.x_dim, dims.c_dim)
    return DiffGenSet(torch.cat([p.x for p in parts]), torch.cat([p.c for p in parts]),
                      *(np.concatenate([getattr(p, f) for p in parts])
                        for f in ("y", "w", "level", "anchor")))


def run_diffgen(models, cfg: DiffGenConfig, syn_per_class: int, class_emb, seen_classes,
                unseen_classes, seen: Optional[Anchors], unseen: Optional[Anchors],
                generator: torch.Generator, log=print) -> tuple[DiffGenSet, DiffGenSet]:
    """DiffGen for seen (real train anchors) and unseen (pseudo-labelled test anchors) classes.
    Returns (seen set, unseen set)."""
    levels = validate_start_levels(cfg.start_levels, models.schedule.n_steps)
    train_y = seen.y if seen is not None else np.zeros(0, np.int64)
    want = budgets(cfg, syn_per_class, seen_classes, train_y, unseen_classes)
    seen_set = unseen_set = DiffGenSet.empty(models.dims.x_dim, models.dims.c_dim)
    seen_ids = set(np.asarray(seen_classes).tolist())
    unseen_ids = set(np.asarray(unseen_classes).tolist())
    if cfg.seen_anchors and seen is not None:
        budget = {y: n for y, n in want.items() if y in seen_ids}
        seen_set = generate_from_anchors(models, seen, budget, levels, class_emb, generator)
    if cfg.unseen_anchors and unseen is not None:
        budget = {y: n for y, n in want.items() if y in unseen_ids}
        unseen_set = generate_from_anchors(models, unseen, budget, levels, class_emb, generator)
        missing = sorted(set(budget) - set(unseen.y.tolist()))
        if missing:
            log(f"DiffGen: no pseudo-labelled anchor for unseen class(es) {missing}; "
                "none generated there")
    return seen_set, unseen_set
