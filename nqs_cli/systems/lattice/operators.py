"""Discrete Hamiltonians as lookup tables over two-site bonds, with padded connections.

H = sum over edges e=(i, j) of B[t_e] acting on (x_i, x_j)  +  sum over sites of h_i(x_i),

where ``B[t]`` is a (d*d, d*d) real symmetric bond matrix (bond state a = x_i * d + x_j)
and ``h`` an on-site diagonal, the same (d,) on every site or one row per site (n_sites, d). Off-diagonal bond elements are tabulated per bond
state (at most M of them), so connected configurations come from a few gathers.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp

from nqs_cli.systems.lattice.hilbert import FockSpace, SpinSpace
from nqs_cli.systems.lattice.graph import Lattice

_CHUNK = 4096  # states per batch when building sparse matrices


@dataclass(frozen=True, eq=False)
class BondHamiltonian:
    """Sum of bond operators on edges plus on-site diagonal terms (hashable by identity).

    Attributes: ``n_sites``, ``local_dim`` (d), ``edges`` (E, 2) int, ``bond_ops``
    (T, d*d, d*d) float64, ``edge_types`` (E,) int into ``bond_ops``, ``onsite`` (d,) on
    every site or (n_sites, d) per site.
    """

    n_sites: int
    local_dim: int
    edges: np.ndarray
    bond_ops: np.ndarray
    edge_types: np.ndarray
    onsite: np.ndarray
    tol: float = 1e-14

    def __post_init__(self):
        d = self.local_dim
        edges = np.asarray(self.edges, np.int64).reshape(-1, 2)
        ops = np.asarray(self.bond_ops, np.float64)
        if ops.ndim == 2:
            ops = ops[None]
        types = np.broadcast_to(np.asarray(self.edge_types, np.int64), (len(edges),)).copy()
        onsite = np.asarray(self.onsite, np.float64)
        if ops.shape[1:] != (d * d, d * d):
            raise ValueError(f"bond_ops must be (T, {d * d}, {d * d}), got {ops.shape}")
        if onsite.shape not in ((d,), (self.n_sites, d)):
            raise ValueError(f"onsite must have shape ({d},) or ({self.n_sites}, {d}), got {onsite.shape}")
        if not np.allclose(ops, np.swapaxes(ops, 1, 2), atol=1e-12):
            raise ValueError("bond operators must be real symmetric (Hermitian)")
        if np.any((edges < 0) | (edges >= self.n_sites)) or np.any(edges[:, 0] == edges[:, 1]):
            raise ValueError("edges must join two different sites in range(n_sites)")
        if len(types) and (types.min() < 0 or types.max() >= len(ops)):
            raise ValueError(f"edge_types must index the {len(ops)} bond operators")
        fields = {"edges": edges, "bond_ops": ops, "edge_types": types, "onsite": onsite}
        for name, value in fields.items():
            value.setflags(write=False)
            object.__setattr__(self, name, value)

    # ---- tables --------------------------------------------------------------------

    @cached_property
    def _np_tables(self) -> dict:
        d, ops = self.local_dim, self.bond_ops
        off = ops.copy()
        off[:, np.arange(d * d), np.arange(d * d)] = 0.0
        nonzero = np.abs(off) > self.tol
        counts = nonzero.sum(axis=2)  # (T, d*d)
        m = int(counts.max()) if counts.size else 0
        a = np.arange(d * d)
        new_i = np.broadcast_to((a // d)[None, :, None], (len(ops), d * d, m)).copy()
        new_j = np.broadcast_to((a % d)[None, :, None], (len(ops), d * d, m)).copy()
        mel = np.zeros((len(ops), d * d, m))
        for t, row in zip(*np.nonzero(counts)):
            (cols,) = np.nonzero(nonzero[t, row])
            new_i[t, row, : len(cols)] = cols // d
            new_j[t, row, : len(cols)] = cols % d
            mel[t, row, : len(cols)] = off[t, row, cols]
        sites = np.arange(self.n_sites)[None, :]
        flat = (len(ops) * d * d, m)  # per-bond tables by row = type * d*d + bond state
        per_site = {} if self.onsite.ndim == 1 else {"onsite_row": (np.arange(self.n_sites) * d).astype(np.int32)}
        return per_site | {
            "diag": np.diagonal(ops, axis1=1, axis2=2).reshape(-1),
            "new_i": new_i.reshape(flat).astype(np.int32),
            "new_j": new_j.reshape(flat).astype(np.int32),
            "mel": mel.reshape(flat),
            "count": counts.reshape(-1).astype(np.int32),
            "onsite": self.onsite.reshape(-1),  # per site: row site * d + x
            "i": self.edges[:, 0].astype(np.int32),
            "j": self.edges[:, 1].astype(np.int32),
            "row0": (self.edge_types * d * d).astype(np.int32),
            # (E*M, n_sites) bool: the site that each padded row changes
            "mask_i": np.repeat(sites == self.edges[:, :1], m, axis=0),
            "mask_j": np.repeat(sites == self.edges[:, 1:], m, axis=0),
        }

    @cached_property
    def _jnp_tables(self) -> dict:
        with jax.ensure_compile_time_eval():  # concrete constants even if first built under jit
            return {k: jnp.asarray(v) for k, v in self._np_tables.items()}

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    @property
    def max_conn_per_bond(self) -> int:
        """M: the most nonzero off-diagonal elements in one row of a bond matrix."""
        return self._np_tables["mel"].shape[1]

    @property
    def max_conn(self) -> int:
        """K = 1 + n_edges * M: connected elements per configuration, diagonal first."""
        return 1 + self.n_edges * self.max_conn_per_bond

    # ---- kernels: jnp on one configuration (jittable), numpy on batches for ED ---------

    def get_conn_padded(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Connected configurations and elements of one configuration ``x`` (n_sites,) int.

        Returns ``xp`` (K, n_sites) int32 and ``mels`` (K,) float: row 0 is x with the
        diagonal element; rows 1.. are off-diagonal; padding rows have mel 0 and xp = x.
        """
        return _conn(jnp, self._jnp_tables, jnp.asarray(x, jnp.int32), self.local_dim)

    def get_conn_changes(self, x: jax.Array):
        """The connected elements of ``x`` as site changes, for incremental model updates.

        Returns ``(sites, new, mels)``: ``sites`` (K, 2) int32 — the two sites a connection
        changes — ``new`` (K, 2) int32 — their new local indices — and ``mels`` (K,), in the
        order of :meth:`get_conn_padded`. Row 0 (the diagonal) and padding rows change
        nothing: their ``new`` equals the current values.
        """
        t, x = self._jnp_tables, jnp.asarray(x, jnp.int32)
        rows = _rows(t, x, self.local_dim)
        m = self.max_conn_per_bond
        mel = t["mel"][rows].reshape(-1)
        edge_of_row = jnp.repeat(jnp.arange(self.n_edges), m)
        i, j = t["i"][edge_of_row], t["j"][edge_of_row]
        sites = jnp.concatenate([jnp.zeros((1, 2), jnp.int32), jnp.stack([i, j], axis=1)])
        new = jnp.stack([t["new_i"][rows].reshape(-1), t["new_j"][rows].reshape(-1)], axis=1)
        new = jnp.concatenate([x[jnp.zeros((1, 2), jnp.int32)], new])
        diag = jnp.sum(t["diag"][rows]) + _onsite(jnp, t, x)
        return sites, new, jnp.concatenate([diag[None], mel])

    def random_connection_sites(self, u: jax.Array, x: jax.Array):
        """The connection of ``x`` picked by a uniform number ``u`` in [0, 1), uniformly among
        the nonzero off-diagonal ones, without building all K.

        Returns ``(x_new, n_conn_x, sites (2,))``: ``sites`` are the chosen bond's, the only
        ones that may change; ``x_new = x`` when ``x`` has no connection.
        """
        t, xi = self._jnp_tables, jnp.asarray(x, jnp.int32)
        rows = _rows(t, xi, self.local_dim)
        counts = t["count"][rows]
        cumulative = jnp.cumsum(counts)
        total = cumulative[-1]
        r = jnp.minimum(jnp.floor(u * total).astype(jnp.int32), jnp.maximum(total - 1, 0))
        e = jnp.sum(cumulative <= r, dtype=jnp.int32)
        m = r - (cumulative[e] - counts[e])
        row = rows[e]
        sites = jnp.stack([t["i"][e], t["j"][e]])
        at = jnp.arange(xi.shape[-1])  # selects against the site index rather than two scatters
        x_new = jnp.where(at == sites[0], t["new_i"][row, m], jnp.where(at == sites[1], t["new_j"][row, m], xi))
        return jnp.where(total > 0, x_new, xi), total, sites

    def n_conn(self, x: jax.Array) -> jax.Array:
        """Number of nonzero off-diagonal connected elements of ``x``; int32 scalar."""
        t = self._jnp_tables
        rows = _rows(t, jnp.asarray(x, jnp.int32), self.local_dim)
        return jnp.sum(t["count"][rows], dtype=jnp.int32)

    def diagonal(self, x: jax.Array) -> jax.Array:
        """<x|H|x> for one configuration; float scalar."""
        t, x = self._jnp_tables, jnp.asarray(x, jnp.int32)
        return jnp.sum(t["diag"][_rows(t, x, self.local_dim)]) + _onsite(jnp, t, x)

    # ---- exact diagonalisation helpers -----------------------------------------------

    def infinite_temperature_energy(self, space) -> float:
        """E∞ = Tr H / dim over the sector of ``space``: the mean diagonal element under the
        uniform distribution of the sector's configurations (exact, from its marginals)."""
        d = self.local_dim
        one, two = space.marginals()
        bond_diag = np.diagonal(self.bond_ops, axis1=1, axis2=2).reshape(-1, d, d)  # (T, x_i, x_j)
        per_type = np.einsum("tab,ab->t", bond_diag, two)
        onsite = self.n_sites * np.dot(self.onsite, one) if self.onsite.ndim == 1 else np.sum(self.onsite @ one)
        return float(np.sum(per_type[self.edge_types]) + onsite)

    def to_sparse(self, states: np.ndarray) -> sp.csr_matrix:
        """H restricted to ``states`` (n_states, n_sites), as a scipy csr matrix.

        Raises ValueError if H connects a state to one outside ``states``.
        """
        states = np.asarray(states, np.int32)
        index = _StateIndex(states, self.local_dim)
        rows, cols, vals = [], [], []
        for start in range(0, len(states), _CHUNK):
            batch = states[start : start + _CHUNK]
            xp, mels = _conn(np, self._np_tables, batch, self.local_dim)
            keep = mels != 0
            keep[:, 0] = True
            src = np.broadcast_to(np.arange(start, start + len(batch))[:, None], keep.shape)[keep]
            dst = index(xp[keep])
            if np.any(dst < 0):
                raise ValueError("the Hamiltonian connects the given states to states outside them")
            rows.append(src)
            cols.append(dst)
            vals.append(mels[keep])
        n = len(states)
        if not rows:
            return sp.csr_matrix((n, n))
        data = (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols)))
        return sp.coo_matrix(data, shape=(n, n)).tocsr()  # duplicates are summed

    def to_dense(self, states: np.ndarray) -> np.ndarray:
        """H restricted to ``states`` as a dense (n_states, n_states) float64 array."""
        return self.to_sparse(states).toarray()


def _rows(t: dict, x, d: int):
    """Table row of every edge, (..., E), for configurations ``x`` (..., n_sites)."""
    return t["row0"] + x[..., t["i"]] * d + x[..., t["j"]]


def _onsite(xnp, t: dict, x):
    """Sum of the on-site diagonal over the sites of ``x`` (..., n_sites)."""
    if "onsite_row" in t:
        return xnp.sum(t["onsite"][t["onsite_row"] + x], axis=-1)
    return xnp.sum(t["onsite"][x], axis=-1)


def _conn(xnp, t: dict, x, d: int):
    """Padded connections for ``x`` (..., n_sites) with array module ``xnp`` (np or jnp).

    Called with jnp on one configuration only (the caller vmaps), so no rank promotion.
    """
    rows = _rows(t, x, d)
    diag = xnp.sum(t["diag"][rows], axis=-1) + _onsite(xnp, t, x)
    batch, k_off = x.shape[:-1], t["mask_i"].shape[0]
    mel = t["mel"][rows].reshape(*batch, k_off)
    new_i = t["new_i"][rows].reshape(*batch, k_off, 1)
    new_j = t["new_j"][rows].reshape(*batch, k_off, 1)
    # a select against static site masks is ~2x faster than a scatter under vmap
    xp = xnp.where(t["mask_i"], new_i, xnp.where(t["mask_j"], new_j, x[..., None, :]))
    xp = xnp.concatenate([x[..., None, :], xp], axis=-2)
    return xp, xnp.concatenate([diag[..., None], mel], axis=-1)


class _StateIndex:
    """Maps configurations to their row in ``states`` (-1 when absent)."""

    def __init__(self, states: np.ndarray, local_dim: int):
        n_sites = states.shape[1]
        self._use_codes = n_sites * np.log2(local_dim) < 62
        if self._use_codes:
            self._weights = local_dim ** np.arange(n_sites - 1, -1, -1, dtype=np.int64)
            codes = states.astype(np.int64) @ self._weights
            self._order = np.argsort(codes, kind="stable")
            self._sorted = codes[self._order]
        else:
            rows = np.ascontiguousarray(states, np.int32)
            self._dict = {row.tobytes(): k for k, row in enumerate(rows)}

    def __call__(self, configs: np.ndarray) -> np.ndarray:
        configs = np.ascontiguousarray(configs, np.int32)
        if not self._use_codes:
            return np.array([self._dict.get(row.tobytes(), -1) for row in configs], np.int64)
        codes = configs.astype(np.int64) @ self._weights
        if len(self._sorted) == 0:
            return np.full(len(codes), -1, np.int64)
        pos = np.minimum(np.searchsorted(self._sorted, codes), len(self._sorted) - 1)
        return np.where(self._sorted[pos] == codes, self._order[pos], -1)


# ---- builders ------------------------------------------------------------------------


def _per_colour(J, lattice: Lattice) -> tuple[np.ndarray, np.ndarray]:
    """(couplings per bond type, edge types): one type when ``J`` is a number, else one per
    bond colour (``J[c]`` on the edges of colour c)."""
    if np.ndim(J) == 0:
        return np.array([float(J)]), np.zeros(lattice.n_edges, np.int64)
    J = np.asarray(J, np.float64)
    if lattice.n_edges and lattice.edge_colors.max() >= len(J):
        raise ValueError(f"{len(J)} couplings for bond colours up to {lattice.edge_colors.max()}")
    return J, lattice.edge_colors


def bose_hubbard(
    lattice: Lattice, space: FockSpace, J=1.0, U: float = 4.0, V: float = 0.0, mu: float = 0.0, potential=None
) -> BondHamiltonian:
    """H = -J sum_<ij> (b+_i b_j + h.c.) + U/2 sum n_i(n_i-1) + V sum_<ij> n_i n_j - mu sum n_i
    + sum_i potential_i n_i.

    ``J`` is one hopping or one per bond colour of the lattice; ``potential`` (n_sites,) a
    site-dependent energy per boson (a trap, disorder), or None. Truncated at n_max: b+
    annihilates |n_max>.
    """
    _check_sizes(lattice, space)
    n = np.arange(space.local_dim, dtype=np.float64)
    b_dag = np.diag(np.sqrt(n[1:]), k=-1)  # <n+1| b+ |n> = sqrt(n+1)
    num = np.diag(n)
    hop = np.kron(b_dag, b_dag.T) + np.kron(b_dag.T, b_dag)
    Js, types = _per_colour(J, lattice)
    bonds = np.stack([-Jc * hop + V * np.kron(num, num) for Jc in Js])
    onsite = 0.5 * U * n * (n - 1) - mu * n
    if potential is not None:
        potential = np.asarray(potential, np.float64)
        if potential.shape != (space.n_sites,):
            raise ValueError(f"potential must have one value per site ({space.n_sites}), got shape {potential.shape}")
        onsite = onsite[None, :] + potential[:, None] * n[None, :]
    return BondHamiltonian(space.n_sites, space.local_dim, lattice.edges, bonds, types, onsite)


def spin_matrices(s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(S^z, S^+, S^-) for spin s in the basis m = -s, ..., s (index k <-> m = -s + k)."""
    d = int(round(2 * s)) + 1
    m = np.arange(d) - (d - 1) / 2
    s = (d - 1) / 2
    s_plus = np.diag(np.sqrt(s * (s + 1) - m[:-1] * (m[:-1] + 1)), k=-1)  # <m+1| S+ |m>
    return np.diag(m), s_plus, s_plus.T


def marshall_applies(lattice: Lattice, J=1.0, J2: float = 0.0) -> bool:
    """Marshall's rule makes the exchange sign-free: a bipartite lattice, every J > 0, J2 = 0."""
    return lattice.is_bipartite and float(np.min(J)) > 0 and J2 == 0


def heisenberg(
    lattice: Lattice,
    space: SpinSpace,
    J=1.0,
    beta: float = 0.0,
    sign_rule: bool | None = None,
    delta: float = 1.0,
    J2: float = 0.0,
    D: float = 0.0,
    h: float = 0.0,
    rotated: np.ndarray | None = None,
) -> BondHamiltonian:
    """H = sum_<ij> J [XXZ_ij + beta (S_i.S_j)^2] + J2 sum_<<ij>> XXZ_ij + D sum (S^z_i)^2
    - h sum S^z_i, with XXZ_ij = S^x_i S^x_j + S^y_i S^y_j + delta S^z_i S^z_j; optionally
    Marshall-rotated.

    ``J`` is one exchange or one per bond colour of the lattice; the J2 bonds are the lattice's
    next-nearest pairs, after the nearest ones. ``sign_rule`` (default: ``marshall_applies``)
    rotates sublattice 1 by pi about z, multiplying each off-diagonal bond element by
    (-1)^(Delta m on the sublattice-1 site); the spectrum is unchanged. With J2 != 0 another
    pattern of rotated sites may be given (``rotated``: 0/1 per site, e.g. stripes).
    """
    _check_sizes(lattice, space)
    if sign_rule is None:
        sign_rule = marshall_applies(lattice, J, J2)
    if sign_rule and not lattice.is_bipartite:
        raise ValueError("sign_rule = true needs a bipartite lattice (periodic chains need an even length)")
    sz, sp_, sm = spin_matrices(space.s)
    flip = 0.5 * (np.kron(sp_, sm) + np.kron(sm, sp_))
    ss = np.kron(sz, sz) + flip
    xxz = ss if delta == 1.0 else delta * np.kron(sz, sz) + flip
    Js, types = _per_colour(J, lattice)
    bonds = [Jc * (xxz + beta * ss @ ss) for Jc in Js]
    edges = lattice.edges
    if J2 != 0:
        bonds.append(J2 * xxz)
        edges = np.concatenate([edges, lattice.next_nearest_edges])
        types = np.concatenate([types, np.full(len(lattice.next_nearest_edges), len(Js), np.int64)])
    d = space.local_dim
    m = np.diag(sz)
    onsite = np.zeros(d) if D == 0 and h == 0 else D * m**2 - h * m
    if not sign_rule:
        return BondHamiltonian(space.n_sites, d, edges, np.stack(bonds), types, onsite)
    a = np.arange(d * d)
    delta_i = (a // d)[None, :] - (a // d)[:, None]  # Delta m on the first site, (a -> b)
    delta_j = (a % d)[None, :] - (a % d)[:, None]
    sub = lattice.sublattice if rotated is None else np.asarray(rotated, np.int64)
    if J2 == 0 and rotated is None:
        # type 2t: the second site of the edge is on sublattice 1; type 2t + 1: the first one is
        ops = np.stack([op for bond in bonds for op in (bond * (-1.0) ** delta_j, bond * (-1.0) ** delta_i)])
        types = 2 * types + sub[edges[:, 0]]
        return BondHamiltonian(space.n_sites, d, edges, ops, types, onsite)
    # J2 bonds join sites of either sublattice: type 4t + 2s_i + s_j carries (-1)^(s_i Δm_i + s_j Δm_j)
    ops = np.stack([bond * (-1.0) ** (si * delta_i + sj * delta_j) for bond in bonds for si in (0, 1) for sj in (0, 1)])
    types = 4 * types + 2 * sub[edges[:, 0]] + sub[edges[:, 1]]
    return BondHamiltonian(space.n_sites, d, edges, ops, types, onsite)


def _check_sizes(lattice: Lattice, space) -> None:
    if lattice.n_sites != space.n_sites:
        raise ValueError(
            f"the lattice has {lattice.n_sites} sites but the Hilbert space {space.n_sites}"
        )
