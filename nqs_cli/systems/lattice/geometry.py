"""The geometry observables need: distances between sites, the bulk of open lattices, the
allowed momenta and a path through the Brillouin zone.

- Distances: on Bravais lattices (with a basis) the Euclidean distance of the minimum image
  (periodic axes wrap, nearest neighbours at distance 1); on custom graphs the graph distance
  (the fewest bonds between two sites).
- Bulk: the sites at least ``edge`` cells from either end of every open axis (an axis of
  length L keeps at least one cell: at most (L − 1)/2 are cut from each end).
- Momenta: q = Σ_k (m_k / L_k) b_k, m_k = 0..L_k − 1, with the reciprocal vectors b_k
  (a_k·b_l = 2π δ_kl); on periodic axes these are the momenta the cluster allows, on open
  axes the same grid (a discrete Fourier transform over the cells). Custom graphs have no
  positions, hence no momenta.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

import numpy as np

from nqs_cli.systems.lattice.graph import Lattice, cell_geometry

ROUND = 1e-6  # distances closer than this are one shell
_CHUNK = 1 << 22  # displacement vectors held at once


def has_positions(lattice: Lattice) -> bool:
    return lattice.graph != "custom"


def cell_vectors(lattice: Lattice) -> tuple[np.ndarray, np.ndarray]:
    """(primitive vectors as rows (dims, dims), basis positions (n_basis, dims))."""
    return cell_geometry(lattice.graph, lattice.dims)


def site_distances(lattice: Lattice, rows: np.ndarray) -> np.ndarray:
    """(len(rows), n_sites) float64: the distance from each site in ``rows`` to every site
    (minimum image on periodic axes; graph distance, ``inf`` if unreachable, on custom graphs)."""
    rows = np.asarray(rows, np.int64)
    if not has_positions(lattice):
        return graph_distances(lattice)[rows]
    vectors, _ = cell_vectors(lattice)
    images = [np.zeros(lattice.dims)]
    periodic = [k for k, p in enumerate(lattice.periodic) if p]
    if periodic:
        shifts = np.array(list(itertools.product((-1, 0, 1), repeat=len(periodic))), np.float64)
        span = np.array([lattice.lengths[k] * vectors[k] for k in periodic])
        images = shifts @ span
    pos = lattice.positions
    d = pos[None, :, :] - pos[rows][:, None, :]  # (rows, n, dims)
    best = np.full(d.shape[:2], np.inf)
    for image in np.atleast_2d(images):
        best = np.minimum(best, np.linalg.norm(d + image, axis=-1))
    return best


def graph_distances(lattice: Lattice) -> np.ndarray:
    """(n, n) hop counts along the bonds (``inf`` between disconnected sites)."""
    n = lattice.n_sites
    neighbours = [[] for _ in range(n)]
    for i, j in lattice.edges:
        neighbours[i].append(int(j))
        neighbours[j].append(int(i))
    out = np.full((n, n), np.inf)
    for root in range(n):
        out[root, root] = 0
        queue = deque([root])
        while queue:
            i = queue.popleft()
            for j in neighbours[i]:
                if out[root, j] == np.inf:
                    out[root, j] = out[root, i] + 1
                    queue.append(j)
    return out


def bulk_sites(lattice: Lattice, edge: int) -> np.ndarray:
    """(n_sites,) bool: at least ``edge`` cells (at most (L − 1)/2) from both ends of every open axis."""
    keep = np.ones(lattice.n_sites, bool)
    if not has_positions(lattice) or edge <= 0:
        return keep
    for axis, (length, periodic) in enumerate(zip(lattice.lengths, lattice.periodic)):
        if not periodic:
            e = min(edge, (length - 1) // 2)
            c = lattice.coords[:, axis]
            keep &= (c >= e) & (c <= length - 1 - e)
    return keep


def default_edge_sites(lattice: Lattice) -> int:
    """L/4 of the longest open axis (0 when every axis is periodic, and on custom graphs)."""
    open_lengths = [n for n, p in zip(lattice.lengths, lattice.periodic) if not p]
    return max(open_lengths) // 4 if open_lengths and has_positions(lattice) else 0


def correlation_pairs(lattice: Lattice, bulk: np.ndarray, max_distance: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, d): every pair of bulk sites i ≤ j (i = j at distance 0) at distance d ≤
    ``max_distance``, sorted by distance. On a chain each pair is oriented so that j lies d
    steps from i in the positive direction (wrapping on a ring), as the string order needs."""
    sites = np.flatnonzero(bulk)
    out_i, out_j, out_d = [], [], []
    step = max(1, _CHUNK // max(lattice.n_sites * 27, 1))
    for start in range(0, len(sites), step):
        rows = sites[start : start + step]
        dist = site_distances(lattice, rows)[:, sites]
        a, b = np.nonzero((dist <= max_distance + ROUND) & (sites[None, :] >= rows[:, None]))
        out_i.append(rows[a])
        out_j.append(sites[b])
        out_d.append(np.round(dist[a, b], 6))
    i, j, d = (np.concatenate(x) if x else np.zeros(0) for x in (out_i, out_j, out_d))
    if lattice.graph == "chain" and lattice.periodic[0]:
        n = lattice.n_sites
        swap = (j - i) % n != np.round(d).astype(np.int64) % n
        i, j = np.where(swap, j, i), np.where(swap, i, j)
    order = np.lexsort((j, i, d))
    return i[order].astype(np.int32), j[order].astype(np.int32), d[order]


@dataclass(frozen=True, eq=False)
class DisplacementTable:
    """The ordered pairs of bulk sites (i in cell c with basis b, j in cell c + d with basis b′)
    grouped by (d, b, b′), for correlations by FFT: ``grid`` the cell grid of the correlation
    (L_k on a periodic axis, 2 L_k on an open one, zero-padded), ``distance`` (prod(grid), n_basis,
    n_basis) the minimum-image distance of each group (rounded to 1e-6; ``inf`` where no pair),
    ``count`` its number of ordered pairs."""

    grid: tuple[int, ...]
    distance: np.ndarray
    count: np.ndarray


def displacement_table(lattice: Lattice, bulk: np.ndarray) -> DisplacementTable:
    """The table of a lattice with positions: counts by the FFT of the bulk mask, distances from
    the displacement vectors (e·a + δ_b′ − δ_b, minimum image along periodic axes)."""
    lengths, nb = np.array(lattice.lengths), lattice.n_basis
    grid = tuple(int(n if p else 2 * n) for n, p in zip(lengths, lattice.periodic))
    mask = bulk.reshape(*lattice.lengths, nb).astype(np.float64)
    axes = tuple(range(lattice.dims))
    spectrum = np.fft.fftn(mask, s=grid, axes=axes)
    count = np.rint(np.fft.ifftn(np.conj(spectrum)[..., :, None] * spectrum[..., None, :], axes=axes).real).astype(np.int64)
    vectors, basis = cell_vectors(lattice)
    d = np.indices(grid).reshape(lattice.dims, -1).T.astype(np.float64)  # (n_d, dims)
    g = np.array(grid, np.float64)
    d = np.where(d >= g / 2, d - g, d)  # wrap: periodic (−L/2, L/2], open (−L, L)
    images = [np.zeros(lattice.dims)]
    periodic = [k for k, p in enumerate(lattice.periodic) if p]
    if periodic:
        shifts = np.array(list(itertools.product((-1, 0, 1), repeat=len(periodic))), np.float64)
        images = shifts @ np.array([lengths[k] * vectors[k] for k in periodic])
    offset = basis[None, :, :] - basis[:, None, :]  # (nb, nb, dims): δ_b′ − δ_b
    base = (d @ vectors)[:, None, None, :] + offset[None]
    distance = np.min([np.linalg.norm(base + image, axis=-1) for image in np.atleast_2d(images)], axis=0)
    count = count.reshape(-1, nb, nb)
    distance = np.where(count > 0, np.round(distance, 6), np.inf)
    return DisplacementTable(grid, distance, count)


def shell_counts(lattice: Lattice, bulk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distances, ordered pair counts) of every shell of bulk pairs (the pairs i = j at 0)."""
    if has_positions(lattice):
        table = displacement_table(lattice, bulk)
        keep = np.isfinite(table.distance)
        distances, inverse = np.unique(table.distance[keep], return_inverse=True)
        return distances, np.bincount(inverse, weights=table.count[keep]).astype(np.int64)
    _, _, d = correlation_pairs(lattice, bulk, np.inf)
    d = d[np.isfinite(d)]
    distances, counts = np.unique(d, return_counts=True)
    return distances, np.where(distances > 0, 2 * counts, counts)


def default_max_distance(lattice: Lattice, bulk: np.ndarray) -> int:
    """The largest distance, rounded up, among the shells that hold at least half as many pairs
    as there are bulk sites (no bin of a single pair on open lattices; L/2 on a ring)."""
    distances, counts = shell_counts(lattice, bulk)
    full = distances[counts >= max(1, int(bulk.sum()))]  # ordered pairs: N_b/2 unordered ones
    return int(np.ceil(full.max() - ROUND)) if len(full) else 0


def reciprocal_vectors(lattice: Lattice) -> np.ndarray:
    """(dims, dims) rows b_k with a_k·b_l = 2π δ_kl."""
    vectors, _ = cell_vectors(lattice)
    return 2 * np.pi * np.linalg.inv(vectors).T


def momentum_grid(lattice: Lattice) -> np.ndarray:
    """(n_q, dims) int: m_k = 0..L_k − 1, row-major like the cells."""
    return np.indices(lattice.lengths).reshape(lattice.dims, -1).T


def momenta(lattice: Lattice) -> np.ndarray:
    """(n_q, dims) wave vectors q = Σ_k (m_k / L_k) b_k (row-major in m, like the cells)."""
    return (momentum_grid(lattice) / np.asarray(lattice.lengths, np.float64)) @ reciprocal_vectors(lattice)


def basis_phases(lattice: Lattice) -> np.ndarray:
    """(n_q, n_basis) complex e^{-i q·δ_b} of the basis offsets δ_b."""
    _, basis = cell_vectors(lattice)
    return np.exp(-1j * momenta(lattice) @ basis.T)


HIGH_SYMMETRY = {
    # fractional coordinates (in units of the reciprocal vectors) of the corners of the path
    "square": (("Γ", (0, 0)), ("X", (0.5, 0)), ("M", (0.5, 0.5)), ("Γ", (0, 0))),
    "hypercube3": (("Γ", (0, 0, 0)), ("X", (0.5, 0, 0)), ("M", (0.5, 0.5, 0)), ("R", (0.5, 0.5, 0.5)), ("Γ", (0, 0, 0))),
    "hexagonal": (("Γ", (0, 0)), ("M", (0.5, 0)), ("K", None), ("Γ", (0, 0))),
}


def brillouin_path(lattice: Lattice) -> dict:
    """The allowed momenta on a path through the Brillouin zone: {"index": indices into
    ``momenta``, "position": the arc length along the path, "labels": [(position, name)]}.
    Chains: 0 ≤ q ≤ π; square and cubic: Γ–X–M(–R)–Γ; triangular, honeycomb, kagome: Γ–M–K–Γ;
    other lattices: every momentum in order of |q|."""
    q = momenta(lattice)
    b = reciprocal_vectors(lattice)
    if lattice.dims == 1:
        keep = np.flatnonzero(q[:, 0] <= np.pi + ROUND)
        return {"index": keep.tolist(), "position": q[keep, 0].tolist(), "labels": [(0.0, "Γ"), (float(np.pi), "X")]}
    key = {"square": "square", "hypercube": "hypercube3" if lattice.dims == 3 else None}.get(lattice.graph, "hexagonal")
    if lattice.dims > 3 or key is None or (key == "hexagonal" and lattice.dims != 2):
        order = np.argsort(np.linalg.norm(q, axis=1), kind="stable")
        return {"index": order.tolist(), "position": np.linalg.norm(q[order], axis=1).tolist(), "labels": [(0.0, "Γ")]}
    corners = []
    for name, frac in HIGH_SYMMETRY[key]:
        if frac is None:  # K: the corner of the hexagonal zone next to M, |K| = |b| / √3
            previous = corners[-1][1]
            images = [np.asarray(f) + np.asarray(n) for f in ((1 / 3, 1 / 3), (2 / 3, 1 / 3), (1 / 3, 2 / 3))
                      for n in itertools.product((-1, 0), repeat=2)]
            corner = [f for f in images if abs(np.linalg.norm(f @ b) - np.linalg.norm(b[0]) / np.sqrt(3)) < 1e-9]
            frac = min(corner, key=lambda f: np.linalg.norm(f @ b - previous))
        corners.append((name, np.asarray(frac) @ b))
    images = (np.array(list(itertools.product((-1, 0, 1), repeat=lattice.dims))) @ b)
    index, position, labels, start = [], [], [(0.0, corners[0][0])], 0.0
    for (_, a), (name, c) in zip(corners[:-1], corners[1:]):
        seg = c - a
        length = float(np.linalg.norm(seg))
        found = {}
        for k, qk in enumerate(q):
            for image in images:
                p = qk + image - a
                t = float(p @ seg) / length**2
                if -ROUND <= t <= 1 + ROUND and np.linalg.norm(p - t * seg) < 1e-6 * max(1.0, length):
                    found.setdefault(round(t, 9), k)
        for t in sorted(found):
            if index and index[-1] == found[t] and abs(position[-1] - (start + t * length)) < ROUND:
                continue
            index.append(found[t])
            position.append(start + t * length)
        start += length
        labels.append((start, name))
    return {"index": index, "position": position, "labels": labels}
