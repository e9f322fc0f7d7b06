"""Metropolis-Hastings sampling of |ψ|² over many parallel chains.

The moves come from a transition rule (vmc/rules.py). The chain state is a pytree;
``make_sampler`` returns a pure function that runs all chains (vmapped) for a number of
sweeps (``lax.scan``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import struct

from nqs_cli.vmc.rules import real_zero

LogPsi = Callable[[Any, jax.Array], jax.Array]


@struct.dataclass
class ChainState:
    """x: (n_chains, n_dof); log_psi: (n_chains,); width: (n_chains,) each chain's proposal
    scale (a factor on the rule's own width; 1 where the rule does not adapt) — the chains
    persist across iterations."""

    x: jax.Array
    log_psi: jax.Array
    width: jax.Array


# --------------------------------------------------------------------------- chains


def init_chains(log_psi: LogPsi, params, random_state: Callable, key, n_chains: int) -> ChainState:
    x = jax.vmap(random_state)(jax.random.split(key, n_chains))
    lp = jax.vmap(log_psi, (None, 0))(params, x)
    return ChainState(x=x, log_psi=lp, width=jnp.ones((n_chains,), jnp.real(lp).dtype))


@dataclass(frozen=True, eq=False)
class FullEvaluation:
    """Evaluates log ψ of every proposal from scratch (the default amplitude evaluator).

    An evaluator has ``prepare(params) -> ctx`` (once per sampling call),
    ``init(ctx, x) -> (log ψ(x), cache)`` (per chain) and ``update(ctx, cache, x, x_new) ->
    (log ψ(x_new), cache_new)``; see models/rbm_kernels.RBMIncremental for a cached one.
    """

    log_psi: LogPsi

    def prepare(self, params):
        return params

    def init(self, params, x):
        return self.log_psi(params, x), ()

    def update(self, params, cache, x, x_new):
        return self.log_psi(params, x_new), ()


def _proposer(rule, evaluator):
    """``(ctx, cache, r, x) -> (x', log_q, (log ψ(x'), cache'))`` for all chains at once."""
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

    return propose_and_evaluate


def make_sampler(log_psi: LogPsi, rule, n_per_chain: int, n_discard: int | None, sweep_size: int, evaluator=None, target_acceptance: float | None = None):
    """Returns ``sample(params, chains, key) -> (chains, samples, acceptance)``; with
    ``n_discard = None`` it is ``sample(params, chains, key, n_discard)``, the thermalisation
    sweeps an argument (one compiled program for a first pass that thermalises and the passes
    that continue it; its sweeps draw their random numbers one sweep at a time).

    samples: (n_chains, n_per_chain, n_dof); acceptance: fraction of accepted moves over all
    ``(n_discard + n_per_chain) * sweep_size`` steps of this call. ``evaluator`` (default:
    ``FullEvaluation(log_psi)``) may keep a per-chain cache to update log ψ incrementally;
    the cache lives only inside one call, since the parameters change between calls.

    ``target_acceptance`` (for rules whose random numbers scale the move, the Gaussian one):
    each chain's proposal width is multiplied by exp(acceptance − target) after every
    thermalisation sweep, and held fixed while samples are kept (so they come from one
    Metropolis kernel); the width is carried by the chains into the next call.
    """
    evaluator = evaluator or FullEvaluation(log_psi)
    dynamic = n_discard is None
    n_sweeps = n_per_chain if dynamic else n_discard + n_per_chain
    propose_and_evaluate = _proposer(rule, evaluator)

    adapt = target_acceptance is not None

    def metropolis_step(ctx, carry, randoms):
        chains, cache, n_acc, sweep_acc = carry
        r_prop, u = randoms  # (n_chains, ...), (n_chains,)
        if adapt:
            r_prop = r_prop * chains.width.reshape((-1,) + (1,) * (r_prop.ndim - 1)).astype(r_prop.dtype)
        x_new, log_q, (lp_new, cache_new) = propose_and_evaluate(ctx, cache, r_prop, chains.x)
        log_ratio = 2.0 * jnp.real(lp_new - chains.log_psi) + log_q
        accept = jnp.log(u.astype(log_ratio.dtype)) < log_ratio
        x = jnp.where(accept[:, None], x_new, chains.x)
        lp = jnp.where(accept, lp_new, chains.log_psi)
        cache = jax.tree_util.tree_map(lambda new, old: jnp.where(accept.reshape((-1,) + (1,) * (new.ndim - 1)), new, old), cache_new, cache)
        chains = ChainState(x=x, log_psi=lp, width=chains.width)
        return (chains, cache, n_acc + jnp.sum(accept, dtype=n_acc.dtype), sweep_acc + accept.astype(sweep_acc.dtype)), None

    def sweep(ctx, carry, randoms):
        carry, _ = jax.lax.scan(lambda c, r: metropolis_step(ctx, c, r), carry, randoms)
        return carry, carry[0].x

    def thermalise(ctx, carry, randoms):
        chains, cache, n_acc, sweep_acc = carry
        carry, _ = sweep(ctx, (chains, cache, n_acc, jnp.zeros_like(sweep_acc)), randoms)
        chains, cache, n_acc, sweep_acc = carry
        if adapt:
            rate = sweep_acc.astype(chains.width.dtype) / sweep_size
            width = jnp.clip(chains.width * jnp.exp(rate - target_acceptance), 1e-4, 1e4)
            chains = chains.replace(width=width)
        return (chains, cache, n_acc, sweep_acc), None

    def sample(params, chains: ChainState, key, n_thermalise=None):
        k_prop, k_acc = jax.random.split(key)
        n_chains, n_dof = chains.x.shape
        real = real_zero().dtype
        shape = (n_sweeps, sweep_size, n_chains)
        randoms = (rule.draw(k_prop, shape, n_dof, real), jax.random.uniform(k_acc, shape, real))
        ctx = evaluator.prepare(params)
        # log ψ of the current positions under the CURRENT parameters (they changed since the last call)
        log_psi_now, cache = jax.vmap(evaluator.init, (None, 0))(ctx, chains.x)
        chains = chains.replace(log_psi=log_psi_now.astype(chains.log_psi.dtype))
        carry = (chains, cache, jnp.zeros((), jnp.int32), jnp.zeros((n_chains,), jnp.int32))
        if dynamic:
            k_therm = jax.random.fold_in(key, 1)

            def one_sweep(i, c):
                k_p, k_a = jax.random.split(jax.random.fold_in(k_therm, i))
                r = (rule.draw(k_p, shape[1:], n_dof, real), jax.random.uniform(k_a, shape[1:], real))
                return thermalise(ctx, c, r)[0]

            carry = jax.lax.fori_loop(0, n_thermalise, one_sweep, carry)
            keep = randoms
            n_steps = (n_sweeps + n_thermalise) * sweep_size * n_chains
        else:
            if n_discard > 0:
                discard = jax.tree_util.tree_map(lambda a: a[:n_discard], randoms)
                carry, _ = jax.lax.scan(lambda c, r: thermalise(ctx, c, r), carry, discard)
            keep = jax.tree_util.tree_map(lambda a: a[n_discard:], randoms)
            n_steps = n_sweeps * sweep_size * n_chains
        carry, xs = jax.lax.scan(lambda c, r: sweep(ctx, c, r), carry, keep)
        chains, _, n_acc, _ = carry
        samples = jnp.swapaxes(xs, 0, 1)
        return chains, samples, n_acc / n_steps

    return sample
