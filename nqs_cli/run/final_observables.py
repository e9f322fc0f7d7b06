"""The observables at the end of a run, after result.json holds the energy: measured on the
final samples into observables.json, compared with the exact ground state's when it is within
reach, and measured again by a rerun when they failed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp

from nqs_cli.config import Config
from nqs_cli.run import distributed as dist
from nqs_cli.run import observable_check
from nqs_cli.run.evaluation import final_estimate_seed, sample_energy
from nqs_cli.run.files import atomic_write_json, read_json_object
from nqs_cli.run.measure import EXACT_BUDGET, failure_text, measure, measure_exact
from nqs_cli.setup import Training
from nqs_cli.vmc.step import VMCState, final_params

def measure_observables(path: Path, cfg: Config, training: Training, state: VMCState, kept: dict, reporter) -> dict:
    """observables.json from the final samples, after result.json holds the energy: {name:
    error} of the observables that failed (each also said on stderr), {} when all were measured."""
    params = jax.tree_util.tree_map(jnp.asarray, dist.to_host(final_params(state)))
    source = "final parameters, fresh chains" + (" (the samples of the final estimate)" if cfg.train.final_samples != 0 else "")
    data = measure(cfg, training, params, kept["samples"], kept["e_loc"], progress=reporter.phase)
    failed = data.get("failed", {})
    atomic_write_json(path / "observables.json", {"source": source, "step": int(state.step), **data})
    for name, why in failed.items():
        reporter.warn(f"{path}: observable {name} failed ({why}); the energy is in result.json")
    return failed


def compare_with_exact(path: Path, cfg: Config, training: Training, failed: dict) -> str | None:
    """A lattice run within reach of exact diagonalisation (and of EXACT_BUDGET): the exact
    ground state's observables (those measured, not ``failed``) into exact_observables.json, and
    result.json's warning when the measured ones deviate (run/observable_check)."""
    names = tuple(n for n in cfg.observables.names if n not in failed)
    if cfg.is_continuous or not names:
        return None
    cfg = dataclasses.replace(cfg, observables=dataclasses.replace(cfg.observables, names=names))
    try:
        exact = measure_exact(cfg, training.problem, budget=EXACT_BUDGET)
    except Exception as exc:  # noqa: BLE001 — the comparison is a check: its failure is said, the run stands
        return f"the observables could not be compared with the exact ground state's ({failure_text(exc)})"
    if exact is None:
        return None
    atomic_write_json(path / "exact_observables.json", exact)
    return observable_check.warning(observable_check.deviations(read_json_object(path / "observables.json"), exact))


def retry_observables(path: Path, cfg: Config, training: Training, state: VMCState, finished: dict, reporter) -> dict:
    """A finished run whose observables failed: the final parameters sampled again with the
    final estimate's seed and size, the observables measured, result.json updated."""
    params = jax.tree_util.tree_map(jnp.asarray, final_params(state))
    n = int(finished.get("final_samples") or 4 * cfg.sampler.n_samples)
    kept: dict = {}
    sample_energy(training, params, jax.random.key(final_estimate_seed(cfg.seed)), n, n, start=state.chains, keep=kept)
    failed = measure_observables(path, cfg, training, state, kept, reporter)
    result = {k: v for k, v in finished.items() if k != "observables_failed"}
    result["warnings"] = [w for w in result.get("warnings", []) if not w.startswith(OBSERVABLES_FAILED)]
    if failed:
        result["observables_failed"] = failed
        result["warnings"].append(observables_warning(failed))
    atomic_write_json(path / "result.json", result)
    return result


OBSERVABLES_FAILED = "observables failed:"


def observables_warning(failed: dict) -> str:
    return f"{OBSERVABLES_FAILED} {', '.join(failed)} (see observables_failed); rerun the same command to measure them again"
