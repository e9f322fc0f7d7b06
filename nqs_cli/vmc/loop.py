"""The host loop around the compiled step: keys, the non-finite policy, a callback per step.

The run directory and the progress display live outside (run/, app/): the loop hands each
accepted step to ``on_step``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import jax

from nqs_cli.vmc.step import VMCState


class RunError(RuntimeError):
    """The run failed (exit code 1), e.g. a non-finite energy under on_nonfinite = "stop"."""


@dataclass
class StepRecord:
    step: int
    stats: dict[str, float]
    wall_s: float


def first_nonfinite(stats: dict[str, float]) -> str | None:
    for name in ("energy", "variance", "grad_norm", "update_norm"):
        if not math.isfinite(stats[name]):
            return name
    if not stats["params_finite"]:
        return "parameters"
    return None


def run_loop(
    step_fn: Callable,
    state: VMCState,
    step_key: jax.Array,
    n_iter: int,
    on_step: Callable[[VMCState, StepRecord], None],
    on_nonfinite: str = "stop",
    patience: int = 5,
    should_stop: Callable[[], bool] = lambda: False,
) -> tuple[VMCState, str]:
    """Run iterations ``state.step .. n_iter-1``; returns (state, status).

    status: "completed", or "interrupted" when ``should_stop()`` turned true. A non-finite
    step is never accepted: "stop" raises RunError naming the step and quantity (the caller
    keeps its last checkpoint); "revert" retries the step with a fresh key, up to ``patience``
    times in a row, counting every revert in the stats of the step that finally succeeds.
    """
    reverts_total = 0
    retries = 0
    while int(state.step) < n_iter:
        if should_stop():
            return state, "interrupted"
        t = int(state.step)
        key = jax.random.fold_in(step_key, t)
        if retries:
            key = jax.random.fold_in(key, 1_000_003 + retries)
        t0 = time.perf_counter()
        new_state, stats = step_fn(state, key)
        stats = {k: float(v) for k, v in jax.device_get(stats).items()}
        wall = time.perf_counter() - t0
        bad = first_nonfinite(stats)
        if bad is not None:
            if on_nonfinite == "stop":
                raise RunError(f"non-finite {bad} at step {t + 1} (on_nonfinite = \"stop\"); the last checkpoint is kept")
            retries += 1
            reverts_total += 1
            if retries > patience:
                raise RunError(f"non-finite {bad} at step {t + 1} persisted through {patience} reverts; giving up")
            continue
        retries = 0
        stats.pop("params_finite")
        stats["reverts"] = float(reverts_total)
        state = new_state
        on_step(state, StepRecord(step=t + 1, stats=stats, wall_s=wall))
    return state, "completed"
