"""Builders of particles in continuous space: a config's [space] and [hamiltonian] -> objects."""

from __future__ import annotations

from nqs_cli.config import Config
from nqs_cli.systems.continuum.hamiltonian import ContinuousHamiltonian, default_cutoff, free_boson_energy
from nqs_cli.systems.continuum.potentials import aziz, gaussian_pair, lennard_jones
from nqs_cli.systems.continuum.space import ParticleSpace
from nqs_cli.vmc.rules import GaussianRule

PAIR_POTENTIALS = {
    "gaussian": lambda p: gaussian_pair(p.g, p.sigma),
    "lennard-jones": lambda p: lennard_jones(p.epsilon, p.sigma),
    "aziz": lambda p: aziz(),
}


def build_space(cfg: Config) -> ParticleSpace:
    s = cfg.space
    return ParticleSpace(s.n_particles, s.dims, s.extent, s.mass, cfg.hamiltonian.trap_omega)


def build_hamiltonian(cfg: Config, space: ParticleSpace) -> ContinuousHamiltonian:
    pair_cfg = cfg.hamiltonian.pair
    if pair_cfg is None:
        return ContinuousHamiltonian(space, cfg.hamiltonian.trap_omega)
    pair = PAIR_POTENTIALS[pair_cfg.kind](pair_cfg)
    return ContinuousHamiltonian(space, cfg.hamiltonian.trap_omega, pair, default_cutoff(space, pair_cfg.cutoff))


def rule_gaussian(cfg: Config, space: ParticleSpace) -> GaussianRule:
    return GaussianRule(cfg.sampler.sigma, space.coordinate_extent)


def exact_energy(cfg: Config) -> float | None:
    """Non-interacting bosons (no pair potential, or a Gaussian one with g = 0): see
    ``free_boson_energy``; None otherwise."""
    pair = cfg.hamiltonian.pair
    free = pair is None or (pair.kind == "gaussian" and pair.g == 0.0)
    return free_boson_energy(build_space(cfg), cfg.hamiltonian.trap_omega) if free else None


def describe(cfg: Config, ham: ContinuousHamiltonian) -> str:
    sp = ham.space
    who = f"{sp.n_particles} boson{'s' if sp.n_particles != 1 else ''}"
    if sp.periodic:
        where = f"a {sp.dims}D periodic box L={'×'.join(f'{e:g}' for e in sp.extent)}"
    else:
        where = f"a {sp.dims}D harmonic trap (ω={ham.trap_omega:g})"
    text = f"{who} in {where}"
    if sp.periodic and ham.trap_omega > 0:
        text += f" with a trap (ω={ham.trap_omega:g})"
    if sp.mass != 1.0:
        text += f", m={sp.mass:g}"
    p = cfg.hamiltonian.pair
    if p is not None:
        params = {"gaussian": f"g={p.g:g} σ={p.sigma:g}", "lennard-jones": f"ε={p.epsilon:g} σ={p.sigma:g}", "aziz": "HFDHE2, K and Å"}[p.kind]
        cut = f", cut-off {ham.cutoff:g}" if ham.cutoff is not None else ""
        text += f", {p.kind} pair {params}{cut}"
    return text
