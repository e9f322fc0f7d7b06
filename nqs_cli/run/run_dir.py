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
from nqs_cli.config import ConfigError, flatten, from_dict
from nqs_cli.run.files import RunDirError, atomic_write_bytes, read_regular

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


# Problem keys added after run directories were first written, with the value that leaves the
# problem as it was before them: at that value they are left out of the hash and of the resume
# comparison, so a run directory written before them resumes.
ADDED_KEYS = {
    "lattice.edges": None,
    "hamiltonian.trap": False,
    "hamiltonian.onsite": None,
    "hamiltonian.delta": 1.0,
    "hamiltonian.J2": 0.0,
    "hamiltonian.D": 0.0,
    "hamiltonian.h": 0.0,
    "model.symmetry": None,
    "model.features": None,
    "model.spiral_phase": None,
}


def _implied_dims(resolved: dict) -> bool:
    """Whether ``lattice.dims`` follows from the graph (all but a hypercube): older run
    directories wrote the default 1 there, newer ones the implied value; the hash takes 1."""
    lattice = resolved.get("lattice")
    return isinstance(lattice, dict) and lattice.get("graph") != "hypercube"


def problem_hash(resolved: dict) -> str:
    """Hash of the config parts that define the problem (see PROBLEM_KEYS and ADDED_KEYS)."""
    picked = {k: _pick(resolved, k) for k in PROBLEM_KEYS}
    if _implied_dims(resolved):
        picked["lattice"] = {**picked["lattice"], "dims": 1}
    for key, inert in ADDED_KEYS.items():
        section, name = key.split(".")
        if isinstance(picked.get(section), dict) and name in picked[section] and picked[section][name] == inert:
            picked[section] = {k: v for k, v in picked[section].items() if k != name}
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]


def _pick(d: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(d, dict):
            return None
        d = d.get(part)
    return d


PACKAGE = Path(__file__).resolve().parents[1]


def build_info() -> dict:
    """What the installed package was built from: nqs_cli/_build.json, written by the build
    (setup.py) into a non-editable install; {} when running from a checkout."""
    try:
        data = json.loads((PACKAGE / "_build.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def git_commit() -> str | None:
    """The commit of the code that runs: the checkout's HEAD when the package is a git checkout's
    (an editable install, a clone on PYTHONPATH), else the commit the install was built from."""
    try:
        out = subprocess.run(["git", "ls-files", "--error-unmatch", "__init__.py"], cwd=PACKAGE, capture_output=True, text=True, timeout=5)
        if out.returncode == 0:  # the package's own files are tracked here: a checkout
            head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PACKAGE, capture_output=True, text=True, timeout=5)
            if head.returncode == 0 and head.stdout.strip():
                return head.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return build_info().get("git_commit")


def meta(argv: list[str], seed: int) -> dict:
    built = build_info()
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
        "git_commit_from": "checkout" if not built else ("build with uncommitted changes" if built.get("git_dirty") else "build"),
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
    """Rows of metrics.jsonl. A torn last line (a crash or a full disk mid-write) is dropped;
    any other line that is not a JSON object with an integer ``step`` above the previous one
    raises RunDirError naming the line, so no later row is ever dropped silently."""
    if not path.exists():
        return []
    if not path.is_file():
        raise RunDirError(f"{path}: not a file")
    try:
        text = read_regular(path).decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: unreadable ({exc.__class__.__name__})") from None
    lines = text.split("\n")
    complete = text.endswith("\n")
    rows: list[dict] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() and not any(rest.strip() for rest in lines[number:]):
            break  # blank lines at the end hold nothing
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        problem = _bad_row(row, rows[-1]["step"] if rows else 0)
        if problem is None:
            rows.append(row)
            continue
        if number == len(lines) and not complete:
            break  # a torn last line: the write that a crash interrupted
        raise RunDirError(
            f"{path}: line {number} {problem}; nqs never drops rows silently: fix or delete that line "
            "(or move the file away) and rerun"
        )
    return rows


def _bad_row(row, previous_step: int) -> str | None:
    if not isinstance(row, dict):
        return "is not a JSON object"
    step = row.get("step")
    if not isinstance(step, int) or isinstance(step, bool):
        return "has no integer step"
    if step <= previous_step:
        return f"has step {step} after step {previous_step} (rows from two runs?)"
    for key in ("energy", "energy_error", "variance"):
        if not isinstance(row.get(key), (int, float)) or isinstance(row.get(key), bool):
            return f"has no number {key}"
    return None


def truncate_metrics(path: Path, step: int) -> list[dict]:
    """Keep exactly the rows with step <= ``step`` (atomically); returns the rows dropped, which
    the resumed run regenerates (``keep_replaced`` keeps any it does not reproduce)."""
    rows = read_metrics(path)
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in rows if r["step"] <= step).encode())
    return [r for r in rows if r["step"] > step]


WALL_CLOCK = ("wall_s",)  # fields that differ between two runs of the same step


def same_row(a: dict, b: dict) -> bool:
    """Whether two metrics rows of one step agree in everything but wall-clock time."""
    return {k: v for k, v in a.items() if k not in WALL_CLOCK} == {k: v for k, v in b.items() if k not in WALL_CLOCK}


def keep_replaced(path: Path, rows: list[dict]) -> Path | None:
    """Earlier metrics rows that a resume replaced by other values (or did not reach again) into
    ``metrics.jsonl.replaced`` (``.replaced-2``, … when taken): never deleted. None when there are none."""
    if not rows:
        return None
    target = free_name(path, "replaced")
    atomic_write_bytes(target, "".join(json.dumps(r) + "\n" for r in rows).encode())
    return target


def free_name(path: Path, suffix: str) -> Path:
    """``path.SUFFIX``, or ``path.SUFFIX-2``, … : the first name of that form not taken."""
    target = path.with_name(f"{path.name}.{suffix}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.{suffix}-{n}")
    return target


def set_aside(path: Path) -> Path:
    """Rename ``path`` to ``path.orphaned`` (or ``.orphaned-2``, … if taken); returns the new name."""
    target = free_name(path, "orphaned")
    os.replace(path, target)
    return target


# --------------------------------------------------------------------------- marker and lock

MARKER = ".nqs-run"
LOCK = "run.lock"
RUN_FILES = ("resolved.json", "metrics.jsonl", "meta.json")


def is_run_dir(path: Path) -> bool:
    """A directory nqs made: it has the marker, or (written before the marker existed) the
    files every run has, each as nqs writes it (``written_by_nqs``)."""
    return (path / MARKER).is_file() or written_by_nqs(path)


def written_by_nqs(path: Path) -> bool:
    """Whether ``path`` holds a run directory of a version before the marker: resolved.json
    validates as a config, meta.json has nqs's keys and metrics.jsonl's rows nqs's fields.
    Files of the same names with any other content are a user's, never to be touched."""
    if not all((path / name).is_file() for name in RUN_FILES):
        return False
    try:
        resolved = json.loads(read_regular(path / "resolved.json"))
        meta_data = json.loads(read_regular(path / "meta.json"))
        if not isinstance(resolved, dict) or not isinstance(meta_data, dict):
            return False
        versions = meta_data.get("versions")
        if not (isinstance(versions, dict) and "nqs" in versions and isinstance(meta_data.get("argv"), list) and "seed" in meta_data):
            return False
        from_dict(resolved, source=str(path / "resolved.json"), default_name=path.name)
        read_metrics(path / "metrics.jsonl")
    except (OSError, ValueError, ConfigError, RunDirError, TypeError):
        return False
    return True


def claim_directory(path: Path) -> None:
    """Make ``path`` a run directory: create it (or accept an empty one) and write the marker.
    A directory that holds anything else is refused: nqs never overwrites files it did not write."""
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: exists and is not a directory; choose another --out")
    if path.is_dir() and not is_run_dir(path):
        entries = [p.name for p in path.iterdir()]
        if entries:
            shown = ", ".join(sorted(entries)[:3]) + (", …" if len(entries) > 3 else "")
            raise RunDirError(f"{path}: exists and is not an nqs run directory (it holds {shown}); choose another --out")
    path.mkdir(parents=True, exist_ok=True)
    if not (path / MARKER).exists():
        atomic_write_bytes(path / MARKER, (json.dumps({"nqs": __version__}) + "\n").encode())


class RunLock:
    """An exclusive lock on a run directory for the life of one ``nqs train``: ``run.lock``
    holds the holder's pid and host, under an flock that the kernel releases when the process
    dies, so a lock left by a killed run is recognised as stale and taken over."""

    def __init__(self, path: Path):
        self.file = path / LOCK
        self.fd: int | None = None
        self.stale: dict | None = None

    def acquire(self) -> "RunLock":
        import fcntl

        fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_lock(fd)
            os.close(fd)
            who = f"pid {holder.get('pid')} on {holder.get('host')}" if holder else "another process"
            raise RunDirError(f"{self.file.parent}: in use by another nqs train ({who}); wait for it or choose another --out") from None
        previous = _read_lock(fd)
        if previous:
            self.stale = previous  # its holder died without releasing it (killed, crashed)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": platform.node(), "started_utc": _now()}).encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            try:
                self.file.unlink(missing_ok=True)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None


def lock_holder(path: Path) -> dict | None:
    """The live holder of ``path``'s lock ({"pid", "host", "started_utc"}: an nqs train running
    on it now), or None when no process holds it (a lock file left by a killed run is stale)."""
    import fcntl

    try:
        fd = os.open(path / LOCK, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        holder = _read_lock(fd)
        os.close(fd)
        return holder or {"pid": None, "host": None}
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)
    return None


def _read_lock(fd: int) -> dict:
    try:
        data = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def remove_temporaries(path: Path) -> int:
    """Delete the temporary files that killed writers left (``.NAME.tmp-PID``); the caller
    holds the lock, so no live writer owns them. Returns how many."""
    count = 0
    for folder in (path, path / "checkpoints"):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp-*"):
                tmp.unlink(missing_ok=True)
                count += 1
    return count


LAUNCH_PREFIX = "distributed."  # how a run is launched, not what it computes: never a config difference


def config_diff(old: dict, new: dict) -> list[tuple[str, Any, Any]]:
    a, b = flatten(old), flatten(new)
    for key, inert in ADDED_KEYS.items():  # absent from an older run directory: the value it implied
        for side, other in ((a, b), (b, a)):
            if key not in side and other.get(key, inert) == inert:
                side[key] = other.get(key, inert)
    if _implied_dims(old) and _implied_dims(new):
        a.pop("lattice.dims", None), b.pop("lattice.dims", None)
    keys = [k for k in sorted(set(a) | set(b)) if not k.startswith(LAUNCH_PREFIX)]
    return [(k, a.get(k), b.get(k)) for k in keys if a.get(k) != b.get(k)]


def touches_problem(key: str) -> bool:
    return any(key == p or key.startswith(p + ".") for p in PROBLEM_KEYS)
