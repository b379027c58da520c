"""Classifier inputs and the ZSL / GZSL protocols (METHOD.md 4.3 - 4.5), for any synthetic set.

Inputs are built once as named *blocks* (METHOD.md 4.3):
  V = x,  S = [Dec(x), Dec hidden] (DFG decoder in eval mode),  C = c,
and a variant (V, VS, C, VC, VCS) selects blocks, always in the column order V, S, C.
Real seen-train and test samples use their real SC representation c; synthetic samples use
the generated ĉ.

Protocols (clean, METHOD.md 4.5: fixed epochs, last-epoch classifier, no test selection):
* GZSL: train on real seen ∪ synthetic unseen over classes = seen ∪ unseen, relabelled to a
  compact 0..K-1 space (deviation: the official code uses every column of ``att``; some
  datasets, e.g. SNU-B36-EX, have classes with no samples at all).  U / S / H (METHOD.md 4.4).
* ZSL: train on synthetic unseen only over the unseen classes; T1 on test-unseen.
* optional "Seen (V)" diagnostic: synthetic seen features only, tested on real test-seen.
* optional *leaky* best-of-test numbers (the paper's selection, METHOD.md 4.5): test metrics
  after every epoch, maximum kept; reported separately, never as headline numbers.

Later methods (DiffTTA, DiffGen, baselines) call :func:`evaluate_variants` /
:func:`evaluate_protocols` with their own synthetic sets and optional per-sample weights.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
import torch

from . import metrics
from .classifier import SoftmaxClassifier, log_probs, train_classifier
from .config import EvalConfig
from .io import DataError
from .protocol.calibration import calibrate, seen_mask

VARIANTS = ("V", "VS", "C", "VC", "VCS")
BLOCK_ORDER = ("V", "S", "C")
DEC_CHUNK = 4096

FeatureBlocks = Mapping[str, torch.Tensor]
Inputs = Union[FeatureBlocks, torch.Tensor]   # blocks (selected by variant) or a ready tensor


# --------------------------------------------------------------------------- inputs


def variant_blocks(variant: str) -> tuple[str, ...]:
    if variant not in VARIANTS:
        raise DataError(f"unknown classifier input variant {variant!r} (allowed: {', '.join(VARIANTS)})")
    return tuple(b for b in BLOCK_ORDER if b in variant)


@torch.no_grad()
def decoder_features(dec: torch.nn.Module, x: torch.Tensor, chunk: int = DEC_CHUNK) -> torch.Tensor:
    """S block: [Dec(x), Dec hidden] with Dec in eval mode (mode restored afterwards)."""
    was_training = dec.training
    dec.eval()
    try:
        parts = []
        for s in range(0, x.shape[0], chunk):
            xb = x[s:s + chunk]
            if hasattr(dec, "forward_with_hidden"):
                out, hidden = dec.forward_with_hidden(xb)
            elif hasattr(dec, "hidden"):
                out, hidden = dec(xb), dec.hidden(xb)
            else:
                out, hidden = dec(xb, return_hidden=True)
            parts.append(torch.cat([out, hidden], dim=1))
    finally:
        dec.train(was_training)
    if not parts:
        raise DataError("decoder_features: no samples")
    return torch.cat(parts)


def build_blocks(x, c=None, dec: Optional[torch.nn.Module] = None, variants: Sequence[str] = ("VCS",),
                 device=None) -> dict[str, torch.Tensor]:
    """Blocks needed by ``variants`` for one sample set (x, c): V always, S needs ``dec``, C needs c."""
    needed = {b for v in variants for b in variant_blocks(v)}
    x = torch.as_tensor(x, dtype=torch.float32, device=device)
    blocks = {"V": x}
    if "S" in needed:
        if dec is None:
            raise DataError("input variant with S needs the DFG semantic decoder Dec")
        blocks["S"] = decoder_features(dec, x)
    if "C" in needed:
        if c is None:
            raise DataError("input variant with C needs SC representations c")
        c = torch.as_tensor(c, dtype=torch.float32, device=x.device)
        if c.shape[0] != x.shape[0]:
            raise DataError(f"x and c row counts differ ({x.shape[0]} vs {c.shape[0]})")
        blocks["C"] = c
    return blocks


def select(inputs: Inputs, variant: str) -> list[torch.Tensor]:
    """The blocks of ``variant`` from a block dict; a plain tensor is used as it is."""
    if isinstance(inputs, torch.Tensor):
        return [inputs]
    missing = [b for b in variant_blocks(variant) if b not in inputs]
    if missing:
        raise DataError(f"variant {variant}: feature block(s) {', '.join(missing)} were not built")
    return [inputs[b] for b in variant_blocks(variant)]


def concat_inputs(a: Inputs, b: Inputs) -> Inputs:
    """Row-wise union of two sample sets (blocks present in both)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            raise DataError("cannot concatenate block dicts with plain tensors")
        return torch.cat([a, b])
    return {k: torch.cat([a[k], b[k]]) for k in BLOCK_ORDER if k in a and k in b}


def _n_rows(inputs: Inputs) -> int:
    first = inputs if isinstance(inputs, torch.Tensor) else next(iter(inputs.values()))
    return int(first.shape[0])


def _ids(y) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    return np.asarray(y, dtype=np.int64).reshape(-1)


def compact_labels(y, classes: np.ndarray, what: str) -> torch.Tensor:
    """Map class ids to positions in sorted ``classes``; DataError for ids outside it."""
    y = _ids(y)
    pos = np.minimum(np.searchsorted(classes, y), len(classes) - 1)
    bad = classes[pos] != y
    if bad.any():
        raise DataError(f"{what}: class id(s) {sorted(set(y[bad].tolist()))[:10]} are not among "
                        f"the {len(classes)} classes of this protocol")
    return torch.from_numpy(pos)


def _weights(w, n: int, what: str):
    if w is None:
        return None
    w = torch.as_tensor(w, dtype=torch.float32).reshape(-1)
    if w.shape[0] != n:
        raise DataError(f"{what}: {w.shape[0]} weights for {n} samples")
    return w


# --------------------------------------------------------------------------- protocols


@dataclass
class ProtocolRun:
    """One trained classifier: its classes (original 0-based ids, sorted) and last-epoch model.
    ``calibration`` (gamma of calibrated stacking, docs/protocol.md) is subtracted from the
    log-probabilities of ``seen`` classes before any prediction or confidence is read."""

    model: SoftmaxClassifier
    classes: np.ndarray
    monitor: list = field(default_factory=list)
    calibration: float = 0.0
    seen: Optional[np.ndarray] = None

    def predict(self, inputs: Inputs, variant: str) -> np.ndarray:
        """Predicted original class ids (after calibration)."""
        return self.classes[self.log_probs(inputs, variant).argmax(dim=1).cpu().numpy()]

    def raw_log_probs(self, inputs: Inputs, variant: str) -> torch.Tensor:
        """(n, len(classes)) log-probabilities before calibration, columns as ``classes``."""
        return log_probs(self.model, select(inputs, variant))

    def log_probs(self, inputs: Inputs, variant: str) -> torch.Tensor:
        """(n, len(classes)) calibrated log-probabilities (renormalised), columns as ``classes``."""
        raw = self.raw_log_probs(inputs, variant)
        if self.seen is None or self.calibration == 0.0:
            return raw
        return calibrate(raw, seen_mask(self.classes, self.seen), self.calibration)


@dataclass
class EvalResult:
    variant: str
    zsl_t1: float
    gzsl_u: float
    gzsl_s: float
    gzsl_h: float
    per_class: pd.DataFrame          # protocol, split, class_id, n_test, n_correct, accuracy
    gzsl: ProtocolRun
    zsl: ProtocolRun
    leaky: Optional[dict] = None     # best-of-test diagnostic (METHOD.md 4.5), never headline

    def scores(self) -> dict[str, float]:
        return {"zsl_t1": self.zsl_t1, "gzsl_u": self.gzsl_u, "gzsl_s": self.gzsl_s,
                "gzsl_h": self.gzsl_h}


def _seed_from(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))


def sub_generator(base: int, *tags) -> torch.Generator:
    """Independent CPU generator per (variant, protocol): a variant's numbers do not depend
    on which other variants are evaluated in the same call."""
    seed = int(np.random.SeedSequence([base % 2**63, *tags]).generate_state(1, np.uint64)[0])
    return torch.Generator().manual_seed(seed % 2**63)


def zsl_epochs(cfg: EvalConfig) -> int:
    """Epochs of the ZSL classifier: ``eval.zsl_epochs``, 0 = the GZSL classifier's."""
    return cfg.zsl_epochs or cfg.classifier_epochs


def _train(inputs: Inputs, y: torch.Tensor, n_classes: int, variant: str, cfg: EvalConfig,
           generator: torch.Generator, weights, monitor, progress, epochs: Optional[int] = None):
    return train_classifier(select(inputs, variant), y, n_classes,
                            epochs=epochs or cfg.classifier_epochs,
                            lr=cfg.classifier_lr, batch_size=cfg.classifier_batch,
                            generator=generator, weights=weights, monitor=monitor, progress=progress)


def _check_classes(seen_classes, unseen_classes) -> tuple[np.ndarray, np.ndarray]:
    seen, unseen = np.unique(_ids(seen_classes)), np.unique(_ids(unseen_classes))
    if len(seen) == 0 or len(unseen) == 0:
        raise DataError(f"need seen and unseen classes (got {len(seen)} seen, {len(unseen)} unseen)")
    both = np.intersect1d(seen, unseen)
    if len(both):
        raise DataError(f"classes {both[:10].tolist()} are both seen and unseen")
    return seen, unseen


def evaluate_variants(train: Inputs, train_y, syn: Inputs, syn_y, test_seen: Inputs, test_seen_y,
                      test_unseen: Inputs, test_unseen_y, seen_classes, unseen_classes,
                      cfg: EvalConfig, generator: torch.Generator, *,
                      variants: Sequence[str] = VARIANTS, train_weights=None, syn_weights=None,
                      best_of_test: bool = False, progress=None,
                      zsl: bool = True) -> dict[str, EvalResult]:
    """GZSL + ZSL for each variant (inputs as built by :func:`build_blocks`; labels 0-based
    original class ids).  ``train`` = real seen training set (plus anything else a method adds
    to the GZSL set), ``syn`` = synthetic *unseen* samples (also the ZSL training set).
    ``*_weights`` are optional per-sample NLL weights.  ``generator`` (CPU) seeds everything.
    ``zsl=False`` leaves the ZSL half out (T1 NaN, no classifier, no ZSL rows) for a caller that
    fills it with :func:`with_zsl_from`; the GZSL half is the same either way."""
    for variant in variants:
        variant_blocks(variant)   # validate before any work
    seen, unseen = _check_classes(seen_classes, unseen_classes)
    all_classes = np.union1d(seen, unseen)
    n_train, n_syn = _n_rows(train), _n_rows(syn)
    y_gzsl = torch.cat([compact_labels(train_y, all_classes, "GZSL training labels"),
                        compact_labels(syn_y, all_classes, "synthetic labels")])
    y_zsl = compact_labels(syn_y, unseen, "synthetic labels (ZSL: must be unseen classes)")
    ts_y, tu_y = _ids(test_seen_y), _ids(test_unseen_y)
    if _n_rows(test_seen) != len(ts_y) or _n_rows(test_unseen) != len(tu_y):
        raise DataError("test features and labels have different lengths")
    for name, yt, cls in (("test-seen", ts_y, seen), ("test-unseen", tu_y, unseen)):
        if not np.isin(yt, cls).any():   # fail before any training
            raise DataError(f"{name}: no sample of its {len(cls)} target classes")
    if len(y_gzsl) != n_train + n_syn:
        raise DataError("training features and labels have different lengths")
    w_train = _weights(train_weights, n_train, "train_weights")
    w_syn = _weights(syn_weights, n_syn, "syn_weights")
    w_gzsl = None
    if w_train is not None or w_syn is not None:
        w_gzsl = torch.cat([w_train if w_train is not None else torch.ones(n_train),
                            w_syn if w_syn is not None else torch.ones(n_syn)])
    gzsl_inputs = concat_inputs(train, syn)   # built once, shared by every variant
    base = _seed_from(generator)

    results = {}
    for variant in variants:
        vi = VARIANTS.index(variant)
        # --- GZSL: one classifier over seen ∪ unseen
        def gzsl_scores(model, v=variant):
            run = ProtocolRun(model, all_classes)
            return metrics.gzsl_scores(ts_y, run.predict(test_seen, v), tu_y,
                                       run.predict(test_unseen, v), seen, unseen)
        g = _train(gzsl_inputs, y_gzsl, len(all_classes), variant, cfg, sub_generator(base, vi, 0),
                   w_gzsl, gzsl_scores if best_of_test else None, progress)
        gzsl_run = ProtocolRun(g.model, all_classes, g.monitor, cfg.calibration, seen)
        pred_s, pred_u = gzsl_run.predict(test_seen, variant), gzsl_run.predict(test_unseen, variant)
        gz = metrics.gzsl_scores(ts_y, pred_s, tu_y, pred_u, seen, unseen)

        rows = [("gzsl", "unseen", tu_y, pred_u, unseen), ("gzsl", "seen", ts_y, pred_s, seen)]
        # --- ZSL: synthetic unseen only, over unseen classes
        z, zsl_run, t1 = None, None, float("nan")
        if zsl:
            z, zsl_run, pred_z, t1 = _zsl_half(syn, y_zsl, w_syn, test_unseen, tu_y, unseen,
                                               variant, cfg, sub_generator(base, vi, 1),
                                               best_of_test, progress)
            rows.insert(0, ("zsl", "unseen", tu_y, pred_z, unseen))
        tables = [_per_class_rows(*row) for row in rows]
        leaky = None
        if best_of_test:
            best = max(range(len(g.monitor)), key=lambda i: g.monitor[i]["h"])
            leaky = {**(_leaky_zsl(z.monitor) if zsl else {}),
                     "gzsl_u": g.monitor[best]["u"], "gzsl_s": g.monitor[best]["s"],
                     "gzsl_h": g.monitor[best]["h"], "gzsl_epoch": best + 1}
        results[variant] = EvalResult(variant, t1, gz["u"], gz["s"], gz["h"],
                                      pd.concat(tables, ignore_index=True), gzsl_run, zsl_run, leaky)
    return results


def _per_class_rows(protocol: str, split: str, y_true, y_pred, classes) -> pd.DataFrame:
    """Per-class table of one protocol and split, with those two columns in front."""
    t = metrics.per_class_table(y_true, y_pred, classes)
    t.insert(0, "split", split)
    t.insert(0, "protocol", protocol)
    return t


def _leaky_zsl(monitor: list) -> dict:
    """The ZSL fields of the leaky best-of-test diagnostic: the test-best epoch and its T1."""
    bz = max(range(len(monitor)), key=lambda i: monitor[i])
    return {"zsl_t1": monitor[bz], "zsl_epoch": bz + 1}


def _zsl_half(syn: Inputs, y_zsl: torch.Tensor, w_syn, test_unseen: Inputs, tu_y: np.ndarray,
              unseen: np.ndarray, variant: str, cfg: EvalConfig, generator: torch.Generator,
              best_of_test: bool, progress):
    """The ZSL classifier of one variant (``eval.zsl_epochs``) and its test-unseen T1."""
    def zsl_score(model, v=variant):
        return metrics.zsl_t1(tu_y, ProtocolRun(model, unseen).predict(test_unseen, v), unseen)
    z = _train(syn, y_zsl, len(unseen), variant, cfg, generator, w_syn,
               zsl_score if best_of_test else None, progress, zsl_epochs(cfg))
    zsl_run = ProtocolRun(z.model, unseen, z.monitor)
    pred_z = zsl_run.predict(test_unseen, variant)
    return z, zsl_run, pred_z, metrics.zsl_t1(tu_y, pred_z, unseen)


def with_zsl_from(result: EvalResult, syn: Inputs, syn_y, test_unseen: Inputs, test_unseen_y,
                  unseen_classes, cfg: EvalConfig, generator: torch.Generator, *,
                  syn_weights=None, progress=None) -> EvalResult:
    """``result`` with its ZSL half (T1, classifier, per-class rows, leaky ZSL fields) retrained
    on another synthetic unseen set ``syn`` -- e.g. a transductive method's ZSL-pool adaptation
    (stages/evaluate.py, ``tta.zsl_pool: unseen``).  ``generator`` is the one
    :func:`evaluate_variants` got, so the ZSL classifier draws the same seed as it would there."""
    unseen = np.unique(_ids(unseen_classes))
    y_zsl = compact_labels(syn_y, unseen, "synthetic labels (ZSL: must be unseen classes)")
    w = _weights(syn_weights, _n_rows(syn), "syn_weights")
    tu_y, variant = _ids(test_unseen_y), result.variant
    best_of_test = result.leaky is not None
    z, zsl_run, pred_z, t1 = _zsl_half(syn, y_zsl, w, test_unseen, tu_y, unseen, variant, cfg,
                                       sub_generator(_seed_from(generator),
                                                     VARIANTS.index(variant), 1),
                                       best_of_test, progress)
    per_class = pd.concat([_per_class_rows("zsl", "unseen", tu_y, pred_z, unseen),
                           result.per_class[result.per_class["protocol"] != "zsl"]],
                          ignore_index=True)
    leaky = None
    if best_of_test:       # the ZSL fields first, as evaluate_variants writes them
        fresh = _leaky_zsl(z.monitor)
        leaky = {**fresh, **{k: v for k, v in result.leaky.items() if k not in fresh}}
    return dataclasses.replace(result, zsl_t1=t1, zsl=zsl_run, per_class=per_class, leaky=leaky)


def with_diffgen(train: Inputs, train_y, syn: Inputs, syn_y, dg_seen, dg_unseen, blocks_of):
    """Classifier inputs of a DiffGen method (METHOD.md 6.5 step 5): real seen [∪ DiffGen seen],
    synthetic unseen [∪ DiffGen unseen].  ``dg_*``: DiffGen sets (``x``, ``c``, ``y``, ``w``) or
    None; ``blocks_of(x, c)`` builds their inputs.  Returns (train, train_y, syn, syn_y, syn_w):
    ``syn_w`` weights the DiffGen unseen features by p(y-hat|x) and the fully generated ones by 1,
    None when there is no DiffGen unseen feature."""
    train_y, syn_y, syn_w = np.asarray(train_y), np.asarray(syn_y), None
    if dg_seen is not None and len(dg_seen):
        train = concat_inputs(train, blocks_of(dg_seen.x, dg_seen.c))
        train_y = np.concatenate([train_y, dg_seen.y])
    if dg_unseen is not None and len(dg_unseen):
        syn_w = np.concatenate([np.ones(len(syn_y), np.float32), dg_unseen.w])
        syn = concat_inputs(syn, blocks_of(dg_unseen.x, dg_unseen.c))
        syn_y = np.concatenate([syn_y, dg_unseen.y])
    return train, train_y, syn, syn_y, syn_w


def evaluate_protocols(train: Inputs, train_y, syn: Inputs, syn_y, test_seen: Inputs, test_seen_y,
                       test_unseen: Inputs, test_unseen_y, seen_classes, unseen_classes,
                       cfg: EvalConfig, generator: torch.Generator, *, variant: Optional[str] = None,
                       train_weights=None, syn_weights=None, best_of_test: bool = False,
                       progress=None, zsl: bool = True) -> EvalResult:
    """:func:`evaluate_variants` for one variant (default ``cfg.variant``)."""
    variant = variant or cfg.variant
    return evaluate_variants(train, train_y, syn, syn_y, test_seen, test_seen_y, test_unseen,
                             test_unseen_y, seen_classes, unseen_classes, cfg, generator,
                             variants=(variant,), train_weights=train_weights,
                             syn_weights=syn_weights, best_of_test=best_of_test,
                             progress=progress, zsl=zsl)[variant]


def seen_diagnostic(syn_seen: Inputs, syn_seen_y, test_seen: Inputs, test_seen_y, seen_classes,
                    cfg: EvalConfig, generator: torch.Generator, variant: str = "V") -> float:
    """"Seen (V)" diagnostic (METHOD.md 4.3): classifier on synthetic *seen* features only,
    mean per-class accuracy on real test-seen.  Measures how well G covers seen classes."""
    seen = np.unique(_ids(seen_classes))
    y = compact_labels(syn_seen_y, seen, "synthetic seen labels")
    r = _train(syn_seen, y, len(seen), variant, cfg, sub_generator(_seed_from(generator), 99),
               None, None, None)
    pred = ProtocolRun(r.model, seen).predict(test_seen, variant)
    return metrics.mean_class_accuracy(_ids(test_seen_y), pred, seen)


# --------------------------------------------------------------------------- reporting


def pct(v: float) -> float:
    return round(100.0 * float(v), 2)


def metrics_json(result: EvalResult) -> dict:
    """``{"zsl": {"t1"}, "gzsl": {"u", "s", "h"}}`` in percent (2 decimals), plus
    ``leaky_best_of_test`` when computed -- the layout ``dvc metrics diff`` shows as a table."""
    out = {"zsl": {"t1": pct(result.zsl_t1)},
           "gzsl": {"u": pct(result.gzsl_u), "s": pct(result.gzsl_s), "h": pct(result.gzsl_h)}}
    if result.leaky is not None:
        lk = result.leaky
        out["leaky_best_of_test"] = {
            "zsl": {"t1": pct(lk["zsl_t1"]), "epoch": lk["zsl_epoch"]},
            "gzsl": {"u": pct(lk["gzsl_u"]), "s": pct(lk["gzsl_s"]), "h": pct(lk["gzsl_h"]),
                     "epoch": lk["gzsl_epoch"]}}
    return out


def per_class_csv_frame(result: EvalResult) -> pd.DataFrame:
    """Per-class table for CSV: accuracy in percent, variant column added."""
    t = result.per_class.copy()
    t["accuracy"] = (100.0 * t["accuracy"]).round(4)
    t.insert(0, "variant", result.variant)
    return t
