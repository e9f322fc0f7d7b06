"""Local energy of particles in continuous space: E_loc = −1/(2m) [∇² log ψ + |∇ log ψ|²] + V(x).

Two paths for the derivatives of log ψ:
- ``generic_derivatives``: forward-over-reverse Hessian trace (what ``jax.hessian`` does),
  for any log ψ; cost O((N*D)² · cost of one particle's φ);
- a model's own fast path ``derivatives(params, x) -> (∇, ∇²)`` (e.g. the DeepSets
  Laplacian in models/deepsets_laplacian.py).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from nqs_cli.systems.continuum.hamiltonian import ContinuousHamiltonian


def generic_derivatives(log_psi: Callable, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(∇ log ψ (N*D,), ∇² log ψ) by forward-over-reverse: trace of jacfwd(grad), as jax.hessian."""
    grad, hvp = jax.linearize(jax.grad(log_psi), x)
    hess = jax.vmap(hvp)(jnp.eye(x.shape[0], dtype=x.dtype))
    return grad, jnp.trace(hess)


def local_energy_factory(hamiltonian: ContinuousHamiltonian, derivatives: Callable | None = None) -> Callable:
    """(log_psi) -> (params, x) -> E_loc(x). ``derivatives(params, x) -> (∇, ∇²)`` is the fast
    path (it ignores log_psi); None uses ``generic_derivatives`` on log_psi."""
    inv_2m = 0.5 / hamiltonian.space.mass

    def factory(log_psi):
        def local_energy(params, x):
            if derivatives is None:
                grad, lap = generic_derivatives(lambda y: log_psi(params, y), x)
            else:
                grad, lap = derivatives(params, x)
            return -inv_2m * (lap + jnp.dot(grad, grad)) + hamiltonian.potential(x)

        return local_energy

    return factory
