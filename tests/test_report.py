"""The README results table is generated from the metrics files, never typed."""
import json
from pathlib import Path

from zerodiffpp.report import START, END, collect, main, render, update_readme

REPO = Path(__file__).resolve().parents[1]


def write_metrics(d: Path):
    (d / "baselines").mkdir(parents=True)
    acc = lambda t1, u, s, h: {"zsl": {"t1": t1}, "gzsl": {"u": u, "s": s, "h": h}}
    (d / "zerodiff.json").write_text(json.dumps({"zerodiff": acc(50, 40, 60, 48),
                                                 "zerodiffpp": acc(55, 45, 61, 51.79)}))
    (d / "baselines" / "fvaegan.json").write_text(json.dumps({"fvaegan": acc(40, 30, 70, 42)}))
    (d / "spuriousness.json").write_text(json.dumps({"zerodiff": {"s_seen": 0.1234, "s_unseen": -0.5}}))


def test_table_rows_come_from_files(tmp_path):
    write_metrics(tmp_path)
    rows = collect(tmp_path)
    assert set(rows) == {"zerodiff", "zerodiffpp", "fvaegan"}
    table = render(rows, "animals")
    assert "| ZeroDiff | inductive | 50.00 | 40.00 | 60.00 | 48.00 | 0.123 | -0.500 |" in table
    assert "| ZeroDiff++ (DiffTTA + DiffGen) | transductive | 55.00 | 45.00 | 61.00 | 51.79 | – | – |" in table
    # inductive baselines first, in a fixed order
    assert table.index("f-VAEGAN") < table.index("| ZeroDiff |")


def test_readme_update_and_check(tmp_path):
    write_metrics(tmp_path / "m")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\nold\n{END}\nrest\n")
    args = ["--readme", str(readme), "--metrics", str(tmp_path / "m"), "--dataset", "animals"]
    assert main(args + ["--check"]) == 1
    assert main(args) == 0
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("rest\n") and "old" not in text
    assert main(args + ["--check"]) == 0


def test_missing_markers_is_an_error(tmp_path):
    import pytest
    from zerodiffpp.io import DataError

    with pytest.raises(DataError, match="markers"):
        update_readme("no markers", "table")


def test_committed_readme_matches_committed_metrics():
    """The README's table must be regenerated whenever metrics/ change."""
    if not (REPO / "metrics" / "zerodiff.json").exists():
        import pytest
        pytest.skip("no committed metrics yet")
    extra = []
    snu = REPO / "results" / "snu-b36-ex" / "sweep.json"
    if snu.exists():
        extra = ["--sweep-block", f"snu={snu.relative_to(REPO)}"]
    import os
    cwd = os.getcwd()
    os.chdir(REPO)               # the README command is run from the repository root
    try:
        assert main(["--readme", "README.md", "--metrics", "metrics", "--dataset", "animals",
                     "--check", *extra]) == 0
    finally:
        os.chdir(cwd)


def test_sweep_and_findings_blocks(tmp_path):
    write_metrics(tmp_path / "m")
    stat = lambda m, s: {"mean": m, "std": s}     # noqa: E731
    cell = lambda h, u: {"n": 3, "h": stat(h, 1.0), "u": stat(u, 1.0), "s": stat(80, 1.0),
                         "t1": stat(70, 1.0), "s_seen": stat(0.1, 0.01),
                         "s_unseen": stat(0.2, 0.01)}     # noqa: E731
    sweep = {"zerodiff": {"p100": cell(40, 30)}, "zerodiffpp": {"p100": cell(50, 45)},
             "zerodiff_tta": {"p100": cell(41, 31)}, "zerodiff_diffgen": {"p100": cell(44, 38)}}
    (tmp_path / "m" / "sweep.json").write_text(json.dumps(sweep))
    readme = tmp_path / "README.md"
    readme.write_text(f"{START}\n{END}\n<!-- sweep:start -->\n<!-- sweep:end -->\n"
                      "<!-- findings:start -->\n<!-- findings:end -->\n")
    assert main(["--readme", str(readme), "--metrics", str(tmp_path / "m"),
                 "--dataset", "toy"]) == 0
    text = readme.read_text()
    assert "| 100 % | ZeroDiff++ (DiffTTA + DiffGen) | transductive | 3 | 70.0 ± 1.0 |" in text
    # +10 H with se sqrt(2/3) ~ 0.82 -> positive; +1 H -> unclear (< 2 se)
    assert "both H +10.0 (positive)" in text and "DiffTTA H +1.0 (unclear)" in text
    assert "spuriousness claims: not testable" in text      # one fraction only
