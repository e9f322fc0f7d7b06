"""Checkpoints: the full VMC state in msgpack (flax.serialization), written atomically.

``checkpoints/step_XXXXXXXX.msgpack`` holds params, optimiser state, chain state and step,
with the problem's config hash; the newest few are kept (and the final one). No pickle.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import jax
import numpy as np
from flax import serialization

from nqs_cli.run.files import RunDirError, atomic_write_bytes, read_regular

CHECKPOINT_FORMAT = 2  # 2: the state as msgpack bytes with their SHA-256; 1 (read only): the state inline
KEEP_CHECKPOINTS = 3


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step_{step:08d}.msgpack"


def save_checkpoint(run_dir: Path, state, config_hash: str, final: bool = False, seed: int | None = None) -> Path:
    """Write the full VMC state atomically with a checksum; keep the newest few (and any
    marked final)."""
    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    step = int(state.step)
    body = serialization.msgpack_serialize(serialization.to_state_dict(state))
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config_hash": config_hash,
        "step": step,
        "seed": seed,
        "state": body,
        "sha256": hashlib.sha256(body).hexdigest(),
    }
    path = checkpoint_path(run_dir, step)
    if path.exists() and not path.is_file():
        raise RunDirError(f"{path}: not a regular file where nqs writes the checkpoint of step {step}; move it away and rerun the same command")
    atomic_write_bytes(path, serialization.msgpack_serialize(payload))
    if final:
        atomic_write_bytes(folder / "final", (path.name + "\n").encode())
    _prune(folder)
    return path


def _prune(folder: Path) -> None:
    final = read_regular(folder / "final").decode(errors="replace").strip() if (folder / "final").is_file() else None
    files = sorted(p for p in folder.glob("step_*.msgpack") if p.is_file())
    for old in files[:-KEEP_CHECKPOINTS]:
        if old.name != final:
            old.unlink(missing_ok=True)


def checkpoint_step(path: Path) -> int:
    """The step in a checkpoint's file name (step_XXXXXXXX.msgpack)."""
    return int(path.stem.split("_")[1])


def list_checkpoints(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "checkpoints").glob("step_*.msgpack"), reverse=True)


def load_checkpoint(path: Path, template, config_hash: str | None):
    """Restore a state shaped like ``template``; raises RunDirError if unreadable or foreign."""
    return restore_checkpoint(read_regular(path), template, config_hash, str(path))


class ForeignCheckpoint(RunDirError):
    """A readable checkpoint of another problem (its config hash differs)."""


class ModelMismatch(RunDirError):
    """An intact checkpoint of this problem whose parameter tree or shapes differ from the model
    built now: the model was resolved differently when it was written (another default)."""


def restore_checkpoint(data: bytes, template, config_hash: str | None, name: str, seed: int | None = None, valid=None):
    """The state in checkpoint bytes ``data`` (read from ``name``), shaped like ``template``:
    checksum, step, tree structure, shapes, dtypes and finiteness are checked, and with
    ``valid(x) -> bool`` the chains' configurations; RunDirError (ForeignCheckpoint for another
    problem's, or another seed's when ``seed`` is given) names what is wrong."""
    try:
        payload = serialization.msgpack_restore(data)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise RunDirError(f"{name}: corrupt checkpoint ({exc.__class__.__name__})") from None
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if fmt not in (1, CHECKPOINT_FORMAT) or "state" not in payload:
        raise RunDirError(f"{name}: not an nqs checkpoint (format {fmt if fmt is not None else '?'})")
    if config_hash is not None and payload.get("config_hash") != config_hash:
        raise ForeignCheckpoint(f"{name}: checkpoint belongs to a different problem (config hash differs)")
    if seed is not None and payload.get("seed") is not None and payload.get("seed") != seed:
        raise ForeignCheckpoint(f"{name}: checkpoint written by a run with seed {payload.get('seed')}, this config has seed {seed}; "
                                f"rerun with --force to continue it with seed {seed}, or use another --out")
    state = payload["state"]
    if fmt == 2:
        if not isinstance(state, bytes) or hashlib.sha256(state).hexdigest() != payload.get("sha256"):
            raise RunDirError(f"{name}: corrupt checkpoint (checksum mismatch)")
        try:
            state = serialization.msgpack_restore(state)
        except Exception as exc:
            raise RunDirError(f"{name}: corrupt checkpoint ({exc.__class__.__name__})") from None
    chains = state.get("chains") if isinstance(state, dict) else None
    if isinstance(chains, dict) and "width" not in chains and "x" in chains:
        # written before the chains carried their proposal width: start it at 1
        chains["width"] = serialization.to_state_dict(template.chains)["width"]
    if isinstance(state, dict) and "chains" in state:
        # written before the state kept the previous SR direction and the parameter average
        if "direction" not in state:
            state["direction"] = serialization.to_state_dict(template.direction)
        if "average" not in state:
            state["average"] = serialization.to_state_dict(template.average) if isinstance(template.average, tuple) else state.get("params")
    try:
        restored = serialization.from_state_dict(template, state)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelMismatch(f"{name}: checkpoint does not match this model/sampler ({exc.__class__.__name__})") from None
    mismatch = shape_problem(restored, template)
    if mismatch is not None:
        raise ModelMismatch(f"{name}: checkpoint does not match this model/sampler ({mismatch})")
    problem = state_problem(restored, template, payload.get("step"))
    if problem is None and valid is not None and not valid(restored.chains.x):
        problem = "chain configurations outside the Hilbert space (occupations, particle number or magnetisation)"
    if problem is not None:
        raise RunDirError(f"{name}: checkpoint does not match this model/sampler ({problem})")
    return jax.device_put(restored)


def shape_problem(state, template) -> str | None:
    """How ``state``'s tree, shapes or dtypes differ from ``template``'s (a model built
    otherwise), or None."""
    paths_t, tree_t = jax.tree_util.tree_flatten_with_path(template)
    leaves = jax.tree_util.tree_leaves(state)
    if len(leaves) != len(paths_t) or jax.tree_util.tree_structure(state) != tree_t:
        return "a different parameter tree"
    for (path, want), got in zip(paths_t, leaves):
        got = np.asarray(got)
        if got.shape != np.shape(want) or got.dtype != np.asarray(want).dtype:
            return f"{jax.tree_util.keystr(path)}: {got.dtype}{list(got.shape)} where {np.asarray(want).dtype}{list(np.shape(want))} is expected"
    return None


def state_problem(state, template, step) -> str | None:
    """Why ``state`` (restored from a checkpoint, of ``template``'s shapes) cannot continue
    ``template``'s run, or None."""
    paths_t = jax.tree_util.tree_flatten_with_path(template)[0]
    for (path, _), got in zip(paths_t, jax.tree_util.tree_leaves(state)):
        got = np.asarray(got)
        if np.issubdtype(got.dtype, np.inexact) and not np.all(np.isfinite(got)):
            return f"{jax.tree_util.keystr(path)}: non-finite values"
    if not isinstance(step, int) or step < 0 or int(state.step) != step:
        return f"step {step!r} does not match the state's step {int(state.step)}"
    return None


def newest_checkpoint(run_dir: Path, template, config_hash: str | None, warn=lambda msg: None, seed: int | None = None, valid=None):
    """(state, path, bytes) of the newest readable checkpoint, or (None, None, None); corrupt
    ones are skipped with a warning, one of another problem raises ForeignCheckpoint. When
    none is usable and the newest intact one was written for a differently built model (a
    ModelMismatch), that is raised: the run was made with other model settings, and starting
    it again would discard it."""
    mismatch = None
    for path in list_checkpoints(run_dir):
        try:
            data = read_regular(path)
            state = restore_checkpoint(data, template, config_hash, str(path), seed, valid)
            if int(state.step) != checkpoint_step(path):  # a copy, a restore from a backup, a forgery
                raise RunDirError(f"{path}: its name says step {checkpoint_step(path)} but it holds step {int(state.step)}")
        except ForeignCheckpoint:
            raise
        except (RunDirError, OSError) as exc:
            mismatch = mismatch or (exc if isinstance(exc, ModelMismatch) else None)
            warn(f"{exc}; trying the previous one")
            continue
        return state, path, data
    if mismatch is not None:
        raise ModelMismatch(f"{mismatch}: the run was made with other model settings (or another version's defaults); "
                            "give them as they were with --set and --force to continue it (nqs validate on its config.toml "
                            "shows what they resolve to now), or --force alone to start it again")
    return None, None, None


def params_from_checkpoint(data: bytes, template_params, name: str):
    """The reported parameters (the running average when the run kept one, see
    ``vmc.step.final_params``) in checkpoint bytes ``data`` (read from ``name``) as a tree like
    ``template_params``, for a warm start: only the parameters are read (another sampler or
    optimiser is fine); RunDirError names the first leaf whose tree, shape or dtype differs."""
    try:
        payload = serialization.msgpack_restore(data)
        state = payload["state"]
        if payload.get("format") == CHECKPOINT_FORMAT:
            if hashlib.sha256(state).hexdigest() != payload.get("sha256"):
                raise RunDirError(f"{name}: corrupt checkpoint (checksum mismatch)")
            state = serialization.msgpack_restore(state)
        average = state.get("average")
        raw = average if isinstance(average, dict) and average else state["params"]  # the run's reported (averaged) parameters
    except RunDirError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise RunDirError(f"{name}: corrupt checkpoint ({exc.__class__.__name__})") from None
    want = serialization.to_state_dict(template_params)
    flat_want = dict(_flat_items(want))
    flat_got = dict(_flat_items(raw)) if isinstance(raw, dict) else {}
    for key in sorted(set(flat_want) | set(flat_got)):
        if key not in flat_got:
            problem = f"{key}: missing (its parameter tree is another model's)"
        elif key not in flat_want:
            problem = f"{key}: not a parameter of this model"
        else:
            got, exp = np.asarray(flat_got[key]), np.asarray(flat_want[key])
            if got.shape == exp.shape and got.dtype == exp.dtype and (not np.issubdtype(got.dtype, np.inexact) or np.all(np.isfinite(got))):
                continue
            if got.shape == exp.shape and got.dtype == exp.dtype:
                problem = f"{key}: non-finite values"
            else:
                problem = f"{key}: {got.dtype}{list(got.shape)} where this model has {exp.dtype}{list(exp.shape)}"
        raise RunDirError(f"{name}: {problem}")
    return jax.device_put(serialization.from_state_dict(template_params, raw))


def _flat_items(tree, prefix: str = ""):
    for k, v in tree.items():
        key = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, dict):
            yield from _flat_items(v, key)
        else:
            yield key, v
