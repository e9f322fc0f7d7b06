"""Metropolis-Hastings sampling of |ψ|² over many parallel chains.

A transition rule is a small frozen object with ``draw(key, batch, n_dof, dtype)`` (the
random numbers of all its steps at once) and ``propose(r, x) -> (x', log_q)`` acting on ONE
configuration with one step's numbers ``r``, where ``log_q = log T(x'→x) − log T(x→x')``
corrects asymmetric proposals. The chain state is a pytree; ``make_sampler`` returns a pure function that runs
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


# A rule draws the random numbers of all its steps in one call, ``draw(key, batch, n_dof,
# dtype)``, and then ``propose(r, x)`` consumes one step's share ``r`` for ONE configuration:
# a few big PRNG calls per sampling pass instead of several per Metropolis step.


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
        return x.at[site].set(new.astype(x.dtype)), _zero()


@dataclass(frozen=True, eq=False)
class ExchangeRule:
    """Swap the values of the two sites of a uniformly chosen lattice edge (symmetric)."""

    edges: np.ndarray  # (E, 2)

    def draw(self, key, batch, n_dof, dtype):
        return _uniforms(key, batch, 1, dtype)

    def propose(self, r, x):
        ij = jnp.asarray(self.edges)[_index(r[0], self.edges.shape[0])]
        xi, xj = x[ij[0]], x[ij[1]]
        return x.at[ij[0]].set(xj).at[ij[1]].set(xi), _zero()


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
        dtype = _zero().dtype
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
    n_sweeps = n_discard + n_per_chain
    if hasattr(rule, "propose_sites") and hasattr(evaluator, "update_sites"):
        # the rule names the sites it touched: the evaluator need not search for them
        propose_sites = jax.vmap(rule.propose_sites)
        update_sites = jax.vmap(evaluator.update_sites, (None, 0, 0, 0, 0))

        def propose_and_evaluate(ctx, cache, r_prop, x):
            x_new, log_q, sites = propose_sites(r_prop, x)
            return x_new, log_q, update_sites(ctx, cache, x, x_new, sites)

    else:
        batched_propose = jax.vmap(rule.propose)
        batched_update = jax.vmap(evaluator.update, (None, 0, 0, 0))

        def propose_and_evaluate(ctx, cache, r_prop, x):
            x_new, log_q = batched_propose(r_prop, x)
            return x_new, log_q, batched_update(ctx, cache, x, x_new)

    def metropolis_step(ctx, carry, randoms):
        chains, cache, n_acc = carry
        r_prop, u = randoms  # (n_chains, ...), (n_chains,)
        x_new, log_q, (lp_new, cache_new) = propose_and_evaluate(ctx, cache, r_prop, chains.x)
        log_ratio = 2.0 * jnp.real(lp_new - chains.log_psi) + log_q
        accept = jnp.log(u.astype(log_ratio.dtype)) < log_ratio
        x = jnp.where(accept[:, None], x_new, chains.x)
        lp = jnp.where(accept, lp_new, chains.log_psi)
        cache = jax.tree_util.tree_map(lambda new, old: jnp.where(accept.reshape((-1,) + (1,) * (new.ndim - 1)), new, old), cache_new, cache)
        return (ChainState(x=x, log_psi=lp), cache, n_acc + jnp.sum(accept, dtype=n_acc.dtype)), None

    def sweep(ctx, carry, randoms):
        carry, _ = jax.lax.scan(lambda c, r: metropolis_step(ctx, c, r), carry, randoms)
        return carry, carry[0].x

    def sample(params, chains: ChainState, key):
        k_prop, k_acc = jax.random.split(key)
        n_chains, n_dof = chains.x.shape
        real = _zero().dtype
        shape = (n_sweeps, sweep_size, n_chains)
        randoms = (rule.draw(k_prop, shape, n_dof, real), jax.random.uniform(k_acc, shape, real))
        ctx = evaluator.prepare(params)
        # log ψ of the current positions under the CURRENT parameters (they changed since the last call)
        log_psi_now, cache = jax.vmap(evaluator.init, (None, 0))(ctx, chains.x)
        chains = ChainState(x=chains.x, log_psi=log_psi_now.astype(chains.log_psi.dtype))
        carry = (chains, cache, jnp.zeros((), jnp.int32))
        if n_discard > 0:
            discard = jax.tree_util.tree_map(lambda a: a[:n_discard], randoms)
            carry, _ = jax.lax.scan(lambda c, r: sweep(ctx, c, r), carry, discard)
        keep = jax.tree_util.tree_map(lambda a: a[n_discard:], randoms)
        carry, xs = jax.lax.scan(lambda c, r: sweep(ctx, c, r), carry, keep)
        chains, _, n_acc = carry
        n_steps = n_sweeps * sweep_size * n_chains
        samples = jnp.swapaxes(xs, 0, 1)
        return chains, samples, n_acc / n_steps

    return sample
