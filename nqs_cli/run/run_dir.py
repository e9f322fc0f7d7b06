"""The run directory: config copies, metadata, metrics.jsonl, atomic checkpoints, result.json.

Layout (design §4): config.toml, resolved.json, meta.json, metrics.jsonl, checkpoints/,
result.json. Every file that replaces an older version is written to a temporary file,
fsynced and renamed, so a crash at any moment leaves either the old or the new file.
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

from flax import serialization

CHECKPOINT_FORMAT = 1
KEEP_CHECKPOINTS = 3
# Sections whose change alters the problem itself: a resume across such a change is refused.
PROBLEM_KEYS = ("dtype", "lattice", "hilbert", "space", "hamiltonian", "model", "sampler.n_chains")


class RunDirError(ValueError):
    """A missing, corrupt or foreign run directory (exit code 2)."""


def new_run_dir(runs_root: Path, name: str) -> Path:
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = runs_root / f"{name}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = runs_root / f"{name}-{stamp}-{suffix}"
    return path


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=True) + "\n").encode())


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDirError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc})") from None


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
    import flax
    import jax
    import jaxlib
    import optax

    from nqs_cli import __version__

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


# --------------------------------------------------------------------------- checkpoints


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:08d}.msgpack"


def save_checkpoint(run_dir: Path, state, config_hash: str, final: bool = False) -> Path:
    """Write the full VMC state atomically; keep the newest few (and any marked final)."""
    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    step = int(state.step)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config_hash": config_hash,
        "step": step,
        "state": serialization.to_state_dict(state),
    }
    path = checkpoint_path(run_dir, step)
    atomic_write_bytes(path, serialization.msgpack_serialize(payload))
    if final:
        (folder / "final").write_text(path.name + "\n")
    _prune(folder)
    return path


def _prune(folder: Path) -> None:
    final = (folder / "final").read_text().strip() if (folder / "final").exists() else None
    files = sorted(folder.glob("step_*.msgpack"))
    for old in files[:-KEEP_CHECKPOINTS]:
        if old.name != final:
            old.unlink(missing_ok=True)


def list_checkpoints(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "checkpoints").glob("step_*.msgpack"), reverse=True)


def load_checkpoint(path: Path, template, config_hash: str | None):
    """Restore a state shaped like ``template``; raises RunDirError if unreadable or foreign."""
    return restore_checkpoint(path.read_bytes(), template, config_hash, str(path))


def restore_checkpoint(data: bytes, template, config_hash: str | None, name: str):
    """The state in checkpoint bytes ``data`` (read from ``name``), shaped like ``template``."""
    try:
        payload = serialization.msgpack_restore(data)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise RunDirError(f"{name}: corrupt checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT or "state" not in payload:
        raise RunDirError(f"{name}: not an nqs checkpoint (format {payload.get('format') if isinstance(payload, dict) else '?'})")
    if config_hash is not None and payload.get("config_hash") != config_hash:
        raise RunDirError(f"{name}: checkpoint belongs to a different problem (config hash differs)")
    try:
        import jax

        return jax.device_put(serialization.from_state_dict(template, payload["state"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise RunDirError(f"{name}: checkpoint does not match this model/sampler ({exc})") from None


def newest_checkpoint(run_dir: Path, template, config_hash: str | None, warn=lambda msg: None):
    """(state, path, bytes) of the newest readable checkpoint, or (None, None, None); corrupt
    ones are skipped with a warning."""
    for path in list_checkpoints(run_dir):
        data = path.read_bytes()
        try:
            state = restore_checkpoint(data, template, config_hash, str(path))
        except RunDirError as exc:
            if "different problem" in str(exc) or "does not match" in str(exc):
                raise
            warn(f"{exc}; trying the previous one")
            continue
        return state, path, data
    return None, None, None


LAUNCH_PREFIX = "distributed."  # how a run is launched, not what it computes: never a config difference


def config_diff(old: dict, new: dict) -> list[tuple[str, Any, Any]]:
    from nqs_cli.config import flatten

    a, b = flatten(old), flatten(new)
    keys = [k for k in sorted(set(a) | set(b)) if not k.startswith(LAUNCH_PREFIX)]
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


def touches_problem(key: str) -> bool:
    return any(key == p or key.startswith(p + ".") for p in PROBLEM_KEYS)
