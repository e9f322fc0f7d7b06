"""The VMC step (one compiled function per iteration) and the host loop around it.

``make_train_step(problem)`` returns ``step(state, key) -> (state, stats)``: sampling,
local energies, the gradient or SR direction and the optax update, all in one ``jax.jit``.
The host loop only folds keys, applies the non-finite policy and hands each step to a
callback (the run directory and the progress display live outside this module).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import struct
from jax.flatten_util import ravel_pytree

from nqs_cli.vmc import sr
from nqs_cli.vmc.sampler import ChainState, init_chains, make_sampler
from nqs_cli.vmc.stats import statistics


@struct.dataclass
class VMCState:
    step: jax.Array  # int, iterations done
    params: Any
    opt_state: Any
    chains: ChainState


class RunError(RuntimeError):
    """The run failed (exit code 1), e.g. a non-finite energy under on_nonfinite = "stop"."""


def make_optimizer(cfg) -> optax.GradientTransformation:
    opt = cfg.optimizer
    if opt.kind == "adam":
        return optax.adam(opt.learning_rate)
    return optax.sgd(opt.learning_rate)


def root_keys(seed: int):
    """Named keys: (params, chains, steps). Step t uses fold_in(steps, t)."""
    k_params, k_chains, k_steps = jax.random.split(jax.random.key(seed), 3)
    return k_params, k_chains, k_steps


def init_state(problem, seed: int) -> VMCState:
    k_params, k_chains, _ = root_keys(seed)
    params = problem.init_params(k_params)
    chains = init_chains(problem.log_psi, params, problem.random_state, k_chains, problem.cfg.sampler.n_chains)
    opt_state = make_optimizer(problem.cfg).init(params)
    return VMCState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state, chains=chains)


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


def batched_local_energy(problem):
    """``(params, xs) -> E_loc (N,)``: in ``train.chunk_size`` blocks when that is set, else
    in the problem's own cache-sized blocks (``Problem.local_energy_block``), if any."""
    return chunked_map(problem.local_energy, problem.cfg.train.chunk_size or problem.local_energy_block)


def make_train_step(problem):
    """The compiled VMC iteration ``(state, key) -> (state, stats)``."""
    cfg = problem.cfg
    s = cfg.sampler
    n_per_chain = s.n_samples // s.n_chains
    sample = make_sampler(problem.log_psi, problem.rule, n_per_chain, s.n_discard_per_chain, s.sweep_size, problem.evaluator)
    tx = make_optimizer(cfg)
    sr_cfg = cfg.optimizer.sr
    batched_e_loc = batched_local_energy(problem)

    def step(state: VMCState, key):
        chains, samples, acceptance = sample(state.params, state.chains, key)
        flat = samples.reshape((-1, samples.shape[-1]))
        e_loc = batched_e_loc(state.params, flat)
        st = statistics(e_loc.reshape(samples.shape[:2]).real)
        flat_params, unravel = ravel_pytree(state.params)
        dense = sr_cfg is not None and sr.needs_dense_jacobian(sr_cfg.mode, sr_cfg.solver, flat.shape[0], flat_params.size)
        jac = problem.jacobian(state.params, flat, dense=dense, chunk_size=cfg.train.chunk_size)
        eps = sr.centered_energies(e_loc, flat_params.dtype)
        grad = sr.energy_gradient(jac, eps)
        if sr_cfg is None:
            direction = grad
        else:
            direction = sr.sr_direction(jac, eps, sr_cfg.diag_shift, sr_cfg.mode, sr_cfg.solver, sr_cfg.tol)
        updates, opt_state = tx.update(unravel(direction), state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = VMCState(step=state.step + 1, params=params, opt_state=opt_state, chains=chains)
        stats = {
            "energy": st.mean,
            "energy_error": st.error_of_mean,
            "variance": st.variance,
            "r_hat": st.r_hat,
            "tau_corr": st.tau_corr,
            "acceptance": acceptance,
            "grad_norm": jnp.linalg.norm(grad),
            "update_norm": jnp.linalg.norm(direction),
            "params_finite": jnp.all(jnp.isfinite(ravel_pytree(params)[0])),
        }
        return new_state, stats

    return step


@dataclass
class StepRecord:
    step: int
    stats: dict[str, float]
    wall_s: float


def first_nonfinite(stats: dict[str, float]) -> str | None:
    for name in ("energy", "variance", "grad_norm", "update_norm"):
        if not math.isfinite(stats[name]):
            return name
    if not stats["params_finite"]:
        return "parameters"
    return None


def run_loop(
    step_fn: Callable,
    state: VMCState,
    step_key: jax.Array,
    n_iter: int,
    on_step: Callable[[VMCState, StepRecord], None],
    on_nonfinite: str = "stop",
    patience: int = 5,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[VMCState, str]:
    """Run iterations ``state.step .. n_iter-1``; returns (state, status).

    status: "completed", or "interrupted" when ``should_stop()`` turned true. A non-finite
    step is never accepted: "stop" raises RunError naming the step and quantity (the caller
    keeps its last checkpoint); "revert" retries the step with a fresh key, up to ``patience``
    times in a row, counting every revert in the stats of the step that finally succeeds.
    """
    reverts_total = 0
    retries = 0
    while int(state.step) < n_iter:
        if should_stop():
            return state, "interrupted"
        t = int(state.step)
        key = jax.random.fold_in(step_key, t)
        if retries:
            key = jax.random.fold_in(key, 1_000_003 + retries)
        t0 = time.perf_counter()
        new_state, stats = step_fn(state, key)
        stats = {k: float(v) for k, v in jax.device_get(stats).items()}
        wall = time.perf_counter() - t0
        bad = first_nonfinite(stats)
        if bad is not None:
            if on_nonfinite == "stop":
                raise RunError(f"non-finite {bad} at step {t + 1} (on_nonfinite = \"stop\"); the last checkpoint is kept")
            retries += 1
            reverts_total += 1
            if retries > patience:
                raise RunError(f"non-finite {bad} at step {t + 1} persisted through {patience} reverts; giving up")
            continue
        retries = 0
        stats.pop("params_finite")
        stats["reverts"] = float(reverts_total)
        state = new_state
        on_step(state, StepRecord(step=t + 1, stats=stats, wall_s=wall))
    return state, "completed"
