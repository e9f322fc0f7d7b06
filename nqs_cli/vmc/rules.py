"""Metropolis transition rules: which move a chain proposes.

A rule is a small frozen object with ``draw(key, batch, n_dof, dtype)`` (the random numbers
of all its steps at once: a few big PRNG calls per sampling pass instead of several per
Metropolis step) and ``propose(r, x) -> (x', log_q)`` acting on ONE configuration with one
step's numbers ``r``, where ``log_q = log T(x'→x) − log T(x→x')`` corrects asymmetric
proposals. A rule may also have ``propose_sites(r, x) -> (x', log_q, sites)`` naming the
sites it may have changed, for evaluators that update log ψ from those alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def _uniforms(key, batch, k, dtype):
    return jax.random.uniform(key, (*batch, k), dtype)


def _index(u, n: int):
    """floor(u·n) for u in [0, 1), kept below n against rounding."""
    return jnp.minimum(jnp.floor(u * n).astype(jnp.int32), n - 1)


@dataclass(frozen=True)
class LocalRule:
    """A new local value (uniform among the other d−1) at one uniformly chosen site."""

    n_sites: int
    local_dim: int

    def draw(self, key, batch, n_dof, dtype):
        return _uniforms(key, batch, 2, dtype)

    def propose(self, r, x):
        site = _index(r[0], self.n_sites)
        shift = 1 + _index(r[1], self.local_dim - 1)
        new = (x[site] + shift) % self.local_dim
        return x.at[site].set(new.astype(x.dtype)), real_zero()


@dataclass(frozen=True, eq=False)
class ExchangeRule:
    """Swap the values of the two sites of a uniformly chosen lattice edge (symmetric)."""

    edges: np.ndarray  # (E, 2)

    def draw(self, key, batch, n_dof, dtype):
        return _uniforms(key, batch, 1, dtype)

    def propose(self, r, x):
        ij = jnp.asarray(self.edges)[_index(r[0], self.edges.shape[0])]
        xi, xj = x[ij[0]], x[ij[1]]
        return x.at[ij[0]].set(xj).at[ij[1]].set(xi), real_zero()


@dataclass(frozen=True, eq=False)
class HamiltonianRule:
    """Move to a uniformly chosen connected configuration of H (one hop / one bond flip).

    T(x→x') = 1/n_conn(x), so the acceptance carries n_conn(x)/n_conn(x').
    """

    operator: Any  # BondHamiltonian: random_connection_sites, n_conn

    def draw(self, key, batch, n_dof, dtype):
        return _uniforms(key, batch, 1, dtype)

    def propose(self, r, x):
        x_new, log_q, _ = self.propose_sites(r, x)
        return x_new, log_q

    def propose_sites(self, r, x):
        """``propose`` plus the (at most two) sites that may have changed, for evaluators
        that update log ψ from the changed sites alone."""
        x_new, n_here, sites = self.operator.random_connection_sites(r[0], x)
        n_there = self.operator.n_conn(x_new)
        dtype = real_zero().dtype
        log_q = jnp.where(n_here > 0, jnp.log(n_here.astype(dtype)) - jnp.log(jnp.maximum(n_there, 1).astype(dtype)), 0.0)
        return x_new.astype(x.dtype), log_q, sites


@dataclass(frozen=True)
class GaussianRule:
    """Displace every coordinate by N(0, σ²); positions wrapped into the box when periodic.

    ``extent``: per-coordinate box lengths (n_dof,) as a tuple, or None for open space.
    """

    sigma: float
    extent: tuple[float, ...] | None = None

    def draw(self, key, batch, n_dof, dtype):
        return jax.random.normal(key, (*batch, n_dof), dtype)

    def propose(self, r, x):
        x_new = x + self.sigma * r.astype(x.dtype)
        if self.extent is not None:
            box = jnp.asarray(self.extent, x.dtype)
            x_new = jnp.mod(x_new, box)
        return x_new, jnp.zeros((), x.dtype)


def real_zero():
    return jnp.zeros((), jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
