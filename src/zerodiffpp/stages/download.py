"""DVC stage ``download``: build the dataset named by ``data.dataset`` into ``data/raw``.

Validates the whole params.yaml first (every section, not only ``data``).

``python -m zerodiffpp.stages.download [--params params.yaml] [--out data/raw]``
(sources: docs/data.md; file format: METHOD.md 1.1 and docs/CONTRACTS.md).
"""
from __future__ import annotations

from ..config import load_config
from ..data.matio import write_raw
from ..data.sources import build_dataset, summary
from .common import atomic_dir, run_stage, stage_parser


@run_stage
def main(argv=None) -> None:
    parser = stage_parser("download", __doc__)
    parser.add_argument("--out", default="data/raw", help="output directory")
    args = parser.parse_args(argv)
    # The whole params.yaml is validated here, the first stage of the pipeline, so a bad
    # value in any section (eval.variant=XYZ) stops `dvc repro` before any work.
    cfg = load_config(args.params)
    data = build_dataset(cfg.data, show_progress=cfg.runtime.progress)
    with atomic_dir(args.out) as tmp:
        write_raw(data, tmp)
    print(f"download: {summary(data)} -> {args.out}")


if __name__ == "__main__":
    raise SystemExit(main())
