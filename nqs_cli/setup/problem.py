"""The Problem: the static pieces of a run, built once from a validated config.

Space, Hamiltonian, model, Metropolis rule and the model's fast paths, exposed as pure
functions acting on ONE configuration: ``log_psi(params, x)``, ``local_energy(params, x)``,
``random_state(key)``. Nothing downstream needs the config to use them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Union

import flax.linen as nn
import jax

from nqs_cli.models.fast_paths import FastPaths
from nqs_cli.systems.continuum.hamiltonian import ContinuousHamiltonian
from nqs_cli.systems.continuum.space import ParticleSpace
from nqs_cli.systems.lattice.graph import Lattice
from nqs_cli.systems.lattice.hilbert import FockSpace, SpinSpace
from nqs_cli.systems.lattice.operators import BondHamiltonian
from nqs_cli.vmc.jacobians import centred, dense_jacobian
from nqs_cli.vmc.rules import ExchangeRule, GaussianRule, HamiltonianRule, LocalRule

Space = Union[FockSpace, SpinSpace, ParticleSpace]
Hamiltonian = Union[BondHamiltonian, ContinuousHamiltonian]
Rule = Union[LocalRule, ExchangeRule, HamiltonianRule, GaussianRule]


@dataclass(frozen=True, eq=False)
class Problem:
    space: Space
    hamiltonian: Hamiltonian
    model: nn.Module  # acts on one configuration
    rule: Rule
    local_energy_factory: Callable  # (log_psi) -> (params, x) -> E_loc(x): the generic path
    description: str
    exact: Callable[[], float | None]  # the exact ground-state energy, when known
    fast: FastPaths = FastPaths()
    lattice: Lattice | None = None  # the lattice of a lattice system, built once
    exact_state: Callable[[], tuple | None] | None = None  # (E0, sector basis, vector) when within reach

    def log_psi(self, params, x):
        if self.fast.log_psi is not None:
            return self.fast.log_psi(params, x)
        return self.model.apply({"params": params}, x)

    @cached_property
    def local_energy(self):
        if self.fast.local_energy is not None:
            return self.fast.local_energy
        return self.local_energy_factory(self.log_psi)

    @property
    def evaluator(self) -> Any:
        """The sampler's amplitude evaluator (None: full evaluation of every proposal)."""
        return self.fast.evaluator

    @property
    def local_energy_block(self) -> int | None:
        """Samples per block of local energies (None: all at once)."""
        return self.fast.local_energy_block

    def jacobian(self, params, samples, dense: bool = False, chunk_size: int | None = None):
        """Centred, scaled Jacobian Ō of log ψ at ``samples`` (N, n_dof); see vmc/jacobians.py."""
        if self.fast.jacobian is not None and not dense:
            return self.fast.jacobian(params, samples)
        if self.fast.gradients is not None:
            return centred(self.fast.gradients(params, samples))
        return dense_jacobian(self.log_psi, params, samples, chunk_size=chunk_size)

    def random_state(self, key):
        return self.space.random_state(key)

    def init_params(self, key):
        x = self.random_state(jax.random.key(0))
        return self.model.init(key, x)["params"]

    def exact_energy(self) -> float | None:
        """Exact ground-state energy when known in closed form or by Lanczos (small sectors)."""
        return self.exact()
