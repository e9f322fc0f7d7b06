"""The host loop around the compiled step: keys, health checks, a callback per step.

The run directory and the progress display live outside (run/, app/): the loop hands each
accepted step to ``on_step``. A step is handed over once the NEXT step has been seen: the
energy a step reports is that of the parameters the previous update produced, so only then
is it known whether that update was sound (see ``Health``).
"""

from __future__ import annotations

import math
import statistics as pystats
import time
from dataclasses import dataclass, field
from typing import Callable

import jax
import jax.numpy as jnp

from nqs_cli.vmc.step import VMCState


class RunError(RuntimeError):
    """The run failed (exit code 1), e.g. a non-finite energy under on_nonfinite = "stop"."""

    status = "diverged"


class DeadAnsatzError(RunError):
    """ψ stopped depending on its parameters (Tr S = 0): no step can change it any more."""

    status = "failed"


@dataclass
class StepRecord:
    step: int
    stats: dict[str, float]
    wall_s: float


@dataclass(frozen=True)
class Health:
    """What the loop checks on every step.

    - spikes: a variance above ``spike_factor`` × the median of the last ``window`` steps, or an
      energy that many error bars above their median (after ``min_history`` steps), or Tr S
      below ``collapse`` × its median (from the second step: an update that saturated the
      network), means the previous update went wrong: it is redone from the parameters before
      it, with half the step, up to ``spike_retries`` times (then accepted).
    - a dead ansatz: Tr S ≤ ``dead_tol``, or ≤ ``dead_drop`` × the largest Tr S of the run, for
      ``dead_steps`` steps in a row (DeadAnsatzError). In healthy runs Tr S changes by less than
      a factor 3 from one step to the next (measured on lattice bosons, spin-1, trapped and
      periodic bosons), so a fall by 100× (``collapse``) is an update gone wrong.
    """

    spike_factor: float = 10.0
    spike_retries: int = 3
    window: int = 20
    min_history: int = 10
    dead_steps: int = 5
    dead_tol: float = 1e-12  # Tr S at or below this, or below dead_drop × the largest Tr S of the run: dead
    dead_drop: float = 1e-6
    collapse: float = 1e-2  # Tr S below this fraction of its recent median: the update collapsed ψ

    def is_spike(self, stats: dict[str, float], recent: list[dict[str, float]]) -> bool:
        if self.spike_retries <= 0 or not recent:
            return False
        last = recent[-self.window:]
        trace = pystats.median(r["trace_s"] for r in last if "trace_s" in r) if any("trace_s" in r for r in last) else None
        if trace is not None and stats["trace_s"] < self.collapse * trace:
            return True  # ψ lost (nearly) all dependence on its parameters in one update: a collapse
        if len(recent) < self.min_history:
            return False
        var = pystats.median(r["variance"] for r in last)
        if stats["variance"] > self.spike_factor * var and stats["variance"] > 1e-12 * (1.0 + stats["energy"] ** 2):
            return True
        energy = pystats.median(r["energy"] for r in last)
        error = max(pystats.median(r["energy_error"] for r in last), stats["energy_error"])
        return stats["energy"] - energy > self.spike_factor * error > 0


def first_nonfinite(stats: dict[str, float]) -> str | None:
    for name in ("energy", "variance", "grad_norm", "update_norm"):
        if not math.isfinite(stats[name]):
            return name
    if not stats["params_finite"]:
        return "parameters"
    return None


@dataclass
class _Pending:
    """The last computed step, not yet handed over: (state before it, its record, state after)."""

    before: VMCState
    record: StepRecord
    after: VMCState


@dataclass
class _Counters:
    reverts: int = 0  # non-finite steps retried
    spikes: int = 0  # spiky updates redone with a smaller step
    dead: int = 0  # consecutive steps with Tr S = 0
    largest_trace: float = 0.0  # the largest Tr S seen
    levels: dict[int, int] = field(default_factory=dict)  # step -> halvings of its update


def step_key_for(step_key: jax.Array, t: int, retries: int, level: int) -> jax.Array:
    """The key of step ``t``: fold_in(root, t), refolded for a non-finite retry or a halved redo."""
    key = jax.random.fold_in(step_key, t)
    if retries:
        key = jax.random.fold_in(key, 1_000_003 + retries)
    if level:
        key = jax.random.fold_in(key, 2_000_003 + level)
    return key


def dead_message(stats: dict[str, float], count: _Counters, step: int) -> str:
    return (
        f"the wave function stopped depending on its parameters (Tr S = {stats['trace_s']:.1e}, largest "
        f"{count.largest_trace:.1e}, for {count.dead} steps, at step {step}; energy variance {stats['variance']:.3g}): "
        "an activation saturated after a too large step. Lower optimizer.learning_rate or optimizer.trust_region, "
        "raise optimizer.sr.diag_shift, or change model.activation"
    )


def run_loop(
    step_fn: Callable,
    state: VMCState,
    step_key: jax.Array,
    n_iter: int,
    on_step: Callable[[VMCState, StepRecord], None],
    on_nonfinite: str = "stop",
    patience: int = 5,
    should_stop: Callable[[], bool] = lambda: False,
    health: Health = Health(),
    history: list[dict[str, float]] | None = None,
) -> tuple[VMCState, str]:
    """Run iterations ``state.step .. n_iter-1``; returns (state, status).

    ``step_fn(state, key, scale) -> (state, stats)``. status: "completed", or "interrupted"
    when ``should_stop()`` turned true. A non-finite step is never accepted: "stop" raises
    RunError naming the step and quantity; "revert" retries it with a fresh key, up to
    ``patience`` times in a row. ``history``: the metrics rows before ``state`` (a resumed
    run), for the spike window and the counters (``reverts``, ``spikes``).
    """
    recent = list(history or [])[-health.window:]
    last = recent[-1] if recent else {}
    count = _Counters(reverts=int(last.get("reverts", 0)), spikes=int(last.get("spikes", 0)))
    pending: _Pending | None = None
    retries = 0

    def hand_over():
        nonlocal pending
        if pending is not None:
            on_step(pending.after, pending.record)
            pending = None

    while int(state.step) < n_iter:
        if should_stop():
            hand_over()
            return state, "interrupted"
        t = int(state.step)
        level = count.levels.get(t, 0)
        t0 = time.perf_counter()
        new_state, stats = step_fn(state, step_key_for(step_key, t, retries, level), jnp.asarray(0.5**level))
        stats = {k: float(v) for k, v in jax.device_get(stats).items()}
        wall = time.perf_counter() - t0
        bad = first_nonfinite(stats)
        if bad is not None:
            hand_over()
            if on_nonfinite == "stop":
                raise RunError(f"non-finite {bad} at step {t + 1} (on_nonfinite = \"stop\")")
            retries += 1
            count.reverts += 1
            if retries > patience:
                raise RunError(f"non-finite {bad} at step {t + 1} persisted through {patience} reverts; giving up")
            continue
        retries = 0
        if pending is not None and count.levels.get(t - 1, 0) < health.spike_retries and health.is_spike(stats, recent):
            # this step's energy belongs to the parameters the previous update produced: redo that update, smaller
            count.levels[t - 1] = count.levels.get(t - 1, 0) + 1
            count.spikes += 1
            state, pending = pending.before, None
            recent.pop()
            continue
        count.largest_trace = max(count.largest_trace, stats["trace_s"])
        dead = stats["trace_s"] <= max(health.dead_tol, health.dead_drop * count.largest_trace)
        count.dead = count.dead + 1 if dead else 0
        stats.pop("params_finite")
        stats.update(reverts=float(count.reverts), spikes=float(count.spikes))
        hand_over()
        pending = _Pending(before=state, record=StepRecord(step=t + 1, stats=stats, wall_s=wall), after=new_state)
        recent = (recent + [stats])[-health.window - 1:]
        state = new_state
        if count.dead >= health.dead_steps:
            hand_over()
            raise DeadAnsatzError(dead_message(stats, count, t + 1))
    hand_over()
    return state, "completed"
