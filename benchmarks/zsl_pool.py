"""ZSL T1 of the transductive methods with DiffTTA on the ZSL test pool (METHOD.md 6.3, "ZSL:
over unseen") instead of the GZSL pool the pipeline adapts on.  Diagnostic: nothing is written.

    python benchmarks/zsl_pool.py --cell runs/sweep/zerodiff-1.0-2 [--cell ...]
        [--raw data/raw] [--features data/features] [--rounds 2] [--without-transductive-choice]

The pipeline (stages/evaluate.py) runs DiffTTA once, on the GZSL pool (test-seen ∪ test-unseen,
unlabelled, pseudo-labels from ZeroDiff's calibrated GZSL classifier), and the ZSL T1 of
+ DiffTTA and ZeroDiff++ is the ZSL classifier trained on that adapted generator's features.
METHOD.md 6.3 reads "p = softmax(f0(x)) ... (GZSL: over all classes; ZSL: over unseen)", i.e. a
separate adaptation for the ZSL protocol on its own test set (test-unseen only).  For each
ZeroDiff sweep cell this script reruns the cell's evaluation (same data, generators, selection
file, seeds: the ``pipeline`` column equals the cell's metrics) and adds

* ``unseen pool``: DiffTTA on test-unseen only, f0 = ZeroDiff's ZSL classifier, each round's
  labeller = a ZSL classifier (ZeroDiff's ZSL epochs) on regenerated unseen features, replay of
  the real seen-train samples, the cell's ``tta`` settings; then + DiffTTA's ZSL classifier on
  the adapted generator's features, ZeroDiff++'s with DiffGen unseen features from the adapted
  generator and its final pseudo-labels as anchors, + DiffGen's with f0's pseudo-labels and the
  original generator;
* ``GZSL then unseen pool``: the same ZSL-pool rounds started from the pipeline's GZSL-adapted
  generator, f0 = the pipeline's + DiffTTA ZSL classifier (ZeroDiff++ then uses its DiffGen).

Every classifier uses the pipeline's seeds for that method; test labels only score.
``--rounds`` overrides ``tta.rounds`` for the ZSL-pool adaptations only (the pipeline column
keeps the cell's).  Cells are prepared as ``calibration_ceiling.py --cell`` prepares them.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


class ZSLLabeller:
    """DiffTTA's labeller for the ZSL protocol: regenerate the unseen features with the adapted
    models, retrain a ZSL classifier (unseen classes only) and return its probabilities on the
    test-unseen pool.  Same synthesis and classifier seeds every round."""

    def __init__(self, ctx, pool_blocks, syn_seed: int, clf_seed: int):
        self.ctx, self.pool_blocks = ctx, pool_blocks
        self.syn_seed, self.clf_seed = syn_seed, clf_seed

    def __call__(self, models):
        import torch

        from zerodiffpp.classifier import train_classifier
        from zerodiffpp.evaluation import ProtocolRun, build_blocks, compact_labels, select, zsl_epochs
        from zerodiffpp.synthesis import generate

        ctx, ev = self.ctx, self.ctx.cfg.eval
        unseen = np.asarray(ctx.data.unseen_classes)
        x, c, y = generate(models, ctx.class_emb, unseen, ev.syn_per_class, ev.sampling,
                           torch.Generator().manual_seed(self.syn_seed))
        blocks = build_blocks(x, c, models.Dec, (ev.variant,), ctx.device)
        res = train_classifier(select(blocks, ev.variant), compact_labels(y, unseen, "synthetic"),
                               len(unseen), epochs=zsl_epochs(ev), lr=ev.classifier_lr,
                               batch_size=ev.classifier_batch,
                               generator=torch.Generator().manual_seed(self.clf_seed))
        return ProtocolRun(res.model, unseen).log_probs(self.pool_blocks, ev.variant).exp()


def cell_rows(cell: Path, args) -> list[tuple]:
    import torch

    from zerodiffpp import runtime
    from zerodiffpp.config import load_config
    from zerodiffpp.data.prepared import PreparedData
    from zerodiffpp.diffgen import Anchors, run_diffgen
    from zerodiffpp.protocol.selection import load_chosen, method_config
    from zerodiffpp.seeds import TAG_DIFFGEN, TAG_SYN, TAG_TTA, TAG_TTA_CLF, derived_seed
    from zerodiffpp.stages import evaluate as ev_stage
    from zerodiffpp.synthesis import load_models
    from zerodiffpp.tta import ReplaySet, run_difftta, select_pseudo_labels
    from calibration_ceiling import prepare_cell

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = prepare_cell(cell, tmp, argparse.Namespace(
            raw=args.raw, features=args.features, without_diffgen_choice=False,
            without_transductive_choice=args.without_transductive_choice))
        raw = load_config(root / "params.yaml", sections=ev_stage.SECTIONS)
        chosen = load_chosen(raw, tmp / "selection.json", ev_stage.METHOD_KEY)
        cfg = method_config(raw, chosen, ev_stage.METHOD_KEY)
        device = runtime.setup(cfg.runtime, cfg.train.seed)
        data = PreparedData.load(root / "prepared" / "prepared.npz")
        models = load_models(root / "drg", root / "dfg", device)
    ctx = ev_stage.Context(cfg, data, models, device,
                           torch.as_tensor(data.class_emb, dtype=torch.float32, device=device), {},
                           cfg.train.seed, lambda it: it, False, chosen=chosen, raw_cfg=raw)
    ctx.build_real_blocks()
    syn0 = ev_stage.synthesise(ctx, models, data.unseen_classes, cfg.eval.syn_per_class,
                               ctx.gen(TAG_SYN))
    res = {"zerodiff": ev_stage.evaluate_method(ctx, syn0)}
    generated: dict = {}
    ev_stage.run_transductive(ctx, ev_stage.METHODS, syn0, res["zerodiff"].gzsl, res, generated,
                              {}, {})

    def dev(a):
        return torch.as_tensor(a, dtype=torch.float32, device=device)

    unseen = np.asarray(data.unseen_classes)
    pool_b, pool_x, pool_c = ctx.blocks["test_unseen"], dev(data.test_unseen_x), dev(data.test_unseen_c)
    tta_cfg = cfg.tta if args.rounds is None else dataclasses.replace(cfg.tta, rounds=args.rounds)
    replay = ReplaySet(dev(data.train_x), dev(data.train_c),
                       torch.as_tensor(np.asarray(data.train_y), dtype=torch.int64, device=device))
    seen_anchors = Anchors(dev(data.train_x), dev(data.train_c), np.asarray(data.train_y, np.int64),
                           np.ones(len(data.train_y), np.float32))

    def zsl_t1(gen_models, pseudo=None, method="zerodiff_tta"):
        """The ZSL T1 of ``method``'s final classifiers on ``gen_models``' unseen features
        [+ DiffGen unseen features from ``pseudo``'s anchors]."""
        syn = ev_stage.synthesise(ctx, gen_models, unseen, cfg.eval.syn_per_class, ctx.gen(TAG_SYN))
        own = ctx.method_cfg(method)
        dg_s = dg_u = None
        if pseudo is not None:
            rows = torch.as_tensor(pseudo.index, dtype=torch.long, device=device)
            dg_s, dg_u = run_diffgen(gen_models, own.diffgen, cfg.eval.syn_per_class,
                                     ctx.class_emb, data.seen_classes, unseen, seen_anchors,
                                     Anchors(pool_x[rows], pool_c[rows], pseudo.y, pseudo.p),
                                     ctx.gen(TAG_DIFFGEN))
        return ev_stage.evaluate_method(ctx, syn, dg_s, dg_u, own.eval).zsl_t1

    def adapt(start_models, f0):
        labeller = ZSLLabeller(ctx, pool_b, derived_seed(ctx.seed, TAG_SYN),
                               derived_seed(ctx.seed, TAG_TTA_CLF))
        return run_difftta(start_models, pool_x, pool_c, f0.log_probs(pool_b, cfg.eval.variant).exp(),
                           unseen, labeller, ctx.class_emb, replay, tta_cfg, cfg.dfg,
                           torch.Generator().manual_seed(derived_seed(ctx.seed, TAG_TTA)),
                           log=lambda s: None)

    t = time.perf_counter()
    f0 = res["zerodiff"].zsl
    pseudo0 = select_pseudo_labels(f0.log_probs(pool_b, cfg.eval.variant).exp(), unseen, tta_cfg)
    on_unseen = adapt(models, f0)
    then = adapt(generated["zerodiff_tta"][0], res["zerodiff_tta"].zsl)
    rows = [("zerodiff", res["zerodiff"].zsl_t1, None, None),
            ("zerodiff_tta", res["zerodiff_tta"].zsl_t1, zsl_t1(on_unseen.models),
             zsl_t1(then.models)),
            ("zerodiff_diffgen", res["zerodiff_diffgen"].zsl_t1,
             zsl_t1(models, pseudo0, "zerodiff_diffgen"), None),
            ("zerodiffpp", res["zerodiffpp"].zsl_t1,
             zsl_t1(on_unseen.models, on_unseen.pseudo, "zerodiffpp"),
             zsl_t1(then.models, then.pseudo, "zerodiffpp"))]
    print(f"{cell}: ZSL-pool adaptations and classifiers {time.perf_counter() - t:.1f} s "
          f"({tta_cfg.rounds} rounds)", file=sys.stderr)
    return [(str(cell), *r) for r in rows]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", action="append", required=True,
                        help="a finished zerodiff sweep cell (repeatable)")
    parser.add_argument("--raw", default="data/raw")
    parser.add_argument("--features", default="data/features")
    parser.add_argument("--without-transductive-choice", action="store_true",
                        help="drop the selection's tta / zerodiffpp blocks (as calibration_ceiling.py)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="DiffTTA rounds of the ZSL-pool adaptations (default: tta.rounds)")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: must be >= 1")
    sys.path.insert(0, str(Path(__file__).resolve().parent))   # calibration_ceiling.prepare_cell
    rows = [r for cell in args.cell for r in cell_rows(Path(cell), args)]

    def pct(v):
        return f"{100 * v:8.2f}" if v is not None else f"{'':8s}"

    print("ZSL T1 (%): pipeline = DiffTTA on the GZSL pool (committed); unseen = DiffTTA on "
          "test-unseen only (METHOD.md 6.3); then = GZSL pool, then test-unseen")
    print(f"{'cell':34s} {'method':18s} {'pipeline':>8s} {'unseen':>8s} {'then':>8s}")
    for cell, method, *vals in rows:
        print(f"{cell:34s} {method:18s} " + " ".join(pct(v) for v in vals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
