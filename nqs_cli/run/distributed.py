"""Multi-process runs: starting ``jax.distributed`` and the host-side collectives of the runner.

Every process runs the same program on its own devices; the global device mesh spans them
all (see devices.py). Process 0 is the lead: it alone reads and writes the run directory
and prints. What the others need from it (the resume decision, the checkpoint) is broadcast,
so they never touch the file system, and stop decisions (signals, deadlines) are agreed by
all processes before each iteration so that none is left waiting in a collective.

On a single process every helper here is a plain local operation.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import sys
import time
from typing import Mapping

import jax
import numpy as np

ENV_COORDINATOR = "NQS_COORDINATOR"
ENV_NUM_PROCESSES = "NQS_NUM_PROCESSES"
ENV_PROCESS_ID = "NQS_PROCESS_ID"


class DistributedError(ValueError):
    """The multi-process set-up failed or is inconsistent (exit code 2)."""


def _env_int(environ: Mapping[str, str], name: str) -> int:
    value = environ[name]
    try:
        return int(value)
    except ValueError:
        raise DistributedError(f"{name}: expected an integer, got {value!r}") from None


def launch_settings(d, environ: Mapping[str, str] = os.environ) -> dict | None:
    """Keyword arguments for ``jax.distributed.initialize``, or None for a single process.

    Explicit settings ([distributed] or the --coordinator/--num-processes/--process-id flags)
    win. Otherwise, when ``d.detect`` is on: NQS_COORDINATOR / NQS_NUM_PROCESSES /
    NQS_PROCESS_ID, then a SLURM step with several tasks (srun) or an Open MPI job with
    several ranks (mpirun), whose details JAX reads itself.
    """
    if d.coordinator is not None:
        if d.num_processes == 1:
            return None
        return {"coordinator_address": d.coordinator, "num_processes": d.num_processes, "process_id": d.process_id}
    if not d.detect:
        return None
    if ENV_COORDINATOR in environ:
        for name in (ENV_NUM_PROCESSES, ENV_PROCESS_ID):
            if name not in environ:
                raise DistributedError(f"{ENV_COORDINATOR} is set but {name} is not; set both (or neither)")
        n, pid = _env_int(environ, ENV_NUM_PROCESSES), _env_int(environ, ENV_PROCESS_ID)
        if n < 1 or not 0 <= pid < n:
            raise DistributedError(f"{ENV_PROCESS_ID}={pid} with {ENV_NUM_PROCESSES}={n}: expected 0 <= process id < number of processes")
        if n == 1:
            return None
        return {"coordinator_address": environ[ENV_COORDINATOR], "num_processes": n, "process_id": pid}
    if int(environ.get("SLURM_STEP_NUM_TASKS", "1") or 1) > 1 and "SLURM_PROCID" in environ:
        return {}
    if int(environ.get("OMPI_COMM_WORLD_SIZE", "1") or 1) > 1:
        return {}
    return None


def initialize(d, environ: Mapping[str, str] = os.environ) -> None:
    """Join the process group described by ``d`` / the environment (no-op for one process)."""
    settings = launch_settings(d, environ)
    if settings is None:
        return
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if "coordinator_address" in settings:
        # JAX aborts the process (no exception) on a host it cannot resolve: look first
        host = settings["coordinator_address"].rpartition(":")[0].strip("[]")
        try:
            socket.getaddrinfo(host, None)
        except OSError as exc:
            raise DistributedError(f"distributed.coordinator: cannot resolve the host {host!r} ({exc.strerror or exc})") from None
    if settings.get("process_id", 0) != 0:
        # ... and when the coordinator never answers
        wait_for_coordinator(settings["coordinator_address"], d.timeout_s)
    where = settings.get("coordinator_address", "the cluster environment")
    joined = threading.Event()
    threading.Thread(target=_abort_watch, args=(joined, d.timeout_s, where, settings.get("num_processes")), daemon=True).start()
    try:
        jax.distributed.initialize(**settings, initialization_timeout=d.timeout_s)
    except Exception as exc:  # connection, timeout and launcher errors come in several types
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise DistributedError(f"distributed: could not join the process group via {where}: {detail}") from None
    finally:
        joined.set()
    # The CPU collectives announce their connections on standard output; make that first
    # connection now, with standard output pointed at standard error, to keep stdout for results.
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        any_process(False)
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _abort_watch(joined: threading.Event, timeout_s: float, where: str, n) -> None:
    """JAX aborts the process (SIGABRT, no exception) when a peer never joins: end it first,
    with one line and exit code 2, a moment before JAX's own timeout."""
    if not joined.wait(max(timeout_s - 2.0, 0.5)):
        peers = f"all {n} processes" if n else "every process"
        message = f"error: distributed: the process group via {where} did not form within {timeout_s:g} s; start {peers} (distributed.timeout_s)\n"
        try:
            os.write(2, message.encode())
        finally:
            os._exit(2)


def wait_for_coordinator(address: str, timeout_s: float) -> None:
    """Return once ``host:port`` accepts a TCP connection; DistributedError after ``timeout_s``."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise DistributedError(
                    f"distributed: could not join the process group via {address}: no coordinator answered within {timeout_s:g} s ({exc.strerror or exc})"
                ) from None
            time.sleep(0.2)


def process_count() -> int:
    return jax.process_count()


def is_lead() -> bool:
    return jax.process_index() == 0


def any_process(flag: bool) -> bool:
    """True on every process when ``flag`` is true on any of them."""
    if jax.process_count() == 1:
        return bool(flag)
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.int32(bool(flag)))))


def broadcast_bytes(data: bytes | None) -> bytes:
    """The lead's ``data`` on every process (the others pass None)."""
    if jax.process_count() == 1:
        return data
    from jax.experimental import multihost_utils

    mine = np.frombuffer(data, np.uint8) if is_lead() else np.zeros(0, np.uint8)
    n = int(multihost_utils.broadcast_one_to_all(np.int64(mine.size)))
    buf = mine if is_lead() else np.zeros(n, np.uint8)
    return np.asarray(multihost_utils.broadcast_one_to_all(buf)).tobytes()


def broadcast_text(text: str | None) -> str:
    return broadcast_bytes(None if text is None else text.encode()).decode()


def broadcast_json(obj):
    """The lead's JSON-able ``obj`` on every process (the others pass None)."""
    return json.loads(broadcast_text(None if obj is None else json.dumps(obj)))


def to_host(tree):
    """Every leaf as a global numpy array (a collective when a leaf spans processes)."""

    def leaf(a):
        if isinstance(a, jax.Array) and not a.is_fully_addressable:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return np.asarray(a)

    return jax.tree_util.tree_map(leaf, tree)
