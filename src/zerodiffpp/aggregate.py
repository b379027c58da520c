"""Scarce-data sweep: cell names, cell metrics and their aggregation over seeds.

A sweep cell (dvc.yaml stage ``sweep``, :mod:`zerodiffpp.stages.sweep_cell`) trains one
method at one seen fraction and seed and writes ``<cells>/<method>-<fraction>-<seed>/metrics.json``::

    {"method": "zerodiff", "fraction": 0.1, "seed": 0,
     "variants": {"zerodiff": {"t1": .., "u": .., "s": .., "h": .., "s_seen": .., "s_unseen": ..,
                               "delta_adv": .., "acc_gap_seen": .., ...}, "zerodiffpp": {..}, ..}}

The aggregate stage reads EXACTLY the cells that ``sweep.methods x sweep.fractions x
sweep.seeds`` names (never a glob: cells of an older, larger grid stay on disk) and writes

* ``metrics/sweep.json``: ``{variant: {"p10": {"n": seeds, "h": {"mean", "std"}, ...}}}``
  (fraction keys without dots so that ``dvc metrics diff`` / ``dvc exp show`` columns stay
  readable: 1.0 -> ``p100``, 0.1 -> ``p10``, 0.025 -> ``p2_5``);
* ``plots/sweep.csv``: long form ``method, fraction, seed, metric, value`` (one row per cell,
  variant and metric; pandas/seaborn input of the figures);
* ``plots/sweep_summary.csv``: one row per fraction, columns ``<metric>_<variant>`` (seed
  means), the input of the top-level ``dvc plots`` definitions.

std is the sample standard deviation over seeds (ddof=1); 0.0 with a single seed.  Metric
values that a cell reports as null (a non-finite spuriousness score) are left out of the mean;
a metric that is null in every seed is null.

numpy/pandas only (no torch): the stage starts in about a second.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from .sweep_layout import VARIANTS, cell_name, fraction_str

# Metrics in metrics/sweep.json (kept short so the table stays readable); the CSVs hold all.
ACCURACY = ("t1", "u", "s", "h")                 # percent (evaluate / baseline stages)
SPURIOUS = ("s_seen", "s_unseen")                # spuriousness stage (METHOD.md 6.2)
SUMMARY_METRICS = ACCURACY + SPURIOUS
DECIMALS = {"t1": 2, "u": 2, "s": 2, "h": 2}     # everything else: 4


class SweepError(ValueError):
    """A cell is missing or its metrics file is malformed."""


def fraction_key(fraction: float) -> str:
    """A metrics key without dots: 1.0 -> ``p100``, 0.3 -> ``p30``, 0.025 -> ``p2_5``."""
    pct = round(float(fraction) * 100.0, 6)
    text = f"{pct:.6f}".rstrip("0").rstrip(".")
    return "p" + text.replace(".", "_")


@dataclass(frozen=True)
class Cell:
    method: str
    fraction: float
    seed: int

    @property
    def name(self) -> str:
        return cell_name(self.method, self.fraction, self.seed)


def grid(methods: Sequence[str], fractions: Sequence[float], seeds: Sequence[int]) -> list[Cell]:
    """Every cell of the grid, in dvc.yaml matrix order (method, fraction, seed)."""
    keys = [fraction_key(f) for f in fractions]
    if len(set(keys)) != len(keys):
        raise SweepError(f"sweep.fractions {list(fractions)}: two fractions share the metrics key "
                         f"{[k for k in keys if keys.count(k) > 1][0]}")
    return [Cell(m, float(f), int(s)) for m in methods for f in fractions for s in seeds]


def _number(value, where: str):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SweepError(f"{where}: expected a number or null, got {value!r}")
    return float(value) if math.isfinite(float(value)) else None


def read_cell(cells_dir: str | Path, cell: Cell) -> dict[str, dict[str, float | None]]:
    """``{variant: {metric: value}}`` of one cell; a clear error when it is missing/malformed."""
    path = Path(cells_dir) / cell.name / "metrics.json"
    if not path.exists():
        raise SweepError(
            f"sweep cell {cell.name} (method {cell.method}, fraction {fraction_str(cell.fraction)},"
            f" seed {cell.seed}) has no results: {path} not found; run `dvc repro "
            f"sweep@{cell.name}` (or `dvc repro`)")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise SweepError(f"{path}: not valid JSON ({exc})") from None
    for key, want in (("method", cell.method), ("seed", cell.seed)):
        if raw.get(key) != want:
            raise SweepError(f"{path}: {key} is {raw.get(key)!r}, expected {want!r} for cell "
                             f"{cell.name}")
    if not isinstance(raw.get("fraction"), (int, float)) or \
            not math.isclose(float(raw["fraction"]), cell.fraction):
        raise SweepError(f"{path}: fraction is {raw.get('fraction')!r}, expected "
                         f"{cell.fraction} for cell {cell.name}")
    variants = raw.get("variants")
    if not isinstance(variants, dict):
        raise SweepError(f"{path}: no 'variants' mapping")
    out = {}
    for variant in VARIANTS[cell.method]:
        values = variants.get(variant)
        if not isinstance(values, dict):
            raise SweepError(f"{path}: variant {variant!r} missing")
        for metric in SUMMARY_METRICS:
            if metric not in values:
                raise SweepError(f"{path}: {variant}.{metric} missing")
        out[variant] = {k: _number(v, f"{path}: {variant}.{k}") for k, v in values.items()}
    return out


def long_rows(cells_dir: str | Path, cells: Iterable[Cell]) -> list[dict]:
    """One row per cell x variant x metric (the long-form CSV)."""
    rows = []
    for cell in cells:
        for variant, values in read_cell(cells_dir, cell).items():
            for metric, value in values.items():
                rows.append({"method": variant, "fraction": cell.fraction, "seed": cell.seed,
                             "metric": metric, "value": value})
    return rows


def _round(metric: str, value):
    if value is None:
        return None
    return round(value, DECIMALS.get(metric, 4))


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """Mean and sample std (ddof=1; 0.0 for one value) of the non-null values, and their count."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None, 0
    mean = sum(vals) / len(vals)
    if len(vals) == 1:
        return mean, 0.0, 1
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
    return mean, math.sqrt(var), len(vals)


def summarise(rows: list[dict], methods: Sequence[str], fractions: Sequence[float],
              metrics: Sequence[str] = SUMMARY_METRICS) -> dict:
    """``{variant: {fraction_key: {"n": seeds, metric: {"mean", "std"}}}}`` from long rows."""
    by = {}
    for r in rows:
        by.setdefault((r["method"], r["fraction"], r["metric"]), []).append(r["value"])
    seeds_by = {}
    for r in rows:
        seeds_by.setdefault((r["method"], r["fraction"]), set()).add(r["seed"])
    out: dict = {}
    for method in methods:
        for variant in VARIANTS[method]:
            per_variant = out.setdefault(variant, {})
            for f in fractions:
                f = float(f)
                entry = {"n": len(seeds_by.get((variant, f), ()))}
                for metric in metrics:
                    mean, std, _ = mean_std(by.get((variant, f, metric), []))
                    entry[metric] = {"mean": _round(metric, mean), "std": _round(metric, std)}
                per_variant[fraction_key(f)] = entry
    return out


def summary_frame(summary: dict, fractions: Sequence[float], metrics: Sequence[str] = SUMMARY_METRICS):
    """Wide table for ``dvc plots``: one row per fraction (ascending), ``<metric>_<variant>``
    columns of seed means and ``<metric>_<variant>_std`` columns.  Every variant of every sweep
    method has its columns (empty when the method is not in the sweep), so the fixed top-level
    plot definitions in dvc.yaml always find their fields."""
    import pandas as pd

    variants = [v for vs in VARIANTS.values() for v in vs]
    rows = []
    for f in sorted(float(x) for x in fractions):
        row = {"fraction": f}
        for suffix, stat in (("", "mean"), ("_std", "std")):
            for metric in metrics:
                for variant in variants:
                    cell = summary.get(variant, {}).get(fraction_key(f), {}).get(metric, {})
                    row[f"{metric}_{variant}{suffix}"] = cell.get(stat)
        rows.append(row)
    return pd.DataFrame(rows)


def aggregate(cells_dir: str | Path, methods: Sequence[str], fractions: Sequence[float],
              seeds: Sequence[int]):
    """(summary dict for metrics/sweep.json, long-form DataFrame, wide summary DataFrame)."""
    import pandas as pd

    cells = grid(methods, fractions, seeds)
    rows = long_rows(cells_dir, cells)
    summary = summarise(rows, methods, fractions)
    long = pd.DataFrame(rows, columns=["method", "fraction", "seed", "metric", "value"])
    return summary, long, summary_frame(summary, fractions)
