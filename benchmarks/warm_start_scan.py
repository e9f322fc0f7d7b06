"""Warm against cold starts on a Bose-Hubbard scan across the Mott transition.

    OPENBLAS_NUM_THREADS=1 python -m benchmarks.warm_start_scan [--U 2 3 4 5 6 8 10] [--n-iter 120] [--out runs/scan]

The shipped L = 8 chain (configs/bose_hubbard_1d.toml, N = 8, n_max = 3) is trained with `nqs
train` at every U twice: cold (random initial parameters) and warm (`--init-from` the warm run
at the previous U; the first U starts cold). An iteration count "to converge" is the first step
at which the mean energy of the last 10 iterations is within ``--tol`` (relative) of the exact
E0 (Lanczos); null when never reached. Prints one JSON line per U (cold and warm iterations,
final relative errors, condensate fraction and number fluctuation of the warm run from
observables.json) and a summary line. The warm runs are a scan directory for
`nqs report RUN… --x hamiltonian.U --plot scan.png`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "bose_hubbard_1d.toml"


def train(U: float, out: Path, n_iter: int, init_from: Path | None) -> None:
    cmd = [sys.executable, "-m", "nqs_cli", "train", str(CONFIG), "--set", f"hamiltonian.U={U}", "--out", str(out), "--n-iter", str(n_iter), "--quiet"]
    if init_from is not None:
        cmd += ["--init-from", str(init_from)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})


def iterations_to_converge(run: Path, tol: float, window: int = 10) -> tuple[int | None, float]:
    """(first step whose trailing mean energy is within ``tol`` of E0, the final relative error)."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    result = json.loads((run / "result.json").read_text())
    exact = result["exact_energy"]
    e = np.array([r["energy"] for r in rows])
    for t in range(window, len(e) + 1):
        if abs(np.mean(e[t - window : t]) - exact) <= tol * abs(exact):
            return int(rows[t - 1]["step"]), result["relative_error"]
    return None, result["relative_error"]


def scalar(run: Path, name: str):
    path = run / "observables.json"
    return json.loads(path.read_text())["scalars"].get(name) if path.exists() else None


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--U", type=float, nargs="+", default=[2, 3, 4, 5, 6, 8, 10])
    ap.add_argument("--n-iter", type=int, default=120)
    ap.add_argument("--tol", type=float, default=1e-2)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "warm-start-scan")
    args = ap.parse_args(argv)
    previous, totals = None, {"cold": [], "warm": []}
    for U in args.U:
        cold = args.out / f"cold-U{U:g}"
        warm = args.out / f"warm-U{U:g}"
        train(U, cold, args.n_iter, None)
        train(U, warm, args.n_iter, previous)
        line = {"U": U, "warm_from": None if previous is None else previous.name}
        for kind, run in (("cold", cold), ("warm", warm)):
            it, rel = iterations_to_converge(run, args.tol)
            line[f"{kind}_iterations"], line[f"{kind}_rel_error"] = it, rel
            totals[kind].append(args.n_iter if it is None else it)
        line["condensate_fraction"] = scalar(warm, "condensate_fraction")
        line["number_fluctuation"] = scalar(warm, "number_fluctuation")
        print(json.dumps(line), flush=True)
        previous = warm
    # the first U has nothing to start from: compare the points that had a warm start
    print(json.dumps({"summary": True, "tol": args.tol, "n_iter": args.n_iter, "cold_mean_iterations": float(np.mean(totals["cold"][1:])),
                      "warm_mean_iterations": float(np.mean(totals["warm"][1:])), "note": "a point that never converged counts as n_iter"}), flush=True)


if __name__ == "__main__":
    main()
