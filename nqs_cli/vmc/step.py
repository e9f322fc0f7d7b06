"""The VMC state and the step factory: one compiled function per iteration.

``make_step(sample, local_energies, jacobian, direction, tx)`` takes built parts — as
FermiNet's ``make_training_step(mcmc_step, optimizer_step)`` does — and returns
``step(state, key) -> (state, stats)``: sampling, local energies, the gradient or SR
direction and the optax update, for one ``jax.jit``. Nothing here reads a config.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from nqs_cli.vmc import sr
from nqs_cli.vmc.jacobians import abs2
from nqs_cli.vmc.sampler import ChainState
from nqs_cli.vmc.stats import statistics


@struct.dataclass
class VMCState:
    step: jax.Array  # int, iterations done
    params: Any
    opt_state: Any
    chains: ChainState
    direction: Any = ()  # the previous update direction δ (flat), kept when SR has momentum
    average: Any = ()  # the running average of the parameters (``make_step(average=τ)``), else ()


def final_params(state: VMCState):
    """The parameters a run reports: the running average when it is kept, else the last iterate."""
    return state.params if isinstance(state.average, tuple) else state.average


def root_keys(seed: int):
    """Named keys: (params, chains, steps). Step t uses fold_in(steps, t)."""
    k_params, k_chains, k_steps = jax.random.split(jax.random.key(seed), 3)
    return k_params, k_chains, k_steps


def init_state(params, chains: ChainState, tx: optax.GradientTransformation, memory: bool = False, average: bool = False) -> VMCState:
    """The state before the first step; ``memory``: keep the previous direction (zero at
    first); ``average``: keep a running average of the parameters (the initial ones at first)."""
    direction = ravel_pytree(params)[0] * 0 if memory else ()
    mean = jax.tree_util.tree_map(jnp.array, params) if average else ()
    return VMCState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), chains=chains, direction=direction, average=mean)


def running_average(mean, params, count, horizon: int):
    """θ̄ ← θ̄ + (θ − θ̄)/min(count, horizon): the uniform mean of the first ``horizon`` iterates,
    then an exponential average with time constant ``horizon`` (``count``: iterates so far)."""
    rate = 1.0 / jnp.minimum(count, horizon)
    return jax.tree_util.tree_map(lambda m, p: (m + rate * (p - m)).astype(m.dtype), mean, params)


def n_parameters(params) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))


def chunked_map(fn, chunk_size: int | None):
    """``(params, xs) -> vmap(fn)(params, xs)``, evaluated ``chunk_size`` samples at a time
    (bounding the memory of the intermediates) when ``chunk_size`` is set."""
    batched = jax.vmap(fn, (None, 0))
    if chunk_size is None:
        return batched

    def apply(params, xs):
        if chunk_size >= xs.shape[0]:
            return batched(params, xs)
        return jax.lax.map(lambda x: fn(params, x), xs, batch_size=chunk_size)

    return apply


def gradient_direction(jac, eps, grad, step, previous=None):
    """Plain gradient descent: the update direction is the energy gradient itself."""
    return grad


def warmup_factor(warmup: int):
    """step -> the learning-rate factor of a linear warm-up over ``warmup`` iterations (1 after)."""
    if warmup <= 0:
        return lambda step: 1.0
    return lambda step: jnp.minimum(1.0, (step + 1.0) / warmup)


def make_step(
    sample: Callable,
    local_energies: Callable,
    jacobian: Callable,
    direction: Callable,
    tx: optax.GradientTransformation,
    warmup: int = 0,
    trust_region: float | None = None,
    diag_shift: Callable | None = None,
    report_width: bool = False,
    average: int | None = None,
) -> Callable:
    """The VMC iteration ``(state, key, scale=1) -> (state, stats)`` from its parts.

    sample(params, chains, key) -> (chains, samples (n_chains, n_per_chain, n_dof), acceptance);
    local_energies(params, xs (N, n_dof)) -> E_loc (N,); jacobian(params, xs) -> Jacobian map;
    direction(jac, eps, grad, step, previous) -> flat update direction (SR, or the gradient;
    ``previous``: the last step's direction, kept in the state when it is an array).

    The optimiser's update Δθ is multiplied by ``scale`` (a retry's step reduction), the
    warm-up factor, and then shrunk, if needed, so that its squared Fubini–Study length
    ΔθᵀSΔθ = |ŌΔθ|² stays below ``trust_region``: the step is bounded in the geometry of
    the state, whatever the parametrisation. Stats carry that length (``fs_step``), the
    total factor (``step_scale``) and Tr S (``trace_s``, 0 when ψ no longer depends on
    its parameters), with SR the step's ``diag_shift`` (step -> λ), and with an adaptive
    sampler the chains' mean proposal-width factor (``width_scale``). With ``average`` = τ
    the state keeps the running average of the parameters (``running_average``).
    """
    warm = warmup_factor(warmup)

    def step(state: VMCState, key, scale=1.0):
        chains, samples, acceptance = sample(state.params, state.chains, key)
        flat = samples.reshape((-1, samples.shape[-1]))
        e_loc = local_energies(state.params, flat)
        st = statistics(e_loc.reshape(samples.shape[:2]).real)
        flat_params, unravel = ravel_pytree(state.params)
        jac = jacobian(state.params, flat)
        eps = sr.centered_energies(e_loc, flat_params.dtype)
        grad = sr.energy_gradient(jac, eps)
        delta = direction(jac, eps, grad, state.step, state.direction)
        updates, opt_state = tx.update(unravel(delta), state.opt_state, state.params)
        factor = scale * warm(state.step)
        fs = jnp.sum(abs2(jac.apply(ravel_pytree(updates)[0]))) * factor**2
        if trust_region is not None:
            shrink = jnp.minimum(1.0, jnp.sqrt(trust_region / jnp.maximum(fs, 1e-300)))
            factor, fs = factor * shrink, fs * shrink**2
        updates = jax.tree_util.tree_map(lambda u: (factor * u).astype(u.dtype), updates)
        params = optax.apply_updates(state.params, updates)
        memory = state.direction if isinstance(state.direction, tuple) else delta.astype(state.direction.dtype)
        mean = running_average(state.average, params, state.step + 1, average) if average else state.average
        new_state = VMCState(step=state.step + 1, params=params, opt_state=opt_state, chains=chains, direction=memory, average=mean)
        stats = {
            "energy": st.mean,
            "energy_error": st.error_of_mean,
            "variance": st.variance,
            "r_hat": st.r_hat,
            "tau_corr": st.tau_corr,
            "acceptance": acceptance,
            "grad_norm": jnp.linalg.norm(grad),
            "update_norm": jnp.linalg.norm(delta),
            "fs_step": fs,
            "step_scale": factor,
            "trace_s": jac.trace_s(),
            "params_finite": jnp.all(jnp.isfinite(ravel_pytree(params)[0])),
        }
        if jnp.iscomplexobj(e_loc):
            stats["energy_imag"] = jnp.mean(e_loc.imag)  # ⟨Im E_loc⟩: zero but for noise (H is Hermitian)
        if diag_shift is not None:
            stats["diag_shift"] = diag_shift(state.step)
        if report_width:
            stats["width_scale"] = jnp.mean(chains.width)
        return new_state, stats

    return step
