"""DiffTTA: diffusion-based test-time adaptation by pseudo-label reconstruction
(METHOD.md 6.3 [PROPOSAL]; ZeroDiff++ generation-time component iv).

**Transductive.**  DiffTTA reads the *unlabelled* test features (x, c) of test_seen ∪ test_unseen
(the "pool").  True test labels never enter this module: the pool carries no labels, pseudo-labels
come from a classifier trained on real seen-train + generated unseen features only.

Procedure (METHOD.md 6.3):
1. Pseudo-labelling: p = softmax(f(x)) over all seen ∪ unseen classes (GZSL classifier f; f0 is
   the ZeroDiff classifier).  Per predicted class keep the ``keep_fraction`` most confident samples
   among those with p >= ``confidence`` (at least ``min_per_class`` of them when that many pass).
2. Reconstruction objective on pseudo-labelled batches (x, c, y-hat, p), a = a_{y-hat}:
   t ~ U{0..n_T-1}, (x_t, x_{t+1}) from x (METHOD.md 2.1), z ~ E(x, a),
   x-hat_0 = G(z, a, c, x_{t+1}, t) and
     L = sum_i p_i [BCE(x-hat_0,i, clip(x_i, 0, 1)) + KL_i] / B          (METHOD.md 8 item 15)
       + gamma_rec WL1(Dec(x-hat_0), a) + adv_scale gamma_adv gamma_x0 (-E D_x0(x-hat_0, a))
       + anchor_weight ||theta_G - theta_G^0||^2                          (L2-SP)
   plus, if ``replay``, the same loss (p = 1, no second anchor term) on a real seen-train batch
   (same size, drawn with replacement) with true labels.  gamma_* come from the ``dfg`` section
   (gamma_x0 = 1 by default; it only switches the D_x0 term off for a DFG trained without it).
   The encoder sees the raw test feature; only the BCE target is clipped to [0, 1].  Only E and G
   are optimised (R, critics, Dec frozen), Adam(lr_scale * dfg.lr, (0.5, 0.999)), fresh per round;
   theta_G^0 are the weights before the first round.
3. ``rounds`` rounds of ``epochs`` epochs over the pseudo-labelled set; after each round the
   ``labeller`` regenerates unseen features with the adapted G, retrains the GZSL classifier and the
   pseudo-labels are recomputed.  A round in which no sample passes the threshold is skipped and
   leaves E and G bit-identical.

ZSL protocol (``tta.zsl_pool: unseen``, :func:`adapt_to_zsl_pool`): METHOD.md 6.3 pseudo-labels
"over unseen" for ZSL, on the ZSL test set (test-unseen features only, unlabelled): the same
rounds with a ZSL classifier as f0 and as labeller (:class:`ZSLLabeller`), started from the
GZSL-pool adaptation.

The models passed in are never mutated: E and G are deep-copied, everything else is shared frozen.
All randomness comes from one seeded ``torch.Generator`` (any device).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from .config import DFGConfig, EvalConfig, TTAConfig
from .losses import weighted_l1

TTA_BETAS = (0.5, 0.999)   # METHOD.md 6.3 step 3


# --------------------------------------------------------------------------- pseudo-labels


@dataclass
class PseudoLabels:
    """Selected pool rows with their predicted (0-based) class ids and confidences."""

    index: np.ndarray      # (k,) int64 rows of the unlabelled pool
    y: np.ndarray          # (k,) int64 predicted class ids
    p: np.ndarray          # (k,) float32 confidence p(y-hat | x)

    def __len__(self) -> int:
        return int(len(self.index))

    def restrict(self, classes) -> "PseudoLabels":
        """Only the items predicted as one of ``classes`` (e.g. the unseen classes)."""
        keep = np.isin(self.y, np.asarray(classes))
        return PseudoLabels(self.index[keep], self.y[keep], self.p[keep])

    def counts(self) -> dict[int, int]:
        ids, n = np.unique(self.y, return_counts=True)
        return {int(i): int(k) for i, k in zip(ids, n)}


def _ceil(v: float) -> int:
    return int(math.ceil(v - 1e-9))   # 0.3 * 10 -> 3, not 4


def select_pseudo_labels(probs: torch.Tensor, classes, cfg: TTAConfig) -> PseudoLabels:
    """Class-balanced selection (METHOD.md 6.3 step 1).  ``probs`` (n, K) has columns ordered as
    ``classes`` (0-based ids).  For each predicted class y, the eligible samples are those with
    argmax = y and p >= cfg.confidence; the top ceil(keep_fraction * n_eligible) of them by p are
    kept, but at least min(min_per_class, n_eligible).  Ties are broken by pool position."""
    classes = np.asarray(classes, dtype=np.int64)
    p, col = probs.detach().float().cpu().max(dim=1)
    p, col = p.numpy(), col.numpy()
    if probs.shape[1] != len(classes):
        raise ValueError(f"probs has {probs.shape[1]} columns for {len(classes)} classes")
    keep = []
    for j in range(len(classes)):
        eligible = np.flatnonzero((col == j) & (p >= cfg.confidence))
        if len(eligible) == 0:
            continue
        order = eligible[np.argsort(-p[eligible], kind="stable")]
        n_keep = max(_ceil(cfg.keep_fraction * len(order)), min(cfg.min_per_class, len(order)))
        keep.append(order[:n_keep])
    index = np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
    return PseudoLabels(index.astype(np.int64), classes[col[index]], p[index].astype(np.float32))


# --------------------------------------------------------------------------- objective


def _randn(shape, generator: torch.Generator, device) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def diffuse(models, x0: torch.Tensor, generator: torch.Generator):
    """t and the forward pair (x_t, x_{t+1}) of METHOD.md 2.1, as in DFG training; a DFG trained
    without diffusion augmentation gets t = 0 and a pure-noise x_{t+1} (train_dfg.py)."""
    n, device = x0.shape[0], x0.device
    if not models.diffusion_aug:
        return torch.zeros(n, dtype=torch.int64, device=device), _randn(x0.shape, generator, device)
    sched = models.schedule
    t = torch.randint(0, sched.n_steps, (n,), generator=generator, device=generator.device).to(device)
    x_t = sched.signal.to(device)[t].float().unsqueeze(1) * x0 \
        + sched.noise.to(device)[t].float().unsqueeze(1) * _randn(x0.shape, generator, device)
    x_tp1 = sched.sqrt_alphas.to(device)[t + 1].float().unsqueeze(1) * x_t \
        + sched.sigmas.to(device)[t + 1].float().unsqueeze(1) * _randn(x0.shape, generator, device)
    return t, x_tp1


def bce_kl_per_sample(recon, target, mu, log_var) -> torch.Tensor:
    """Per-sample BCE (summed over dims, logs clamped at -100 like losses.vae_loss) + KL, (B,)."""
    p, x = recon.float(), target.float()
    bce = -(x * torch.log(p).clamp(min=-100.0) + (1.0 - x) * torch.log1p(-p).clamp(min=-100.0)).sum(1)
    mu, log_var = mu.float(), log_var.float()
    kl = -0.5 * (1.0 + log_var - mu.pow(2) - log_var.exp()).sum(1)
    return bce + kl


def reconstruction_terms(models, E, G, x, c, a, w, generator, adv_weight: float, gamma_rec: float):
    """One batch of the DiffTTA objective without the anchor term (METHOD.md 6.3 step 2):
    sum_i w_i [BCE + KL]_i / B + gamma_rec WL1(Dec(x-hat_0), a) - adv_weight E D_x0(x-hat_0, a)."""
    mu, log_var = E(x, a)
    z = mu + torch.exp(0.5 * log_var) * _randn(mu.shape, generator, mu.device)
    t, x_tp1 = diffuse(models, x, generator)
    x0_hat = G(z, a, c if models.use_sc else torch.zeros_like(c), x_tp1, t)
    vae = (w * bce_kl_per_sample(x0_hat, x.clamp(0.0, 1.0), mu, log_var)).sum() / x.shape[0]
    loss = vae + gamma_rec * weighted_l1(models.Dec(x0_hat), a)
    if adv_weight:
        loss = loss - adv_weight * models.D_x0(x0_hat, a).float().mean()
    return loss


def anchor_penalty(G, reference: list[torch.Tensor]) -> torch.Tensor:
    """L2-SP: sum over G's parameters of ||theta - theta^0||^2."""
    return sum(((p - p0) ** 2).sum() for p, p0 in zip(G.parameters(), reference))


# --------------------------------------------------------------------------- adaptation


@dataclass
class ReplaySet:
    """Real seen-train samples with their true labels (the replay term of METHOD.md 6.3)."""

    x: torch.Tensor
    c: torch.Tensor
    y: torch.Tensor      # int64 0-based, on the device

    @classmethod
    def of(cls, x: torch.Tensor, c: torch.Tensor, y) -> "ReplaySet":
        """From the seen-train features and their (numpy or tensor) labels, on ``x``'s device."""
        return cls(x, c, torch.as_tensor(np.asarray(y), dtype=torch.int64, device=x.device))


def adaptable_copy(models):
    """A ZeroDiffModels whose E and G are trainable deep copies; R, critics and Dec are shared
    (frozen, never stepped).  The originals are left untouched."""
    E, G = copy.deepcopy(models.E), copy.deepcopy(models.G)
    for net in (E, G):
        net.requires_grad_(True).eval()   # no dropout/BN in these MLPs; eval keeps it explicit
    return dataclasses.replace(models, E=E, G=G)


def adapt_round(adapted, reference: list[torch.Tensor], pool_x, pool_c, pseudo: PseudoLabels,
                class_emb: torch.Tensor, replay: Optional[ReplaySet], cfg: TTAConfig,
                dfg: DFGConfig, generator: torch.Generator) -> dict:
    """``cfg.epochs`` epochs over the pseudo-labelled set, updating adapted.E and adapted.G in place.
    Gradients are taken w.r.t. E and G only (torch.autograd.grad), so the frozen shared networks
    never even receive .grad."""
    device = pool_x.device
    E, G = adapted.E, adapted.G
    params = list(E.parameters()) + list(G.parameters())
    opt = torch.optim.Adam(params, lr=cfg.lr_scale * dfg.lr, betas=TTA_BETAS)
    adv_weight = cfg.adv_scale * dfg.gamma_adv * dfg.gamma_x0
    idx_all = torch.as_tensor(pseudo.index, device=device)
    a_all = class_emb[torch.as_tensor(pseudo.y, device=device)]
    w_all = torch.as_tensor(pseudo.p, dtype=torch.float32, device=device)
    n, B = len(pseudo), cfg.batch_size
    total, steps = 0.0, 0
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, generator=generator, device=generator.device).to(device)
        for s in range(0, n, B):
            b = perm[s:s + B]
            rows = idx_all[b]
            loss = reconstruction_terms(adapted, E, G, pool_x[rows], pool_c[rows], a_all[b], w_all[b],
                                        generator, adv_weight, dfg.gamma_rec)
            if replay is not None:
                r = torch.randint(0, len(replay.y), (len(b),), generator=generator,
                                  device=generator.device).to(device)
                ones = torch.ones(len(b), device=device)
                loss = loss + reconstruction_terms(adapted, E, G, replay.x[r], replay.c[r],
                                                   class_emb[replay.y[r]], ones, generator,
                                                   adv_weight, dfg.gamma_rec)
            if cfg.anchor_weight:
                loss = loss + cfg.anchor_weight * anchor_penalty(G, reference)
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            for p, g in zip(params, grads):
                p.grad = g if g is not None else torch.zeros_like(p)
            opt.step()
            total += float(loss.detach())
            steps += 1
    if not math.isfinite(total):
        raise FloatingPointError("DiffTTA diverged (non-finite loss); lower tta.lr_scale")
    for p in params:
        p.grad = None
    return {"steps": steps, "mean_loss": total / max(steps, 1)}


@dataclass
class TTAResult:
    models: object                     # ZeroDiffModels with adapted E, G
    pseudo: PseudoLabels               # pseudo-labels of the last classifier (after the last round)
    rounds: list[dict] = field(default_factory=list)


def run_difftta(models, pool_x: torch.Tensor, pool_c: torch.Tensor, probs0: torch.Tensor, classes,
                labeller: Callable[[object], torch.Tensor], class_emb: torch.Tensor,
                replay: Optional[ReplaySet], cfg: TTAConfig, dfg: DFGConfig,
                generator: torch.Generator, log: Callable[[str], None] = print) -> TTAResult:
    """DiffTTA (METHOD.md 6.3).  ``probs0`` (n_pool, K): f0's class probabilities on the pool,
    columns ordered as ``classes``; ``labeller(models) -> probs`` regenerates unseen features with
    ``models``, retrains the GZSL classifier and returns its probabilities on the same pool.
    ``replay`` is used when ``cfg.replay`` is true."""
    adapted = adaptable_copy(models)
    reference = [p.detach().clone() for p in models.G.parameters()]
    pseudo = select_pseudo_labels(probs0, classes, cfg)
    replay = replay if cfg.replay else None
    history = []
    for r in range(1, cfg.rounds + 1):
        row = {"round": r, "n_pseudo": len(pseudo)}
        if len(pseudo) == 0:
            log(f"DiffTTA round {r}: no test sample reaches confidence {cfg.confidence}; "
                "generator left unchanged, round skipped")
            history.append({**row, "skipped": True})
            continue
        start = time.perf_counter()
        row.update(adapt_round(adapted, reference, pool_x, pool_c, pseudo, class_emb, replay, cfg,
                               dfg, generator))
        pseudo = select_pseudo_labels(labeller(adapted), classes, cfg)
        row.update(skipped=False, n_after=len(pseudo))
        log(f"DiffTTA round {r}: {row['n_pseudo']} pseudo-labelled samples, {row['steps']} steps, "
            f"mean loss {row['mean_loss']:.4g}; {len(pseudo)} after relabelling "
            f"({time.perf_counter() - start:.1f} s)")
        history.append(row)
    adapted.E.requires_grad_(False)
    adapted.G.requires_grad_(False)
    return TTAResult(adapted, pseudo, history)


# --------------------------------------------------------------------------- labeller


class GZSLLabeller:
    """Step 3 of METHOD.md 6.3: regenerate ``syn_per_class`` unseen features with the given models,
    retrain the GZSL classifier (real seen-train ∪ generated unseen, eval settings) and return its
    class probabilities on the unlabelled pool.  Fixed seeds, so every call sees the same noise."""

    def __init__(self, train_blocks, train_y, pool_blocks, class_emb, seen_classes, unseen_classes,
                 eval_cfg: EvalConfig, syn_seed: int, clf_seed: int):
        self.train_blocks, self.train_y, self.pool_blocks = train_blocks, train_y, pool_blocks
        self.class_emb = class_emb
        self.seen = np.asarray(seen_classes, np.int64)
        self.unseen = np.asarray(unseen_classes, np.int64)
        self.classes = np.union1d(self.seen, self.unseen)
        self.cfg, self.syn_seed, self.clf_seed = eval_cfg, syn_seed, clf_seed

    def generated(self, models):
        """``syn_per_class`` regenerated unseen features (classifier blocks) and their labels."""
        from .evaluation import build_blocks
        from .synthesis import generate

        x, c, y = generate(models, self.class_emb, self.unseen, self.cfg.syn_per_class,
                           self.cfg.sampling, torch.Generator().manual_seed(self.syn_seed))
        device = next(iter(self.pool_blocks.values())).device
        return build_blocks(x, c, models.Dec, (self.cfg.variant,), device), y

    def fit(self, models):
        from .classifier import train_classifier
        from .evaluation import ProtocolRun, compact_labels, concat_inputs, select

        syn, y = self.generated(models)
        inputs = concat_inputs(self.train_blocks, syn)
        labels = torch.cat([compact_labels(self.train_y, self.classes, "train labels"),
                            compact_labels(y, self.classes, "synthetic labels")])
        res = train_classifier(select(inputs, self.cfg.variant), labels, len(self.classes),
                               epochs=self.cfg.classifier_epochs, lr=self.cfg.classifier_lr,
                               batch_size=self.cfg.classifier_batch,
                               generator=torch.Generator().manual_seed(self.clf_seed))
        # calibrated like the final classifier (docs/protocol.md): pseudo-labels read p after it
        return ProtocolRun(res.model, self.classes, calibration=self.cfg.calibration, seen=self.seen)

    def __call__(self, models) -> torch.Tensor:
        return self.fit(models).log_probs(self.pool_blocks, self.cfg.variant).exp()


class ZSLLabeller(GZSLLabeller):
    """The ZSL protocol's labeller (METHOD.md 6.3, "ZSL: over unseen"): regenerate the unseen
    features, retrain a ZSL classifier on them alone (unseen classes, ``eval.zsl_epochs``) and
    return its probabilities on the ZSL pool (test-unseen only)."""

    def __init__(self, pool_blocks, class_emb, unseen_classes, eval_cfg: EvalConfig,
                 syn_seed: int, clf_seed: int):
        super().__init__(None, None, pool_blocks, class_emb, (), unseen_classes, eval_cfg,
                         syn_seed, clf_seed)

    def fit(self, models):
        from .classifier import train_classifier
        from .evaluation import ProtocolRun, compact_labels, select, zsl_epochs

        syn, y = self.generated(models)
        res = train_classifier(select(syn, self.cfg.variant),
                               compact_labels(y, self.unseen, "synthetic labels"),
                               len(self.unseen), epochs=zsl_epochs(self.cfg),
                               lr=self.cfg.classifier_lr, batch_size=self.cfg.classifier_batch,
                               generator=torch.Generator().manual_seed(self.clf_seed))
        return ProtocolRun(res.model, self.unseen)


def adapt_to_zsl_pool(models, f0_zsl, train_x: torch.Tensor, train_c: torch.Tensor, train_y,
                      pool_blocks, pool_x: torch.Tensor, pool_c: torch.Tensor,
                      class_emb: torch.Tensor, unseen_classes, cfg, seed: int,
                      log: Callable[[str], None] = print) -> TTAResult:
    """DiffTTA for the ZSL protocol (``tta.zsl_pool: unseen``, docs/protocol.md): ``tta.rounds``
    rounds on the ZSL pool (test-unseen features, unlabelled), pseudo-labels over the unseen
    classes from ``f0_zsl`` (a ZSL ``ProtocolRun``) and then from :class:`ZSLLabeller` refits;
    replay of the real seen-train samples as in :func:`adapt_to_pool`.  ``models`` is where it
    starts (the pipeline passes the GZSL-pool adaptation) and what the L2-SP term anchors to."""
    from .seeds import TAG_SYN, TAG_TTA_CLF, TAG_TTA_ZSL, derived_seed

    labeller = ZSLLabeller(pool_blocks, class_emb, unseen_classes, cfg.eval,
                           derived_seed(seed, TAG_SYN), derived_seed(seed, TAG_TTA_CLF))
    replay = ReplaySet.of(train_x, train_c, train_y)
    probs0 = f0_zsl.log_probs(pool_blocks, cfg.eval.variant).exp()
    return run_difftta(models, pool_x, pool_c, probs0, f0_zsl.classes, labeller, class_emb,
                       replay, cfg.tta, cfg.dfg,
                       torch.Generator().manual_seed(derived_seed(seed, TAG_TTA_ZSL)), log)


def adapt_to_pool(models, f0, probs0: torch.Tensor, train_blocks, train_y, train_x: torch.Tensor,
                  train_c: torch.Tensor, pool_blocks, pool_x: torch.Tensor, pool_c: torch.Tensor,
                  class_emb: torch.Tensor, seen_classes, unseen_classes, cfg, seed: int,
                  log: Callable[[str], None] = print) -> TTAResult:
    """DiffTTA as both rounds run it (the final round on the test pool, the validation round on
    its validation pool, protocol/transductive.py): f0 (a calibrated ``ProtocolRun``) gives the
    first pseudo-labels from ``probs0``, its calibrated probabilities on the pool (the callers
    read them for their own diagnostics too); the labeller retrains with ``cfg.eval``
    (ZeroDiff's settings); the replay set is the real seen-train samples; seeds derived from
    ``seed`` (``train.seed``).
    ``cfg``: a Config with the eval, tta and dfg sections."""
    from .seeds import TAG_SYN, TAG_TTA, TAG_TTA_CLF, derived_seed

    labeller = GZSLLabeller(train_blocks, train_y, pool_blocks, class_emb, seen_classes,
                            unseen_classes, cfg.eval, derived_seed(seed, TAG_SYN),
                            derived_seed(seed, TAG_TTA_CLF))
    replay = ReplaySet.of(train_x, train_c, train_y)
    return run_difftta(models, pool_x, pool_c, probs0, f0.classes, labeller, class_emb, replay,
                       cfg.tta, cfg.dfg, torch.Generator().manual_seed(derived_seed(seed, TAG_TTA)),
                       log)
