"""DVC stage ``figures``: the README figures as committed PNGs (matplotlib Agg + seaborn).

``python -m zerodiffpp.stages.figures [--sweep plots/sweep.csv] [--raw data/raw]
[--prepared runs/prepared] [--without-diffgen runs/eval/zerodiff/generated.npz]
[--with-diffgen runs/eval/zerodiffpp/generated.npz] [--history NAME=PATH ...]
[--out plots/figures]``

Writes ``<out>/h_vs_fraction.png``, ``spuriousness_vs_fraction.png``, ``training_curves.png``
and ``embedding.png`` (see :mod:`zerodiffpp.figures`).  Reads no params: everything it shows
comes from the files it is given (dataset and class names from ``<raw>``).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import ConfigError
from ..io import DataError, read_npz
from .common import run_stage, stage_parser

DEFAULT_HISTORIES = ("DRG (stage 1)=plots/history/drg.csv", "DFG (stage 2)=plots/history/dfg.csv",
                     "f-CLSWGAN=plots/history/fclswgan.csv", "f-VAEGAN=plots/history/fvaegan.csv")


def _pairs(specs: list[str], flag: str) -> dict[str, Path]:
    out = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"{flag} {spec!r}: expected NAME=PATH")
        out[name] = Path(path)
    return out


def _read_csv(path: Path, required: tuple[str, ...]):
    import pandas as pd

    if not path.exists():
        raise DataError(f"{path}: file not found (did the upstream stage run?)")
    frame = pd.read_csv(path)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    return frame


def dataset_info(raw: Path) -> tuple[str, dict[int, str]]:
    """Dataset name (dataset.json) and 0-based class id -> name (att_splits.mat), if present."""
    name, names = "", {}
    meta = raw / "dataset.json"
    if meta.exists():
        name = str(json.loads(meta.read_text()).get("name", ""))
    splits = raw / "att_splits.mat"
    if splits.exists():
        import scipy.io as sio

        mat = sio.loadmat(splits, variable_names=["allclasses_names"])
        if "allclasses_names" in mat:
            flat = [np.asarray(v).ravel() for v in np.asarray(mat["allclasses_names"]).ravel()]
            names = {i: str(v[0]) if v.size else f"class {i}" for i, v in enumerate(flat)}
    return name, names


@run_stage
def main(argv=None) -> None:
    parser = stage_parser("figures", __doc__, params=False)
    parser.add_argument("--sweep", default="plots/sweep.csv", help="long-form sweep CSV (aggregate)")
    parser.add_argument("--raw", default="data/raw", help="dataset directory (names only)")
    parser.add_argument("--prepared", default="runs/prepared", help="prepare stage output dir")
    parser.add_argument("--without-diffgen", default="runs/eval/zerodiff/generated.npz",
                        help="generated.npz of ZeroDiff (no DiffGen)")
    parser.add_argument("--with-diffgen", default="runs/eval/zerodiffpp/generated.npz",
                        help="generated.npz of ZeroDiff++ (DiffTTA + DiffGen)")
    parser.add_argument("--history", action="append", default=None, metavar="NAME=PATH",
                        help="per-epoch history CSV for the training-curves figure (repeatable)")
    parser.add_argument("--out", default="plots/figures", help="output directory")
    args = parser.parse_args(argv)
    histories = _pairs(args.history or list(DEFAULT_HISTORIES), "--history")

    # Validate every input before drawing anything.
    long = _read_csv(Path(args.sweep), ("method", "fraction", "seed", "metric", "value"))
    if long.empty:
        raise DataError(f"{args.sweep}: no rows")
    frames = {name: _read_csv(path, ("epoch", "loss_D", "loss_G")) for name, path in histories.items()}
    from ..data.prepared import PreparedData

    data = PreparedData.load(Path(args.prepared) / "prepared.npz")
    gens = {}
    for title, path in (("ZeroDiff: generated unseen, no DiffGen", args.without_diffgen),
                        ("ZeroDiff++: generated unseen, DiffTTA + DiffGen", args.with_diffgen)):
        arrays = read_npz(path, required=("unseen_x", "unseen_y"))
        if arrays["unseen_x"].ndim != 2 or arrays["unseen_x"].shape[1] != data.x_dim:
            raise DataError(f"{path}: key 'unseen_x' must be (n, {data.x_dim}), got "
                            f"{arrays['unseen_x'].shape}")
        gens[title] = (arrays["unseen_x"], arrays["unseen_y"])
    dataset, class_names = dataset_info(Path(args.raw))

    from .. import figures

    out = Path(args.out)
    written = [
        figures.h_vs_fraction(long, out / "h_vs_fraction.png", dataset),
        figures.spuriousness_vs_fraction(long, out / "spuriousness_vs_fraction.png", dataset),
        figures.training_curves(frames, out / "training_curves.png"),
        figures.embedding(data.test_unseen_x, data.test_unseen_y, gens, out / "embedding.png",
                          class_names=class_names),
    ]
    print("figures: " + ", ".join(str(p) for p in written))


if __name__ == "__main__":
    raise SystemExit(main())
