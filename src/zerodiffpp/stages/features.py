"""DVC stage ``features``: the visual features x and SC representations c (METHOD.md 1.3-1.4).

``python -m zerodiffpp.stages.features [--params params.yaml] [--raw data/raw]
[--out data/features]`` writes ``ce_ce.mat`` (x), ``con_paco.mat`` (c) and
``features.json`` (docs/CONTRACTS.md).  ``data.feature_source``: ``zerodiff`` validates and
copies ZeroDiff's own ce_ce.mat/con_paco.mat from data/raw; ``extract`` trains the
extractors of zerodiffpp.features.extract on seen trainval data; ``auto`` = zerodiff when
both files are in data/raw, else extract.
"""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from ..config import load_config, to_dict
from ..data.matio import AUX_FILES, read_raw
from ..features.store import C_FILE, INFO_FILE, X_FILE, read_feature_mat, write_feature_mat
from ..io import DataError, atomic_path, read_json, write_json
from .common import atomic_dir, run_stage, stage_parser


def resolve_feature_source(setting: str, raw_dir: Path) -> str:
    """``zerodiff`` | ``extract`` from ``data.feature_source`` and the files in data/raw."""
    present = [name for name in AUX_FILES if (raw_dir / name).is_file()]
    if setting == "zerodiff":
        missing = [name for name in AUX_FILES if name not in present]
        if missing:
            raise DataError(f"data.feature_source=zerodiff: {', '.join(missing)} not found in "
                            f"{raw_dir} (put ZeroDiff's ce_ce.mat and con_paco.mat beside "
                            "res101.mat, or set data.feature_source=extract)")
        return "zerodiff"
    if setting == "auto" and len(present) == len(AUX_FILES):
        return "zerodiff"
    if setting == "auto" and present:
        print(f"features: only {present[0]} found in {raw_dir}; ZeroDiff features need both "
              f"{' and '.join(AUX_FILES)} -> extracting instead", file=sys.stderr)
    return "extract"


def _copy_zerodiff_files(raw_dir: Path, out: Path, n_samples: int) -> dict:
    dims = {}
    for name, key in ((AUX_FILES[0], "x_dim"), (AUX_FILES[1], "c_dim")):
        dims[key] = int(read_feature_mat(raw_dir / name, n_samples).shape[1])
        with atomic_path(out / name, suffix=".mat") as tmp:
            shutil.copyfile(raw_dir / name, tmp)
    return {"method": "zerodiff-files", "files_from": str(raw_dir), **dims}


@run_stage
def main(argv=None) -> None:
    parser = stage_parser("features", __doc__)
    parser.add_argument("--raw", default="data/raw", help="dataset directory (download stage)")
    parser.add_argument("--out", default="data/features", help="output directory")
    parser.add_argument("--exclude-classes", default=None, metavar="SPLIT_JSON",
                        help="validation round (docs/protocol.md): train the extractors without "
                             "the val_classes of this validation_classes output")
    args = parser.parse_args(argv)
    cfg = load_config(args.params, sections=("data", "runtime", "features"))
    raw_dir = Path(args.raw)
    start = time.perf_counter()
    source = resolve_feature_source(cfg.data.feature_source, raw_dir)
    data = read_raw(raw_dir)
    n = int(data.labels.shape[0])
    info = {"dataset": data.name, "n_samples": n, "feature_source": source}
    if args.exclude_classes:
        from ..protocol.classes import without_classes

        held_out = read_json(args.exclude_classes).get("val_classes")
        if not isinstance(held_out, list):
            raise DataError(f"{args.exclude_classes}: no val_classes list")
        data = without_classes(data, held_out)
        info["excluded_classes"] = held_out
        if source == "zerodiff":   # given files cannot be retrained: say so in the output
            print("features: data.feature_source=zerodiff: the given ce_ce.mat/con_paco.mat were "
                  "learnt on every seen class; the validation round uses them as they are",
                  file=sys.stderr)
    with atomic_dir(args.out) as tmp:
        tmp = Path(tmp)
        if source == "zerodiff":
            info.update(_copy_zerodiff_files(raw_dir, tmp, n))
        else:
            from ..features.extract import extract     # torch only when extracting
            from ..runtime import setup

            device = setup(cfg.runtime, cfg.features.seed)
            result = extract(data, cfg.features, device, precision=cfg.runtime.precision,
                             show_progress=cfg.runtime.progress)
            write_feature_mat(tmp / X_FILE, result.x)
            write_feature_mat(tmp / C_FILE, result.c)
            info.update(result.info)
            info.update(x_dim=int(result.x.shape[1]), c_dim=int(result.c.shape[1]),
                        device=str(device), threads=cfg.runtime.threads,
                        precision=cfg.runtime.precision, params=to_dict(cfg.features))
        # No timings in the cached output: reruns must hash identically.
        write_json(tmp / INFO_FILE, info)
    seconds = time.perf_counter() - start
    print(f"features: {data.name}: {info['method']}, x {info['x_dim']}-d, c {info['c_dim']}-d "
          f"for {n} samples in {seconds:.1f} s -> {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
