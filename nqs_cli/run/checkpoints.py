"""Checkpoints: the full VMC state in msgpack (flax.serialization), written atomically.

``checkpoints/step_XXXXXXXX.msgpack`` holds params, optimiser state, chain state and step,
with the problem's config hash; the newest few are kept (and the final one). No pickle.
"""

from __future__ import annotations

from pathlib import Path

import jax
from flax import serialization

from nqs_cli.run.files import RunDirError, atomic_write_bytes

CHECKPOINT_FORMAT = 1
KEEP_CHECKPOINTS = 3


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
    state = payload["state"]
    chains = state.get("chains") if isinstance(state, dict) else None
    if isinstance(chains, dict) and "width" not in chains and "x" in chains:
        # written before the chains carried their proposal width: start it at 1
        chains["width"] = serialization.to_state_dict(template.chains)["width"]
    try:
        return jax.device_put(serialization.from_state_dict(template, state))
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
