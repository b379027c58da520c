"""The results table that ``dvc metrics show`` prints: one small JSON per row.

The detail files (``metrics/zerodiff.json``, ``metrics/baselines/*.json``,
``metrics/selection/*.json``, ``metrics/spuriousness.json``, ``metrics/sweep.json``) hold every
number, nested per method; declared as DVC metrics they made ``dvc metrics show`` one row of
~300 columns.  The declared metrics are these rows instead, all with the same few keys, so the
table reads rows = methods in a 100-column terminal::

    metrics/main/<method>.json         stage table: the main run (train.seen_fraction,
                                       train.seed): T1, U, S, H, chosen
    metrics/sweep/p100/<method>.json   stage aggregate: the sweep's seed means at that seen
                                       fraction: T1, U, S, H, H_sd (sample std over seeds)

(percent).  Two stages, so that a sweep-only experiment (``dvc exp run ... aggregate``) never
needs the main pipeline.  ``chosen`` is what the validation round chose, in one short string:
``<input variant> <syn_per_class> e<GZSL epochs>/<ZSL epochs> c<calibration>``; ESZSL
``g<gamma> l<lambda> c<calibration>``; ``fixed`` under ``eval.selection: fixed``.  The
three transductive rows share ZeroDiff's input and count and show their own epochs and
calibration (docs/protocol.md "DiffGen on validation classes", "DiffTTA on validation
classes").  DiffGen's budgets, the
pseudo-label threshold and every other field are in the detail files, diffed on request:
``dvc metrics diff --targets metrics/selection``.

numpy-free and torch-free: the stage starts in well under a second.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from .io import DataError, read_json, write_json
from .protocol.own_settings import own_block

ZERODIFF_ROWS = ("zerodiff", "zerodiff_tta", "zerodiff_diffgen", "zerodiffpp")
BASELINE_ROWS = ("fclswgan", "fvaegan", "eszsl")
ROWS = ZERODIFF_ROWS + BASELINE_ROWS
# The selection file each row's choice comes from (ZeroDiff's holds its transductive rows').
SELECTION_OF = {**{m: "zerodiff" for m in ZERODIFF_ROWS}, "fclswgan": "fclswgan",
                "fvaegan": "fvaegan", "eszsl": "eszsl"}


def read_detail(path: Path) -> dict:
    """:func:`io.read_json`, with a missing file named as a stage output not yet made."""
    if not Path(path).exists():
        raise DataError(f"{path}: missing (run the stage that writes it, e.g. `dvc repro`)")
    return read_json(path)


def _num(value: float) -> str:
    """A setting in at most 4 significant digits, without a trailing '.0'."""
    return f"{value:.4g}"


def chosen_label(selection: Mapping | None, method: str = "zerodiff") -> str:
    """The short ``chosen`` string of ``method``'s row (module docstring); ``fixed`` without a
    validation choice.  The transductive rows show their own epochs and calibration where the
    selection has them (``chosen.tta``, ``chosen.diffgen``, ``chosen.zerodiffpp``; a missing
    block: those of the method the row extends, protocol.own_settings)."""
    if not selection or selection.get("selection") == "fixed" or "chosen" not in selection:
        return "fixed"
    c = selection["chosen"]
    if "lambda" in c:                                    # ESZSL
        return f"g{_num(c['gamma'])} l{_num(c['lambda'])} c{_num(c['calibration'])}"
    own = own_block(c, method) or c
    # DiffGen's budgets stay in the detail file: with them the row no longer fits a
    # 100-column `dvc metrics diff`.
    return (f"{c['variant']} {c['syn_per_class']} e{own['gzsl_epochs']}/"
            f"{own.get('zsl_epochs') or c['zsl_epochs']} c{own['calibration']:.3g}")


def accuracy_row(body: Mapping, where: str) -> dict:
    """T1 / U / S / H of a detail entry ``{"zsl": {"t1"}, "gzsl": {"u", "s", "h"}}``."""
    try:
        return {"T1": body["zsl"]["t1"], "U": body["gzsl"]["u"], "S": body["gzsl"]["s"],
                "H": body["gzsl"]["h"]}
    except (KeyError, TypeError):
        raise DataError(f"{where}: expected zsl.t1 and gzsl.u / s / h") from None


def main_rows(metrics_dir: Path, selection: str = "validation") -> dict[str, dict]:
    """method -> {T1, U, S, H, chosen} of the main run, from the detail files in ``metrics_dir``."""
    metrics_dir = Path(metrics_dir)
    zd_path = metrics_dir / "zerodiff.json"
    details = dict(read_detail(zd_path))
    sources = {m: zd_path for m in ZERODIFF_ROWS}
    for m in BASELINE_ROWS:
        path = metrics_dir / "baselines" / f"{m}.json"
        details.update(read_detail(path))
        sources[m] = path
    files = {}                        # one selection file per owner (ZeroDiff's serves four rows)
    for owner in dict.fromkeys(SELECTION_OF.values()):
        files[owner] = (None if selection == "fixed" else read_detail(
            metrics_dir / "selection" / f"{owner}.json").get(owner))
    rows = {}
    for m in ROWS:
        if m not in details:
            raise DataError(f"{sources[m]}: no entry '{m}'")
        rows[m] = {**accuracy_row(details[m], f"{sources[m]} [{m}]"),
                   "chosen": chosen_label(files[SELECTION_OF[m]], m)}
    return rows


def sweep_rows(sweep: Mapping) -> dict[str, dict[str, dict]]:
    """fraction key (``p100``) -> method -> {T1, U, S, H, H_sd} from a ``metrics/sweep.json``."""
    out: dict[str, dict[str, dict]] = {}
    for method in ROWS:
        for frac, cell in (sweep.get(method) or {}).items():
            try:
                row = {"T1": cell["t1"]["mean"], "U": cell["u"]["mean"], "S": cell["s"]["mean"],
                       "H": cell["h"]["mean"], "H_sd": cell["h"]["std"]}
            except (KeyError, TypeError):
                raise DataError(f"sweep metrics [{method}][{frac}]: expected t1/u/s/h mean and "
                                "h std") from None
            out.setdefault(frac, {})[method] = row
    return out


def write_rows(out_dir: Path, rows: Mapping[str, Mapping]) -> None:
    """``<out_dir>/<method>.json`` per row (:func:`io.write_json`, like every metrics file)."""
    for method, row in rows.items():
        write_json(Path(out_dir) / f"{method}.json", dict(row))
