"""Results tables for the README, generated from the metrics files (no number typed by hand).

    python -m zerodiffpp.report [--readme README.md] [--metrics metrics] [--check]
        [--sweep-block NAME=SWEEP_JSON ...]

Rewrites the block between ``<!-- results:start -->`` and ``<!-- results:end -->`` in the
README with one row per method of the main pipeline run: ZSL T1, GZSL U / S / H, the two
spuriousness metrics and, labelled as such, the leaky best-of-test H (diagnostic only); and the
block ``<!-- sweep:start -->`` ... ``<!-- sweep:end -->`` with the seed means +- std of every
sweep fraction from ``metrics/sweep.json``.  ``--sweep-block NAME=PATH`` renders another sweep
file (e.g. a committed preset result, ``results/<dataset>/sweep.json``) into the block
``<!-- sweep-NAME:start -->`` ... ``<!-- sweep-NAME:end -->``.
``--check`` exits 1 when a README block is out of date (used by the tests).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

from .io import DataError, write_text
from .spurious.claims import fraction_of

START, END = "<!-- results:start -->", "<!-- results:end -->"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"

# (key in the metrics files, label, setting).  Transductive rows read unlabelled test
# features at generation time (METHOD.md 6.1) and are reported apart from inductive ones.
METHODS = (
    ("eszsl", "ESZSL (closed form)", "inductive"),
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
        leaky = acc.get("leaky_best_of_test", {}).get("gzsl", {}).get("h")
        rows[key] = {"t1": acc["zsl"]["t1"], "u": acc["gzsl"]["u"], "s": acc["gzsl"]["s"],
                     "h": acc["gzsl"]["h"], "leaky_h": leaky,
                     "s_seen": spurious.get(key, {}).get("s_seen"),
                     "s_unseen": spurious.get(key, {}).get("s_unseen")}
    return rows


def _fmt(value, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def render(rows: dict[str, dict], dataset: str, protocol: str = "validation") -> str:
    how = ("settings chosen on validation classes, docs/protocol.md" if protocol == "validation"
           else "fixed settings of params.yaml, last epoch")
    lines = [f"Dataset `{dataset}`, `dvc repro` with the committed `params.yaml`, one run "
             f"(`train.seed`; accuracies in %, per-class means; {how}; no test-set selection). "
             "The last column is the paper's *leaky* best-of-test H (classifier epoch picked on "
             "the test set, no calibration): a diagnostic, not a result.",
             "",
             "| method | setting | ZSL T1 | GZSL U | GZSL S | GZSL H | S_seen | S_unseen "
             "| leaky H |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for key, label, setting in METHODS:
        if key not in rows:
            continue
        r = rows[key]
        lines.append(f"| {label} | {setting} | {_fmt(r['t1'], 2)} | {_fmt(r['u'], 2)} | "
                     f"{_fmt(r['s'], 2)} | {_fmt(r['h'], 2)} | {_fmt(r['s_seen'], 3)} | "
                     f"{_fmt(r['s_unseen'], 3)} | {_fmt(r.get('leaky_h'), 2)} |")
    return "\n".join(lines)


def _pm(cell: dict, key: str, digits: int) -> str:
    m = cell.get(key) or {}
    if m.get("mean") is None:
        return "–"
    return f"{m['mean']:.{digits}f} ± {m.get('std') or 0.0:.{digits}f}"


def _fraction_label(key: str) -> str:
    return f"{100 * fraction_of(key):g} %"


def render_sweep(sweep: dict, title: str) -> str:
    """Seed means +- std (sample std) per seen fraction and method, from a sweep.json."""
    fractions = sorted({f for v in sweep.values() for f in v}, key=lambda k: -fraction_of(k))
    lines = [title, "",
             "| seen | method | setting | seeds | ZSL T1 | GZSL U | GZSL S | GZSL H | S_seen "
             "| S_unseen |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for f in fractions:
        for key, label, setting in METHODS:
            cell = sweep.get(key, {}).get(f)
            if cell is None:
                continue
            lines.append(f"| {_fraction_label(f)} | {label} | {setting} | {cell.get('n', '–')} | "
                         f"{_pm(cell, 't1', 1)} | {_pm(cell, 'u', 1)} | {_pm(cell, 's', 1)} | "
                         f"{_pm(cell, 'h', 1)} | {_pm(cell, 's_seen', 3)} | "
                         f"{_pm(cell, 's_unseen', 3)} |")
    return "\n".join(lines)


def render_findings(sweeps: dict[str, dict], k: float = 2.0) -> str:
    """What the measured sweeps say about the two test-time components and the paper's two
    spuriousness claims, with the numbers: per dataset and seen fraction, the change of GZSL H
    (and U) that DiffTTA, DiffGen and both bring over ZeroDiff, judged by the rule of
    :mod:`zerodiffpp.spurious.claims` (a difference counts when it exceeds k standard errors of
    the seed means); then that module's verdicts."""
    from .spurious.claims import ClaimsError, difference, seen_claim, sweep_table, unseen_claim

    names = {"zerodiff_tta": "DiffTTA", "zerodiff_diffgen": "DiffGen", "zerodiffpp": "both"}
    lines = [f"What the seed means say (a difference counts when it exceeds {k:g} standard "
             "errors of the seed means, else it is *unclear*):", ""]
    for dataset, sweep in sweeps.items():
        h, u = sweep_table(sweep, "h"), sweep_table(sweep, "u")
        base = h.get("zerodiff", {})
        for f in sorted(base, reverse=True):
            parts = []
            for v, label in names.items():
                if f not in h.get(v, {}):
                    continue
                dh = difference([h[v][f]], [base[f]], k)
                du = difference([u[v][f]], [u["zerodiff"][f]], k)
                parts.append(f"{label} H {dh.d:+.1f} ({dh.sign}), U {du.d:+.1f}")
            if parts:
                lines.append(f"* {dataset}, {100 * f:g} % seen, ZeroDiff H {base[f].mean:.1f} "
                             f"over {base[f].n} seeds: " + "; ".join(parts) + ".")
        try:
            seen_v, _ = seen_claim(sweep, k, dataset)
            unseen_v, per, _ = unseen_claim(sweep, k, dataset)
            lines.append(f"* {dataset}, the paper's spuriousness claims: seen spuriousness "
                         f"rises as data shrink, more for f-CLSWGAN: **{seen_v}**; DiffTTA / "
                         f"DiffGen lower the unseen spuriousness: **{unseen_v}** (DiffTTA "
                         f"{per['zerodiff_tta']}, DiffGen {per['zerodiff_diffgen']}); details: "
                         "`python -m zerodiffpp.spurious.claims --sweep <sweep.json>`.")
        except ClaimsError as exc:
            lines.append(f"* {dataset}, spuriousness claims: not testable ({exc}).")
    return "\n".join(lines)


def update_block(readme: str, table: str, name: str = "results") -> str:
    start, end = markers(name)
    if start not in readme or end not in readme:
        raise DataError(f"README: markers {start} / {end} not found")
    head, rest = readme.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{table}\n{end}{tail}"


def update_readme(readme: str, table: str) -> str:
    return update_block(readme, table, "results")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--metrics", type=Path, default=Path("metrics"))
    parser.add_argument("--dataset", default=None,
                        help="dataset name (default: data/raw/dataset.json, else params.yaml)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the README is stale")
    parser.add_argument("--sweep-block", action="append", default=[], metavar="NAME=PATH",
                        help="also render the sweep file PATH into the README block sweep-NAME")
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
        protocol = "validation"
        if Path("params.yaml").is_file():
            from .config import load_config

            protocol = load_config("params.yaml").eval.selection
        old = args.readme.read_text()
        new = update_readme(old, render(rows, dataset, protocol))
        sweep = _read(args.metrics / "sweep.json")
        if sweep and markers("sweep")[0] in new:
            new = update_block(new, render_sweep(
                sweep, f"Dataset `{dataset}`, the `sweep` stage of the same `dvc repro` "
                       "(`sweep.*` params): mean ± std over seeds."), "sweep")
        sweeps = {dataset: sweep} if sweep else {}
        for spec in args.sweep_block:
            name, _, path = spec.partition("=")
            if not name or not path:
                raise DataError(f"--sweep-block {spec!r}: expected NAME=PATH")
            other = _read(Path(path))
            if not other:
                raise DataError(f"--sweep-block {spec!r}: {path} not found or empty")
            label = name      # the dataset of the params.yaml saved beside it, if any
            beside = Path(path).with_name("params.yaml")
            if beside.is_file():
                data = (yaml.safe_load(beside.read_text()) or {}).get("data", {})
                label = data.get("name") or data.get("dataset") or name
            new = update_block(new, render_sweep(
                other, f"Dataset `{label}`, `{path}`: mean ± std over seeds."), f"sweep-{name}")
            sweeps[label] = other
        if sweeps and markers("findings")[0] in new:
            new = update_block(new, render_findings(sweeps), "findings")
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
