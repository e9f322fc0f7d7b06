"""Hypercubic lattices: nearest-neighbour edges and the bipartition.

Sites are numbered row-major over the coordinates ``(c_0, ..., c_{dims-1})``,
``site = sum_k c_k * length**(dims - 1 - k)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

GRAPHS = {"chain": 1, "square": 2, "hypercube": None}


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Lattice:
    """A chain, square or hypercubic lattice of ``length**dims`` sites.

    ``dims`` is implied by ``chain`` (1) and ``square`` (2); ``None`` means
    "the implied value" and is required to be given for ``hypercube``.
    """

    graph: str = "chain"
    length: int = 2
    dims: int | None = None
    pbc: bool = True

    def __post_init__(self):
        if self.graph not in GRAPHS:
            raise ValueError(
                f"unknown lattice graph {self.graph!r}; expected one of {sorted(GRAPHS)}"
            )
        implied = GRAPHS[self.graph]
        dims = implied if self.dims is None else self.dims
        if dims is None:
            raise ValueError("a 'hypercube' lattice needs dims (an integer >= 1)")
        if implied is not None and dims != implied:
            raise ValueError(f"a {self.graph!r} lattice has dims = {implied}, got dims = {dims}")
        if not _is_int(dims) or dims < 1:
            raise ValueError(f"lattice dims must be an integer >= 1, got {dims!r}")
        if not _is_int(self.length) or self.length < 1:
            raise ValueError(f"lattice length must be an integer >= 1, got {self.length!r}")
        object.__setattr__(self, "dims", int(dims))
        object.__setattr__(self, "length", int(self.length))
        object.__setattr__(self, "pbc", bool(self.pbc))

    @property
    def n_sites(self) -> int:
        return self.length**self.dims

    @cached_property
    def coords(self) -> np.ndarray:
        """(n_sites, dims) int coordinates of each site, row-major."""
        grid = np.indices((self.length,) * self.dims).reshape(self.dims, -1)
        return grid.T.astype(np.int64)

    @cached_property
    def edges(self) -> np.ndarray:
        """(n_edges, 2) int64 nearest-neighbour pairs ``i < j``, sorted, without duplicates.

        A periodic direction of length 2 contributes one bond per pair (not two), and a
        direction of length 1 none.
        """
        L, coords = self.length, self.coords
        strides = L ** np.arange(self.dims - 1, -1, -1)
        pairs = []
        for axis in range(self.dims):
            c = coords[:, axis]
            step = np.where(c + 1 < L, 1, 1 - L)  # wrap to coordinate 0 at the boundary
            keep = (c + 1 < L) if not self.pbc else np.ones_like(c, dtype=bool)
            i = np.arange(self.n_sites)[keep]
            j = i + step[keep] * strides[axis]
            pairs.append(np.stack([np.minimum(i, j), np.maximum(i, j)], axis=1))
        e = np.concatenate(pairs, axis=0) if pairs else np.zeros((0, 2), np.int64)
        e = e[e[:, 0] != e[:, 1]]  # length-1 periodic direction: self loop
        e = np.unique(e, axis=0)  # length-2 periodic direction: the wrap bond repeats the open one
        return e.reshape(-1, 2).astype(np.int64)

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    @cached_property
    def sublattice(self) -> np.ndarray:
        """(n_sites,) int64 checkerboard colouring 0/1 (parity of the coordinate sum)."""
        return (self.coords.sum(axis=1) % 2).astype(np.int64)

    @property
    def is_bipartite(self) -> bool:
        """True when every edge joins the two sublattices (false for periodic odd length > 1)."""
        s = self.sublattice
        return bool(np.all(s[self.edges[:, 0]] != s[self.edges[:, 1]]))
