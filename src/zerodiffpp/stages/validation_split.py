"""DVC stage ``validation_split``: the validation view of the prepared data (docs/protocol.md).

``python -m zerodiffpp.stages.validation_split [--params params.yaml] [--prepared runs/prepared]
[--raw data/raw] [--out runs/val/prepared]`` writes ``prepared.npz`` (train-classes as seen,
validation-classes as unseen; zerodiffpp.protocol.split) and ``split.json`` (which classes, and
whether they are the dataset's own class-disjoint ``train_loc``/``val_loc`` split or a seeded
draw of ``eval.val_class_fraction`` of the seen classes, seed ``train.seed``).  Only the seen
training samples of ``prepared.npz`` are read; the raw dataset only for ``train_loc``/``val_loc``.
"""
from __future__ import annotations

from pathlib import Path

from ..config import load_config
from ..data.matio import read_raw
from ..data.prepared import PreparedData
from ..io import write_json
from ..protocol.split import choose_classes, dataset_val_classes, validation_view
from .common import atomic_dir, run_stage, stage_parser


@run_stage
def main(argv=None) -> None:
    parser = stage_parser("validation_split", __doc__)
    parser.add_argument("--prepared", default="runs/prepared", help="prepare stage output dir")
    parser.add_argument("--raw", default="data/raw", help="dataset directory (download stage)")
    parser.add_argument("--out", default="runs/val/prepared", help="output directory")
    args = parser.parse_args(argv)
    cfg = load_config(args.params)
    data = PreparedData.load(Path(args.prepared) / "prepared.npz")
    raw = read_raw(args.raw)
    own = dataset_val_classes(raw.labels, raw.train_loc, raw.val_loc, data.seen_classes)
    split = choose_classes(data.seen_classes, cfg.eval.val_class_fraction, cfg.train.seed, own)
    view = validation_view(data, split, cfg.eval.val_holdout, cfg.train.seed)
    with atomic_dir(args.out) as tmp:
        view.save(Path(tmp) / "prepared.npz")
        names = [raw.class_names[c] for c in split.val_classes] if raw.class_names else []
        write_json(Path(tmp) / "split.json", {**split.as_json(), "val_class_names": names})
    shown = ", ".join(names[:8]) + (" ..." if len(names) > 8 else "")
    print(f"validation_split: {len(split.train_classes)} train-classes, {len(split.val_classes)} "
          f"validation-classes ({split.source}: {shown}); train {len(view.train_y)}, "
          f"held-out seen {len(view.test_seen_y)}, validation-class samples "
          f"{len(view.test_unseen_y)} -> {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
