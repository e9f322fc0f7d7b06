"""The one registry: config ``kind`` strings -> builders, and ``build_problem(cfg)``.

Adding a Hamiltonian, a space, a model or a Metropolis rule is one entry here plus its own
builder (setup/lattice.py, setup/continuum.py, setup/models.py) and module (systems/, models/).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from nqs_cli.config import Config
from nqs_cli.models import deepsets_laplacian, rbm_kernels, rbm_symm
from nqs_cli.models.fast_paths import FastPaths
from nqs_cli.setup import continuum, lattice, models
from nqs_cli.setup.problem import Problem
from nqs_cli.systems.continuum import local_energy as continuum_local_energy
from nqs_cli.systems.lattice import local_energy as lattice_local_energy


@dataclass(frozen=True)
class ModelEntry:
    build: Callable  # (cfg, space) -> flax module
    fast_paths: Callable  # (module, hamiltonian) -> FastPaths


SPACES = {"fock": lattice.build_fock, "spin": lattice.build_spin}  # (cfg, lattice) -> space
HAMILTONIANS = {  # (cfg, lattice, space) -> bond Hamiltonian
    "bose-hubbard": lattice.build_bose_hubbard,
    "heisenberg": lattice.build_heisenberg,
}
LATTICE_RULES = {  # (lattice, space, hamiltonian) -> rule
    "metropolis-local": lattice.rule_local,
    "metropolis-exchange": lattice.rule_exchange,
    "metropolis-hamiltonian": lattice.rule_hamiltonian,
}
CONTINUUM_RULES = {"metropolis-gaussian": continuum.rule_gaussian}  # (cfg, space) -> rule
def rbm_paths(model, hamiltonian) -> FastPaths:
    """The plain or the translation-symmetric RBM's fast paths."""
    if isinstance(model, rbm_symm.RBMMultiValSymm):
        return rbm_symm.fast_paths(model, hamiltonian)
    return rbm_kernels.fast_paths(model, hamiltonian)


MODELS = {
    "rbm-multival": ModelEntry(models.build_rbm, rbm_paths),
    "deepsets": ModelEntry(models.build_deepsets, deepsets_laplacian.fast_paths),
    "deepsets-reldist": ModelEntry(models.build_reldist, deepsets_laplacian.fast_paths),
}


def build_problem(cfg: Config, fast: bool = True) -> Problem:
    """Every static piece of the run a validated config describes. ``fast=False`` leaves out
    the model's fast paths (generic autodiff everywhere), for checks and benchmarks."""
    if cfg.is_continuous:
        space = continuum.build_space(cfg)
        ham = continuum.build_hamiltonian(cfg, space)
        rule = CONTINUUM_RULES[cfg.sampler.kind](cfg, space)
        entry = MODELS[cfg.model.kind]
        model = entry.build(cfg, space)
        paths = entry.fast_paths(model, ham) if fast else FastPaths()
        return Problem(
            space=space,
            hamiltonian=ham,
            model=model,
            rule=rule,
            local_energy_factory=continuum_local_energy.local_energy_factory(ham, paths.derivatives),
            description=continuum.describe(cfg, ham),
            exact=lambda: continuum.exact_energy(cfg),
            fast=paths,
        )
    lat = lattice.build_lattice(cfg)
    space = SPACES[cfg.hilbert.kind](cfg, lat)
    ham = HAMILTONIANS[cfg.hamiltonian.kind](cfg, lat, space)
    entry = MODELS[cfg.model.kind]
    model = entry.build(cfg, space)
    energy, state = lattice.exact_solution(ham, space)
    return Problem(
        space=space,
        hamiltonian=ham,
        model=model,
        rule=LATTICE_RULES[cfg.sampler.kind](lat, space, ham),
        local_energy_factory=lattice_local_energy.local_energy_factory(ham),
        description=lattice.describe(cfg),
        exact=energy,
        fast=entry.fast_paths(model, ham) if fast else FastPaths(),
        lattice=lat,
        exact_state=state,
    )
