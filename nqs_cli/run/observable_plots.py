"""`nqs report RUN... --plot-observables FILE.png`: every measured observable of each run with
its error bars, the exact ground state's (exact_observables.json, from `nqs exact RUN
--observables`) drawn over it: profiles against the site or x, correlations |C(r)| against the
distance on a log axis, S(q) and n(k) along a path through the Brillouin zone, g(r) and S(k),
the one-body density matrix as an image, and the scalars as points."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nqs_cli.run.files import read_json_object

PROFILES = ("density", "number_fluctuation")
CORRELATIONS = ("density_correlation", "sz_correlation", "spin_correlation", "string_order")
MOMENTUM = ("structure_factor", "spin_structure_factor", "momentum_distribution")
LABELS = {
    "density": "⟨n_i⟩", "number_fluctuation": "⟨n_i²⟩ − ⟨n_i⟩²", "density_correlation": "|⟨n_i n_j⟩|",
    "sz_correlation": "|⟨S^z_i S^z_j⟩|", "spin_correlation": "|⟨S_i·S_j⟩|", "string_order": "|string order|",
    "structure_factor": "S^zz(q)", "spin_structure_factor": "S(q)", "momentum_distribution": "n(k)",
    "pair_correlation": "g(r)", "one_body_density_matrix": "⟨b†_i b_j⟩",
}


def read_observables(path: Path) -> tuple[dict, dict]:
    """(observables.json, exact_observables.json) of a run directory, {} where absent."""
    def read(name):
        return read_json_object(path / name) if (path / name).is_file() else {}

    return read("observables.json"), read("exact_observables.json")


def panels(runs: dict[Path, tuple[dict, dict]]) -> list[str]:
    """The observables to draw, in the order first seen (scalars in one panel at the end)."""
    names = []
    for measured, _ in runs.values():
        names += [k for k, v in measured.items() if isinstance(v, dict) and "values" in v and k not in names]
    scalars = any(measured.get("scalars") for measured, _ in runs.values())
    return names + (["scalars"] if scalars else [])


def plot_observables(paths: list[Path], out: Path) -> None:
    """One PNG with a panel per observable; a colour per run, exact values as black crosses.
    ValueError when a run has nothing to draw or its files are not as nqs writes them."""
    try:
        draw_all(paths, out)
    except (KeyError, TypeError, IndexError) as exc:
        raise ValueError(f"observables.json or exact_observables.json not as nqs writes them ({type(exc).__name__}: {exc})") from None


def draw_all(paths: list[Path], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {p: read_observables(p) for p in paths}
    names = panels(runs)
    if not names:
        raise ValueError("no observables.json with measured observables in " + ", ".join(str(p) for p in paths))
    n_cols = min(3, len(names))
    n_rows = -(-len(names) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(5.2 * n_cols, 3.6 * n_rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        for k, (path, (measured, exact)) in enumerate(runs.items()):
            colour = f"C{k % 10}"
            draw(ax, name, measured, exact, colour, path.name if len(runs) > 1 else None)
        ax.set_title(name.replace("_", " "), fontsize=10)
        if len(runs) > 1 and name == names[0]:
            ax.legend(fontsize=7)
    for ax in axes.flat[len(names):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def draw(ax, name: str, measured: dict, exact: dict, colour: str, label: str | None) -> None:
    if name == "scalars":
        return draw_scalars(ax, measured.get("scalars", {}), exact.get("scalars", {}), colour, label)
    entry, reference = measured.get(name), exact.get(name)
    if not isinstance(entry, dict):
        return
    if name == "one_body_density_matrix":
        image = ax.imshow(np.asarray(entry["values"]), cmap="viridis")
        ax.figure.colorbar(image, ax=ax, fraction=0.046)
        ax.set_xlabel("site j")
        ax.set_ylabel("site i")
        return
    x, xlabel, transform, log = axis_of(name, entry)
    values, errors = np.asarray(entry["values"], float), np.asarray(entry["errors"], float)
    along = "path" in entry  # lattice momenta: the points on the Brillouin-zone path
    if along:
        index = entry["path"]["index"]
        values, errors = values[index], errors[index]
    ax.errorbar(x, transform(values), yerr=errors, fmt="o-", ms=3, lw=1, capsize=2, color=colour, label=label)
    if isinstance(reference, dict):
        ref = np.asarray(reference["values"], float)
        ax.plot(x, transform(ref[entry["path"]["index"]] if along else ref), "kx", ms=6, label="exact" if label is None else None)
        if label is None:
            ax.legend(fontsize=7)
    if log:
        ax.set_yscale("log")
    if along:
        ticks = entry["path"]["labels"]
        ax.set_xticks([t for t, _ in ticks], [n for _, n in ticks])
        for t, _ in ticks:
            ax.axvline(t, color="0.8", lw=0.8, zorder=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(y_label(name, entry))


def y_label(name: str, entry: dict) -> str:
    if "bin_centres" in entry:  # particles: n(x) or radial n(r), g(r)
        return "g(r)" if name == "pair_correlation" else f"n({entry.get('coordinate', 'x')})"
    if "k" in entry and name == "structure_factor":
        return "S(k)"
    return LABELS.get(name, name)


def axis_of(name: str, entry: dict):
    """(x values, x label, y transform, log y) of one observable's entry."""
    if "path" in entry:
        return entry["path"]["position"], "q along the path", np.asarray, False
    if name in CORRELATIONS:
        return entry["distance"], "distance r", lambda v: np.maximum(np.abs(v), 1e-12), True
    if "bin_centres" in entry:  # particles: n(x), g(r)
        return entry["bin_centres"], entry.get("coordinate", "x"), np.asarray, False
    if "k" in entry:  # particles: S(k)
        return entry["k"], "k", np.asarray, False
    return entry.get("site", list(range(len(entry["values"])))), "site", np.asarray, False


def draw_scalars(ax, scalars: dict, exact: dict, colour: str, label: str | None) -> None:
    names = list(scalars)
    pos = np.arange(len(names))
    ax.errorbar(pos, [scalars[n]["value"] for n in names], yerr=[scalars[n].get("error") or 0 for n in names],
                fmt="o", capsize=3, color=colour, label=label)
    known = [i for i, n in enumerate(names) if n in exact]
    if known:
        ax.plot(known, [exact[names[i]]["value"] for i in known], "kx", ms=8, label="exact" if label is None else None)
    ax.set_xticks(pos, [n.replace("_", "\n") for n in names], fontsize=7)
