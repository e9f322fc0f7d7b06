"""Terminal output: training progress, result summaries and tables (rich).

Progress goes to stderr: a live line on a TTY, plain periodic lines otherwise. Results and
tables go to stdout. Nothing here touches JAX.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text


def fmt_energy(e, err) -> str:
    if e is None:
        return "—"
    if err is None or not math.isfinite(err) or err <= 0:
        return f"{e:.6f}"
    digits = max(0, min(10, int(math.ceil(-math.log10(err))) + 1))
    return f"{e:.{digits}f} ± {err:.{digits}f}"


def fmt_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{s // 60:.0f}m{s % 60:02.0f}s"
    return f"{s // 3600:.0f}h{(s % 3600) // 60:02.0f}m"


def runs_table(rows: list[dict]) -> Table:
    """The `nqs report` table: one row per run directory; the newest `nqs evaluate` result in
    its own column, the V-score, and flags (failed runs, R̂ > 1.1, every warning of result.json) in red."""
    table = Table(title_justify="left")
    evaluated = any(r.get("evaluation_energy") is not None for r in rows)
    scalars = list(dict.fromkeys(k for r in rows for k in (r.get("observables") or {}).get("scalars", {})))
    scan = next((list(r["scan"])[0] for r in rows if r.get("scan")), None)
    columns = ([scan] if scan else []) + ["run", "system", "model", "iter", "energy", "exact", "rel. err"] + (["evaluation"] if evaluated else []) + scalars
    for col in columns + ["V-score", "R̂", "acc", "s/it", "status", "flags"]:
        table.add_column(col, overflow="fold")
    for r in rows:
        cells = [json.dumps((r.get("scan") or {}).get(scan))] if scan else []
        cells += [
            Path(r["run"]).name,
            r["system"],
            r["model"],
            str(r["iterations"]),
            fmt_energy(r["energy"], r["energy_error"]),
            "—" if r["exact_energy"] is None else f"{r['exact_energy']:.6f}",
            "—" if r["relative_error"] is None else f"{r['relative_error']:.2e}",
        ]
        if evaluated:
            e = r.get("evaluation_energy")
            cells.append("—" if e is None else f"{fmt_energy(e, r.get('evaluation_energy_error'))} (step {r.get('evaluation_step')})")
        for name in scalars:
            v = (r.get("observables") or {}).get("scalars", {}).get(name)
            exact = (r.get("exact_observables") or {}).get("scalars", {}).get(name)
            cell = "—" if v is None or v.get("value") is None else fmt_energy(v["value"], v.get("error"))
            cells.append(cell if exact is None else f"{cell} (exact {exact['value']:.6g})")
        cells += [
            "—" if r.get("v_score") is None else f"{r['v_score']:.2g}",
            "—" if r["r_hat"] is None else f"{r['r_hat']:.3g}",
            "—" if r["acceptance"] is None else f"{r['acceptance']:.2f}",
            "—" if r["seconds_per_iteration"] is None else f"{r['seconds_per_iteration']:.3f}",
            r["status"],
            Text(", ".join(r.get("flags", [])), style="bold red"),
        ]
        table.add_row(*cells)
    return table


class StreamConsole(Console):
    """A rich Console whose broken pipe is an exception the caller decides about (rich's own
    handling exits the process with status 1, which would stop a training run)."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError("the reader of this stream went away")


def guarded(method):
    """A reporter method that never stops training: when its stream is closed or its reader
    gone (a broken pipe), progress goes quiet and the run goes on writing its files."""

    def wrapper(self, *args, **kwargs):
        if self.dead:
            return None
        try:
            return method(self, *args, **kwargs)
        except (OSError, ValueError) as exc:  # ValueError: "I/O operation on closed file"
            if isinstance(exc, ValueError) and "closed" not in str(exc):
                raise
            self.dead = True
            self.quiet = True
            self.live = None
            silence_stdio()
            return None

    return wrapper


def silence_stdio() -> None:
    """Point stdout and stderr at /dev/null (their reader went away or their device is full),
    so that neither later output nor Python's final flush raises again."""
    import os
    import sys

    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
        try:
            os.dup2(devnull, stream.fileno())
        except (OSError, ValueError):
            pass
    os.close(devnull)


class TrainReporter:
    """Receives events from runner.train and renders them."""

    def __init__(self, err: Console, out: Console, quiet: bool = False):
        self.err, self.out, self.quiet = err, out, quiet
        self.live: Live | None = None
        self.n_iter = 0
        self.t_last = None
        self.every = 1
        self.dead = False

    @guarded
    def warn(self, msg: str) -> None:
        self.err.print(f"[yellow]warning:[/] {msg}", highlight=False, soft_wrap=True)

    @guarded
    def config_diff(self, diff) -> None:
        self.err.print("config differs from the stored run:", highlight=False)
        for key, old, new in diff:
            self.err.print(f"  {key}: {old!r} -> {new!r}", highlight=False)

    @guarded
    def resumed(self, path, step: int, n_iter: int) -> None:
        if step >= n_iter:
            self.err.print(
                f"{path}: already at step {step} >= n_iter = {n_iter}; nothing to train (raise it with --n-iter N)",
                highlight=False,
            )
        else:
            self.err.print(f"resuming {path} from step {step} (target {n_iter})", highlight=False)

    @guarded
    def warm_started(self, source, checkpoint: str) -> None:
        self.err.print(f"warm start from {source} ({checkpoint}): its parameters, a fresh optimiser state and fresh chains", highlight=False)

    @guarded
    def start(self, cfg, problem, path, n_params: int, exact) -> None:
        self.n_iter = cfg.train.n_iter
        self.every = max(1, self.n_iter // 20)
        for note in cfg.notes:
            self.err.print(f"note: {note}", highlight=False)
        if self.quiet:
            return
        ex = f", exact E0 = {exact:.10f}" if exact is not None else ""
        self.err.print(f"{problem.description}; {cfg.model.kind} with {n_params} parameters{ex}", highlight=False)
        self.err.print(f"run directory: {path}", highlight=False)
        if self.err.is_terminal:
            self.live = Live(Text("compiling…"), console=self.err, refresh_per_second=4, transient=False)
            self.live.start()
        self.t_last = time.monotonic()

    def line(self, row: dict, exact, step_s: float | None = None) -> str:
        """One progress line; ``step_s``: the iteration's time without compilation (the rate
        and the ETA use it, so the first line is not dominated by compiling)."""
        step_s = row["wall_s"] if step_s is None else step_s
        compiling = row["wall_s"] - step_s > 0.5 * row["wall_s"]
        rate = f"{step_s:.3f} s/it (+{row['wall_s'] - step_s:.1f} s compiling)" if compiling else f"{step_s:.3f} s/it"
        parts = [
            f"step {row['step']}/{self.n_iter}",
            f"E = {fmt_energy(row['energy'], row['energy_error'])}",
            f"σ² = {row['variance']:.4g}",
            f"R̂ = {row['r_hat']:.3f}",
            f"acc = {row['acceptance']:.2f}",
            rate,
        ]
        if exact is not None:
            parts.insert(2, f"rel.err = {abs((row['energy'] - exact) / exact):.2e}")
        remaining = (self.n_iter - row["step"]) * step_s
        parts.append(f"ETA {fmt_seconds(remaining)}")
        return "  ".join(parts)

    @guarded
    def step(self, row: dict, exact, step_s: float | None = None) -> None:
        if self.quiet:
            return
        text = self.line(row, exact, step_s)
        if self.live is not None:
            self.live.update(Text(text))
        elif row["step"] % self.every == 0 or row["step"] == self.n_iter:
            self.err.print(text, highlight=False, soft_wrap=True)

    @guarded
    def phase(self, text: str | None) -> None:
        """What the end of a run is doing (the final estimate, each observable): the live line on
        a terminal, a plain line otherwise; None ends the phase. Quiet under --quiet."""
        if self.quiet or text is None:
            if text is None and self.live is not None:
                self.live.update(Text(""))
            return
        if self.live is not None:
            self.live.update(Text(text))
        else:
            self.err.print(text, highlight=False, soft_wrap=True)

    def final_pass(self, info: dict) -> None:
        """A pass of the final estimate: samples drawn of the most, error bar against its target, ETA."""
        target = "" if info.get("target") is None else f" (target {info['target']:.2g})"
        eta = "done" if info["left_s"] == 0 else f"ETA {fmt_seconds(info['left_s'])}"
        self.phase(f"final estimate: {info['drawn']}/{info['max_samples']} samples, error {info['error']:.2g}{target}, "
                   f"{info['pass_s']:.1f} s/pass, {eta}")

    @guarded
    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

    def summary(self, outcome) -> None:
        """The result table on stdout: the run's product, so a failure to write it is not
        silenced here (the command layer turns it into an exit code)."""
        self.close()
        r = outcome.result
        for warning in r.get("warnings", []):
            self.warn(warning)
        table = Table(title=f"{outcome.run_dir}", show_header=False, title_justify="left")
        table.add_column("key", style="bold")
        table.add_column("value")
        table.add_row("status", r["status"])
        table.add_row("energy", fmt_energy(r["energy"], r["energy_error"]))
        table.add_row("estimate", r.get("estimate", ""))
        if r.get("exact_energy") is not None:
            table.add_row("exact energy", f"{r['exact_energy']:.10f}")
        if r.get("relative_error") is not None:
            table.add_row("relative error", f"{r['relative_error']:.2e}")
        if r.get("variance") is not None:
            table.add_row("variance", f"{r['variance']:.4g}")
        table.add_row("iterations", str(r["n_iter"]))
        if r.get("seconds_per_iteration") is not None:
            table.add_row("s / iteration", f"{r['seconds_per_iteration']:.4f}")
        if r.get("compile_seconds") is not None:
            table.add_row("compile s", f"{r['compile_seconds']:.2f}")
        self.out.print(table)
