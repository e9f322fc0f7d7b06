"""`nqs report`: read run directories into comparable rows, and draw their traces."""

from __future__ import annotations

import math
from pathlib import Path

from nqs_cli.run import run_dir as rd
from nqs_cli.run.estimates import R_HAT_LIMIT, estimate_window, final_estimate, relative_error
from nqs_cli.run.files import RunDirError, read_json, read_json_object


def describe_system(resolved: dict) -> str:
    ham = resolved.get("hamiltonian", {})
    if "space" in resolved:
        sp = resolved["space"]
        pair = ham.get("pair")
        pair_text = f", {pair['kind']} pair" if isinstance(pair, dict) else ""
        box = sp.get("extent") or [0]
        where = "trap" if not any(box) else f"box {box}"
        return f"{sp.get('n_particles')} bosons {sp.get('dims')}D {where}{pair_text}"
    lat, hil = resolved.get("lattice", {}), resolved.get("hilbert", {})
    name = {"bose-hubbard": "BH", "heisenberg": f"spin-{hil.get('s', 0):g} Heis."}.get(ham.get("kind"), ham.get("kind"))
    extra = f" U={ham['U']:g}" if "U" in ham else (f" β={ham['beta']:g}" if ham.get("beta") else "")
    return f"{name} {lat.get('graph')} L={lat.get('length')}{extra}"


def collect_run(path: Path, discard: int = 0, window: int | None = None) -> dict:
    """One row of `nqs report` (see ``read_run``); a malformed run directory raises RunDirError
    naming what is wrong, never another exception."""
    try:
        return read_run(path, discard, window)
    except RunDirError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OSError) as exc:
        raise RunDirError(f"{path}: malformed run directory ({exc.__class__.__name__}: {exc})") from None


def read_run(path: Path, discard: int = 0, window: int | None = None) -> dict:
    """One row of `nqs report` for a run directory (raises RunDirError if it is not one).

    The energy is result.json's final estimate; with ``discard`` or ``window`` it is the
    trajectory mean over the last ``window`` iterations after the first ``discard`` (``window``
    unset: all of them after ``discard``). The newest `nqs evaluate` result, when there is one,
    comes as ``evaluation_*``; ``flags`` names what needs a look (a failed run, R̂ > 1.1)."""
    if not path.is_dir():
        raise RunDirError(f"{path}: not a run directory")
    resolved = read_json_object(path / "resolved.json", {})
    rows = rd.read_metrics(path / "metrics.jsonl")
    result = read_json_object(path / "result.json") if (path / "result.json").exists() else {}
    status = result.get("status", "running or killed")
    train = resolved.get("train", {})
    if discard or window is not None or not result:
        n = window if window is not None else (len(rows) if discard else estimate_window(train.get("n_iter", 0), train.get("final_window", 50)))
        est = final_estimate(rows, max(1, n), discard=discard)
    else:
        est = {k: result.get(k) for k in ("energy", "energy_error", "variance", "estimate")}
    exact = result.get("exact_energy")
    last = rows[-1] if rows else {}
    evaluation = read_json_object(path / "evaluation.json") if (path / "evaluation.json").exists() else {}
    observables = read_json_object(path / "observables.json") if (path / "observables.json").exists() else {}
    return {
        "run": str(path),
        "name": resolved.get("name"),
        "system": describe_system(resolved),
        "model": resolved.get("model", {}).get("kind"),
        "iterations": rows[-1]["step"] if rows else 0,
        "energy": est["energy"],
        "energy_error": est["energy_error"],
        "estimate": est.get("estimate"),
        "exact_energy": exact,
        "relative_error": relative_error(est["energy"], exact),
        "evaluation_energy": evaluation.get("energy"),
        "evaluation_energy_error": evaluation.get("energy_error"),
        "evaluation_step": evaluation.get("step"),
        "r_hat": last.get("r_hat"),
        "acceptance": last.get("acceptance"),
        "seconds_per_iteration": result.get("seconds_per_iteration"),
        "status": status,
        "flags": run_flags(status, last, result),
        "observables": observables,
    }


def run_flags(status: str, last: dict, result: dict) -> list[str]:
    """What a reader of the table must not miss: a run that did not finish well, chains that
    disagree (split-R̂ > 1.1 at the last iteration) and the run's own sampling warnings."""
    flags = [status] if status in ("diverged", "failed") else []
    r_hat = last.get("r_hat")
    if r_hat is not None and not (r_hat <= R_HAT_LIMIT):
        flags.append(f"R̂>{R_HAT_LIMIT}")
    if any("acceptance" in w for w in result.get("warnings", [])):
        flags.append("low acceptance")
    return flags


def strict_json(value):
    """``value`` with every non-finite float replaced by None (JSON has no NaN or infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strict_json(v) for v in value]
    return value


def plot_runs(paths: list[Path], out: Path, discard: int = 0) -> None:
    """Energy (with error band and exact line), variance and acceptance traces, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    for path in paths:
        rows = [r for r in rd.read_metrics(path / "metrics.jsonl") if r["step"] > discard]
        if not rows:
            continue
        steps = [r["step"] for r in rows]
        e = [r["energy"] for r in rows]
        err = [r["energy_error"] for r in rows]
        line = axes[0].plot(steps, e, lw=1, label=path.name)[0]
        axes[0].fill_between(steps, [a - b for a, b in zip(e, err)], [a + b for a, b in zip(e, err)], color=line.get_color(), alpha=0.25)
        result = read_json(path / "result.json") if (path / "result.json").exists() else {}
        if result.get("exact_energy") is not None:
            axes[0].axhline(result["exact_energy"], color=line.get_color(), ls="--", lw=1)
        axes[1].semilogy(steps, [max(r["variance"], 1e-16) for r in rows], lw=1, color=line.get_color())
        axes[2].plot(steps, [r["acceptance"] for r in rows], lw=1, color=line.get_color())
    axes[0].set_ylabel("energy (dashed: exact)")
    axes[1].set_ylabel("variance of E_loc")
    axes[2].set_ylabel("acceptance")
    axes[2].set_xlabel("iteration")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
