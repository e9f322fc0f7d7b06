"""`nqs train` as a procedure: run directory, resume, checkpoints, signals, result.json.

This is the imperative shell around the pure step in ``train.py``. It never prints: it
talks to a ``reporter`` (see report.py) and raises ConfigError / RunDirError / RunError,
which the CLI turns into one line and an exit code.
"""

from __future__ import annotations

import math
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from nqs_cli import config as config_mod
from nqs_cli.run import distributed as dist
from nqs_cli.run import run_dir as rd
from nqs_cli.vmc.devices import check_chains, place_state
from nqs_cli.vmc.step import RunError, StepRecord, init_state, make_train_step, n_parameters, root_keys, run_loop

METRIC_KEYS = ("energy", "energy_error", "variance", "r_hat", "tau_corr", "acceptance")


@dataclass
class TrainOutcome:
    run_dir: Path
    status: str
    result: dict
    notes: list[str] = field(default_factory=list)


class StopFlag:
    """Set by SIGINT/SIGTERM or a deadline; checked between iterations."""

    def __init__(self, deadline: float | None = None):
        self.signal: int | None = None
        self.deadline = deadline
        self.reason: str | None = None
        self.last_step_s = 0.0

    def __call__(self) -> bool:
        if self.signal is not None:
            self.reason = signal.Signals(self.signal).name
            return True
        if self.deadline is not None and time.monotonic() + 1.5 * self.last_step_s + 1.0 > self.deadline:
            self.reason = "max-time"
            return True
        return False


def final_estimate(rows: list[dict], window: int, discard: int = 0) -> dict:
    """Mean energy over the last ``window`` iterations (after dropping the first ``discard``).

    The error is the larger of the spread of the iteration energies (std/√n) and the
    combined per-iteration Monte Carlo errors (√Σσ²/n).
    """
    rows = [r for r in rows if r["step"] > discard][-window:]
    if not rows:
        return {"energy": None, "energy_error": None, "variance": None, "estimate": "no iterations"}
    e = np.array([r["energy"] for r in rows])
    err = np.array([r["energy_error"] for r in rows])
    var = np.array([r["variance"] for r in rows])
    n = len(rows)
    spread = float(np.std(e, ddof=1) / math.sqrt(n)) if n > 1 else float(err[0])
    combined = float(math.sqrt(np.sum(err**2)) / n)
    return {
        "energy": float(np.mean(e)),
        "energy_error": max(spread, combined),
        "variance": float(np.mean(var)),
        "estimate": f"mean over the last {n} iterations (steps {rows[0]['step']}..{rows[-1]['step']})",
    }


def estimate_window(cfg) -> int:
    """The final estimate averages the last 20% of the iterations, at most train.final_window."""
    return min(cfg.train.final_window, max(1, cfg.train.n_iter // 5))


def relative_error(energy, exact):
    if energy is None or exact is None or exact == 0:
        return None
    return abs((energy - exact) / exact)


def prepare_run_dir(cfg, config_text: str, out: Path | None, force: bool, reporter) -> tuple[Path, bool]:
    """Create a new run directory, or validate an existing one for resume. Returns (dir, resuming)."""
    resolved = config_mod.to_dict(cfg)
    if out is None:
        path = rd.new_run_dir(Path("runs"), cfg.name)
    else:
        path = Path(out)
    if path.exists() and not path.is_dir():
        raise rd.RunDirError(f"{path}: exists and is not a directory")
    resuming = path.exists() and any(rd.list_checkpoints(path))
    if resuming:
        old = rd.read_json(path / "resolved.json")
        diff = rd.config_diff(old, resolved)
        problem_changes = [d for d in diff if rd.touches_problem(d[0])]
        if problem_changes and not force:
            keys = ", ".join(d[0] for d in problem_changes)
            raise rd.RunDirError(f"{path}: resume would change the problem ({keys}); rerun with --force to accept, or use another --out")
        if diff:
            reporter.config_diff(diff)
    elif rd.read_metrics(path / "metrics.jsonl"):
        raise rd.RunDirError(f"{path}: has metrics but no readable checkpoint; refusing to overwrite it")
    path.mkdir(parents=True, exist_ok=True)
    return path, resuming


def open_run(cfg, config_text: str, out: Path | None, force: bool, template, chash: str, reporter):
    """Create or reopen the run directory: (path, restored state, its checkpoint bytes), the
    last two None for a new run."""
    path, resuming = prepare_run_dir(cfg, config_text, out, force, reporter)
    if not resuming:
        return path, None, None
    restored, _, data = rd.newest_checkpoint(path, template, chash, warn=reporter.warn)
    if restored is None:
        raise rd.RunDirError(f"{path}: no readable checkpoint to resume from")
    return path, restored, data


def train(cfg, config_text: str, *, out: Path | None, n_iter: int | None, reporter, argv: list[str], force: bool = False, max_time_s: float | None = None) -> TrainOutcome:
    """Train ``cfg``. In a multi-process run every process calls this; only process 0 (the
    lead) touches the run directory, and the others receive its decisions by broadcast."""
    from nqs_cli.setup.problem import build_problem

    start_wall = time.monotonic()
    lead = dist.is_lead()
    if n_iter is not None:
        import dataclasses

        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, n_iter=n_iter))
    check_chains(cfg.sampler.n_chains)
    resolved = config_mod.to_dict(cfg)
    chash = rd.problem_hash(resolved)
    problem = build_problem(cfg)
    state = init_state(problem, cfg.seed)
    n_params = n_parameters(state.params)

    path, restored, ckpt, failure = None, None, None, ""
    if lead:
        try:
            path, restored, ckpt = open_run(cfg, config_text, out, force, state, chash, reporter)
        except rd.RunDirError as exc:
            failure = str(exc)
    failure = dist.broadcast_text(failure)
    if failure:
        raise rd.RunDirError(failure if lead else f"process 0: {failure}")
    ckpt = dist.broadcast_bytes(ckpt or b"") or None
    if ckpt is not None:
        state = restored if lead else rd.restore_checkpoint(ckpt, state, chash, "checkpoint from process 0")
    if lead:
        if ckpt is not None:
            rd.truncate_metrics(path / "metrics.jsonl", int(state.step))
            reporter.resumed(path, int(state.step), cfg.train.n_iter)
        else:
            (path / "config.toml").write_text(config_text)
            (path / "metrics.jsonl").write_text("")
        rd.atomic_write_json(path / "resolved.json", resolved)
        meta = rd.meta(argv, cfg.seed)
        meta.update(n_params=n_params, config_hash=chash, n_processes=dist.process_count())
        rd.atomic_write_json(path / "meta.json", meta)
    state = place_state(state)

    exact = problem.exact_energy() if cfg.train.exact_energy and lead else None
    reporter.start(cfg, problem, path, n_params, exact)

    step_fn = jax.jit(make_train_step(problem))
    _, _, k_steps = root_keys(cfg.seed)
    metrics_path = None if path is None else path / "metrics.jsonl"
    compile_s = None
    iter_times: list[float] = []
    stop = StopFlag(None if max_time_s is None else start_wall + max_time_s)
    last_saved = int(state.step)

    def checkpoint(s, final: bool = False):
        host = dist.to_host(s)  # a collective when the chains span processes
        if lead:
            rd.save_checkpoint(path, host, chash, final=final)

    def on_step(new_state, rec: StepRecord):
        nonlocal compile_s, last_saved
        if compile_s is None:
            compile_s = rec.wall_s
        else:
            iter_times.append(rec.wall_s)
        stop.last_step_s = rec.wall_s
        row = {"step": rec.step, **{k: rec.stats[k] for k in METRIC_KEYS}, "wall_s": rec.wall_s}
        row.update({k: v for k, v in rec.stats.items() if k not in row})
        if lead:
            rd.append_metrics(metrics_path, row)
        if rec.step % cfg.train.checkpoint_every == 0:
            checkpoint(new_state)
            last_saved = rec.step
        reporter.step(row, exact)

    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        stop.signal = signum

    for s in previous:
        signal.signal(s, handler)
    status = "completed"
    try:
        state, status = run_loop(
            step_fn, state, k_steps, cfg.train.n_iter, on_step,
            on_nonfinite=cfg.train.on_nonfinite, patience=cfg.train.nonfinite_patience,
            should_stop=lambda: dist.any_process(stop()),
        )
    except RunError as exc:
        if lead:
            write_result(path, cfg, "diverged", exact, compile_s, iter_times, int(state.step), reason=str(exc))
        raise
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if int(state.step) != last_saved or status == "completed":
        checkpoint(state, final=status == "completed")
    reason = (stop.reason or "stopped by another process") if status == "interrupted" else None
    if status == "completed" and cfg.is_continuous:
        write_observables(path, problem, state)
    if not lead:
        return TrainOutcome(run_dir=path, status=status, result={"status": status, "reason": reason})
    result = write_result(path, cfg, status, exact, compile_s, iter_times, int(state.step), reason=reason)
    return TrainOutcome(run_dir=path, status=status, result=result, notes=list(cfg.notes))


def write_observables(path: Path, problem, state) -> None:
    """Density profile (trap) or g(r) (box) from one more sampling pass of the final state."""
    from nqs_cli.systems.continuum.observables import observables
    from nqs_cli.vmc.sampler import make_sampler

    s = problem.cfg.sampler
    sample = jax.jit(make_sampler(problem.log_psi, problem.rule, 4 * s.n_samples // s.n_chains, s.n_discard_per_chain, s.sweep_size, problem.evaluator))
    _, samples, _ = sample(state.params, state.chains, jax.random.key(problem.cfg.seed + 7))
    # chain-major order keeps each chain's samples consecutive, as the blocking errors assume
    flat = dist.to_host(samples).reshape(-1, samples.shape[-1])
    if dist.is_lead():
        rd.atomic_write_json(path / "observables.json", observables(problem.cfg, flat))


def write_result(path: Path, cfg, status: str, exact, compile_s, iter_times, step: int, reason: str | None = None) -> dict:
    rows = rd.read_metrics(path / "metrics.jsonl")
    est = final_estimate(rows, estimate_window(cfg))
    last = rows[-1] if rows else {}
    result = {
        "status": status,
        **est,
        "exact_energy": exact,
        "relative_error": relative_error(est["energy"], exact),
        "n_iter": step,
        "n_iter_target": cfg.train.n_iter,
        "r_hat": last.get("r_hat"),
        "acceptance": last.get("acceptance"),
        "seconds_per_iteration": float(np.median(iter_times)) if iter_times else None,
        "compile_seconds": compile_s,
    }
    if reason:
        result["reason"] = reason
    rd.atomic_write_json(path / "result.json", result)
    return result
