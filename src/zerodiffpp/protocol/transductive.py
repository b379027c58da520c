"""The validation round's choice for the DiffTTA methods (docs/protocol.md "DiffTTA on
validation classes").

At test time DiffTTA adapts the generator to the unlabelled pool before ZeroDiff + DiffTTA and
ZeroDiff++ train their classifiers, so their features, and with them the classifier's score
scale and seen/unseen balance, are not those ZeroDiff's settings were chosen for (measured on
SNU-B36-EX at 100 %, seed 0: ZeroDiff's validation offset 4.08 against test-swept 4.75 for
+ DiffTTA and 5.34 for ZeroDiff++, benchmarks/README.md).  So DiffTTA runs on the validation
view exactly as it runs at test time (:func:`..tta.adapt_to_pool`):

* pool: the validation pool (held-out train-class samples ∪ validation-class samples), features
  only; f0: ZeroDiff's chosen, calibrated classifier of the validation round; the labeller
  retrains with ZeroDiff's chosen settings; replay: the train-classes' training samples; the
  pseudo-label threshold: ZeroDiff's chosen one; seeds as at test time;
* ZeroDiff + DiffTTA: one GZSL scan (epochs and calibration, :func:`.selection.scan_gzsl`) and
  one ZSL scan on the adapted generator's features;
* ZeroDiff++: DiffGen's budgets scanned from the adapted generator with DiffTTA's final
  pseudo-labels and its features (:func:`.diffgen_budget.scan_budgets`), the winner's ZSL scan
  on its own unseen set.

Validation labels score the pseudo-labels (precision per round: a diagnostic of the round,
never of the test set).  Cost: one DiffTTA run on the (smaller) validation pool, three GZSL
and two ZSL scans.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..config import Config
from ..evaluation import Inputs, concat_inputs, pct, sub_generator
from .diffgen_budget import DiffGenChoice, PoolFeatures, scan_budgets
from .selection import GZSLScan, Selection, ValidationSets, apply_selection, scan_gzsl, scan_zsl

TAGS_TTA = (4, 5)          # classifier seed tags of ZeroDiff + DiffTTA's GZSL / ZSL scans
TAGS_ZERODIFFPP = (6, 7)   # ZeroDiff++'s (the DiffGen scans are 3 / 8: diffgen_budget)


@dataclass
class TransductiveChoice:
    tta: GZSLScan
    tta_zsl_epochs: int
    tta_t1: float
    zerodiffpp: DiffGenChoice
    rounds: list              # DiffTTA's rounds on the validation pool
    pseudo: dict              # pseudo-labels before / after DiffTTA, scored on validation labels

    def as_json(self) -> dict:
        s, pp = self.tta, self.zerodiffpp.as_json()
        return {"chosen": {"tta": {"gzsl_epochs": s.epochs, "zsl_epochs": self.tta_zsl_epochs,
                                   "calibration": round(s.calibration, 6)},
                           "zerodiffpp": pp["chosen"]},
                "val": {"tta": {"u": pct(s.u), "s": pct(s.s), "h": pct(s.h),
                                "h_uncalibrated": pct(s.h_uncalibrated), "t1": pct(self.tta_t1),
                                "pseudo": self.pseudo["after_tta"]},
                        "zerodiffpp": pp["val"]},
                "details": {"difftta_rounds": self.rounds, "pseudo": self.pseudo,
                            "zerodiffpp_candidates": pp["candidates"]}}


def score_pseudo(pseudo, pool_y: np.ndarray, unseen: np.ndarray) -> dict:
    """Count and precision of the validation-class pseudo-labels (validation labels)."""
    un = pseudo.restrict(unseen)
    prec = float(np.mean(pool_y[un.index] == un.y)) if len(un) else None
    return {"n": len(un), "per_class": round(len(un) / len(unseen), 2),
            "precision": None if prec is None else pct(prec)}


def select_transductive(sel: Selection, sets: ValidationSets, feats: PoolFeatures, models,
                        class_emb: torch.Tensor,
                        synthesise: Callable[[object, int], tuple[Inputs, np.ndarray]],
                        blocks_of: Callable, cfg: Config, seed: int,
                        diffgen_generator: Callable[[], torch.Generator],
                        log: Callable[[str], None] = print) -> TransductiveChoice:
    """DiffTTA on the validation view, then ZeroDiff + DiffTTA's and ZeroDiff++'s own settings
    (module doc).  ``sel``: ZeroDiff's selection (``sel.run`` is f0); ``synthesise(models, n)``
    generates ``n`` validation-class features per class with ``models`` (seeded as at test
    time); ``diffgen_generator()`` a fresh DiffGen generator seeded as at test time."""
    from ..tta import adapt_to_pool, select_pseudo_labels

    if sel.run is None:
        raise ValueError("select_transductive needs the selection's classifier (pseudo_labels=True)")
    own = apply_selection(cfg, {"variant": sel.variant, "syn_per_class": sel.syn_per_class,
                                "gzsl_epochs": sel.gzsl_epochs, "zsl_epochs": sel.zsl_epochs,
                                "calibration": sel.calibration,
                                "tta_confidence": sel.tta_confidence})
    pool = concat_inputs(sets.val_seen, sets.val_unseen)
    pool_y = np.concatenate([sets.val_seen_y, sets.val_unseen_y])     # scoring only
    train_y = np.asarray(sets.train_y)
    probs0 = sel.run.log_probs(pool, sel.variant).exp()
    tta = adapt_to_pool(models, sel.run, probs0, sets.train, train_y, feats.train_x,
                        feats.train_c, pool, feats.pool_x, feats.pool_c, class_emb, sets.seen,
                        sets.unseen, own, seed, log=lambda msg: log(f"validation round: {msg}"))
    pseudo = {"f0": score_pseudo(select_pseudo_labels(probs0, sel.run.classes, own.tta), pool_y,
                                 sets.unseen),
              "after_tta": score_pseudo(tta.pseudo, pool_y, sets.unseen)}

    n = sel.syn_per_class
    syn, syn_y = synthesise(tta.models, n)
    scan = scan_gzsl(sets, sets.train, train_y, syn, syn_y, sel.variant, cfg,
                     sub_generator(seed, TAGS_TTA[0], n), keep_model=False)
    zsl_epochs, t1 = scan_zsl(sets, syn, syn_y, sel.variant, cfg, sub_generator(seed, TAGS_TTA[1], n))
    pp = scan_budgets(sets, feats, tta.models, class_emb, tta.pseudo.restrict(sets.unseen), syn,
                      syn_y, blocks_of, cfg, sel.variant, n, seed, diffgen_generator,
                      TAGS_ZERODIFFPP)
    return TransductiveChoice(scan, zsl_epochs, t1, pp, tta.rounds, pseudo)
