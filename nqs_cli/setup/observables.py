"""The observables of a config (its [observables] table) as built estimators of its system."""

from __future__ import annotations

import numpy as np

from nqs_cli.config import Config
from nqs_cli.setup.lattice import automatic_sign_rule, build_lattice, reference_pattern
from nqs_cli.setup.problem import Problem
from nqs_cli.systems.lattice.observables import LatticeObservables

RATIO_BUDGET = 1 << 24  # ψ evaluations of the off-diagonal observables, all samples together


def build_observables(cfg: Config, problem: Problem) -> LatticeObservables | tuple[str, ...]:
    """Lattice estimators, or for particles the names of continuum observables."""
    obs = cfg.observables
    if cfg.is_continuous:
        return tuple(obs.names)
    lattice = build_lattice(cfg)
    rotated = None
    if cfg.hamiltonian.kind == "heisenberg":
        sign_rule = cfg.hamiltonian.sign_rule if cfg.hamiltonian.sign_rule is not None else automatic_sign_rule(cfg)[0]
        rotated = np.asarray(reference_pattern(cfg, lattice)[0] == 1) if sign_rule else None
    return LatticeObservables(lattice, problem.space, tuple(obs.names), obs.max_distance, obs.edge_sites, rotated)


def offdiagonal_per_chain(cfg: Config, off: LatticeObservables, n_chains: int, n_per_chain: int) -> int:
    """Samples per chain for the off-diagonal observables ``off``: ``observables.offdiagonal_samples``,
    or as many as keep their ψ evaluations within RATIO_BUDGET."""
    limit = cfg.observables.offdiagonal_samples
    if limit is None:
        limit = RATIO_BUDGET // max(off.n_ratios, 1)
    return max(1, min(n_per_chain, limit // n_chains))
