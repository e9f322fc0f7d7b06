"""Energy gradient estimator and stochastic reconfiguration (S-matrix and minSR forms).

Notation (real parameters, real log ψ): O_ik = ∂ log ψ(x_i)/∂θ_k for N samples and P
parameters; Ō = (O − ⟨O⟩)/√N, ε = (E_loc − ⟨E_loc⟩)/√N. The energy gradient is
g = 2 Ōᵀε, the quantum geometric tensor S = ŌᵀŌ, and SR solves (S + λ·1) δ = g. When N < P
the same δ comes from the sample-space (minSR / kernel) form δ = 2 Ōᵀ (ŌŌᵀ + λ·1)⁻¹ ε
(push-through identity), which costs O(N²P) instead of O(P²N + P³) — or less with a
structured Jacobian (see jacobians.py).

``jac`` arguments are the linear maps of jacobians.py (``DenseJacobian``, ``RBMJacobian``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from nqs_cli.jacobians import DenseJacobian, dense_jacobian

# "auto" solver: a direct Cholesky solve for small systems; above this dimension conjugate
# gradients on matrix-vector products (O(dim²) or less per iteration instead of O(dim³)),
# which is several times faster at the reference sizes and gives the same direction.
CHOLESKY_MAX_DIM = 512


def centered_energies(e_loc: jax.Array, dtype) -> jax.Array:
    """ε = (E_loc − ⟨E_loc⟩)/√N (real part), in the parameters' dtype."""
    n = e_loc.shape[0]
    return ((e_loc - jnp.mean(e_loc)).real / jnp.sqrt(jnp.asarray(n, dtype))).astype(dtype)


def energy_gradient(jac, eps: jax.Array) -> jax.Array:
    """g = 2 Ōᵀε = ∂⟨E⟩/∂θ for real parameters."""
    return 2.0 * jac.transpose_apply(eps)


def resolve_mode(mode: str, n_samples: int, n_params: int) -> str:
    if mode == "auto":
        return "minsr" if n_samples < n_params else "S"
    return mode


def resolve_solver(solver: str, dim: int) -> str:
    if solver == "auto":
        return "cholesky" if dim <= CHOLESKY_MAX_DIM else "cg"
    return solver


def needs_dense_jacobian(mode: str, solver: str, n_samples: int, n_params: int) -> bool:
    """Only the parameter-space Cholesky form needs the P × P matrix, hence a dense Ō."""
    mode = resolve_mode(mode, n_samples, n_params)
    return mode == "S" and resolve_solver(solver, n_params) == "cholesky"


def sr_direction(jac, eps: jax.Array, diag_shift, mode: str = "auto", solver: str = "cholesky") -> jax.Array:
    """δ = (ŌᵀŌ + λ)⁻¹ 2Ōᵀε, computed in parameter space ("S") or sample space ("minsr")."""
    n, p = jac.shape
    mode = resolve_mode(mode, n, p)
    solver = resolve_solver(solver, n if mode == "minsr" else p)
    if mode == "minsr":
        if solver == "cg":
            x = _cg(lambda v: jac.apply(jac.transpose_apply(v)) + diag_shift * v, eps)
        else:
            x = _cholesky(jac.gram(), eps, diag_shift)
        return 2.0 * jac.transpose_apply(x)
    g = energy_gradient(jac, eps)
    if solver == "cg":
        return _cg(lambda v: jac.transpose_apply(jac.apply(v)) + diag_shift * v, g)
    return _cholesky(jac.s_matrix(), g, diag_shift)


def _cholesky(mat, rhs, diag_shift):
    mat = mat + diag_shift * jnp.eye(mat.shape[0], dtype=mat.dtype)
    factor = jax.scipy.linalg.cho_factor(mat, lower=True)
    return jax.scipy.linalg.cho_solve(factor, rhs)


def _cg(matvec, rhs):
    tol = 1e-8 if rhs.dtype == jnp.float64 else 1e-5
    x, _ = jax.scipy.sparse.linalg.cg(matvec, rhs, tol=tol, maxiter=4 * rhs.shape[0])
    return x


__all__ = [
    "DenseJacobian",
    "dense_jacobian",
    "centered_energies",
    "energy_gradient",
    "resolve_mode",
    "resolve_solver",
    "needs_dense_jacobian",
    "sr_direction",
]
