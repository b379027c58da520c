"""The validation round's choice of every protocol setting (docs/protocol.md "Selection").

On the validation view (:mod:`.split`: train-classes play seen, validation-classes play unseen)
a method's generator, trained on the train-classes only, synthesises the validation-classes.
For every candidate (input variant x syn_per_class) ONE GZSL classifier is trained for
``eval.max_classifier_epochs`` epochs; after every epoch its scores on the validation sets are
summarised (:class:`.calibration.Decisions`), and the best calibration gamma of that epoch is
found from those stored scores (no refit).  The candidate, epoch and gamma with the highest
validation H win; one ZSL classifier of the winning candidate then gives the ZSL epoch, and the
pseudo-label threshold of DiffTTA / DiffGen is chosen on the validation pool with the chosen,
calibrated classifier (the scan's own weights at the chosen epoch).  Nothing here reads test
data: the caller passes the validation view only.

Cost: one GZSL fit of ``max_classifier_epochs`` epochs per candidate on the (smaller)
validation sets, plus one ZSL fit of ``max_zsl_epochs`` for the winner; calibration is
vectorised.  DiffGen's own settings are chosen afterwards from the same classifier's
pseudo-labels (:mod:`.diffgen_budget`).
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .. import metrics
from ..classifier import SoftmaxClassifier, log_probs, train_classifier
from ..config import Config, ConfigError
from ..evaluation import (Inputs, ProtocolRun, compact_labels, concat_inputs, select,
                          sub_generator)
from ..io import DataError, read_json, write_json
from .calibration import best_gamma, decisions
from .own_settings import OWN_BLOCKS, own_block

SELECTION_VERSION = 1
# Blocks of ``chosen`` with one transductive method's own settings (absent: that method uses
# the settings of the method it extends -- ZeroDiff's for DiffTTA, DiffGen's for ZeroDiff++).
TRANSDUCTIVE_KEYS = ("tta", "zerodiffpp")
# Keys of a DiffGen block of ``chosen`` (ZeroDiff + DiffGen's, ZeroDiff++'s own)
BUDGET_KEYS = ("seen_fraction", "unseen_fraction", "gzsl_epochs", "calibration")


@dataclass
class ValidationSets:
    """Classifier inputs of the validation view (blocks for every candidate variant)."""

    train: Inputs
    train_y: np.ndarray
    val_seen: Inputs          # held-out train-class samples
    val_seen_y: np.ndarray
    val_unseen: Inputs        # validation-class samples
    val_unseen_y: np.ndarray
    seen: np.ndarray          # train-classes
    unseen: np.ndarray        # validation-classes


@dataclass
class CandidateScore:
    variant: str
    syn_per_class: int
    gzsl_epochs: int
    calibration: float
    u: float
    s: float
    h: float
    h_uncalibrated: float     # same epoch, gamma = 0: what calibration adds
    zsl_epochs: Optional[int] = None    # scanned for the winning candidate only
    t1: Optional[float] = None

    def as_json(self) -> dict:
        out = dataclasses.asdict(self)
        for k in ("u", "s", "h", "h_uncalibrated", "t1"):
            if out[k] is not None:
                out[k] = round(100.0 * out[k], 2)
        out["calibration"] = round(out["calibration"], 6)
        return out


@dataclass
class Selection:
    """What the validation round chose for one method; written as a metrics JSON."""

    method: str
    variant: str
    syn_per_class: int
    gzsl_epochs: int
    zsl_epochs: int
    calibration: float
    tta_confidence: Optional[float] = None
    val_pseudo: Optional[dict] = None          # validation pseudo-labels at the chosen threshold
    split: dict = field(default_factory=dict)  # ClassSplit.as_json()
    candidates: list = field(default_factory=list)
    diffgen: Optional[dict] = None             # .diffgen_budget.DiffGenChoice.as_json()
    # .transductive.TransductiveChoice.as_json(): ZeroDiff + DiffTTA's and ZeroDiff++'s own
    # classifier settings (and ZeroDiff++'s DiffGen budgets), chosen with DiffTTA rerun on the
    # validation view
    transductive: Optional[dict] = None
    # The chosen, calibrated classifier of the validation round (not written): the source of
    # the validation pseudo-labels that the DiffGen choice starts from.
    run: Optional[ProtocolRun] = field(default=None, repr=False, compare=False)

    def as_json(self) -> dict:
        best = next(c for c in self.candidates if c["variant"] == self.variant
                    and c["syn_per_class"] == self.syn_per_class)
        chosen = {"variant": self.variant, "syn_per_class": self.syn_per_class,
                  "gzsl_epochs": self.gzsl_epochs, "zsl_epochs": self.zsl_epochs,
                  "calibration": round(self.calibration, 6)}
        if self.tta_confidence is not None:
            chosen["tta_confidence"] = self.tta_confidence
        out = {"chosen": chosen,
               "val": {k: best[k] for k in ("u", "s", "h", "h_uncalibrated", "t1")},
               "split": {"source": self.split.get("source"),
                         "n_train_classes": len(self.split.get("train_classes", [])),
                         "n_val_classes": len(self.split.get("val_classes", []))},
               "version": SELECTION_VERSION}
        if self.val_pseudo is not None:
            out["val_pseudo"] = self.val_pseudo
        if self.diffgen is not None:
            chosen["diffgen"] = self.diffgen["chosen"]
            out["val_diffgen"] = self.diffgen["val"]
        if self.transductive is not None:
            for key in TRANSDUCTIVE_KEYS:
                chosen[key] = self.transductive["chosen"][key]
                out[f"val_{key}"] = self.transductive["val"][key]
        return out


def load_selection(path) -> dict:
    """The ``chosen`` block of a selection metrics file, checked."""
    raw = read_json(path)
    if not isinstance(raw, dict) or len(raw) != 1:
        raise DataError(f"{path}: expected one method's selection ({{method: {{chosen, ...}}}})")
    (_, body), = raw.items()
    if not isinstance(body, dict) or body.get("version") != SELECTION_VERSION or "chosen" not in body:
        raise DataError(f"{path}: not a selection file of version {SELECTION_VERSION}; rerun the "
                        "validation round (dvc repro)")
    chosen = body["chosen"]
    for key in ("variant", "syn_per_class", "gzsl_epochs", "zsl_epochs", "calibration"):
        if key not in chosen:
            raise DataError(f"{path}: chosen.{key} missing")
    # the per-method blocks the final round reads (method_config), where present
    blocks = {"diffgen": BUDGET_KEYS, "zerodiffpp": BUDGET_KEYS,
              "tta": ("gzsl_epochs", "calibration")}
    for name, keys in blocks.items():
        block = chosen.get(name)
        if block is None:
            continue
        if not isinstance(block, dict):
            raise DataError(f"{path}: chosen.{name} must be a mapping")
        for key in keys:
            if key not in block:
                raise DataError(f"{path}: chosen.{name}.{key} missing")
    return chosen


def apply_selection(cfg: Config, chosen: dict) -> Config:
    """``cfg`` with the validation round's choice in place of the fixed eval / tta values."""
    ev = dataclasses.replace(cfg.eval, variant=chosen["variant"],
                             syn_per_class=int(chosen["syn_per_class"]),
                             classifier_epochs=int(chosen["gzsl_epochs"]),
                             zsl_epochs=int(chosen["zsl_epochs"]),
                             calibration=float(chosen["calibration"]))
    tta = cfg.tta
    if chosen.get("tta_confidence") is not None:
        tta = dataclasses.replace(tta, confidence=float(chosen["tta_confidence"]))
    dg = cfg.diffgen
    if chosen.get("diffgen") is not None:
        c = chosen["diffgen"]
        dg = dataclasses.replace(dg, seen_fraction=float(c["seen_fraction"]),
                                 unseen_fraction=float(c["unseen_fraction"]),
                                 classifier_epochs=int(c["gzsl_epochs"]),
                                 calibration=float(c["calibration"]))
    return dataclasses.replace(cfg, eval=ev, tta=tta, diffgen=dg)


def diffgen_eval(cfg: Config):
    """The eval settings of the DiffGen methods' classifiers: ``diffgen.classifier_epochs`` /
    ``diffgen.calibration`` where set, else eval's."""
    dg = cfg.diffgen
    return dataclasses.replace(
        cfg.eval, classifier_epochs=dg.classifier_epochs or cfg.eval.classifier_epochs,
        calibration=cfg.eval.calibration if dg.calibration is None else dg.calibration)


def _own(ev, block: dict):
    return dataclasses.replace(ev, classifier_epochs=int(block["gzsl_epochs"]),
                               zsl_epochs=int(block.get("zsl_epochs") or ev.zsl_epochs),
                               calibration=float(block["calibration"]))


def method_config(cfg: Config, chosen: Optional[dict], method: str) -> Config:
    """The configuration ``method``'s final classifiers use (docs/protocol.md).  ``chosen``: the
    ``chosen`` block of ZeroDiff's selection file, None under ``eval.selection: fixed`` (then
    every method uses the params as written; the DiffGen methods' GZSL classifiers
    ``diffgen.classifier_epochs`` / ``diffgen.calibration`` where set).  Under validation each
    method has its own epochs and calibration: ZeroDiff + DiffTTA from ``chosen.tta``, the
    DiffGen methods from ``chosen.diffgen`` / ``chosen.zerodiffpp`` (with their budgets); a
    block that is missing falls back to the method this one extends (:mod:`.own_settings`)."""
    if method not in OWN_BLOCKS:
        raise ValueError(f"method_config: unknown method {method!r}")
    block = own_block(chosen or {}, method)
    base = cfg if chosen is None else apply_selection(cfg, chosen)
    if block is None:
        if method in ("zerodiff", "zerodiff_tta"):
            return base
        return dataclasses.replace(base, eval=diffgen_eval(base))
    if method == "zerodiff_tta":
        return dataclasses.replace(base, eval=_own(base.eval, block))
    dg = dataclasses.replace(base.diffgen, seen_fraction=float(block["seen_fraction"]),
                             unseen_fraction=float(block["unseen_fraction"]),
                             classifier_epochs=int(block["gzsl_epochs"]),
                             calibration=float(block["calibration"]))
    return dataclasses.replace(base, eval=_own(base.eval, block), diffgen=dg)


def load_chosen(cfg: Config, selection_path, method: str) -> Optional[dict]:
    """The ``chosen`` block the final round runs with: None under ``eval.selection: fixed``."""
    if cfg.eval.selection == "fixed":
        return None
    if selection_path is None:
        raise ConfigError(f"eval.selection=validation: {method} needs --selection "
                          "(the validation round's output)")
    return load_selection(selection_path)


def resolve(cfg: Config, selection_path, method: str) -> Config:
    """The configuration the final round runs with: under ``eval.selection: validation`` the
    choice in ``selection_path``; under ``fixed`` ``cfg`` as it is."""
    chosen = load_chosen(cfg, selection_path, method)
    return cfg if chosen is None else apply_selection(cfg, chosen)


# --------------------------------------------------------------------------- scanning


@dataclass
class GZSLScan:
    """The best epoch of one GZSL classifier scanned on the validation sets, with its calibration."""

    epochs: int
    calibration: float
    u: float
    s: float
    h: float
    h_uncalibrated: float     # same epoch, gamma = 0: what calibration adds
    # The classifier's weights after ``epochs`` epochs (a copy taken during the scan, so the
    # chosen classifier needs no refit), over ``classes``.
    model: Optional[SoftmaxClassifier] = field(default=None, repr=False, compare=False)
    classes: Optional[np.ndarray] = field(default=None, repr=False, compare=False)


def scan_gzsl(sets: ValidationSets, train: Inputs, train_y: np.ndarray, syn: Inputs,
              syn_y: np.ndarray, variant: str, cfg: Config, generator: torch.Generator,
              weights: Optional[np.ndarray] = None, keep_model: bool = True) -> GZSLScan:
    """One GZSL classifier on ``train`` ∪ ``syn`` for ``max_classifier_epochs`` epochs; after each
    epoch the validation scores are reduced (:func:`.calibration.decisions`) and the best
    calibration of that epoch is found from them (no refit).  The first epoch with the best
    calibrated H wins; its weights are kept when ``keep_model`` (the caller labels with them)."""
    ev = cfg.eval
    classes = np.union1d(sets.seen, sets.unseen)
    y = torch.cat([compact_labels(train_y, classes, "validation train labels"),
                   compact_labels(syn_y, classes, "validation synthetic labels")])
    eval_y = np.concatenate([sets.val_seen_y, sets.val_unseen_y])
    eval_blocks = select(concat_inputs(sets.val_seen, sets.val_unseen), variant)
    best = {"seen": 0}                  # epochs seen so far; the best epoch's score and copy

    def monitor(model):
        best["seen"] += 1
        d = decisions(log_probs(model, eval_blocks), classes, sets.seen, eval_y)
        score = best_gamma(d, sets.seen, sets.unseen)
        if "score" not in best or score.h > best["score"].h:   # strict: the first best epoch
            snapshot = None
            if keep_model:
                snapshot = copy.deepcopy(model)
                snapshot.zero_grad(set_to_none=True)
            best.update(epoch=best["seen"], score=score, decisions=d, model=snapshot)

    train_classifier(select(concat_inputs(train, syn), variant), y, len(classes),
                     epochs=ev.max_classifier_epochs, lr=ev.classifier_lr,
                     batch_size=ev.classifier_batch, generator=generator,
                     weights=None if weights is None else torch.as_tensor(weights),
                     monitor=monitor)
    plain = best["decisions"].predict(0.0)
    n_seen = len(sets.val_seen_y)
    h_plain = metrics.gzsl_scores(sets.val_seen_y, plain[:n_seen], sets.val_unseen_y,
                                  plain[n_seen:], sets.seen, sets.unseen)["h"]
    s, model = best["score"], best["model"]
    return GZSLScan(best["epoch"], s.gamma, s.u, s.s, s.h, h_plain,
                    None if model is None else model.eval(), classes)


def scan_zsl(sets: ValidationSets, syn: Inputs, syn_y: np.ndarray, variant: str, cfg: Config,
             generator: torch.Generator,
             weights: Optional[np.ndarray] = None) -> tuple[int, float]:
    """One ZSL classifier (synthetic validation-class features only, optional per-sample
    weights) for ``max_zsl_epochs`` epochs, T1 on the validation classes after each: (first
    best epoch, its T1)."""
    ev = cfg.eval
    unseen_blocks = select(sets.val_unseen, variant)

    def zsl_monitor(model):
        pred = sets.unseen[log_probs(model, unseen_blocks).argmax(dim=1).cpu().numpy()]
        return metrics.zsl_t1(sets.val_unseen_y, pred, sets.unseen)

    z = train_classifier(select(syn, variant), compact_labels(syn_y, sets.unseen, "ZSL labels"),
                         len(sets.unseen), epochs=ev.max_zsl_epochs, lr=ev.classifier_lr,
                         batch_size=ev.classifier_batch, generator=generator,
                         weights=None if weights is None else torch.as_tensor(weights),
                         monitor=zsl_monitor)
    ze = int(np.argmax(z.monitor))
    return ze + 1, float(z.monitor[ze])


def choose_threshold(run: ProtocolRun, sets: ValidationSets, variant: str, cfg: Config):
    """DiffTTA / DiffGen pseudo-label threshold tau: the candidate whose unseen pseudo-labels on
    the validation pool have the best F_0.5 (precision weighted twice as much as recall: a
    wrong anchor costs more than a missing one).  Ties -> the higher threshold."""
    from ..tta import select_pseudo_labels

    pool = concat_inputs(sets.val_seen, sets.val_unseen)
    pool_y = np.concatenate([sets.val_seen_y, sets.val_unseen_y])
    probs = run.log_probs(pool, variant).exp()
    n_unseen = len(sets.val_unseen_y)
    best = None
    for tau in sorted(cfg.tta.confidence_candidates, reverse=True):
        pl = select_pseudo_labels(probs, run.classes, dataclasses.replace(cfg.tta, confidence=tau))
        pl = pl.restrict(sets.unseen)
        correct = int((pool_y[pl.index] == pl.y).sum()) if len(pl) else 0
        prec = correct / len(pl) if len(pl) else 0.0
        rec = correct / n_unseen
        f = 1.25 * prec * rec / (0.25 * prec + rec) if correct else 0.0
        row = {"tau": tau, "n": len(pl), "precision": round(prec, 4), "recall": round(rec, 4),
               "f05": round(f, 4), "per_class": round(len(pl) / len(sets.unseen), 2)}
        if best is None or f > best["f05"] + 1e-12:
            best = row
    return best


def select_settings(method: str, sets: ValidationSets,
                    synthesise: Callable[[int], tuple[Inputs, np.ndarray]], cfg: Config,
                    seed: int, variants: Sequence[str], pseudo_labels: bool,
                    split: dict, progress=None) -> Selection:
    """Scan every candidate (variant x syn_per_class) with one GZSL classifier, keep the best
    by validation H (ties: the earlier candidate), scan the winner's ZSL classifier, then
    choose the pseudo-label threshold when ``pseudo_labels``."""
    counts = list(dict.fromkeys(cfg.eval.syn_per_class_candidates or [cfg.eval.syn_per_class]))
    scores, best = [], None          # best: (CandidateScore, GZSLScan, syn, syn_y)
    items = [(n, v) for n in counts for v in variants]
    syn_n = None
    for n, v in (items if progress is None else progress(items)):
        if n != syn_n:                   # items are grouped by count: one synthesis per count
            syn_n, (syn, syn_y) = n, synthesise(n)
        # Seeds depend on the count only, so a candidate's scores do not depend on the others.
        gz = scan_gzsl(sets, sets.train, sets.train_y, syn, syn_y, v, cfg,
                       sub_generator(seed, 1, n))
        scores.append(CandidateScore(v, n, gz.epochs, gz.calibration, gz.u, gz.s, gz.h,
                                     gz.h_uncalibrated))
        if best is None or gz.h > best[1].h:    # strict: the first of equal values
            best = (scores[-1], gz, syn, syn_y)
    win, gz, syn, syn_y = best
    win.zsl_epochs, win.t1 = scan_zsl(sets, syn, syn_y, win.variant, cfg,
                                      sub_generator(seed, 2, win.syn_per_class))
    sel = Selection(method, win.variant, win.syn_per_class, win.gzsl_epochs, win.zsl_epochs,
                    win.calibration, split=split, candidates=[c.as_json() for c in scores])
    if pseudo_labels:
        run = ProtocolRun(gz.model, gz.classes, calibration=win.calibration, seen=sets.seen)
        pick = choose_threshold(run, sets, win.variant, cfg)
        if pick is not None and pick["n"] > 0:
            sel.tta_confidence = pick["tau"]
        sel.val_pseudo, sel.run = pick, run
    return sel


# --------------------------------------------------------------------------- files


def add_selection_args(parser, selection_file: str, select_help: str) -> None:
    """``--selection`` (final round: read the choice), ``--select OUT`` (validation round:
    make it) and ``--select-details`` of the evaluate / baseline stages."""
    parser.add_argument("--selection", default=None,
                        help=f"the validation round's choice ({selection_file}); "
                             "used when eval.selection=validation")
    parser.add_argument("--select", default=None, metavar="OUT", help=select_help)
    parser.add_argument("--select-details", default=None,
                        help="with --select: every candidate's validation scores (JSON)")


def read_split(prepared_dir) -> dict:
    """``split.json`` of the validation_split stage beside the validation view."""
    from pathlib import Path

    path = Path(prepared_dir) / "split.json"
    if not path.exists():
        raise ConfigError(f"{path}: missing; --select needs the validation_split stage's output")
    return read_json(path)


def write_selection(sel: Selection, path, details_path=None) -> None:
    """The choice as a metrics JSON ``{method: {chosen, val, split, ...}}`` (what ``dvc metrics
    diff`` shows) and, optionally, every candidate's scores."""
    body = sel.as_json()
    write_json(path, {sel.method: body})
    if details_path:
        details = {"method": sel.method, "split": sel.split, "candidates": sel.candidates,
                   "val_pseudo": sel.val_pseudo}
        if sel.diffgen is not None:
            details["diffgen_candidates"] = sel.diffgen["candidates"]
        if sel.transductive is not None:
            details["transductive"] = sel.transductive["details"]
        write_json(details_path, details)
    c, v = body["chosen"], body["val"]
    print(f"selection {sel.method}: {c}; on validation classes U {v['u']} S {v['s']} H {v['h']} "
          f"(uncalibrated H {v['h_uncalibrated']}), ZSL T1 {v['t1']}")
    if sel.diffgen is not None:
        v = sel.diffgen["val"]
        print(f"selection {sel.method} + DiffGen: {sel.diffgen['chosen']}; on validation classes "
              f"U {v['u']} S {v['s']} H {v['h']} ({v['anchors']} unseen anchors)")
    if sel.transductive is not None:
        for key, name in zip(TRANSDUCTIVE_KEYS, ("zerodiff + DiffTTA", "zerodiffpp")):
            c, v = sel.transductive["chosen"][key], sel.transductive["val"][key]
            print(f"selection {name}: {c}; on validation classes U {v['u']} "
                  f"S {v['s']} H {v['h']}, ZSL T1 {v['t1']}")
