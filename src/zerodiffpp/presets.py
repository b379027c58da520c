"""Apply a documented hyper-parameter preset (``presets/<NAME>.yaml``) to params.yaml.

    python -m zerodiffpp.presets AWA2 [--params params.yaml] [--presets presets]

The preset is deep-merged over the current params, the result validated with the same
rules as every stage, and params.yaml rewritten atomically.  Comments in params.yaml
are not preserved (the presets document themselves).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from .config import ConfigError, config_from_dict
from .io import write_text


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def apply_preset(name: str, params: Path, presets: Path) -> dict:
    preset_file = presets / f"{name}.yaml"
    if not preset_file.exists():
        known = sorted(p.stem for p in presets.glob("*.yaml"))
        raise ConfigError(f"preset {name!r}: no file {preset_file} (known: {', '.join(known)})")
    merged = merge(yaml.safe_load(params.read_text()) or {}, yaml.safe_load(preset_file.read_text()) or {})
    config_from_dict(merged)  # refuse to write an invalid params.yaml
    write_text(params, yaml.safe_dump(merged, sort_keys=False))
    return merged


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--presets", type=Path, default=Path("presets"))
    args = parser.parse_args(argv)
    try:
        apply_preset(args.name, args.params, args.presets)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"applied preset {args.name} to {args.params}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
