import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nqs_cli.systems.lattice.hilbert import FockSpace, SpinSpace
from nqs_cli.systems.lattice.graph import Lattice

# ---- lattice -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "graph, length, dims, pbc, n_edges",
    [
        ("chain", 1, None, True, 0),
        ("chain", 1, None, False, 0),
        ("chain", 2, None, True, 1),
        ("chain", 2, None, False, 1),
        ("chain", 3, None, True, 3),
        ("chain", 8, None, True, 8),
        ("chain", 8, None, False, 7),
        ("square", 2, None, True, 4),
        ("square", 3, None, True, 18),
        ("square", 3, None, False, 12),
        ("square", 4, 2, True, 32),
        ("hypercube", 2, 3, True, 12),
        ("hypercube", 3, 3, True, 81),
        ("hypercube", 3, 3, False, 54),
        ("hypercube", 4, 1, True, 4),
    ],
)
def test_edge_counts(graph, length, dims, pbc, n_edges):
    lat = Lattice(graph, length, dims, pbc)
    e = lat.edges
    assert e.shape == (n_edges, 2)
    assert np.all(e[:, 0] < e[:, 1])
    assert len({tuple(p) for p in e}) == n_edges
    # every edge joins sites whose coordinates differ by one step (mod L) along one axis
    diff = np.abs(lat.coords[e[:, 0]] - lat.coords[e[:, 1]])
    assert np.all(np.sum(diff != 0, axis=1) == 1)
    assert np.all((diff.max(axis=1) == 1) | (pbc & (diff.max(axis=1) == length - 1)))


def test_row_major_site_index():
    lat = Lattice("square", 3, pbc=False)
    assert lat.n_sites == 9
    assert {tuple(p) for p in lat.edges} >= {(0, 1), (1, 2), (0, 3), (3, 6), (4, 5), (4, 7)}
    assert (2, 3) not in {tuple(p) for p in lat.edges}


@pytest.mark.parametrize(
    "graph, length, dims, pbc, bipartite",
    [
        ("chain", 4, None, True, True),
        ("chain", 5, None, True, False),
        ("chain", 5, None, False, True),
        ("chain", 2, None, True, True),
        ("chain", 1, None, True, True),
        ("square", 3, None, True, False),
        ("square", 4, None, True, True),
        ("hypercube", 3, 3, False, True),
        ("hypercube", 3, 3, True, False),
    ],
)
def test_bipartition(graph, length, dims, pbc, bipartite):
    lat = Lattice(graph, length, dims, pbc)
    s = lat.sublattice
    assert s.shape == (lat.n_sites,) and set(np.unique(s)) <= {0, 1}
    assert lat.is_bipartite == bipartite
    assert lat.is_bipartite == bool(np.all(s[lat.edges[:, 0]] != s[lat.edges[:, 1]]))


def test_lattice_validation():
    with pytest.raises(ValueError, match="graph"):
        Lattice("triangle", 3)
    with pytest.raises(ValueError, match="dims"):
        Lattice("hypercube", 3)
    with pytest.raises(ValueError, match="dims"):
        Lattice("square", 3, dims=3)
    with pytest.raises(ValueError, match="length"):
        Lattice("chain", 0)
    assert Lattice("chain", 4).dims == 1 and Lattice("square", 4, dims=2).dims == 2


# ---- Hilbert spaces ------------------------------------------------------------------

SPACES = [
    FockSpace(3, 2),
    FockSpace(4, 3, n_particles=4),
    FockSpace(5, 1, n_particles=2),
    FockSpace(3, 2, n_particles=6),
    FockSpace(3, 2, n_particles=0),
    SpinSpace(4, 0.5),
    SpinSpace(4, 0.5, total_sz=0),
    SpinSpace(3, 0.5, total_sz=0.5),
    SpinSpace(4, 1, total_sz=0),
    SpinSpace(3, 1.5, total_sz=-1.5),
    SpinSpace(2, 1, total_sz=2),
]


def _brute_force(space):
    d = space.local_dim
    all_x = np.array(list(itertools.product(range(d), repeat=space.n_sites)), np.int32)
    if space.index_sum is not None:
        all_x = all_x[all_x.sum(axis=1) == space.index_sum]
    return all_x


@pytest.mark.parametrize("space", SPACES, ids=repr)
def test_enumeration(space):
    states = space.all_states()
    assert states.dtype == np.int32 and states.shape == (space.n_states, space.n_sites)
    np.testing.assert_array_equal(states, _brute_force(space))  # lexicographic, complete
    assert bool(jnp.all(jax.vmap(space.is_valid)(states)))


@pytest.mark.parametrize("space", SPACES, ids=repr)
def test_random_state_valid(space):
    keys = jax.random.split(jax.random.key(0), 400)
    def one(key):
        x = space.random_state(key)
        return x, space.is_valid(x)

    xs, valid = jax.jit(lambda ks: jax.lax.map(one, ks))(keys)  # a vmapped threefry compiles slowly

    xs = np.asarray(xs)
    assert bool(jnp.all(valid))
    assert xs.dtype == np.int32 and xs.shape == (400, space.n_sites)
    assert np.all((xs >= 0) & (xs < space.local_dim))
    if space.is_constrained:
        assert np.all(xs.sum(axis=1) == space.index_sum)
    # random: several distinct states come out whenever the sector has several
    assert len({tuple(x) for x in xs}) >= min(space.n_states, 5)


def test_random_state_vmaps():
    space = FockSpace(6, 3, n_particles=7)
    xs = np.asarray(jax.jit(jax.vmap(space.random_state))(jax.random.split(jax.random.key(3), 64)))
    assert xs.shape == (64, 6) and np.all(xs.sum(axis=1) == 7) and xs.max() <= 3


def test_local_values():
    np.testing.assert_array_equal(FockSpace(2, 3).local_values, [0, 1, 2, 3])
    np.testing.assert_array_equal(SpinSpace(2, 1).local_values, [-1, 0, 1])
    np.testing.assert_array_equal(SpinSpace(2, 1.5).local_values, [-1.5, -0.5, 0.5, 1.5])
    assert SpinSpace(4, 0.5, total_sz=1).index_sum == 3
    x = np.array([2, 0, 1], np.int32)  # m = (1, -1, 0)
    assert float(SpinSpace(3, 1).local_values[x].sum()) == 0.0


def test_n_states_counts():
    assert FockSpace(8, 3, 8).n_states == 3823
    assert FockSpace(6, 3, 6).n_states == 336
    assert SpinSpace(10, 1, 0).n_states == 8953
    assert FockSpace(16, 3).n_states == 4**16
    assert FockSpace(32, 3, 32).n_states > 10**15  # counted, not enumerated


def test_too_many_states():
    with pytest.raises(ValueError, match="4294967296 states"):
        FockSpace(16, 3).all_states()
    with pytest.raises(ValueError, match="3823 states"):
        FockSpace(8, 3, 8).all_states(max_states=1000)


def test_is_valid():
    space = FockSpace(3, 2, n_particles=3)
    assert bool(space.is_valid(np.array([1, 1, 1])))
    assert not bool(space.is_valid(np.array([1, 1, 0])))
    assert not bool(space.is_valid(np.array([3, 0, 0])))
    assert not bool(space.is_valid(np.array([1, 1, 1, 0])))
    assert bool(jax.jit(space.is_valid)(jnp.array([0, 1, 2])))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: FockSpace(4, 2, n_particles=9), "does not fit"),
        (lambda: FockSpace(4, 2, n_particles=-1), "n_particles"),
        (lambda: FockSpace(4, 0), "n_max"),
        (lambda: FockSpace(0, 2), "n_sites"),
        (lambda: SpinSpace(4, 0.3), "multiple of 1/2"),
        (lambda: SpinSpace(4, 0), "multiple of 1/2"),
        (lambda: SpinSpace(3, 0.5, total_sz=0), "not reachable"),
        (lambda: SpinSpace(2, 1, total_sz=3), "not reachable"),
        (lambda: SpinSpace(2, 1, total_sz=0.5), "not reachable"),
    ],
)
def test_space_validation(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_spaces_are_hashable_static():
    assert hash(FockSpace(4, 3, 4)) == hash(FockSpace(4, 3, 4))
    assert SpinSpace(4, 1, 0) == SpinSpace(4, 1.0, 0)
