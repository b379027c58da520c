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
  methods at test time (ZeroDiff + DiffGen and ZeroDiff++; the latter's DiffTTA is not rerun on
  the validation view, which would double the round's cost).

Cost: one DiffGen pass and one GZSL classifier fit per candidate.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..config import Config
from ..evaluation import Inputs, concat_inputs, pct, sub_generator, with_diffgen
from .selection import GZSLScan, Selection, ValidationSets, scan_gzsl


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

    def as_json(self) -> dict:
        s = self.scan
        return {"chosen": {"seen_fraction": self.seen_fraction,
                           "unseen_fraction": self.unseen_fraction,
                           "gzsl_epochs": s.epochs, "calibration": round(s.calibration, 6)},
                "val": {"u": pct(s.u), "s": pct(s.s), "h": pct(s.h),
                        "h_uncalibrated": pct(s.h_uncalibrated), "anchors": self.n_anchors},
                "candidates": self.candidates}


def select_diffgen(sel: Selection, sets: ValidationSets, feats: PoolFeatures, models,
                   class_emb: torch.Tensor, synthesise: Callable[[int], tuple[Inputs, np.ndarray]],
                   blocks_of: Callable, cfg: Config, seed: int,
                   generator: Callable[[], torch.Generator]) -> DiffGenChoice:
    """Scan DiffGen's budgets on the validation view (module doc); ``sel`` is ZeroDiff's
    selection (its classifier ``sel.run`` labels the pool), ``generator()`` a fresh DiffGen
    generator seeded as at test time.  Ties: the earlier candidate."""
    from ..diffgen import Anchors, run_diffgen
    from ..tta import select_pseudo_labels

    if sel.run is None:
        raise ValueError("select_diffgen needs the selection's classifier (pseudo_labels=True)")
    pool = concat_inputs(sets.val_seen, sets.val_unseen)
    probs = sel.run.log_probs(pool, sel.variant).exp()
    tta = cfg.tta if sel.tta_confidence is None else dataclasses.replace(
        cfg.tta, confidence=sel.tta_confidence)
    pseudo = select_pseudo_labels(probs, sel.run.classes, tta).restrict(sets.unseen)
    rows = torch.as_tensor(pseudo.index, dtype=torch.long, device=feats.pool_x.device)
    seen_anchors = Anchors(feats.train_x, feats.train_c, np.asarray(sets.train_y, np.int64),
                           np.ones(len(sets.train_y), np.float32))
    unseen_anchors = Anchors(feats.pool_x[rows], feats.pool_c[rows], pseudo.y, pseudo.p)
    syn, syn_y = synthesise(sel.syn_per_class)

    best, candidates = None, []
    items = [(sf, uf) for sf in cfg.diffgen.seen_fractions()
             for uf in cfg.diffgen.unseen_fractions()]
    for i, (sf, uf) in enumerate(items):
        dg_cfg = dataclasses.replace(cfg.diffgen, seen_fraction=sf, unseen_fraction=uf)
        dg_s, dg_u = run_diffgen(models, dg_cfg, sel.syn_per_class, class_emb, sets.seen,
                                 sets.unseen, seen_anchors, unseen_anchors, generator(),
                                 log=lambda msg: None)
        train, train_y, syn_all, syn_all_y, syn_w = with_diffgen(
            sets.train, sets.train_y, syn, syn_y, dg_s, dg_u, blocks_of)
        weights = None if syn_w is None else np.concatenate(
            [np.ones(len(train_y), np.float32), syn_w])
        scan = scan_gzsl(sets, train, train_y, syn_all, syn_all_y, sel.variant, cfg,
                         sub_generator(seed, 3, i), weights=weights)
        candidates.append({"seen_fraction": sf, "unseen_fraction": uf,
                           "n_seen": len(dg_s), "n_unseen": len(dg_u), "gzsl_epochs": scan.epochs,
                           "calibration": round(scan.calibration, 6), "u": pct(scan.u),
                           "s": pct(scan.s), "h": pct(scan.h),
                           "h_uncalibrated": pct(scan.h_uncalibrated)})
        if best is None or scan.h > best[2].h:
            best = (sf, uf, scan)
    return DiffGenChoice(best[0], best[1], best[2], len(pseudo), candidates)
