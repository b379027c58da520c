"""LEAKY diagnostic: how much H the calibration could give if it were tuned on the test set.

    python benchmarks/calibration_ceiling.py [--params params.yaml] [--runs runs]
        [--metrics metrics] [--methods zerodiff,fclswgan,fvaegan]
    python benchmarks/calibration_ceiling.py --cell runs/sweep/zerodiff-0.1-0 [--raw data/raw]
        [--features data/features] [--without-diffgen-choice] [--without-transductive-choice]

Reruns the final evaluation of ZeroDiff (all four variants) and of the baselines exactly as the
pipeline does (same models in ``runs/``, same ``metrics/selection/*.json``), and for each final
GZSL classifier also sweeps the calibration offset gamma **on the test set**
(zerodiffpp.protocol.calibration.best_gamma on test-seen + test-unseen).  Printed side by side:

* honest H      the pipeline's number (gamma chosen on validation classes);
* ceiling H     the same classifier with the test-best gamma (a ceiling, NOT a result);
* rate-matched H  (+ DiffTTA and ZeroDiff++ only) a label-free alternative to inheriting the
                offset: gamma set so that the method predicts "unseen" for the same share of
                the unlabelled test pool as the method whose validated offset it inherits
                (ZeroDiff for + DiffTTA, + DiffGen for ZeroDiff++); scored on test labels.
                Tried as a remedy for the transferred offset and NOT adopted
                (benchmarks/README.md "The 2026-12-08 SNU-B36-EX cells");
* gamma val / gamma test.

A large gap between the two says the protocol (the transfer of gamma) is the limit; a low
ceiling says the generator is.  Nothing in ``runs/`` or ``metrics/`` is written.

``--cell DIR``: a ZeroDiff sweep cell instead of the main run: its data are prepared again from
``--raw`` / ``--features`` with the cell's own ``params.yaml`` (seen fraction, seed), and its
committed generators (``models/``) and ``selection.json`` are evaluated.  With
``--without-diffgen-choice`` the selection's ``diffgen`` block is left out, so the DiffGen
methods run as before their validation-round choice (ZeroDiff's epochs and calibration, the
params' budgets): the before / after of docs/protocol.md "DiffGen on validation classes";
it drops ZeroDiff++'s own block (``zerodiffpp``) too, so ZeroDiff++ also runs with the params'
budgets.  ``--without-transductive-choice`` drops the ``tta`` and ``zerodiffpp`` blocks and the
``diffgen`` block's ``zsl_epochs`` (the parts ``eval.transductive_choice: own`` adds):
ZeroDiff + DiffTTA runs with ZeroDiff's settings and ZeroDiff++ with ZeroDiff + DiffGen's, the
before / after of docs/protocol.md "DiffTTA on validation classes".
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    from zerodiffpp.protocol.calibration import best_gamma, decisions
    from zerodiffpp import evaluation
    from zerodiffpp.stages import baseline, evaluate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--metrics", default="metrics")
    parser.add_argument("--methods", default="zerodiff,fclswgan,fvaegan")
    parser.add_argument("--cell", default=None, help="a zerodiff sweep cell directory")
    parser.add_argument("--raw", default="data/raw")
    parser.add_argument("--features", default="data/features")
    parser.add_argument("--without-diffgen-choice", action="store_true")
    parser.add_argument("--without-transductive-choice", action="store_true")
    args = parser.parse_args(argv)
    runs, met = Path(args.runs), Path(args.metrics)
    rows = []
    pools = {}      # method -> (Decisions on test-seen ∪ test-unseen, gamma, seen, unseen)

    def capture(module, names):
        """Wrap module.evaluate_protocols: after each call, sweep gamma on the test sets."""
        real = module.evaluate_protocols
        queue = list(names)

        def wrapped(train, train_y, syn, syn_y, test_seen, test_seen_y, test_unseen,
                    test_unseen_y, seen_classes, unseen_classes, cfg, generator, **kw):
            res = real(train, train_y, syn, syn_y, test_seen, test_seen_y, test_unseen,
                       test_unseen_y, seen_classes, unseen_classes, cfg, generator, **kw)
            run, variant = res.gzsl, res.variant
            import torch
            lp = torch.cat([run.raw_log_probs(test_seen, variant),
                            run.raw_log_probs(test_unseen, variant)])
            y = np.concatenate([np.asarray(test_seen_y), np.asarray(test_unseen_y)])
            dec = decisions(lp, run.classes, np.asarray(seen_classes), y)
            best = best_gamma(dec, seen_classes, unseen_classes)
            name = queue.pop(0) if queue else "?"
            pools[name] = (dec, cfg.calibration, np.asarray(seen_classes),
                           np.asarray(unseen_classes))
            rows.append((name, res.gzsl_h, best.h, cfg.calibration, best.gamma))
            return res

        module.evaluate_protocols = wrapped
        return real

    wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        selection = met / "selection" / "zerodiff.json"
        if args.cell is not None:
            runs, wanted, selection = prepare_cell(Path(args.cell), tmp, args), ["zerodiff"], \
                tmp / "selection.json"
            args.params = str(runs / "params.yaml")
        if "zerodiff" in wanted:
            real = capture(evaluate, evaluate.METHODS)
            try:
                rc = evaluate.main(["--params", args.params, "--prepared", str(runs / "prepared"),
                                    "--drg", str(runs / "drg"), "--dfg", str(runs / "dfg"),
                                    "--selection", str(selection),
                                    "--metrics", str(tmp / "z.json"), "--per-class",
                                    str(tmp / "z.csv"), "--eval-dir", str(tmp / "eval")])
            finally:
                evaluate.evaluate_protocols = real
            if rc:
                return rc
        for m in (m for m in wanted if m != "zerodiff"):
            real = capture(evaluation, [m])   # the baseline stage imports it at call time
            try:
                rc = baseline.main(["--params", args.params, "--method", m, "--prepared",
                                    str(runs / "prepared"), "--selection",
                                    str(met / "selection" / f"{m}.json"), "--out",
                                    str(tmp / m), "--metrics", str(tmp / f"{m}.json"),
                                    "--history", str(tmp / f"{m}.csv")])
            finally:
                evaluation.evaluate_protocols = real
            if rc:
                return rc
    print("LEAKY diagnostic: 'ceiling H' tunes the calibration on the TEST set; not a result.")
    print(f"{'method':18s} {'honest H':>9s} {'ceiling H':>10s} {'rate-matched H':>15s} "
          f"{'gamma val':>10s} {'gamma test':>11s}")
    for name, h, ceil, g_val, g_test in rows:
        matched = rate_matched_h(pools, name)
        col = f"{100 * matched:15.2f}" if matched is not None else f"{'':15s}"
        print(f"{name:18s} {100 * h:9.2f} {100 * ceil:10.2f} {col} {g_val:10.3f} {g_test:11.3f}")
    return 0


RATE_BASE = {"zerodiff_tta": "zerodiff", "zerodiffpp": "zerodiff_diffgen"}


def rate_matched_h(pools: dict, name: str):
    """H of ``name``'s classifier with the offset at which it predicts "unseen" for the share
    of the pool that its offset's source method predicts at that method's offset (the margin
    quantile; labels score only).  None when ``name`` has no source method here."""
    from zerodiffpp.protocol.calibration import scores_over_gammas

    base = RATE_BASE.get(name)
    if base not in pools or name not in pools:
        return None
    (dec, _, seen, unseen), (dec_b, g_b, _, _) = pools[name], pools[base]
    share = float(np.mean(np.nan_to_num(dec_b.margin, nan=-np.inf) <= g_b))
    gamma = float(np.quantile(dec.margin, share))
    _, _, h = scores_over_gammas(dec, seen, unseen, np.array([gamma]))
    return float(h[0])


def prepare_cell(cell: Path, tmp: Path, args) -> Path:
    """``runs``-like layout of a zerodiff sweep cell in ``tmp``: prepared data (the cell's
    params), ``drg/model.pt``, ``dfg/model.pt``, and ``tmp/selection.json``."""
    import json
    import shutil

    from zerodiffpp.stages import prepare

    if not (cell / "models" / "dfg.pt").exists():
        raise SystemExit(f"{cell}: not a finished zerodiff sweep cell (models/dfg.pt missing)")
    root = tmp / "cell"
    root.mkdir()
    shutil.copy(cell / "params.yaml", root / "params.yaml")
    for name in ("drg", "dfg"):
        (root / name).mkdir()
        shutil.copy(cell / "models" / f"{name}.pt", root / name / "model.pt")
    sel = json.loads((cell / "selection.json").read_text())
    dropped = (("diffgen", "zerodiffpp") if args.without_diffgen_choice else ()) + (
        ("tta", "zerodiffpp") if args.without_transductive_choice else ())
    for body in sel.values():
        for key in dropped:
            body["chosen"].pop(key, None)
        if args.without_transductive_choice:   # own's ZSL epochs of + DiffGen (ZSL T1 only)
            body["chosen"].get("diffgen", {}).pop("zsl_epochs", None)
    (tmp / "selection.json").write_text(json.dumps(sel))
    rc = prepare.main(["--params", str(root / "params.yaml"), "--raw", args.raw,
                       "--features", args.features, "--out", str(root / "prepared")])
    if rc:
        raise SystemExit(rc)
    return root


if __name__ == "__main__":
    sys.exit(main())
