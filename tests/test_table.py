"""The results table rows (zerodiffpp.table; stages table and aggregate) from hand-made details."""
from __future__ import annotations

import json

import pytest

from zerodiffpp.io import DataError
from zerodiffpp.stages.table import main as table_main
from zerodiffpp.table import ROWS, chosen_label, main_rows, sweep_rows

ZD_CHOICE = {"variant": "VS", "syn_per_class": 300, "gzsl_epochs": 7, "zsl_epochs": 2,
             "calibration": 2.244818, "tta_confidence": 0.3,
             "diffgen": {"seen_fraction": 0.0, "unseen_fraction": 0.5, "gzsl_epochs": 11,
                         "calibration": 1.503}}


def acc(t1, u, s, h):
    return {"zsl": {"t1": t1}, "gzsl": {"u": u, "s": s, "h": h}}


def write_details(root, drop=None):
    (root / "baselines").mkdir(parents=True)
    (root / "selection").mkdir()
    zd = {m: acc(90 + i, 60 + i, 80, 70 + i) for i, m in enumerate(ROWS[:4])}
    (root / "zerodiff.json").write_text(json.dumps(zd))
    for i, m in enumerate(("fclswgan", "fvaegan", "eszsl")):
        if m != drop:
            (root / "baselines" / f"{m}.json").write_text(json.dumps({m: acc(20 + i, 10, 90, 18)}))
    sel = {"zerodiff": {"chosen": ZD_CHOICE, "selection": "validation"},
           "fclswgan": {"chosen": {"variant": "V", "syn_per_class": 100, "gzsl_epochs": 2,
                                   "zsl_epochs": 1, "calibration": 1.157948}},
           "fvaegan": {"chosen": {"variant": "V", "syn_per_class": 300, "gzsl_epochs": 3,
                                  "zsl_epochs": 7, "calibration": 0.66}},
           "eszsl": {"chosen": {"gamma": 10.0, "lambda": 0.1, "calibration": 0.886872},
                     "selection": "validation"}}
    for m, body in sel.items():
        (root / "selection" / f"{m}.json").write_text(json.dumps({m: body}))


def test_chosen_labels_are_short_and_complete():
    assert chosen_label({"chosen": ZD_CHOICE}) == "VS 300 e7/2 c2.24"
    assert chosen_label({"chosen": ZD_CHOICE}, "zerodiff_diffgen") == "VS 300 e11/2 c1.5"
    assert chosen_label({"chosen": ZD_CHOICE}, "zerodiff_tta") == "VS 300 e7/2 c2.24"
    assert chosen_label({"chosen": ZD_CHOICE}, "zerodiffpp") == "VS 300 e11/2 c1.5"
    own = {**ZD_CHOICE, "tta": {"gzsl_epochs": 9, "zsl_epochs": 30, "calibration": 3.0},
           "zerodiffpp": {"seen_fraction": 0.25, "unseen_fraction": 0.5, "gzsl_epochs": 5,
                          "zsl_epochs": 44, "calibration": 4.125}}
    assert chosen_label({"chosen": own}, "zerodiff_tta") == "VS 300 e9/30 c3"
    assert chosen_label({"chosen": own}, "zerodiffpp") == "VS 300 e5/44 c4.12"
    no_dg = {k: v for k, v in ZD_CHOICE.items() if k != "diffgen"}   # older selection files
    assert chosen_label({"chosen": no_dg}, "zerodiffpp") == "VS 300 e7/2 c2.24"
    eszsl = {"chosen": {"gamma": 10.0, "lambda": 0.1, "calibration": 0.886872}}
    assert chosen_label(eszsl) == "g10 l0.1 c0.8869"
    assert chosen_label({"selection": "fixed", "chosen": {}}) == "fixed"
    assert chosen_label(None) == "fixed"


def test_main_rows_have_the_same_few_keys(tmp_path):
    write_details(tmp_path)
    rows = main_rows(tmp_path)
    assert list(rows) == list(ROWS)
    assert all(set(r) == {"T1", "U", "S", "H", "chosen"} for r in rows.values())
    assert rows["zerodiff_tta"] == {"T1": 91, "U": 61, "S": 80, "H": 71,
                                    "chosen": "VS 300 e7/2 c2.24"}
    assert rows["fclswgan"]["chosen"] == "V 100 e2/1 c1.16"
    assert rows["zerodiffpp"]["chosen"] == rows["zerodiff_diffgen"]["chosen"] == (
        "VS 300 e11/2 c1.5")
    assert {r["chosen"] for r in main_rows(tmp_path, "fixed").values()} == {"fixed"}


def test_missing_detail_file_is_named(tmp_path):
    write_details(tmp_path, drop="fvaegan")
    with pytest.raises(DataError, match=r"baselines/fvaegan\.json: missing"):
        main_rows(tmp_path)


def test_sweep_rows_per_fraction():
    cell = {"t1": {"mean": 90.0, "std": 1.0}, "u": {"mean": 60.0, "std": 2.0},
            "s": {"mean": 80.0, "std": 3.0}, "h": {"mean": 68.6, "std": 4.5}, "n": 3}
    rows = sweep_rows({"zerodiffpp": {"p100": cell, "p10": cell}, "fclswgan": {"p10": cell}})
    assert set(rows) == {"p100", "p10"} and list(rows["p10"]) == ["zerodiffpp", "fclswgan"]
    assert rows["p100"]["zerodiffpp"] == {"T1": 90.0, "U": 60.0, "S": 80.0, "H": 68.6, "H_sd": 4.5}
    with pytest.raises(DataError, match=r"\[zerodiffpp\]\[p100\]"):
        sweep_rows({"zerodiffpp": {"p100": {"h": {"mean": 1.0}}}})


def test_table_stage_writes_one_file_per_method(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    details = tmp_path / "metrics"
    write_details(details)
    (tmp_path / "params.yaml").write_text("{}\n")
    assert table_main(["--metrics", str(details), "--out", str(details / "main")]) == 0
    assert sorted(p.name for p in (details / "main").iterdir()) == sorted(f"{m}.json" for m in ROWS)
    assert json.loads((details / "main" / "eszsl.json").read_text())["chosen"] == "g10 l0.1 c0.8869"
