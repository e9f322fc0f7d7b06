"""Observables with defaults against exact diagonalisation on 12–18-site systems that no shipped
config holds: each system trained by `nqs train` (defaults, the shipped configs' sampler and
300 iterations), its exact observables from `nqs exact RUN`, then every density, correlation
and condensate fraction (and the scalars) compared within max(4σ, 0.02), S(q) at its maximum
within 3 % (run/observable_check).

    python -m benchmarks.observables_accuracy [--only NAME ...] [--n-iter 300] [--root DIR]

One JSON line per system, then a summary line: {"systems": n, "passed": n}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nqs_cli.run import observable_check

SAMPLER = {"n_chains": 16, "n_samples": 1008}
SPIN = {"hilbert": {"kind": "spin", "s": 0.5, "total_sz": 0}, "sampler": {"kind": "metropolis-exchange", **SAMPLER}}


def bosons(n_max: int, n: int, U: float) -> dict:
    return {"hilbert": {"kind": "fock", "n_max": n_max, "n_particles": n}, "hamiltonian": {"kind": "bose-hubbard", "J": 1.0, "U": U},
            "sampler": {"kind": "metropolis-hamiltonian", **SAMPLER}}


SYSTEMS = {
    "heisenberg-ladder-6x2": {"lattice": {"graph": "square", "length": [6, 2], "pbc": [True, False]}, **SPIN, "hamiltonian": {"kind": "heisenberg"}},
    "heisenberg-square-4x4": {"lattice": {"graph": "square", "length": 4}, **SPIN, "hamiltonian": {"kind": "heisenberg"}},
    "heisenberg-honeycomb-3x3": {"lattice": {"graph": "honeycomb", "length": 3}, **SPIN, "hamiltonian": {"kind": "heisenberg"}},
    "xxz-ring-14-delta2": {"lattice": {"graph": "chain", "length": 14}, **SPIN, "hamiltonian": {"kind": "heisenberg", "delta": 2.0}},
    "spin1-open-chain-10": {"lattice": {"graph": "chain", "length": 10, "pbc": False}, "hilbert": {"kind": "spin", "s": 1, "total_sz": 0},
                            "hamiltonian": {"kind": "heisenberg"}, "sampler": {"kind": "metropolis-hamiltonian", **SAMPLER}},
    "spin1-ring-12": {"lattice": {"graph": "chain", "length": 12}, "hilbert": {"kind": "spin", "s": 1, "total_sz": 0},
                      "hamiltonian": {"kind": "heisenberg"}, "sampler": {"kind": "metropolis-hamiltonian", **SAMPLER}},
    "bose-hubbard-ladder-6x2-U6": {"lattice": {"graph": "square", "length": [6, 2], "pbc": [True, False]}, **bosons(2, 12, 6.0)},
    "bose-hubbard-torus-4x3-U8": {"lattice": {"graph": "square", "length": [4, 3]}, **bosons(2, 12, 8.0)},
    "bose-hubbard-open-chain-12-U3": {"lattice": {"graph": "chain", "length": 12, "pbc": False}, **bosons(2, 12, 3.0)},
    "bose-hubbard-custom-12-U4": {"lattice": {"graph": "custom", "length": 12,
                                              "edges": [[i, (i + 1) % 12] for i in range(12)] + [[0, 6], [3, 9]]}, **bosons(2, 12, 4.0)},
}
def toml(name: str, system: dict, n_iter: int) -> str:
    lines = [f'name = "{name}"', "seed = 11"]
    for section, table in {**system, "model": {"kind": "rbm-multival", "alpha": 1}, "train": {"n_iter": n_iter}}.items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def run_system(name: str, system: dict, root: Path, n_iter: int) -> dict:
    cfg = root / f"{name}.toml"
    cfg.write_text(toml(name, system, n_iter))
    run = root / name
    start = time.monotonic()
    train = subprocess.run([sys.executable, "-m", "nqs_cli", "train", str(cfg), "--out", str(run), "--quiet"], capture_output=True, text=True)
    wall = time.monotonic() - start
    if train.returncode != 0:
        return {"system": name, "error": (train.stderr or train.stdout).strip().splitlines()[-1:]}
    subprocess.run([sys.executable, "-m", "nqs_cli", "exact", str(run)], capture_output=True, text=True, check=True)
    result = json.loads((run / "result.json").read_text())
    measured = json.loads((run / "observables.json").read_text())
    exact = json.loads((run / "exact_observables.json").read_text())
    worst = observable_check.deviations(measured, exact)
    passed = not observable_check.off(worst)
    return {"system": name, "relative_error": result.get("relative_error"), "v_score": result.get("v_score"), "wall_s": round(wall, 1),
            "passed": passed, "observables": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--n-iter", type=int, default=300)
    parser.add_argument("--root", type=Path, default=None)
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="nqs-observables-"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, system in SYSTEMS.items():
        if args.only and name not in args.only:
            continue
        row = run_system(name, system, root, args.n_iter)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(json.dumps({"systems": len(rows), "passed": sum(bool(r.get("passed")) for r in rows), "root": str(root)}), flush=True)


if __name__ == "__main__":
    main()
