"""Builders of lattice systems: a config's [lattice], [hilbert] and [hamiltonian] -> objects."""

from __future__ import annotations

import numpy as np

from nqs_cli.config import Config, lattice_dims
from nqs_cli.systems.lattice.exact import MAX_STATES, ground_state_energy
from nqs_cli.systems.lattice.graph import Lattice
from nqs_cli.systems.lattice.hilbert import FockSpace, SpinSpace
from nqs_cli.systems.lattice.operators import bose_hubbard, heisenberg
from nqs_cli.vmc.rules import ExchangeRule, HamiltonianRule, LocalRule


def build_lattice(cfg: Config) -> Lattice:
    lat = cfg.lattice
    return Lattice(graph=lat.graph, length=lat.length, dims=lattice_dims(lat), pbc=lat.pbc)


def build_fock(cfg: Config, lattice: Lattice) -> FockSpace:
    h = cfg.hilbert
    return FockSpace(n_sites=lattice.n_sites, n_max=h.n_max, n_particles=h.n_particles)


def build_spin(cfg: Config, lattice: Lattice) -> SpinSpace:
    h = cfg.hilbert
    return SpinSpace(n_sites=lattice.n_sites, s=h.s, total_sz=h.total_sz)


def build_bose_hubbard(cfg: Config, lattice: Lattice, space):
    h = cfg.hamiltonian
    return bose_hubbard(lattice, space, J=h.J, U=h.U, V=h.V, mu=h.mu)


def build_heisenberg(cfg: Config, lattice: Lattice, space):
    h = cfg.hamiltonian
    if h.sign_rule and not lattice.is_bipartite:
        raise ValueError("hamiltonian.sign_rule: Marshall's sign rule needs a bipartite lattice (this one has odd periodic loops)")
    return heisenberg(lattice, space, J=h.J, beta=h.beta, sign_rule=h.sign_rule)


def rule_local(lattice: Lattice, space, hamiltonian) -> LocalRule:
    return LocalRule(n_sites=space.n_sites, local_dim=space.local_dim)


def rule_exchange(lattice: Lattice, space, hamiltonian) -> ExchangeRule:
    return ExchangeRule(edges=np.asarray(lattice.edges))


def rule_hamiltonian(lattice: Lattice, space, hamiltonian) -> HamiltonianRule:
    return HamiltonianRule(operator=hamiltonian)


def exact_energy(hamiltonian, space):
    """() -> the Lanczos ground-state energy of the sector, or None above MAX_STATES states."""

    def exact() -> float | None:
        if space.n_states > MAX_STATES:
            return None
        return ground_state_energy(hamiltonian, space, max_states=MAX_STATES)

    return exact


def describe(cfg: Config) -> str:
    lat, hil, ham = cfg.lattice, cfg.hilbert, cfg.hamiltonian
    bc = "periodic" if lat.pbc else "open"
    size = "×".join([str(lat.length)] * lattice_dims(lat))
    if hil.kind == "fock":
        n = "" if hil.n_particles is None else f", N={hil.n_particles}"
        space = f"bosons n_max={hil.n_max}{n}"
        terms = f"J={ham.J:g}, U={ham.U:g}" + (f", V={ham.V:g}" if ham.V else "") + (f", mu={ham.mu:g}" if ham.mu else "")
        return f"Bose-Hubbard {lat.graph} {size} ({bc}), {space}, {terms}"
    sz = "" if hil.total_sz is None else f", Sz={hil.total_sz:g}"
    beta = f", beta={ham.beta:g}" if ham.beta else ""
    return f"spin-{hil.s:g} Heisenberg {lat.graph} {size} ({bc}){sz}, J={ham.J:g}{beta}"


def automatic_sign_rule(cfg: Config) -> tuple[bool, str]:
    """The Marshall sign rule that an unset ``hamiltonian.sign_rule`` resolves to, and why."""
    bipartite = build_lattice(cfg).is_bipartite
    if not bipartite:
        return False, "the lattice is not bipartite"
    if cfg.hamiltonian.J <= 0:
        return False, "J <= 0 (ferromagnet)"
    return True, "bipartite lattice, J > 0"
