"""The TOML config contract: frozen dataclasses, loading, overrides and validation.

Every value is type- and range-checked here, before any JAX work. Errors are
``ConfigError`` with one line naming the file and the dotted key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    """A user-caused config problem; the message is one line naming file and key."""


# --------------------------------------------------------------------------- field specs
# A field's metadata says which kinds of its section it belongs to and how to check it.
# ``check(value) -> str | None`` returns the expectation text when the value is bad.


def opt(default: Any, check: Callable[[Any], str | None] | None = None, kinds: tuple[str, ...] | None = None):
    return field(default=default, metadata={"check": check, "kinds": kinds})


def positive(v):
    return None if v > 0 else "> 0"


def non_negative(v):
    return None if v >= 0 else ">= 0"


def at_least(lo):
    return lambda v: None if v >= lo else f">= {lo}"


def one_of(*choices):
    def check(v):
        return None if v in choices else "one of " + ", ".join(f'"{c}"' for c in choices)

    check.choices = choices
    return check


def all_positive(v):
    vals = v if isinstance(v, tuple) else (v,)
    return None if all(x > 0 for x in vals) else "positive integers"


# --------------------------------------------------------------------------- sections

SYSTEM_KINDS = ("fock", "spin")
HAMILTONIAN_KINDS = ("bose-hubbard", "heisenberg", "continuous")
MODEL_KINDS = ("rbm-multival", "deepsets", "deepsets-reldist")
SAMPLER_KINDS = ("metropolis-local", "metropolis-exchange", "metropolis-hamiltonian", "metropolis-gaussian")
PAIR_KINDS = ("gaussian", "lennard-jones", "aziz")
ACTIVATION_NAMES = ("gelu", "tanh", "log_cosh", "relu", "silu", "softplus", "sigmoid", "none", "identity")


@dataclass(frozen=True)
class LatticeConfig:
    graph: str = opt("chain", one_of("chain", "square", "hypercube"))
    length: int = opt(8, at_least(1))
    dims: int = opt(1, at_least(1))
    pbc: bool = opt(True)


@dataclass(frozen=True)
class HilbertConfig:
    kind: str = opt("fock", one_of(*SYSTEM_KINDS))
    n_max: int | None = opt(None, at_least(1), kinds=("fock",))
    n_particles: int | None = opt(None, non_negative, kinds=("fock",))
    s: float = opt(0.5, lambda v: None if v > 0 and float(2 * v).is_integer() else "a positive multiple of 1/2", kinds=("spin",))
    total_sz: float | None = opt(None, lambda v: None if float(2 * v).is_integer() else "a multiple of 1/2", kinds=("spin",))


@dataclass(frozen=True)
class SpaceConfig:
    n_particles: int = opt(None, at_least(1))
    dims: int = opt(1, at_least(1))
    extent: float | tuple[float, ...] = opt(0.0, lambda v: None if all(x >= 0 for x in (v if isinstance(v, tuple) else (v,))) else ">= 0")
    mass: float = opt(1.0, positive)


@dataclass(frozen=True)
class PairConfig:
    kind: str = opt("gaussian", one_of(*PAIR_KINDS))
    g: float = opt(1.0, kinds=("gaussian",))
    sigma: float = opt(1.0, positive, kinds=("gaussian", "lennard-jones"))
    epsilon: float = opt(1.0, positive, kinds=("lennard-jones",))
    cutoff: float | None = opt(None, positive)


@dataclass(frozen=True)
class HamiltonianConfig:
    kind: str = opt(None, one_of(*HAMILTONIAN_KINDS))
    J: float = opt(1.0, kinds=("bose-hubbard", "heisenberg"))
    U: float = opt(4.0, kinds=("bose-hubbard",))
    V: float = opt(0.0, kinds=("bose-hubbard",))
    mu: float = opt(0.0, kinds=("bose-hubbard",))
    beta: float = opt(0.0, kinds=("heisenberg",))
    sign_rule: bool | None = opt(None, kinds=("heisenberg",))
    trap_omega: float = opt(0.0, non_negative, kinds=("continuous",))
    pair: PairConfig | None = opt(None, kinds=("continuous",))


@dataclass(frozen=True)
class ModelConfig:
    kind: str = opt(None, one_of(*MODEL_KINDS))
    alpha: float = opt(1.0, positive, kinds=("rbm-multival",))
    use_hidden_bias: bool = opt(True, kinds=("rbm-multival",))
    use_visible_bias: bool = opt(True, kinds=("rbm-multival",))
    param_dtype: str = opt("float64", one_of("float64", "float32"))
    features_phi: int | tuple[int, ...] = opt(None, all_positive, kinds=("deepsets", "deepsets-reldist"))
    features_rho: int | tuple[int, ...] = opt(None, all_positive, kinds=("deepsets", "deepsets-reldist"))
    layers_phi: int = opt(2, at_least(1), kinds=("deepsets-reldist",))
    layers_rho: int = opt(2, at_least(1), kinds=("deepsets-reldist",))
    activation: str = opt("gelu", one_of(*ACTIVATION_NAMES), kinds=("deepsets", "deepsets-reldist"))
    output_activation: str = opt("none", one_of(*ACTIVATION_NAMES), kinds=("deepsets", "deepsets-reldist"))
    use_bias: bool = opt(True, kinds=("deepsets", "deepsets-reldist"))
    envelope: str = opt("gaussian", one_of("gaussian", "none"), kinds=("deepsets",))
    cusp_exponent: int | None = opt(None, at_least(1), kinds=("deepsets-reldist",))


@dataclass(frozen=True)
class SamplerConfig:
    kind: str = opt(None, one_of(*SAMPLER_KINDS))
    n_chains: int = opt(16, at_least(1))
    n_samples: int = opt(1008, at_least(1))
    n_discard_per_chain: int = opt(10, non_negative)
    sweep_size: int | None = opt(None, at_least(1))
    sigma: float | None = opt(None, positive, kinds=("metropolis-gaussian",))


@dataclass(frozen=True)
class SRConfig:
    diag_shift: float = opt(None, positive)
    solver: str = opt("auto", one_of("cholesky", "cg", "auto"))
    mode: str = opt("auto", one_of("auto", "S", "minsr"))
    tol: float = opt(1e-5, lambda v: None if 0 < v < 1 else "between 0 and 1")  # CG relative residual


@dataclass(frozen=True)
class OptimizerConfig:
    kind: str = opt("sgd", one_of("sgd", "adam"))
    learning_rate: float = opt(None, positive)
    sr: SRConfig | None = opt(SRConfig())  # on by default; `sr = false` turns it off


@dataclass(frozen=True)
class TrainConfig:
    n_iter: int = opt(300, at_least(1))
    checkpoint_every: int = opt(50, at_least(1))
    on_nonfinite: str = opt("stop", one_of("stop", "revert"))
    nonfinite_patience: int = opt(5, at_least(1))
    final_window: int = opt(50, at_least(1))
    exact_energy: bool = opt(True)
    chunk_size: int | None = opt(None, at_least(1))  # samples per chunk of local-energy / Jacobian evaluation


def host_port(v):
    host, sep, port = v.rpartition(":")
    return None if sep and host and port.isdigit() and 0 < int(port) < 65536 else '"host:port"'


@dataclass(frozen=True)
class DistributedConfig:
    """Multi-process runs (jax.distributed). All three of coordinator / num_processes /
    process_id, or none: then a cluster launcher's environment is used when ``detect`` is on."""

    coordinator: str | None = opt(None, host_port)
    num_processes: int | None = opt(None, at_least(1))
    process_id: int | None = opt(None, non_negative)
    detect: bool = opt(True)  # SLURM (srun), Open MPI (mpirun), JAX_COORDINATOR_ADDRESS + NQS_* variables
    timeout_s: int = opt(300, at_least(1))


@dataclass(frozen=True)
class Config:
    name: str
    seed: int = 0
    dtype: str = "float64"
    lattice: LatticeConfig | None = None
    hilbert: HilbertConfig | None = None
    space: SpaceConfig | None = None
    hamiltonian: HamiltonianConfig = HamiltonianConfig()
    model: ModelConfig = ModelConfig()
    sampler: SamplerConfig = SamplerConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    train: TrainConfig = TrainConfig()
    distributed: DistributedConfig = DistributedConfig()
    source: str = field(default="<config>", compare=False)
    explicit: frozenset = field(default=frozenset(), compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_continuous(self) -> bool:
        return self.space is not None

    @property
    def n_sites(self) -> int:
        lat = self.lattice
        return lat.length ** lattice_dims(lat)


def lattice_dims(lat: LatticeConfig) -> int:
    return {"chain": 1, "square": 2}.get(lat.graph, lat.dims)


SECTIONS = {
    "lattice": LatticeConfig,
    "hilbert": HilbertConfig,
    "space": SpaceConfig,
    "hamiltonian": HamiltonianConfig,
    "model": ModelConfig,
    "sampler": SamplerConfig,
    "optimizer": OptimizerConfig,
    "train": TrainConfig,
    "distributed": DistributedConfig,
}
SUBSECTIONS = {("hamiltonian", "pair"): PairConfig, ("optimizer", "sr"): SRConfig}
TOP_KEYS = {"name": str, "seed": int, "dtype": str}


# --------------------------------------------------------------------------- parsing


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
        inner = tp[len("tuple["):].split(",")[0]
        if not isinstance(value, list) or not value:
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
    except tomllib.TOMLDecodeError:
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


def read_toml(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc.__class__.__name__})") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


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
    top: dict[str, Any] = {}
    for k, tp in TOP_KEYS.items():
        if k in raw:
            top[k] = p.coerce(k, raw[k], tp.__name__)
            p.explicit.add(k)
    if "seed" in top and top["seed"] < 0:
        p.fail("seed", f"expected an integer >= 0, got {top['seed']}")
    if top.get("dtype", "float64") not in ("float64", "float32"):
        p.fail("dtype", f'expected one of "float64", "float32", got {_show(top["dtype"])}')
    if "name" in top and (not top["name"] or "/" in top["name"]):
        p.fail("name", f"expected a non-empty name without '/', got {_show(top['name'])}")

    discrete = "lattice" in raw or "hilbert" in raw
    if discrete and "space" in raw:
        p.fail("space", "a config describes either a lattice system ([lattice] + [hilbert]) or particles in continuous space ([space]), not both")
    if not discrete and "space" not in raw:
        p.fail("lattice", "missing system: give [lattice] + [hilbert] for a lattice system, or [space] for particles in continuous space")
    if "hamiltonian" not in raw or "kind" not in raw.get("hamiltonian", {}):
        p.fail("hamiltonian.kind", f"required; one of {', '.join(HAMILTONIAN_KINDS)}")

    sections: dict[str, Any] = {}
    ham = p.section("hamiltonian", HamiltonianConfig, raw["hamiltonian"])
    sections["hamiltonian"] = ham
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
    for name in ("model", "sampler", "optimizer", "train", "distributed"):
        sections[name] = p.section(name, SECTIONS[name], raw.get(name, {}), kind_hint=raw.get(name, {}).get("kind"))

    cfg = Config(
        name=top.get("name", default_name),
        seed=top.get("seed", 0),
        dtype=top.get("dtype", "float64"),
        source=source,
        **sections,
    )
    return resolve(cfg, p)


# --------------------------------------------------------------------------- resolution


def resolve(cfg: Config, p: _Parser) -> Config:
    """Fill defaults that depend on other sections, and check cross-section rules."""
    notes: list[str] = []
    model, sampler, ham = cfg.model, cfg.sampler, cfg.hamiltonian
    if cfg.is_continuous:
        space = cfg.space
        if space.n_particles is None:
            p.fail("space.n_particles", "required")
        extent = space.extent if isinstance(space.extent, tuple) else (space.extent,) * space.dims
        if len(extent) != space.dims:
            p.fail("space.extent", f"expected {space.dims} side lengths (one per dimension), got {len(extent)}")
        periodic = any(e > 0 for e in extent)
        if periodic and not all(e > 0 for e in extent):
            p.fail("space.extent", "mixed open and periodic directions are not supported")
        space = dataclasses.replace(space, extent=tuple(float(e) for e in extent))
        cfg = dataclasses.replace(cfg, space=space)
        if not periodic and ham.trap_omega <= 0:
            p.fail("hamiltonian.trap_omega", "open space (space.extent = 0) needs a trap: set trap_omega > 0, or give a periodic box")
        default_model = "deepsets-reldist" if periodic else "deepsets"
        model = _fill(model, kind=default_model)
        if model.kind == "rbm-multival":
            p.fail("model.kind", '"rbm-multival" needs a lattice system; particles in [space] use "deepsets" or "deepsets-reldist"')
        if model.kind == "deepsets-reldist" and not periodic:
            p.fail("model.kind", '"deepsets-reldist" needs a periodic box (space.extent > 0); use "deepsets" in open space')
        if model.kind == "deepsets" and periodic:
            p.fail("model.kind", '"deepsets" is not periodic; use "deepsets-reldist" in a periodic box')
        if model.kind == "deepsets":
            model = _fill(model, features_phi=(16, 16), features_rho=(16,))
        else:
            model = _fill(model, features_phi=16, features_rho=16)
        sampler = _fill(sampler, kind="metropolis-gaussian")
        if sampler.kind != "metropolis-gaussian":
            p.fail("sampler.kind", f'"{sampler.kind}" is a lattice sampler; particles in [space] use "metropolis-gaussian"')
        if sampler.sigma is None:
            scale = min(extent) / 20 if periodic else 0.5 / math.sqrt(ham.trap_omega * space.mass)
            sampler = dataclasses.replace(sampler, sigma=round(scale, 6))
        sweep_default = space.n_particles
    else:
        _check_lattice_system(cfg, p)
        hil = cfg.hilbert
        model = _fill(model, kind="rbm-multival")
        if model.kind != "rbm-multival":
            p.fail("model.kind", f'"{model.kind}" needs particles in continuous space ([space]); lattice systems use "rbm-multival"')
        constrained = (hil.kind == "fock" and hil.n_particles is not None) or (hil.kind == "spin" and hil.total_sz is not None)
        sampler = _fill(sampler, kind="metropolis-hamiltonian")
        if sampler.kind == "metropolis-gaussian":
            p.fail("sampler.kind", '"metropolis-gaussian" is for particles in continuous space; lattice systems use "metropolis-hamiltonian"')
        if sampler.kind == "metropolis-local" and constrained:
            what = "hilbert.n_particles" if hil.kind == "fock" else "hilbert.total_sz"
            p.fail("sampler.kind", f'"metropolis-local" changes the particle number / magnetisation, but {what} is fixed; use "metropolis-hamiltonian"')
        local_dim = hil.n_max + 1 if hil.kind == "fock" else int(round(2 * hil.s)) + 1
        if sampler.kind == "metropolis-exchange" and local_dim > 2:
            p.fail(
                "sampler.kind",
                f'"metropolis-exchange" only permutes site values, so with local dimension {local_dim} it never leaves one occupation multiset '
                '(biased energies); use "metropolis-hamiltonian"',
            )
        sweep_default = cfg.n_sites
    sampler = _fill(sampler, sweep_size=sweep_default)
    family = "lattice" if not cfg.is_continuous else ("box" if any(e > 0 for e in cfg.space.extent) else "trap")
    optimizer = _optimizer_defaults(cfg.optimizer, family)
    if sampler.n_samples % sampler.n_chains:
        rounded = -(-sampler.n_samples // sampler.n_chains) * sampler.n_chains
        notes.append(f"sampler.n_samples rounded up from {sampler.n_samples} to {rounded}, a multiple of sampler.n_chains = {sampler.n_chains}")
        sampler = dataclasses.replace(sampler, n_samples=rounded)
    if cfg.train.checkpoint_every > cfg.train.n_iter and "train.checkpoint_every" in p.explicit:
        notes.append("train.checkpoint_every exceeds train.n_iter: only the final checkpoint is written")
    _check_distributed(cfg.distributed, p)
    cfg = dataclasses.replace(cfg, model=model, sampler=sampler, optimizer=optimizer, explicit=frozenset(p.explicit), notes=tuple(notes))
    _check_kinds(cfg, p)
    return cfg


def _check_distributed(d: DistributedConfig, p: _Parser) -> None:
    given = {k: getattr(d, k) for k in ("coordinator", "num_processes", "process_id") if getattr(d, k) is not None}
    if given and len(given) < 3:
        missing = [k for k in ("coordinator", "num_processes", "process_id") if k not in given]
        p.fail(f"distributed.{missing[0]}", "coordinator, num_processes and process_id are given together (or all left to the cluster environment)")
    if given and d.process_id >= d.num_processes:
        p.fail("distributed.process_id", f"expected < num_processes = {d.num_processes}, got {d.process_id}")


def _check_kinds(cfg: Config, p: _Parser) -> None:
    """Keys given explicitly must belong to their section's resolved kind."""
    for key in sorted(p.explicit):
        parts = key.split(".")
        if len(parts) < 2:
            continue
        section = getattr(cfg, parts[0])
        for part in parts[1:-1]:
            section = getattr(section, part)
        kind = getattr(section, "kind", None)
        f = {f.name: f for f in dataclasses.fields(section)}[parts[-1]]
        kinds = f.metadata.get("kinds")
        if kinds is not None and kind is not None and kind not in kinds:
            p.fail(key, f'not a key of {parts[0]} kind "{kind}" (it belongs to {", ".join(kinds)})')


# Tuned at the design budget (300 iterations, ~1000 samples, SGD + SR): lattice RBMs on the
# Bose-Hubbard and spin-1 chains, DeepSets on the harmonic trap with and without repulsion.
# A periodic box (DeepSetRelDistance) freezes its chains at the trap's settings: smaller steps.
OPTIMIZER_DEFAULTS = {
    "lattice": {"sgd": 0.02, "adam": 0.002, "diag_shift": 0.01},
    "trap": {"sgd": 0.05, "adam": 0.002, "diag_shift": 0.001},
    "box": {"sgd": 0.02, "adam": 0.002, "diag_shift": 0.01},
}


def _optimizer_defaults(opt: OptimizerConfig, family: str) -> OptimizerConfig:
    table = OPTIMIZER_DEFAULTS[family]
    opt = _fill(opt, learning_rate=table[opt.kind])
    if opt.sr is not None:
        opt = dataclasses.replace(opt, sr=_fill(opt.sr, diag_shift=table["diag_shift"]))
    return opt


def _fill(section, **defaults):
    """Replace fields that are still None by the given defaults."""
    updates = {k: v for k, v in defaults.items() if getattr(section, k) is None}
    return dataclasses.replace(section, **updates) if updates else section


def _check_lattice_system(cfg: Config, p: _Parser) -> None:
    lat, hil, ham = cfg.lattice, cfg.hilbert, cfg.hamiltonian
    if lat.graph in ("chain", "square") and "lattice.dims" in p.explicit and lat.dims != lattice_dims(lat):
        p.fail("lattice.dims", f'graph "{lat.graph}" has {lattice_dims(lat)} dimension(s); dims = {lat.dims} contradicts it')
    if cfg.n_sites > 4096:
        p.fail("lattice.length", f"{cfg.n_sites} sites is more than the supported 4096")
    if hil.kind == "fock":
        if ham.kind != "bose-hubbard":
            p.fail("hilbert.kind", f'"fock" space goes with hamiltonian.kind = "bose-hubbard", not "{ham.kind}"')
        if hil.n_max is None:
            p.fail("hilbert.n_max", 'required for kind "fock" (the maximum number of bosons per site)')
        if hil.n_particles is not None and hil.n_particles > cfg.n_sites * hil.n_max:
            p.fail("hilbert.n_particles", f"{hil.n_particles} bosons do not fit on {cfg.n_sites} sites with n_max = {hil.n_max}")
    else:
        if ham.kind != "heisenberg":
            p.fail("hilbert.kind", f'"spin" space goes with hamiltonian.kind = "heisenberg", not "{ham.kind}"')
        if hil.total_sz is not None:
            if abs(hil.total_sz) > hil.s * cfg.n_sites:
                p.fail("hilbert.total_sz", f"|total_sz| = {abs(hil.total_sz)} exceeds s * n_sites = {hil.s * cfg.n_sites}")
            if not float(hil.total_sz - hil.s * cfg.n_sites).is_integer():
                p.fail("hilbert.total_sz", f"{hil.total_sz} is not reachable with {cfg.n_sites} spins s = {hil.s}")
        if ham.sign_rule:
            from nqs_cli.systems.lattice.graph import Lattice

            if not Lattice(lat.graph, lat.length, lattice_dims(lat), lat.pbc).is_bipartite:
                p.fail("hamiltonian.sign_rule", "Marshall's sign rule needs a bipartite lattice (this one has odd periodic loops)")


# --------------------------------------------------------------------------- output


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
