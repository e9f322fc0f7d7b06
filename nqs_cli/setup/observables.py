"""The observables of a config (its [observables] table) as built estimators of its system.

``settle_observables`` decides, once, what depends on the lattice's geometry: which of the
default names the lattice can measure (an explicitly named one it cannot is refused with the
reason), the bulk (``edge_sites``) and the largest distance of the correlations
(``max_distance``); the settled values are written to resolved.json like every other value.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nqs_cli.config import Config, ConfigError
from nqs_cli.setup.lattice import automatic_sign_rule, build_lattice, reference_pattern
from nqs_cli.setup.problem import Problem
from nqs_cli.systems.lattice import geometry
from nqs_cli.systems.lattice.graph import Lattice
from nqs_cli.systems.lattice.hilbert import FockSpace, SpinSpace
from nqs_cli.systems.lattice.observables import BINNED, LatticeObservables, undefined_reason

RATIO_BUDGET = 1 << 24  # ψ evaluations of the off-diagonal observables, all samples together


def _space_kind(cfg: Config):
    """A stand-in with what ``undefined_reason`` reads of the Hilbert space (no space built)."""
    if cfg.hilbert.kind == "fock":
        return FockSpace(n_sites=1, n_max=1)
    return SpinSpace(n_sites=2, s=cfg.hilbert.s)


def settle_observables(cfg: Config, lattice: Lattice | None = None) -> Config:
    """``cfg`` with its lattice observables settled against the geometry (names measurable on
    this lattice, ``edge_sites`` and ``max_distance``); particles and settled configs unchanged.
    Raises ConfigError naming the key when a requested observable or value does not fit."""
    obs = cfg.observables
    if cfg.is_continuous or not obs.names and obs.max_distance is not None and obs.edge_sites is not None:
        return cfg
    lattice = build_lattice(cfg) if lattice is None else lattice
    space = _space_kind(cfg)
    explicit = "observables.names" in cfg.explicit
    names = []
    for name in obs.names:
        why = undefined_reason(name, lattice, space)
        if why and explicit:
            raise ConfigError(f"{cfg.source}: observables.names: {why}")
        if not why:
            names.append(name)
    edge = _settle_edge_sites(cfg, lattice)
    bulk = geometry.bulk_sites(lattice, edge)
    distance = _settle_max_distance(cfg, lattice, bulk) if set(names) & BINNED.keys() or obs.max_distance is not None else 0
    return dataclasses.replace(cfg, observables=dataclasses.replace(obs, names=tuple(names), edge_sites=edge, max_distance=distance))


def _settle_edge_sites(cfg: Config, lattice: Lattice) -> int:
    edge = cfg.observables.edge_sites
    open_axes = [n for n, p in zip(lattice.lengths, lattice.periodic) if not p] if geometry.has_positions(lattice) else []
    if edge is None:
        return geometry.default_edge_sites(lattice)
    if edge and not open_axes:
        raise ConfigError(f"{cfg.source}: observables.edge_sites: only open lattices (lattice.pbc = false on an axis) have edges; leave it unset or 0")
    if open_axes and 2 * edge >= max(open_axes):
        raise ConfigError(f"{cfg.source}: observables.edge_sites: expected < L/2 = {max(open_axes) / 2:g} of the longest open axis (the bulk must keep a site), got {edge}")
    return edge


def _settle_max_distance(cfg: Config, lattice: Lattice, bulk: np.ndarray) -> int:
    distance = cfg.observables.max_distance
    if distance is None:
        return geometry.default_max_distance(lattice, bulk)
    distances, _ = geometry.shell_counts(lattice, bulk)
    largest = float(distances.max()) if len(distances) else 0.0
    if distance > np.ceil(largest - geometry.ROUND):
        raise ConfigError(f"{cfg.source}: observables.max_distance: expected <= {np.ceil(largest - geometry.ROUND):g} "
                          f"(the largest distance between bulk sites on this lattice is {largest:.4g}), got {distance}")
    return distance


def build_observables(cfg: Config, problem: Problem, lattice: Lattice | None = None) -> LatticeObservables | tuple[str, ...]:
    """Lattice estimators, or for particles the names of continuum observables."""
    obs = cfg.observables
    if cfg.is_continuous:
        return tuple(obs.names)
    lattice = lattice or problem.lattice or build_lattice(cfg)
    cfg = settle_observables(cfg, lattice)
    obs = cfg.observables
    rotated = None
    if cfg.hamiltonian.kind == "heisenberg":
        sign_rule = cfg.hamiltonian.sign_rule if cfg.hamiltonian.sign_rule is not None else automatic_sign_rule(cfg, lattice)[0]
        rotated = np.asarray(reference_pattern(cfg, lattice)[0] == 1) if sign_rule else None
    return LatticeObservables(lattice, problem.space, tuple(obs.names), obs.max_distance, obs.edge_sites, rotated)


def offdiagonal_per_chain(cfg: Config, off: LatticeObservables, n_chains: int, n_per_chain: int, n_conn: int | None = None) -> int:
    """Samples per chain for the off-diagonal observables ``off``: ``observables.offdiagonal_samples``,
    or as many as evaluate ψ no more often than the local energies of all the samples did
    (``n_conn`` connected elements of H per sample; their cost is the final estimate's own), and
    within RATIO_BUDGET."""
    limit = cfg.observables.offdiagonal_samples
    if limit is None:
        work = RATIO_BUDGET if n_conn is None else min(RATIO_BUDGET, n_chains * n_per_chain * max(n_conn, 1))
        limit = work // max(off.n_ratios, 1)
    return max(1, min(n_per_chain, limit // n_chains))
