"""The two spuriousness metrics and their critic-free companions (METHOD.md 6.2, [PROPOSAL]).

Everything below the probe critic is a small pure function of numpy arrays, so each
formula can be checked on hand-made inputs (tests/test_spuriousness.py):

* :func:`macro_mean` - per-class mean, then mean over classes (6.2: "macro").
* :func:`critic_spuriousness` - delta_adv, S_seen, S_unseen from the five macro means.
* :func:`per_class_accuracy`, :func:`acc_gap_seen`, :func:`acc_gap_unseen` - accuracy gaps.
* :func:`connectivity` - nearest-generated / nearest-other-real distance ratio.

The critic D is a method-agnostic *probe* (6.2 allows a fresh critic for methods without
one; we use it for every method so numbers compare): a fresh conditional WGAN-GP critic
D(x, a) = Linear -> LeakyReLU(0.2) -> Linear -> 1 (:class:`networks.CriticX0`, the D_x0
architecture of METHOD.md 2.4, N(0, 0.02) init), trained on real seen-train features vs the
method's generated seen features, then frozen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from . import classifier as clf
from .losses import critic_pass_fused
from .networks import LRELU_SLOPE, CriticX0, init_weights

# fit(x, y) -> predict; predict(x) -> labels in the label space of y.
Predictor = Callable[[np.ndarray], np.ndarray]
FitFn = Callable[[np.ndarray, np.ndarray], Predictor]


# --------------------------------------------------------------------------- probe critic


def _class_index(y: np.ndarray, n_classes: int):
    """Sorted order of y plus start/count per class (for same-class random picks)."""
    order = np.argsort(y, kind="stable")
    counts = np.bincount(y, minlength=n_classes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return order, starts, counts


def train_probe_critic(real_x: np.ndarray, real_y: np.ndarray, fake_x: np.ndarray,
                       fake_y: np.ndarray, class_emb: np.ndarray, *, epochs: int, hidden: int,
                       lr: float, batch_size: int, seed: int, gp_weight: float = 10.0,
                       device: str | torch.device = "cpu",
                       on_epoch: Optional[Callable[[int, CriticX0], None]] = None
                       ) -> CriticX0:
    """Train a fresh conditional WGAN-GP critic, real = (real_x, a_y) vs fake = (fake_x, a_y).

    One epoch = one shuffled pass over the real samples in batches of ``batch_size``; each
    real sample is paired with a random generated sample *of the same class*, so real and
    fake see the same conditioning (METHOD.md 3.1).  Loss = -(E D(real) - E D(fake)) +
    gp_weight * GP, Adam(lr, (0.5, 0.999)).  Every random draw comes from ``seed``, so the
    probe is the same for every method given the same inputs.  Returned frozen, in eval mode.
    ``on_epoch(epoch, critic)`` (optional) is called after every epoch, e.g. to log convergence.
    """
    real_y = np.asarray(real_y, dtype=np.int64)
    fake_y = np.asarray(fake_y, dtype=np.int64)
    n_classes = class_emb.shape[0]
    missing = sorted(set(np.unique(real_y).tolist()) - set(np.unique(fake_y).tolist()))
    if missing:
        raise ValueError(f"probe critic: no generated sample for real class id(s) {missing[:5]}")
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)                     # batches, fake picks
    gen_dev = torch.Generator(device=device).manual_seed(seed + 1)  # GP interpolation alphas
    critic = init_weights(CriticX0(real_x.shape[1], class_emb.shape[1], hidden),
                          torch.Generator().manual_seed(seed)).to(device)
    opt = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.999),
                           fused=device.type in ("cpu", "cuda") or None)
    rx = torch.as_tensor(real_x, dtype=torch.float32, device=device)
    ry = torch.as_tensor(real_y, device=device)
    order, starts, counts = _class_index(fake_y, n_classes)
    fx = torch.as_tensor(fake_x[order], dtype=torch.float32, device=device)
    starts_t, counts_t = torch.as_tensor(starts), torch.as_tensor(counts)
    emb = torch.as_tensor(class_emb, dtype=torch.float32, device=device)
    ry_cpu = torch.as_tensor(real_y)
    n = len(rx)
    critic.train()
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            y_cpu = ry_cpu[idx]
            pick = starts_t[y_cpu] + (torch.rand(len(idx), generator=gen)
                                      * counts_t[y_cpu]).long()
            xr, xf, a = rx[idx.to(device)], fx[pick.to(device)], emb[ry[idx.to(device)]]
            # METHOD.md 3.1 (fused, analytic-backward form of losses.py): D(real), D(fake) and
            # the GP at interpolates of x only; the conditioning a is the real one.
            d_real, d_fake, gp = critic_pass_fused(critic, critic.condition(a), xr, xf, gen_dev,
                                                   LRELU_SLOPE)
            loss = -(d_real.mean() - d_fake.mean()) + gp_weight * gp
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if on_epoch is not None:   # diagnostics only; must not draw from the RNGs above
            critic.eval()
            on_epoch(epoch + 1, critic)
            critic.train()
    critic.eval()
    for p in critic.parameters():
        p.requires_grad_(False)
    return critic


@torch.no_grad()
def critic_scores(critic: nn.Module, x: np.ndarray, y: np.ndarray, class_emb: np.ndarray,
                  batch_size: int = 4096) -> np.ndarray:
    """D(x_i, a_{y_i}) for every row, float64 numpy."""
    device = next(critic.parameters()).device
    emb = torch.as_tensor(class_emb, dtype=torch.float32, device=device)
    out = []
    for i in range(0, len(x), batch_size):
        xb = torch.as_tensor(x[i:i + batch_size], dtype=torch.float32, device=device)
        yb = torch.as_tensor(np.asarray(y[i:i + batch_size], dtype=np.int64), device=device)
        out.append(critic(xb, emb[yb]).squeeze(-1).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0)


# --------------------------------------------------------------------------- critic metrics


def macro_mean(values: np.ndarray, y: np.ndarray, classes: Optional[np.ndarray] = None) -> float:
    """Mean of ``values`` within each class, then the mean over classes (METHOD.md 6.2).
    ``classes`` (default: those in y) must each have at least one sample."""
    values, y = np.asarray(values, dtype=np.float64), np.asarray(y)
    classes = np.unique(y) if classes is None else np.asarray(classes)
    if len(classes) == 0:
        raise ValueError("macro_mean: no classes")
    means = []
    for c in classes:
        mask = y == c
        if not mask.any():
            raise ValueError(f"macro_mean: class {int(c)} has no samples")
        means.append(values[mask].mean())
    return float(np.mean(means))


@dataclass(frozen=True)
class CriticSpuriousness:
    delta_adv: float     # mean_y E_train D - mean_y E_test-seen D
    denominator: float   # |mean_y E_train D - mean_y E_gen D| over seen classes
    s_seen: float        # delta_adv / denominator (un-normalised delta_adv if flagged)
    s_unseen: float      # (E_gen-unseen D - E_test-unseen D) / denominator (idem)
    normalised: bool     # False = denominator < min_denominator, S values are un-normalised


def critic_spuriousness(d_train: float, d_test_seen: float, d_gen_seen: float,
                        d_gen_unseen: float, d_test_unseen: float,
                        min_denominator: float = 1e-3) -> CriticSpuriousness:
    """METHOD.md 6.2 from the five macro-mean critic scores:

    delta_adv = d_train - d_test_seen;  denom = |d_train - d_gen_seen|;
    S_seen = delta_adv / denom;  S_unseen = (d_gen_unseen - d_test_unseen) / denom.
    If denom < min_denominator both S values are reported un-normalised and flagged.
    """
    delta = d_train - d_test_seen
    unseen_gap = d_gen_unseen - d_test_unseen
    denom = abs(d_train - d_gen_seen)
    ok = denom >= min_denominator
    return CriticSpuriousness(delta_adv=delta, denominator=denom,
                              s_seen=delta / denom if ok else delta,
                              s_unseen=unseen_gap / denom if ok else unseen_gap,
                              normalised=bool(ok))


# --------------------------------------------------------------------------- accuracy gaps


def per_class_accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean over the classes present in y of (# correct / # samples) - METHOD.md 4.4."""
    return macro_mean((np.asarray(pred) == np.asarray(y)).astype(np.float64), y)


def acc_gap_seen(fit: FitFn, gen_x, gen_y, train_x, train_y, test_x, test_y) -> float:
    """A(f -> seen-train real) - A(f -> seen-test real), f fitted on generated seen only."""
    predict = fit(gen_x, gen_y)
    return (per_class_accuracy(predict(train_x), train_y)
            - per_class_accuracy(predict(test_x), test_y))


def half_split(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a seeded random floor(n/2) indices for fitting and the rest held out."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    fit_idx, held_idx = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < 2:
            raise ValueError(f"half_split: class {int(c)} has {len(idx)} sample(s), need >= 2")
        idx = rng.permutation(idx)
        fit_idx.append(idx[:len(idx) // 2])
        held_idx.append(idx[len(idx) // 2:])
    return np.sort(np.concatenate(fit_idx)), np.sort(np.concatenate(held_idx))


def acc_gap_unseen(fit: FitFn, gen_x, gen_y, test_x, test_y, seed: int) -> float:
    """A(f -> held-out generated unseen) - A(f -> test-unseen real); f (over unseen classes
    only, ZSL) is fitted on one half of the generated unseen features per class."""
    gen_x, gen_y = np.asarray(gen_x), np.asarray(gen_y)
    fit_idx, held_idx = half_split(gen_y, seed)
    predict = fit(gen_x[fit_idx], gen_y[fit_idx])
    return (per_class_accuracy(predict(gen_x[held_idx]), gen_y[held_idx])
            - per_class_accuracy(predict(test_x), test_y))


# --------------------------------------------------------------------------- connectivity


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64 Euclidean distances (rows of a x rows of b)."""
    ta = torch.as_tensor(np.asarray(a, dtype=np.float64))
    tb = torch.as_tensor(np.asarray(b, dtype=np.float64))
    return torch.cdist(ta, tb).numpy()


def connectivity(real_x, real_y, gen_x, gen_y, classes: Optional[np.ndarray] = None) -> float:
    """Mean over classes of  median_r min_g ||r - g|| / median_r min_{r' != r} ||r - r'||,
    r over real test features of the class, g over its generated features (METHOD.md 6.2).
    1 ~ generated features are as close to real ones as real ones are to each other;
    >> 1 = disconnected.  Each class needs >= 2 real and >= 1 generated sample."""
    real_x, real_y = np.asarray(real_x), np.asarray(real_y)
    gen_x, gen_y = np.asarray(gen_x), np.asarray(gen_y)
    classes = np.unique(real_y) if classes is None else np.asarray(classes)
    ratios = []
    for c in classes:
        r, g = real_x[real_y == c], gen_x[gen_y == c]
        if len(r) < 2 or len(g) < 1:
            raise ValueError(f"connectivity: class {int(c)} has {len(r)} real and {len(g)} "
                             "generated samples (need >= 2 and >= 1)")
        to_gen = _pairwise(r, g).min(axis=1)
        rr = _pairwise(r, r)
        np.fill_diagonal(rr, np.inf)
        to_real = rr.min(axis=1)
        num, den = float(np.median(to_gen)), float(np.median(to_real))
        ratios.append(num / den if den > 0 else (math.inf if num > 0 else 1.0))
    return float(np.mean(ratios))


# --------------------------------------------------------------------------- classifier


def softmax_fit(*, epochs: int, lr: float, batch_size: int, seed: int,
                device: str | torch.device = "cpu") -> FitFn:
    """A :data:`FitFn` training the project's METHOD.md 4.3 softmax classifier
    (:func:`zerodiffpp.classifier.train_classifier`: fixed epochs, last epoch kept, seeded)
    over the classes present in the training labels; predictions are mapped back to them."""

    def fit(x: np.ndarray, y: np.ndarray) -> Predictor:
        classes, y_local = np.unique(np.asarray(y), return_inverse=True)
        dev = torch.device(device)
        model = clf.train_classifier(
            torch.as_tensor(np.asarray(x), dtype=torch.float32, device=dev),
            torch.as_tensor(y_local, dtype=torch.int64), len(classes), epochs=epochs, lr=lr,
            batch_size=batch_size, generator=torch.Generator().manual_seed(seed)).model

        def predict(xq: np.ndarray) -> np.ndarray:
            xq = torch.as_tensor(np.asarray(xq), dtype=torch.float32, device=dev)
            return classes[clf.predict(model, xq).cpu().numpy()]

        return predict

    return fit
