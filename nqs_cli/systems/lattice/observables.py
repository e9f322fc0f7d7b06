"""Estimators of lattice observables: per-configuration values whose mean under |ψ|² is the
expectation value, and the non-linear quantities derived from those means.

Diagonal observables are functions of the configuration alone; off-diagonal ones use the
ratios ψ(x′)/ψ(x) of the connected configurations, like the local energy:
O_loc(x) = Σ_x′ ⟨x|O|x′⟩ ψ(x′)/ψ(x), so that ⟨O⟩ = Σ_x |ψ(x)|² O_loc(x) / Σ_x |ψ(x)|².

Names (``LATTICE_NAMES``; which Hilbert space each needs in ``NEEDS``):
- bosons: ``density`` ⟨n_i⟩ per site; ``number_fluctuation`` ⟨n_i²⟩ − ⟨n_i⟩² per site (and
  their site mean); ``density_correlation`` ⟨n_i n_j⟩ against the distance r = |i − j|;
  ``one_body_density_matrix`` ρ_ij = ⟨b†_i b_j⟩ (every pair of sites); ``momentum_distribution``
  n(k) = (1/N_s) Σ_ij e^{ik·(r_i − r_j)} ρ_ij; ``condensate_fraction`` λ_max(ρ)/Σ_i ρ_ii;
- spins: ``sz_correlation`` ⟨S^z_i S^z_j⟩ and ``spin_correlation`` ⟨S_i·S_j⟩ against r;
  ``structure_factor`` S(q) = (1/N_s) Σ_ij e^{iq·(r_i − r_j)} ⟨S^z_i S^z_j⟩;
  ``staggered_magnetization`` ⟨m_s²⟩, m_s = (1/N_s) Σ_i (−1)^{sublattice(i)} S^z_i;
  ``string_order`` ⟨S^z_i exp(iπ Σ_{i<k<j} S^z_k) S^z_j⟩ against r (integer spin, chains).

Correlations against the distance average over the pairs (i, j) whose sites differ by r
along one lattice axis (every axis, every such pair): on periodic lattices over all sites,
on open ones over the pairs with both sites at least ``edge_sites`` from either end of the
axis (the bulk).

Marshall's sign rule (``rotated``: the sites of the rotated sublattice) multiplies each
off-diagonal element ⟨x|O|x′⟩ by (−1)^{Σ_{k rotated} (m′_k − m_k)}, the rotation the
Hamiltonian uses, so the estimates are those of the unrotated spins.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np

from nqs_cli.systems.lattice.graph import Lattice
from nqs_cli.systems.lattice.hilbert import FockSpace, SpinSpace
from nqs_cli.systems.lattice.operators import spin_matrices

FOCK_NAMES = ("density", "number_fluctuation", "density_correlation", "one_body_density_matrix", "momentum_distribution", "condensate_fraction")
SPIN_NAMES = ("sz_correlation", "spin_correlation", "structure_factor", "staggered_magnetization", "string_order")
LATTICE_NAMES = FOCK_NAMES + SPIN_NAMES
NEEDS = {**{n: "fock" for n in FOCK_NAMES}, **{n: "spin" for n in SPIN_NAMES}}
# observables that evaluate ψ at connected configurations (cost: that many ψ per sample)
OFF_DIAGONAL = ("one_body_density_matrix", "momentum_distribution", "condensate_fraction", "spin_correlation")
# the scalar summary of each observable that has one (a column of `nqs report`)
SCALARS = ("number_fluctuation", "condensate_fraction", "staggered_magnetization", "string_order")
# the correlations against distance, binned from per-pair values, and their keys in ``values``
BINNED = {"density_correlation": "nn", "sz_correlation": "zz", "spin_correlation": "ss", "string_order": "string"}
MAX_MATRIX_SITES = 64  # the one-body density matrix evaluates ψ at N_s (N_s − 1) configurations per sample


def correlation_pairs(lattice: Lattice, max_distance: int, edge_sites: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, r) int arrays: the site pairs at separation r = 0..max_distance along each axis
    (periodic: all sites; open: both sites at least ``edge_sites`` from the ends), r being the
    bin. ``j`` is the site reached from ``i`` by r steps in the positive direction."""
    L, n = lattice.length, lattice.n_sites
    strides = L ** np.arange(lattice.dims - 1, -1, -1)
    out = ([], [], [])
    for r in range(max_distance + 1):
        for axis in range(lattice.dims):
            c = lattice.coords[:, axis]
            if lattice.pbc:
                keep, cj = np.ones(n, bool), (c + r) % L
            else:
                cj = c + r
                keep = (c >= edge_sites) & (cj <= L - 1 - edge_sites)
            i = np.arange(n)[keep]
            out[0].append(i)
            out[1].append(i + ((cj - c) * strides[axis])[keep])
            out[2].append(np.full(len(i), r))
    return tuple(np.concatenate(a).astype(np.int32) for a in out)


def momenta(lattice: Lattice) -> np.ndarray:
    """(L^D, D) wave vectors q = 2π m / L, m = 0..L−1 per axis (row-major like the sites)."""
    return 2 * np.pi * lattice.coords.astype(np.float64) / lattice.length


def hop_tables(space) -> tuple[np.ndarray, np.ndarray]:
    """(raise (d,), lower (d,)): ⟨k|A†|k−1⟩ and ⟨k|A|k+1⟩ of the site operator A that lowers the
    local index by one (b for bosons, S^- for spins); 0 where the move leaves the site."""
    d = space.local_dim
    if isinstance(space, FockSpace):
        n = np.arange(d, dtype=np.float64)
        return np.sqrt(n), np.where(n < d - 1, np.sqrt(n + 1), 0.0)
    _, s_plus, _ = spin_matrices(space.s)
    up = np.concatenate([[0.0], np.diagonal(s_plus, offset=-1)])  # <k|S+|k-1>
    down = np.concatenate([np.diagonal(s_plus, offset=-1), [0.0]])  # <k|S-|k+1> = <k+1|S+|k>
    return up, down


@dataclass(frozen=True, eq=False)
class LatticeObservables:
    """The estimators of ``names`` on ``lattice`` with Hilbert space ``space``.

    ``values(log_psi, x)`` gives, for ONE configuration x (n_sites,) int, a dict of arrays whose
    means under |ψ|² are the expectations (``log_psi(x) -> scalar``, possibly complex, needed by
    the off-diagonal ones); ``derived(means)`` maps those means to the non-linear quantities.
    """

    lattice: Lattice
    space: FockSpace | SpinSpace
    names: tuple[str, ...]
    max_distance: int
    edge_sites: int = 0
    rotated: np.ndarray | None = None  # (n_sites,) bool: Marshall-rotated sites, or None

    def __post_init__(self):
        kind = "fock" if isinstance(self.space, FockSpace) else "spin"
        for name in self.names:
            if name not in NEEDS:
                raise ValueError(f"unknown lattice observable {name!r}; expected one of {', '.join(LATTICE_NAMES)}")
            if NEEDS[name] != kind:
                raise ValueError(f"{name} is an observable of a {NEEDS[name]} space, not of a {kind} space")
        if "string_order" in self.names and (self.lattice.dims != 1 or self.space.local_dim % 2 == 0):
            raise ValueError("string_order needs a chain of integer spins")
        if any(n in self.names for n in ("one_body_density_matrix", "momentum_distribution", "condensate_fraction")) \
                and self.lattice.n_sites > MAX_MATRIX_SITES:
            raise ValueError(f"the one-body density matrix is measured on at most {MAX_MATRIX_SITES} sites")

    # ---- geometry ---------------------------------------------------------------------

    @cached_property
    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return correlation_pairs(self.lattice, self.max_distance, self.edge_sites)

    @cached_property
    def distances(self) -> np.ndarray:
        """The distances r with at least one pair, in bin order."""
        return np.unique(self.pairs[2])

    @cached_property
    def _bins(self) -> np.ndarray:
        """(n_pairs,) int32: each pair's distance bin (ascending, as the pairs are)."""
        return np.searchsorted(self.distances, self.pairs[2]).astype(np.int32)

    def _binned(self, pair_values: jax.Array) -> jax.Array:
        """Mean of per-pair values within each distance bin, (n_distances,): a segment sum, so
        memory grows with the pairs, not with pairs × distances."""
        n_bins = len(self.distances)
        sums = jax.ops.segment_sum(pair_values, jnp.asarray(self._bins), num_segments=n_bins, indices_are_sorted=True)
        return sums / jnp.asarray(np.bincount(self._bins, minlength=n_bins), sums.dtype)

    @cached_property
    def _phases(self) -> tuple[np.ndarray, np.ndarray]:
        """(cos, sin) of q·r_i, (n_q, n_sites)."""
        qr = momenta(self.lattice) @ self.lattice.coords.T.astype(np.float64)
        return np.cos(qr), np.sin(qr)

    def _structure_factor(self, m: jax.Array) -> jax.Array:
        """S(q) = |Σ_i e^{iq·r_i} m_i|² / N_s at q = 2π k / L (row-major like the sites): one
        D-dimensional FFT of the lattice's values, O(N_s log N_s) with no N_s × N_s table."""
        shape = (self.lattice.length,) * self.lattice.dims
        amplitude = jnp.fft.fftn(m.reshape(shape).astype(jnp.result_type(m.dtype, jnp.float32)))
        return (jnp.abs(amplitude) ** 2).reshape(-1) / self.lattice.n_sites

    @property
    def pair_values_per_config(self) -> int:
        """Per-pair values one configuration's estimators hold at once (the correlations against r)."""
        return len(self.pairs[2]) if set(self.names) & BINNED.keys() else 0

    @property
    def n_ratios(self) -> int:
        """ψ evaluations per configuration that the off-diagonal estimators need."""
        n = self.lattice.n_sites
        count = n * (n - 1) if any(k in self.names for k in ("one_body_density_matrix", "momentum_distribution", "condensate_fraction")) else 0
        if "spin_correlation" in self.names:
            count += 2 * int(np.sum(self.pairs[2] > 0))
        return count

    # ---- per-configuration values ---------------------------------------------------

    def values(self, log_psi, x: jax.Array) -> dict[str, jax.Array]:
        """Per-configuration estimator values (the raw moments the derived quantities use)."""
        x = jnp.asarray(x, jnp.int32)
        m = jnp.asarray(self.space.local_values)[x]  # occupations n_i or projections m_i
        names, out = set(self.names), {}
        i, j, _ = (jnp.asarray(a) for a in self.pairs)
        if names & {"density", "number_fluctuation"}:
            out["n"] = m
        if "number_fluctuation" in names:
            out["n2"] = m * m
        if "density_correlation" in names:
            out["nn"] = self._binned(m[i] * m[j])
        if names & {"one_body_density_matrix", "momentum_distribution", "condensate_fraction"}:
            out["rho"] = self._density_matrix(log_psi, x, m)
        if "momentum_distribution" in names:
            cos, sin = (jnp.asarray(a) for a in self._phases)
            rho = out["rho"]
            out["nk"] = (jnp.einsum("qi,ij,qj->q", cos, rho, cos) + jnp.einsum("qi,ij,qj->q", sin, rho, sin)) / self.lattice.n_sites
        if "sz_correlation" in names:
            out["zz"] = self._binned(m[i] * m[j])
        if "spin_correlation" in names:
            spin = self.space.s
            ss = m[i] * m[j] + 0.5 * (self._hop(log_psi, x, i, j) + self._hop(log_psi, x, j, i))
            out["ss"] = self._binned(jnp.where(i == j, spin * (spin + 1), ss))  # S_i·S_i = s(s + 1)
        if "structure_factor" in names:
            out["sq"] = self._structure_factor(m)
        if "staggered_magnetization" in names:
            sign = 1.0 - 2.0 * jnp.asarray(self.lattice.sublattice, m.dtype)
            out["ms2"] = (jnp.dot(sign, m) / self.lattice.n_sites) ** 2
        if "string_order" in names:
            out["string"] = self._binned(self._string(m, i, j))
        return out

    def _hop(self, log_psi, x, i, j) -> jax.Array:
        """⟨x|A†_i A_j|x′⟩ ψ(x′)/ψ(x), x′ = x − e_i + e_j, for each pair (i, j) (i ≠ j; 0 when
        i = j or x′ leaves the space), with the Marshall sign of the rotated sites."""
        up, down = (jnp.asarray(a) for a in hop_tables(self.space))
        amp = up[x[i]] * down[x[j]] * (i != j)
        valid = amp != 0
        rows = jnp.arange(i.shape[0])
        xp = jnp.broadcast_to(x, (i.shape[0], x.shape[0]))
        xp = xp.at[rows, i].add(-1).at[rows, j].add(1)
        xp = jnp.where(valid[:, None], xp, x[None, :])
        ratio = jnp.exp(jax.vmap(log_psi)(xp) - log_psi(x))
        if self.rotated is not None:
            rot = jnp.asarray(self.rotated, jnp.int32)
            amp = amp * (1 - 2 * ((rot[i] + rot[j]) % 2))
        return jnp.where(valid, amp * ratio, 0.0).real

    def _density_matrix(self, log_psi, x, n) -> jax.Array:
        """ρ_ij(x) (n_sites, n_sites): ⟨b†_i b_j⟩'s estimator, symmetrised (ψ real)."""
        ns = self.lattice.n_sites
        i, j = np.nonzero(~np.eye(ns, dtype=bool))
        hop = self._hop(log_psi, x, jnp.asarray(i, jnp.int32), jnp.asarray(j, jnp.int32))
        rho = jnp.zeros((ns, ns), hop.dtype).at[i, j].set(hop) + jnp.diag(n.astype(hop.dtype))
        return 0.5 * (rho + rho.T)

    def _string(self, m, i, j) -> jax.Array:
        """m_i m_j (−1)^{Σ_{k strictly between} m_k} along the chain (wrapping when periodic)."""
        n = self.lattice.n_sites
        c = jnp.cumsum(jnp.concatenate([m, m]))
        r = (j - i) % n
        between = jnp.where(r > 1, c[jnp.maximum(i + r - 1, 0)] - c[i], 0.0)
        parity = jnp.round(between).astype(jnp.int32) % 2
        return m[i] * m[j] * (1 - 2 * parity)

    # ---- derived quantities -----------------------------------------------------------

    def derived(self, means: dict) -> dict[str, np.ndarray]:
        """Non-linear functions of the means of ``values`` (numpy in, numpy out)."""
        out = {}
        if "number_fluctuation" in self.names:
            var = np.asarray(means["n2"]) - np.asarray(means["n"]) ** 2
            out["number_fluctuation_sites"] = var
            out["number_fluctuation"] = np.mean(var)
        if "condensate_fraction" in self.names:
            rho = np.asarray(means["rho"])
            rho = 0.5 * (rho + rho.T)
            out["condensate_fraction"] = np.linalg.eigvalsh(rho)[-1] / np.trace(rho)
        return out

    # ---- plain data -------------------------------------------------------------------

    def to_json(self, means: dict, errors: dict) -> dict:
        """observables.json's entries from the means and errors of ``values`` and ``derived``
        (keyed alike); scalars also under ``scalars``: {name: {value, error}}."""
        def pair(key):
            return {"values": np.asarray(means[key]).tolist(), "errors": np.asarray(errors[key]).tolist()}

        def scalar(key):
            return {"value": float(means[key]), "error": float(errors[key])}

        sites = list(range(self.lattice.n_sites))
        distance = self.distances.tolist()
        out, scalars = {}, {}
        for name in self.names:
            if name == "density":
                out[name] = {"site": sites, **pair("n"), "mean": float(np.mean(means["n"]))}
            elif name == "number_fluctuation":
                out[name] = {"site": sites, **pair("number_fluctuation_sites"), **scalar("number_fluctuation")}
            elif name in BINNED:
                key = BINNED[name]
                out[name] = {"distance": distance, **pair(key)}
                if name == "string_order":  # the scalar: the value at the largest distance
                    out[name].update(value=float(means[key][-1]), error=float(errors[key][-1]), at_distance=distance[-1])
            elif name == "one_body_density_matrix":
                out[name] = pair("rho")
            elif name == "momentum_distribution":
                out[name] = {"k": momenta(self.lattice).tolist(), **pair("nk")}
            elif name == "structure_factor":
                out[name] = {"q": momenta(self.lattice).tolist(), **pair("sq")}
            elif name in ("condensate_fraction", "staggered_magnetization"):
                out[name] = scalar("ms2" if name == "staggered_magnetization" else name)
            if name in SCALARS:
                scalars[name] = {"value": out[name]["value"], "error": out[name]["error"]}
        return {**out, "scalars": scalars}
