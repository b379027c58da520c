"""The validation round's choice for DiffGen (docs/protocol.md "DiffGen on validation classes").

DiffGen changes the final classifier's training set: partially synthesised seen features around
the real ones (the seen top-up) and unseen ones around pseudo-labelled pool samples.  Both move
the classifier's seen/unseen balance, so the epochs and the calibration chosen for ZeroDiff's
training set do not transfer (measured: SNU-B36-EX at 10 % seen data, the top-up from ~3 real
to 10 features per seen class pushed U from 4.7 to 0.1 under ZeroDiff's calibration).  Here
DiffGen runs on the validation view exactly as it runs at test time:

* anchors: the train-classes' real samples (true labels) and the validation pool's pseudo-labels
  from the chosen, calibrated ZeroDiff classifier at the chosen threshold (no labels read);
* for every candidate (``diffgen.seen_fraction_candidates`` x ``unseen_fraction_candidates``)
  one GZSL classifier on real ∪ DiffGen seen and synthetic ∪ DiffGen unseen (weights p), scanned
  for ``eval.max_classifier_epochs`` epochs with the calibration searched on stored scores
  (:func:`.selection.scan_gzsl`);
* the candidate, epoch and calibration with the best validation H are used by both DiffGen
  methods at test time (ZeroDiff + DiffGen, and ZeroDiff++ under ``eval.transductive_choice:
  inherit``, the default).
Under ``eval.transductive_choice: own`` one ZSL classifier on the winner's unseen set (synthetic
∪ DiffGen unseen, weights p) also gives ZeroDiff + DiffGen's ZSL epochs, and ZeroDiff++ runs the
same scan (:func:`scan_budgets`) from the generator that DiffTTA adapted on the validation view,
with DiffTTA's pseudo-labels (:mod:`.transductive`).

Cost: one DiffGen pass and one GZSL classifier fit per candidate, one ZSL fit.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..config import Config
from ..evaluation import Inputs, concat_inputs, pct, sub_generator, with_diffgen
from .selection import GZSLScan, Selection, ValidationSets, scan_gzsl, scan_zsl

TAGS_DIFFGEN = (3, 8)      # classifier seed tags of ZeroDiff + DiffGen's GZSL / ZSL scans


@dataclass
class PoolFeatures:
    """Raw features of the validation view on the model device: the train-classes' training
    samples (seen anchors) and the unlabelled validation pool (val-seen then val-unseen rows,
    the order of :class:`.selection.ValidationSets`)."""

    train_x: torch.Tensor
    train_c: torch.Tensor
    pool_x: torch.Tensor
    pool_c: torch.Tensor


@dataclass
class DiffGenChoice:
    seen_fraction: float
    unseen_fraction: float
    scan: GZSLScan
    n_anchors: int                 # pseudo-labelled validation-class anchors
    candidates: list
    zsl_epochs: Optional[int] = None    # the winner's ZSL scan (its own unseen set)
    t1: Optional[float] = None

    def as_json(self) -> dict:
        s = self.scan
        chosen = {"seen_fraction": self.seen_fraction, "unseen_fraction": self.unseen_fraction,
                  "gzsl_epochs": s.epochs, "calibration": round(s.calibration, 6)}
        val = {"u": pct(s.u), "s": pct(s.s), "h": pct(s.h),
               "h_uncalibrated": pct(s.h_uncalibrated), "anchors": self.n_anchors}
        if self.zsl_epochs is not None:
            chosen["zsl_epochs"] = self.zsl_epochs
            val["t1"] = pct(self.t1)
        return {"chosen": chosen, "val": val, "candidates": self.candidates}


def pool_pseudo_labels(run, sets: ValidationSets, variant: str, tta_cfg):
    """The validation pool's unseen pseudo-labels from the calibrated classifier ``run`` at the
    threshold of ``tta_cfg`` (what the anchors of DiffGen come from at test time)."""
    from ..tta import select_pseudo_labels

    probs = run.log_probs(concat_inputs(sets.val_seen, sets.val_unseen), variant).exp()
    return select_pseudo_labels(probs, run.classes, tta_cfg).restrict(sets.unseen)


def scan_budgets(sets: ValidationSets, feats: PoolFeatures, models, class_emb: torch.Tensor,
                 pseudo, syn: Inputs, syn_y: np.ndarray, blocks_of: Callable, cfg: Config,
                 variant: str, syn_per_class: int, seed: int,
                 generator: Callable[[], torch.Generator], tags: tuple[int, int],
                 zsl: bool = True) -> DiffGenChoice:
    """DiffGen from ``models`` on the validation view with the unseen anchors ``pseudo`` (pool
    rows, restricted to validation classes) and the fully generated unseen set ``syn``: one GZSL
    scan per budget candidate and, when ``zsl``, the winner's ZSL scan on its own unseen set
    (module doc).  ``tags``: the classifier seed tags of the GZSL and the ZSL scans.  Ties: the
    earlier candidate."""
    from ..diffgen import Anchors, run_diffgen

    rows = torch.as_tensor(pseudo.index, dtype=torch.long, device=feats.pool_x.device)
    seen_anchors = Anchors(feats.train_x, feats.train_c, np.asarray(sets.train_y, np.int64),
                           np.ones(len(sets.train_y), np.float32))
    unseen_anchors = Anchors(feats.pool_x[rows], feats.pool_c[rows], pseudo.y, pseudo.p)
    best, candidates = None, []
    items = [(sf, uf) for sf in cfg.diffgen.seen_fractions()
             for uf in cfg.diffgen.unseen_fractions()]
    for i, (sf, uf) in enumerate(items):
        dg_cfg = dataclasses.replace(cfg.diffgen, seen_fraction=sf, unseen_fraction=uf)
        dg_s, dg_u = run_diffgen(models, dg_cfg, syn_per_class, class_emb, sets.seen,
                                 sets.unseen, seen_anchors, unseen_anchors, generator(),
                                 log=lambda msg: None)
        train, train_y, syn_all, syn_all_y, syn_w = with_diffgen(
            sets.train, sets.train_y, syn, syn_y, dg_s, dg_u, blocks_of)
        weights = None if syn_w is None else np.concatenate(
            [np.ones(len(train_y), np.float32), syn_w])
        scan = scan_gzsl(sets, train, train_y, syn_all, syn_all_y, variant, cfg,
                         sub_generator(seed, tags[0], i), weights=weights, keep_model=False)
        candidates.append({"seen_fraction": sf, "unseen_fraction": uf,
                           "n_seen": len(dg_s), "n_unseen": len(dg_u), "gzsl_epochs": scan.epochs,
                           "calibration": round(scan.calibration, 6), "u": pct(scan.u),
                           "s": pct(scan.s), "h": pct(scan.h),
                           "h_uncalibrated": pct(scan.h_uncalibrated)})
        if best is None or scan.h > best[2].h:
            best = (sf, uf, scan, syn_all, syn_all_y, syn_w)
    sf, uf, scan, syn_all, syn_all_y, syn_w = best
    if not zsl:
        return DiffGenChoice(sf, uf, scan, len(pseudo), candidates)
    zsl_epochs, t1 = scan_zsl(sets, syn_all, syn_all_y, variant, cfg,
                              sub_generator(seed, tags[1], syn_per_class), weights=syn_w)
    return DiffGenChoice(sf, uf, scan, len(pseudo), candidates, zsl_epochs, t1)


def select_diffgen(sel: Selection, sets: ValidationSets, feats: PoolFeatures, models,
                   class_emb: torch.Tensor, synthesise: Callable[[int], tuple[Inputs, np.ndarray]],
                   blocks_of: Callable, cfg: Config, seed: int,
                   generator: Callable[[], torch.Generator], zsl: bool = True) -> DiffGenChoice:
    """ZeroDiff + DiffGen's budgets on the validation view (module doc); ``sel`` is ZeroDiff's
    selection (its classifier ``sel.run`` labels the pool), ``generator()`` a fresh DiffGen
    generator seeded as at test time; ``zsl``: also its own ZSL epochs (without: ZeroDiff's,
    ``eval.transductive_choice: inherit``)."""
    if sel.run is None:
        raise ValueError("select_diffgen needs the selection's classifier (pseudo_labels=True)")
    tta = cfg.tta if sel.tta_confidence is None else dataclasses.replace(
        cfg.tta, confidence=sel.tta_confidence)
    pseudo = pool_pseudo_labels(sel.run, sets, sel.variant, tta)
    syn, syn_y = synthesise(sel.syn_per_class)
    return scan_budgets(sets, feats, models, class_emb, pseudo, syn, syn_y, blocks_of, cfg,
                        sel.variant, sel.syn_per_class, seed, generator, TAGS_DIFFGEN, zsl=zsl)
