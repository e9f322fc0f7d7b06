"""`nqs evaluate`: fixed parameters from a run directory, fresh chains, long sampling."""

from __future__ import annotations

from pathlib import Path

import jax

from nqs_cli.config import Config, ConfigError, from_dict, to_dict
from nqs_cli.run import checkpoints as ck
from nqs_cli.run import run_dir as rd
from nqs_cli.run.estimates import relative_error
from nqs_cli.run.files import RunDirError, atomic_write_json, read_json
from nqs_cli.setup import build_problem, build_training
from nqs_cli.vmc.stats import statistics

EVAL_DISCARD_SWEEPS = 100


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


def evaluate(path: Path, n_samples: int | None, seed: int | None = None, warn=lambda msg: None) -> dict:
    """Energy ± error, variance, R̂, τ of the newest checkpoint's parameters; writes evaluation.json."""
    cfg = load_run_config(path)
    training = build_training(cfg, build_problem(cfg))
    template = training.init_state(cfg.seed)
    state, ckpt, _ = ck.newest_checkpoint(path, template, rd.problem_hash(to_dict(cfg)), warn=warn)
    if state is None:
        raise RunDirError(f"{path}: no readable checkpoint to evaluate")
    s = cfg.sampler
    n_samples = n_samples or 8 * s.n_samples
    n_per_chain = -(-n_samples // s.n_chains)
    seed = cfg.seed + 1_000_003 if seed is None else seed
    k_chains, k_sample = jax.random.split(jax.random.key(seed))
    chains = training.fresh_chains(state.params, k_chains)
    sample = jax.jit(training.sampler(n_per_chain, EVAL_DISCARD_SWEEPS))
    _, samples, acceptance = sample(state.params, chains, k_sample)
    e_loc = jax.jit(training.local_energies)(state.params, samples.reshape((-1, samples.shape[-1])))
    stats = statistics(e_loc.reshape(samples.shape[:2]).real).to_dict()
    exact = None
    result_path = path / "result.json"
    if result_path.exists():
        exact = read_json(result_path).get("exact_energy")
    out = {
        **stats,
        "relative_error": relative_error(stats["energy"], exact),
        "exact_energy": exact,
        "acceptance": float(acceptance),
        "n_samples": n_per_chain * s.n_chains,
        "n_chains": s.n_chains,
        "checkpoint": ckpt.name,
        "step": int(state.step),
        "seed": seed,
    }
    atomic_write_json(path / "evaluation.json", out)
    return out
