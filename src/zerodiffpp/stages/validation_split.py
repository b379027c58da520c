"""DVC stage ``validation_split``: the validation view of the prepared data (docs/protocol.md).

``python -m zerodiffpp.stages.validation_split [--params params.yaml] [--prepared runs/prepared]
[--raw data/raw] [--features runs/val/features] [--split runs/val/split.json]
[--out runs/val/prepared]`` writes ``prepared.npz`` (train-classes as seen, validation-classes
as unseen; zerodiffpp.protocol.split) and a copy of ``split.json``.  The samples are the seen
training samples that ``prepare`` kept (same seen fraction and subset); their features come
from the validation round's own extractors (``--features``: the features stage run with
``--exclude-classes``, trained on the train-classes only) and are scaled on the view's training
samples.  No test sample is read.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ..config import load_config
from ..data.matio import read_raw
from ..data.prepared import PreparedData
from ..features.store import read_features_dir
from ..io import DataError, read_json
from ..protocol.split import ClassSplit, view_from_features
from .common import atomic_dir, run_stage, stage_parser


def read_class_split(path: Path) -> ClassSplit:
    raw = read_json(path)
    try:
        return ClassSplit(np.asarray(raw["train_classes"], np.int64),
                          np.asarray(raw["val_classes"], np.int64), str(raw["source"]))
    except (KeyError, TypeError) as exc:
        raise DataError(f"{path}: not a validation_classes output ({exc})") from None


@run_stage
def main(argv=None) -> None:
    parser = stage_parser("validation_split", __doc__)
    parser.add_argument("--prepared", default="runs/prepared", help="prepare stage output dir")
    parser.add_argument("--raw", default="data/raw", help="dataset directory (download stage)")
    parser.add_argument("--features", default="runs/val/features",
                        help="the validation round's features (features --exclude-classes)")
    parser.add_argument("--split", default="runs/val/split.json",
                        help="validation_classes stage output")
    parser.add_argument("--out", default="runs/val/prepared", help="output directory")
    args = parser.parse_args(argv)
    cfg = load_config(args.params)
    main_data = PreparedData.load(Path(args.prepared) / "prepared.npz")
    raw = read_raw(args.raw)
    x, c, _ = read_features_dir(args.features, raw.labels.shape[0], dataset=raw.name)
    split = read_class_split(Path(args.split))
    view = view_from_features(raw, x, c, main_data, split, cfg.eval.val_holdout, cfg.train.seed)
    with atomic_dir(args.out) as tmp:
        view.save(Path(tmp) / "prepared.npz")
        shutil.copyfile(args.split, Path(tmp) / "split.json")
    print(f"validation_split: {len(split.train_classes)} train-classes, {len(split.val_classes)} "
          f"validation-classes ({split.source}); train {len(view.train_y)}, held-out seen "
          f"{len(view.test_seen_y)}, validation-class samples {len(view.test_unseen_y)} "
          f"-> {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
