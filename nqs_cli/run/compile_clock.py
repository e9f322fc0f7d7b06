"""Seconds JAX spends tracing, lowering and compiling, read from its monitoring events.

The first iteration of a run (and any iteration that meets a new shape) includes compilation;
subtracting it gives the iteration's own time, which is what deadlines and ETAs need.
"""

from __future__ import annotations

import threading

import jax

_EVENT_PREFIX = "/jax/core/compile/"
_total = 0.0
_installed = False


def _listen(event: str, duration: float, **_) -> None:
    global _total
    # only the main thread's: programs compiled ahead in a background thread do not delay an iteration
    if event.startswith(_EVENT_PREFIX) and threading.current_thread() is threading.main_thread():
        _total += duration


def compile_seconds() -> float:
    """Total compile time of this process so far (the listener is installed on first use)."""
    global _installed
    if not _installed:
        jax.monitoring.register_event_duration_secs_listener(_listen)
        _installed = True
    return _total
