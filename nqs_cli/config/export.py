"""The resolved config as plain data: ``to_dict`` (every value) and ``flatten`` (dotted keys)."""

from __future__ import annotations

import dataclasses
from typing import Any

from nqs_cli.config.schema import SECTIONS, SUBSECTIONS, Config


def to_dict(cfg: Config) -> dict:
    """The resolved config as plain data (every value, defaults included)."""
    out: dict[str, Any] = {"name": cfg.name, "seed": cfg.seed, "dtype": cfg.dtype}
    for name in SECTIONS:
        section = getattr(cfg, name)
        if section is not None:
            out[name] = _section_dict(section, name)
    return out


def _section_dict(section, name: str) -> dict:
    kind = getattr(section, "kind", None)
    out = {}
    for f in dataclasses.fields(section):
        kinds = f.metadata.get("kinds")
        if kinds is not None and kind is not None and kind not in kinds:
            continue
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value):
            value = _section_dict(value, f"{name}.{f.name}")
        elif isinstance(value, tuple):
            value = list(value)
        elif value is None and (name, f.name) in SUBSECTIONS:
            value = False
        out[f.name] = value
    return out


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
