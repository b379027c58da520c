"""The paper's-claims check (zerodiffpp.spurious.claims) on hand-made metrics/sweep.json
contents: each verdict, the standard-error rule and the errors."""
from __future__ import annotations

import json
import math

import pytest

from zerodiffpp.aggregate import fraction_key
from zerodiffpp.spurious import claims


def _sweep(seen: dict, unseen: dict, std=0.01, n=3) -> dict:
    """seen / unseen: {variant: {fraction: mean}} -> the metrics/sweep.json layout."""
    out = {}
    for metric, table in (("s_seen", seen), ("s_unseen", unseen)):
        for variant, row in table.items():
            for f, mean in row.items():
                cell = out.setdefault(variant, {}).setdefault(fraction_key(f), {"n": n})
                cell[metric] = {"mean": mean, "std": std}
    return out


SEEN_RISES = {"fclswgan": {0.5: 0.0, 0.1: 0.3}, "zerodiff": {0.5: 0.0, 0.1: 0.1}}
UNSEEN_DROPS = {"zerodiff": {0.5: 0.5, 0.1: 0.6}, "zerodiff_tta": {0.5: 0.3, 0.1: 0.4},
                "zerodiff_diffgen": {0.5: 0.2, 0.1: 0.3}, "zerodiffpp": {0.5: 0.1, 0.1: 0.2}}


def test_fraction_of_inverts_the_aggregate_keys():
    for f in (1.0, 0.5, 0.3, 0.1, 0.025):
        assert claims.fraction_of(fraction_key(f)) == pytest.approx(f)


def test_difference_rule():
    a, b = claims.Stat(1.0, 0.3, 9), claims.Stat(0.5, 0.4, 4)     # se^2 = 0.01 + 0.04
    d = claims.difference([a], [b], k=2.0)
    assert d.d == 0.5 and d.se == pytest.approx(math.sqrt(0.05)) and d.sign == "positive"
    assert claims.difference([b], [a], k=2.0).sign == "negative"
    assert claims.difference([a], [b], k=3.0).sign == "unclear"    # 0.5 < 3 * 0.224
    one_seed = claims.Stat(1.0, 0.0, 1)
    assert claims.difference([one_seed], [b], k=2.0).sign == "unclear"


def test_both_claims_supported():
    text = claims.report(_sweep(SEEN_RISES, UNSEEN_DROPS), None)
    assert "more for f-CLSWGAN than for ZeroDiff): SUPPORTED" in text
    assert "s_unseen): SUPPORTED (DiffTTA: SUPPORTED, DiffGen: SUPPORTED" in text
    assert "rise 50% -> 10%: +0.3000" in text


def test_claims_not_supported():
    seen = {"fclswgan": {0.5: 0.3, 0.1: 0.0}, "zerodiff": {0.5: 0.0, 0.1: 0.0}}  # falls
    unseen = dict(UNSEEN_DROPS, zerodiff_tta={0.5: 0.9, 0.1: 0.9})              # TTA raises it
    text = claims.report(_sweep(seen, unseen), None)
    assert "ZeroDiff): NOT SUPPORTED" in text
    assert "s_unseen): NOT SUPPORTED (DiffTTA: NOT SUPPORTED, DiffGen: SUPPORTED" in text
    # ZeroDiff rising more than f-CLSWGAN also contradicts claim 1.
    seen = {"fclswgan": {0.5: 0.0, 0.1: 0.2}, "zerodiff": {0.5: 0.0, 0.1: 0.6}}
    assert claims.seen_claim(_sweep(seen, UNSEEN_DROPS), 2.0)[0] == claims.NOT_SUPPORTED


def test_claims_inconclusive_within_the_seed_noise():
    seen = {"fclswgan": {0.5: 0.0, 0.1: 0.3}, "zerodiff": {0.5: 0.0, 0.1: 0.29}}
    assert claims.seen_claim(_sweep(seen, UNSEEN_DROPS), 2.0)[0] == claims.INCONCLUSIVE
    noisy = _sweep(SEEN_RISES, UNSEEN_DROPS, std=1.0)
    assert claims.seen_claim(noisy, 2.0)[0] == claims.INCONCLUSIVE
    assert claims.unseen_claim(noisy, 2.0)[0] == claims.INCONCLUSIVE
    single = _sweep(SEEN_RISES, UNSEEN_DROPS, std=0.0, n=1)           # no seed std at all
    assert claims.seen_claim(single, 2.0)[0] == claims.INCONCLUSIVE


def test_claims_need_their_methods_and_two_fractions():
    with pytest.raises(claims.ClaimsError, match="no s_seen of fclswgan"):
        claims.seen_claim(_sweep({"zerodiff": {0.5: 0, 0.1: 0}}, {}), 2.0)
    with pytest.raises(claims.ClaimsError, match="s_seen of zerodiff at one seen fraction"):
        claims.seen_claim(_sweep({"fclswgan": {0.5: 0, 0.1: 0}, "zerodiff": {0.5: 0}}, {}), 2.0)
    with pytest.raises(claims.ClaimsError, match="no s_unseen of zerodiff_diffgen"):
        claims.unseen_claim(_sweep({}, {"zerodiff": {0.5: 0}, "zerodiff_tta": {0.5: 0}}), 2.0)


def test_cli(tmp_path, capsys):
    (tmp_path / "sweep.json").write_text(json.dumps(_sweep(SEEN_RISES, UNSEEN_DROPS)))
    (tmp_path / "sp.json").write_text(json.dumps({"zerodiff": {"s_seen": 0.01, "s_unseen": 0.2}}))
    assert claims.main(["--sweep", str(tmp_path / "sweep.json"),
                        "--spuriousness", str(tmp_path / "sp.json")]) == 0
    out = capsys.readouterr().out
    assert out.count("SUPPORTED") >= 2 and "zerodiff s_seen 0.01 s_unseen 0.2" in out
    assert claims.main(["--sweep", str(tmp_path / "nope.json")]) == 2
    assert "nope.json: file not found" in capsys.readouterr().err
