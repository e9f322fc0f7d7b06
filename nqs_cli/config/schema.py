"""The config schema: frozen dataclasses, one per TOML section, with each field's check.

A field's metadata says which kinds of its section it belongs to (``kinds``) and how its
value is checked (``check(value) -> str | None``, the expectation text when bad).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


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
    target_acceptance: float | None = opt(None, lambda v: None if 0 <= v < 1 else "between 0 (no adaptation) and 1", kinds=("metropolis-gaussian",))


@dataclass(frozen=True)
class SRConfig:
    diag_shift: float = opt(None, positive)
    solver: str = opt("auto", one_of("cholesky", "cg", "auto"))
    mode: str = opt("auto", one_of("auto", "S", "minsr"))
    tol: float = opt(1e-5, lambda v: None if 0 < v < 1 else "between 0 and 1")  # CG relative residual
    diag_shift_start: float = opt(None, non_negative)  # shift at step 0, decaying geometrically to diag_shift (0: constant)
    diag_shift_steps: int = opt(None, non_negative)  # iterations of that decay


@dataclass(frozen=True)
class OptimizerConfig:
    kind: str = opt("sgd", one_of("sgd", "adam"))
    learning_rate: float = opt(None, positive)
    sr: SRConfig | None = opt(SRConfig())  # on by default; `sr = false` turns it off
    warmup: int = opt(None, non_negative)  # iterations of linear learning-rate warm-up (0: none)
    trust_region: float = opt(None, non_negative)  # bound on ΔθᵀSΔθ per iteration (squared Fubini–Study step; 0: none)


@dataclass(frozen=True)
class TrainConfig:
    n_iter: int = opt(300, at_least(1))
    checkpoint_every: int = opt(50, at_least(1))
    on_nonfinite: str = opt("stop", one_of("stop", "revert"))
    nonfinite_patience: int = opt(5, at_least(1))
    final_window: int = opt(50, at_least(1))
    exact_energy: bool = opt(True)
    reference_energy: float | None = opt(None)  # a known ground-state energy (DMRG, literature) when exact diagonalisation cannot reach
    chunk_size: int | None = opt(None, at_least(1))  # samples per chunk of local-energy / Jacobian evaluation
    spike_factor: float = opt(10.0, lambda v: None if v > 1 else "> 1")  # a variance this many times the recent median is a spike
    spike_retries: int = opt(3, non_negative)  # retries of the step before a spike, with half the step each (0: off)
    dead_steps: int = opt(5, at_least(1))  # consecutive iterations with Tr S = 0 that fail the run (ψ no longer depends on its parameters)
    final_samples: int | None = opt(None, non_negative)  # samples of the final evaluation with fresh chains (0: none)


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
