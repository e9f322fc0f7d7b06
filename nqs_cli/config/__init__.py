"""The TOML config contract: schema (frozen dataclasses), parse (TOML, --set), resolve
(defaults, cross-checks), export (plain data)."""

from nqs_cli.config.export import flatten, to_dict, to_toml
from nqs_cli.config.parse import apply_overrides, effective_toml, from_dict, load, parse_override, read_toml
from nqs_cli.config.schema import (
    Config,
    ConfigError,
    DistributedConfig,
    HamiltonianConfig,
    HilbertConfig,
    LatticeConfig,
    ModelConfig,
    ObservablesConfig,
    OptimizerConfig,
    PairConfig,
    SamplerConfig,
    SpaceConfig,
    SRConfig,
    TrainConfig,
    average_iterations,
    estimate_window,
    lattice_dims,
)

__all__ = [
    "Config",
    "ConfigError",
    "DistributedConfig",
    "HamiltonianConfig",
    "HilbertConfig",
    "LatticeConfig",
    "ModelConfig",
    "ObservablesConfig",
    "OptimizerConfig",
    "PairConfig",
    "SRConfig",
    "SamplerConfig",
    "SpaceConfig",
    "TrainConfig",
    "apply_overrides",
    "average_iterations",
    "estimate_window",
    "effective_toml",
    "flatten",
    "from_dict",
    "lattice_dims",
    "load",
    "parse_override",
    "read_toml",
    "to_dict",
    "to_toml",
]
