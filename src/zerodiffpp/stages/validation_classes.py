"""DVC stage ``validation_classes``: which seen classes the validation round holds out
(docs/protocol.md "Validation classes").

``python -m zerodiffpp.stages.validation_classes [--params params.yaml] [--raw data/raw]
[--out runs/val/split.json]``: the dataset's own class-disjoint ``train_loc`` / ``val_loc``
split when its files have one, else a seeded draw of ``eval.val_class_fraction`` of the seen
classes (seed ``eval.val_split_seed``).  Reads the class labels of data/raw only.  Fixed for a
dataset (not per ``train.seed``), so the validation round's feature extractors are trained once
and shared by every seed and sweep cell.
"""
from __future__ import annotations

from ..config import load_config
from ..data.matio import read_raw
from ..io import write_json
from ..protocol.split import choose_classes, dataset_val_classes
from .common import run_stage, stage_parser


@run_stage
def main(argv=None) -> None:
    parser = stage_parser("validation_classes", __doc__)
    parser.add_argument("--raw", default="data/raw", help="dataset directory (download stage)")
    parser.add_argument("--out", default="runs/val/split.json", help="output JSON")
    args = parser.parse_args(argv)
    cfg = load_config(args.params)
    raw = read_raw(args.raw)
    seen = raw.seen_classes()
    own = dataset_val_classes(raw.labels, raw.train_loc, raw.val_loc, seen)
    split = choose_classes(seen, cfg.eval.val_class_fraction, cfg.eval.val_split_seed, own)
    names = [raw.class_names[c] for c in split.val_classes]
    write_json(args.out, {**split.as_json(), "val_class_names": names})
    shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
    print(f"validation_classes: {raw.name}: {len(split.train_classes)} train-classes, "
          f"{len(split.val_classes)} validation-classes ({split.source}: {shown}) -> {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
