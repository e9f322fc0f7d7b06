"""Files of a run directory written so that a crash never leaves a half-written one.

Every file that replaces an older version is written to a temporary file, fsynced and
renamed, so a crash at any moment leaves either the old or the new file.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any


class RunDirError(ValueError):
    """A missing, corrupt or foreign run directory (exit code 2)."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # a full disk, a directory in the file's place: no temporary file is left
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
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


def read_regular(path: Path) -> bytes:
    """The bytes of ``path``, which must be a regular file: a FIFO, a device, a socket or a
    directory in its place is refused with RunDirError at once (opened without blocking, so a
    FIFO with no writer never hangs the command). FileNotFoundError passes through."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except IsADirectoryError:
        raise RunDirError(f"{path}: a directory where nqs keeps a file") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise RunDirError(f"{path}: not a regular file (a FIFO, a device or a socket); nqs reads only the files it wrote")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_json(path: Path) -> Any:
    try:
        return json.loads(read_regular(path).decode())
    except FileNotFoundError:
        raise RunDirError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc})") from None


NUMBER = (int, float)
RESULT_FIELDS = {
    "status": (str,), "estimate": (str,), "energy": NUMBER, "energy_error": NUMBER, "variance": NUMBER,
    "exact_energy": NUMBER, "relative_error": NUMBER, "trajectory_energy_error": NUMBER, "n_iter": (int,),
    "seconds_per_iteration": NUMBER, "compile_seconds": NUMBER, "r_hat": NUMBER, "acceptance": NUMBER, "warnings": (list,),
    "step": (int,),
}


def read_json_object(path: Path, fields: dict[str, tuple] = RESULT_FIELDS) -> dict:
    """A JSON object whose listed fields, when present and not null, have the listed types;
    RunDirError names the file and the field otherwise."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise RunDirError(f"{path}: expected a JSON object, got {type(data).__name__}")
    for key, types in fields.items():
        value = data.get(key)
        if value is not None and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            raise RunDirError(f"{path}: {key} = {json.dumps(value)[:40]} is not a {' or '.join(t.__name__ for t in types)}")
    return data
