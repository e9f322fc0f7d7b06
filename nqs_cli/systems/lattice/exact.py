"""Exact ground states of small discrete systems (Lanczos in the constrained sector)."""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from nqs_cli.systems.lattice.hilbert import MAX_STATES  # noqa: F401 (re-exported: the exact-diagonalisation limit)
from nqs_cli.systems.lattice.operators import BondHamiltonian

_DENSE_LIMIT = 400  # below this many states a dense eigensolver is faster and safer


def exact_ground_state(hamiltonian: BondHamiltonian, space, max_states: int = MAX_STATES):
    """(E0, states, psi): ground-state energy, the (n_states, n_sites) int32 sector
    basis and the normalised (n_states,) float64 ground-state vector on it."""
    n_states = space.n_states
    if n_states > max_states:
        raise ValueError(
            f"exact diagonalisation needs {n_states} states, more than max_states = {max_states}"
        )
    if hamiltonian.n_sites != space.n_sites or hamiltonian.local_dim != space.local_dim:
        raise ValueError(
            "the Hamiltonian and the Hilbert space disagree on sites or local dimension"
        )
    states = space.all_states(max_states)
    h = hamiltonian.to_sparse(states)
    diagonal = h.diagonal()
    if (h - scipy.sparse.diags(diagonal)).count_nonzero() == 0:
        # a diagonal H (no hopping, no exchange): the ground state is its lowest configuration
        # (ARPACK cannot start on a zero matrix)
        psi = np.zeros(n_states)
        psi[int(np.argmin(diagonal))] = 1.0
        return float(np.min(diagonal)), states, psi
    if n_states <= _DENSE_LIMIT:
        energies, vectors = scipy.linalg.eigh(h.toarray(), subset_by_index=(0, 0))
    else:
        v0 = np.random.default_rng(0).standard_normal(n_states)
        energies, vectors = scipy.sparse.linalg.eigsh(h, k=1, which="SA", v0=v0, tol=1e-12)
    psi = vectors[:, 0] / np.linalg.norm(vectors[:, 0])
    return float(energies[0]), states, psi


def ground_state_energy(hamiltonian: BondHamiltonian, space, max_states: int = MAX_STATES) -> float:
    """Ground-state energy of ``hamiltonian`` in the sector of ``space``."""
    return exact_ground_state(hamiltonian, space, max_states)[0]


def lookup_tables(states: np.ndarray, psi: np.ndarray, local_dim: int) -> tuple:
    """(sorted codes, log ψ in that order, code weights) of a vector ``psi`` on the sector basis
    ``states``: the arrays ``lookup`` reads (log|ψ| + iπ where ψ < 0)."""
    import jax.numpy as jnp

    weights = local_dim ** np.arange(states.shape[1] - 1, -1, -1)
    codes = states.astype(np.int64) @ weights
    order = np.argsort(codes)
    logs = (np.log(np.abs(psi) + 1e-300) + 1j * np.pi * (psi < 0))[order]
    return jnp.asarray(codes[order]), jnp.asarray(logs), jnp.asarray(weights)


def lookup(tables: tuple, x):
    """log ψ(x) from ``lookup_tables`` (a configuration outside the basis must not be asked for)."""
    import jax.numpy as jnp

    sorted_codes, logs, w = tables
    k = jnp.clip(jnp.searchsorted(sorted_codes, x.astype(jnp.int64) @ w), 0, sorted_codes.shape[0] - 1)
    return logs[k]


def lookup_log_psi(states: np.ndarray, psi: np.ndarray, local_dim: int):
    """``log_psi(x)`` of a vector ``psi`` on the sector basis ``states`` (see ``lookup``)."""
    tables = lookup_tables(states, psi, local_dim)
    return lambda x: lookup(tables, x)


def full_sum(observables, states: np.ndarray, psi: np.ndarray, chunk: int = 2048) -> dict:
    """Σ_x ψ(x)² O_loc(x) of every estimator value of ``observables`` (a LatticeObservables) and
    the derived quantities: the exact expectations in the normalised state ``psi``. The vector
    enters the compiled estimator as an argument, so one program serves every state of a sector."""
    import jax
    import jax.numpy as jnp

    keep = np.abs(psi) > 1e-12
    tables = lookup_tables(states, psi, observables.space.local_dim)
    fn = jax.jit(jax.vmap(lambda t, x: observables.values(lambda y: lookup(t, y), x), (None, 0)))
    xs, weights = states[keep], psi[keep] ** 2
    chunk = max(1, min(chunk, len(xs)))
    pad = -len(xs) % chunk  # the last chunk filled up with weight-0 copies: one compiled shape
    xs, weights = np.concatenate([xs, np.repeat(xs[:1], pad, axis=0)]), np.concatenate([weights, np.zeros(pad)])
    means: dict = {}
    for a in range(0, len(xs), chunk):
        part = fn(tables, jnp.asarray(xs[a : a + chunk]))
        for k, v in part.items():
            means[k] = means.get(k, 0.0) + np.tensordot(weights[a : a + chunk], np.asarray(v), axes=1)
    return {**means, **observables.derived(means)}
