"""Lattice observables: full-sum estimators against exact diagonalisation, known limits, and
the sampled estimate within its error bar."""

import numpy as np
import pytest

from nqs_cli.config import schema
from nqs_cli.systems.continuum import observables as particle_obs
from nqs_cli.systems.lattice.exact import exact_ground_state, full_sum
from nqs_cli.systems.lattice.graph import Lattice
from nqs_cli.systems.lattice.hilbert import FockSpace, SpinSpace
from nqs_cli.systems.lattice.geometry import momenta
from nqs_cli.systems.lattice.observables import FOCK_NAMES, SPIN_NAMES, LatticeObservables
from nqs_cli.systems.lattice.operators import BondHamiltonian, bose_hubbard, heisenberg, spin_matrices


def two_site_expectation(psi, states, n_sites, local_dim, i, j, bond):
    """⟨ψ|B_ij|ψ⟩ of a symmetric two-site operator ``bond`` (d², d²) on sites (i, j)."""
    op = BondHamiltonian(n_sites, local_dim, np.array([[i, j]]), bond, 0, np.zeros(local_dim))
    return float(psi @ op.to_sparse(states) @ psi)


def expect_diagonal(psi, f):
    return float(np.sum(psi**2 * f))


def test_the_names_agree_with_the_config_schema():
    assert FOCK_NAMES == schema.FOCK_OBSERVABLES and SPIN_NAMES == schema.SPIN_OBSERVABLES
    assert set(schema.PARTICLE_OBSERVABLES) == {"density", "pair_correlation", "structure_factor", "energy_split"}
    assert callable(particle_obs.structure_factor_values)


@pytest.mark.parametrize("pbc", [True, False])
def test_boson_estimators_equal_exact_expectations(pbc):
    lat = Lattice("chain", 6, pbc=pbc)
    space = FockSpace(6, 3, 6)
    _, states, psi = exact_ground_state(bose_hubbard(lat, space, 1.0, 4.0), space)
    obs = LatticeObservables(lat, space, FOCK_NAMES, 3 if pbc else 5, 0)
    got = full_sum(obs, states, psi)
    n = states.astype(float)
    density = [expect_diagonal(psi, n[:, i]) for i in range(6)]
    np.testing.assert_allclose(got["n"], density, atol=1e-10)
    np.testing.assert_allclose(got["number_fluctuation_sites"], [expect_diagonal(psi, n[:, i] ** 2) - density[i] ** 2 for i in range(6)], atol=1e-10)
    # ⟨n_i n_j⟩ against r, averaged over the pairs at that distance
    for k, r in enumerate(obs.distances.astype(int)):
        pairs = [(i, (i + r) % 6) for i in range(6)] if pbc else [(i, i + r) for i in range(6 - r)]
        want = np.mean([expect_diagonal(psi, n[:, i] * n[:, j]) for i, j in pairs])
        assert got["nn"][k] == pytest.approx(want, abs=1e-10)
    # ρ_ij = ⟨b†_i b_j⟩ from the dense operator b†_i b_j + b†_j b_i (ψ real)
    d = space.local_dim
    b_dag = np.diag(np.sqrt(np.arange(1, d)), k=-1)
    hop = np.kron(b_dag, b_dag.T) + np.kron(b_dag.T, b_dag)
    rho = np.diag(density)
    for i in range(6):
        for j in range(i + 1, 6):
            rho[i, j] = rho[j, i] = two_site_expectation(psi, states, 6, d, i, j, hop) / 2
    np.testing.assert_allclose(got["rho"], rho, atol=1e-10)
    cos, sin = (np.cos(momenta(lat) @ lat.coords.T), np.sin(momenta(lat) @ lat.coords.T))
    nk = (np.einsum("qi,ij,qj->q", cos, rho, cos) + np.einsum("qi,ij,qj->q", sin, rho, sin)) / 6
    np.testing.assert_allclose(got["nk"], nk, atol=1e-10)
    assert got["condensate_fraction"] == pytest.approx(np.linalg.eigvalsh(rho)[-1] / 6, abs=1e-10)
    assert np.sum(nk) == pytest.approx(6, abs=1e-10)  # Σ_k n(k) = N


@pytest.mark.parametrize("s, sign_rule", [(1, True), (0.5, True)])
def test_spin_estimators_equal_exact_expectations(s, sign_rule):
    L = 6 if s == 1 else 8
    lat = Lattice("chain", L, pbc=True)
    space = SpinSpace(L, s, 0)
    _, states, psi = exact_ground_state(heisenberg(lat, space, 1.0, 0.0, sign_rule), space)
    _, plain_states, plain = exact_ground_state(heisenberg(lat, space, 1.0, 0.0, False), space)
    names = SPIN_NAMES if s == 1 else tuple(n for n in SPIN_NAMES if n != "string_order")
    obs = LatticeObservables(lat, space, names, L // 2, 0, (lat.sublattice == 1) if sign_rule else None)
    got = full_sum(obs, states, psi)
    m = states - s
    zz = [expect_diagonal(psi, m[:, 0] * m[:, r % L]) for r in obs.distances.astype(int)]  # translation invariant
    np.testing.assert_allclose(got["zz"], zz, atol=1e-10)
    # ⟨S_i·S_j⟩ from the unrotated dense operator on the unrotated ground state
    sz, sp, sm = spin_matrices(s)
    ss = np.kron(sz, sz) + 0.5 * (np.kron(sp, sm) + np.kron(sm, sp))
    d = space.local_dim
    want = [np.mean([two_site_expectation(plain, plain_states, L, d, i, (i + r) % L, ss) for i in range(L)]) if r else s * (s + 1) for r in obs.distances.astype(int)]
    np.testing.assert_allclose(got["ss"], want, atol=1e-8)
    np.testing.assert_allclose(got["ss"][1:], 3 * np.asarray(zz[1:]), atol=1e-8)  # an SU(2) singlet
    full_zz = np.array([[expect_diagonal(psi, m[:, i] * m[:, j]) for j in range(L)] for i in range(L)])
    q = momenta(lat)[:, 0]
    sq = [np.real(np.sum(np.exp(1j * k * (np.arange(L)[:, None] - np.arange(L)[None, :])) * full_zz)) / L for k in q]
    np.testing.assert_allclose(got["sq"], sq, atol=1e-10)
    stag = (-1.0) ** np.arange(L)
    assert got["ms2"] == pytest.approx(stag @ full_zz @ stag / L**2, abs=1e-10)
    if s == 1:
        for k, r in enumerate(obs.distances.astype(int)):
            f = [m[:, i] * m[:, (i + r) % L] * (-1.0) ** np.sum([m[:, (i + t) % L] for t in range(1, r)], axis=0) if r > 1 else m[:, i] * m[:, (i + r) % L]
                 for i in range(L)]
            assert got["string"][k] == pytest.approx(np.mean([expect_diagonal(psi, v) for v in f]), abs=1e-10)


def test_aklt_string_order_is_minus_four_ninths():
    # the AKLT chain (β = 1/3 in J Σ [S·S + β (S·S)²]): string order −4/9 at every distance ≥ 1,
    # up to finite-size terms of order 3^(−L) on a ring of L sites
    lat = Lattice("chain", 10, pbc=True)
    space = SpinSpace(10, 1, 0)
    energy, states, psi = exact_ground_state(heisenberg(lat, space, 1.0, 1 / 3), space)
    assert energy == pytest.approx(-2 / 3 * 10, abs=1e-9)  # the AKLT energy per bond, −2/3
    got = full_sum(LatticeObservables(lat, space, ("string_order",), 5, 0, lat.sublattice == 1), states, psi)
    np.testing.assert_allclose(got["string"][1:], -4 / 9, atol=3.0 ** -10 * 4)


def test_heisenberg_spin1_string_order_approaches_the_bulk_value():
    # White & Huse 1993: −0.374 at long distance; a ring of 10 sites at distance 5 is within 0.005
    lat = Lattice("chain", 10, pbc=True)
    space = SpinSpace(10, 1, 0)
    _, states, psi = exact_ground_state(heisenberg(lat, space, 1.0, 0.0), space)
    got = full_sum(LatticeObservables(lat, space, ("string_order",), 5, 0, lat.sublattice == 1), states, psi)
    assert abs(got["string"][-1] + 0.374) < 0.005


def test_free_bosons_condense_and_deep_mott_has_unit_density():
    lat = Lattice("chain", 4, pbc=True)
    free = FockSpace(4, 4, 4)  # n_max = N: no truncation
    _, states, psi = exact_ground_state(bose_hubbard(lat, free, 1.0, 0.0), free)
    got = full_sum(LatticeObservables(lat, free, FOCK_NAMES, 2, 0), states, psi)
    assert got["condensate_fraction"] == pytest.approx(1.0, abs=1e-10)
    assert got["nk"][0] == pytest.approx(4.0, abs=1e-10)
    lat = Lattice("chain", 6, pbc=True)
    mott = FockSpace(6, 3, 6)
    _, states, psi = exact_ground_state(bose_hubbard(lat, mott, 1.0, 100.0), mott)
    got = full_sum(LatticeObservables(lat, mott, FOCK_NAMES, 3, 0), states, psi)
    np.testing.assert_allclose(got["n"], 1.0, atol=1e-12)
    # second order in J/U: each of the 2 bonds of a site puts weight 2 (J/U)² on a doubly occupied
    # and on an empty site i, so ⟨n_i²⟩ − ⟨n_i⟩² = 2 · 2 (J/U)² · (3 − 1) = 8 (J/U)²
    assert got["number_fluctuation"] == pytest.approx(8 / 100**2, rel=0.02)
    assert got["condensate_fraction"] < 0.3
