"""`nqs report`: read run directories into comparable rows, and draw their traces."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from nqs_cli.config import flatten
from nqs_cli.run import run_dir as rd
from nqs_cli.run.estimates import R_HAT_LIMIT, estimate_window, final_estimate, relative_error, warning_flag
from nqs_cli.run.files import RunDirError, read_json_object


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
    exact_observables = read_json_object(path / "exact_observables.json") if (path / "exact_observables.json").exists() else {}
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
        "v_score": result.get("v_score"),
        "status": status,
        "flags": run_flags(status, last, result),
        "warnings": list(result.get("warnings") or []),
        "observables": observables,
        "exact_observables": exact_observables,
    }


def run_flags(status: str, last: dict, result: dict) -> list[str]:
    """What a reader of the table must not miss: a run that did not finish well, chains that
    disagree (split-R̂ > 1.1 at the last iteration) and one flag for each warning result.json
    carries (V-score, R̂, acceptance, observables that failed or are off their exact values)."""
    flags = [status] if status in ("diverged", "failed") else []
    r_hat = last.get("r_hat")
    if r_hat is not None and not (r_hat <= R_HAT_LIMIT):
        flags.append(f"R̂>{R_HAT_LIMIT}")
    warnings = result.get("warnings") or []
    for warning in warnings if isinstance(warnings, list) else [str(warnings)]:
        flag = warning_flag(str(warning))
        if flag not in flags:
            flags.append(flag)
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


# keys that differ between runs without making them different problems (never a scan axis)
NOT_SCAN_KEYS = ("name", "train.init_from", "distributed.")


def run_settings(path: Path) -> dict:
    """The run's resolved config as dotted keys ({} when unreadable)."""
    try:
        return flatten(read_json_object(path / "resolved.json", {}))
    except RunDirError:
        return {}


def scan_key(paths: list[Path], x: str | None = None) -> str | None:
    """The config key the runs are a scan of: ``x`` when given (RunDirError if no run has it),
    else the one key whose value differs between them, else None."""
    settings = [run_settings(p) for p in paths]
    if x is not None:
        if not any(x in s for s in settings):
            raise RunDirError(f"--x {x}: no run has this config key (keys look like hamiltonian.U, sampler.n_samples)")
        return x
    if len(paths) < 2:
        return None
    keys = set().union(*settings)
    differ = [k for k in sorted(keys) if not k.startswith(NOT_SCAN_KEYS) and len({json.dumps(s.get(k)) for s in settings}) > 1]
    return differ[0] if len(differ) == 1 else None


def scan_value(path: Path, key: str):
    return run_settings(path).get(key)


def label(path: Path, key: str | None) -> str:
    if key is None:
        return path.name
    value = scan_value(path, key)
    return f"{key.rsplit('.', 1)[-1]} = {value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else f"{key} = {value}"


def plot_runs(paths: list[Path], out: Path, discard: int = 0, x: str | None = None) -> None:
    """Traces (energy with error band and exact line; its distance to E0, or to the run's final
    energy, on a log axis; variance; acceptance) and, for a scan (``x``, or the one config key
    that differs), the final energy and every scalar observable against that key, one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = scan_key(paths, x)
    rows = {p: collect_run(p) for p in paths}
    scalars = list(dict.fromkeys(k for r in rows.values() for k in (r.get("observables") or {}).get("scalars", {})))
    n_rows = max(4, 1 + len(scalars)) if key else 4
    fig, axes = plt.subplots(n_rows, 2 if key else 1, figsize=(14 if key else 8, 2.6 * n_rows), squeeze=False)
    traces = axes[:, 0]
    order = sorted(paths, key=lambda p: sort_key(scan_value(p, key))) if key else paths
    for path in order:
        metrics = [r for r in rd.read_metrics(path / "metrics.jsonl") if r["step"] > discard]
        if not metrics:
            continue
        steps = [r["step"] for r in metrics]
        e = np.array([r["energy"] for r in metrics])
        err = np.array([r["energy_error"] for r in metrics])
        line = traces[0].plot(steps, e, lw=1, label=label(path, key))[0]
        colour = line.get_color()
        traces[0].fill_between(steps, e - err, e + err, color=colour, alpha=0.25)
        exact = rows[path].get("exact_energy")
        if exact is not None:
            traces[0].axhline(exact, color=colour, ls="--", lw=1)
            distance = np.abs(e - exact) / abs(exact) if exact else np.abs(e - exact)
        else:
            final = rows[path].get("energy")
            distance = np.abs(e - (final if final is not None else e[-1]))
        traces[1].semilogy(steps, np.maximum(distance, 1e-12), lw=1, color=colour)
        traces[2].semilogy(steps, [max(r["variance"], 1e-16) for r in metrics], lw=1, color=colour)
        traces[3].plot(steps, [r["acceptance"] for r in metrics], lw=1, color=colour)
    any_exact = any(r.get("exact_energy") is not None for r in rows.values())
    traces[0].set_ylabel("energy (dashed: exact)")
    traces[1].set_ylabel("|E − E0| / |E0|" if any_exact else "|E − E_final|")
    traces[2].set_ylabel("variance of E_loc")
    traces[3].set_ylabel("acceptance")
    traces[3].set_xlabel("iteration")
    traces[0].legend(fontsize=8)
    for ax in traces[4:]:
        ax.axis("off")
    if key:
        plot_scan(axes[:, 1], order, rows, key, scalars)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def sort_key(v):
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))


def plot_scan(axes, paths: list[Path], rows: dict, key: str, scalars: list[str]) -> None:
    """Final energy (with exact energies) and each scalar observable against ``key``, error bars."""
    xs = [scan_value(p, key) for p in paths]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in xs)
    pos = xs if numeric else list(range(len(xs)))

    def errorbar(ax, values, errors, **kw):
        keep = [i for i, v in enumerate(values) if v is not None]
        ax.errorbar([pos[i] for i in keep], [values[i] for i in keep], yerr=[errors[i] or 0.0 for i in keep], fmt="o-", capsize=3, **kw)

    errorbar(axes[0], [rows[p]["energy"] for p in paths], [rows[p]["energy_error"] for p in paths], label="final estimate")
    exact = [rows[p].get("exact_energy") for p in paths]
    if any(v is not None for v in exact):
        axes[0].plot([pos[i] for i, v in enumerate(exact) if v is not None], [v for v in exact if v is not None], "kx", label="exact")
    axes[0].set_ylabel("energy")
    axes[0].legend(fontsize=8)
    for ax, name in zip(axes[1:], scalars):
        entries = [(rows[p].get("observables") or {}).get("scalars", {}).get(name) or {} for p in paths]
        errorbar(ax, [e.get("value") for e in entries], [e.get("error") for e in entries], color="C1")
        ax.set_ylabel(name.replace("_", " "))
    for ax in axes[1 + len(scalars):]:
        ax.axis("off")
    last = axes[min(len(scalars), len(axes) - 1)]
    last.set_xlabel(key)
    if not numeric:
        for ax in axes[: 1 + len(scalars)]:
            ax.set_xticks(pos, [str(v) for v in xs])
