"""Estimators of lattice observables: per-configuration values whose mean under |ψ|² is the
expectation value, and the non-linear quantities derived from those means.

Diagonal observables are functions of the configuration alone; off-diagonal ones use the
ratios ψ(x′)/ψ(x) of the connected configurations, like the local energy:
O_loc(x) = Σ_x′ ⟨x|O|x′⟩ ψ(x′)/ψ(x), so that ⟨O⟩ = Σ_x |ψ(x)|² O_loc(x) / Σ_x |ψ(x)|².

Names (``LATTICE_NAMES``; which Hilbert space each needs in ``NEEDS``; r_i the site positions,
N_b the number of bulk sites, ε_i = ±1 on the two sublattices of a bipartite lattice):
- bosons: ``density`` ⟨n_i⟩ per site; ``number_fluctuation`` ⟨n_i²⟩ − ⟨n_i⟩² per site (and,
  as the scalar, their mean over the bulk sites weighted by ⟨n_i⟩); ``density_correlation``
  ⟨n_i n_j⟩ against the distance; ``one_body_density_matrix`` ρ_ij = ⟨b†_i b_j⟩ (every pair
  of sites); ``momentum_distribution`` n(k) = (1/N_s) Σ_ij e^{ik·(r_i − r_j)} ρ_ij;
  ``condensate_fraction`` λ_max(ρ)/Σ_i ρ_ii;
- spins: ``sz_correlation`` ⟨S^z_i S^z_j⟩ and ``spin_correlation`` ⟨S_i·S_j⟩ against the
  distance; ``structure_factor`` S^zz(q) = (1/N_s) Σ_ij e^{iq·(r_i − r_j)} ⟨S^z_i S^z_j⟩ (the
  S^z part) and ``spin_structure_factor`` S(q) the same with ⟨S_i·S_j⟩;
  ``staggered_magnetization`` ⟨(m^z_s)²⟩, m^z_s = (1/N_b) Σ_{i∈bulk} ε_i S^z_i (the S^z part)
  and ``staggered_moment`` ⟨m_s·m_s⟩ = (1/N_b²) Σ_{i,j∈bulk} ε_i ε_j ⟨S_i·S_j⟩;
  ``string_order`` ⟨S^z_i exp(iπ Σ_{i<k<j} S^z_k) S^z_j⟩ against r (integer spin, chains).

Correlations against the distance average over the pairs i ≤ j of bulk sites at each distance
(geometry.correlation_pairs: minimum image on periodic axes, graph distance on custom graphs),
up to ``max_distance``; on periodic lattices every site is in the bulk. Momenta are those of
geometry.momenta.

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

from nqs_cli.systems.lattice import geometry
from nqs_cli.systems.lattice.graph import Lattice
from nqs_cli.systems.lattice.hilbert import FockSpace, SpinSpace
from nqs_cli.systems.lattice.operators import spin_matrices

FOCK_NAMES = ("density", "number_fluctuation", "density_correlation", "one_body_density_matrix", "momentum_distribution", "condensate_fraction")
SPIN_NAMES = ("sz_correlation", "spin_correlation", "structure_factor", "staggered_magnetization", "string_order",
              "spin_structure_factor", "staggered_moment")
LATTICE_NAMES = FOCK_NAMES + SPIN_NAMES
NEEDS = {**{n: "fock" for n in FOCK_NAMES}, **{n: "spin" for n in SPIN_NAMES}}
# the observables that need ψ at every hop i -> j: N_s (N_s − 1) ψ evaluations per sample
MATRIX = ("one_body_density_matrix", "momentum_distribution", "condensate_fraction", "spin_structure_factor", "staggered_moment")
# observables that evaluate ψ at connected configurations (cost: that many ψ per sample)
OFF_DIAGONAL = MATRIX + ("spin_correlation",)
# the scalar summary of each observable that has one (a column of `nqs report`)
SCALARS = ("number_fluctuation", "condensate_fraction", "staggered_magnetization", "string_order", "staggered_moment")
# the correlations against distance, binned from per-pair values, and their keys in ``values``
BINNED = {"density_correlation": "nn", "sz_correlation": "zz", "spin_correlation": "ss", "string_order": "string"}
MOMENTUM = ("momentum_distribution", "structure_factor", "spin_structure_factor")
STAGGERED = ("staggered_magnetization", "staggered_moment")
MAX_MATRIX_SITES = 64  # the matrix observables evaluate ψ at N_s (N_s − 1) configurations per sample


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


def undefined_reason(name: str, lattice: Lattice, space) -> str | None:
    """Why ``name`` cannot be measured on ``lattice`` with ``space`` (None: it can)."""
    kind = "fock" if isinstance(space, FockSpace) else "spin"
    if name not in NEEDS:
        return f"unknown lattice observable {name!r}; expected one of {', '.join(LATTICE_NAMES)}"
    if NEEDS[name] != kind:
        return f"{name} is an observable of a {NEEDS[name]} space, not of a {kind} space"
    if name == "string_order" and (lattice.graph != "chain" or space.local_dim % 2 == 0):
        return "string_order is defined for integer spins on a chain (the string runs along it)"
    if name in MOMENTUM and not geometry.has_positions(lattice):
        return f"{name} needs momenta, and a custom graph has no site positions"
    if name in STAGGERED and not lattice.is_bipartite:
        return f"{name} needs two sublattices, and this {lattice.graph} lattice's bonds close odd loops (it is not bipartite)"
    if name in MATRIX and lattice.n_sites > MAX_MATRIX_SITES:
        return f"{name} is measured on at most {MAX_MATRIX_SITES} sites (N_s (N_s − 1) ψ evaluations per sample); this lattice has {lattice.n_sites}"
    return None


@dataclass(frozen=True, eq=False)
class LatticeObservables:
    """The estimators of ``names`` on ``lattice`` with Hilbert space ``space``.

    ``values(log_psi, x)`` gives, for ONE configuration x (n_sites,) int, a dict of arrays whose
    means under |ψ|² are the expectations (``log_psi(x) -> scalar``, possibly complex, needed by
    the off-diagonal ones); ``derived(means)`` maps those means to the non-linear quantities.
    Correlations against distance average over the pairs of bulk sites (``edge_sites``, see
    geometry.bulk_sites) at each distance up to ``max_distance``; the scalars average over the
    bulk.
    """

    lattice: Lattice
    space: FockSpace | SpinSpace
    names: tuple[str, ...]
    max_distance: float
    edge_sites: int = 0
    rotated: np.ndarray | None = None  # (n_sites,) bool: Marshall-rotated sites, or None

    def __post_init__(self):
        for name in self.names:
            why = undefined_reason(name, self.lattice, self.space)
            if why:
                raise ValueError(why)

    # ---- geometry ---------------------------------------------------------------------

    @cached_property
    def bulk(self) -> np.ndarray:
        return geometry.bulk_sites(self.lattice, self.edge_sites)

    @cached_property
    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(i, j, d): the bulk pairs i ≤ j at distance d ≤ max_distance, by distance (the
        estimators that need each pair: the string order, ⟨S_i·S_j⟩, custom graphs)."""
        return geometry.correlation_pairs(self.lattice, self.bulk, self.max_distance)

    @cached_property
    def _table(self) -> geometry.DisplacementTable | None:
        """The displacement groups of the correlations by FFT (lattices with positions)."""
        return geometry.displacement_table(self.lattice, self.bulk) if geometry.has_positions(self.lattice) else None

    @cached_property
    def distances(self) -> np.ndarray:
        """The distances up to max_distance with at least one pair, in bin order."""
        if self._table is None:
            return np.unique(self.pairs[2])
        d = self._table.distance
        return np.unique(d[d <= self.max_distance + geometry.ROUND])

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
    def _fft_bins(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(flat indices of the displacement groups within max_distance, their bins, ordered
        pairs per bin)."""
        table = self._table
        flat = table.distance.reshape(-1)
        keep = np.flatnonzero(flat <= self.max_distance + geometry.ROUND)
        bins = np.searchsorted(self.distances, flat[keep]).astype(np.int32)
        counts = np.bincount(bins, weights=table.count.reshape(-1)[keep], minlength=len(self.distances))
        return keep, bins, counts

    def _correlation(self, m: jax.Array) -> jax.Array:
        """⟨m_i m_j⟩'s estimator against distance, (n_distances,): on lattices with positions the
        sums over each displacement group by one FFT per basis site (O(N_s log N_s), whatever the
        range), on custom graphs over the pair list."""
        if self._table is None:
            i, j, _ = (jnp.asarray(a) for a in self.pairs)
            return self._binned(m[i] * m[j])
        lat = self.lattice
        x = (m * jnp.asarray(self.bulk, m.dtype)).reshape(*lat.lengths, lat.n_basis)
        axes = tuple(range(lat.dims))
        spectrum = jnp.fft.fftn(x.astype(jnp.result_type(m.dtype, jnp.float32)), s=self._table.grid, axes=axes)
        groups = jnp.fft.ifftn(jnp.conj(spectrum)[..., :, None] * spectrum[..., None, :], axes=axes).real.reshape(-1)
        keep, bins, counts = self._fft_bins
        sums = jax.ops.segment_sum(groups[jnp.asarray(keep)], jnp.asarray(bins), num_segments=len(self.distances))
        return sums / jnp.asarray(counts, sums.dtype)

    @cached_property
    def momenta(self) -> np.ndarray:
        return geometry.momenta(self.lattice)

    @cached_property
    def _phases(self) -> tuple[np.ndarray, np.ndarray]:
        """(cos, sin) of q·r_i, (n_q, n_sites), r_i the site positions."""
        qr = self.momenta @ self.lattice.positions.T
        return np.cos(qr), np.sin(qr)

    def _structure_factor(self, m: jax.Array) -> jax.Array:
        """|Σ_i e^{iq·r_i} m_i|² / N_s at every allowed q: one FFT over the cells per basis site,
        combined with the basis phases, O(N_s log N_s) with no N_s × N_s table."""
        lat = self.lattice
        x = m.reshape(*lat.lengths, lat.n_basis).astype(jnp.result_type(m.dtype, jnp.float32))
        cells = jnp.fft.fftn(x, axes=tuple(range(lat.dims))).reshape(-1, lat.n_basis)
        amplitude = jnp.sum(cells * jnp.asarray(geometry.basis_phases(lat)), axis=1)
        return jnp.abs(amplitude) ** 2 / lat.n_sites

    def _fourier_matrix(self, c: jax.Array) -> jax.Array:
        """(1/N_s) Σ_ij e^{iq·(r_i − r_j)} c_ij of a symmetric (N_s, N_s) ``c`` at every q."""
        cos, sin = (jnp.asarray(a) for a in self._phases)
        return (jnp.einsum("qi,ij,qj->q", cos, c, cos) + jnp.einsum("qi,ij,qj->q", sin, c, sin)) / self.lattice.n_sites

    @cached_property
    def _stagger(self) -> np.ndarray:
        """(n_sites,) ±1/N_bulk on the bulk sites of the two sublattices, 0 elsewhere."""
        sign = 1.0 - 2.0 * self.lattice.sublattice.astype(np.float64)
        return np.where(self.bulk, sign, 0.0) / max(int(self.bulk.sum()), 1)

    @property
    def pair_values_per_config(self) -> int:
        """Per-pair values one configuration's estimators hold at once (the correlations against
        distance: the pair list, or the FFT's displacement groups)."""
        names = set(self.names)
        listed = names & {"spin_correlation", "string_order"} or (names & BINNED.keys() if self._table is None else set())
        grouped = self._table is not None and names & {"density_correlation", "sz_correlation"}
        return (len(self.pairs[2]) if listed else 0) + (int(np.prod(self._table.grid)) * self.lattice.n_basis ** 2 if grouped else 0)

    @property
    def n_ratios(self) -> int:
        """ψ evaluations per configuration that the off-diagonal estimators need."""
        n = self.lattice.n_sites
        count = n * (n - 1) if set(self.names) & set(MATRIX) else 0
        if "spin_correlation" in self.names:
            count += 2 * int(np.sum(self.pairs[0] != self.pairs[1]))
        return count

    # ---- per-configuration values ---------------------------------------------------

    def values(self, log_psi, x: jax.Array) -> dict[str, jax.Array]:
        """Per-configuration estimator values (the raw moments the derived quantities use)."""
        x = jnp.asarray(x, jnp.int32)
        m = jnp.asarray(self.space.local_values)[x]  # occupations n_i or projections m_i
        names, out = set(self.names), {}
        if names & {"density", "number_fluctuation"}:
            out["n"] = m
        if "number_fluctuation" in names:
            out["n2"] = m * m
        if "density_correlation" in names:
            out["nn"] = self._correlation(m)
        hops = self._all_hops(log_psi, x) if names & set(MATRIX) else None
        if names & {"one_body_density_matrix", "momentum_distribution", "condensate_fraction"}:
            out["rho"] = 0.5 * (hops + hops.T) + jnp.diag(m.astype(hops.dtype))  # ρ_ij, symmetrised (ψ real)
        if "momentum_distribution" in names:
            out["nk"] = self._fourier_matrix(out["rho"])
        if names & {"spin_structure_factor", "staggered_moment"}:
            spin = self.space.s
            ss = jnp.outer(m, m) + 0.5 * (hops + hops.T)
            ss = ss + jnp.diag(spin * (spin + 1) - m * m)  # S_i·S_i = s(s + 1)
            if "spin_structure_factor" in names:
                out["ssq"] = self._fourier_matrix(ss)
            if "staggered_moment" in names:
                stagger = jnp.asarray(self._stagger, ss.dtype)
                out["ms_ms"] = stagger @ ss @ stagger
        if "sz_correlation" in names:
            out["zz"] = self._correlation(m)
        if "spin_correlation" in names:
            i, j, _ = (jnp.asarray(a) for a in self.pairs)
            spin = self.space.s
            ss = m[i] * m[j] + 0.5 * (self._hop(log_psi, x, i, j) + self._hop(log_psi, x, j, i))
            out["ss"] = self._binned(jnp.where(i == j, spin * (spin + 1), ss))  # S_i·S_i = s(s + 1)
        if "structure_factor" in names:
            out["sq"] = self._structure_factor(m)
        if "staggered_magnetization" in names:
            out["ms2"] = jnp.dot(jnp.asarray(self._stagger, m.dtype), m) ** 2
        if "string_order" in names:
            i, j, _ = (jnp.asarray(a) for a in self.pairs)
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

    def _all_hops(self, log_psi, x) -> jax.Array:
        """(n_sites, n_sites): ⟨x|A†_i A_j|x′⟩ ψ(x′)/ψ(x) for every i ≠ j (0 on the diagonal)."""
        ns = self.lattice.n_sites
        i, j = np.nonzero(~np.eye(ns, dtype=bool))
        hop = self._hop(log_psi, x, jnp.asarray(i, jnp.int32), jnp.asarray(j, jnp.int32))
        return jnp.zeros((ns, ns), hop.dtype).at[i, j].set(hop)

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
            n = np.asarray(means["n"])
            var = np.asarray(means["n2"]) - n**2
            out["number_fluctuation_sites"] = var
            weight = np.where(self.bulk, n, 0.0)  # the bulk's sites, weighted by their particles
            out["number_fluctuation"] = float(weight @ var / weight.sum()) if weight.sum() > 0 else float(np.mean(var[self.bulk]))
        if "condensate_fraction" in self.names:
            rho = np.asarray(means["rho"])
            rho = 0.5 * (rho + rho.T)
            out["condensate_fraction"] = np.linalg.eigvalsh(rho)[-1] / np.trace(rho)
        return out

    # ---- plain data -------------------------------------------------------------------

    @cached_property
    def path(self) -> dict:
        """The momenta on a path through the Brillouin zone (geometry.brillouin_path), for plots."""
        p = geometry.brillouin_path(self.lattice)
        return {"index": p["index"], "position": [float(v) for v in p["position"]], "labels": [[float(a), b] for a, b in p["labels"]]}

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
                out[name] = {"k": self.momenta.tolist(), **pair("nk"), "path": self.path}
            elif name in ("structure_factor", "spin_structure_factor"):
                out[name] = {"q": self.momenta.tolist(), **pair("sq" if name == "structure_factor" else "ssq"), "path": self.path}
            elif name in ("condensate_fraction", "staggered_magnetization", "staggered_moment"):
                out[name] = scalar({"staggered_magnetization": "ms2", "staggered_moment": "ms_ms"}.get(name, name))
            if name in SCALARS:
                scalars[name] = {"value": out[name]["value"], "error": out[name]["error"]}
        return {**out, "scalars": scalars}
