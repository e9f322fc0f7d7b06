"""Measured observables against the exact ground state's: which deviate beyond their tolerance.

The tolerance of a density, a correlation against distance or a condensate fraction is
max(4σ, ABSOLUTE) with σ its error bar; a structure factor is compared at the momentum of its
exact maximum, within RELATIVE. A run within reach of exact diagonalisation says in result.json
when its observables are off although its energy may look converged.
"""

from __future__ import annotations

import numpy as np

ABSOLUTE = 0.02
RELATIVE = 0.03
COMPARED = ("density", "density_correlation", "sz_correlation", "spin_correlation", "string_order", "condensate_fraction",
            "number_fluctuation", "staggered_magnetization", "staggered_moment")
PEAKED = ("structure_factor", "spin_structure_factor")


def deviations(measured: dict, exact: dict) -> dict:
    """{name: {"worst": |Δ| / max(4σ, ABSOLUTE) at its worst, "max_abs": |Δ|}} and, for S(q),
    {"at_max": |Δ| / S at the exact maximum, "q": that momentum}; only names in both."""
    out = {}
    for name in COMPARED:
        m, e = measured.get(name), exact.get(name)
        if not isinstance(m, dict) or not isinstance(e, dict):
            continue
        values = np.atleast_1d(np.asarray(m.get("values", m.get("value")), float))
        errors = np.atleast_1d(np.asarray(m.get("errors", m.get("error")), float))
        ref = np.atleast_1d(np.asarray(e.get("values", e.get("value")), float))
        if values.shape != ref.shape:
            continue
        delta = np.abs(values - ref)
        out[name] = {"worst": float(np.max(delta / np.maximum(4 * errors, ABSOLUTE))), "max_abs": float(delta.max())}
    for name in PEAKED:
        m, e = measured.get(name), exact.get(name)
        if isinstance(m, dict) and isinstance(e, dict) and len(m["values"]) == len(e["values"]):
            ref = np.asarray(e["values"], float)
            k = int(np.argmax(ref))
            out[name] = {"at_max": float(abs(m["values"][k] - ref[k]) / max(ref[k], 1e-300)), "q": e["q"][k] if "q" in e else k}
    return out


def off(found: dict) -> list[str]:
    """The names whose deviation exceeds its tolerance."""
    return [name for name, d in found.items() if d.get("worst", 0.0) > 1.0 or d.get("at_max", 0.0) > RELATIVE]


def warning(found: dict) -> str | None:
    """result.json's warning for observables off their exact values (None when all agree)."""
    names = off(found)
    if not names:
        return None
    parts = [f"{n} ({found[n]['max_abs']:.3g} off)" if "max_abs" in found[n] else f"{n} ({100 * found[n]['at_max']:.1f}% off at its peak)" for n in names]
    return ("observables differ from the exact ground state's (exact_observables.json) beyond max(4σ, 0.02) or 3% at the peak of S(q): "
            + ", ".join(parts) + "; the state is not converged in them although its energy may look close: train longer (train.n_iter)")
