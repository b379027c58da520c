"""dvc.yaml: every stage depends on the code it runs.

A stage's command ``python -m zerodiffpp.stages.<name>`` imports package modules, directly and
transitively (including imports inside functions and modules named in strings such as
``"zerodiffpp.train_dfg"``).  Each of them must be covered by the stage's ``deps`` (the file or
a folder above it) -- otherwise editing it would leave ``dvc repro`` and the run-cache serving
stale results -- except the plumbing listed in PLUMBING, whose changes do not change numbers
(parameter parsing, atomic I/O, device/thread setup, the stage wrapper).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from conftest import REPO

SRC = REPO / "src"
PKG = SRC / "zerodiffpp"
PLUMBING = {"zerodiffpp", "zerodiffpp.config", "zerodiffpp.io", "zerodiffpp.runtime",
            "zerodiffpp.stages", "zerodiffpp.stages.common", "zerodiffpp.data",
            "zerodiffpp.data.prepared"}


def module_file(name: str) -> Path | None:
    base = SRC.joinpath(*name.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def imported_modules(name: str) -> set[str]:
    """Package modules imported anywhere in module ``name`` (relative and absolute imports,
    ``from pkg import module`` forms, and ``"zerodiffpp.x"`` strings)."""
    path = module_file(name)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
            else:
                mod = node.module or ""
            if mod.startswith("zerodiffpp"):
                found.add(mod)
                found.update(f"{mod}.{a.name}" for a in node.names if module_file(f"{mod}.{a.name}"))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("zerodiffpp"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = re.fullmatch(r"(zerodiffpp(?:\.\w+)+)(?::\w+)?", node.value)   # "pkg.mod[:Class]"
            if m:
                found.add(m.group(1))
    return {m for m in found if module_file(m)}


def closure(entry: str) -> set[str]:
    seen, todo = set(), [entry]
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        todo.extend(imported_modules(mod) - seen)
    return seen


def stages():
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        stage = stage.get("do", stage)
        m = re.match(r"python -m (zerodiffpp\.stages\.\w+)", stage["cmd"])
        if m:
            yield name, m.group(1), [str(d) for d in stage.get("deps", [])]


@pytest.mark.parametrize("name,entry,deps", list(stages()), ids=lambda v: v if isinstance(v, str) else "")
def test_stage_deps_cover_the_code_it_imports(name, entry, deps):
    missing = []
    for mod in sorted(closure(entry) - PLUMBING):
        rel = module_file(mod).relative_to(REPO).as_posix()
        if not any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps):
            missing.append(rel)
    assert not missing, f"dvc.yaml stage {name!r} runs {entry} but does not depend on {missing}"


def test_the_import_scan_sees_function_level_and_string_imports():
    mods = closure("zerodiffpp.stages.train_dfg")
    assert "zerodiffpp.train_dfg" in mods            # named in a string (importlib)
    assert "zerodiffpp.train_drg" in mods            # imported by train_dfg.py
    assert "zerodiffpp.train_dfg" not in closure("zerodiffpp.stages.train_drg")
    assert "zerodiffpp.trainloop" in mods            # inside a function of train_generator.py
