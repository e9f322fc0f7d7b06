"""What a config will cost before anything is allocated: memory of the largest pieces and the
Metropolis work per iteration, from the sizes in the config alone.

A config that cannot run on this machine is refused with one line naming the key that drives
the largest cost and the estimate (``--force-size`` tries anyway). The estimates are upper
bounds of the dominant terms, not a profile: they catch the configs that would take the
machine's memory or years per iteration, and let everything that fits through.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from nqs_cli.config import Config
from nqs_cli.config.schema import couplings
from nqs_cli.models.rbm_symm import n_features
from nqs_cli.setup.lattice import build_lattice
from nqs_cli.setup.models import resolved_symmetry

MAX_MOVES_PER_ITERATION = 1e10  # Metropolis proposals: ~100 s per iteration even at 1e8/s
MEMORY_FRACTION = 0.8  # of the machine's physical memory


@dataclass(frozen=True)
class Cost:
    key: str  # the config key that drives it
    bytes: float
    what: str


class TooLarge(ValueError):
    """The config cannot run here: the message names the key and the estimate."""


def local_dim(cfg: Config) -> int:
    hil = cfg.hilbert
    return hil.n_max + 1 if hil.kind == "fock" else int(round(2 * hil.s)) + 1


def estimate(cfg: Config) -> list[Cost]:
    """The dominant memory costs of building and training ``cfg``, largest first."""
    itemsize = 4 if cfg.dtype == "float32" else 8
    s = cfg.sampler
    costs = [Cost("sampler.n_chains", s.n_chains * _units(cfg) * itemsize * 4, "chain states")]
    if cfg.is_continuous:
        costs += _continuum(cfg, itemsize)
    else:
        costs += _lattice(cfg, itemsize)
    return sorted(costs, key=lambda c: -c.bytes)


def _units(cfg: Config) -> int:
    return cfg.space.n_particles * cfg.space.dims if cfg.is_continuous else cfg.n_sites


def _lattice(cfg: Config, itemsize: int) -> list[Cost]:
    d, n = local_dim(cfg), cfg.n_sites
    key_d = "hilbert.n_max" if cfg.hilbert.kind == "fock" else "hilbert.s"
    inputs = n * d
    hidden = int(cfg.model.alpha * inputs)
    if hidden < 1:
        raise TooLarge(f"model.alpha: {cfg.model.alpha:g} × {inputs} one-hot inputs gives no hidden unit; use alpha >= {1 / inputs:.3g}")
    n_params = inputs * hidden + hidden + inputs
    group = symmetry_group_size(cfg)
    if group:  # the symmetric RBM: features × G hidden units on an expanded (inputs, hidden) kernel
        features = cfg.model.features or n_features(cfg.model.alpha, n, d, group)
        hidden, n_params = features * group, features * inputs + features + d
    samples = cfg.sampler.n_samples
    ham = cfg.hamiltonian
    types = 2 * (len(couplings(ham)) + (ham.J2 != 0))  # per coupling, twice with a sign rule
    itemsize *= 2 if cfg.model.param_dtype.startswith("complex") else 1  # parameters, activations, the SR system
    return [
        # each bond type (d²)² float64 with about five temporaries of its size while built
        Cost(key_d, types * (d * d) ** 2 * 8 * 6, f"bond-operator tables ({d * d} × {d * d} per bond type) and their construction"),
        Cost("model.alpha", n_params * itemsize * 8, f"{n_params} parameters with gradients, optimiser and SR vectors"),
        Cost("sampler.n_samples", samples * hidden * itemsize * 4, "hidden activations of every sample"),
        # a full forward pass gathers one kernel row per site: (N, H) per configuration, for every chain at once
        Cost("sampler.n_chains", cfg.sampler.n_chains * n * hidden * itemsize, f"kernel rows gathered to start each chain ({n} × {hidden} per chain)"),
        # θ and visible-term changes per site and pair of local states, (N, d, d, H), and the difference temporaries
        Cost("model.alpha", 2 * n * d * d * hidden * itemsize, f"per-site change tables of the hidden pre-activations ({n} × {d}² × {hidden})"),
        Cost("sampler.n_samples", min(samples, n_params) ** 2 * itemsize, "the SR system (the smaller of n_samples² and n_params²)"),
        Cost("sampler.n_samples", samples * n * 2 * 8, "samples and their connected configurations"),
    ]


def _continuum(cfg: Config, itemsize: int) -> list[Cost]:
    sp, m = cfg.space, cfg.model
    n, dims = sp.n_particles, sp.dims
    widths = [w for f in (m.features_phi, m.features_rho) for w in (f if isinstance(f, tuple) else (f,)) if w]
    width = max(widths or [16])
    items = n * (n - 1) // 2 if m.kind == "deepsets-reldist" else n  # φ is applied to every pair or particle
    samples = cfg.sampler.n_samples
    key = "space.n_particles" if items * width >= samples else "sampler.n_samples"
    layers = sum(len(f) if isinstance(f, tuple) else n_layers for f, n_layers in ((m.features_phi, m.layers_phi), (m.features_rho, m.layers_rho)))
    n_params = layers * (width * width + width)
    return [
        Cost("model.layers_phi", n_params * itemsize * 8, f"about {n_params} parameters with gradients, optimiser and SR vectors"),
        # the Laplacian carries one tangent per coordinate through φ
        Cost(key, samples * items * width * itemsize * (2 + n * dims), f"φ activations and Laplacian tangents ({items} {'pairs' if items != n else 'particles'})"),
        Cost("space.n_particles", samples * n * n * dims * itemsize, "pair distances of every sample"),
    ]


def moves_per_iteration(cfg: Config) -> tuple[float, str]:
    s = cfg.sampler
    per_chain = s.n_samples / s.n_chains + s.n_discard_per_chain
    moves = float(s.sweep_size) * per_chain * s.n_chains
    key = max(("sampler.sweep_size", s.sweep_size), ("sampler.n_discard_per_chain", s.n_discard_per_chain * s.n_chains),
              ("sampler.n_samples", s.n_samples), key=lambda kv: kv[1])[0]
    return moves, key


def physical_memory() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return math.inf


def check_cost(cfg: Config, memory: float | None = None) -> None:
    """Raise TooLarge naming the key when ``cfg`` cannot run within ``memory`` bytes (default:
    80 % of this machine's physical memory) or needs more than 1e10 Metropolis moves per
    iteration."""
    memory = MEMORY_FRACTION * physical_memory() if memory is None else memory
    costs = estimate(cfg)
    total = sum(c.bytes for c in costs)
    if total > memory:
        top = costs[0]
        raise TooLarge(
            f"{top.key}: this config needs about {_gb(total)} of memory ({_gb(top.bytes)} for {top.what}), more than the "
            f"{_gb(memory)} this machine can give; make it smaller, or pass --force-size to try anyway"
        )
    moves, key = moves_per_iteration(cfg)
    if moves > MAX_MOVES_PER_ITERATION:
        raise TooLarge(f"{key}: {moves:.3g} Metropolis moves per iteration (sweep_size × samples and discards per chain × chains), "
                       f"more than {MAX_MOVES_PER_ITERATION:.0e}; make it smaller, or pass --force-size to try anyway")


def _gb(n: float) -> str:
    return f"{n / 1e9:.3g} GB" if n >= 1e8 else f"{n / 1e6:.3g} MB"


def symmetry_group_size(cfg: Config) -> int:
    """Translations the symmetric RBM sums over (0 for the plain RBM)."""
    if cfg.model.kind != "rbm-multival":
        return 0
    try:
        lattice = build_lattice(cfg)
    except ValueError:
        return 0
    return 0 if resolved_symmetry(cfg, lattice) == "none" else lattice.n_translations
