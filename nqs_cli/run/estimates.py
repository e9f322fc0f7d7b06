"""The final estimate of a run from its metrics rows, and the relative error."""

from __future__ import annotations

import math

import numpy as np

from nqs_cli.config import estimate_window  # noqa: F401  (the window rule belongs to the config; imported from here too)


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


def relative_error(energy, exact):
    if energy is None or exact is None or exact == 0:
        return None
    return abs((energy - exact) / exact)


R_HAT_LIMIT = 1.1
LOW_ACCEPTANCE = 0.05


def sampling_warnings(rows: list[dict], window: int, continuous: bool = False) -> list[str]:
    """Warnings about the chains over the last ``window`` iterations: split-R̂ above 1.1 in most
    of them (the chains disagree), or a mean acceptance below 5 % (they barely move); the keys
    suggested are those of the run's sampler (``continuous``: particles, Gaussian moves)."""
    last = [r for r in rows[-window:] if r.get("r_hat") is not None]
    out = []
    high = sum(1 for r in last if r["r_hat"] > R_HAT_LIMIT)
    if last and high > len(last) / 2:
        out.append(
            f"split-R̂ > {R_HAT_LIMIT} in {high} of the last {len(last)} iterations: the chains disagree "
            "(a multimodal |ψ|² or too short sampling); raise sampler.n_discard_per_chain or sampler.sweep_size"
        )
    acceptance = [r["acceptance"] for r in rows[-window:] if r.get("acceptance") is not None]
    if acceptance and sum(acceptance) / len(acceptance) < LOW_ACCEPTANCE:
        out.append(
            f"mean acceptance {sum(acceptance) / len(acceptance):.3f} over the last {len(acceptance)} iterations: "
            "the chains barely move, samples are strongly correlated; "
            + ("lower sampler.sigma (or set sampler.target_acceptance to adapt it)" if continuous else "raise sampler.sweep_size or sampler.n_discard_per_chain")
        )
    return out


# V-score N·Var(E)/(E − E∞)² above which the final state is reported as far from an eigenstate.
# Measured with the defaults at 300 iterations: every converged run stays below 0.005 (Bose-Hubbard
# L=8, L=10: 1.0e-3, 3.3e-4; spin-1 L=10 4.1e-3; spin-1/2 ring L=16 1.5e-3; trapped and periodic
# bosons 1.2e-3, 2.9e-3), while frustrated spin-1/2 lattices that ended 3-4e-2 above E0 scored
# 0.043 (J1-J2 4x4, J2 = 0.5) and 0.17 (triangular 4x3).
V_SCORE_LIMIT = 0.02


def final_warnings(final: dict | None, remedy: str = "train longer (train.n_iter)") -> list[str]:
    """Warnings about the final estimate: its fresh chains disagree (split-R̂ above 1.1: they
    did not thermalise, and their energy is not that of the trained state), or its V-score says
    the state is far from an eigenstate (the energy is then likely far above E0); ``remedy``
    names the keys of the run's own model that can help (``setup.models.enlarge_hint``)."""
    if final is None:
        return []
    out = []
    if final.get("r_hat") is not None and final["r_hat"] > R_HAT_LIMIT:
        out.append(f"the fresh chains of the final estimate disagree (split-R̂ = {final['r_hat']:.3g} > {R_HAT_LIMIT}): they did not "
                   f"thermalise in {final.get('discard_sweeps')} sweeps, so the energy is unreliable; compare trajectory_energy, "
                   "or run nqs evaluate with more samples")
    if final.get("v_score") is not None and final["v_score"] > V_SCORE_LIMIT:
        out.append(f"the final state is far from an eigenstate (V-score N·Var(E)/(E − E∞)² = {final['v_score']:.3g} > {V_SCORE_LIMIT}; "
                   f"converged runs score below 0.005): the energy is likely well above the ground state; {remedy}")
    return out


def history_warnings(rows: list[dict], step: int) -> list[str]:
    """A warning when metrics.jsonl does not hold one row for every step 1..``step`` (rows removed
    after they were written: the run resumed from its checkpoint, its trajectory has a gap)."""
    missing = sorted(set(range(1, step + 1)) - {r["step"] for r in rows})
    if not missing:
        return []
    return [f"metrics.jsonl has no rows for {len(missing)} of the {step} steps (the first {missing[0]}, the last {missing[-1]}): "
            "they were removed after they were written; the run continued from its checkpoint, and its trajectory has that gap"]


# The opening words of each warning result.json can carry, and the flag `nqs report` shows for it.
WARNING_FLAGS = (
    ("metrics.jsonl has no rows", "missing rows"),
    ("split-R̂ >", f"R̂>{R_HAT_LIMIT}"),
    ("mean acceptance", "low acceptance"),
    ("the fresh chains of the final estimate disagree", f"final R̂>{R_HAT_LIMIT}"),
    ("the final state is far from an eigenstate", f"V-score>{V_SCORE_LIMIT}"),
    ("observables failed:", "observables failed"),
    ("observables differ from the exact", "observables off exact"),
    ("the observables could not be compared", "no exact check"),
)


def warning_flag(text: str) -> str:
    """The short flag of one of result.json's warnings ("warning" for one of no known kind)."""
    return next((flag for prefix, flag in WARNING_FLAGS if text.startswith(prefix)), "warning")
