"""Lattices: sites, nearest- and next-nearest-neighbour bonds, the bipartition.

A lattice is a Bravais lattice (one row per primitive vector) with a basis of sites per unit
cell, ``length`` cells along each axis (one integer for every axis, or one per axis) and
periodic or open boundaries per axis (``pbc``). Sites are numbered row-major over the cell
coordinates ``(c_0, ..., c_{dims-1})`` with the basis index fastest,
``site = (sum_k c_k * prod(length[k+1:])) * n_basis + b``; for the chain, square and
hypercubic lattices (one site per cell) this is ``sum_k c_k * length**(dims - 1 - k)``.
Every lattice is scaled so that nearest neighbours are at distance 1.

Bonds are pairs ``i < j``, sorted, each pair once per shell: a periodic direction so short
that two displacements reach the same pair gives one bond, and a displacement that wraps
onto its own site none. ``graph = "custom"`` takes its bonds from an explicit edge list
(``edges``: ``(i, j)`` or ``(i, j, colour)``, kept in the order given) on ``length`` sites.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass
from functools import cached_property

import numpy as np

GRAPHS = {"chain": 1, "square": 2, "hypercube": None, "triangular": 2, "honeycomb": 2, "kagome": 2, "custom": 1}
HYPERCUBIC = ("chain", "square", "hypercube")

_S3 = np.sqrt(3.0)
_TRIANGULAR = np.array([[1.0, 0.0], [0.5, _S3 / 2]])
# graph -> (primitive vectors as rows, basis positions), nearest neighbours at distance 1
_GEOMETRY = {
    "triangular": (_TRIANGULAR, np.array([[0.0, 0.0]])),
    # the second site at (a1 + a2)/3
    "honeycomb": (_S3 * _TRIANGULAR, np.array([[0.0, 0.0], [_S3 / 2, 0.5]])),
    # the second and third sites at a1/2 and a2/2
    "kagome": (2 * _TRIANGULAR, np.array([[0.0, 0.0], [1.0, 0.0], [0.5, _S3 / 2]])),
}


def cell_geometry(graph: str, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """(primitive vectors as rows (dims, dims), basis positions (n_basis, dims)) of a Bravais
    lattice (nearest neighbours at distance 1); hypercubic lattices: the unit vectors, one site."""
    if graph in _GEOMETRY:
        return _GEOMETRY[graph]
    if graph in HYPERCUBIC:
        return np.eye(dims), np.zeros((1, dims))
    raise ValueError(f"a {graph!r} graph has no positions")


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _per_axis(value, dims: int, name: str, check) -> tuple:
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * dims
    if len(values) != dims:
        raise ValueError(f"lattice {name} needs one value per dimension ({dims}), got {len(values)}")
    for v in values:
        if not check(v):
            raise ValueError(f"lattice {name} must be {'an integer >= 1' if name == 'length' else 'true or false'} per axis, got {v!r}")
    return values


@dataclass(frozen=True)
class Lattice:
    """A chain, square, hypercubic, triangular, honeycomb or kagome lattice, or a custom graph.

    ``dims`` is implied by every graph but ``hypercube`` (``None`` means "the implied value");
    ``length`` and ``pbc`` are one value for every axis or a tuple with one per axis. A
    ``custom`` graph has ``length`` sites and the bonds of ``custom_edges``.
    """

    graph: str = "chain"
    length: int | tuple[int, ...] = 2
    dims: int | None = None
    pbc: bool | tuple[bool, ...] = True
    custom_edges: tuple = ()

    def __post_init__(self):
        if self.graph not in GRAPHS:
            raise ValueError(f"unknown lattice graph {self.graph!r}; expected one of {sorted(GRAPHS)}")
        implied = GRAPHS[self.graph]
        dims = implied if self.dims is None else self.dims
        if dims is None:
            raise ValueError("a 'hypercube' lattice needs dims (an integer >= 1)")
        if implied is not None and dims != implied:
            raise ValueError(f"a {self.graph!r} lattice has dims = {implied}, got dims = {dims}")
        if not _is_int(dims) or dims < 1:
            raise ValueError(f"lattice dims must be an integer >= 1, got {dims!r}")
        lengths = _per_axis(self.length, dims, "length", lambda v: _is_int(v) and v >= 1)
        pbcs = _per_axis(self.pbc, dims, "pbc", lambda v: isinstance(v, (bool, np.bool_)))
        object.__setattr__(self, "dims", int(dims))
        object.__setattr__(self, "length", int(lengths[0]) if isinstance(self.length, (int, np.integer)) else tuple(int(v) for v in lengths))
        object.__setattr__(self, "pbc", bool(pbcs[0]) if isinstance(self.pbc, (bool, np.bool_)) else tuple(bool(v) for v in pbcs))
        if self.graph == "custom":
            object.__setattr__(self, "custom_edges", tuple(tuple(int(v) for v in e) for e in self.custom_edges))
            self._check_custom()
        elif self.custom_edges:
            raise ValueError(f"an edge list needs graph 'custom', not {self.graph!r}")

    def _check_custom(self) -> None:
        seen = set()
        for e in self.custom_edges:
            if len(e) not in (2, 3) or (len(e) == 3 and e[2] < 0):
                raise ValueError(f"an edge is [i, j] or [i, j, colour] with colour >= 0, got {list(e)}")
            i, j = e[:2]
            if not (0 <= i < self.n_sites and 0 <= j < self.n_sites):
                raise ValueError(f"edge {list(e)} names a site outside 0..{self.n_sites - 1}")
            if i == j:
                raise ValueError(f"edge {list(e)} joins a site to itself")
            if (min(i, j), max(i, j)) in seen:
                raise ValueError(f"edge {list(e)} joins a pair that an earlier edge already joins")
            seen.add((min(i, j), max(i, j)))

    # ---- sizes and geometry ------------------------------------------------------------

    @property
    def lengths(self) -> tuple[int, ...]:
        """Cells along each axis."""
        return self.length if isinstance(self.length, tuple) else (self.length,) * self.dims

    @property
    def periodic(self) -> tuple[bool, ...]:
        """Periodic boundary along each axis."""
        return self.pbc if isinstance(self.pbc, tuple) else (self.pbc,) * self.dims

    @property
    def n_basis(self) -> int:
        return len(_GEOMETRY[self.graph][1]) if self.graph in _GEOMETRY else 1

    @property
    def n_sites(self) -> int:
        return int(np.prod(self.lengths)) * self.n_basis

    @cached_property
    def coords(self) -> np.ndarray:
        """(n_sites, dims) int64 cell coordinates of each site, row-major."""
        grid = np.indices(self.lengths).reshape(self.dims, -1).T.astype(np.int64)
        return np.repeat(grid, self.n_basis, axis=0)

    @cached_property
    def positions(self) -> np.ndarray:
        """(n_sites, dims) float64 site positions (the cell coordinates on hypercubic lattices
        and custom graphs; nearest neighbours at distance 1 on the others)."""
        if self.graph not in _GEOMETRY:
            return self.coords.astype(np.float64)
        vectors, basis = _GEOMETRY[self.graph]
        return self.coords @ vectors + np.tile(basis, (len(self.coords) // len(basis), 1))

    @property
    def n_translations(self) -> int:
        """G, the number of rows of ``translations``, without building them."""
        return 1 if self.graph == "custom" else int(np.prod([n for n, p in zip(self.lengths, self.periodic) if p]))

    @cached_property
    def translations(self) -> np.ndarray:
        """(G, n_sites) int64 site permutations of the translations along the periodic axes
        (G = the product of their lengths; the identity first): row g maps site i (cell c,
        basis b) to the site of cell c + t_g, basis b. A custom graph has only the identity."""
        if self.graph == "custom":
            return np.arange(self.n_sites, dtype=np.int64)[None, :]
        lengths, nb = np.array(self.lengths), self.n_basis
        cells = np.indices(self.lengths).reshape(self.dims, -1).T
        strides = np.concatenate([np.cumprod(lengths[::-1])[::-1][1:], [1]]).astype(np.int64)
        shifts = np.indices([n if p else 1 for n, p in zip(lengths, self.periodic)]).reshape(self.dims, -1).T
        rows = [((((cells + t) % lengths) @ strides)[:, None] * nb + np.arange(nb)[None, :]).reshape(-1) for t in shifts]
        return np.array(rows, np.int64)

    # ---- bonds ---------------------------------------------------------------------------

    @cached_property
    def edges(self) -> np.ndarray:
        """(n_edges, 2) int64 nearest-neighbour pairs (custom graphs: the edge list, ``i < j``,
        in the order given; otherwise ``i < j``, sorted, without duplicates)."""
        if self.graph == "custom":
            e = np.array([sorted(e[:2]) for e in self.custom_edges], np.int64)
            return e.reshape(-1, 2)
        return self._bonds(_shell(self.graph, self.dims, 1))

    @cached_property
    def edge_colors(self) -> np.ndarray:
        """(n_edges,) int64 bond colour of each edge (0 unless a custom edge list gives one)."""
        if self.graph != "custom":
            return np.zeros(self.n_edges, np.int64)
        return np.array([e[2] if len(e) == 3 else 0 for e in self.custom_edges], np.int64).reshape(-1)

    @cached_property
    def next_nearest_edges(self) -> np.ndarray:
        """(n_edges, 2) int64 next-nearest-neighbour pairs (second shell: the chain's i, i+2,
        the square lattice's diagonals, distance √3 on the triangular, honeycomb and kagome
        lattices), ``i < j``, sorted, without duplicates."""
        if self.graph == "custom":
            raise ValueError("a custom graph has no next-nearest bonds; give them as edges of another colour")
        return self._bonds(_shell(self.graph, self.dims, 2))

    def _bonds(self, table) -> np.ndarray:
        """Pairs from displacements ``(b, b2, offset)``: site (cell c, basis b) to (cell c + offset,
        basis b2), wrapped along periodic axes and dropped past open ones."""
        lengths, nb = np.array(self.lengths), self.n_basis
        cells = np.indices(self.lengths).reshape(self.dims, -1).T
        strides = np.concatenate([np.cumprod(lengths[::-1])[::-1][1:], [1]]).astype(np.int64)
        pairs = []
        for b, b2, offset in table:
            target = cells + np.asarray(offset)
            keep = np.ones(len(cells), bool)
            for axis, periodic in enumerate(self.periodic):
                if periodic:
                    target[:, axis] %= lengths[axis]
                else:
                    keep &= (target[:, axis] >= 0) & (target[:, axis] < lengths[axis])
            i = (cells[keep] @ strides) * nb + b
            j = (target[keep] @ strides) * nb + b2
            pairs.append(np.stack([np.minimum(i, j), np.maximum(i, j)], axis=1))
        e = np.concatenate(pairs, axis=0) if pairs else np.zeros((0, 2), np.int64)
        e = e[e[:, 0] != e[:, 1]]  # a displacement that wraps onto its own site
        e = np.unique(e, axis=0)  # two displacements that wrap onto the same pair
        return e.reshape(-1, 2).astype(np.int64)

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    # ---- bipartition ---------------------------------------------------------------------

    @cached_property
    def _two_colouring(self) -> tuple[np.ndarray, bool]:
        """Breadth-first 2-colouring of the bonds, each connected part starting with colour 0
        at its lowest site; and whether it is proper (the graph is bipartite)."""
        neighbours = [[] for _ in range(self.n_sites)]
        for i, j in self.edges:
            neighbours[i].append(j)
            neighbours[j].append(i)
        colour = np.full(self.n_sites, -1, np.int64)
        proper = True
        for root in range(self.n_sites):
            if colour[root] >= 0:
                continue
            colour[root] = 0
            queue = deque([root])
            while queue:
                i = queue.popleft()
                for j in neighbours[i]:
                    if colour[j] < 0:
                        colour[j] = 1 - colour[i]
                        queue.append(j)
                    elif colour[j] == colour[i]:
                        proper = False
        return colour, proper

    @property
    def sublattice(self) -> np.ndarray:
        """(n_sites,) int64 colouring 0/1; on a bipartite lattice every bond joins the two
        colours (on a bipartite hypercubic lattice: the parity of the coordinate sum)."""
        return self._two_colouring[0]

    @property
    def is_bipartite(self) -> bool:
        """Whether the nearest-neighbour bonds admit a 2-colouring (no odd loop: false for a
        periodic odd length > 2 on hypercubic lattices, always false on triangular and kagome)."""
        return self._two_colouring[1]


def _shell(graph: str, dims: int, shell: int) -> list[tuple[int, int, tuple[int, ...]]]:
    """Displacements ``(b, b2, offset)`` to the nearest (shell 1) or next-nearest (shell 2)
    neighbours, each bond direction once."""
    if graph in HYPERCUBIC:
        unit = [tuple(int(a == k) for k in range(dims)) for a in range(dims)]
        if shell == 1:
            return [(0, 0, u) for u in unit]
        if dims == 1:
            return [(0, 0, (2,))]
        return [(0, 0, tuple(np.add(unit[a], s * np.array(unit[b])))) for a, b in itertools.combinations(range(dims), 2) for s in (1, -1)]
    return _geometric_shell(graph, shell)


def _geometric_shell(graph: str, shell: int) -> list[tuple[int, int, tuple[int, ...]]]:
    """Displacements at the ``shell``-th smallest distance, found from the geometry."""
    vectors, basis = _GEOMETRY[graph]
    candidates = []
    for offset in itertools.product(range(-2, 3), repeat=len(vectors)):
        for b, b2 in itertools.product(range(len(basis)), repeat=2):
            d = np.linalg.norm(np.asarray(offset) @ vectors + basis[b2] - basis[b])
            if d > 1e-9:
                candidates.append((round(float(d), 9), b, b2, offset))
    radius = sorted({c[0] for c in candidates})[shell - 1]
    # each bond once: keep the displacement, drop its reverse (b2 -> b, -offset)
    out = []
    for d, b, b2, offset in candidates:
        reverse = (b2, b, tuple(-o for o in offset))
        if d == radius and reverse not in out:
            out.append((b, b2, offset))
    return out
