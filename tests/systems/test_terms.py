"""The Hamiltonian terms against an independent construction (sparse Kronecker products of
local matrices over the full product space) and against known numbers."""

import numpy as np
import pytest
import scipy.sparse as sp

from nqs_cli.systems.lattice.exact import exact_ground_state, ground_state_energy
from nqs_cli.systems.lattice.graph import Lattice
from nqs_cli.systems.lattice.hilbert import FockSpace, SpinSpace
from nqs_cli.systems.lattice.operators import bose_hubbard, heisenberg


def _site_op(local, i, n):
    d = local.shape[0]
    return sp.kron(sp.kron(sp.identity(d**i), sp.csr_matrix(local)), sp.identity(d ** (n - i - 1))).tocsr()


def _spin_ops(s, n):
    d = int(round(2 * s)) + 1
    m = np.arange(d) - s
    splus = np.diag(np.sqrt(s * (s + 1) - m[:-1] * (m[:-1] + 1)), -1)  # basis m = -s..s, site 0 most significant
    return [(_site_op(np.diag(m), i, n), _site_op(splus, i, n), _site_op(splus.T, i, n)) for i in range(n)]


def _spin_reference(n, s, bonds, next_bonds=(), J=1.0, delta=1.0, J2=0.0, D=0.0, h=0.0, beta=0.0):
    """Σ_bonds J_c [XXZ + β (S·S)²] + J2 Σ_next XXZ + D Σ (S^z)² − h Σ S^z, from kron products."""
    ops = _spin_ops(s, n)
    J = np.atleast_1d(J)

    def xxz(i, j, anis):
        (zi, pi, mi), (zj, pj, mj) = ops[i], ops[j]
        return anis * zi @ zj + 0.5 * (pi @ mj + mi @ pj)

    H = sp.csr_matrix(((int(round(2 * s)) + 1) ** n,) * 2)
    for b in bonds:
        i, j, c = (*b, 0)[:3]
        ss = xxz(i, j, 1.0)
        H = H + J[c] * (xxz(i, j, delta) + beta * ss @ ss)
    for i, j in next_bonds:
        H = H + J2 * xxz(i, j, delta)
    for z, _, _ in ops:
        H = H + D * z @ z - h * z
    return H.tocsr()


def _bose_reference(n, n_max, bonds, J=1.0, U=0.0, V=0.0, mu=0.0, potential=None):
    occ = np.arange(n_max + 1, dtype=float)
    b = np.diag(np.sqrt(occ[1:]), 1)  # annihilator: <n-1| b |n> = sqrt(n)
    bs, ns = [_site_op(b, i, n) for i in range(n)], [_site_op(np.diag(occ), i, n) for i in range(n)]
    J = np.atleast_1d(J)
    H = sp.csr_matrix(((n_max + 1) ** n,) * 2)
    for bond in bonds:
        i, j, c = (*bond, 0)[:3]
        H = H - J[c] * (bs[i].T @ bs[j] + bs[j].T @ bs[i]) + V * ns[i] @ ns[j]
    eye = sp.identity((n_max + 1) ** n)
    for i in range(n):
        H = H + 0.5 * U * ns[i] @ (ns[i] - eye) - mu * ns[i]
        if potential is not None:
            H = H + potential[i] * ns[i]
    return H.tocsr()


def _sector(H_ref, states, d):
    """The reference restricted to ``states`` (lexicographic = the kron basis order)."""
    idx = states.astype(np.int64) @ (d ** np.arange(states.shape[1] - 1, -1, -1))
    return H_ref[idx][:, idx].toarray()


SPIN_CASES = [
    # (lattice, s, total_sz, terms)
    (Lattice("chain", 8), 0.5, None, dict(delta=2.0, h=0.3)),
    (Lattice("chain", 7, pbc=False), 1, None, dict(D=0.7, h=-0.4, delta=0.8, beta=0.15)),
    (Lattice("chain", 8), 0.5, 0, dict(J2=0.5)),
    (Lattice("square", (3, 3)), 0.5, 0.5, dict(J2=0.3, delta=1.2)),
    (Lattice("square", (4, 2), pbc=(True, False)), 1, 0, dict(J2=-0.2, D=0.3)),
    (Lattice("triangular", (3, 3)), 0.5, 0.5, dict(delta=0.5, J2=0.1)),
    (Lattice("honeycomb", (2, 2), pbc=False), 1, 0, dict(D=-0.4, J2=0.25)),
    (Lattice("kagome", (2, 2), pbc=(True, False)), 0.5, 0, dict()),
    (Lattice("custom", 5, custom_edges=((0, 1), (1, 2, 1), (2, 3), (3, 4, 1), (4, 0, 2))), 1, None, dict(J=[1.0, 0.5, -0.3], beta=0.2)),
]


@pytest.mark.parametrize("lattice, s, total_sz, terms", SPIN_CASES, ids=[f"{c[0].graph}-{i}" for i, c in enumerate(SPIN_CASES)])
def test_heisenberg_terms_match_kronecker_reference(lattice, s, total_sz, terms):
    n = lattice.n_sites
    space = SpinSpace(n, s, total_sz=total_sz)
    states = space.all_states()
    bonds = [(*e, c) for e, c in zip(lattice.edges.tolist(), lattice.edge_colors.tolist())]
    nnn = lattice.next_nearest_edges.tolist() if terms.get("J2") else []
    reference = _sector(_spin_reference(n, s, bonds, nnn, **terms), states, space.local_dim)
    plain = heisenberg(lattice, space, sign_rule=False, **terms).to_dense(states)
    np.testing.assert_allclose(plain, reference, rtol=0, atol=1e-12)
    if lattice.is_bipartite:  # Marshall's rotation, exact or (with J2) a reference sign: H -> D H D
        rotated = heisenberg(lattice, space, sign_rule=True, **terms).to_dense(states)
        d = (-1.0) ** (states[:, lattice.sublattice == 1].sum(axis=1) % 2)
        np.testing.assert_allclose(rotated, d[:, None] * reference * d[None, :], rtol=0, atol=1e-12)


def test_any_rotated_pattern_with_j2_is_the_similarity_d_h_d():
    """Stripes (or any set of rotated sites) as the reference sign: H -> D H D exactly."""
    lat = Lattice("square", 4, pbc=True)
    space = SpinSpace(16, 0.5, total_sz=0)
    states = space.all_states()
    stripes = (lat.coords[:, 0] % 2).astype(np.int64)
    plain = heisenberg(lat, space, J2=0.7, sign_rule=False).to_dense(states)
    rotated = heisenberg(lat, space, J2=0.7, sign_rule=True, rotated=stripes).to_dense(states)
    d = (-1.0) ** (states[:, stripes == 1].sum(axis=1) % 2)
    np.testing.assert_allclose(rotated, d[:, None] * plain * d[None, :], rtol=0, atol=1e-12)


def test_sign_rule_with_j2_keeps_the_spectrum_and_defaults_off():
    lat, space = Lattice("chain", 6), SpinSpace(6, 0.5, total_sz=0)
    states = space.all_states()
    reference = np.linalg.eigvalsh(heisenberg(lat, space, J2=0.5, sign_rule=False).to_dense(states))
    np.testing.assert_allclose(np.linalg.eigvalsh(heisenberg(lat, space, J2=0.5, sign_rule=True).to_dense(states)), reference, atol=1e-10)
    np.testing.assert_array_equal(heisenberg(lat, space, J2=0.5).to_dense(states), heisenberg(lat, space, J2=0.5, sign_rule=False).to_dense(states))
    rotated = heisenberg(lat, space, delta=3.0).to_dense(states)  # XXZ: the transverse part decides
    assert np.all(rotated - np.diag(np.diag(rotated)) <= 0)


@pytest.mark.parametrize(
    "lattice, n_max, n_particles, terms, potential",
    [
        (Lattice("chain", 5, pbc=False), 3, 4, dict(J=1.0, U=2.0), "trap"),
        (Lattice("chain", 4), 2, None, dict(J=0.7, U=1.0, V=0.3, mu=0.4), "random"),
        (Lattice("triangular", (2, 3), pbc=False), 2, 3, dict(J=1.0, U=3.0, V=0.5), "trap"),
        (Lattice("custom", 4, custom_edges=((0, 1), (1, 2, 1), (2, 3))), 2, 3, dict(J=[1.0, -0.5], U=1.5), "random"),
    ],
)
def test_bose_hubbard_site_potential_matches_kronecker_reference(lattice, n_max, n_particles, terms, potential):
    n = lattice.n_sites
    if potential == "trap":  # V |r_i - c|², c the mean position, computed here from the positions
        r = lattice.positions
        potential = 0.8 * np.sum((r - r.mean(axis=0)) ** 2, axis=1)
    else:
        potential = np.random.default_rng(7).uniform(-1, 1, n)
    space = FockSpace(n, n_max, n_particles=n_particles)
    states = space.all_states()
    bonds = [(*e, c) for e, c in zip(lattice.edges.tolist(), lattice.edge_colors.tolist())]
    reference = _sector(_bose_reference(n, n_max, bonds, potential=potential, **terms), states, n_max + 1)
    h = bose_hubbard(lattice, space, potential=potential, **terms)
    assert h.onsite.shape == (n, n_max + 1)
    np.testing.assert_allclose(h.to_dense(states), reference, rtol=0, atol=1e-12)
    # E∞ = Tr H / dim over the sector, with the per-site table
    assert h.infinite_temperature_energy(space) == pytest.approx(np.trace(reference) / len(states), abs=1e-12)


def test_per_site_onsite_in_the_jitted_kernels():
    import jax
    import jax.numpy as jnp

    lattice, space = Lattice("chain", 5, pbc=False), FockSpace(5, 3, n_particles=4)
    potential = (np.arange(5) - 2.0) ** 2
    h = bose_hubbard(lattice, space, J=1.0, U=2.0, potential=potential)
    states = space.all_states()
    dense = h.to_dense(states)
    x = jnp.asarray(states)
    np.testing.assert_allclose(jax.vmap(h.diagonal)(x), np.diag(dense), atol=1e-12)
    _, _, mels = jax.vmap(h.get_conn_changes)(x)
    np.testing.assert_allclose(mels[:, 0], np.diag(dense), atol=1e-12)


# ---- known numbers ---------------------------------------------------------------------


def test_square_4x4_heisenberg_torus():
    lat = Lattice("square", 4)
    assert ground_state_energy(heisenberg(lat, SpinSpace(16, 0.5, total_sz=0)), SpinSpace(16, 0.5, total_sz=0)) == pytest.approx(-11.228483208, abs=1e-8)


@pytest.mark.parametrize("n", [8, 10])
def test_majumdar_ghosh_point(n):
    """J2 = J/2 on a periodic even chain: the dimer product, E0 = −3N/8 exactly."""
    space = SpinSpace(n, 0.5, total_sz=0)
    assert ground_state_energy(heisenberg(Lattice("chain", n), space, J2=0.5), space) == pytest.approx(-3 * n / 8, abs=1e-10)


def test_triangle_and_triangular_clusters():
    triangle = Lattice("custom", 3, custom_edges=((0, 1), (1, 2), (2, 0)))
    assert ground_state_energy(heisenberg(triangle, SpinSpace(3, 0.5)), SpinSpace(3, 0.5)) == pytest.approx(-0.75, abs=1e-12)
    # the 6-site ring with next-nearest bonds is a triangular strip: J2 = J is the two-leg
    # triangular ladder; 3 × 3 triangular torus against the reference
    for lattice, J2 in ((Lattice("chain", 6), 1.0), (Lattice("triangular", 3), 0.0)):
        n = lattice.n_sites
        space = SpinSpace(n, 0.5, total_sz=n % 2 / 2)
        nnn = lattice.next_nearest_edges.tolist() if J2 else []
        reference = _sector(_spin_reference(n, 0.5, lattice.edges.tolist(), nnn, J2=J2), space.all_states(), 2)
        assert ground_state_energy(heisenberg(lattice, space, J2=J2), space) == pytest.approx(np.linalg.eigvalsh(reference)[0], abs=1e-10)


def _string_order(lattice, D):
    """⟨S^z_0 exp(iπ Σ_{0<k<L/2} S^z_k) S^z_{L/2}⟩ in the ground state of the spin-1 ring."""
    n = lattice.n_sites
    space = SpinSpace(n, 1, total_sz=0)
    _, states, psi = exact_ground_state(heisenberg(lattice, space, D=D), space)
    m = states - 1
    return float(np.sum(psi**2 * m[:, 0] * np.cos(np.pi * m[:, 1 : n // 2].sum(axis=1)) * m[:, n // 2]))


def test_spin1_haldane_to_large_d():
    """The Haldane phase (D < 0.97) has string order (−0.3743 at D = 0, den Nijs and
    Rommelse); the large-D phase has none: there it decays with the ring's length."""
    rings = Lattice("chain", 8), Lattice("chain", 10)
    assert _string_order(rings[1], 0.0) == pytest.approx(-0.3743, abs=0.004)
    large_d = [abs(_string_order(r, 2.0)) for r in rings]
    assert large_d[1] < large_d[0] < 0.02
    # the energies against the independent construction near the transition
    space = SpinSpace(6, 1, total_sz=0)
    ring = Lattice("chain", 6)
    reference = _sector(_spin_reference(6, 1, ring.edges.tolist(), D=0.97), space.all_states(), 3)
    assert ground_state_energy(heisenberg(ring, space, D=0.97), space) == pytest.approx(np.linalg.eigvalsh(reference)[0], abs=1e-10)
