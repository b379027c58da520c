"""LEAKY diagnostic: how much H the calibration could give if it were tuned on the test set.

    python benchmarks/calibration_ceiling.py [--params params.yaml] [--runs runs]
        [--metrics metrics] [--methods zerodiff,fclswgan,fvaegan]

Reruns the final evaluation of ZeroDiff (all four variants) and of the baselines exactly as the
pipeline does (same models in ``runs/``, same ``metrics/selection/*.json``), and for each final
GZSL classifier also sweeps the calibration offset gamma **on the test set**
(zerodiffpp.protocol.calibration.best_gamma on test-seen + test-unseen).  Printed side by side:

* honest H      the pipeline's number (gamma chosen on validation classes);
* ceiling H     the same classifier with the test-best gamma (a ceiling, NOT a result);
* gamma val / gamma test.

A large gap between the two says the protocol (the transfer of gamma) is the limit; a low
ceiling says the generator is.  Nothing in ``runs/`` or ``metrics/`` is written.
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
    args = parser.parse_args(argv)
    runs, met = Path(args.runs), Path(args.metrics)
    rows = []

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
            best = best_gamma(decisions(lp, run.classes, np.asarray(seen_classes), y),
                              seen_classes, unseen_classes)
            rows.append((queue.pop(0) if queue else "?", res.gzsl_h, best.h, cfg.calibration,
                         best.gamma))
            return res

        module.evaluate_protocols = wrapped
        return real

    wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "zerodiff" in wanted:
            real = capture(evaluate, evaluate.METHODS)
            try:
                rc = evaluate.main(["--params", args.params, "--prepared", str(runs / "prepared"),
                                    "--drg", str(runs / "drg"), "--dfg", str(runs / "dfg"),
                                    "--selection", str(met / "selection" / "zerodiff.json"),
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
    print(f"{'method':18s} {'honest H':>9s} {'ceiling H':>10s} {'gamma val':>10s} "
          f"{'gamma test':>11s}")
    for name, h, ceil, g_val, g_test in rows:
        print(f"{name:18s} {100 * h:9.2f} {100 * ceil:10.2f} {g_val:10.3f} {g_test:11.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
