"""Builders of particles in continuous space: a config's [space] and [hamiltonian] -> objects."""

from __future__ import annotations

from nqs_cli.config import Config
from nqs_cli.systems.continuum.hamiltonian import ContinuousHamiltonian, default_cutoff, free_boson_energy
from nqs_cli.systems.continuum.potentials import aziz, calogero_sutherland, calogero_sutherland_energy, gaussian_pair, lennard_jones
from nqs_cli.systems.continuum.space import ParticleSpace
from nqs_cli.vmc.rules import GaussianRule

PAIR_POTENTIALS = {  # (pair config, space) -> v(r)
    "gaussian": lambda p, space: gaussian_pair(p.g, p.sigma),
    "lennard-jones": lambda p, space: lennard_jones(p.epsilon, p.sigma),
    "aziz": lambda p, space: aziz(),
    "calogero-sutherland": lambda p, space: calogero_sutherland(p.beta, space.extent[0], space.mass),
}
PERIODIC_PAIRS = ("calogero-sutherland",)  # periodic in r by construction: no default cut-off


def build_space(cfg: Config) -> ParticleSpace:
    s = cfg.space
    return ParticleSpace(s.n_particles, s.dims, s.extent, s.mass, cfg.hamiltonian.trap_omega)


def build_hamiltonian(cfg: Config, space: ParticleSpace) -> ContinuousHamiltonian:
    pair_cfg = cfg.hamiltonian.pair
    if pair_cfg is None:
        return ContinuousHamiltonian(space, cfg.hamiltonian.trap_omega)
    pair = PAIR_POTENTIALS[pair_cfg.kind](pair_cfg, space)
    cutoff = pair_cfg.cutoff if pair_cfg.kind in PERIODIC_PAIRS else default_cutoff(space, pair_cfg.cutoff)
    return ContinuousHamiltonian(space, cfg.hamiltonian.trap_omega, pair, cutoff)


def rule_gaussian(cfg: Config, space: ParticleSpace) -> GaussianRule:
    return GaussianRule(cfg.sampler.sigma, space.coordinate_extent)


def exact_energy(cfg: Config) -> float | None:
    """Non-interacting bosons (no pair potential, or a Gaussian one with g = 0): see
    ``free_boson_energy``; the Calogero–Sutherland ring without a trap; None otherwise."""
    pair = cfg.hamiltonian.pair
    if pair is not None and pair.kind == "calogero-sutherland" and pair.cutoff is None and cfg.hamiltonian.trap_omega == 0:
        space = build_space(cfg)
        return calogero_sutherland_energy(space.n_particles, pair.beta, space.extent[0], space.mass)
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
        params = {"gaussian": f"g={p.g:g} σ={p.sigma:g}", "lennard-jones": f"ε={p.epsilon:g} σ={p.sigma:g}", "aziz": "HFDHE2, K and Å", "calogero-sutherland": f"β={p.beta:g}"}[p.kind]
        cut = f", cut-off {ham.cutoff:g}" if ham.cutoff is not None else ""
        text += f", {p.kind} pair {params}{cut}"
    return text
