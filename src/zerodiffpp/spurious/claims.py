"""The paper's two spuriousness claims, tested on the measured sweep (docs/spuriousness.md
"Testing the paper's claims").

    python -m zerodiffpp.spurious.claims [--sweep metrics/sweep.json]
        [--spuriousness metrics/spuriousness.json] [--k 2]

1. *Seen spuriousness rises as seen data shrink, more for f-CLSWGAN than for ZeroDiff*:
   rise_M = s_seen(M, smallest fraction) - s_seen(M, largest fraction); the claim needs
   rise_fclswgan > 0 and rise_fclswgan - rise_zerodiff > 0.
2. *DiffTTA / DiffGen lower the unseen spuriousness*: drop_V = mean over fractions of
   s_unseen(zerodiff) - s_unseen(V), for V = zerodiff_tta and zerodiff_diffgen; the claim needs
   both drops > 0 (zerodiffpp, both together, is reported too).

Rule: a difference d of seed means, with standard error se_d = sqrt(sum std_i^2 / n_i) over its
terms (std over seeds, ddof=1), is *positive* if d > k se_d, *negative* if d < -k se_d, else
*unclear*; with fewer than 2 seeds anywhere it is unclear.  A claim is SUPPORTED when all its
parts are positive, NOT SUPPORTED when any part is negative, INCONCLUSIVE otherwise.  The
standard errors treat methods as independent although the ZeroDiff variants of a cell share one
trained model, so the rule is conservative for claim 2.  ``metrics/spuriousness.json`` (one
full-data run, no seed std) is printed for reference and does not enter the verdicts.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "SUPPORTED", "NOT SUPPORTED", "INCONCLUSIVE"


class ClaimsError(ValueError):
    """metrics/sweep.json lacks what a claim needs."""


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float
    n: int

    @property
    def se2(self) -> float:
        return self.std ** 2 / self.n if self.n >= 2 else math.inf


@dataclass(frozen=True)
class Difference:
    d: float
    se: float
    sign: str           # "positive" | "negative" | "unclear"

    def text(self) -> str:
        se = f"{self.se:.4f}" if math.isfinite(self.se) else "n/a (< 2 seeds)"
        return f"{self.d:+.4f} (se {se}: {self.sign})"


def difference(plus: list[Stat], minus: list[Stat], k: float, scale: float = 1.0) -> Difference:
    """scale * (sum of plus means - sum of minus means), with its standard error and sign."""
    d = scale * (sum(s.mean for s in plus) - sum(s.mean for s in minus))
    se = abs(scale) * math.sqrt(sum(s.se2 for s in plus + minus))
    if not math.isfinite(se):
        sign = "unclear"
    else:
        sign = "positive" if d > k * se else "negative" if d < -k * se else "unclear"
    return Difference(d, se, sign)


def verdict(parts: list[Difference]) -> str:
    signs = [p.sign for p in parts]
    if "negative" in signs:
        return NOT_SUPPORTED
    return SUPPORTED if all(s == "positive" for s in signs) else INCONCLUSIVE


def fraction_of(key: str) -> float:
    """Inverse of aggregate.fraction_key: ``p10`` -> 0.1, ``p2_5`` -> 0.025."""
    return float(key[1:].replace("_", ".")) / 100.0


def sweep_table(sweep: dict, metric: str) -> dict[str, dict[float, Stat]]:
    """{variant: {fraction: Stat}} of one metric of metrics/sweep.json (null means dropped)."""
    table = {}
    for variant, cells in sweep.items():
        for key, entry in cells.items():
            stat = entry.get(metric) if isinstance(entry, dict) else None
            if not stat or stat.get("mean") is None:
                continue
            std = stat.get("std")
            table.setdefault(variant, {})[fraction_of(key)] = Stat(
                float(stat["mean"]), float(std) if std is not None else math.nan, int(entry["n"]))
    return table


def _need(table: dict, variant: str, metric: str, where: str) -> dict[float, Stat]:
    if variant not in table or len(table[variant]) < 1:
        raise ClaimsError(f"{where}: no {metric} of {variant} (run its sweep cells)")
    return table[variant]


def seen_claim(sweep: dict, k: float, where: str = "sweep") -> tuple[str, list[str]]:
    table = sweep_table(sweep, "s_seen")
    rows, lines = {}, []
    for m in ("fclswgan", "zerodiff"):
        rows[m] = _need(table, m, "s_seen", where)
        if len(rows[m]) < 2:
            raise ClaimsError(f"{where}: s_seen of {m} at one seen fraction only; need two")
    rise = {}
    for m, row in rows.items():
        lo, hi = min(row), max(row)
        rise[m] = difference([row[lo]], [row[hi]], k)
        curve = ", ".join(f"{100 * f:g}%: {row[f].mean:+.4f} ± {row[f].std:.4f}"
                          for f in sorted(row, reverse=True))
        lines.append(f"  {m}: s_seen {curve} (n = {row[lo].n} seeds); rise "
                     f"{100 * hi:g}% -> {100 * lo:g}%: {rise[m].text()}")
    # (fcls_lo - fcls_hi) - (zd_lo - zd_hi): four independent seed means
    fc, zd = rows["fclswgan"], rows["zerodiff"]
    more = difference([fc[min(fc)], zd[max(zd)]], [fc[max(fc)], zd[min(zd)]], k)
    lines.append(f"  rise of fclswgan - rise of zerodiff: {more.text()}")
    return verdict([rise["fclswgan"], more]), lines


def unseen_claim(sweep: dict, k: float, where: str = "sweep") -> tuple[str, dict, list[str]]:
    table = sweep_table(sweep, "s_unseen")
    base = _need(table, "zerodiff", "s_unseen", where)
    parts, lines = {}, []
    for v in ("zerodiff_tta", "zerodiff_diffgen", "zerodiffpp"):
        row = _need(table, v, "s_unseen", where)
        fractions = sorted(set(base) & set(row), reverse=True)
        if not fractions:
            raise ClaimsError(f"{where}: zerodiff and {v} share no seen fraction")
        drop = difference([base[f] for f in fractions], [row[f] for f in fractions], k,
                          scale=1.0 / len(fractions))
        parts[v] = drop
        per = ", ".join(f"{100 * f:g}%: {base[f].mean:+.4f} -> {row[f].mean:+.4f}"
                        for f in fractions)
        lines.append(f"  {v}: s_unseen zerodiff -> {v}: {per}; mean drop {drop.text()}")
    return (verdict([parts["zerodiff_tta"], parts["zerodiff_diffgen"]]),
            {v: verdict([p]) for v, p in parts.items()}, lines)


def report(sweep: dict, spuriousness: dict | None, k: float = 2.0) -> str:
    seen_v, seen_lines = seen_claim(sweep, k)
    unseen_v, per_variant, unseen_lines = unseen_claim(sweep, k)
    out = [f"Claim 1 (seen spuriousness s_seen rises as seen data shrink, more for f-CLSWGAN "
           f"than for ZeroDiff): {seen_v}", *seen_lines,
           f"Claim 2 (DiffTTA / DiffGen lower the unseen spuriousness s_unseen): {unseen_v} "
           f"(DiffTTA: {per_variant['zerodiff_tta']}, DiffGen: {per_variant['zerodiff_diffgen']}, "
           f"both (ZeroDiff++): {per_variant['zerodiffpp']})", *unseen_lines,
           f"Rule: a difference counts when it exceeds {k:g} standard errors of the seed means "
           "(docs/spuriousness.md); lower s_seen / s_unseen is better, 0 = none."]
    if spuriousness:
        out.append("Full-data run (metrics/spuriousness.json, one seed, not in the verdicts): "
                   + ", ".join(f"{m} s_seen {v.get('s_seen')} s_unseen {v.get('s_unseen')}"
                               for m, v in spuriousness.items()))
    return "\n".join(out)


def _read(path: Path, required: bool) -> dict | None:
    if not path.exists():
        if required:
            raise ClaimsError(f"{path}: file not found (run `dvc repro aggregate`)")
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ClaimsError(f"{path}: not valid JSON ({exc})") from exc


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zerodiffpp.spurious.claims",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--sweep", default="metrics/sweep.json", type=Path)
    parser.add_argument("--spuriousness", default="metrics/spuriousness.json", type=Path)
    parser.add_argument("--k", type=float, default=2.0, help="standard errors a difference needs")
    args = parser.parse_args(argv)
    try:
        sweep = _read(args.sweep, required=True)
        print(report(sweep, _read(args.spuriousness, required=False), args.k))
    except ClaimsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
