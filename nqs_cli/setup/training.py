"""The engine of one run, built once from the config and the problem: optimiser, sampler,
local energies, the SR plan (decided here, from the sizes) and the uncompiled step."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import jax
import optax

from nqs_cli.config import Config, average_iterations
from nqs_cli.setup.problem import Problem
from nqs_cli.vmc import sr
from nqs_cli.vmc.sampler import ChainState, init_chains, make_sampler
from nqs_cli.vmc.step import VMCState, chunked_map, gradient_direction, init_state, make_step, root_keys


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    opt = cfg.optimizer
    if opt.kind == "adam":
        return optax.adam(opt.learning_rate)
    return optax.sgd(opt.learning_rate)


def count_parameters(problem: Problem) -> int:
    """The number of parameters, from shapes alone (no initialisation runs)."""
    shapes = jax.eval_shape(problem.init_params, jax.random.key(0))
    return sum(math.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(shapes))


def problem_sampler(problem: Problem, sweep_size: int, n_per_chain: int, n_discard: int, target_acceptance: float | None = None) -> Callable:
    return make_sampler(problem.log_psi, problem.rule, n_per_chain, n_discard, sweep_size, problem.evaluator, target_acceptance)


@dataclass(frozen=True, eq=False)
class Training:
    problem: Problem
    tx: optax.GradientTransformation
    n_chains: int
    sweep_size: int
    target_acceptance: float | None  # adaptive proposal width (Gaussian moves), None: fixed
    sr_plan: sr.SRPlan | None
    local_energies: Callable  # (params, xs (N, n_dof)) -> E_loc (N,)
    step: Callable  # (VMCState, key) -> (VMCState, stats), to be jitted
    memory: bool = False  # the state keeps the previous direction (SR momentum)
    average: int = 0  # iterations τ of the running parameter average (0: none)

    def sampler(self, n_per_chain: int, n_discard: int | None) -> Callable:
        """``sample(params, chains, key) -> (chains, samples, acceptance)`` with this run's rule (``n_discard = None``: ``sample(params, chains, key, n_discard)``, see make_sampler)."""
        return problem_sampler(self.problem, self.sweep_size, n_per_chain, n_discard, self.target_acceptance)

    def fresh_chains(self, params, key) -> ChainState:
        p = self.problem
        return init_chains(p.log_psi, params, p.random_state, key, self.n_chains)

    def restart_chains(self, params, chains: ChainState) -> ChainState:
        """The configurations of ``chains`` (and their proposal widths) as chains of ``params``."""
        x = jax.numpy.asarray(chains.x)
        lp = jax.vmap(self.problem.log_psi, (None, 0))(params, x)
        return ChainState(x=x, log_psi=lp, width=jax.numpy.asarray(chains.width, jax.numpy.real(lp).dtype))

    def init_state(self, seed: int) -> VMCState:
        k_params, k_chains, _ = root_keys(seed)
        params = self.problem.init_params(k_params)
        return init_state(params, self.fresh_chains(params, k_chains), self.tx, self.memory, self.average > 0)


def build_training(cfg: Config, problem: Problem) -> Training:
    """The optimiser, sampler, local energies and SR plan of ``cfg``; ValueError (naming the
    keys) when there is nothing variational to do."""
    if getattr(problem.hamiltonian, "max_conn", None) == 1:
        raise ValueError(
            "hamiltonian: H has no off-diagonal elements here (J = 0, or a lattice without bonds), so its ground state is a "
            "single configuration with nothing for VMC to learn, and Hamiltonian moves cannot move; `nqs exact` gives its energy"
        )
    s, sr_cfg = cfg.sampler, cfg.optimizer.sr
    tx = make_optimizer(cfg)
    plan = None
    if sr_cfg is not None:
        plan = sr.plan(sr_cfg.mode, sr_cfg.solver, s.n_samples, count_parameters(problem), structured=problem.fast.jacobian is not None,
                       diag_shift=sr_cfg.diag_shift)
    local_energies = chunked_map(problem.local_energy, cfg.train.chunk_size or problem.local_energy_block)
    target = s.target_acceptance or None
    sample = problem_sampler(problem, s.sweep_size, s.n_samples // s.n_chains, s.n_discard_per_chain, target)
    jacobian = partial(problem.jacobian, dense=plan is not None and plan.dense_jacobian, chunk_size=cfg.train.chunk_size)
    shift, direction = None, gradient_direction
    if plan is not None:
        shift = sr.shift_schedule(sr_cfg.diag_shift, sr_cfg.diag_shift_start or None, sr_cfg.diag_shift_steps)
        direction = sr.make_direction(plan, shift, sr_cfg.tol, sr_cfg.momentum)
    opt = cfg.optimizer
    average = average_iterations(cfg.train)
    return Training(
        problem=problem,
        tx=tx,
        n_chains=s.n_chains,
        sweep_size=s.sweep_size,
        target_acceptance=target,
        sr_plan=plan,
        local_energies=local_energies,
        step=make_step(sample, local_energies, jacobian, direction, tx, opt.warmup, opt.trust_region or None, shift, target is not None, average or None),
        memory=plan is not None and bool(sr_cfg.momentum),
        average=average,
    )
