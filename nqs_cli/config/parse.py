"""Reading a config: TOML, ``--set`` overrides, type and range checks per field.

Every value is type- and range-checked here, before any JAX work. Errors are
``ConfigError`` with one line naming the file and the dotted key.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import sys
from pathlib import Path
from typing import Any

from nqs_cli.config.export import to_toml
from nqs_cli.config.resolve import resolve
from nqs_cli.config.schema import (
    HAMILTONIAN_KINDS,
    SECTIONS,
    SUBSECTIONS,
    TOP_KEYS,
    Config,
    ConfigError,
    HamiltonianConfig,
    HilbertConfig,
    LatticeConfig,
    SpaceConfig,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class _Parser:
    def __init__(self, source: str):
        self.source = source
        self.explicit: set[str] = set()

    def fail(self, key: str, message: str):
        raise ConfigError(f"{self.source}: {key}: {message}")

    def unknown(self, key: str, name: str, valid):
        hint = difflib.get_close_matches(name, list(valid), n=1)
        suggestion = f' (did you mean "{hint[0]}"?)' if hint else ""
        self.fail(key, f"unknown key{suggestion}; valid keys: {', '.join(sorted(valid))}")

    def coerce(self, key: str, value: Any, tp: Any) -> Any:
        """Check ``value`` against the annotation string ``tp`` (bool is never an int)."""
        tp = str(tp)
        alternatives = [t.strip() for t in tp.split("|")]
        if value is None and "None" in alternatives:
            return None
        for alt in alternatives:
            ok, out = _coerce_one(value, alt)
            if ok:
                return out
        expected = " or ".join(_TYPE_WORDS.get(a, a) for a in alternatives if a != "None")
        self.fail(key, f"expected {expected}, got {_show(value)}")

    def section(self, name: str, cls, raw: Any, kind_hint: str | None = None):
        key = name
        if not isinstance(raw, dict):
            self.fail(key, f"expected a table [{name}], got {_show(raw)}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for k in raw:
            if k not in fields:
                self.unknown(f"{key}.{k}", k, fields)
        values: dict[str, Any] = {}
        kind = raw.get("kind", kind_hint)
        for fname, f in fields.items():
            dotted = f"{key}.{fname}"
            sub = SUBSECTIONS.get((name, fname))
            if fname not in raw:
                continue
            value = raw[fname]
            kinds = f.metadata.get("kinds")
            if kinds is not None and kind is not None and kind not in kinds:
                self.fail(dotted, f'not a key of kind "{kind}" (it belongs to {", ".join(kinds)})')
            if sub is not None:
                if value is False:
                    values[fname] = None
                elif isinstance(value, dict):
                    values[fname] = self.section(dotted, sub, value)
                else:
                    self.fail(dotted, f"expected a table [{dotted}] or false, got {_show(value)}")
                self.explicit.add(dotted)
                continue
            value = self.coerce(dotted, value, f.type)
            check = f.metadata.get("check")
            if check is not None and value is not None:
                problem = check(value)
                if problem is not None:
                    self.fail(dotted, f"expected {problem}, got {_show(value)}")
            values[fname] = value
            self.explicit.add(dotted)
        return cls(**values)


_TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "tuple[int, ...]": "a list of integers",
    "tuple[float, ...]": "a list of numbers",
    "tuple[bool, ...]": "a list of true/false",
    "tuple[tuple[int, ...], ...]": "a list of integer lists",
    "tuple[str, ...]": "a list of strings",
}


def _coerce_one(value: Any, tp: str):
    if tp == "bool":
        return isinstance(value, bool), value
    if tp == "int":
        return isinstance(value, int) and not isinstance(value, bool), value
    if tp == "float":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        return ok, float(value) if ok else None
    if tp == "str":
        return isinstance(value, str), value
    if tp.startswith("tuple["):
        inner = tp[len("tuple["):-len(", ...]")]
        if not isinstance(value, list) or (not value and inner != "str"):  # a list of names may be empty
            return False, None
        items = [_coerce_one(v, inner) for v in value]
        return all(ok for ok, _ in items), tuple(v for _, v in items)
    return False, None


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a table"
    return repr(value)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], value); the value is read as TOML, else as a bare string."""
    if "=" not in text:
        raise ConfigError(f"--set {text}: expected KEY=VALUE, e.g. --set sampler.n_chains=32")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text}: expected KEY=VALUE with a dotted key")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):
        value = raw.strip()
    return key.split("."), value


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    for text in overrides:
        path, value = parse_override(text)
        node = raw
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text}: {part} is not a table")
        node[path[-1]] = value
    return raw


MAX_CONFIG_BYTES = 1 << 20  # a config is a few hundred bytes; anything near this is not one


def read_toml(path: Path) -> dict:
    """The TOML table in ``path``: a regular file of at most 1 MiB (UTF-8, a byte-order mark
    allowed); every failure is a ConfigError naming the file."""
    try:
        if not path.exists():
            raise ConfigError(f"{path}: no such config file")
        if not path.is_file():
            raise ConfigError(f"{path}: not a regular file (a config is a TOML file)")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size} bytes is too large for a config (at most {MAX_CONFIG_BYTES})")
        text = path.read_bytes().decode("utf-8")
    except ConfigError:
        raise
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.__class__.__name__})") from None
    return loads_toml(text.removeprefix("\ufeff"), str(path))


def loads_toml(text: str, source: str) -> dict:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise ConfigError(f"{source}: invalid TOML: nested too deeply") from None


def effective_toml(path: str | Path, overrides: list[str], n_iter: int | None, name: str) -> str:
    """The config a run actually uses, as TOML: the file with the ``--set`` overrides and
    ``--n-iter`` applied and its name made explicit, after comment lines listing them; training
    from it alone reproduces the run."""
    path = Path(path)
    raw = apply_overrides(read_toml(path), list(overrides))
    changes = [f"--set {o}" for o in overrides]
    if n_iter is not None:
        train = raw.setdefault("train", {})
        train["n_iter"] = n_iter
        changes.append(f"--n-iter {n_iter}")
    raw = {"name": name, **raw}
    if changes:
        header = f"The effective config of this run: {path} with\n" + "".join(f"  {c}\n" for c in changes) + "(the file as given: config.given.toml)"
    else:
        header = f"The effective config of this run: {path} as given (also in config.given.toml)"
    return to_toml(raw, header)


def load(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Read, override, validate and resolve a config file."""
    path = Path(path)
    raw = read_toml(path)
    return from_dict(raw, source=str(path), default_name=path.stem, overrides=overrides)


def from_dict(raw: dict, source: str = "<config>", default_name: str = "run", overrides: list[str] | None = None) -> Config:
    try:
        raw = apply_overrides(raw, list(overrides or []))
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    p = _Parser(source)
    for k in raw:
        if k not in SECTIONS and k not in TOP_KEYS:
            p.unknown(k, k, list(SECTIONS) + list(TOP_KEYS))
        elif k in SECTIONS and not isinstance(raw[k], dict):
            shape = "an array of tables [[" + k + "]]" if isinstance(raw[k], list) else _show(raw[k])
            p.fail(k, f"expected a table [{k}], got {shape}")
    top = _top_keys(p, raw)
    sections = _system_sections(p, raw)
    for name in ("model", "sampler", "optimizer", "train", "distributed", "observables"):
        sections[name] = p.section(name, SECTIONS[name], raw.get(name, {}), kind_hint=raw.get(name, {}).get("kind"))

    cfg = Config(
        name=top.get("name", default_name),
        seed=top.get("seed", 0),
        dtype=top.get("dtype", "float64"),
        source=source,
        **sections,
    )
    return resolve(cfg, p)


MAX_SEED = 2**62  # derived seeds (seed + small offsets) stay within 64 bits
MAX_NAME = 100  # the run directory adds a 17-character timestamp; file names end at 255 bytes


def _top_keys(p: _Parser, raw: dict) -> dict[str, Any]:
    """name, seed, dtype: checked."""
    top: dict[str, Any] = {}
    for k, tp in TOP_KEYS.items():
        if k in raw:
            top[k] = p.coerce(k, raw[k], tp.__name__)
            p.explicit.add(k)
    if "seed" in top and not 0 <= top["seed"] <= MAX_SEED:
        p.fail("seed", f"expected an integer between 0 and {MAX_SEED} (2^62), got {top['seed']}")
    if top.get("dtype", "float64") not in ("float64", "float32"):
        p.fail("dtype", f'expected one of "float64", "float32", got {_show(top["dtype"])}')
    name = top.get("name")
    if name is not None and (not name or "/" in name or not name.isprintable() or len(name) > MAX_NAME or name in (".", "..")):
        p.fail("name", f"expected a name of 1 to {MAX_NAME} printable characters without '/', got {json.dumps(name)[:60]}")
    return top


def _system_sections(p: _Parser, raw: dict) -> dict[str, Any]:
    """[hamiltonian] and either [lattice] + [hilbert] or [space], parsed."""
    discrete = "lattice" in raw or "hilbert" in raw
    if discrete and "space" in raw:
        p.fail("space", "a config describes either a lattice system ([lattice] + [hilbert]) or particles in continuous space ([space]), not both")
    if not discrete and "space" not in raw:
        p.fail("lattice", "missing system: give [lattice] + [hilbert] for a lattice system, or [space] for particles in continuous space")
    if "hamiltonian" not in raw or "kind" not in raw.get("hamiltonian", {}):
        p.fail("hamiltonian.kind", f"required; one of {', '.join(HAMILTONIAN_KINDS)}")
    ham = p.section("hamiltonian", HamiltonianConfig, raw["hamiltonian"])
    sections: dict[str, Any] = {"hamiltonian": ham}
    if discrete:
        if ham.kind == "continuous":
            p.fail("hamiltonian.kind", '"continuous" needs a [space] section, not [lattice]/[hilbert]')
        hint = "spin" if ham.kind == "heisenberg" else "fock"
        sections["lattice"] = p.section("lattice", LatticeConfig, raw.get("lattice", {}))
        hraw = dict(raw.get("hilbert", {}))
        sections["hilbert"] = p.section("hilbert", HilbertConfig, hraw, kind_hint=hint)
        if "kind" not in hraw:
            sections["hilbert"] = dataclasses.replace(sections["hilbert"], kind=hint)
    else:
        if ham.kind != "continuous":
            p.fail("hamiltonian.kind", f'"{ham.kind}" is a lattice Hamiltonian; particles in [space] need kind = "continuous"')
        sections["space"] = p.section("space", SpaceConfig, raw["space"])
    return sections
