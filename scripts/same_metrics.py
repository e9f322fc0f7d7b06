"""Check that a code change leaves training bit for bit unchanged.

Trains every shipped config (or the ones named) for a few iterations with the code of a base
revision and with the working tree, then compares the two metrics.jsonl files field by field,
every field but the wall-clock ones. Exit 0 when all are identical, 1 otherwise.

    python scripts/same_metrics.py --base HEAD~3            # configs/*.toml, 30 iterations
    python scripts/same_metrics.py --base v0.1 --n-iter 10 configs/harmonic_trap.toml

The base revision runs from a temporary `git worktree`, imported through PYTHONPATH, with the
same interpreter (so the same jax, flax and optax). `--keep DIR` keeps both run directories.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WALL_CLOCK = {"wall_s"}


def train(code: Path, config: Path, out: Path, n_iter: int) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=str(code), JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "nqs_cli", "train", str(config), "--n-iter", str(n_iter), "--out", str(out), "--quiet"]
    proc = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{config} ({code}): exit {proc.returncode}\n{proc.stderr}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in row.items() if k not in WALL_CLOCK} for row in rows]


def differences(base: list[dict], new: list[dict]) -> list[str]:
    if len(base) != len(new):
        return [f"{len(base)} rows before, {len(new)} after"]
    out = []
    for a, b in zip(base, new):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key) and not (a.get(key) != a.get(key) and b.get(key) != b.get(key)):  # NaN == NaN
                out.append(f"step {a.get('step')}: {key} {a.get(key)!r} -> {b.get(key)!r}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("configs", nargs="*", type=Path, help="configs to train (default: configs/*.toml)")
    parser.add_argument("--base", required=True, help="git revision to compare the working tree with")
    parser.add_argument("--n-iter", type=int, default=30)
    parser.add_argument("--keep", type=Path, default=None, help="keep the run directories here")
    args = parser.parse_args()
    configs = [c.resolve() for c in args.configs] or sorted((ROOT / "configs").glob("*.toml"))
    scratch = Path(tempfile.mkdtemp(prefix="same-metrics-"))
    runs = args.keep.resolve() if args.keep else scratch / "runs"
    worktree = scratch / "base"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.base], check=True, capture_output=True)
    failed = 0
    try:
        for config in configs:
            base = train(worktree, config, runs / "base" / config.stem, args.n_iter)
            new = train(ROOT, config, runs / "new" / config.stem, args.n_iter)
            diff = differences(base, new)
            status = "identical" if not diff else f"DIFFERENT ({len(diff)} values)"
            print(f"{config.name}: {len(new)} rows, {status}")
            for line in diff[:10]:
                print(f"  {line}")
            failed += bool(diff)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], capture_output=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
