"""`nqs evaluate`: fixed parameters from a run directory, fresh chains, long sampling."""

from __future__ import annotations

from pathlib import Path

import jax

from nqs_cli.config import Config, ConfigError, from_dict, to_dict
from nqs_cli.run import checkpoints as ck
from nqs_cli.run import run_dir as rd
from nqs_cli.run.estimates import estimate_window, relative_error
from nqs_cli.run.evaluation import PASS_FACTOR, evaluation_seed, infinite_temperature_energy, sample_energy, v_score
from nqs_cli.run.files import RunDirError, atomic_write_json, read_json, read_json_object
from nqs_cli.run.measure import measure
from nqs_cli.setup import build_problem, build_training
from nqs_cli.vmc.step import final_params

def load_run_config(path: Path) -> Config:
    """The resolved config stored in a run directory (round-trips through the validator)."""
    if not path.is_dir():
        raise RunDirError(f"{path}: not a run directory")
    resolved = read_json(path / "resolved.json")
    if not isinstance(resolved, dict):
        raise RunDirError(f"{path / 'resolved.json'}: not a resolved config")
    try:
        return from_dict(resolved, source=str(path / "resolved.json"), default_name=path.name)
    except ConfigError as exc:
        raise RunDirError(str(exc)) from None


def evaluate(path: Path, n_samples: int | None, seed: int | None = None, warn=lambda msg: None, running: bool = False) -> dict:
    """Energy ± error, variance, R̂, τ, V-score of the newest checkpoint's parameters from fresh
    chains (``write_evaluation`` stores it as evaluation.json). Without ``n_samples``: passes of 8 × the training
    n_samples until the error bar is no larger than the training estimate's (within 2 × the
    estimate window × n_samples)."""
    holder = rd.lock_holder(path) if path.is_dir() else None
    if holder is not None and not running:
        raise RunDirError(f"{path}: still training (nqs train, pid {holder.get('pid')} on {holder.get('host')}); evaluate it when that ends, "
                          "or with --running to evaluate its newest checkpoint as a mid-run snapshot")
    cfg = load_run_config(path)
    training = build_training(cfg, build_problem(cfg))
    template = training.init_state(cfg.seed)
    state, ckpt, _ = ck.newest_checkpoint(path, template, rd.problem_hash(to_dict(cfg)), warn=warn)
    if state is None:
        raise RunDirError(f"{path}: no readable checkpoint to evaluate")
    s = cfg.sampler
    result = read_json_object(path / "result.json") if (path / "result.json").exists() else {}
    exact = result.get("exact_energy")
    if n_samples is None:
        target = result.get("trajectory_energy_error", result.get("energy_error"))
        max_samples = 2 * estimate_window(cfg.train.n_iter, cfg.train.final_window) * s.n_samples
        n_per_pass = min(PASS_FACTOR * s.n_samples, max_samples)
    else:
        target, max_samples, n_per_pass = None, n_samples, n_samples
    earlier = earlier_seeds(path)
    seed_rule = "--seed" if seed is not None else "one above the final estimate's and every earlier evaluation's seed"
    seed = evaluation_seed(cfg.seed, earlier) if seed is None else seed
    kept: dict = {}
    params = final_params(state)
    stats = sample_energy(training, params, jax.random.key(seed), n_per_pass, max_samples, target, start=state.chains, keep=kept)
    observables = measure(cfg, training, params, kept["samples"], kept["e_loc"]) if cfg.observables.names else None
    e_inf = infinite_temperature_energy(training)
    n_units = cfg.space.n_particles if cfg.is_continuous else cfg.n_sites
    out = {
        **stats,
        "relative_error": relative_error(stats["energy"], exact),
        "exact_energy": exact,
        "v_score": v_score(stats["energy"], stats["variance"], n_units, e_inf),
        "e_inf": e_inf,
        "target_error": target,
        "checkpoint": ckpt.name,
        "step": int(state.step),
        "seed": seed,
        "seed_rule": seed_rule,
        "snapshot": None if holder is None else f"mid-run: step {int(state.step)} of {cfg.train.n_iter}, while nqs train (pid {holder.get('pid')}) went on",
        "earlier_seeds": earlier,
    }
    if observables is not None:
        out["observables"] = {"source": "nqs evaluate", "step": int(state.step), **observables}
        if observables.get("failed"):
            out["observables_failed"] = observables["failed"]
    return out


def earlier_seeds(path: Path) -> list[int]:
    """The seeds of the earlier evaluations of this run, as evaluation.json records them."""
    if not (path / "evaluation.json").exists():
        return []
    try:
        last = read_json_object(path / "evaluation.json")
    except RunDirError:
        return []
    seeds = [last.get("seed"), *(last.get("earlier_seeds") or [])]
    return sorted({s for s in seeds if isinstance(s, int) and not isinstance(s, bool)})


def write_evaluation(path: Path, out: dict) -> None:
    """evaluation.json (the energy) and observables.json (the observables, when measured)."""
    out = dict(out)
    observables = out.pop("observables", None)
    atomic_write_json(path / "evaluation.json", out)  # the energy first
    if observables is not None:
        atomic_write_json(path / "observables.json", observables)
