"""Fast ∇ and ∇² of log ψ for the DeepSets models: log ψ = ρ(Σ_u h(u)) over units u.

Units are particles (DeepSetMLP, optionally × GaussianEnvelope) or pairs of particles
(DeepSetRelDistance). Per unit one D-direction forward-over-forward pass, one F×F Hessian of
ρ (or second directional derivatives of ρ when N·D < F): cost O(N · D) unit passes (O(N²)
pair passes for DeepSetRelDistance) instead of the O((N·D)²) of a generic Hessian trace.
Checked against ``jax.hessian`` in tests/models/test_deepsets_laplacian.py.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from nqs_cli.models.deepsets import DeepSetRelDistance, GaussianEnvelope, cusp_term
from nqs_cli.models.fast_paths import FastPaths


def deepset_derivatives(h: Callable, rho: Callable, units: jax.Array, n_particles: int, pairs=None):
    """(∇ log ψ (N*D,), ∇² log ψ) for log ψ = ρ(s), s = Σ_u h(u_u).

    units: (U, D) — particle coordinates (pairs None) or pair displacements r_ij = x_i − x_j
    with pairs = (i, j) index arrays (U,). h: (D,) -> (F,); ρ: (F,) -> scalar.
    With J_u = ∂h/∂u (D, F) and G_ia = ∂s/∂x_ia = Σ_u ±J_u[a] (+ for i, − for j):
      ∂_ia log ψ = ∇ρ · G_ia,   ∇² log ψ = Σ_ia G_iaᵀ H_ρ G_ia + ∇ρ · Σ_ia ∂²s/∂x_ia²,
    and Σ_ia ∂²s/∂x_ia² = c Σ_u Δh(u_u), c = 1 for particles, 2 for pairs (sign² = 1).
    """
    d = units.shape[-1]
    basis = jnp.eye(d, dtype=units.dtype)

    def along(u, v):
        # jvp of (h, ∂_v h): primal (h, ∂_v h), tangent (∂_v h, ∂²_v h)
        (val, d1), (_, d2) = jax.jvp(lambda y: jax.jvp(h, (y,), (v,)), (u,), (v,))
        return val, d1, d2

    def unit(u):
        val, d1, d2 = jax.vmap(along, (None, 0))(u, basis)
        return val[0], d1, jnp.sum(d2, axis=0)

    vals, jac, lap_h = jax.vmap(unit)(units)  # (U, F), (U, D, F), (U, F)
    s = jnp.sum(vals, axis=0)
    if pairs is None:
        g = jac
        weight = 1.0
    else:
        i, j = pairs
        g = jnp.zeros((n_particles, *jac.shape[1:]), jac.dtype).at[i].add(jac).at[j].add(-jac)
        weight = 2.0
    grad_rho = jax.grad(rho)(s)
    grad = jnp.einsum("naf,f->na", g, grad_rho).reshape(-1)
    directions = g.reshape(-1, g.shape[-1])  # (N·D, F)
    if directions.shape[0] < directions.shape[1]:
        # Σ_ia G_iaᵀ H_ρ G_ia as second derivatives of ρ along the N·D directions G_ia
        # (forward over forward), cheaper than the F × F Hessian when N·D < F
        along_g = lambda v: jax.jvp(lambda y: jax.jvp(rho, (y,), (v,))[1], (s,), (v,))[1]  # noqa: E731
        curvature = jnp.sum(jax.vmap(along_g)(directions))
    else:
        curvature = jnp.einsum("nf,fk,nk->", directions, jax.hessian(rho)(s), directions)
    lap = curvature + weight * jnp.dot(grad_rho, jnp.sum(lap_h, axis=0))
    return grad, lap


def deepsets_derivatives(model) -> Callable:
    """(params, x) -> (∇, ∇²) of log ψ for DeepSetMLP (flat input), optionally × GaussianEnvelope.

    The envelope −a|x_i|² rides along as one extra per-particle feature that ρ adds linearly.
    """
    enveloped = isinstance(model, GaussianEnvelope)
    inner = model.inner if enveloped else model
    n_dims = inner.n_dims

    def derivatives(params, x):
        p_inner = params["inner"] if enveloped else params
        phi = lambda u: inner.apply({"params": p_inner}, u, method="phi")  # noqa: E731
        rho = lambda s: inner.apply({"params": p_inner}, s, method="rho")  # noqa: E731
        units = x.reshape(-1, n_dims)
        if not enveloped:
            return deepset_derivatives(phi, rho, units, units.shape[0])
        a = jnp.exp(params["log_a"])
        h = lambda u: jnp.concatenate([phi(u), -a * jnp.sum(u * u, keepdims=True)])  # noqa: E731
        rho_env = lambda s: rho(s[:-1]) + s[-1]  # noqa: E731
        return deepset_derivatives(h, rho_env, units, units.shape[0])

    return derivatives


def reldist_derivatives(model) -> Callable:
    """(params, x) -> (∇, ∇²) of log ψ for DeepSetRelDistance: pair units r_ij = x_i − x_j.

    Per pair h(r) = [φ(y(r)), cusp(r)], y = (sin(πr/L)/2)², cusp = −½ b/‖d‖^k (b log ‖d‖ for
    k = 0) with d = (L/2) sin(πr/L); ρ adds the cusp feature linearly.
    """
    box = tuple(float(e) for e in model.extent)
    n_dims = len(box)
    k = model.cusp_exponent

    def derivatives(params, x):
        xs = x.reshape(-1, n_dims)
        n = xs.shape[0]
        i, j = np.triu_indices(n, 1)
        L = jnp.asarray(box, x.dtype)
        phi = lambda y: model.apply({"params": params}, y, method="phi")  # noqa: E731
        rho = lambda s: model.apply({"params": params}, s, method="rho")  # noqa: E731

        def h(r):
            dist = L / 2.0 * jnp.sin(jnp.pi * r / L)
            feats = phi((dist / L) ** 2)
            if k is None:
                return feats
            norm = jnp.sqrt(jnp.sum(dist * dist, keepdims=True))
            return jnp.concatenate([feats, cusp_term(params["cusp"], norm, k)])

        rho_c = rho if k is None else (lambda s: rho(s[:-1]) + s[-1])
        return deepset_derivatives(h, rho_c, xs[i] - xs[j], n, pairs=(i, j))

    return derivatives


def fast_paths(model, hamiltonian=None) -> FastPaths:
    """The structured Laplacian of a DeepSetMLP (optionally × GaussianEnvelope) or a
    DeepSetRelDistance (the Hamiltonian only enters the local energy, through these derivatives)."""
    if isinstance(model, DeepSetRelDistance):
        return FastPaths(derivatives=reldist_derivatives(model))
    return FastPaths(derivatives=deepsets_derivatives(model))
