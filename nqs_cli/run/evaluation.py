"""The energy of fixed parameters from fresh, thermalised chains: the final estimate of a
training run and `nqs evaluate`.

Sampling goes in passes that continue the same chains; after each pass the statistics of all
samples so far (autocorrelation-corrected, per chain) are compared with the target error, so
the estimate is as precise as asked for, within ``max_samples``.

The V-score (Wu et al., Science 386, 296 (2024)) is N·Var(E)/(E − E∞)², N the number of
sites or particles. E∞ is the infinite-temperature energy: Tr H / dim of the sampled sector on
a lattice (exact, from the sector's marginals); 0 for particles in continuous space, where
the trace diverges (the convention of that paper for continuous systems).
"""

from __future__ import annotations

import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from nqs_cli.run.compile_clock import compile_seconds
from nqs_cli.setup import Training
from nqs_cli.systems.lattice.operators import BondHamiltonian
from nqs_cli.vmc.stats import statistics

DISCARD_SWEEPS = 100  # thermalisation sweeps of fresh chains
PASS_FACTOR = 8  # samples per pass: this many times the training n_samples
FINAL_SEED_OFFSET = 1_000_003  # the final estimate of training samples with seed + this


def final_estimate_seed(seed: int) -> int:
    """The seed of a training run's final estimate (and of a rerun that measures its observables)."""
    return seed + FINAL_SEED_OFFSET


def evaluation_seed(seed: int, earlier: list[int]) -> int:
    """The default seed of `nqs evaluate`: one above the final estimate's and every earlier
    evaluation's seed, so that each evaluation samples new chains and is an independent check."""
    return max([final_estimate_seed(seed), *earlier]) + 1


def infinite_temperature_energy(training: Training) -> float:
    ham = training.problem.hamiltonian
    if isinstance(ham, BondHamiltonian):
        return ham.infinite_temperature_energy(training.problem.space)
    return 0.0


def v_score(energy: float, variance: float, n_units: int, e_inf: float) -> float | None:
    gap = energy - e_inf
    return None if gap == 0 else float(n_units * variance / gap**2)


jitted_statistics = jax.jit(statistics)  # one program per shape (op by op it compiles every operation anew)


class EvaluationInterrupted(Exception):
    """``should_stop`` answered yes between two passes of ``sample_energy``."""


def sample_energy(training: Training, params, key, n_per_pass: int, max_samples: int, target_error: float | None = None, start=None, keep=None,
                  should_stop=None, progress=None) -> dict:
    """Statistics of E_loc under |ψ|² for ``params``: new chains with their own keys,
    DISCARD_SWEEPS sweeps of thermalisation, then passes of ``n_per_pass`` samples until the
    error is ≤ ``target_error`` (one pass when None) or ``max_samples`` are drawn.

    The chains start from the configurations of ``start`` (the training's chains, already in
    the typical set of ψ) when given, else from random configurations, which in a strong trap
    or a dilute box may take far longer than DISCARD_SWEEPS sweeps to reach it. ``keep``, a
    dict, receives the samples (n_chains, n_per_chain, n_dof) and their local energies
    (n_chains, n_per_chain) for the observables. ``should_stop()`` is asked before each pass;
    a yes raises EvaluationInterrupted. ``progress(info)`` is told after each pass: samples drawn,
    the most that may be drawn, the error so far and its target, the seconds per pass and the
    predicted seconds left (the samples the error bar still needs, from its 1/√n fall)."""
    n_chains = training.n_chains
    per_chain = max(1, -(-n_per_pass // n_chains))
    k_chains, k_first, k_more = jax.random.split(key, 3)
    chains = jax.jit(training.fresh_chains)(params, k_chains) if start is None else jax.jit(training.restart_chains)(params, start)
    # one sampler program for all passes (the first thermalises, the others continue) and one for
    # the local energies: apart, the sampler's program is the same across a scan of couplings
    # (moves and ψ do not depend on them) and comes from the compilation cache
    sample = jax.jit(training.sampler(per_chain, None))
    energies = jax.jit(training.local_energies)
    blocks, accepted, passes, kept = [], [], 0, []
    started, compiled_before = time.monotonic(), compile_seconds()
    while True:
        if should_stop is not None and should_stop():
            raise EvaluationInterrupted
        sweeps = DISCARD_SWEEPS if passes == 0 else 0
        chains, samples, acceptance = sample(params, chains, jax.random.fold_in(k_more if passes else k_first, passes), sweeps)
        e_loc = energies(params, samples.reshape((-1, samples.shape[-1])))
        blocks.append(np.asarray(e_loc.real).reshape(samples.shape[:2]))
        if keep is not None:
            kept.append(np.asarray(samples))
        accepted.append(float(acceptance))
        passes += 1
        st = jitted_statistics(jnp.asarray(np.concatenate(blocks, axis=1))).to_dict()
        drawn = passes * per_chain * n_chains
        done = target_error is None or st["energy_error"] <= target_error or drawn + per_chain * n_chains > max_samples
        if progress is not None:  # the pass's own time, without compilation, predicts the next
            now, compiled = time.monotonic(), compile_seconds()
            pass_s = max(now - started - (compiled - compiled_before), 0.0)
            started, compiled_before = now, compiled
            needed = drawn if done or not target_error else min(max_samples, drawn * (st["energy_error"] / target_error) ** 2)
            left = 0.0 if done else pass_s * max(1, math.ceil((needed - drawn) / (per_chain * n_chains)))
            progress({"drawn": drawn, "max_samples": max_samples, "error": st["energy_error"], "target": target_error, "pass_s": pass_s, "left_s": left})
        if done:
            break
    if keep is not None:
        keep.update(samples=np.concatenate(kept, axis=1), e_loc=np.concatenate(blocks, axis=1))
    return {**st, "acceptance": float(np.mean(accepted)), "n_samples": drawn, "n_chains": n_chains, "discard_sweeps": DISCARD_SWEEPS,
            "chains_from": "random configurations" if start is None else "the training chains"}
