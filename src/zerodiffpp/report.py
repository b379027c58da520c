"""Results table for the README, generated from the metrics files (no number typed by hand).

    python -m zerodiffpp.report [--readme README.md] [--metrics metrics] [--check]

Rewrites the block between ``<!-- results:start -->`` and ``<!-- results:end -->`` in the
README with one row per method: ZSL T1, GZSL U / S / H and the two spuriousness metrics.
``--check`` exits 1 when the README block is out of date (used by the tests).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .io import DataError, write_text

START, END = "<!-- results:start -->", "<!-- results:end -->"

# (key in the metrics files, label, setting).  Transductive rows read unlabelled test
# features at generation time (METHOD.md 6.1) and are reported apart from inductive ones.
METHODS = (
    ("fclswgan", "f-CLSWGAN", "inductive"),
    ("fvaegan", "f-VAEGAN", "inductive"),
    ("zerodiff", "ZeroDiff", "inductive"),
    ("zerodiff_tta", "ZeroDiff + DiffTTA", "transductive"),
    ("zerodiff_diffgen", "ZeroDiff + DiffGen", "transductive"),
    ("zerodiffpp", "ZeroDiff++ (DiffTTA + DiffGen)", "transductive"),
)


def _read(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from exc


def collect(metrics_dir: Path) -> dict[str, dict]:
    """method -> {"t1", "u", "s", "h", "s_seen", "s_unseen"} from every metrics file present."""
    accuracy = dict(_read(metrics_dir / "zerodiff.json"))
    for path in sorted((metrics_dir / "baselines").glob("*.json")):
        accuracy.update(_read(path))
    spurious = _read(metrics_dir / "spuriousness.json")
    rows = {}
    for key, _, _ in METHODS:
        if key not in accuracy:
            continue
        acc = accuracy[key]
        rows[key] = {"t1": acc["zsl"]["t1"], "u": acc["gzsl"]["u"], "s": acc["gzsl"]["s"],
                     "h": acc["gzsl"]["h"],
                     "s_seen": spurious.get(key, {}).get("s_seen"),
                     "s_unseen": spurious.get(key, {}).get("s_unseen")}
    return rows


def _fmt(value, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render(rows: dict[str, dict], dataset: str) -> str:
    lines = [f"Dataset `{dataset}`, `dvc repro` with the committed `params.yaml` "
             "(accuracies in %, per-class means; fixed schedules, last epoch, no test-set selection).",
             "",
             "| method | setting | ZSL T1 | GZSL U | GZSL S | GZSL H | S_seen | S_unseen |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for key, label, setting in METHODS:
        if key not in rows:
            continue
        r = rows[key]
        lines.append(f"| {label} | {setting} | {_fmt(r['t1'], 2)} | {_fmt(r['u'], 2)} | "
                     f"{_fmt(r['s'], 2)} | {_fmt(r['h'], 2)} | {_fmt(r['s_seen'], 3)} | "
                     f"{_fmt(r['s_unseen'], 3)} |")
    return "\n".join(lines)


def update_readme(readme: str, table: str) -> str:
    if START not in readme or END not in readme:
        raise DataError(f"README: markers {START} / {END} not found")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics"))
    parser.add_argument("--dataset", default=None,
                        help="dataset name (default: data/raw/dataset.json, else params.yaml)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the README is stale")
    args = parser.parse_args(argv)
    try:
        dataset = args.dataset
        if dataset is None:   # the name the download stage recorded (data.name), else params
            meta = Path("data/raw/dataset.json")
            if meta.is_file():
                dataset = str(_read(meta).get("name", ""))
            else:
                from .config import load_config
                from .data.sources import dataset_name

                dataset = dataset_name(load_config("params.yaml").data)
        rows = collect(args.metrics)
        if not rows:
            raise DataError(f"{args.metrics}: no method metrics found (run `dvc repro` first)")
        old = args.readme.read_text()
        new = update_readme(old, render(rows, dataset))
    except (DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if new != old:
            print(f"{args.readme}: results table is out of date; run python -m zerodiffpp.report",
                  file=sys.stderr)
            return 1
        return 0
    if new != old:
        write_text(args.readme, new)
    print(f"report: {len(rows)} methods -> {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
