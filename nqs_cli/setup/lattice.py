"""Builders of lattice systems: a config's [lattice], [hilbert] and [hamiltonian] -> objects."""

from __future__ import annotations

import functools

from fractions import Fraction

import numpy as np
import scipy.optimize

from nqs_cli.config import Config, lattice_dims
from nqs_cli.config.schema import couplings, lattice_lengths
from nqs_cli.systems.lattice.exact import MAX_STATES, exact_ground_state
from nqs_cli.systems.lattice.graph import Lattice
from nqs_cli.systems.lattice.hilbert import FockSpace, SpinSpace
from nqs_cli.systems.lattice.operators import bose_hubbard, heisenberg
from nqs_cli.vmc.rules import ExchangeRule, HamiltonianRule, LocalRule


def build_lattice(cfg: Config) -> Lattice:
    lat = cfg.lattice
    if lat.graph == "custom":
        return Lattice(graph="custom", length=lat.length, custom_edges=lat.edges)
    return Lattice(graph=lat.graph, length=lat.length, dims=lattice_dims(lat), pbc=lat.pbc)


def build_fock(cfg: Config, lattice: Lattice) -> FockSpace:
    h = cfg.hilbert
    return FockSpace(n_sites=lattice.n_sites, n_max=h.n_max, n_particles=h.n_particles)


def build_spin(cfg: Config, lattice: Lattice) -> SpinSpace:
    h = cfg.hilbert
    return SpinSpace(n_sites=lattice.n_sites, s=h.s, total_sz=h.total_sz)


def build_bose_hubbard(cfg: Config, lattice: Lattice, space):
    h = cfg.hamiltonian
    return bose_hubbard(lattice, space, J=h.J, U=h.U, V=h.V, mu=h.mu, potential=site_potential(cfg, lattice))


def site_potential(cfg: Config, lattice: Lattice) -> np.ndarray | None:
    """(n_sites,) energy per boson on each site, V |r_i − center|² + ε_i; None without a trap
    and on-site energies."""
    h = cfg.hamiltonian
    if h.trap is None and h.onsite is None:
        return None
    potential = np.zeros(lattice.n_sites) if h.onsite is None else np.array(h.onsite, np.float64)
    if h.trap is not None:
        center = trap_center(cfg, lattice)
        potential += h.trap.V * np.sum((lattice.positions - center) ** 2, axis=1)
    return potential


def trap_center(cfg: Config, lattice: Lattice) -> np.ndarray:
    """(dims,) the trap centre: as given (one number broadcast to every axis), else the mean site
    position; raises ValueError naming the key when it lies outside the sites' extent."""
    center = cfg.hamiltonian.trap.center
    if center is None:
        return lattice.positions.mean(axis=0)
    center = np.broadcast_to(np.asarray(center, np.float64), (lattice.dims,))
    lo, hi = lattice.positions.min(axis=0), lattice.positions.max(axis=0)
    if np.any(center < lo - 1e-9) or np.any(center > hi + 1e-9):
        span = ", ".join(f"[{a:g}, {b:g}]" for a, b in zip(lo, hi))
        raise ValueError(f"hamiltonian.trap.center: {center.tolist()} is off the lattice, whose sites span {span}")
    return center


def build_heisenberg(cfg: Config, lattice: Lattice, space):
    h = cfg.hamiltonian
    if h.sign_rule and not lattice.is_bipartite:
        raise ValueError("hamiltonian.sign_rule: Marshall's sign rule needs a bipartite lattice (this one has odd loops)")
    sign_rule = automatic_sign_rule(cfg, lattice)[0] if h.sign_rule is None else h.sign_rule
    rotated = reference_pattern(cfg, lattice)[0] if sign_rule else None
    return heisenberg(lattice, space, J=h.J, beta=h.beta, sign_rule=sign_rule, delta=h.delta, J2=h.J2, D=h.D, h=h.h, rotated=rotated)


def reference_pattern(cfg: Config, lattice: Lattice) -> tuple[np.ndarray, str]:
    """The sites the sign rule rotates (0/1 per site) and their name. With J2 = 0: the
    sublattice (Marshall, exact). With J2 != 0 (a reference sign for complex parameters): of the
    collinear classical orders with wavevector components 0 or π that the lattice admits, the one
    of lowest classical energy Σ_bonds J σ_i σ_j (σ = ±1 on the two sets of sites); ties keep
    Marshall's sublattice. On the square lattice this is Néel for J2 < J/2 and stripes beyond."""
    sub = np.asarray(lattice.sublattice, np.int64)
    h = cfg.hamiltonian
    if h.J2 == 0:
        return sub, "the sublattice"
    candidates = [(sub, "Néel (Q = π on every axis)")]
    if lattice.graph in ("chain", "square", "hypercube"):
        for axis in range(lattice.dims):
            wraps_evenly = not lattice.periodic[axis] or lattice.lengths[axis] % 2 == 0
            other = [a for a in range(lattice.dims) if a != axis]
            if wraps_evenly and other:
                name = "stripes (Q = π along axis " + str(axis) + ", 0 along " + ", ".join(map(str, other)) + ")"
                candidates.append(((lattice.coords[:, axis] % 2).astype(np.int64), name))
    js = np.atleast_1d(np.asarray(h.J, np.float64))
    types = lattice.edge_colors
    edges, nnn = lattice.edges, lattice.next_nearest_edges

    def energy(pattern):
        sigma = 1 - 2 * pattern
        return float(np.sum(js[types] * sigma[edges[:, 0]] * sigma[edges[:, 1]]) + h.J2 * np.sum(sigma[nnn[:, 0]] * sigma[nnn[:, 1]]))

    energies = [energy(p) for p, _ in candidates]
    best = int(np.argmin(np.round(energies, 9)))
    return candidates[best]


# wavevectors per axis on the grid that brackets the infinite lattice's classical minimum
# before it is refined (dims <= 3: at most 48^3 energies)
_SPIRAL_GRID = 48


def classical_spiral(cfg: Config, lattice: Lattice) -> tuple[np.ndarray | None, str]:
    """(φ, why): the angles φ_i = Q·c_i (c_i the cell coordinates) of the coplanar classical
    spiral S_i = (cos φ_i, sin φ_i, 0) of lowest energy E(Q) = Σ_bonds J cos(φ_i − φ_j) (+ J2 on
    the next-nearest bonds) among the wavevectors the periodic lattice admits (Q_a = 2π n/L_a),
    or None and the reason there is none. There is one only where a phase is needed and
    well defined: a spin Hamiltonian with every J > 0 on a non-bipartite Bravais lattice that is
    periodic along every axis, and whose cluster admits the classical order of the infinite
    lattice (its best spiral reaches the infinite lattice's minimum of E(Q)); on a cluster that
    frustrates that order (the triangular 4×3 torus) the ground state need not have the zero
    crystal momentum a translation-symmetric state has. On the triangular lattice this is the
    120° order."""
    h = cfg.hamiltonian
    if h.kind != "heisenberg":
        return None, "not a spin Hamiltonian"
    if lattice.graph == "custom" or lattice.n_basis != 1:
        return None, "not a Bravais lattice (one site per cell)"
    if not all(lattice.periodic):
        return None, "the lattice is not periodic along every axis"
    if lattice.is_bipartite:
        return None, "the lattice is bipartite (a collinear order: hamiltonian.sign_rule)"
    if min(couplings(h)) <= 0:
        return None, "J <= 0 (ferromagnet)"
    edges, nnn = lattice.edges, lattice.next_nearest_edges if h.J2 != 0 else np.zeros((0, 2), np.int64)
    coords = lattice.coords
    lengths = np.asarray(lattice.lengths, np.float64)
    # the distinct bond displacements in cell units (unwrapped to the nearest image) and how
    # many bonds have each: E(Q) costs a few cosines, not one per bond, on any cluster size
    d1, n1 = np.unique(_unwrapped(coords[edges[:, 1]] - coords[edges[:, 0]], lengths), axis=0, return_counts=True)
    d2, n2 = np.unique(_unwrapped(coords[nnn[:, 1]] - coords[nnn[:, 0]], lengths).reshape(-1, lattice.dims), axis=0, return_counts=True)
    J = float(couplings(h)[0])

    def energy(q):  # (..., dims) wavevectors -> (...) energies
        return J * np.cos(q @ d1.T) @ n1 + h.J2 * np.cos(q @ d2.T) @ n2

    commensurate = 2 * np.pi * np.indices(lattice.lengths).reshape(lattice.dims, -1).T / lengths
    e_cluster = energy(commensurate)
    best = int(np.argmin(np.round(e_cluster, 9)))
    grid = 2 * np.pi * np.indices((_SPIRAL_GRID,) * lattice.dims).reshape(lattice.dims, -1).T / _SPIRAL_GRID
    e_grid = energy(grid)
    starts = grid[np.argsort(e_grid)[:4]]
    e_infinite = min(float(e_grid.min()), *(float(scipy.optimize.minimize(energy, q, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12}).fun) for q in starts))
    q = commensurate[best]
    if e_cluster[best] > e_infinite + 1e-6 * max(1.0, abs(e_infinite)):
        return None, (f"the {'×'.join(map(str, lattice.lengths))} cluster frustrates the classical order (best spiral {e_cluster[best] / lattice.n_sites:.4f} "
                      f"per site against {e_infinite / lattice.n_sites:.4f}), so its ground state need not have zero momentum")
    angle = np.degrees(np.abs(np.angle(np.exp(1j * (q @ d1[0]))))) if len(d1) else 0.0
    steps = np.rint(q * lengths / (2 * np.pi)).astype(int)
    name = "Q = 2π·(" + ", ".join(str(Fraction(int(n), int(length))) for n, length in zip(steps, lengths)) + f"), {angle:.0f}° between neighbours"
    return coords @ q, name


def _unwrapped(delta: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Cell displacements wrapped into [−L/2, L/2) on every (periodic) axis."""
    return (delta + lengths // 2) % lengths - lengths // 2


def rule_local(lattice: Lattice, space, hamiltonian) -> LocalRule:
    return LocalRule(n_sites=space.n_sites, local_dim=space.local_dim)


def rule_exchange(lattice: Lattice, space, hamiltonian) -> ExchangeRule:
    return ExchangeRule(edges=np.asarray(lattice.edges))


def rule_hamiltonian(lattice: Lattice, space, hamiltonian) -> HamiltonianRule:
    return HamiltonianRule(operator=hamiltonian)


def exact_solution(hamiltonian, space):
    """(energy, state): ``energy()`` the Lanczos ground-state energy of the sector and ``state()``
    (E0, sector basis, ground-state vector), each None above MAX_STATES states; solved once."""

    @functools.cache
    def state():
        if space.n_states > MAX_STATES:
            return None
        return exact_ground_state(hamiltonian, space, max_states=MAX_STATES)

    def energy() -> float | None:
        solved = state()
        return None if solved is None else solved[0]

    return energy, state


def describe(cfg: Config) -> str:
    lat, hil, ham = cfg.lattice, cfg.hilbert, cfg.hamiltonian
    if lat.graph == "custom":
        where = f"custom graph, {cfg.n_sites} sites, {len(lat.edges)} bonds"
    else:
        periodic = lat.pbc if isinstance(lat.pbc, tuple) else (lat.pbc,)
        bc = "/".join("periodic" if p else "open" for p in periodic)
        where = f"{lat.graph} {'×'.join(map(str, lattice_lengths(lat)))} ({bc})"
    J = couplings(ham)
    j_text = f"J={J[0]:g}" if len(J) == 1 else "J=[" + ", ".join(f"{j:g}" for j in J) + "]"
    if hil.kind == "fock":
        n = "" if hil.n_particles is None else f", N={hil.n_particles}"
        space = f"bosons n_max={hil.n_max}{n}"
        terms = f"{j_text}, U={ham.U:g}" + (f", V={ham.V:g}" if ham.V else "") + (f", mu={ham.mu:g}" if ham.mu else "")
        terms += f", trap V={ham.trap.V:g}" if ham.trap is not None else ""
        terms += ", on-site energies" if ham.onsite is not None else ""
        return f"Bose-Hubbard {where}, {space}, {terms}"
    sz = "" if hil.total_sz is None else f", Sz={hil.total_sz:g}"
    extra = "".join(f", {name}={value:g}" for name, value, off in
                    (("delta", ham.delta, 1.0), ("J2", ham.J2, 0.0), ("D", ham.D, 0.0), ("h", ham.h, 0.0), ("beta", ham.beta, 0.0)) if value != off)
    return f"spin-{hil.s:g} Heisenberg {where}{sz}, {j_text}{extra}"


def automatic_sign_rule(cfg: Config, lattice: Lattice | None = None) -> tuple[bool, str]:
    """The Marshall sign rule that an unset ``hamiltonian.sign_rule`` resolves to, and why
    (``operators.marshall_applies`` with the reason)."""
    lattice = build_lattice(cfg) if lattice is None else lattice
    ham = cfg.hamiltonian
    if not lattice.is_bipartite:
        return False, "the lattice is not bipartite"
    if min(couplings(ham)) <= 0:
        return False, "J <= 0 (ferromagnet)" if len(couplings(ham)) == 1 else "a coupling J <= 0"
    if ham.J2 != 0 and not cfg.model.param_dtype.startswith("complex"):
        return False, "J2 != 0 frustrates the exchange"
    if ham.J2 != 0:
        name = reference_pattern(cfg, lattice)[1]
        return True, f"bipartite lattice, J > 0; with J2 != 0 not exact: a reference sign ({name}, the classical order) that the complex parameters correct"
    return True, "bipartite lattice, J > 0"


def automatic_trap_center(cfg: Config) -> tuple[list[float], str] | None:
    """The centre an unset ``hamiltonian.trap.center`` resolves to, and why (None without a trap)."""
    if cfg.hamiltonian.kind != "bose-hubbard" or cfg.hamiltonian.trap is None or cfg.hamiltonian.trap.center is not None:
        return None
    return [round(float(c), 12) for c in trap_center(cfg, build_lattice(cfg))], "the mean site position"
