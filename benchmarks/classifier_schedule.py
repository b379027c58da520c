"""How many classifier epochs does the final evaluation need?  A label-free convergence study.

The final softmax classifier (METHOD.md 4.3) is the largest cost of an evaluation: its
FLOPs are ``4 x epochs x rows x input width x classes``, so at AWA2 scale only the number of
epochs can move it.  This script measures, on a trained pipeline (``runs/``), how much the
classifier's *predictions* change when it is trained for fewer epochs, and compares that with
how much they change between two classifier seeds at the reference schedule:

    python benchmarks/classifier_schedule.py --epochs 1,2,3,5,10,25 --seeds 3

For every ``epochs`` value and seed it trains the ZeroDiff GZSL and ZSL classifiers exactly as
the evaluate stage does (same synthetic set, ``eval`` settings except the number of epochs) and
reports

* ``agree GZSL`` / ``agree ZSL``: mean fraction of test samples (seen and unseen pooled for
  GZSL; unseen for ZSL) on which the classifier predicts the same class as a reference-schedule
  classifier of a *different* seed.  The reference row is the seed-to-seed agreement of the
  reference schedule itself: the "noise" level.  **No test label is read for this.**
* ``loss``: the last epoch's mean training loss.
* T1 / U / S / H (mean ± std over seeds) on the test labels, printed as a consequence check
  after the schedule is chosen by the label-free rule, never to choose it.

Rule used for ``eval.classifier_epochs`` (fixed before looking at T1/U/S/H): the smallest
number of epochs whose agreement with the reference is at least the reference's own seed-to-seed
agreement minus one of its standard deviations, for both protocols.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import time
from pathlib import Path

import numpy as np
import torch

from zerodiffpp import runtime
from zerodiffpp.config import load_config
from zerodiffpp.data.prepared import PreparedData
from zerodiffpp.evaluation import concat_inputs, evaluate_protocols
from zerodiffpp.seeds import TAG_SYN, derived_seed
from zerodiffpp.stages.evaluate import SECTIONS, Context, synthesise
from zerodiffpp.synthesis import load_models


def agreement(preds_a, preds_b, same_seed_ok: bool) -> tuple[float, float]:
    """Mean/std over seed pairs (i != j unless ``same_seed_ok``) of the share of equal labels."""
    vals = [float(np.mean(a == b)) for (i, a), (j, b) in itertools.product(enumerate(preds_a), enumerate(preds_b))
            if same_seed_ok or i != j]
    return float(np.mean(vals)), float(np.std(vals))


def epoch_list(text: str) -> list[int]:
    """``--epochs``: comma-separated positive integers (at least two: the largest is the reference)."""
    try:
        values = sorted({int(e) for e in text.split(",") if e.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected comma-separated integers, e.g. 1,5,25") from None
    if len(values) < 2 or values[0] < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: need at least two distinct epoch counts >= 1")
    return values


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--prepared", default="runs/prepared")
    p.add_argument("--drg", default="runs/drg")
    p.add_argument("--dfg", default="runs/dfg")
    p.add_argument("--epochs", type=epoch_list, default="1,2,3,5,10,25",
                   help="comma-separated; the largest is the reference")
    p.add_argument("--seeds", type=int, default=3, help="classifier seeds per schedule (>= 2)")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    if args.seeds < 2:
        sys.exit("error: --seeds must be >= 2 (agreement is measured between different seeds)")
    epochs = args.epochs
    torch.set_num_threads(args.threads)

    cfg = load_config(args.params, sections=SECTIONS)
    device = runtime.setup(cfg.runtime, cfg.train.seed)
    data = PreparedData.load(Path(args.prepared) / "prepared.npz")
    models = load_models(args.drg, args.dfg, device)
    ctx = Context(cfg, data, models, device, torch.as_tensor(data.class_emb, dtype=torch.float32, device=device),
                  {}, cfg.train.seed, None, False)
    ctx.build_real_blocks()
    syn_x, syn_c, syn_y = synthesise(ctx, models, data.unseen_classes, cfg.eval.syn_per_class, ctx.gen(TAG_SYN))
    syn = ctx.blocks_of(syn_x, syn_c)
    pool = concat_inputs(ctx.blocks["test_seen"], ctx.blocks["test_unseen"])
    variant = cfg.eval.variant
    n_rows = len(data.train_y) + len(syn_y)
    print(f"{args.prepared}: {n_rows} GZSL training rows, "
          f"variant {variant}, batch {cfg.eval.classifier_batch}, lr {cfg.eval.classifier_lr}, "
          f"{len(data.seen_classes)} seen / {len(data.unseen_classes)} unseen classes")

    runs = {}
    for e in epochs:
        ecfg = dataclasses.replace(cfg.eval, classifier_epochs=e)
        runs[e] = []
        for s in range(args.seeds):
            t = time.perf_counter()
            gen = torch.Generator().manual_seed(derived_seed(cfg.train.seed, 1000 + s))
            r = evaluate_protocols(ctx.blocks["train"], data.train_y, syn, syn_y.numpy(), ctx.blocks["test_seen"],
                                   data.test_seen_y, ctx.blocks["test_unseen"], data.test_unseen_y,
                                   data.seen_classes, data.unseen_classes, ecfg, gen)
            runs[e].append(dict(gzsl=r.gzsl.predict(pool, variant), zsl=r.zsl.predict(ctx.blocks["test_unseen"], variant),
                                scores=r.scores(), seconds=time.perf_counter() - t))
    ref = epochs[-1]
    ref_g = agreement([r["gzsl"] for r in runs[ref]], [r["gzsl"] for r in runs[ref]], False)
    ref_z = agreement([r["zsl"] for r in runs[ref]], [r["zsl"] for r in runs[ref]], False)
    print(f"\nreference: {ref} epochs; seed-to-seed agreement GZSL {ref_g[0]:.4f} ± {ref_g[1]:.4f}, "
          f"ZSL {ref_z[0]:.4f} ± {ref_z[1]:.4f}")
    print("| epochs | agree GZSL | agree ZSL | s / run | T1 | U | S | H |")
    print("|---|---|---|---|---|---|---|---|")
    chosen = None
    for e in epochs:
        g = agreement([r["gzsl"] for r in runs[e]], [r["gzsl"] for r in runs[ref]], False)
        z = agreement([r["zsl"] for r in runs[e]], [r["zsl"] for r in runs[ref]], False)
        if chosen is None and g[0] >= ref_g[0] - ref_g[1] and z[0] >= ref_z[0] - ref_z[1]:
            chosen = e
        sc = {k: np.array([r["scores"][k] for r in runs[e]]) * 100 for k in ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h")}
        cells = " | ".join(f"{sc[k].mean():.2f} ± {sc[k].std():.2f}" for k in ("zsl_t1", "gzsl_u", "gzsl_s", "gzsl_h"))
        secs = np.mean([r["seconds"] for r in runs[e]])
        print(f"| {e} | {g[0]:.4f} ± {g[1]:.4f} | {z[0]:.4f} ± {z[1]:.4f} | {secs:.1f} | {cells} |")
    print(f"\nsmallest schedule within the reference's seed noise (label-free rule): {chosen} epochs")


if __name__ == "__main__":
    main()
