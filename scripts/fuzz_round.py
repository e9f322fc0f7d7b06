"""A round of generated configs and run-directory faults, with seeds of its own.

    python scripts/fuzz_round.py [--seed round-2] [--configs 150] [--faults 60]

Configs: the mutations of tests/app/test_fuzz.py (overrides, rewritten text, flipped bytes) of
every shipped config, each through `nqs validate`: exit 0, or exit 2 with one line. Run
directories: a trained tiny run, copied, then one fault or two (a file deleted, emptied,
truncated, replaced by garbage, a FIFO, a directory or a dangling link; a checkpoint copied under
another step's name) and `nqs report`, `nqs evaluate` and a resuming `nqs train` on it: each
within a time limit, without a traceback, with exit 0 or one `error:` line; after an exit-0
train the directory holds every row up to the target and a completed result.json. Prints one
JSON line with the counts; exit 1 when any case broke a rule.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "app"))

from typer.testing import CliRunner  # noqa: E402

from nqs_cli.app.cli import app  # noqa: E402
from test_fuzz import mutations, validate_argv  # noqa: E402

runner = CliRunner()
TINY = """name = "fuzz"
seed = 5
[lattice]
length = 4
[hilbert]
kind = "fock"
n_max = 2
n_particles = 4
[hamiltonian]
kind = "bose-hubbard"
[sampler]
n_chains = 4
n_samples = 64
[train]
n_iter = 12
checkpoint_every = 4
"""


def within(seconds: float, fn):
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("value", fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    return box.get("value", "hang")


def one_line_or_ok(result) -> str | None:
    """None when the command kept the rules, else what it broke."""
    if result == "hang":
        return "hang"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        return f"traceback {result.exception!r}"
    if result.exit_code not in (0, 1, 2, 74, 75):
        return f"exit {result.exit_code}"
    if result.exit_code:
        errors = [ln for ln in result.output.splitlines() if ln.startswith("error: ")]
        if len(errors) != 1:
            return f"exit {result.exit_code} with {len(errors)} error lines"
    return None


def config_round(rng_seed: str, per_config: int, tmp: Path) -> tuple[int, list[str]]:
    broken, count = [], 0
    for config in sorted((ROOT / "configs").glob("*.toml")):
        text = config.read_text()
        for i, (kind, arg) in enumerate(mutations(random.Random(f"{rng_seed}-{config.stem}"), text, per_config)):
            problem = one_line_or_ok(runner.invoke(app, validate_argv(tmp / f"{config.stem}-{i}.toml", text, kind, arg)))
            count += 1
            if problem is not None:
                broken.append(f"{config.stem} {kind} {arg!r:.120}: {problem}")
    return count, broken


FAULTS = ("delete", "empty", "truncate", "garbage", "fifo", "directory", "dangling link", "copy checkpoint")


def damage(rng: random.Random, run: Path) -> str:
    files = [p for p in run.rglob("*") if p.is_file() and p.name not in ("run.lock",)]
    target = rng.choice(files)
    fault = rng.choice(FAULTS)
    if fault == "copy checkpoint":
        checkpoints = sorted((run / "checkpoints").glob("step_*.msgpack"))
        if len(checkpoints) >= 2:
            src, dst = rng.sample(checkpoints, 2)
            shutil.copyfile(src, dst)
            return f"{src.name} copied over {dst.name}"
        fault = "garbage"
    data = target.read_bytes()
    target.unlink()
    if fault == "delete":
        pass
    elif fault == "empty":
        target.write_bytes(b"")
    elif fault == "truncate":
        target.write_bytes(data[: rng.randrange(max(1, len(data)))])
    elif fault == "garbage":
        target.write_bytes(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))))
    elif fault == "fifo":
        os.mkfifo(target)
    elif fault == "directory":
        target.mkdir()
    else:
        target.symlink_to(run / "nowhere")
    return f"{fault} {target.relative_to(run)}"


def parse_row(line: str) -> dict | None:
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) and isinstance(row.get("step"), int) else None


def fault_round(rng_seed: str, n: int, tmp: Path) -> tuple[int, list[str]]:
    cfg = tmp / "tiny.toml"
    cfg.write_text(TINY)
    base = tmp / "base"
    assert runner.invoke(app, ["train", str(cfg), "--out", str(base), "--quiet", "--n-iter", "9"]).exit_code == 0
    rng = random.Random(f"{rng_seed}-faults")
    broken = []
    for i in range(n):
        run = tmp / f"run{i}"
        shutil.copytree(base, run, symlinks=True)
        what = "; ".join(damage(rng, run) for _ in range(rng.choice((1, 1, 2))))
        rows_before = (run / "metrics.jsonl").read_text(errors="replace") if (run / "metrics.jsonl").is_file() else None
        for argv in (["report", str(run)], ["evaluate", str(run), "--n-samples", "64"]):
            problem = one_line_or_ok(within(120, lambda argv=argv: runner.invoke(app, argv)))
            if problem is not None:
                broken.append(f"{what}: {argv[0]}: {problem}")
        result = runner.invoke(app, ["train", str(cfg), "--out", str(run), "--quiet"])
        problem = one_line_or_ok(result)
        if problem is not None:
            broken.append(f"{what}: train: {problem}")
        elif result.exit_code == 0:
            rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
            result = json.loads((run / "result.json").read_text())
            status, warned = result.get("status"), any(w.startswith("metrics.jsonl has no rows") for w in result.get("warnings", []))
            if ([r["step"] for r in rows] != list(range(1, 13)) and not warned) or status != "completed":
                broken.append(f"{what}: train exit 0 with steps {[r['step'] for r in rows]} and status {status}")
            before = [row for row in map(parse_row, (rows_before or "").splitlines()) if row is not None]
            aside = "".join(p.read_text() for p in run.glob("metrics.jsonl.*") if p.is_file())
            for row in before:  # an earlier row is either in metrics.jsonl as it was, or kept aside
                now = next((r for r in rows if r["step"] == row.get("step")), None)
                same = now is not None and {k: v for k, v in now.items() if k != "wall_s"} == {k: v for k, v in row.items() if k != "wall_s"}
                if not same and json.dumps(row) not in aside:
                    broken.append(f"{what}: train exit 0 lost the earlier row of step {row.get('step')}")
                    break
        shutil.rmtree(run, ignore_errors=True)
    return n, broken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", default="round-2")
    parser.add_argument("--configs", type=int, default=150, help="mutations per shipped config")
    parser.add_argument("--faults", type=int, default=60, help="damaged run directories")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        n_cfg, bad_cfg = config_round(args.seed, args.configs, Path(tmp))
        print(json.dumps({"seed": args.seed, "configs": n_cfg, "config_failures": bad_cfg}), flush=True)
        n_runs, bad_runs = fault_round(args.seed, args.faults, Path(tmp))
    print(json.dumps({"seed": args.seed, "configs": n_cfg, "config_failures": bad_cfg, "run_directories": n_runs, "run_failures": bad_runs}))
    return 1 if bad_cfg or bad_runs else 0


if __name__ == "__main__":
    sys.exit(main())
