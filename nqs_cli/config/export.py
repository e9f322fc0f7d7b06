"""The resolved config as plain data: ``to_dict`` (every value) and ``flatten`` (dotted keys)."""

from __future__ import annotations

import dataclasses
import json
import math
import re
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
            value = [list(v) if isinstance(v, tuple) else v for v in value]
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


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def to_toml(data: dict, header: str = "") -> str:
    """``data`` (plain TOML values: tables, lists, strings, numbers, booleans) as a TOML
    document, optionally after comment lines ``header``; reading it back gives ``data``."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    _table(data, [], lines)
    return "\n".join(lines).strip("\n") + "\n"


def _table(data: dict, path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines += ["", "[" + ".".join(_key(p) for p in path) + "]"]
    lines += [f"{_key(k)} = {toml_value(v)}" for k, v in scalars.items()]
    for k, v in tables.items():
        _table(v, path + [k], lines)


def _key(k: str) -> str:
    return k if _BARE_KEY.match(k) else json.dumps(k, ensure_ascii=False)


def toml_value(v: Any) -> str:
    """One value as TOML text."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"not a TOML value: {v!r}")
