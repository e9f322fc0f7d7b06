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


class PassPrograms:
    """The compiled programs of ``sample_energy``'s passes of ``per_chain`` samples a chain: the
    sampler (its thermalisation sweeps an argument, so one program for all passes), the local
    energies and the chains' restart. ``ahead(params, chains)`` compiles them in a background
    thread while training runs, so that the end of a run only runs them; until then, or for
    arguments of other shapes, they compile when first called."""

    def __init__(self, training: Training, per_chain: int):
        self.per_chain = per_chain
        self.sample = jax.jit(training.sampler(per_chain, None))
        self.energies = jax.jit(training.local_energies)
        self.restart = jax.jit(training.restart_chains)
        self._ahead = None

    def ahead(self, params, chains) -> None:
        import concurrent.futures

        specs = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), (params, chains))
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="nqs-compile-ahead")
        self._ahead = pool.submit(self._compile, *specs)
        pool.shutdown(wait=False)

    def _compile(self, params, chains) -> tuple:
        restarted = jax.eval_shape(self.restart, params, chains)
        key = jax.eval_shape(lambda: jax.random.key(0))
        flat = jax.ShapeDtypeStruct((restarted.x.shape[0] * self.per_chain, restarted.x.shape[1]), restarted.x.dtype)
        return (self.restart.lower(params, chains).compile(), self.sample.lower(params, restarted, key, 0).compile(),
                self.energies.lower(params, flat).compile())

    def compiled(self) -> tuple:
        """(restart, sample, energies): the programs compiled ahead where that succeeded, else the
        jitted functions (which compile on their first call)."""
        jitted = (self.restart, self.sample, self.energies)
        if self._ahead is None:
            return jitted
        try:
            ahead = self._ahead.result()
        except Exception:  # noqa: BLE001 — compiling ahead only saves time: the jitted functions do the same work
            return jitted
        return tuple(AheadOrJit(a, j) for a, j in zip(ahead, jitted))


class AheadOrJit:
    """A program compiled ahead for the arguments' expected shapes, and its jitted function for
    any other shapes (the compiled program refuses them with a TypeError before running)."""

    def __init__(self, compiled, jitted):
        self.compiled, self.jitted = compiled, jitted

    def __call__(self, *args):
        if self.compiled is not None:
            try:
                return self.compiled(*args)
            except TypeError:
                self.compiled = None
        return self.jitted(*args)


def sample_energy(training: Training, params, key, n_per_pass: int, max_samples: int, target_error: float | None = None, start=None, keep=None,
                  should_stop=None, progress=None, programs: PassPrograms | None = None) -> dict:
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
    predicted seconds left (the samples the error bar still needs, from its 1/√n fall).
    ``programs``: those of passes of this size, perhaps compiled ahead (see PassPrograms)."""
    n_chains = training.n_chains
    per_chain = max(1, -(-n_per_pass // n_chains))
    if programs is None or programs.per_chain != per_chain:
        programs = PassPrograms(training, per_chain)
    # the sampler apart from the local energies: its program is the same across a scan of
    # couplings (moves and ψ do not depend on them) and comes from the compilation cache
    restart, sample, energies = programs.compiled()
    k_chains, k_first, k_more = jax.random.split(key, 3)
    chains = jax.jit(training.fresh_chains)(params, k_chains) if start is None else restart(params, start)
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
