"""`nqs evaluate`: fixed parameters from a run directory, fresh chains, long sampling."""

from __future__ import annotations

from pathlib import Path

import jax

from nqs_cli import config as config_mod
from nqs_cli.run import run_dir as rd

EVAL_DISCARD_SWEEPS = 100


def load_run_config(path: Path):
    """The resolved config stored in a run directory (round-trips through the validator)."""
    if not path.is_dir():
        raise rd.RunDirError(f"{path}: not a run directory")
    resolved = rd.read_json(path / "resolved.json")
    if not isinstance(resolved, dict):
        raise rd.RunDirError(f"{path / 'resolved.json'}: not a resolved config")
    try:
        return config_mod.from_dict(resolved, source=str(path / "resolved.json"), default_name=path.name)
    except config_mod.ConfigError as exc:
        raise rd.RunDirError(str(exc)) from None


def evaluate(path: Path, n_samples: int | None, seed: int | None = None, warn=lambda msg: None) -> dict:
    """Energy ± error, variance, R̂, τ of the newest checkpoint's parameters; writes evaluation.json."""
    from nqs_cli.setup.problem import build_problem
    from nqs_cli.run.training import relative_error
    from nqs_cli.vmc.sampler import init_chains, make_sampler
    from nqs_cli.vmc.stats import statistics
    from nqs_cli.vmc.step import batched_local_energy, init_state

    cfg = load_run_config(path)
    problem = build_problem(cfg)
    template = init_state(problem, cfg.seed)
    state, ckpt, _ = rd.newest_checkpoint(path, template, rd.problem_hash(config_mod.to_dict(cfg)), warn=warn)
    if state is None:
        raise rd.RunDirError(f"{path}: no readable checkpoint to evaluate")
    s = cfg.sampler
    n_samples = n_samples or 8 * s.n_samples
    n_per_chain = -(-n_samples // s.n_chains)
    seed = cfg.seed + 1_000_003 if seed is None else seed
    k_chains, k_sample = jax.random.split(jax.random.key(seed))
    chains = init_chains(problem.log_psi, state.params, problem.random_state, k_chains, s.n_chains)
    sample = jax.jit(make_sampler(problem.log_psi, problem.rule, n_per_chain, EVAL_DISCARD_SWEEPS, s.sweep_size, problem.evaluator))
    _, samples, acceptance = sample(state.params, chains, k_sample)
    e_loc = jax.jit(batched_local_energy(problem))(state.params, samples.reshape((-1, samples.shape[-1])))
    st = statistics(e_loc.reshape(samples.shape[:2]).real)
    stats = st.to_dict()
    exact = None
    result_path = path / "result.json"
    if result_path.exists():
        exact = rd.read_json(result_path).get("exact_energy")
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
    rd.atomic_write_json(path / "evaluation.json", out)
    return out
