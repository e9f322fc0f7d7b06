"""Energy gradient estimator and stochastic reconfiguration (S-matrix and minSR forms).

Notation (real parameters, real log ψ): O_ik = ∂ log ψ(x_i)/∂θ_k for N samples and P
parameters; Ō = (O − ⟨O⟩)/√N, ε = (E_loc − ⟨E_loc⟩)/√N. The energy gradient is
g = 2 Ōᵀε, the quantum geometric tensor S = ŌᵀŌ, and SR solves (S + λ·1) δ = g. When N < P
the same δ comes from the sample-space (minSR / kernel) form δ = 2 Ōᵀ (ŌŌᵀ + λ·1)⁻¹ ε
(push-through identity), which costs O(N²P) instead of O(P²N + P³).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

CHOLESKY_MAX_DIM = 12_000


def jacobian(log_psi, params, samples: jax.Array) -> jax.Array:
    """O: (N, P) real matrix of per-sample log-derivatives, parameters flattened by ravel_pytree."""

    def row(x):
        return ravel_pytree(jax.grad(log_psi)(params, x))[0]

    return jax.vmap(row)(samples)


def centered(jac: jax.Array, e_loc: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(Ō, ε): centred and scaled by 1/√N, as in the module docstring."""
    n = e_loc.shape[0]
    scale = 1.0 / jnp.sqrt(jnp.asarray(n, jac.dtype))
    o_bar = (jac - jnp.mean(jac, axis=0, keepdims=True)) * scale
    eps = (e_loc - jnp.mean(e_loc)).real.astype(jac.dtype) * scale
    return o_bar, eps


def energy_gradient(o_bar: jax.Array, eps: jax.Array) -> jax.Array:
    """g = 2 Ōᵀε = ∂⟨E⟩/∂θ for real parameters."""
    return 2.0 * o_bar.T @ eps


def resolve_mode(mode: str, n_samples: int, n_params: int) -> str:
    if mode == "auto":
        return "minsr" if n_samples < n_params else "S"
    return mode


def sr_direction(o_bar: jax.Array, eps: jax.Array, diag_shift, mode: str = "auto", solver: str = "cholesky") -> jax.Array:
    """δ = (ŌᵀŌ + λ)⁻¹ 2Ōᵀε, computed in parameter space ("S") or sample space ("minsr")."""
    n, p = o_bar.shape
    mode = resolve_mode(mode, n, p)
    dim = n if mode == "minsr" else p
    if solver == "auto":
        solver = "cholesky" if dim <= CHOLESKY_MAX_DIM else "cg"
    if mode == "minsr":
        if solver == "cg":
            x = _cg(lambda v: o_bar @ (o_bar.T @ v) + diag_shift * v, eps)
        else:
            x = _cholesky(o_bar @ o_bar.T, eps, diag_shift)
        return 2.0 * o_bar.T @ x
    g = energy_gradient(o_bar, eps)
    if solver == "cg":
        return _cg(lambda v: o_bar.T @ (o_bar @ v) + diag_shift * v, g)
    return _cholesky(o_bar.T @ o_bar, g, diag_shift)


def _cholesky(mat, rhs, diag_shift):
    mat = mat + diag_shift * jnp.eye(mat.shape[0], dtype=mat.dtype)
    factor = jax.scipy.linalg.cho_factor(mat, lower=True)
    return jax.scipy.linalg.cho_solve(factor, rhs)


def _cg(matvec, rhs):
    x, _ = jax.scipy.sparse.linalg.cg(matvec, rhs, tol=1e-10 if rhs.dtype == jnp.float64 else 1e-6, maxiter=4 * rhs.shape[0])
    return x
