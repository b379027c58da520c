"""DVC stage ``prepare``: subsample, scale and assemble the training-ready data.

``python -m zerodiffpp.stages.prepare [--params params.yaml] [--raw data/raw]
[--features data/features] [--out runs/prepared]`` writes ``prepared.npz``
(:class:`zerodiffpp.data.prepared.PreparedData`) and ``seen_subset.csv``
(steps: zerodiffpp.preprocess; METHOD.md 1.2 items 6-7, 8 item 6).  numpy/scipy only.
"""
from __future__ import annotations

from pathlib import Path

from ..config import load_config
from ..data.matio import read_raw
from ..features.store import read_features_dir
from ..io import write_text
from ..preprocess import prepare, resolve_embedding_norm, seen_subset_csv
from .common import atomic_dir, run_stage, stage_parser


@run_stage
def main(argv=None) -> None:
    parser = stage_parser("prepare", __doc__)
    parser.add_argument("--raw", default="data/raw", help="dataset directory (download stage)")
    parser.add_argument("--features", default="data/features",
                        help="ce_ce.mat / con_paco.mat directory (features stage)")
    parser.add_argument("--out", default="runs/prepared", help="output directory")
    args = parser.parse_args(argv)
    cfg = load_config(args.params, sections=("data", "train"))
    data = read_raw(args.raw)
    x, c, _info = read_features_dir(args.features, data.labels.shape[0], dataset=data.name)
    prepared = prepare(data, x, c, seen_fraction=cfg.train.seen_fraction, seed=cfg.train.seed,
                       embedding_norm=cfg.data.embedding_norm)
    with atomic_dir(args.out) as tmp:
        prepared.save(Path(tmp) / "prepared.npz")
        write_text(Path(tmp) / "seen_subset.csv", seen_subset_csv(data, prepared))
    norm = resolve_embedding_norm(cfg.data.embedding_norm, data)
    print(f"prepare: {data.name}: train {len(prepared.train_y)} samples "
          f"(seen_fraction {cfg.train.seen_fraction}, {len(prepared.seen_classes)} seen classes), "
          f"test_seen {len(prepared.test_seen_y)}, test_unseen {len(prepared.test_unseen_y)} "
          f"({len(prepared.unseen_classes)} unseen); x {prepared.x_dim}-d, c {prepared.c_dim}-d, "
          f"class embeddings {prepared.attr_dim}-d ({norm}) -> {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
