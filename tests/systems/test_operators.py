import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nqs_cli.systems.lattice.exact import exact_ground_state, ground_state_energy
from nqs_cli.systems.lattice.hilbert import FockSpace, SpinSpace
from nqs_cli.systems.lattice.graph import Lattice
from nqs_cli.systems.lattice.operators import BondHamiltonian, bose_hubbard, heisenberg, spin_matrices

SQRT2 = np.sqrt(2.0)


def _systems():
    """Small (name, hamiltonian, space) cases; spaces are unconstrained where cheap."""
    chain4, open5, square2, square3 = (
        Lattice("chain", 4),
        Lattice("chain", 5, pbc=False),
        Lattice("square", 2),
        Lattice("square", 3, pbc=False),
    )
    fock = FockSpace(4, 2)
    yield "bh-chain4", bose_hubbard(chain4, fock, J=0.7, U=3.0, V=0.4, mu=0.2), fock
    yield "bh-hardcore-open", bose_hubbard(open5, FockSpace(5, 1), 1.0, 2.0), FockSpace(5, 1)
    yield "bh-square2", bose_hubbard(square2, FockSpace(4, 2, 3), 1.0, 4.0), FockSpace(4, 2, 3)
    yield "spin1-chain4", heisenberg(chain4, SpinSpace(4, 1)), SpinSpace(4, 1)
    yield "spin1-beta", heisenberg(chain4, SpinSpace(4, 1), beta=-0.35), SpinSpace(4, 1)
    yield "spin1-nosign", heisenberg(chain4, SpinSpace(4, 1), sign_rule=False), SpinSpace(4, 1)
    yield "spin32-chain3", heisenberg(Lattice("chain", 3), SpinSpace(3, 1.5)), SpinSpace(3, 1.5)
    yield "spin12-square", heisenberg(square3, SpinSpace(9, 0.5)), SpinSpace(9, 0.5)


SYSTEMS = list(_systems())
IDS = [name for name, _, _ in SYSTEMS]


def _conn_all(h, states):
    """(xp, mels, n_conn, diagonal) for every state, in one compiled call."""

    def one(x):
        return (*h.get_conn_padded(x), h.n_conn(x), h.diagonal(x))

    return tuple(np.asarray(a) for a in jax.jit(jax.vmap(one))(jnp.asarray(states)))


@pytest.mark.parametrize("name, h, space", SYSTEMS, ids=IDS)
def test_padded_connections(name, h, space):
    states = space.all_states()
    xp, mels, n_conn, diag = _conn_all(h, states)
    k = h.max_conn
    assert xp.shape == (len(states), k, space.n_sites) and xp.dtype == np.int32
    assert mels.shape == (len(states), k) and mels.dtype == np.float64
    assert k == 1 + h.n_edges * h.max_conn_per_bond
    np.testing.assert_array_equal(xp[:, 0], states)  # row 0: the diagonal
    off = mels[:, 1:] != 0
    padding = ~off
    # padding rows point back to x; real rows differ from x
    same = np.broadcast_to(states[:, None], xp[:, 1:].shape)
    np.testing.assert_array_equal(xp[:, 1:][padding], same[padding])
    assert np.all(np.any(xp[:, 1:] != states[:, None], axis=2)[off])
    # hops conserve the particle number / total S^z
    totals = np.broadcast_to(states.sum(1)[:, None], off.shape)
    np.testing.assert_array_equal(xp.sum(axis=2)[:, 1:][off], totals[off])
    # n_conn counts the nonzero off-diagonal elements
    assert n_conn.dtype == np.int32
    np.testing.assert_array_equal(n_conn, off.sum(axis=1))
    np.testing.assert_allclose(diag, mels[:, 0], rtol=0, atol=1e-14)


@pytest.mark.parametrize("name, h, space", SYSTEMS, ids=IDS)
def test_hermitian(name, h, space):
    mat = h.to_sparse(space.all_states())
    assert abs(mat - mat.T).max() < 1e-14


def test_bose_hubbard_dimer_by_hand():
    J, U, V, mu = 0.7, 4.0, 0.5, 0.3
    lat = Lattice("chain", 2, pbc=False)
    space = FockSpace(2, 2, n_particles=2)
    h = bose_hubbard(lat, space, J=J, U=U, V=V, mu=mu)
    states = space.all_states()
    np.testing.assert_array_equal(states, [[0, 2], [1, 1], [2, 0]])
    expected = np.array(
        [
            [U - 2 * mu, -SQRT2 * J, 0.0],
            [-SQRT2 * J, V - 2 * mu, -SQRT2 * J],
            [0.0, -SQRT2 * J, U - 2 * mu],
        ]
    )
    np.testing.assert_allclose(h.to_dense(states), expected, rtol=0, atol=1e-14)
    # periodic L=2 has the same single bond
    h_pbc = bose_hubbard(Lattice("chain", 2, pbc=True), space, J=J, U=U, V=V, mu=mu)
    np.testing.assert_allclose(h_pbc.to_dense(states), expected, rtol=0, atol=1e-14)


def test_bose_hubbard_truncation():
    # n_max = 2: |2,1> cannot hop to |3,0>, only to |1,2>
    h = bose_hubbard(Lattice("chain", 2, pbc=False), FockSpace(2, 2), J=1.0, U=0.0)
    xp, mels, _, _ = _conn_all(h, np.array([[2, 1]]))
    xp, mels = xp[0], mels[0]
    targets = {tuple(map(int, row)): float(m) for row, m in zip(xp[1:], mels[1:]) if m != 0}
    assert targets == pytest.approx({(1, 2): -2.0})
    assert h.max_conn == 3


def test_spin1_dimer():
    space = SpinSpace(2, 1, total_sz=0)
    for sign_rule in (True, False):
        h = heisenberg(Lattice("chain", 2, pbc=False), space, J=1.0, sign_rule=sign_rule)
        dense = h.to_dense(space.all_states())  # states m = (-1,1), (0,0), (1,-1)
        s = -1.0 if sign_rule else 1.0
        expected = np.array([[-1.0, s, 0.0], [s, 0.0, s], [0.0, s, -1.0]])
        np.testing.assert_allclose(dense, expected, atol=1e-14)
        assert ground_state_energy(h, space) == pytest.approx(-2.0, abs=1e-12)
    h = heisenberg(Lattice("chain", 2, pbc=False), space, J=2.5)
    e0, states, psi = exact_ground_state(h, space)
    assert e0 == pytest.approx(-5.0, abs=1e-12)
    # zero variance: the singlet is an exact eigenvector
    np.testing.assert_allclose(h.to_sparse(states) @ psi, e0 * psi, atol=1e-12)


def test_spin_matrices():
    for s in (0.5, 1, 1.5, 2):
        sz, splus, sminus = spin_matrices(s)
        sx, sy = (splus + sminus) / 2, (splus - sminus) / 2j
        casimir = sx @ sx + sy @ sy + sz @ sz
        np.testing.assert_allclose(casimir, s * (s + 1) * np.eye(len(sz)), atol=1e-12)
        np.testing.assert_allclose(splus @ sminus - sminus @ splus, 2 * sz, atol=1e-12)


@pytest.mark.parametrize(
    "lattice, space, beta",
    [
        (Lattice("chain", 4), SpinSpace(4, 1), 0.0),
        (Lattice("chain", 4), SpinSpace(4, 1), 0.4),
        (Lattice("chain", 6, pbc=False), SpinSpace(6, 0.5), 0.0),
        (Lattice("square", 2), SpinSpace(4, 1.5, total_sz=0), -0.2),
    ],
)
def test_sign_rule_keeps_spectrum(lattice, space, beta):
    states = space.all_states()
    on = heisenberg(lattice, space, beta=beta, sign_rule=True).to_dense(states)
    off = heisenberg(lattice, space, beta=beta, sign_rule=False).to_dense(states)
    np.testing.assert_allclose(np.linalg.eigvalsh(on), np.linalg.eigvalsh(off), atol=1e-10)
    if beta == 0.0:  # Marshall: the rotated antiferromagnet is stoquastic
        assert np.all(on - np.diag(np.diag(on)) <= 0)
        assert not np.all(off - np.diag(np.diag(off)) <= 0)


def test_sign_rule_defaults_and_errors():
    odd = Lattice("chain", 5)
    with pytest.raises(ValueError, match="bipartite"):
        heisenberg(odd, SpinSpace(5, 1), sign_rule=True)
    # default: off on a frustrated lattice and for a ferromagnet; on for a bipartite antiferromagnet
    even = Lattice("chain", 4)
    for lattice, J, expected in [(odd, 1.0, False), (even, -1.0, False), (even, 1.0, True)]:
        space = SpinSpace(lattice.n_sites, 0.5)
        states = space.all_states()
        default = heisenberg(lattice, space, J=J).to_dense(states)
        explicit = heisenberg(lattice, space, J=J, sign_rule=expected).to_dense(states)
        np.testing.assert_array_equal(default, explicit)
    with pytest.raises(ValueError, match="sites"):
        heisenberg(even, SpinSpace(5, 0.5))


def test_no_edges_and_no_hopping():
    lat, space = Lattice("chain", 1), FockSpace(1, 3)
    h = bose_hubbard(lat, space, J=1.0, U=2.0, mu=0.5)
    assert h.max_conn == 1
    xp, mels, n_conn, _ = _conn_all(h, np.array([[3]]))
    assert xp.shape == (1, 1, 1) and float(mels[0, 0]) == pytest.approx(3 * 2.0 - 1.5)
    assert int(n_conn[0]) == 0
    h0 = bose_hubbard(Lattice("chain", 3), FockSpace(3, 2), J=0.0, U=1.0)
    assert h0.max_conn == 1
    assert ground_state_energy(h0, FockSpace(3, 2, 4)) == pytest.approx(1.0)


def test_bond_hamiltonian_validation():
    with pytest.raises(ValueError, match="symmetric"):
        BondHamiltonian(2, 2, [[0, 1]], np.triu(np.ones((4, 4))), 0, np.zeros(2))
    with pytest.raises(ValueError, match="edges"):
        BondHamiltonian(2, 2, [[0, 2]], np.eye(4), 0, np.zeros(2))
    with pytest.raises(ValueError, match="bond_ops"):
        BondHamiltonian(2, 2, [[0, 1]], np.eye(3), 0, np.zeros(2))


def test_to_sparse_rejects_states_outside_the_sector():
    space = FockSpace(3, 2, n_particles=2)
    h = bose_hubbard(Lattice("chain", 3), space, 1.0, 1.0)
    with pytest.raises(ValueError, match="outside"):
        h.to_sparse(space.all_states()[:2])


def test_exact_limit_names_the_count():
    space = FockSpace(8, 3, 8)
    h = bose_hubbard(Lattice("chain", 8), space, 1.0, 4.0)
    with pytest.raises(ValueError, match="3823 states"):
        ground_state_energy(h, space, max_states=1000)


def test_exact_ground_state_vector():
    space = FockSpace(6, 3, 6)
    h = bose_hubbard(Lattice("chain", 6), space, 1.0, 4.0)
    e0, states, psi = exact_ground_state(h, space)
    assert states.shape == (336, 6)
    assert np.linalg.norm(psi) == pytest.approx(1.0)
    mat = h.to_sparse(states)
    assert psi @ (mat @ psi) == pytest.approx(e0, abs=1e-10)
    np.testing.assert_allclose(mat @ psi, e0 * psi, atol=1e-8)


BH = [
    (4, 4, 3, 4.0, -3.9739226507),
    (6, 6, 3, 4.0, -5.6837117773),
    (8, 8, 3, 4.0, -7.4500452954),
    (8, 8, 3, 1.0, -12.9813574821),
    (8, 8, 2, 4.0, -6.8369024711),
]


@pytest.mark.parametrize("length, n, n_max, U, energy", BH)
def test_bose_hubbard_reference_energies(length, n, n_max, U, energy):
    space = FockSpace(length, n_max, n_particles=n)
    h = bose_hubbard(Lattice("chain", length), space, J=1.0, U=U)
    assert ground_state_energy(h, space) == pytest.approx(energy, abs=1e-8)


SPIN1 = [
    (6, True, -8.6174231818),
    (8, True, -11.3369560779),
    (10, True, -14.0941299549),
    (6, False, -7.3702749694),
]


@pytest.mark.parametrize("length, pbc, energy", SPIN1)
@pytest.mark.parametrize("sign_rule", [True, False])
def test_spin1_reference_energies(length, pbc, energy, sign_rule):
    space = SpinSpace(length, 1, total_sz=0)
    h = heisenberg(Lattice("chain", length, pbc=pbc), space, J=1.0, sign_rule=sign_rule)
    assert ground_state_energy(h, space) == pytest.approx(energy, abs=1e-8)


def test_reference_sizes():
    assert bose_hubbard(Lattice("chain", 8), FockSpace(8, 3, 8), 1.0, 4.0).max_conn == 17
    assert heisenberg(Lattice("chain", 10), SpinSpace(10, 1, 0)).max_conn == 21
    assert heisenberg(Lattice("chain", 10), SpinSpace(10, 1, 0), beta=0.3).max_conn == 21
    assert SpinSpace(10, 1, total_sz=0).n_states == 8953


def test_spin_half_ring():
    space = SpinSpace(4, 0.5, total_sz=0)
    h = heisenberg(Lattice("chain", 4), space)
    assert ground_state_energy(h, space) == pytest.approx(-2.0, abs=1e-10)


def test_hamiltonian_closes_over_in_jit():
    space = FockSpace(4, 3, 4)
    h = bose_hubbard(Lattice("chain", 4), space, 1.0, 4.0)
    assert hash(h) == hash(h)  # identity hash: usable as a static argument

    @jax.jit
    def local_energy_of_uniform(x):
        xp, mels = h.get_conn_padded(x)
        return jnp.sum(mels)

    x = space.random_state(jax.random.key(1))
    assert np.isfinite(float(local_energy_of_uniform(x)))
