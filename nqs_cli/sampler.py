"""Metropolis-Hastings sampling of |ψ|² over many parallel chains.

A transition rule is a small frozen object with ``propose(key, x) -> (x', log_q)`` acting on
ONE configuration, where ``log_q = log T(x'→x) − log T(x→x')`` corrects asymmetric
proposals. The chain state is a pytree; ``make_sampler`` returns a pure function that runs
all chains (vmapped) for a number of sweeps (``lax.scan``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

LogPsi = Callable[[Any, jax.Array], jax.Array]


@struct.dataclass
class ChainState:
    """x: (n_chains, n_dof); log_psi: (n_chains,) — the chains persist across iterations."""

    x: jax.Array
    log_psi: jax.Array


# --------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class LocalRule:
    """A new local value (uniform among the other d−1) at one uniformly chosen site."""

    n_sites: int
    local_dim: int

    def propose(self, key, x):
        k_site, k_shift = jax.random.split(key)
        site = jax.random.randint(k_site, (), 0, self.n_sites)
        shift = jax.random.randint(k_shift, (), 1, self.local_dim)
        new = (x[site] + shift) % self.local_dim
        return x.at[site].set(new.astype(x.dtype)), _zero()


@dataclass(frozen=True, eq=False)
class ExchangeRule:
    """Swap the values of the two sites of a uniformly chosen lattice edge (symmetric)."""

    edges: np.ndarray  # (E, 2)

    def propose(self, key, x):
        e = jax.random.randint(key, (), 0, self.edges.shape[0])
        ij = jnp.asarray(self.edges)[e]
        xi, xj = x[ij[0]], x[ij[1]]
        return x.at[ij[0]].set(xj).at[ij[1]].set(xi), _zero()


@dataclass(frozen=True, eq=False)
class HamiltonianRule:
    """Move to a uniformly chosen connected configuration of H (one hop / one bond flip).

    T(x→x') = 1/n_conn(x), so the acceptance carries n_conn(x)/n_conn(x').
    """

    operator: Any  # BondHamiltonian: get_conn_padded, n_conn

    def propose(self, key, x):
        x_new, n_here = self.operator.random_connection(key, x)
        n_there = self.operator.n_conn(x_new)
        dtype = _zero().dtype
        log_q = jnp.where(n_here > 0, jnp.log(n_here.astype(dtype)) - jnp.log(jnp.maximum(n_there, 1).astype(dtype)), 0.0)
        return x_new.astype(x.dtype), log_q


@dataclass(frozen=True)
class GaussianRule:
    """Displace every coordinate by N(0, σ²); positions wrapped into the box when periodic.

    ``extent``: per-coordinate box lengths (n_dof,) as a tuple, or None for open space.
    """

    sigma: float
    extent: tuple[float, ...] | None = None

    def propose(self, key, x):
        x_new = x + self.sigma * jax.random.normal(key, x.shape, x.dtype)
        if self.extent is not None:
            box = jnp.asarray(self.extent, x.dtype)
            x_new = jnp.mod(x_new, box)
        return x_new, jnp.zeros((), x.dtype)


def _zero():
    return jnp.zeros((), jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)


# --------------------------------------------------------------------------- chains


def init_chains(log_psi: LogPsi, params, random_state: Callable, key, n_chains: int) -> ChainState:
    x = jax.vmap(random_state)(jax.random.split(key, n_chains))
    return ChainState(x=x, log_psi=jax.vmap(log_psi, (None, 0))(params, x))


@dataclass(frozen=True, eq=False)
class FullEvaluation:
    """Evaluates log ψ of every proposal from scratch (the default amplitude evaluator).

    An evaluator has ``prepare(params) -> ctx`` (once per sampling call),
    ``init(ctx, x) -> (log ψ(x), cache)`` (per chain) and ``update(ctx, cache, x, x_new) ->
    (log ψ(x_new), cache_new)``; see rbm_kernels.RBMIncremental for a cached one.
    """

    log_psi: LogPsi

    def prepare(self, params):
        return params

    def init(self, params, x):
        return self.log_psi(params, x), ()

    def update(self, params, cache, x, x_new):
        return self.log_psi(params, x_new), ()


def make_sampler(log_psi: LogPsi, rule, n_per_chain: int, n_discard: int, sweep_size: int, evaluator=None):
    """Returns ``sample(params, chains, key) -> (chains, samples, acceptance)``.

    samples: (n_chains, n_per_chain, n_dof); acceptance: fraction of accepted moves over all
    ``(n_discard + n_per_chain) * sweep_size`` steps of this call. ``evaluator`` (default:
    ``FullEvaluation(log_psi)``) may keep a per-chain cache to update log ψ incrementally;
    the cache lives only inside one call, since the parameters change between calls.
    """
    evaluator = evaluator or FullEvaluation(log_psi)
    batched_propose = jax.vmap(rule.propose)
    batched_update = jax.vmap(evaluator.update, (None, 0, 0, 0))

    def metropolis_step(ctx, carry, key):
        chains, cache, n_acc = carry
        k_prop, k_acc = jax.random.split(key)
        n_chains = chains.x.shape[0]
        x_new, log_q = batched_propose(jax.random.split(k_prop, n_chains), chains.x)
        lp_new, cache_new = batched_update(ctx, cache, chains.x, x_new)
        log_ratio = 2.0 * jnp.real(lp_new - chains.log_psi) + log_q
        u = jax.random.uniform(k_acc, (n_chains,), dtype=log_ratio.dtype)
        accept = jnp.log(u) < log_ratio
        x = jnp.where(accept[:, None], x_new, chains.x)
        lp = jnp.where(accept, lp_new, chains.log_psi)
        cache = jax.tree_util.tree_map(lambda new, old: jnp.where(accept.reshape((-1,) + (1,) * (new.ndim - 1)), new, old), cache_new, cache)
        return (ChainState(x=x, log_psi=lp), cache, n_acc + jnp.sum(accept, dtype=n_acc.dtype)), None

    def sweep(ctx, carry, key):
        carry, _ = jax.lax.scan(lambda c, k: metropolis_step(ctx, c, k), carry, jax.random.split(key, sweep_size))
        return carry, carry[0].x

    def sample(params, chains: ChainState, key):
        k_discard, k_keep = jax.random.split(key)
        ctx = evaluator.prepare(params)
        # log ψ of the current positions under the CURRENT parameters (they changed since the last call)
        log_psi_now, cache = jax.vmap(evaluator.init, (None, 0))(ctx, chains.x)
        chains = ChainState(x=chains.x, log_psi=log_psi_now.astype(chains.log_psi.dtype))
        carry = (chains, cache, jnp.zeros((), jnp.int32))
        if n_discard > 0:
            carry, _ = jax.lax.scan(lambda c, k: sweep(ctx, c, k), carry, jax.random.split(k_discard, n_discard))
        carry, xs = jax.lax.scan(lambda c, k: sweep(ctx, c, k), carry, jax.random.split(k_keep, n_per_chain))
        chains, _, n_acc = carry
        n_steps = (n_discard + n_per_chain) * sweep_size * chains.x.shape[0]
        samples = jnp.swapaxes(xs, 0, 1)
        return chains, samples, n_acc / n_steps

    return sample
