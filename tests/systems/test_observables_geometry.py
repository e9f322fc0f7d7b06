"""Observables on every lattice: each estimator's full sum over the exact ground state against
the expectation computed independently (dense two-site operators, brute-force distances and
Fourier sums), lattice by lattice, to 1e-8."""

import itertools

import numpy as np
import pytest

from nqs_cli.systems.lattice import geometry
from nqs_cli.systems.lattice.exact import exact_ground_state, full_sum
from nqs_cli.systems.lattice.graph import Lattice, cell_geometry
from nqs_cli.systems.lattice.hilbert import FockSpace, SpinSpace
from nqs_cli.systems.lattice.observables import FOCK_NAMES, SPIN_NAMES, LatticeObservables, undefined_reason
from nqs_cli.systems.lattice.operators import BondHamiltonian, bose_hubbard, heisenberg, spin_matrices

TOL = 1e-8


def brute_distances(lat: Lattice) -> np.ndarray:
    """(n, n) distances: minimum over the images within two periods (positions), or hop counts."""
    n = lat.n_sites
    if lat.graph == "custom":
        d = np.full((n, n), np.inf)
        np.fill_diagonal(d, 0)
        for i, j in lat.edges:
            d[i, j] = d[j, i] = 1
        for k, i, j in itertools.product(range(n), repeat=3):  # Floyd–Warshall
            d[i, j] = min(d[i, j], d[i, k] + d[k, j])
        return d
    vectors, _ = cell_geometry(lat.graph, lat.dims)
    shifts = [range(-2, 3) if p else [0] for p in lat.periodic]
    out = np.full((n, n), np.inf)
    for s in itertools.product(*shifts):
        image = (np.asarray(s) * np.asarray(lat.lengths)) @ vectors
        diff = lat.positions[None, :, :] + image - lat.positions[:, None, :]
        out = np.minimum(out, np.linalg.norm(diff, axis=-1))
    return out


def dense_pair_matrix(psi, states, lat, space, bond) -> np.ndarray:
    """⟨ψ|B_ij|ψ⟩ for every pair i ≠ j of a two-site operator ``bond`` (d², d²)."""
    n, d = lat.n_sites, space.local_dim
    out = np.zeros((n, n))
    for i, j in itertools.combinations(range(n), 2):
        op = BondHamiltonian(n, d, np.array([[i, j]]), bond, 0, np.zeros(d))
        out[i, j] = out[j, i] = float(psi @ op.to_sparse(states) @ psi)
    return out


def binned(obs: LatticeObservables, matrix: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """The mean of ``matrix`` over the bulk pairs i ≤ j at each of the estimator's distances."""
    bulk = np.flatnonzero(obs.bulk)
    out = []
    for r in obs.distances:
        pairs = [(i, j) for i in bulk for j in bulk if i <= j and abs(dist[i, j] - r) < 1e-6]
        out.append(np.mean([matrix[i, j] for i, j in pairs]))
    return np.array(out)


def fourier(lat: Lattice, matrix: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(1/N) Σ_ij e^{iq·(r_i − r_j)} M_ij at each q."""
    phase = np.exp(1j * q @ lat.positions.T)
    return np.real(np.einsum("qi,ij,qj->q", phase, matrix, phase.conj())) / lat.n_sites


def check_spins(lat: Lattice, s: float, j2: float = 0.0):
    space = SpinSpace(lat.n_sites, s, 0)
    names = tuple(n for n in SPIN_NAMES if undefined_reason(n, lat, space) is None)
    sign_rule = lat.is_bipartite and j2 == 0
    _, states, psi = exact_ground_state(heisenberg(lat, space, 1.0, 0.0, sign_rule, J2=j2), space)
    _, plain_states, plain = exact_ground_state(heisenberg(lat, space, 1.0, 0.0, False, J2=j2), space)
    edge = geometry.default_edge_sites(lat)
    obs = LatticeObservables(lat, space, names, geometry.default_max_distance(lat, geometry.bulk_sites(lat, edge)), edge,
                             (lat.sublattice == 1) if sign_rule else None)
    got = full_sum(obs, states, psi)
    m = states - s
    dist = brute_distances(lat)
    zz = np.einsum("x,xi,xj->ij", psi**2, m, m)
    sz, sp, sm = spin_matrices(s)
    ss = dense_pair_matrix(plain, plain_states, lat, space, np.kron(sz, sz) + 0.5 * (np.kron(sp, sm) + np.kron(sm, sp)))
    np.fill_diagonal(ss, s * (s + 1))
    np.testing.assert_allclose(got["zz"], binned(obs, zz, dist), atol=TOL)
    np.testing.assert_allclose(got["ss"], binned(obs, ss, dist), atol=TOL)
    if "structure_factor" in names:
        q = geometry.momenta(lat)
        np.testing.assert_allclose(got["sq"], fourier(lat, zz, q), atol=TOL)
        np.testing.assert_allclose(got["ssq"], fourier(lat, ss, q), atol=TOL)
    if "staggered_magnetization" in names:
        eps = np.where(obs.bulk, 1 - 2 * lat.sublattice, 0) / obs.bulk.sum()
        assert got["ms2"] == pytest.approx(eps @ zz @ eps, abs=TOL)
        assert got["ms_ms"] == pytest.approx(eps @ ss @ eps, abs=TOL)
    return names, got


def check_bosons(lat: Lattice, n_max: int, n_particles: int, u: float = 4.0):
    space = FockSpace(lat.n_sites, n_max, n_particles)
    names = tuple(n for n in FOCK_NAMES if undefined_reason(n, lat, space) is None)
    _, states, psi = exact_ground_state(bose_hubbard(lat, space, 1.0, u), space)
    edge = geometry.default_edge_sites(lat)
    obs = LatticeObservables(lat, space, names, geometry.default_max_distance(lat, geometry.bulk_sites(lat, edge)), edge)
    got = full_sum(obs, states, psi)
    n = states.astype(float)
    density = psi**2 @ n
    np.testing.assert_allclose(got["n"], density, atol=TOL)
    var = psi**2 @ n**2 - density**2
    np.testing.assert_allclose(got["number_fluctuation_sites"], var, atol=TOL)
    w = np.where(obs.bulk, density, 0)
    assert got["number_fluctuation"] == pytest.approx(w @ var / w.sum(), abs=TOL)
    nn = np.einsum("x,xi,xj->ij", psi**2, n, n)
    np.testing.assert_allclose(got["nn"], binned(obs, nn, brute_distances(lat)), atol=TOL)
    d = space.local_dim
    b_dag = np.diag(np.sqrt(np.arange(1, d)), k=-1)
    rho = dense_pair_matrix(psi, states, lat, space, np.kron(b_dag, b_dag.T) + np.kron(b_dag.T, b_dag)) / 2 + np.diag(density)
    np.testing.assert_allclose(got["rho"], rho, atol=TOL)
    assert got["condensate_fraction"] == pytest.approx(np.linalg.eigvalsh(rho)[-1] / np.trace(rho), abs=TOL)
    if "momentum_distribution" in names:
        np.testing.assert_allclose(got["nk"], fourier(lat, rho, geometry.momenta(lat)), atol=TOL)
        if lat.n_basis == 1 and all(lat.periodic):
            assert np.sum(got["nk"]) == pytest.approx(n_particles, abs=TOL)  # Σ_k n(k) = N over the allowed momenta
    return names, got


LADDER = Lattice("square", (6, 2), pbc=(True, False))


@pytest.mark.parametrize("lat, n_max, n_particles", [
    (LADDER, 2, 6),
    (Lattice("square", (4, 3)), 2, 6),
    (Lattice("honeycomb", (2, 2)), 2, 5),
    (Lattice("chain", 8, pbc=False), 3, 8),
    (Lattice("custom", 6, custom_edges=((0, 1), (1, 2), (2, 0), (2, 3), (3, 4), (4, 5))), 3, 6),
], ids=["ladder-6x2", "torus-4x3", "honeycomb-2x2", "open-chain-8", "custom"])
def test_boson_estimators_equal_exact_expectations_on_every_lattice(lat, n_max, n_particles):
    names, got = check_bosons(lat, n_max, n_particles)
    assert ("momentum_distribution" in names) == (lat.graph != "custom")


@pytest.mark.parametrize("lat, s", [
    (LADDER, 0.5),
    (Lattice("square", (4, 3)), 0.5),
    (Lattice("honeycomb", (3, 2)), 0.5),
    (Lattice("triangular", (4, 3)), 0.5),
    (Lattice("kagome", (2, 2)), 0.5),
    (Lattice("chain", 8, pbc=False), 1),
    (Lattice("custom", 8, custom_edges=tuple((i, (i + 1) % 8) for i in range(8)) + ((0, 4),)), 0.5),
], ids=["ladder-6x2", "torus-4x3", "honeycomb-3x2", "triangular-4x3", "kagome-2x2", "open-chain-8", "custom"])
def test_spin_estimators_equal_exact_expectations_on_every_lattice(lat, s):
    names, got = check_spins(lat, s)
    assert ("staggered_moment" in names) == lat.is_bipartite
    assert ("structure_factor" in names) == (lat.graph != "custom")
    if lat.is_bipartite and lat.graph != "custom":
        # SU(2): an antiferromagnet's singlet ground state has S(q) = 3 S^zz(q), ⟨m_s·m_s⟩ = 3⟨(m^z_s)²⟩
        np.testing.assert_allclose(got["ssq"], 3 * got["sq"], atol=TOL)
        assert got["ms_ms"] == pytest.approx(3 * got["ms2"], abs=TOL)


def test_what_a_lattice_cannot_measure_is_refused_with_the_reason():
    spins = SpinSpace(12, 0.5, 0)
    triangular = Lattice("triangular", (4, 3))
    assert "not bipartite" in undefined_reason("staggered_magnetization", triangular, spins)
    custom = Lattice("custom", 4, custom_edges=((0, 1), (1, 2), (2, 3)))
    assert "no site positions" in undefined_reason("structure_factor", custom, spins)
    assert "chain" in undefined_reason("string_order", Lattice("square", 4), SpinSpace(16, 1, 0))
    with pytest.raises(ValueError, match="not bipartite"):
        LatticeObservables(triangular, spins, ("staggered_moment",), 2, 0)


def test_the_open_chain_default_keeps_well_filled_bins_and_the_ring_keeps_half_its_length():
    open_chain = Lattice("chain", 32, pbc=False)
    edge = geometry.default_edge_sites(open_chain)
    bulk = geometry.bulk_sites(open_chain, edge)
    assert edge == 8 and bulk.sum() == 16
    assert geometry.default_max_distance(open_chain, bulk) == 8  # 8 pairs or more in every bin
    ring = Lattice("chain", 12)
    assert geometry.default_max_distance(ring, geometry.bulk_sites(ring, 0)) == 6


def test_momenta_are_the_clusters_allowed_ones_and_the_path_reaches_k():
    lat = Lattice("triangular", (6, 3))
    q = geometry.momenta(lat)
    vectors, _ = cell_geometry("triangular", 2)
    # e^{iq·L_k a_k} = 1 on every periodic axis
    for k in range(2):
        np.testing.assert_allclose(np.exp(1j * q @ (lat.lengths[k] * vectors[k])), 1.0, atol=1e-12)
    path = geometry.brillouin_path(lat)
    assert [name for _, name in path["labels"]] == ["Γ", "M", "K", "Γ"]
    corner = np.linalg.norm(q[path["index"]], axis=1).max()
    assert corner == pytest.approx(4 * np.pi / 3, abs=1e-9)  # K of the triangular lattice, |K| = 4π/3
