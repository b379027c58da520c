"""Train and evaluate one baseline (f-CLSWGAN or f-VAEGAN) in the ZeroDiff harness.

``python -m zerodiffpp.stages.baseline --method fclswgan|fvaegan [--params params.yaml]
[--prepared runs/prepared] [--out runs/baselines/<method>]
[--metrics metrics/baselines/<method>.json] [--history plots/history/<method>.csv]
[--best-of-test]``

Reads ``runtime``, ``train``, ``eval``, ``baselines`` and ``spurious`` from the parameter file;
Same prepared features, splits and seen
fraction as ZeroDiff; the final classifiers follow the same clean protocol (METHOD.md 4.3-4.5,
``eval.*``) on input variant V (visual features only: the baselines have no SC
representation, so ``eval.variant`` is not used here).

Outputs
* ``<out>/model.pt``       networks + meta (loads with ``weights_only=True``)
* ``<out>/generated.npz``  ``seen_x, seen_y, unseen_x, unseen_y``: ``spurious.syn_per_class``
  generated features (float32) per seen and per unseen class, 0-based class ids -- the input
  of the spuriousness stage
* ``<out>/per_class.csv``  per-class accuracies (as the evaluate stage writes them)
* metrics JSON ``{"<method>": {"zsl": {"t1"}, "gzsl": {"u", "s", "h"}}}`` (percent, 2 decimals)
* per-epoch history CSV
The output directory is replaced as a whole, only once everything is written.  While training,
per-epoch checkpoints live beside it in ``<out>.resume/model.pt`` (as for DRG/DFG, see
docs/reliability.md): an interrupted run exits 130 and its rerun resumes; the folder is removed
once the outputs are written.
"""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from .. import runtime
from ..baselines import BASELINES, get_baseline
from ..config import ConfigError, load_config
from ..data.prepared import PreparedData
from ..io import save_checkpoint, write_csv, write_json, write_npz
from ..protocol.selection import add_selection_args, resolve
from ..seeds import TAG_CLF, TAG_SPURIOUS, TAG_SYN, derived_seed
from .common import atomic_dir, run_stage, stage_parser

VARIANT = "V"            # baselines generate visual features only


def parse_args(argv=None) -> argparse.Namespace:
    parser = stage_parser("baseline", __doc__)
    parser.add_argument("--method", required=True, help=f"one of {', '.join(BASELINES)}")
    parser.add_argument("--prepared", default="runs/prepared", help="prepare stage output dir")
    parser.add_argument("--out", default=None, help="output dir (default runs/baselines/<method>)")
    parser.add_argument("--metrics", default=None,
                        help="metrics JSON (default metrics/baselines/<method>.json)")
    parser.add_argument("--history", default=None,
                        help="per-epoch history CSV (default plots/history/<method>.csv)")
    parser.add_argument("--best-of-test", action="store_true",
                        help="also report the leaky best-of-test numbers (diagnostic)")
    add_selection_args(parser, "metrics/selection/<method>.json",
                       "validation round: --prepared is the validation view; train on its "
                       "train-classes, choose the protocol settings, write them to OUT")
    args = parser.parse_args(argv)
    args.out = args.out or f"runs/baselines/{args.method}"
    args.metrics = args.metrics or f"metrics/baselines/{args.method}.json"
    args.history = args.history or f"plots/history/{args.method}.csv"
    return args


def check_method(method: str) -> None:
    if method not in BASELINES:
        raise ConfigError(f"--method {method!r}: unknown baseline (known: {', '.join(BASELINES)})")


def select_for_baseline(args, cfg, trainer, data, device) -> None:
    """The validation round of a baseline: its generator was trained on the validation view's
    train-classes; choose epochs, calibration and syn_per_class on its validation-classes."""
    from ..evaluation import build_blocks
    from ..protocol.selection import ValidationSets, read_split, select_settings, write_selection

    def blocks(x):
        return build_blocks(x, None, None, (VARIANT,), device)

    sets = ValidationSets(blocks(data.train_x), data.train_y, blocks(data.test_seen_x),
                          data.test_seen_y, blocks(data.test_unseen_x), data.test_unseen_y,
                          data.seen_classes, data.unseen_classes)

    def synthesise_val(n: int):
        x, y = trainer.generate(data.unseen_classes, n, torch.Generator(device=device).manual_seed(
            derived_seed(cfg.train.seed, TAG_SYN)))
        return blocks(x), np.asarray(y)

    sel = select_settings(args.method, sets, synthesise_val, cfg, cfg.train.seed, (VARIANT,),
                          pseudo_labels=False, split=read_split(Path(args.prepared)))
    write_selection(sel, args.select, args.select_details)


@run_stage
def main(argv=None) -> None:
    args = parse_args(argv)
    cfg = load_config(args.params, sections=("runtime", "train", "eval", "baselines", "spurious"))
    check_method(args.method)
    if args.select is None:
        cfg = resolve(cfg, args.selection, args.method)
    device = runtime.setup(cfg.runtime, cfg.train.seed)
    data = PreparedData.load(Path(args.prepared) / "prepared.npz")

    # Evaluation imports only once the inputs are valid.
    from ..evaluation import build_blocks, evaluate_protocols, metrics_json, per_class_csv_frame
    from ..trainloop import TrainingDivergedError, fit, resume_path_for

    trainer = get_baseline(args.method)(data, cfg.baselines, seed=cfg.train.seed, device=device,
                                        runtime=cfg.runtime)
    resume = resume_path_for(Path(args.out) / "model.pt")
    start = time.perf_counter()
    trainer.prepare_once(data)
    try:
        fit(trainer, cfg.baselines.epochs, resume, args.history)
    except TrainingDivergedError as exc:
        raise SystemExit(f"error: {exc}") from None
    train_seconds = time.perf_counter() - start

    seed = cfg.train.seed
    if args.select is not None:
        select_for_baseline(args, cfg, trainer, data, device)
        with atomic_dir(args.out) as out:
            save_checkpoint(out / "model.pt", trainer.state_dict())
        shutil.rmtree(resume.parent, ignore_errors=True)
        return
    syn_x, syn_y = trainer.generate(
        data.unseen_classes, cfg.eval.syn_per_class,
        torch.Generator(device=device).manual_seed(derived_seed(seed, TAG_SYN)))
    variants = (VARIANT,)
    blocks = {name: build_blocks(x, None, None, variants, device) for name, x in (
        ("train", data.train_x), ("syn", syn_x), ("test_seen", data.test_seen_x),
        ("test_unseen", data.test_unseen_x))}

    def bar(it):
        return runtime.progress(it, desc=f"classifier {VARIANT}", enabled=cfg.runtime.progress)

    result = evaluate_protocols(
        blocks["train"], data.train_y, blocks["syn"], syn_y, blocks["test_seen"], data.test_seen_y,
        blocks["test_unseen"], data.test_unseen_y, data.seen_classes, data.unseen_classes,
        cfg.eval, torch.Generator().manual_seed(derived_seed(seed, TAG_CLF)),
        variant=VARIANT, best_of_test=args.best_of_test, progress=bar)

    # Generated seen + unseen features for the spuriousness metrics (METHOD.md 6.2).
    spurious_gen = torch.Generator(device=device).manual_seed(derived_seed(seed, TAG_SPURIOUS))
    seen_x, seen_y = trainer.generate(data.seen_classes, cfg.spurious.syn_per_class, spurious_gen)
    unseen_x, unseen_y = trainer.generate(data.unseen_classes, cfg.spurious.syn_per_class, spurious_gen)

    with atomic_dir(args.out) as out:
        save_checkpoint(out / "model.pt", trainer.state_dict())
        write_npz(out / "generated.npz", seen_x=seen_x, seen_y=seen_y, unseen_x=unseen_x,
                  unseen_y=unseen_y)
        write_csv(out / "per_class.csv", per_class_csv_frame(result))
    scores = metrics_json(result)
    write_json(args.metrics, {args.method: scores})
    shutil.rmtree(resume.parent, ignore_errors=True)
    print(f"baseline {args.method}: {trainer.epoch} epochs x {trainer.iters_per_epoch} it on {device} "
          f"in {train_seconds:.1f} s; T1 {scores['zsl']['t1']:.2f}  U {scores['gzsl']['u']:.2f}  "
          f"S {scores['gzsl']['s']:.2f}  H {scores['gzsl']['h']:.2f} -> {args.metrics}")


if __name__ == "__main__":
    raise SystemExit(main())
