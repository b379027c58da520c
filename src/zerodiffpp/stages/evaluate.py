"""Evaluate ZeroDiff: synthesise unseen features, train the final classifiers, write T1/U/S/H.

``python -m zerodiffpp.stages.evaluate [--params params.yaml] [--prepared runs/prepared]
[--drg runs/drg] [--dfg runs/dfg] [--metrics metrics/zerodiff.json]
[--per-class runs/eval/per_class.csv] [--best-of-test]``

Clean protocol (METHOD.md 4.5): ``eval.syn_per_class`` synthetic features per unseen class
(``eval.sampling`` mode, seeded from ``train.seed``), classifiers on the ``eval.variant``
input with a fixed number of epochs, last-epoch model, no test-set selection.

Outputs
* metrics JSON (percent, 2 decimals), for ``dvc metrics diff``::

    {"zerodiff": {"zsl": {"t1": ..}, "gzsl": {"u": .., "s": .., "h": ..}}}

  ``--best-of-test`` adds ``"leaky_best_of_test"`` inside ``zerodiff``: the paper's
  test-selected maximum over classifier epochs (METHOD.md 4.5), a diagnostic only.
* per-class CSV: variant, protocol (zsl|gzsl), split (seen|unseen), class_id (0-based),
  n_test, n_correct, accuracy (percent).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from .. import runtime
from ..config import load_config
from ..data.prepared import PreparedData
from ..evaluation import build_blocks, evaluate_protocols, metrics_json, per_class_csv_frame
from ..io import write_csv, write_json
from .common import run_stage

METHOD_KEY = "zerodiff"


def derived_seed(seed: int, tag: int) -> int:
    """A seed for an independent stream (synthesis vs classifier) from ``train.seed``."""
    return int(np.random.SeedSequence([seed, tag]).generate_state(1, np.uint64)[0] % 2**63)


@run_stage
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m zerodiffpp.stages.evaluate",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml", help="parameter file")
    parser.add_argument("--prepared", default="runs/prepared", help="prepare stage output dir")
    parser.add_argument("--drg", default="runs/drg", help="DRG checkpoint dir")
    parser.add_argument("--dfg", default="runs/dfg", help="DFG checkpoint dir")
    parser.add_argument("--metrics", default="metrics/zerodiff.json", help="metrics JSON")
    parser.add_argument("--per-class", default="runs/eval/per_class.csv", help="per-class CSV")
    parser.add_argument("--best-of-test", action="store_true",
                        help="also report the leaky best-of-test numbers (diagnostic)")
    args = parser.parse_args(argv)

    cfg = load_config(args.params, sections=("runtime", "train", "eval"))
    device = runtime.setup(cfg.runtime, cfg.train.seed)
    data = PreparedData.load(Path(args.prepared) / "prepared.npz")

    from ..synthesis import generate, load_models  # heavy import only once inputs are valid

    models = load_models(args.drg, args.dfg, device)
    dec = models.Dec
    # CPU generators: the same noise and shuffles whatever the device.
    syn_gen = torch.Generator().manual_seed(derived_seed(cfg.train.seed, 0))
    class_emb = torch.as_tensor(data.class_emb, dtype=torch.float32, device=models.device)
    with torch.no_grad():
        syn_x, syn_c, syn_y = generate(models, class_emb, data.unseen_classes,
                                       cfg.eval.syn_per_class, cfg.eval.sampling, syn_gen)

    variants = (cfg.eval.variant,)
    blocks = dict(
        train=build_blocks(data.train_x, data.train_c, dec, variants, device),
        syn=build_blocks(syn_x.detach(), syn_c.detach(), dec, variants, device),
        test_seen=build_blocks(data.test_seen_x, data.test_seen_c, dec, variants, device),
        test_unseen=build_blocks(data.test_unseen_x, data.test_unseen_c, dec, variants, device))

    def bar(it):
        return runtime.progress(it, desc=f"classifier {cfg.eval.variant}",
                                enabled=cfg.runtime.progress)

    clf_gen = torch.Generator().manual_seed(derived_seed(cfg.train.seed, 1))
    result = evaluate_protocols(
        blocks["train"], data.train_y, blocks["syn"], syn_y, blocks["test_seen"], data.test_seen_y,
        blocks["test_unseen"], data.test_unseen_y, data.seen_classes, data.unseen_classes,
        cfg.eval, clf_gen, best_of_test=args.best_of_test, progress=bar)

    write_json(args.metrics, {METHOD_KEY: metrics_json(result)})
    write_csv(args.per_class, per_class_csv_frame(result))
    s = metrics_json(result)
    print(f"evaluate ({cfg.eval.variant}, {cfg.eval.sampling}): T1 {s['zsl']['t1']:.2f}  "
          f"U {s['gzsl']['u']:.2f}  S {s['gzsl']['s']:.2f}  H {s['gzsl']['h']:.2f} "
          f"-> {args.metrics}")


if __name__ == "__main__":
    raise SystemExit(main())
