"""Evaluate ZeroDiff and the ZeroDiff++ variants from ONE trained model (METHOD.md 4.3-4.5, 6.3-6.5).

``python -m zerodiffpp.stages.evaluate [--params params.yaml] [--prepared runs/prepared]
[--drg runs/drg] [--dfg runs/dfg] [--metrics metrics/zerodiff.json]
[--per-class runs/eval/per_class.csv] [--eval-dir runs/eval] [--methods m1,m2,..]
[--best-of-test]``

Methods (all by default; ``zerodiff`` is always computed because its classifier f0 is needed):
* ``zerodiff``          real seen ∪ ``eval.syn_per_class`` generated unseen per class (inductive).
* ``zerodiff_tta``      + DiffTTA (METHOD.md 6.3): the adapted G generates the unseen set.
* ``zerodiff_diffgen``  + DiffGen (6.4) with the original G; unseen anchors = f0's pseudo-labels.
* ``zerodiffpp``        both (6.5): DiffTTA, then DiffGen with the adapted G and DiffTTA's
  final pseudo-labels.
The three ``+`` methods are **transductive**: they read the unlabelled test features (x, c).
True test labels are used only for scoring (T1/U/S/H, per-class tables, and the pseudo-label
precision diagnostic), never for adaptation, anchors or training.  The pool is test-seen ∪
test-unseen for GZSL; under ``tta.zsl_pool: unseen`` (the default) the ZSL protocol pseudo-labels
its own test set, test-unseen, over the unseen classes (:func:`run_zsl_pool`), so each
transductive method's ZSL classifier is trained only once, on that pool's result.

Final classifiers (6.5 step 5): the ``eval`` settings for every method (same input variant,
epochs, batch, lr and classifier seed), except that the two DiffGen methods' GZSL classifiers
use ``diffgen.classifier_epochs`` / ``diffgen.calibration`` where set (chosen on validation
classes with DiffGen's features, docs/protocol.md) and that, with a selection written under
``eval.transductive_choice: own``, each transductive method has its own epochs, calibration and
ZSL epochs (protocol.selection.method_config); DiffGen features from pseudo-labelled anchors get the
per-sample NLL weight p(y-hat|x), everything else weight 1.  Every method reuses the same
synthesis noise (seed from ``train.seed``), so differences come from the method only.

Outputs
* metrics JSON (percent, 2 decimals)::
    {"zerodiff": {"zsl": {"t1"}, "gzsl": {"u", "s", "h"}}, "zerodiff_tta": {..}, ...}
  (``--best-of-test`` adds the leaky ``leaky_best_of_test`` diagnostic inside each method.)
* per-class CSV: method, variant, protocol (zsl|gzsl), split (seen|unseen), class_id (0-based),
  n_test, n_correct, accuracy (percent).
* ``<eval-dir>/<method>/generated.npz``: ``seen_x, seen_y, unseen_x, unseen_y`` with
  ``spurious.syn_per_class`` features per seen and unseen class from the method's generator (input
  of the spuriousness stage).  For DiffGen methods each class mixes fully generated and DiffGen
  features in the proportion of the method's synthetic training pool for that class.
* ``<eval-dir>/zerodiffpp.json``: DiffTTA rounds, pseudo-label counts/precision, DiffGen counts
  (diagnostics; timings go to stdout only, so reruns are byte-identical).
Reads the params sections runtime, train, diffusion, dfg, eval, tta, diffgen, spurious.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch

from .. import runtime
from ..config import ConfigError, load_config
from ..data.prepared import PreparedData
from ..evaluation import (build_blocks, concat_inputs, evaluate_protocols, metrics_json,
                          per_class_csv_frame, with_diffgen)
from ..io import write_csv, write_json, write_npz
from ..protocol.selection import add_selection_args, load_chosen, method_config
from ..seeds import TAG_CLF, TAG_DIFFGEN, TAG_MIX, TAG_SPURIOUS, TAG_SYN, derived_seed
from .common import run_stage, stage_parser

METHOD_KEY = "zerodiff"
METHODS = ("zerodiff", "zerodiff_tta", "zerodiff_diffgen", "zerodiffpp")
SECTIONS = ("runtime", "train", "diffusion", "dfg", "eval", "tta", "diffgen", "spurious")
def parse_methods(spec: str) -> tuple[str, ...]:
    names = [m.strip() for m in spec.split(",") if m.strip()]
    bad = [m for m in names if m not in METHODS]
    if bad or not names:
        raise ConfigError(f"--methods {spec!r}: choose from {', '.join(METHODS)}")
    return tuple(m for m in METHODS if m in names or m == METHOD_KEY)


@dataclass
class Context:
    cfg: object
    data: PreparedData
    models: object
    device: torch.device
    class_emb: torch.Tensor
    blocks: dict
    seed: int
    progress: object
    best_of_test: bool

    def gen(self, tag: int) -> torch.Generator:
        return torch.Generator().manual_seed(derived_seed(self.seed, tag))

    variants: tuple = ()
    chosen: Optional[dict] = None      # the validation round's choice (None: eval.selection fixed)
    raw_cfg: object = None             # the params as written (method_config starts from them)

    def method_cfg(self, method: str):
        """The configuration ``method``'s final classifiers use (protocol.selection.method_config)."""
        return method_config(self.raw_cfg or self.cfg, self.chosen, method)

    def blocks_of(self, x, c):
        return build_blocks(x, c, self.models.Dec, self.variants or (self.cfg.eval.variant,),
                            self.device)

    def build_real_blocks(self) -> None:
        """Classifier inputs of the real train / test-seen / test-unseen sets, built once."""
        for split in ("train", "test_seen", "test_unseen"):
            self.blocks[split] = self.blocks_of(getattr(self.data, f"{split}_x"),
                                                getattr(self.data, f"{split}_c"))


def synthesise(ctx: Context, models, classes, n: int, gen: torch.Generator):
    """``n`` fully generated (x, c-hat, y) per class (METHOD.md 2.5, ``eval.sampling``)."""
    from ..synthesis import generate

    return generate(models, ctx.class_emb, classes, n, ctx.cfg.eval.sampling, gen)


def evaluate_method(ctx: Context, syn, dg_seen=None, dg_unseen=None, ev=None, zsl: bool = True):
    """Final classifiers (6.5 step 5) on real seen [∪ DiffGen seen] and generated unseen
    [∪ DiffGen unseen, weighted by p]; ``ev`` overrides ``ctx.cfg.eval``; ``zsl=False``: the GZSL
    half only (:func:`run_zsl_pool` trains the ZSL half)."""
    d, b = ctx.data, ctx.blocks
    syn_x, syn_c, syn_y = syn
    train, train_y, syn_b, syn_y, syn_w = with_diffgen(
        b["train"], d.train_y, ctx.blocks_of(syn_x, syn_c), syn_y.numpy(), dg_seen, dg_unseen,
        ctx.blocks_of)
    return evaluate_protocols(train, train_y, syn_b, syn_y, b["test_seen"], d.test_seen_y,
                              b["test_unseen"], d.test_unseen_y, d.seen_classes, d.unseen_classes,
                              ev or ctx.cfg.eval, ctx.gen(TAG_CLF), syn_weights=syn_w,
                              best_of_test=ctx.best_of_test, progress=ctx.progress, zsl=zsl)


def mix_per_class(full_x, full_y, part, n_full_pool: dict, classes, n: int, gen: torch.Generator):
    """``n`` features per class: round(n * D / (F + D)) DiffGen features (D of them, F fully
    generated ones in the training pool of that class; seeded subsample, cyclic padding if short)
    and the rest from the fully generated ``full_x`` (which holds >= n per class)."""
    full_y = np.asarray(full_y)
    xs, ys = [], []
    for y in classes:
        rows = np.flatnonzero(part.y == y) if part is not None else np.zeros(0, np.int64)
        D, F = len(rows), n_full_pool.get(int(y), 0)
        n_part = int(np.floor(n * D / (F + D) + 0.5)) if D else 0
        chosen = []
        if n_part:
            perm = rows[torch.randperm(D, generator=gen).numpy()]
            chosen = [part.x[torch.as_tensor(np.resize(perm, n_part))]]
        full_rows = np.flatnonzero(full_y == y)[: n - n_part]
        xs.append(torch.cat([full_x[torch.as_tensor(full_rows, dtype=torch.long)], *chosen]))
        ys.append(np.full(n, y, np.int64))
    return torch.cat(xs).numpy().astype(np.float32), np.concatenate(ys)


def write_generated(ctx: Context, path: Path, models, dg_seen=None, dg_unseen=None) -> None:
    """Per-class generated features for the spuriousness stage (METHOD.md 6.2)."""
    d, n = ctx.data, ctx.cfg.spurious.syn_per_class
    gen = ctx.gen(TAG_SPURIOUS)
    seen_x, _, seen_y = synthesise(ctx, models, d.seen_classes, n, gen)
    unseen_x, _, unseen_y = synthesise(ctx, models, d.unseen_classes, n, gen)
    mix = ctx.gen(TAG_MIX)
    sx, sy = mix_per_class(seen_x, seen_y, dg_seen, {int(y): n for y in d.seen_classes},
                           d.seen_classes, n, mix)
    ux, uy = mix_per_class(unseen_x, unseen_y, dg_unseen,
                           {int(y): ctx.cfg.eval.syn_per_class for y in d.unseen_classes},
                           d.unseen_classes, n, mix)
    write_npz(path, seen_x=sx, seen_y=sy, unseen_x=ux, unseen_y=uy)


def run_transductive(ctx: Context, methods, syn0, f0, results: dict, generated: dict, diag: dict,
                     timings: dict) -> None:
    """DiffTTA and/or DiffGen (METHOD.md 6.3-6.5) on the unlabelled test pool; fills ``results``
    and ``generated`` for the requested ``+`` methods.  Test labels are read only for the
    pseudo-label precision diagnostic, after the fact."""
    from ..diffgen import Anchors, run_diffgen
    from ..tta import adapt_to_pool, select_pseudo_labels

    cfg, data, models, variant = ctx.cfg, ctx.data, ctx.models, ctx.cfg.eval.variant

    def dev(a):
        return torch.as_tensor(a, dtype=torch.float32, device=ctx.device)

    # Unlabelled test pool: features only.
    pool_x = dev(np.concatenate([data.test_seen_x, data.test_unseen_x]))
    pool_c = dev(np.concatenate([data.test_seen_c, data.test_unseen_c]))
    pool_blocks = concat_inputs(ctx.blocks["test_seen"], ctx.blocks["test_unseen"])
    pool_y = np.concatenate([data.test_seen_y, data.test_unseen_y])   # scoring diagnostic only

    def describe(pseudo):
        prec = round(float(np.mean(pool_y[pseudo.index] == pseudo.y)), 4) if len(pseudo) else None
        un = pseudo.restrict(data.unseen_classes)
        un_prec = round(float(np.mean(pool_y[un.index] == un.y)), 4) if len(un) else None
        return {"n": len(pseudo), "per_class": pseudo.counts(), "precision": prec,
                "unseen": {"n": len(un), "per_class": round(len(un) / len(data.unseen_classes), 2),
                           "precision": un_prec}}

    probs0 = f0.log_probs(pool_blocks, variant).exp()
    pseudo0 = select_pseudo_labels(probs0, f0.classes, cfg.tta)
    diag["pseudo_f0"] = describe(pseudo0)

    tta = syn_tta = None
    if "zerodiff_tta" in methods or "zerodiffpp" in methods:
        t = time.perf_counter()
        tta = adapt_to_pool(models, f0, probs0, ctx.blocks["train"], data.train_y,
                            dev(data.train_x),
                            dev(data.train_c), pool_blocks, pool_x, pool_c, ctx.class_emb,
                            data.seen_classes, data.unseen_classes, cfg, ctx.seed)
        syn_tta = synthesise(ctx, tta.models, data.unseen_classes, cfg.eval.syn_per_class,
                             ctx.gen(TAG_SYN))
        diag["tta_rounds"], diag["pseudo_tta"] = tta.rounds, describe(tta.pseudo)
        timings["tta_adaptation"] = time.perf_counter() - t
        if "zerodiff_tta" in methods:
            results["zerodiff_tta"] = evaluate_method(ctx, syn_tta,
                                                      ev=ctx.method_cfg("zerodiff_tta").eval)
            generated["zerodiff_tta"] = (tta.models, None, None)
        timings["zerodiff_tta"] = time.perf_counter() - t

    seen_anchors = Anchors(dev(data.train_x), dev(data.train_c), np.asarray(data.train_y, np.int64),
                           np.ones(len(data.train_y), np.float32))
    after_tta = (tta.models, tta.pseudo, syn_tta) if tta is not None else (None, None, None)
    for name, gen_models, pseudo, syn in (("zerodiff_diffgen", models, pseudo0, syn0),
                                          ("zerodiffpp", *after_tta)):
        if name not in methods:
            continue
        t = time.perf_counter()
        un = pseudo.restrict(data.unseen_classes)
        rows = torch.as_tensor(un.index, dtype=torch.long, device=ctx.device)
        unseen_anchors = Anchors(pool_x[rows], pool_c[rows], un.y, un.p)
        own = ctx.method_cfg(name)      # its own DiffGen budgets and classifier settings
        dg_s, dg_u = run_diffgen(gen_models, own.diffgen, cfg.eval.syn_per_class, ctx.class_emb,
                                 data.seen_classes, data.unseen_classes, seen_anchors,
                                 unseen_anchors, ctx.gen(TAG_DIFFGEN))
        diag[f"diffgen_{name}"] = {"seen": dg_s.counts(), "unseen": dg_u.counts()}
        # under zsl_pool: unseen run_zsl_pool trains this method's ZSL classifier
        results[name] = evaluate_method(ctx, syn, dg_s, dg_u, own.eval,
                                        zsl=cfg.tta.zsl_pool != "unseen")
        generated[name] = (gen_models, dg_s, dg_u)
        timings[name] = time.perf_counter() - t
    if cfg.tta.zsl_pool == "unseen":
        t = time.perf_counter()
        diag["zsl_pool"] = run_zsl_pool(ctx, methods, syn0, tta, syn_tta, results)
        timings["zsl_pool"] = time.perf_counter() - t


def run_zsl_pool(ctx: Context, methods, syn0, tta, syn_tta, results: dict) -> dict:
    """``tta.zsl_pool: unseen`` (docs/protocol.md): the ZSL protocol pseudo-labels its own test
    set -- the test-unseen features, unlabelled -- over the unseen classes (METHOD.md 6.3) and
    each transductive method's ZSL half is retrained from it; GZSL is untouched.
    * + DiffTTA / ZeroDiff++: ``tta.rounds`` more DiffTTA rounds on that pool, starting from the
      GZSL-pool adaptation, f0 = + DiffTTA's ZSL classifier;
    * + DiffGen / ZeroDiff++: DiffGen's unseen anchors are that pool's pseudo-labels (ZeroDiff's
      ZSL classifier's for + DiffGen, the ZSL rounds' last ones for ZeroDiff++).
    Returns the diagnostics (pseudo-label counts; precision from test labels, scoring only)."""
    from ..diffgen import Anchors, run_diffgen
    from ..evaluation import with_zsl_from
    from ..tta import adapt_to_zsl_pool, select_pseudo_labels

    cfg, data = ctx.cfg, ctx.data
    unseen = np.asarray(data.unseen_classes)
    pool_b = ctx.blocks["test_unseen"]

    def dev(a):
        return torch.as_tensor(a, dtype=torch.float32, device=ctx.device)

    pool_x, pool_c = dev(data.test_unseen_x), dev(data.test_unseen_c)
    pool_y = np.asarray(data.test_unseen_y)   # scoring diagnostic only

    def describe(pseudo):
        prec = round(float(np.mean(pool_y[pseudo.index] == pseudo.y)), 4) if len(pseudo) else None
        return {"n": len(pseudo), "per_class": round(len(pseudo) / len(unseen), 2),
                "precision": prec}

    def refit_zsl(name, syn, gen_models=None, pseudo=None):
        """``name``'s ZSL half from ``syn`` [+ DiffGen unseen features from ``pseudo``]."""
        own = ctx.method_cfg(name)
        dg_u = None
        if pseudo is not None:
            rows = torch.as_tensor(pseudo.index, dtype=torch.long, device=ctx.device)
            _, dg_u = run_diffgen(gen_models, own.diffgen, cfg.eval.syn_per_class, ctx.class_emb,
                                  data.seen_classes, unseen, None,
                                  Anchors(pool_x[rows], pool_c[rows], pseudo.y, pseudo.p),
                                  ctx.gen(TAG_DIFFGEN))
        syn_x, syn_c, syn_y = syn
        _, _, syn_b, syn_y, syn_w = with_diffgen(ctx.blocks["train"], data.train_y,
                                                 ctx.blocks_of(syn_x, syn_c), syn_y.numpy(),
                                                 None, dg_u, ctx.blocks_of)
        results[name] = with_zsl_from(results[name], syn_b, syn_y, pool_b, pool_y, unseen,
                                      own.eval, ctx.gen(TAG_CLF), syn_weights=syn_w,
                                      progress=ctx.progress)

    diag = {}
    if "zerodiff_diffgen" in methods:
        pseudo0 = select_pseudo_labels(results["zerodiff"].zsl.log_probs(pool_b, cfg.eval.variant)
                                       .exp(), unseen, cfg.tta)
        diag["pseudo_f0"] = describe(pseudo0)
        refit_zsl("zerodiff_diffgen", syn0, ctx.models, pseudo0)
    if tta is not None:
        f0 = (results["zerodiff_tta"] if "zerodiff_tta" in results else evaluate_method(
            ctx, syn_tta, ev=ctx.method_cfg("zerodiff_tta").eval)).zsl
        zsl_tta = adapt_to_zsl_pool(tta.models, f0, dev(data.train_x), dev(data.train_c),
                                    data.train_y, pool_b, pool_x, pool_c, ctx.class_emb, unseen,
                                    cfg, ctx.seed)
        diag["tta_rounds"], diag["pseudo_tta"] = zsl_tta.rounds, describe(zsl_tta.pseudo)
        syn_z = synthesise(ctx, zsl_tta.models, unseen, cfg.eval.syn_per_class, ctx.gen(TAG_SYN))
        if "zerodiff_tta" in methods:
            refit_zsl("zerodiff_tta", syn_z)
        if "zerodiffpp" in methods:
            refit_zsl("zerodiffpp", syn_z, zsl_tta.models, zsl_tta.pseudo)
    return diag


PSEUDO_SOURCE = {"zerodiff_tta": "pseudo_tta", "zerodiff_diffgen": "pseudo_f0",
                 "zerodiffpp": "pseudo_tta"}


def method_metrics(name: str, result, diag: dict) -> dict:
    """Metrics of one method; the transductive ones add their unseen pseudo-labels (mean count
    per unseen class and precision -- test labels used for this diagnostic only)."""
    out = metrics_json(result)
    src = diag.get(PSEUDO_SOURCE.get(name, ""), {}).get("unseen")
    if src is not None:
        prec = src["precision"]
        out["pseudo"] = {"per_class": src["per_class"],
                         "precision": None if prec is None else round(100.0 * prec, 2)}
    return out


def write_outputs(args, ctx: Context, methods, results, generated, diag) -> None:
    eval_dir = Path(args.eval_dir)
    for name, (gen_models, dg_s, dg_u) in generated.items():
        write_generated(ctx, eval_dir / name / "generated.npz", gen_models, dg_s, dg_u)
    if diag:
        write_json(eval_dir / "zerodiffpp.json", diag)   # no timings: reruns are byte-identical
    write_json(args.metrics, {name: method_metrics(name, results[name], diag) for name in methods})
    frames = []
    for name in methods:
        f = per_class_csv_frame(results[name])
        f.insert(0, "method", name)
        frames.append(f)
    write_csv(args.per_class, pd.concat(frames, ignore_index=True))


def run_selection(args, ctx: Context) -> None:
    """The validation round for ZeroDiff and its three transductive methods
    (zerodiffpp.protocol: selection, diffgen_budget and, under ``eval.transductive_choice:
    own``, transductive): ``ctx.data`` is the validation view, ``ctx.models`` were trained on
    its train-classes only."""
    from ..protocol.diffgen_budget import PoolFeatures, select_diffgen
    from ..protocol.selection import ValidationSets, read_split, select_settings, write_selection
    from ..protocol.transductive import select_transductive

    cfg, d = ctx.cfg, ctx.data
    ctx.variants = tuple(cfg.eval.variant_candidates)
    ctx.build_real_blocks()
    b = ctx.blocks
    sets = ValidationSets(b["train"], np.asarray(d.train_y), b["test_seen"],
                          np.asarray(d.test_seen_y), b["test_unseen"], np.asarray(d.test_unseen_y),
                          np.asarray(d.seen_classes), np.asarray(d.unseen_classes))

    def synthesise_with(models, n: int):
        x, c, y = synthesise(ctx, models, d.unseen_classes, n, ctx.gen(TAG_SYN))
        return ctx.blocks_of(x, c), y.numpy()

    def synthesise_val(n: int):
        return synthesise_with(ctx.models, n)

    split = read_split(Path(args.prepared))
    sel = select_settings(METHOD_KEY, sets, synthesise_val, cfg, ctx.seed, ctx.variants,
                          pseudo_labels=True, split=split)
    feats = PoolFeatures(*(torch.as_tensor(a, dtype=torch.float32, device=ctx.device) for a in (
        d.train_x, d.train_c, np.concatenate([d.test_seen_x, d.test_unseen_x]),
        np.concatenate([d.test_seen_c, d.test_unseen_c]))))
    own = cfg.eval.transductive_choice == "own"
    sel.diffgen = select_diffgen(sel, sets, feats, ctx.models, ctx.class_emb, synthesise_val,
                                 ctx.blocks_of, cfg, ctx.seed, lambda: ctx.gen(TAG_DIFFGEN),
                                 zsl=own).as_json()
    if own:
        sel.transductive = select_transductive(sel, sets, feats, ctx.models, ctx.class_emb,
                                               synthesise_with, ctx.blocks_of, cfg, ctx.seed,
                                               lambda: ctx.gen(TAG_DIFFGEN)).as_json()
    write_selection(sel, args.select, args.select_details)


@run_stage
def main(argv=None) -> None:
    parser = stage_parser("evaluate", __doc__)
    parser.add_argument("--prepared", default="runs/prepared", help="prepare stage output dir")
    parser.add_argument("--drg", default="runs/drg", help="DRG checkpoint dir")
    parser.add_argument("--dfg", default="runs/dfg", help="DFG checkpoint dir")
    parser.add_argument("--metrics", default="metrics/zerodiff.json", help="metrics JSON")
    parser.add_argument("--per-class", default="runs/eval/per_class.csv", help="per-class CSV")
    parser.add_argument("--eval-dir", default="runs/eval",
                        help="directory for <method>/generated.npz and zerodiffpp.json")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated subset of {', '.join(METHODS)}")
    parser.add_argument("--best-of-test", action="store_true",
                        help="also report the leaky best-of-test numbers (diagnostic)")
    add_selection_args(parser, "metrics/selection/zerodiff.json",
                       "validation round: --prepared/--drg/--dfg are the validation view "
                       "and its generators; choose the protocol settings, write them to OUT")
    args = parser.parse_args(argv)

    methods = parse_methods(args.methods)
    raw_cfg = cfg = load_config(args.params, sections=SECTIONS)
    chosen = None
    if args.select is None:
        chosen = load_chosen(cfg, args.selection, METHOD_KEY)
        cfg = method_config(raw_cfg, chosen, METHOD_KEY)
    use_dg = "zerodiff_diffgen" in methods or "zerodiffpp" in methods
    if use_dg:
        from ..diffgen import validate_start_levels
        validate_start_levels(cfg.diffgen.start_levels, cfg.diffusion.n_steps)
    device = runtime.setup(cfg.runtime, cfg.train.seed)
    data = PreparedData.load(Path(args.prepared) / "prepared.npz")

    from ..synthesis import load_models  # heavy import only once inputs are valid

    models = load_models(args.drg, args.dfg, device)
    if use_dg:   # the checkpoint's schedule is the one that runs
        validate_start_levels(cfg.diffgen.start_levels, models.schedule.n_steps)
    variant = cfg.eval.variant

    def bar(it):
        return runtime.progress(it, desc=f"classifier {variant}", enabled=cfg.runtime.progress)

    t0 = time.perf_counter()
    ctx = Context(cfg, data, models, device,
                  torch.as_tensor(data.class_emb, dtype=torch.float32, device=device), {},
                  cfg.train.seed, bar, args.best_of_test, chosen=chosen, raw_cfg=raw_cfg)
    if args.select is not None:
        run_selection(args, ctx)
        print(f"evaluate --select: {time.perf_counter() - t0:.1f} s -> {args.select}")
        return
    ctx.build_real_blocks()

    # ZeroDiff (inductive); its GZSL classifier is f0 of the transductive methods.
    syn0 = synthesise(ctx, models, data.unseen_classes, cfg.eval.syn_per_class, ctx.gen(TAG_SYN))
    results = {"zerodiff": evaluate_method(ctx, syn0)}
    generated = {"zerodiff": (models, None, None)}
    timings, diag = {"zerodiff": time.perf_counter() - t0}, {}
    if len(methods) > 1:
        run_transductive(ctx, methods, syn0, results["zerodiff"].gzsl, results, generated, diag,
                         timings)
    t = time.perf_counter()
    write_outputs(args, ctx, methods, results, generated, diag)
    timings["outputs"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    for name in methods:
        s = metrics_json(results[name])
        print(f"evaluate {name:17s} ({variant}, {cfg.eval.sampling}): T1 {s['zsl']['t1']:6.2f}  "
              f"U {s['gzsl']['u']:6.2f}  S {s['gzsl']['s']:6.2f}  H {s['gzsl']['h']:6.2f}")
    print("evaluate: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
          + f" -> {args.metrics}")


if __name__ == "__main__":
    raise SystemExit(main())
