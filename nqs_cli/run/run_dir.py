"""The run directory: its name, metadata, metrics.jsonl and the resume rules.

Layout (design §4): config.toml, resolved.json, meta.json, metrics.jsonl, checkpoints/
(checkpoints.py), result.json. Writes go through files.py (atomic).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import flax
import jax
import jaxlib
import optax

from nqs_cli import __version__
from nqs_cli.config import flatten
from nqs_cli.run.files import atomic_write_bytes

# Sections whose change alters the problem itself: a resume across such a change is refused.
PROBLEM_KEYS = ("dtype", "lattice", "hilbert", "space", "hamiltonian", "model", "sampler.n_chains")


def new_run_dir(runs_root: Path, name: str) -> Path:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = runs_root / f"{name}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = runs_root / f"{name}-{stamp}-{suffix}"
    return path


def problem_hash(resolved: dict) -> str:
    """Hash of the config parts that define the problem (see PROBLEM_KEYS)."""
    picked = {k: _pick(resolved, k) for k in PROBLEM_KEYS}
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


def _pick(d: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(part)
    return d


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def meta(argv: list[str], seed: int) -> dict:
    return {
        "versions": {
            "nqs": __version__,
            "jax": jax.__version__,
            "jaxlib": jaxlib.__version__,
            "flax": flax.__version__,
            "optax": optax.__version__,
            "python": platform.python_version(),
        },
        "devices": [str(d) for d in jax.devices()],
        "x64": bool(jax.config.jax_enable_x64),
        "argv": argv,
        "seed": seed,
        "git_commit": git_commit(),
        "host": platform.node(),
        "started_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


# --------------------------------------------------------------------------- metrics


def append_metrics(path: Path, row: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_metrics(path: Path) -> list[dict]:
    """Rows of metrics.jsonl; a torn last line (crash mid-write) is dropped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return rows


def truncate_metrics(path: Path, step: int) -> None:
    """Keep exactly the rows with step <= ``step`` (atomically)."""
    rows = [r for r in read_metrics(path) if r.get("step", 0) <= step]
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows).encode())


LAUNCH_PREFIX = "distributed."  # how a run is launched, not what it computes: never a config difference


def config_diff(old: dict, new: dict) -> list[tuple[str, Any, Any]]:
    a, b = flatten(old), flatten(new)
    keys = [k for k in sorted(set(a) | set(b)) if not k.startswith(LAUNCH_PREFIX)]
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


def touches_problem(key: str) -> bool:
    return any(key == p or key.startswith(p + ".") for p in PROBLEM_KEYS)
