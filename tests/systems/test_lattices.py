"""Lattice geometry: site and bond counts, coordination, shells against brute-force distances,
bipartiteness from the bonds, per-axis sizes and boundaries, custom edge lists."""

import itertools

import numpy as np
import pytest

from nqs_cli.systems.lattice.graph import Lattice


def _pairs(edges) -> set:
    return {tuple(map(int, e)) for e in edges}


def _old_hypercubic_edges(length, dims, pbc):
    """The hypercubic bonds as this project built them before per-axis sizes (frozen copy)."""
    L, n = length, length**dims
    coords = np.indices((L,) * dims).reshape(dims, -1).T.astype(np.int64)
    strides = L ** np.arange(dims - 1, -1, -1)
    pairs = []
    for axis in range(dims):
        c = coords[:, axis]
        step = np.where(c + 1 < L, 1, 1 - L)
        keep = (c + 1 < L) if not pbc else np.ones_like(c, dtype=bool)
        i = np.arange(n)[keep]
        j = i + step[keep] * strides[axis]
        pairs.append(np.stack([np.minimum(i, j), np.maximum(i, j)], axis=1))
    e = np.concatenate(pairs, axis=0)
    e = np.unique(e[e[:, 0] != e[:, 1]], axis=0)
    return e.reshape(-1, 2).astype(np.int64)


@pytest.mark.parametrize("graph, dims", [("chain", None), ("square", None), ("hypercube", 3), ("hypercube", 4)])
def test_hypercubic_bonds_and_numbering_unchanged(graph, dims):
    d = {"chain": 1, "square": 2}.get(graph, dims)
    for length, pbc in itertools.product(range(1, 6 if d < 4 else 4), (True, False)):
        lat = Lattice(graph, length, dims, pbc)
        old = _old_hypercubic_edges(length, d, pbc)
        assert lat.edges.dtype == old.dtype and np.array_equal(lat.edges, old), (length, pbc)
        if lat.is_bipartite:  # the sign rule's sublattice: the parity of the coordinate sum
            np.testing.assert_array_equal(lat.sublattice, lat.coords.sum(axis=1) % 2)


def _brute_force_shells(lat: Lattice):
    """(nearest, next-nearest) pairs from the distances of all pairs over periodic images."""
    if lat.graph in ("triangular", "honeycomb", "kagome"):
        s3 = np.sqrt(3.0)
        scale = {"triangular": 1.0, "honeycomb": s3, "kagome": 2.0}[lat.graph]
        vectors = scale * np.array([[1.0, 0.0], [0.5, s3 / 2]])
        second = s3
    else:
        vectors = np.eye(lat.dims)
        second = 2.0 if lat.dims == 1 else np.sqrt(2.0)
    shifts = [np.array(s) for s in itertools.product(*[(-1, 0, 1) if p else (0,) for p in lat.periodic])]
    nn, nnn = set(), set()
    r = lat.positions
    for i, j in itertools.combinations(range(lat.n_sites), 2):
        for s in shifts:
            d = np.linalg.norm(r[j] + (s * np.array(lat.lengths)) @ vectors - r[i])
            if abs(d - 1) < 1e-9:
                nn.add((i, j))
            if abs(d - second) < 1e-9:
                nnn.add((i, j))
    return nn, nnn


SHELL_CASES = [
    ("chain", 7, True), ("chain", 6, False), ("square", 4, True), ("square", (4, 3), (True, False)), ("square", (3, 5), False),
    ("triangular", 4, True), ("triangular", (3, 4), False), ("triangular", (4, 3), (False, True)),
    ("honeycomb", 3, True), ("honeycomb", (3, 2), False), ("kagome", 3, True), ("kagome", (2, 3), (True, False)),
]


@pytest.mark.parametrize("graph, length, pbc", SHELL_CASES)
def test_shells_match_brute_force_distances(graph, length, pbc):
    lat = Lattice(graph, length, pbc=pbc)
    nn, nnn = _brute_force_shells(lat)
    assert _pairs(lat.edges) == nn
    assert _pairs(lat.next_nearest_edges) == nnn
    for e in (lat.edges, lat.next_nearest_edges):
        assert np.all(e[:, 0] < e[:, 1]) and len(_pairs(e)) == len(e)


@pytest.mark.parametrize(
    "graph, length, pbc, n_sites, n_edges, z, n_next, z2, bipartite",
    [
        ("triangular", 4, True, 16, 48, 6, 48, 6, False),
        ("triangular", 6, True, 36, 108, 6, 108, 6, False),
        ("honeycomb", 4, True, 32, 48, 3, 96, 6, True),
        ("honeycomb", (3, 4), True, 24, 36, 3, 72, 6, True),
        ("kagome", 4, True, 48, 96, 4, 96, 4, False),
        ("square", 4, True, 16, 32, 4, 32, 4, True),
        ("square", (6, 4), True, 24, 48, 4, 48, 4, True),
        ("square", (5, 4), True, 20, 40, 4, 40, 4, False),  # an odd periodic axis
        ("chain", 8, True, 8, 8, 2, 8, 2, True),
    ],
)
def test_periodic_counts_and_coordination(graph, length, pbc, n_sites, n_edges, z, n_next, z2, bipartite):
    lat = Lattice(graph, length, pbc=pbc)
    assert (lat.n_sites, lat.n_edges, len(lat.next_nearest_edges)) == (n_sites, n_edges, n_next)
    assert set(np.bincount(lat.edges.ravel(), minlength=n_sites)) == {z}
    assert set(np.bincount(lat.next_nearest_edges.ravel(), minlength=n_sites)) == {z2}
    assert lat.is_bipartite == bipartite


@pytest.mark.parametrize("L, M", [(4, 2), (5, 3), (2, 6)])
def test_rectangles_ladders_cylinders(L, M):
    open_ = Lattice("square", (L, M), pbc=False)
    assert open_.n_sites == L * M and open_.n_edges == (L - 1) * M + L * (M - 1) and open_.is_bipartite
    ladder = Lattice("square", (L, M), pbc=(True, False))  # periodic legs, open rungs
    assert ladder.n_edges == (L if L > 2 else 1) * M + L * (M - 1)
    assert ladder.is_bipartite == (L % 2 == 0)
    tri = Lattice("triangular", (L, M), pbc=False)
    assert tri.n_edges == (L - 1) * M + L * (M - 1) + (L - 1) * (M - 1)
    # row-major numbering over (c_0, c_1): site = c_0 * M + c_1
    np.testing.assert_array_equal(open_.coords[:, 0] * M + open_.coords[:, 1], np.arange(L * M))


def test_honeycomb_open_flake_is_bipartite_and_numbered_by_cell():
    lat = Lattice("honeycomb", (2, 2), pbc=False)
    assert lat.n_sites == 8 and lat.is_bipartite
    np.testing.assert_array_equal(lat.sublattice, [0, 1] * 4)  # A sites even, B sites odd
    d = np.linalg.norm(lat.positions[lat.edges[:, 0]] - lat.positions[lat.edges[:, 1]], axis=1)
    np.testing.assert_allclose(d, 1.0, atol=1e-12)


def test_custom_graph_keeps_order_and_colours():
    lat = Lattice("custom", 4, custom_edges=((1, 0), (1, 2, 1), (2, 3), (3, 0, 1)))
    np.testing.assert_array_equal(lat.edges, [[0, 1], [1, 2], [2, 3], [0, 3]])
    np.testing.assert_array_equal(lat.edge_colors, [0, 1, 0, 1])
    assert lat.is_bipartite  # a 4-ring
    triangle = Lattice("custom", 3, custom_edges=((0, 1), (1, 2), (0, 2)))
    assert not triangle.is_bipartite
    with pytest.raises(ValueError, match="outside"):
        Lattice("custom", 3, custom_edges=((0, 3),))
    with pytest.raises(ValueError, match="already"):
        Lattice("custom", 3, custom_edges=((0, 1), (1, 0, 2)))
    with pytest.raises(ValueError, match="next-nearest"):
        _ = triangle.next_nearest_edges


def test_disconnected_parts_are_coloured_separately():
    lat = Lattice("custom", 5, custom_edges=((0, 1), (2, 3), (3, 4)))
    assert lat.is_bipartite
    np.testing.assert_array_equal(lat.sublattice, [0, 1, 0, 1, 0])


def test_per_axis_validation():
    with pytest.raises(ValueError, match="one value per dimension"):
        Lattice("square", (4, 2, 2))
    with pytest.raises(ValueError, match="one value per dimension"):
        Lattice("square", 4, pbc=(True,))
    with pytest.raises(ValueError, match="length"):
        Lattice("square", (4, 0))
    assert Lattice("square", (4, 2)).lengths == (4, 2) and Lattice("square", 3).periodic == (True, True)
