"""The final estimate of a run from its metrics rows, and the relative error."""

from __future__ import annotations

import math

import numpy as np


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


def estimate_window(n_iter: int, final_window: int) -> int:
    """The final estimate averages the last 20% of the iterations, at most ``train.final_window``."""
    return min(final_window, max(1, n_iter // 5))


def relative_error(energy, exact):
    if energy is None or exact is None or exact == 0:
        return None
    return abs((energy - exact) / exact)
