"""Reliability, bad params (docs/reliability.md): EVERY field of every params.yaml section is
checked for type, range and allowed values, with a message naming the full parameter path and
what is allowed; ``runtime.device=cuda`` without a GPU stops a stage with ``error:`` / exit 2."""
from __future__ import annotations

import dataclasses
import types
import typing

import pytest
import torch
import yaml

from zerodiffpp import runtime
from zerodiffpp.config import SECTIONS, ConfigError, config_from_dict


def all_fields():
    """(path, field, annotation) for every leaf parameter, nested sections included."""
    out = []

    def walk(cls, prefix):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, f"{prefix}.{f.name}")
            else:
                out.append((f"{prefix}.{f.name}", f, tp))

    for name, cls in SECTIONS.items():
        walk(cls, name)
    return out


FIELDS = all_fields()


def nest(path: str, value) -> dict:
    raw: dict = {}
    node = raw
    parts = path.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return raw


def base_type(tp):
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(tp) if a is not type(None)][0]
    return tp


WRONG_TYPE = {int: ("abc", "expected an integer"), float: ("abc", "expected a number"),
              bool: ("yes", "expected true or false"), str: (5, "expected a string")}


@pytest.mark.parametrize("path, field, tp", FIELDS, ids=[p for p, _, _ in FIELDS])
def test_every_param_rejects_wrong_type(path, field, tp):
    tp = base_type(tp)
    if typing.get_origin(tp) is list:
        value, fragment = "abc", "expected a list"
    elif typing.get_origin(tp) is dict:
        value, fragment = "abc", "expected a mapping"
    else:
        value, fragment = WRONG_TYPE[tp]
    with pytest.raises(ConfigError) as err:
        config_from_dict(nest(path, value))
    assert str(err.value) == f"{path}={value!r}: {fragment}"


CHOICE_FIELDS = [(p, f) for p, f, _ in FIELDS if f.metadata.get("choices")]
RANGE_FIELDS = [(p, f, base_type(tp)) for p, f, tp in FIELDS
                if any(f.metadata.get(k) is not None for k in ("ge", "gt", "le", "lt"))]


@pytest.mark.parametrize("path, field", CHOICE_FIELDS, ids=[p for p, _ in CHOICE_FIELDS])
def test_every_enum_param_lists_allowed_values(path, field):
    with pytest.raises(ConfigError) as err:
        config_from_dict(nest(path, "bogus"))
    choices = ", ".join(map(str, field.metadata["choices"]))
    assert str(err.value) == f"{path}='bogus': must be one of {choices}"


def outside(meta, tp):
    """A value just outside the allowed range, and the comparison the message states."""
    step = 1 if tp is int else 1e-9
    if meta.get("ge") is not None:
        return meta["ge"] - step, ">="
    if meta.get("gt") is not None:
        return meta["gt"], ">"
    if meta.get("le") is not None:
        return meta["le"] + step, "<="
    return meta["lt"], "<"


@pytest.mark.parametrize("path, field, tp", RANGE_FIELDS, ids=[p for p, _, _ in RANGE_FIELDS])
def test_every_bounded_param_states_its_range(path, field, tp):
    value, sym = outside(field.metadata, tp)
    with pytest.raises(ConfigError) as err:
        config_from_dict(nest(path, value))
    msg = str(err.value)
    assert msg.startswith(f"{path}={value!r}: must be {sym} ") and "(allowed: " in msg, msg


def test_every_param_is_covered():
    """Each leaf parameter is type-checked above; each number has a bound or is a free float."""
    assert len(FIELDS) > 80
    free = [p for p, f, tp in FIELDS if base_type(tp) in (int, float)
            and all(f.metadata.get(k) is None for k in ("ge", "gt", "le", "lt"))]
    assert free == [], f"numeric params without a range: {free}"


@pytest.mark.parametrize("raw, fragment", [
    ({"data": {"dataset": "MNIST"}},
     "data.dataset='MNIST': must be one of animals, snu-b36-ex, AWA2, CUB, SUN, APY, AWA1, FLO, xlsa17, synthetic"),
    ({"train": {"seen_fraction": 0}}, "train.seen_fraction=0.0: must be > 0.0 (allowed: (0.0, 1.0])"),
    ({"runtime": {"threads": 2.5}}, "runtime.threads=2.5: expected an integer"),
    ({"diffusion": {"beta_max": float("inf")}}, "diffusion.beta_max=inf: expected a finite number"),
])
def test_examples_for_the_docs_table(raw, fragment):
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw)
    assert str(err.value) == fragment


def test_cuda_without_gpu_fails_at_setup(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as err:
        runtime.select_device("cuda")
    assert str(err.value) == ("runtime.device=cuda: no CUDA device is available on this machine "
                              "(allowed: auto, cpu, cuda; use auto or cpu here)")
    assert runtime.select_device("auto").type == "cpu"


@pytest.mark.parametrize("stage", ["train_drg", "train_dfg", "evaluate"])
def test_cuda_without_gpu_is_a_stage_error(tmp_path, capsys, monkeypatch, stage):
    import importlib

    from zerodiffpp.trainloop import random_prepared_data

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = torch.get_num_threads()
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"runtime": {"device": "cuda", "threads": 1, "progress": False},
                                      "eval": {"selection": "fixed"}}))
    random_prepared_data(n_train=16, x_dim=4, c_dim=4, attr_dim=3).save(tmp_path / "p" / "prepared.npz")
    main = importlib.import_module(f"zerodiffpp.stages.{stage}").main
    args = ["--params", str(params), "--prepared", str(tmp_path / "p")]
    if stage == "evaluate":
        args += ["--metrics", str(tmp_path / "m.json"), "--eval-dir", str(tmp_path / "out"),
                 "--per-class", str(tmp_path / "out" / "pc.csv")]
    else:
        args += ["--out", str(tmp_path / "out"), "--history", str(tmp_path / "h.csv")]
    try:
        assert main(args) == 2
    finally:
        torch.set_num_threads(before)
    err = capsys.readouterr().err
    assert err == ("error: runtime.device=cuda: no CUDA device is available on this machine "
                   "(allowed: auto, cpu, cuda; use auto or cpu here)\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p", "params.yaml"]


@pytest.mark.parametrize("table, message", [
    ({"x": 600}, "eval.syn_per_class_by_fraction key='x': expected a number"),
    ({0.1: "many"}, "eval.syn_per_class_by_fraction[0.1]='many': expected an integer"),
    ({1.5: 600}, "eval.syn_per_class_by_fraction[1.5]: the key is a seen fraction, must be in (0, 1]"),
    ({0.1: 0}, "eval.syn_per_class_by_fraction[0.1]=0: must be >= 1"),
])
def test_syn_per_class_table_is_validated(table, message):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"eval": {"syn_per_class_by_fraction": table}})
    assert str(err.value) == message


@pytest.mark.parametrize("fraction, expected", [(1.0, 5400), (0.3, 1800), (0.1, 600), (0.5, 5400)])
def test_syn_per_class_follows_the_seen_fraction(fraction, expected):
    """METHOD.md 1.2 (AWA2 DFG): 5400 / 1800 / 600 at 100 / 30 / 10 %; unlisted -> syn_per_class.
    Stages that load only some sections see the same count."""
    raw = {"train": {"seen_fraction": fraction},
           "eval": {"syn_per_class": 5400, "syn_per_class_by_fraction": {0.3: 1800, 0.1: 600}}}
    assert config_from_dict(raw).eval.syn_per_class == expected
    assert config_from_dict(raw, sections=("runtime", "eval")).eval.syn_per_class == expected
