"""The end of a run: how much of `nqs train`'s wall time comes after its last iteration.

    OPENBLAS_NUM_THREADS=1 python -m benchmarks.end_of_run [--config configs/bose_hubbard_1d.toml] [--n-iter 150] [--set K=V]...
        [--scan hamiltonian.U=2,4,6 --out runs/scan]

With ``--scan KEY=V1,V2,…`` it is a warm-started scan as in the README (each point `--init-from`
the previous one, run directories kept under ``--out``), one line per point.

Runs `nqs train CONFIG --n-iter N --quiet` as a user would (a fresh process, a fresh run
directory) and prints one JSON line: the process's wall time, the iterations' own time (the sum
of metrics.jsonl's wall_s, compilation of the step included), the start before them and the end
after them (from the moment the last metrics row was written to the exit: the final estimate,
the observables, the exact comparison, result.json), the end's share of the wall time, the
final estimate's samples and its error bar against the trajectory's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(config: Path, n_iter: int, overrides: list[str], keep: Path | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run" if keep is None else keep
        cmd = [sys.executable, "-m", "nqs_cli", "train", str(config), "--out", str(out), "--n-iter", str(n_iter), "--quiet"]
        cmd += [a for o in overrides for a in ("--set", o)]
        start = time.time()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
        end = time.time()
        if proc.returncode != 0:
            raise SystemExit(f"nqs train exited {proc.returncode}: {proc.stderr.strip()[-500:]}")
        metrics = out / "metrics.jsonl"
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
        last_row = metrics.stat().st_mtime
        result = json.loads((out / "result.json").read_text())
        last_write = max(p.stat().st_mtime for p in out.rglob("*") if p.is_file())
    iterations = sum(r["wall_s"] for r in rows)
    after = end - last_row
    return {
        "config": str(config.relative_to(ROOT) if config.is_relative_to(ROOT) else config),
        "n_iter": n_iter,
        "overrides": overrides,
        "wall_s": round(end - start, 2),
        "iterations_s": round(iterations, 2),
        "start_s": round(last_row - start - iterations, 2),
        "after_last_iteration_s": round(after, 2),
        "after_share": round(after / (end - start), 3),
        "exit_after_last_write_s": round(end - last_write, 2),
        "final_samples": result.get("final_samples"),
        "final_error": result.get("energy_error"),
        "trajectory_error": result.get("trajectory_energy_error"),
        "relative_error": result.get("relative_error"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "bose_hubbard_1d.toml")
    parser.add_argument("--n-iter", type=int, default=150)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--scan", help="KEY=V1,V2,…: a warm-started scan over KEY")
    parser.add_argument("--out", type=Path, default=Path("runs") / "end-of-run-scan")
    args = parser.parse_args(argv)
    if args.scan is None:
        print(json.dumps(measure(args.config.resolve(), args.n_iter, args.overrides)), flush=True)
        return 0
    key, values = args.scan.split("=", 1)
    previous = None
    for value in values.split(","):
        out = (args.out / f"{key}-{value}").resolve()
        extra = [f"{key}={value}"] + ([f'train.init_from="{previous}"'] if previous else [])
        print(json.dumps({key: value, **measure(args.config.resolve(), args.n_iter, args.overrides + extra, keep=out)}), flush=True)
        previous = out
    return 0


if __name__ == "__main__":
    sys.exit(main())
