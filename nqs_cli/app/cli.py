"""The `nqs` command line: the only module that reads argv, prints and exits.

Exit codes: 0 success; 1 run failed; 2 bad input; 74 the run directory could not be written
(full disk, read-only; nothing written before is lost); 75 stopped by --max-time (checkpoint
written; rerun to continue); 130 interrupted (checkpoint written).
"""

from __future__ import annotations

import os
import sys

# One BLAS thread: jaxlib's CPU Cholesky calls OpenBLAS, whose threads otherwise fight XLA's
# own thread pool (a 1008² factorisation then varies from 0.03 to 0.8 s on 2 cores).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# A closed stdout or stderr (`nqs … >&-`) is a place where output goes nowhere, not a crash.
for _name in ("stdout", "stderr"):
    if getattr(sys, _name) is None:
        setattr(sys, _name, open(os.devnull, "w"))

import codecs  # noqa: E402

# An ASCII locale (PYTHONIOENCODING=ascii, LANG=C on old systems) gets readable stand-ins for
# the few non-ASCII symbols nqs prints, instead of a UnicodeEncodeError after the work is done.
_ASCII = {"±": "+/-", "σ": "sigma", "²": "^2", "\u0302": "-hat", "—": "-", "–": "-", "…": "...", "×": "x", "→": "->",
          "≤": "<=", "≥": ">=", "Σ": "sum", "ψ": "psi", "∞": "inf", "⟨": "<", "⟩": ">", "·": "*", "√": "sqrt"}


def _ascii_stand_ins(exc):
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    return "".join(_ASCII.get(c, "?") for c in exc.object[exc.start:exc.end]), exc.end


codecs.register_error("nqs-ascii", _ascii_stand_ins)
for _stream in (sys.stdout, sys.stderr):
    try:
        "±R̂σ²—…×".encode(_stream.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        try:
            _stream.reconfigure(errors="nqs-ascii")
        except (AttributeError, ValueError):
            pass

import copy  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import signal  # noqa: E402
import time  # noqa: E402
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from nqs_cli import config as config_mod
from nqs_cli.app.render import StreamConsole, silence_stdio
from nqs_cli.config import ConfigError
from typer.core import TyperGroup
from typer.exceptions import Abort, TyperException

class OneLineErrors(TyperGroup):
    """Usage errors (missing argument, bad option value) as one red line and exit code 2."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except TyperException as exc:
            if not exc.format_message():  # `nqs` alone: the help was already shown
                sys.exit(exc.exit_code)
            ctx = getattr(exc, "ctx", None)
            hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
            err.print(Text("error: ", style="bold red") + Text(exc.format_message().replace("\n", " ") + hint), soft_wrap=True)
            sys.exit(exc.exit_code)
        except Abort:
            sys.exit(130)
        if standalone_mode:
            sys.exit(rv if isinstance(rv, int) else 0)
        return rv


app = typer.Typer(
    cls=OneLineErrors,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Variational Monte Carlo for neural quantum states, driven by TOML configs.",
)


def _version(value: bool) -> None:
    if value:
        from nqs_cli import __version__

        sys.stdout.write(f"nqs {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def _options(version: bool = typer.Option(False, "--version", metavar="", is_eager=True, callback=_version, help="Print the version and exit.")):
    """Variational Monte Carlo for neural quantum states, driven by TOML configs."""


# Piped output keeps wide tables on one line per row (no 80-column wrapping).
out = StreamConsole(highlight=False, width=None if sys.stdout.isatty() else 200)
err = StreamConsole(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 200)

EXIT_IO = 74  # EX_IOERR: the run directory could not be written (full disk, read-only, …)
EXIT_MAX_TIME = 75  # EX_TEMPFAIL: "try again", so batch scripts can requeue the same command
ForceSizeOption = typer.Option(False, "--force-size", metavar="", help="Skip the memory and work estimate that refuses configs too large for this machine.")
SetOption = typer.Option(None, "--set", help="Override a config key, e.g. --set sampler.n_chains=32 (value parsed as TOML).")


LONG_WORD = re.compile(r"\S{%d,}" % (2 * 48 + 20))


def shorten(message: str) -> str:
    """``message`` with every run of over 116 characters without a space (a bad value, a path)
    cut to its first 48 and last 48, and the count of those left out."""
    return LONG_WORD.sub(lambda m: f"{m[0][:48]}…({len(m[0]) - 96} characters)…{m[0][-48:]}", message)


def fail(message: str, code: int = 2):
    err.print(Text("error: ", style="bold red") + Text(shorten(message.replace("\n", " "))), soft_wrap=True)
    raise typer.Exit(code)


def load_config(path: Path, overrides: Optional[List[str]]):
    try:
        return config_mod.load(path, overrides or [])
    except ConfigError as exc:
        fail(str(exc))


def setup_jax(cfg) -> None:
    import jax

    jax.config.update("jax_enable_x64", cfg.dtype == "float64")
    if jax.config.jax_compilation_cache_dir is None:  # unless JAX's own setting chose one
        cache = compilation_cache_dir()
        if cache is not None:
            jax.config.update("jax_compilation_cache_dir", str(cache))
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.05)


def compilation_cache_dir() -> Path | None:
    """Where compiled programs are kept between runs (the points of a scan, a rerun, `nqs
    evaluate` after `nqs train` compile the same sampler and estimators): $NQS_CACHE_DIR, else
    $XDG_CACHE_HOME/nqs/jax or ~/.cache/nqs/jax; NQS_CACHE_DIR=off (or a folder that cannot be
    created) keeps none."""
    given = os.environ.get("NQS_CACHE_DIR")
    if given is not None and given.strip().lower() in ("", "off", "0", "none"):
        return None
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = Path(given) if given else base / "nqs" / "jax"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return path if os.access(path, os.W_OK) else None


def check_size(cfg, force_size: bool = False) -> None:
    """Refuse, before any allocation, a config this machine cannot run (one line naming the key)."""
    from nqs_cli.setup.cost import TooLarge, check_cost

    if force_size:
        return
    try:
        check_cost(cfg)
    except TooLarge as exc:
        fail(f"{cfg.source}: {exc}")


def build(cfg, force_size: bool = False):
    from nqs_cli.setup import build_problem

    check_size(cfg, force_size)
    try:
        return build_problem(cfg)
    except ValueError as exc:
        fail(f"{cfg.source}: {exc}")


# --------------------------------------------------------------------------- validate


@app.command()
def validate(config: Path = typer.Argument(..., help="TOML config file"), set_: Optional[List[str]] = SetOption, force_size: bool = ForceSizeOption):
    """Parse, check and build a config; print the resolved values and where each comes from (no training)."""
    cfg = load_config(config, set_)
    setup_jax(cfg)
    problem = build(cfg, force_size)
    from nqs_cli.setup import build_training
    from nqs_cli.setup.observables import settle_observables

    try:
        cfg = settle_observables(cfg)
    except ConfigError as exc:
        fail(str(exc))
    try:
        training = build_training(cfg, problem)
    except ValueError as exc:
        fail(f"{config}: {exc}")
    flat = config_mod.flatten(config_mod.to_dict(cfg))
    automatic = automatic_values(cfg, training)
    table = Table(title=f"{config}: {problem.description}", title_justify="left")
    table.add_column("key")
    table.add_column("value")
    table.add_column("source")
    for key, value in flat.items():
        if key in cfg.explicit:
            source = "config"
        elif key in automatic:
            value, why = automatic[key]
            source = f"auto ({why})"
        else:
            source = "default"
        table.add_row(key, json.dumps(value), source)
    out.print(table)
    for note in cfg.notes:
        out.print(f"note: {note}")
    out.print("config OK")


def automatic_values(cfg, training) -> dict:
    """{key: (value, reason)} for the keys whose value was chosen from the rest of the config."""
    from nqs_cli.config.reference import section_docs
    from nqs_cli.config.schema import SECTIONS, SUBSECTIONS

    rules = {d.key: d.default[len("auto: "):] for name, cls in {**SECTIONS, **{f"{a}.{b}": c for (a, b), c in SUBSECTIONS.items()}}.items()
             for d in section_docs(name, cls) if d.default.startswith("auto: ")}
    flat = config_mod.flatten(config_mod.to_dict(cfg))
    found = {key: (flat[key], rule) for key, rule in rules.items() if key in flat and key not in cfg.explicit}
    if cfg.hamiltonian.kind == "heisenberg" and cfg.hamiltonian.sign_rule is None:
        from nqs_cli.setup.lattice import automatic_sign_rule

        found["hamiltonian.sign_rule"] = automatic_sign_rule(cfg)
    if cfg.model.kind == "rbm-multival" and cfg.model.symmetry is None:
        from nqs_cli.setup.models import automatic_symmetry

        found["model.symmetry"] = automatic_symmetry(cfg)
    if cfg.model.kind == "rbm-multival" and cfg.model.spiral_phase is None:
        from nqs_cli.setup.models import automatic_spiral_phase

        found["model.spiral_phase"] = automatic_spiral_phase(cfg)
    if cfg.model.kind == "rbm-multival" and cfg.model.features is None:
        model = training.problem.model
        from nqs_cli.models.rbm_symm import HIDDEN_FACTOR

        rule = f"ceil({HIDDEN_FACTOR} × alpha × N × d / G)"
        found["model.features"] = (model.features, rule) if hasattr(model, "features") else (None, "unused: the plain RBM")
    if not cfg.is_continuous:
        from nqs_cli.setup.lattice import automatic_trap_center

        center = automatic_trap_center(cfg)
        if center is not None:
            found["hamiltonian.trap.center"] = center
    if cfg.optimizer.sr is not None:
        plan = training.sr_plan
        if "optimizer.sr.mode" not in cfg.explicit and cfg.optimizer.sr.mode == "auto":
            found["optimizer.sr.mode"] = (plan.form, "chosen from n_samples and the parameter count")
        if "optimizer.sr.solver" not in cfg.explicit and cfg.optimizer.sr.solver == "auto":
            found["optimizer.sr.solver"] = (plan.solver, "chosen from the size of the SR system and the final diag_shift")
    if cfg.train.final_samples is None:
        from nqs_cli.run.estimates import estimate_window

        window = estimate_window(cfg.train.n_iter, cfg.train.final_window)
        found["train.final_samples"] = (2 * window * cfg.sampler.n_samples, f"2 × the averaging window ({window}) × n_samples")
    if cfg.train.param_average is None:
        found["train.param_average"] = (config_mod.average_iterations(cfg.train), "half the estimate window")
    return found


@app.command()
def keys(name: Optional[str] = typer.Argument(None, help="A section (sampler, optimizer.sr, top) or a key (sampler.n_chains); all when omitted.")):
    """Print the config reference: every key with its type, default, allowed values and meaning."""
    from nqs_cli.config.reference import all_keys, markdown

    try:
        text = markdown(name)
    except KeyError:
        sections = sorted({k.rsplit(".", 1)[0] for k in all_keys() if "." in k})
        fail(f"keys: unknown section or key {name!r}; sections: top, {', '.join(sections)}")
    sys.stdout.write(text)
    sys.stdout.flush()


# --------------------------------------------------------------------------- train


@app.command()
def train(
    config: Path = typer.Argument(..., help="TOML config file"),
    set_: Optional[List[str]] = SetOption,
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Run directory (resumes if it holds a checkpoint)."),
    n_iter: Optional[int] = typer.Option(None, "--n-iter", min=1, help="Override train.n_iter."),
    quiet: bool = typer.Option(False, "--quiet", metavar="", help="No progress output."),
    force: bool = typer.Option(False, "--force", metavar="", help="Resume even if the problem definition changed."),
    max_time: Optional[str] = typer.Option(None, "--max-time", help="Stop cleanly before this wall time (e.g. 90s, 30m, 2h)."),
    coordinator: Optional[str] = typer.Option(None, "--coordinator", help="Multi-process run: host:port of process 0 (sets distributed.coordinator)."),
    num_processes: Optional[int] = typer.Option(None, "--num-processes", help="Multi-process run: number of processes (distributed.num_processes)."),
    force_size: bool = ForceSizeOption,
    process_id: Optional[int] = typer.Option(None, "--process-id", help="Multi-process run: this process's rank, 0 writes the run directory (distributed.process_id)."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Warm start from the newest checkpoint's parameters of this run directory (sets train.init_from; same model and shapes)."),
):
    """Train a variational state; write the run directory; print the final energy."""
    from nqs_cli.app.render import TrainReporter
    from nqs_cli.run import distributed
    from nqs_cli.run import training as runner
    from nqs_cli.run.files import RunDirError
    from nqs_cli.vmc.loop import RunError

    flags = {"coordinator": coordinator, "num_processes": num_processes, "process_id": process_id}
    overrides = list(set_ or []) + [f"distributed.{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]
    if init_from is not None:
        overrides.append(f"train.init_from={json.dumps(str(init_from))}")
    cfg = load_config(config, overrides)
    max_time_s = parse_duration(max_time) if max_time else None
    check_size(cfg, force_size)
    setup_jax(cfg)
    try:
        distributed.initialize(cfg.distributed)
    except distributed.DistributedError as exc:
        fail(f"{config}: {exc}")
    if distributed.is_lead():
        reporter = TrainReporter(err, out, quiet=quiet)
    else:  # only process 0 reports; the others print nothing but errors
        silent = Console(file=open(os.devnull, "w"))
        reporter = TrainReporter(silent, silent, quiet=True)
    given = config.read_text()
    config_files = {
        "config.toml": config_mod.effective_toml(config, list(set_ or []) + ([f"train.init_from={json.dumps(str(init_from))}"] if init_from else []), n_iter, cfg.name),
        "config.given.toml": given,
    }
    try:
        outcome = runner.train(
            cfg, config_files, out=out_dir, n_iter=n_iter, reporter=reporter,
            argv=["nqs"] + sys.argv[1:], force=force, max_time_s=max_time_s, started=COMMAND_STARTED or time.monotonic(),
        )
    except (RunDirError, ConfigError) as exc:
        reporter.close()
        fail(str(exc))
    except RunError as exc:
        reporter.close()
        fail(str(exc), code=1)
    except ValueError as exc:
        reporter.close()
        fail(f"{config}: {exc}")
    except OSError as exc:  # a full disk, a read-only or vanished run directory: nothing written is lost
        reporter.close()
        from nqs_cli.run.checkpoints import list_checkpoints

        where = exc.filename or out_dir or "the run directory"
        try:
            saved = out_dir is not None and Path(out_dir).is_dir() and bool(list_checkpoints(Path(out_dir)))
        except OSError:
            saved = False
        then = "the newest checkpoint resumes" if saved else "no checkpoint was written yet, so it starts again"
        fail(f"{where}: {exc.strerror or exc}; files written before are intact: rerun the same command once this is fixed ({then})", code=EXIT_IO)
    if distributed.is_lead():
        reporter.summary(outcome)
        observables_failed(outcome.result.get("observables_failed"), "rerun the same command to measure them again")
    if outcome.status != "interrupted":
        return
    if not distributed.is_lead():
        raise typer.Exit(EXIT_MAX_TIME if outcome.result.get("reason") == "max-time" else 130)
    options = {"--n-iter": n_iter, "--init-from": init_from, "--max-time": max_time, "--coordinator": coordinator, "--num-processes": num_processes, "--process-id": process_id}
    command = ["nqs", "train", str(config)] + [a for s_ in set_ or [] for a in ("--set", s_)] + ["--out", str(outcome.run_dir)]
    command += [a for k, v in options.items() if v is not None for a in (k, str(v))] + (["--quiet"] if quiet else [])
    resume = "Resume with: " + shlex.join(command)
    step, target = outcome.result.get("n_iter"), outcome.result.get("n_iter_target")
    if outcome.result.get("reason") == "max-time":
        if step == target:
            err.print(f"stopped after step {step} of {target}: the final estimate would pass --max-time {max_time} (every step is saved; "
                      f"rerunning makes only the final estimate). {resume}", soft_wrap=True)
        else:
            err.print(f"stopped at step {step} of {target}: the next iteration would pass --max-time {max_time}; checkpoint written. {resume}", soft_wrap=True)
        raise typer.Exit(EXIT_MAX_TIME)
    if step == target:  # every step ran; the signal came during the final estimate
        err.print(f"interrupted during the final estimate, after step {step} of {target} (every step is saved). {resume}", soft_wrap=True)
    else:
        err.print(f"interrupted at step {step} of {target}; checkpoint written. {resume}", soft_wrap=True)
    raise typer.Exit(130)


def parse_duration(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    t = text.strip().lower()
    try:
        if t and t[-1] in units:
            value = float(t[:-1]) * units[t[-1]]
        else:
            value = float(t)
    except ValueError:
        fail(f"--max-time: expected a duration like 90s, 30m or 2h, got {text!r}")
    if not math.isfinite(value) or value <= 0:
        fail(f"--max-time: expected a positive duration, got {text!r}")
    return value


# --------------------------------------------------------------------------- exact


@app.command()
def exact(
    config: Path = typer.Argument(..., help="TOML config file, or a run directory (its resolved config)"),
    set_: Optional[List[str]] = SetOption,
    observables: Optional[Path] = typer.Option(None, "--observables", help="Also write the exact ground state's observables (the config's [observables], observables.json's layout) to this JSON file; a run directory as CONFIG writes them to its exact_observables.json."),
):
    """Exact ground-state energy by Lanczos (small lattice systems, constrained sector), and optionally its observables."""
    run_dir = config if config.is_dir() else None
    cfg = load_run(run_dir) if run_dir is not None else load_config(config, set_)
    if cfg.is_continuous:
        from nqs_cli.setup.continuum import exact_energy

        e0 = exact_energy(cfg)
        if e0 is None:
            fail(f"{config}: no exact energy is known for this continuous system (exact diagonalisation is for lattice systems)")
        if observables is not None or run_dir is not None:
            fail(f"{config}: exact observables are computed for lattice systems (exact diagonalisation)")
        out.print(f"{e0:.10f}")
        return
    setup_jax(cfg)
    problem = build(cfg)
    from nqs_cli.systems.lattice.exact import MAX_STATES

    n = problem.space.n_states
    if n > MAX_STATES:
        fail(f"{config}: the sector has {n} states, above the exact-diagonalisation limit of {MAX_STATES}")
    target = observables if observables is not None else (run_dir / "exact_observables.json" if run_dir is not None else None)
    if target is None:
        e0 = problem.exact_energy()
    else:
        e0 = write_exact_observables(cfg, problem, target)
    err.print(f"{problem.description}: {n} states" + (f"; observables in {target}" if target is not None else ""))
    out.print(f"{e0:.10f}")


def load_run(run: Path):
    """The resolved config of a run directory (one line and exit 2 when it is not one)."""
    from nqs_cli.run.evaluate import load_run_config
    from nqs_cli.run.files import RunDirError

    try:
        return load_run_config(run)
    except (RunDirError, ConfigError) as exc:
        fail(str(exc))


def write_exact_observables(cfg, problem, target: Path) -> float:
    """exact_observables.json (or ``target``): the exact ground state's observables; its energy."""
    from nqs_cli.run.files import atomic_write_json
    from nqs_cli.run.measure import measure_exact

    try:
        data = measure_exact(cfg, problem)
    except ValueError as exc:
        fail(f"{cfg.source}: {exc}")
    try:
        atomic_write_json(target, data)
    except OSError as exc:
        fail(f"{exc.filename or target}: {exc.strerror or exc}", code=EXIT_IO)
    return data["energy"]


# --------------------------------------------------------------------------- summary


@app.command()
def summary(
    config: Optional[Path] = typer.Argument(None, help="TOML config file (optional with --model)"),
    model: Optional[str] = typer.Option(None, "--model", help="rbm-multival | deepsets | deepsets-reldist"),
    set_: Optional[List[str]] = SetOption,
    depth: Optional[int] = typer.Option(None, "--depth", min=0, help="Nesting depth of the table."),
):
    """Print a model's parameter table (flax Module.tabulate) and its parameter count."""
    from nqs_cli.app.presets import PRESETS

    if config is not None:
        cfg = load_config(config, (set_ or []) + ([f'model.kind="{model}"'] if model else []))
        origin = str(config)
    else:
        if model is None:
            fail("give a CONFIG or --model rbm-multival|deepsets|deepsets-reldist")
        if model not in PRESETS:
            fail(f"--model: unknown model {model!r}; choose one of {', '.join(PRESETS)}")
        origin, raw = PRESETS[model]
        try:
            cfg = config_mod.from_dict(copy.deepcopy(raw), source=f"built-in {model} system", overrides=set_ or [])
        except ConfigError as exc:
            fail(str(exc))
        origin = f"built-in default system: {origin}"
    setup_jax(cfg)
    problem = build(cfg)
    import jax

    x = problem.random_state(jax.random.key(0))
    table = problem.model.tabulate(
        jax.random.key(0), x, depth=depth,
        console_kwargs={"force_terminal": out.is_terminal, "width": max(out.width, 100), "no_color": not out.is_terminal},
    )
    params = problem.init_params(jax.random.key(0))
    from nqs_cli.vmc.step import n_parameters

    out.print(f"{cfg.model.kind} on {problem.description} ({origin})")
    out.print(Text.from_ansi(table) if out.is_terminal else table, end="")
    out.print(f"total parameters: {n_parameters(params)}")


# --------------------------------------------------------------------------- evaluate / report


@app.command()
def evaluate(
    run: Path = typer.Argument(..., help="Run directory"),
    n_samples: Optional[int] = typer.Option(None, "--n-samples", min=1, help="Samples, in one pass (default: passes of 8x the training n_samples until the error bar is no larger than the training estimate's)."),
    running: bool = typer.Option(False, "--running", metavar="", help="Evaluate a run that is still training (its newest checkpoint, recorded in evaluation.json as a mid-run snapshot)."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0, help="Seed for the fresh chains (default: one above the final estimate's and every earlier evaluation's, so each evaluation is an independent check; recorded in evaluation.json)."),
):
    """Precise energy of a run's parameters: fresh chains, long sampling; writes evaluation.json."""
    from nqs_cli.app.render import fmt_energy
    from nqs_cli.run.evaluate import evaluate as run_evaluate
    from nqs_cli.run.evaluate import load_run_config, write_evaluation
    from nqs_cli.run.files import RunDirError

    try:
        setup_jax(load_run_config(run))
        res = run_evaluate(run, n_samples, seed, warn=lambda m: err.print(f"warning: {m}", soft_wrap=True), running=running)
    except RunDirError as exc:
        fail(str(exc))
    except ValueError as exc:
        fail(f"{run}: {exc}")
    try:
        write_evaluation(run, res)
        written = None
    except OSError as exc:  # a full or read-only run directory: the result is still printed
        written = f"{exc.filename or run}: {exc.strerror or exc}; the evaluation above was not saved"
    title = f"{run} (checkpoint {res['checkpoint']}, step {res['step']}" + (f"; {res['snapshot']})" if res.get("snapshot") else ")")
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_row("energy", fmt_energy(res["energy"], res["energy_error"]))
    if res["exact_energy"] is not None:
        table.add_row("exact energy", f"{res['exact_energy']:.10f}")
        table.add_row("relative error", f"{res['relative_error']:.2e}")
    for key in ("variance", "r_hat", "tau_corr", "acceptance", "v_score"):
        if res.get(key) is not None:
            table.add_row(key, f"{res[key]:.4g}")
    table.add_row("samples", f"{res['n_samples']} ({res['n_chains']} chains, seed {res['seed']})")
    observables = res.get("observables") or {}
    for name, v in observables.get("scalars", {}).items():
        table.add_row(name, fmt_energy(v["value"], v["error"]))
    if observables:
        table.add_row("observables", ", ".join(k for k in observables if isinstance(observables[k], dict) and k not in ("scalars", "failed")) + " (observables.json)")
    out.print(table)
    if written is not None:
        fail(written, code=EXIT_IO)
    observables_failed(observables.get("failed"), "rerun nqs evaluate to measure them again")


def observables_failed(failed: dict | None, retry: str) -> None:
    """Exit 1 naming each observable that failed (the energy is kept)."""
    if failed:
        fail("observables failed: " + "; ".join(f"{name} ({why})" for name, why in failed.items()) + f"; the energy is kept; {retry}", code=1)


@app.command()
def report(
    runs: List[Path] = typer.Argument(..., help="Run directories"),
    as_json: bool = typer.Option(False, "--json", metavar="", help="One JSON list on stdout, for scripts."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write energy/variance/acceptance traces to a PNG."),
    discard: int = typer.Option(0, "--discard", min=0, help="Estimate from the iterations after the first N (instead of result.json's final estimate)."),
    window: Optional[int] = typer.Option(None, "--window", min=1, help="Estimate from the mean of the last N iterations (after --discard)."),
    x: Optional[str] = typer.Option(None, "--x", help="A scan's config key (e.g. hamiltonian.U): rows sorted by it, and the plot shows the final energy and each scalar observable against it (default: the one key in which the runs differ)."),
    plot_observables: Optional[Path] = typer.Option(None, "--plot-observables", help="Write every measured observable (profiles, correlations against distance, S(q) along the Brillouin zone, g(r)) with error bars to a PNG; exact values from `nqs exact RUN --observables` drawn over them."),
):
    """Compare runs: a table of final energies, errors, exact references, evaluations, observables and timings."""
    from nqs_cli.app.render import runs_table
    from nqs_cli.run.files import RunDirError
    from nqs_cli.run.report import collect_run, plot_runs, scan_key, scan_value, sort_key, strict_json

    rows, unreadable = [], []
    for path in runs:
        try:
            rows.append(collect_run(path, discard, window))
        except RunDirError as exc:
            unreadable.append(str(exc))
            rows.append(unreadable_row(path, str(exc)))
    if len(unreadable) == len(runs):
        fail(unreadable[0] if len(runs) == 1 else f"none of the {len(runs)} run directories is readable: {unreadable[0]}")
    try:
        key = scan_key([p for p, r in zip(runs, rows) if r["status"] != "unreadable"], x)
    except RunDirError as exc:
        fail(str(exc))
    if key is not None:
        for path, row in zip(runs, rows):
            row["scan"] = {key: scan_value(path, key)}
        order = sorted(range(len(rows)), key=lambda i: sort_key(rows[i]["scan"][key]))
        runs, rows = [runs[i] for i in order], [rows[i] for i in order]
    if as_json:
        sys.stdout.write(json.dumps(strict_json(rows), indent=2) + "\n")
        sys.stdout.flush()
    else:
        # a terminal folds the table to its width; a file or pipe gets every column unfolded
        (out if out.is_terminal else StreamConsole(highlight=False, width=1000)).print(runs_table(rows))
    readable = [p for p, r in zip(runs, rows) if r["status"] != "unreadable"]
    if plot is not None:
        need_matplotlib("--plot")
        try:
            plot_runs(readable, plot, discard, key)
        except (OSError, ValueError) as exc:
            fail(f"--plot {plot}: cannot write it ({exc})")
        err.print(f"wrote {plot}")
    if plot_observables is not None:
        need_matplotlib("--plot-observables")
        from nqs_cli.run.observable_plots import plot_observables as draw_observables

        try:
            draw_observables(readable, plot_observables)
        except (OSError, ValueError, RunDirError) as exc:
            fail(f"--plot-observables {plot_observables}: cannot write it ({exc})")
        err.print(f"wrote {plot_observables}")
    if unreadable:
        fail(f"{len(unreadable)} of {len(runs)} run directories unreadable (marked in the table): {unreadable[0]}")


def need_matplotlib(option: str) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        fail(f"{option} needs matplotlib: pip install matplotlib (or, from a checkout of nqs, pip install '.[plot]')")


def unreadable_row(path: Path, reason: str) -> dict:
    """A `nqs report` row for a directory that cannot be read: every value empty, the reason flagged."""
    row = dict.fromkeys(("name", "system", "model", "energy", "energy_error", "estimate", "exact_energy", "relative_error",
                         "evaluation_energy", "evaluation_energy_error", "evaluation_step", "r_hat", "acceptance",
                         "seconds_per_iteration", "v_score"))
    return {**row, "run": str(path), "system": "—", "model": "—", "iterations": 0, "status": "unreadable", "flags": [reason]}


def _interrupt(signum, frame):
    # Outside the training loop nothing unsaved exists (every file is written atomically), and
    # an exception raised into JAX's compiler can crash the interpreter: leave at once.
    sys.stderr.write("interrupted\n")
    sys.stderr.flush()
    os._exit(130)


COMMAND_STARTED: float | None = None  # set by main(): when the process started (a test's in-process command: None)


def main():
    global COMMAND_STARTED
    import nqs_cli

    COMMAND_STARTED = nqs_cli.STARTED
    # SIGINT/SIGTERM outside training (start-up, compilation, final writes) exit 130 at once;
    # during training the run loop installs its own handlers, which checkpoint first.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    code = 0
    try:
        app()
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except BrokenPipeError:
        # the reader of our output went away (`nqs report | head -1`): everything is written,
        # stop quietly, without a second error when Python flushes the dead stream at exit
        silence_stdio()
        sys.exit(0)
    except OSError as exc:  # an output stream on a full or failing device
        silence_stdio()
        _last_words(f"error: {exc.filename or 'output'}: {exc.strerror or exc}")
        sys.exit(EXIT_IO)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        silence_stdio()
    except OSError as exc:  # stdout on a full device: the results did not reach it
        silence_stdio()
        _last_words(f"error: cannot write the results to standard output ({exc.strerror})")
        code = code or EXIT_IO
    if code is None or isinstance(code, int):
        leave(code or 0)
    sys.exit(code)  # a message as the exit "code": Python prints it


def leave(code: int) -> None:
    """Exit with ``code``. Everything is written and flushed by now (files fsynced, compiled
    programs in their cache), so a single process skips the interpreter's teardown of JAX (about
    half a second, paid by every point of a scan); a multi-process run exits normally, so that
    its processes leave the distributed runtime together."""
    distributed = sys.modules.get("nqs_cli.run.distributed")
    if distributed is not None and distributed.process_count() > 1:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _last_words(text: str) -> None:
    """One line on the original stderr, if it can still take one."""
    try:
        os.write(_STDERR_FD, (text + "\n").encode("ascii", "replace"))
    except OSError:
        pass


_STDERR_FD = os.dup(2)



if __name__ == "__main__":
    main()
