"""`nqs train` as a procedure: run directory, resume, checkpoints, signals, result.json.

This is the imperative shell around the compiled step (vmc/step.py). It never prints: it
talks to a ``reporter`` (app/render.py) and raises ConfigError / RunDirError / RunError,
which the command layer turns into one line and an exit code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from nqs_cli.config import Config, to_dict
from nqs_cli.run import checkpoints as ck
from nqs_cli.run.compile_clock import compile_seconds
from nqs_cli.run import distributed as dist
from nqs_cli.run import run_dir as rd
from nqs_cli.run.estimates import estimate_window, final_estimate, final_warnings, history_warnings, relative_error, sampling_warnings
from nqs_cli.run.evaluation import DISCARD_SWEEPS, PASS_FACTOR, EvaluationInterrupted, PassPrograms, final_estimate_seed, infinite_temperature_energy, sample_energy, v_score
from nqs_cli.run.files import RunDirError, atomic_write_bytes, atomic_write_json, read_json_object, read_regular
from nqs_cli.run.final_observables import compare_with_exact, measure_observables, observables_warning, retry_observables
from nqs_cli.setup import Training, build_problem, build_training
from nqs_cli.setup.models import enlarge_hint
from nqs_cli.setup.observables import settle_observables
from nqs_cli.vmc.devices import check_chains, place_state
from nqs_cli.vmc.loop import Health, RunError, StepRecord, run_loop
from nqs_cli.vmc.step import VMCState, final_params, init_state, root_keys

FAILED = ("diverged", "failed")
METRIC_KEYS = ("energy", "energy_error", "variance", "r_hat", "tau_corr", "acceptance")


@dataclass
class TrainOutcome:
    run_dir: Path
    status: str
    result: dict
    notes: list[str] = field(default_factory=list)


EXIT_MARGIN_S = 1.0  # beyond the measured cost of the last writes: result.json, the interpreter's exit


class StopFlag:
    """Set by SIGINT/SIGTERM or a deadline; checked between iterations and between the passes of
    the final estimate. The deadline check predicts the next iteration (or pass) from
    ``last_step_s``, its time without compilation, and adds what stopping then costs: the final
    checkpoint (``save_s``, the slowest save so far) and EXIT_MARGIN_S."""

    def __init__(self, deadline: float | None = None, clock=time.monotonic):
        self.signal: int | None = None
        self.deadline = deadline
        self.clock = clock
        self.reason: str | None = None
        self.last_step_s = 0.0
        self.save_s = 0.0

    def __call__(self) -> bool:
        if self.signal is not None:
            self.reason = signal.Signals(self.signal).name
            return True
        if self.deadline is not None and self.clock() + 1.5 * self.last_step_s + self.save_s + EXIT_MARGIN_S > self.deadline:
            self.reason = "max-time"
            return True
        return False


@contextlib.contextmanager
def stop_signals(stop: StopFlag):
    """SIGINT/SIGTERM set ``stop.signal`` (the loop then checkpoints and returns) while inside."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum, frame):
        stop.signal = signum

    for s in previous:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def prepare_run_dir(cfg, out: Path | None, force: bool, reporter) -> tuple[Path, bool, rd.RunLock]:
    """Create a new run directory, or validate an existing one for resume; lock it.
    Returns (dir, resuming, lock)."""
    path = rd.new_run_dir(Path("runs"), cfg.name) if out is None else Path(out)
    rd.claim_directory(path)
    lock = rd.RunLock(path).acquire()
    try:
        if lock.stale:
            reporter.warn(f"{path}: taking over the lock of an nqs train that ended without releasing it "
                          f"(pid {lock.stale.get('pid')} on {lock.stale.get('host')}: killed or crashed)")
        rd.remove_temporaries(path)
        resuming = any(ck.list_checkpoints(path))
        if resuming:
            check_resume(path, to_dict(cfg), force, reporter)
        else:
            set_aside_orphans(path, "no checkpoint", reporter)
    except BaseException:
        lock.release()
        raise
    return path, resuming, lock


def check_resume(path: Path, resolved: dict, force: bool, reporter) -> None:
    """Refuse a resume that would change the problem (unless ``force``); show other changes."""
    old = read_json_object(path / "resolved.json", {})
    diff = rd.config_diff(old, resolved)
    problem_changes = [d for d in diff if rd.touches_problem(d[0])]
    if problem_changes and not force:
        keys = ", ".join(d[0] for d in problem_changes)
        raise RunDirError(f"{path}: resume would change the problem ({keys}); rerun with --force to start it anew "
                          "from the newest checkpoint's parameters, or use another --out")
    if diff:
        reporter.config_diff(diff)


def set_aside_orphans(path: Path, why: str, reporter) -> None:
    """A run that died before any usable checkpoint restarts from scratch: its metrics rows
    (which no checkpoint continues) are kept aside as metrics.jsonl.orphaned, said in one line."""
    metrics = path / "metrics.jsonl"
    if metrics.exists() and metrics.stat().st_size > 0:
        kept = rd.set_aside(metrics)
        reporter.warn(f"{path}: {why} to resume from; starting again, the earlier metrics rows are kept in {kept.name}")


def open_run(cfg, out: Path | None, force: bool, template, chash: str, reporter, valid=None):
    """Create or reopen the run directory: (path, restored state, its checkpoint bytes, lock),
    the state and bytes None for a new run."""
    path, resuming, lock = prepare_run_dir(cfg, out, force, reporter)
    if not resuming:
        return path, None, None, lock
    try:
        # --force: the problem changed on purpose; the newest checkpoint's parameters and chains
        # continue under the new definition if they fit it
        try:
            restored, _, data = ck.newest_checkpoint(path, template, None if force else chash, warn=reporter.warn,
                                                     seed=None if force else cfg.seed, valid=valid)
        except ck.ModelMismatch:
            if not force:
                raise
            restored, data = None, None  # --force: start again under the model built now
        if restored is None:
            for bad in ck.list_checkpoints(path):
                bad.rename(bad.with_name(bad.name + ".corrupt"))
            set_aside_orphans(path, "no readable checkpoint (set aside as *.corrupt)", reporter)
    except BaseException:
        lock.release()
        raise
    return path, restored, data, lock


def join_run(cfg: Config, out: Path | None, force: bool, state: VMCState, chash: str, reporter, valid=None):
    """Process 0 opens or resumes the run directory; every process receives the decision.
    Returns (path (None off the lead), state: the checkpoint's on resume, else ``state``,
    the directory's lock (None off the lead))."""
    lead = dist.is_lead()
    path, restored, ckpt, lock, failure = None, None, None, None, ""
    if lead:
        try:
            path, restored, ckpt, lock = open_run(cfg, out, force, state, chash, reporter, valid)
        except RunDirError as exc:
            failure = str(exc)
    failure = dist.broadcast_text(failure)
    if failure:
        raise RunDirError(failure if lead else f"process 0: {failure}")
    ckpt = dist.broadcast_bytes(ckpt or b"") or None
    if ckpt is not None:
        state = restored if lead else ck.restore_checkpoint(ckpt, state, None if force else chash, "checkpoint from process 0")
    dropped: list[dict] = []
    if lead:
        if ckpt is not None:
            dropped = rd.truncate_metrics(path / "metrics.jsonl", int(state.step))
            reporter.resumed(path, int(state.step), cfg.train.n_iter)
            for warning in history_warnings(rd.read_metrics(path / "metrics.jsonl"), int(state.step)):
                reporter.warn(f"{path}: {warning}")
        else:
            atomic_write_bytes(path / "metrics.jsonl", b"")
    return path, state, lock, dropped


def write_run_files(path: Path, config_files: dict[str, str], resolved: dict, argv: list[str], seed: int, n_params: int, chash: str) -> None:
    """The run's description, rewritten at every start: the config files (``{name: text}``:
    config.toml, the effective config, and config.given.toml, the file as given), resolved.json
    and meta.json."""
    for name, text in config_files.items():
        atomic_write_bytes(path / name, text.encode())
    atomic_write_json(path / "resolved.json", resolved)
    meta = rd.meta(argv, seed)
    meta.update(n_params=n_params, config_hash=chash, n_processes=dist.process_count())
    if (path / "init_from.json").exists():  # written once, at the warm start; a resume keeps it
        meta["init_from"] = read_json_object(path / "init_from.json", {})
    atomic_write_json(path / "meta.json", meta)


class StepLog:
    """What happens after each accepted step: a metrics row, a periodic checkpoint, progress."""

    def __init__(self, path: Path | None, chash: str, cfg: Config, reporter, exact, stop: StopFlag, step: int, replaced: dict | None = None):
        self.path, self.chash, self.every, self.seed = path, chash, cfg.train.checkpoint_every, cfg.seed
        self.learning_rate = cfg.optimizer.learning_rate
        self.sigma = cfg.sampler.sigma
        self.reporter, self.exact, self.stop = reporter, exact, stop
        self.compile_s: float | None = None
        self.iter_times: list[float] = []
        self.last_saved = step
        self.compiled = compile_seconds()
        self.replaced = {} if replaced is None else replaced  # step -> an earlier row of it; reproduced ones leave

    def checkpoint(self, state: VMCState, final: bool = False) -> None:
        started = time.monotonic()
        host = dist.to_host(state)  # a collective when the chains span processes
        if self.path is not None:
            ck.save_checkpoint(self.path, host, self.chash, final=final, seed=self.seed)
        self.stop.save_s = max(self.stop.save_s, time.monotonic() - started)

    def __call__(self, new_state: VMCState, rec: StepRecord) -> None:
        if self.compile_s is None:
            self.compile_s = rec.wall_s
        else:
            self.iter_times.append(rec.wall_s)
        compiled, self.compiled = self.compiled, compile_seconds()
        step_s = max(rec.wall_s - (self.compiled - compiled), 0.0)  # this iteration without compilation
        self.stop.last_step_s = step_s
        row = {"step": rec.step, **{k: rec.stats[k] for k in METRIC_KEYS}, "wall_s": rec.wall_s}
        row.update({k: v for k, v in rec.stats.items() if k not in row})
        row["learning_rate"] = self.learning_rate * rec.stats["step_scale"]
        if "width_scale" in rec.stats:
            row["sigma"] = self.sigma * rec.stats["width_scale"]
        if self.path is not None:
            rd.append_metrics(self.path / "metrics.jsonl", row)
        if rec.step in self.replaced and rd.same_row(self.replaced[rec.step], row):
            del self.replaced[rec.step]
        if rec.step % self.every == 0 or rec.step == 1:  # an early first one: a run can always be resumed
            self.checkpoint(new_state)
            self.last_saved = rec.step
        self.reporter.step(row, self.exact, step_s)


def train(cfg: Config, config_files: dict[str, str], *, out: Path | None, n_iter: int | None, reporter, argv: list[str], force: bool = False,
          max_time_s: float | None = None, started: float | None = None) -> TrainOutcome:
    """Train ``cfg``; ``config_files``: {file name: text} written into the run directory
    (config.toml, config.given.toml); ``max_time_s`` counted from ``started`` (time.monotonic(),
    the process's start; default now). In a multi-process run every process calls this; only process 0 (the
    lead) touches the run directory, and the others receive its decisions by broadcast."""
    start_wall = time.monotonic() if started is None else started
    if n_iter is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, n_iter=n_iter))
    check_chains(cfg.sampler.n_chains)
    cfg = settle_observables(cfg)
    resolved = to_dict(cfg)
    chash = rd.problem_hash(resolved)
    problem = build_problem(cfg)
    training = build_training(cfg, problem)
    state = training.init_state(cfg.seed)
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(state.params))
    path, state, lock, dropped = join_run(cfg, out, force, state, chash, reporter, valid_configurations(problem))
    replaced = {row["step"]: row for row in dropped}  # rows the resume regenerates: any it does not reproduce is kept
    try:
        if cfg.train.init_from is not None and int(state.step) == 0:  # a resumed run continues its own checkpoint
            state = warm_start(cfg, training, state, path, reporter)
        return train_locked(cfg, config_files, problem, training, state, path, resolved, chash, n_params, reporter, argv, max_time_s, start_wall,
                            replaced)
    finally:
        if lock is not None:
            lock.release()
            keep_unreproduced(path, replaced, reporter)


def keep_unreproduced(path: Path, replaced: dict, reporter) -> None:
    """The earlier metrics rows a resume did not reproduce (``replaced``: step -> row) kept in
    metrics.jsonl.replaced, said in a warning (and, on a full disk, that they could not be)."""
    if not replaced:
        return
    which = f"{len(replaced)} earlier metrics rows (steps {min(replaced)}..{max(replaced)}) not reproduced by this resume"
    try:
        kept = rd.keep_replaced(path / "metrics.jsonl", sorted(replaced.values(), key=lambda r: r["step"]))
    except OSError as exc:
        reporter.warn(f"{path}: {which} could not be kept ({exc.strerror or exc})")
        return
    reporter.warn(f"{path}: {which} are kept in {kept.name}")


def train_locked(cfg, config_files, problem, training, state, path, resolved, chash, n_params, reporter, argv, max_time_s, start_wall,
                 replaced: dict) -> TrainOutcome:
    """The part of ``train`` that runs while process 0 holds the run directory's lock."""
    lead = dist.is_lead()
    finished = finished_result(path, int(state.step), cfg.train.n_iter) if lead else None
    if dist.broadcast_json((finished is not None) if lead else None):
        # nothing to train: the finished run's files stay exactly as they are, but for
        # observables that failed, which are measured again
        if lead and finished.get("observables_failed"):
            finished = retry_observables(path, cfg, training, state, finished, reporter)
        return TrainOutcome(run_dir=path, status="completed", result=finished or {"status": "completed"}, notes=list(cfg.notes))
    if lead:
        write_run_files(path, config_files, resolved, argv, cfg.seed, n_params, chash)
    state = place_state(state)

    exact, source = reference_energy(cfg, problem) if lead else (None, None)
    reporter.start(cfg, problem, path, n_params, exact)
    stop = StopFlag(None if max_time_s is None else start_wall + max_time_s)
    log = StepLog(path, chash, cfg, reporter, exact, stop, int(state.step), replaced)
    t = cfg.train
    health = Health(spike_factor=t.spike_factor, spike_retries=t.spike_retries, dead_steps=t.dead_steps)
    history = dist.broadcast_json(rd.read_metrics(path / "metrics.jsonl") if lead else None)
    final, kept = None, {}
    remedy = enlarge_hint(cfg, problem.model)

    def result_file(status: str, **details) -> dict:  # result.json as it stands now
        return write_result(path, cfg, status, (exact, source), log.compile_s, log.iter_times, int(state.step), remedy=remedy, **details)

    # one signal context from the first iteration to the final estimate: a signal anywhere in
    # it checkpoints (or skips the final estimate) and leaves result.json saying so
    programs = final_programs(cfg, training, state)  # compiled while the iterations run
    with stop_signals(stop):
        try:
            state, status = run_loop(
                jax.jit(training.step), state, root_keys(cfg.seed)[2], cfg.train.n_iter, log,
                on_nonfinite=t.on_nonfinite, patience=t.nonfinite_patience,
                should_stop=lambda: dist.any_process(stop()), health=health, history=history,
            )
        except RunError as exc:
            if lead:
                kept = what_is_kept(path)
                result_file(exc.status, reason=str(exc))
                raise type(exc)(f"{exc}; {kept}") from None
            raise
        if int(state.step) != log.last_saved or status == "completed":
            log.checkpoint(state, final=status == "completed")
        reason = (stop.reason or "stopped by another process") if status == "interrupted" else None
        if status == "completed":
            try:
                reporter.phase("final estimate: fresh chains from the training chains, thermalising")
                stop.last_step_s = max(stop.last_step_s, log.compile_s or 0.0)  # its first pass compiles, as the first step did

                def passed(info):  # the pass's own time predicts the next one for the deadline
                    stop.last_step_s = info["pass_s"]
                    reporter.final_pass(info)

                final, kept = final_evaluation(path, training, state, cfg, should_stop=lambda: dist.any_process(stop()), progress=passed,
                                               programs=programs)
            except EvaluationInterrupted:
                if stop.reason == "max-time":
                    status, reason = "interrupted", "max-time"
                else:
                    name = signal.Signals(stop.signal).name if stop.signal is not None else "a stop on another process"
                    status, reason = "interrupted", f"{name} during the final estimate (every training step is saved; rerunning makes only the final estimate)"
    if not lead:
        return TrainOutcome(run_dir=path, status=status, result={"status": status, "reason": reason})
    # the energy first: result.json is written before any observable is measured
    result = result_file(status, reason=reason, final=final)
    if status == "completed" and cfg.observables.names:
        failed = measure_observables(path, cfg, training, state, kept, reporter)
        if source == "exact":
            reporter.phase("observables: the exact ground state's, for comparison")
        check = compare_with_exact(path, cfg, training, failed) if source == "exact" else None
        if failed or check:
            result = result_file(status, reason=reason, final=final, observables_failed=failed, observables_check=check)
    reporter.phase(None)
    return TrainOutcome(run_dir=path, status=status, result=result, notes=list(cfg.notes))


def warm_start(cfg: Config, training: Training, state: VMCState, path: Path | None, reporter) -> VMCState:
    """``state`` with the parameters of the newest checkpoint of the run ``train.init_from``
    (their tree, shapes and dtypes checked against this model), a fresh optimiser state and fresh
    chains thermalised with DISCARD_SWEEPS sweeps; init_from.json records the source."""
    source = Path(cfg.train.init_from)
    data, record = None, None
    if dist.is_lead():
        if not (source / ".nqs-run").exists() and not (source / "resolved.json").exists():
            raise RunDirError(f"train.init_from: {source}: not an nqs run directory")
        checkpoints = ck.list_checkpoints(source)
        if not checkpoints:
            raise RunDirError(f"train.init_from: {source}: no checkpoint to start from")
        data = read_regular(checkpoints[0])
        kind = read_json_object(source / "resolved.json", {}).get("model", {}).get("kind")
        if kind is not None and kind != cfg.model.kind:
            raise RunDirError(f"train.init_from: {source}: its model is {kind}, this config's is {cfg.model.kind}; a warm start needs the same model")
        record = {"run": str(source.resolve()), "checkpoint": checkpoints[0].name, "step": ck.checkpoint_step(checkpoints[0])}
    data = dist.broadcast_bytes(data)
    try:
        params = ck.params_from_checkpoint(data, state.params, f"train.init_from: {source}/checkpoints")
    except RunDirError as exc:
        raise RunDirError(f"{exc}; a warm start needs the same model with the same shapes") from None
    k_chains, k_sweeps = jax.random.split(jax.random.fold_in(root_keys(cfg.seed)[1], 1))
    chains = training.fresh_chains(params, k_chains)
    chains, _, _ = jax.jit(training.sampler(1, DISCARD_SWEEPS))(params, chains, k_sweeps)
    if path is not None:
        atomic_write_json(path / "init_from.json", record)
        reporter.warm_started(source, record["checkpoint"])
    return init_state(params, chains, training.tx, training.memory, training.average > 0)


def valid_configurations(problem):
    """``valid(xs) -> bool``: every chain configuration lies in the problem's Hilbert space
    (lattices: occupations, N, Sz); None where the space has no such check."""
    is_valid = getattr(problem.space, "is_valid", None)
    if is_valid is None:
        return None
    return lambda xs: bool(np.asarray(jax.vmap(is_valid)(jnp.asarray(xs))).all())


def finished_result(path: Path, step: int, n_iter: int) -> dict | None:
    """The result.json of a run already completed at ``step`` >= ``n_iter``, else None."""
    result_path = path / "result.json"
    if step < n_iter or not result_path.exists():
        return None
    try:
        result = read_json_object(result_path)
    except RunDirError:
        return None
    return result if result.get("status") == "completed" and result.get("n_iter") == step else None


def what_is_kept(path: Path) -> str:
    """What a failed run leaves behind, in words: its newest checkpoint and metrics rows."""
    checkpoints = ck.list_checkpoints(path)
    rows = len(rd.read_metrics(path / "metrics.jsonl"))
    where = f"the newest checkpoint is {checkpoints[0]}" if checkpoints else "no checkpoint was written yet"
    return f"{where}; metrics.jsonl holds {rows} iterations"


def reference_energy(cfg: Config, problem) -> tuple[float | None, str | None]:
    """(E0, where it comes from): exact diagonalisation or a closed form when
    ``train.exact_energy`` and within reach, else ``train.reference_energy``, else (None, None)."""
    exact = problem.exact_energy() if cfg.train.exact_energy else None
    if exact is not None:
        return exact, "exact"
    if cfg.train.reference_energy is not None:
        return cfg.train.reference_energy, "train.reference_energy"
    return None, None


def trajectory_estimate(path: Path, cfg: Config) -> dict:
    return final_estimate(rd.read_metrics(path / "metrics.jsonl"), estimate_window(cfg.train.n_iter, cfg.train.final_window))


def final_pass_size(cfg: Config) -> tuple[int, int]:
    """(samples per pass, most samples) of the final estimate: passes of PASS_FACTOR × n_samples,
    within ``train.final_samples`` (default 2 × the estimate window × n_samples)."""
    s = cfg.sampler
    window = estimate_window(cfg.train.n_iter, cfg.train.final_window)
    max_samples = 2 * window * s.n_samples if cfg.train.final_samples is None else cfg.train.final_samples
    return min(PASS_FACTOR * s.n_samples, max_samples), max_samples


def final_programs(cfg: Config, training: Training, state: VMCState) -> PassPrograms | None:
    """The final estimate's programs, compiling ahead in the background from now (None when
    there is no final estimate)."""
    n_per_pass, max_samples = final_pass_size(cfg)
    if max_samples == 0:
        return None
    programs = PassPrograms(training, max(1, -(-n_per_pass // training.n_chains)))
    programs.ahead(dist.to_host(final_params(state)), dist.to_host(state.chains))
    return programs


def final_evaluation(path: Path | None, training: Training, state: VMCState, cfg: Config, should_stop=None, progress=None,
                     programs: PassPrograms | None = None) -> tuple[dict | None, dict]:
    """The final parameters sampled with fresh chains until the error bar is no larger than
    the trajectory estimate's (within ``train.final_samples``): (the estimate, None when that is
    0; the samples kept for the observables, see ``sample_energy``). ``should_stop`` (see
    ``sample_energy``) may raise EvaluationInterrupted between passes."""
    s = cfg.sampler
    n_per_pass, max_samples = final_pass_size(cfg)
    params = jax.tree_util.tree_map(jnp.asarray, dist.to_host(final_params(state)))  # every process evaluates the same samples, locally
    chains = jax.tree_util.tree_map(jnp.asarray, dist.to_host(state.chains))
    kept: dict = {}
    key = jax.random.key(final_estimate_seed(cfg.seed))
    if max_samples == 0:
        if cfg.observables.names:  # no final estimate: one pass of 4 × n_samples for the observables
            sample_energy(training, params, key, 4 * s.n_samples, 4 * s.n_samples, start=chains, keep=kept, should_stop=should_stop, progress=progress)
        return None, kept
    target = dist.broadcast_json(trajectory_estimate(path, cfg)["energy_error"] if dist.is_lead() else None)
    stats = sample_energy(training, params, key, n_per_pass, max_samples, target, start=chains, keep=kept, should_stop=should_stop, progress=progress,
                          programs=programs)
    e_inf = infinite_temperature_energy(training)
    n_units = cfg.space.n_particles if cfg.is_continuous else cfg.n_sites
    which = f"the parameters averaged over ~{training.average} iterations" if training.average else "the last parameters"
    final = {**stats, "e_inf": e_inf, "v_score": v_score(stats["energy"], stats["variance"], n_units, e_inf), "target_error": target, "parameters": which}
    return final, kept


def write_result(path: Path, cfg: Config, status: str, reference, compile_s, iter_times, step: int, reason: str | None = None, final: dict | None = None,
                 observables_failed: dict | None = None, observables_check: str | None = None, remedy: str = "train longer (train.n_iter)") -> dict:
    """result.json; ``reference``: (E0 or None, its source: "exact" | "train.reference_energy");
    ``remedy``: the V-score warning's advice in the keys of the run's model (enlarge_hint)."""
    exact, source = reference
    rows = rd.read_metrics(path / "metrics.jsonl")
    est = trajectory_estimate(path, cfg)
    last = rows[-1] if rows else {}
    if final is not None:
        trajectory = {f"trajectory_{k}": v for k, v in est.items()}
        est = {
            "energy": final["energy"],
            "energy_error": final["energy_error"],
            "variance": final["variance"],
            "estimate": f"fresh chains: {final['n_samples']} samples of {final['parameters']} after {final['discard_sweeps']} thermalisation sweeps from {final['chains_from']}",
            "tau_corr": final["tau_corr"],
            "v_score": final["v_score"],
            "e_inf": final["e_inf"],
            "final_r_hat": final["r_hat"],
            "final_acceptance": final["acceptance"],
            "final_samples": final["n_samples"],
            **trajectory,
        }
    if status in FAILED:
        # a diverged or dead run has no energy to report: the trajectory's numbers belong to a
        # state that was going wrong (kept under trajectory_* for the post-mortem)
        est = {"energy": None, "energy_error": None, "variance": None, "estimate": None,
               **{f"trajectory_{k}": v for k, v in est.items() if k != "estimate"}}
    result = {
        "status": status,
        **est,
        "exact_energy": exact,
        "exact_energy_source": source,
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
    window = estimate_window(cfg.train.n_iter, cfg.train.final_window)
    result["warnings"] = history_warnings(rows, step) + sampling_warnings(rows, window, cfg.is_continuous) + final_warnings(final, remedy)
    if observables_failed:
        result["observables_failed"] = observables_failed
        result["warnings"].append(observables_warning(observables_failed))
    if observables_check:
        result["warnings"].append(observables_check)
    atomic_write_json(path / "result.json", result)
    return result
