"""ZSL T1 of the transductive methods under the three readings of DiffTTA / DiffGen for the ZSL
protocol, per ZeroDiff sweep cell.  Diagnostic: nothing is written.

    python benchmarks/zsl_pool.py --cell runs/sweep/zerodiff-1.0-2 [--cell ...]
        [--raw data/raw] [--features data/features] [--without-transductive-choice]

For each cell the cell's evaluation is rerun (same data, generators, selection file and seeds,
prepared as ``calibration_ceiling.py --cell`` prepares them) under

* ``gzsl``: ``tta.zsl_pool: gzsl`` -- the ZSL classifiers use the GZSL-pool adaptation (test-seen
  ∪ test-unseen, pseudo-labels over all classes) and the GZSL pool's unseen pseudo-labels;
* ``unseen``: ``tta.zsl_pool: unseen`` (the default) -- the ZSL protocol pseudo-labels its own
  test set (test-unseen) over the unseen classes, starting from the GZSL adaptation
  (stages/evaluate.py ``run_zsl_pool``);
* ``literal``: METHOD.md 6.3 read literally -- DiffTTA on test-unseen only, starting from the
  *unadapted* generator with f0 = ZeroDiff's ZSL classifier (+ DiffGen as under ``unseen``, so
  its column is omitted).

Every classifier uses the pipeline's seeds for its method; test labels only score.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import numpy as np


def cell_rows(cell: Path, args) -> list[tuple]:
    import torch

    from zerodiffpp import runtime
    from zerodiffpp.config import load_config
    from zerodiffpp.data.prepared import PreparedData
    from zerodiffpp.diffgen import Anchors, run_diffgen
    from zerodiffpp.protocol.selection import load_chosen, method_config
    from zerodiffpp.seeds import TAG_DIFFGEN, TAG_SYN
    from zerodiffpp.stages import evaluate as ev_stage
    from zerodiffpp.synthesis import load_models
    from zerodiffpp.tta import adapt_to_zsl_pool
    from calibration_ceiling import prepare_cell

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        root = prepare_cell(cell, tmp, argparse.Namespace(
            raw=args.raw, features=args.features, without_diffgen_choice=False,
            without_transductive_choice=args.without_transductive_choice))
        raw = load_config(root / "params.yaml", sections=ev_stage.SECTIONS)
        chosen = load_chosen(raw, tmp / "selection.json", ev_stage.METHOD_KEY)
        device = runtime.setup(raw.runtime, raw.train.seed)
        data = PreparedData.load(root / "prepared" / "prepared.npz")
        models = load_models(root / "drg", root / "dfg", device)
    class_emb = torch.as_tensor(data.class_emb, dtype=torch.float32, device=device)
    t1 = {}
    for pool in ("gzsl", "unseen"):
        raw_p = dataclasses.replace(raw, tta=dataclasses.replace(raw.tta, zsl_pool=pool))
        cfg = method_config(raw_p, chosen, ev_stage.METHOD_KEY)
        ctx = ev_stage.Context(cfg, data, models, device, class_emb, {}, cfg.train.seed,
                               lambda it: it, False, chosen=chosen, raw_cfg=raw_p)
        ctx.build_real_blocks()
        syn0 = ev_stage.synthesise(ctx, models, data.unseen_classes, cfg.eval.syn_per_class,
                                   ctx.gen(TAG_SYN))
        res = {"zerodiff": ev_stage.evaluate_method(ctx, syn0)}
        ev_stage.run_transductive(ctx, ev_stage.METHODS, syn0, res["zerodiff"].gzsl, res, {},
                                  {}, {})
        t1[pool] = {name: r.zsl_t1 for name, r in res.items()}

    # the literal reading: the ZSL-pool rounds from the unadapted generator, f0 = ZeroDiff's ZSL
    def dev(a):
        return torch.as_tensor(a, dtype=torch.float32, device=device)

    unseen = np.asarray(data.unseen_classes)
    pool_b, pool_x, pool_c = ctx.blocks["test_unseen"], dev(data.test_unseen_x), dev(data.test_unseen_c)
    literal = adapt_to_zsl_pool(models, res["zerodiff"].zsl, dev(data.train_x), dev(data.train_c),
                                data.train_y, pool_b, pool_x, pool_c, class_emb, unseen, cfg,
                                ctx.seed, log=lambda s: None)
    syn = ev_stage.synthesise(ctx, literal.models, unseen, cfg.eval.syn_per_class, ctx.gen(TAG_SYN))
    lit = {"zerodiff_tta": ev_stage.evaluate_method(
        ctx, syn, ev=ctx.method_cfg("zerodiff_tta").eval).zsl_t1}
    own = ctx.method_cfg("zerodiffpp")
    rows = torch.as_tensor(literal.pseudo.index, dtype=torch.long, device=device)
    _, dg_u = run_diffgen(literal.models, own.diffgen, cfg.eval.syn_per_class, class_emb,
                          data.seen_classes, unseen, None,
                          Anchors(pool_x[rows], pool_c[rows], literal.pseudo.y, literal.pseudo.p),
                          ctx.gen(TAG_DIFFGEN))
    lit["zerodiffpp"] = ev_stage.evaluate_method(ctx, syn, None, dg_u, own.eval).zsl_t1
    return [(str(cell), name, t1["gzsl"][name], t1["unseen"][name], lit.get(name))
            for name in ev_stage.METHODS]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", action="append", required=True,
                        help="a finished zerodiff sweep cell (repeatable)")
    parser.add_argument("--raw", default="data/raw")
    parser.add_argument("--features", default="data/features")
    parser.add_argument("--without-transductive-choice", action="store_true",
                        help="drop the selection's tta / zerodiffpp blocks (as calibration_ceiling.py)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))   # calibration_ceiling.prepare_cell
    rows = [r for cell in args.cell for r in cell_rows(Path(cell), args)]

    def pct(v):
        return f"{100 * v:8.2f}" if v is not None else f"{'':8s}"

    print("ZSL T1 (%) by tta.zsl_pool: gzsl | unseen (default) | literal = METHOD.md 6.3 from "
          "the unadapted generator")
    print(f"{'cell':34s} {'method':18s} {'gzsl':>8s} {'unseen':>8s} {'literal':>8s}")
    for cell, method, *vals in rows:
        print(f"{cell:34s} {method:18s} " + " ".join(pct(v) for v in vals))
    groups: dict = {}     # cells that differ only in their trailing seed: mean +- std (ddof 1)
    for cell, method, *vals in rows:
        groups.setdefault((cell.rsplit("-", 1)[0], method), []).append(vals)
    print(f"\nmean +- std over seeds\n{'cells':34s} {'method':18s} {'gzsl':>13s} "
          f"{'unseen':>13s} {'literal':>13s}")
    for (stem, method), vals in groups.items():
        cols = []
        for j in range(3):
            v = [100 * r[j] for r in vals if r[j] is not None]
            sd = np.std(v, ddof=1) if len(v) > 1 else 0.0
            cols.append(f"{np.mean(v):6.1f} +- {sd:4.1f}" if v else f"{'':13s}")
        print(f"{stem + '-*':34s} {method:18s} " + " ".join(cols))
    return 0


if __name__ == "__main__":
    sys.exit(main())
