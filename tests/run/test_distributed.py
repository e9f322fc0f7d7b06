"""Many processes: jax.distributed launch settings, and 2 local CPU processes = 1 process."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from nqs_cli.config import DistributedConfig
from nqs_cli.run.distributed import DistributedError, launch_settings

# the 4-device parity problem (12 iterations, a checkpoint every 6), here split over 2 processes
from test_devices import CONFIG


# --------------------------------------------------------------------------- launch settings


def test_single_process_by_default():
    assert launch_settings(DistributedConfig(), {}) is None


def test_explicit_settings_win_over_the_environment():
    d = DistributedConfig(coordinator="node1:1234", num_processes=4, process_id=2)
    env = {"NQS_COORDINATOR": "other:1", "NQS_NUM_PROCESSES": "8", "NQS_PROCESS_ID": "0"}
    assert launch_settings(d, env) == {"coordinator_address": "node1:1234", "num_processes": 4, "process_id": 2}
    assert launch_settings(DistributedConfig(coordinator="h:1", num_processes=1, process_id=0), env) is None


def test_environment_variables():
    env = {"NQS_COORDINATOR": "h:99", "NQS_NUM_PROCESSES": "2", "NQS_PROCESS_ID": "1"}
    assert launch_settings(DistributedConfig(), env) == {"coordinator_address": "h:99", "num_processes": 2, "process_id": 1}
    assert launch_settings(DistributedConfig(detect=False), env) is None
    # srun with several tasks / mpirun with several ranks: JAX reads the launcher's variables
    assert launch_settings(DistributedConfig(), {"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "0"}) == {}
    assert launch_settings(DistributedConfig(), {"SLURM_STEP_NUM_TASKS": "1", "SLURM_PROCID": "0", "SLURM_NTASKS": "4"}) is None
    assert launch_settings(DistributedConfig(), {"OMPI_COMM_WORLD_SIZE": "2"}) == {}
    assert launch_settings(DistributedConfig(), {"OMPI_COMM_WORLD_SIZE": "1"}) is None


@pytest.mark.parametrize(
    "env, words",
    [
        ({"NQS_COORDINATOR": "h:1", "NQS_NUM_PROCESSES": "2"}, "NQS_PROCESS_ID"),
        ({"NQS_COORDINATOR": "h:1", "NQS_NUM_PROCESSES": "two", "NQS_PROCESS_ID": "0"}, "NQS_NUM_PROCESSES"),
        ({"NQS_COORDINATOR": "h:1", "NQS_NUM_PROCESSES": "2", "NQS_PROCESS_ID": "2"}, "NQS_PROCESS_ID"),
    ],
)
def test_bad_environment_is_named(env, words):
    with pytest.raises(DistributedError, match=words):
        launch_settings(DistributedConfig(), env)


@pytest.mark.parametrize(
    "args, key",
    [
        (["--coordinator", "localhost:1234"], "distributed.num_processes"),
        (["--coordinator", "localhost", "--num-processes", "2", "--process-id", "0"], "distributed.coordinator"),
        (["--coordinator", "localhost:1", "--num-processes", "2", "--process-id", "2"], "distributed.process_id"),
        (["--coordinator", "localhost:1", "--num-processes", "0", "--process-id", "0"], "distributed.num_processes"),
    ],
)
def test_bad_flags_exit_2_with_one_line(tmp_path, args, key):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    out = subprocess.run([sys.executable, "-m", "nqs_cli", "train", str(cfg), "--out", str(tmp_path / "r"), *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and str(cfg) in lines[0], out.stderr
    assert not (tmp_path / "r").exists()


def test_unreachable_coordinator_is_one_line(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG + "[distributed]\ntimeout_s = 2\n")
    out = subprocess.run(
        [sys.executable, "-m", "nqs_cli", "train", str(cfg), "--out", str(tmp_path / "r"),
         "--coordinator", f"127.0.0.1:{free_port()}", "--num-processes", "2", "--process-id", "1"],
        capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2
    last = out.stderr.strip().splitlines()[-1]
    assert "could not join the process group" in last, out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- two processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env_one_device():
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    return env


def start(args):
    return subprocess.Popen([sys.executable, "-m", "nqs_cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_one_device())


def two_processes(cfg, outs, extra=(), signal_rank1_after=None):
    """Run `nqs train` as 2 processes on this host (rank r writes to outs[r] if it writes at all)."""
    port = free_port()
    procs = [
        start(["train", str(cfg), "--out", str(outs[r]), "--quiet", "--coordinator", f"127.0.0.1:{port}",
               "--num-processes", "2", "--process-id", str(r), *extra])
        for r in range(2)
    ]
    if signal_rank1_after is not None:
        metrics = outs[0] / "metrics.jsonl"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and procs[0].poll() is None:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= signal_rank1_after:
                procs[1].send_signal(signal.SIGTERM)
                break
            time.sleep(0.05)
    results = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        results.append((p.returncode, out, err))
    return results


def one_process(cfg, out, extra=()):
    res = subprocess.run([sys.executable, "-m", "nqs_cli", "train", str(cfg), "--out", str(out), "--quiet", *extra],
                         capture_output=True, text=True, env=env_one_device(), timeout=300)
    assert res.returncode == 0, res.stderr
    return res


def rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_processes_match_one_and_checkpoints_move(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG)
    ref = tmp_path / "one"
    one_process(cfg, ref)

    lead, other = tmp_path / "lead", tmp_path / "other"
    results = two_processes(cfg, [lead, other])
    assert [r[0] for r in results] == [0, 0], results
    assert not other.exists()  # only process 0 writes
    assert "energy" in results[0][1] and results[1][1] == ""  # only process 0 prints
    meta = json.loads((lead / "meta.json").read_text())
    assert meta["n_processes"] == 2 and len(meta["devices"]) == 2
    got, want = rows(lead), rows(ref)
    assert [r["step"] for r in got] == list(range(1, 13))
    for g, w in zip(got, want):
        # within error bars, and in fact the same trajectory up to reduction order
        assert abs(g["energy"] - w["energy"]) <= 2 * w["energy_error"]
        assert g["energy"] == pytest.approx(w["energy"], rel=1e-7, abs=1e-7)
    res_lead = json.loads((lead / "result.json").read_text())
    res_ref = json.loads((ref / "result.json").read_text())
    assert abs(res_lead["energy"] - res_ref["energy"]) <= 2 * res_ref["energy_error"]

    # a 2-process checkpoint resumes on 1 process, and a 1-process one on 2
    one_process(cfg, lead, ["--n-iter", "16"])
    assert [r["step"] for r in rows(lead)] == list(range(1, 17))
    one_process(cfg, ref, ["--n-iter", "16"])
    assert rows(lead)[-1]["energy"] == pytest.approx(rows(ref)[-1]["energy"], rel=1e-7)
    results = two_processes(cfg, [ref, other], ["--n-iter", "20"])
    assert [r[0] for r in results] == [0, 0], results
    assert [r["step"] for r in rows(ref)] == list(range(1, 21))
    assert not other.exists()


@pytest.mark.slow
def test_a_signal_to_one_process_stops_both_with_a_checkpoint(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.replace("n_iter = 12", "n_iter = 400"))
    lead, other = tmp_path / "lead", tmp_path / "other"
    results = two_processes(cfg, [lead, other], signal_rank1_after=3)
    assert [r[0] for r in results] == [130, 130], results
    result = json.loads((lead / "result.json").read_text())
    assert result["status"] == "interrupted"
    done = result["n_iter"]
    assert 3 <= done < 400
    assert any(p.name == f"step_{done:08d}.msgpack" for p in (lead / "checkpoints").iterdir())
    assert not other.exists()


@pytest.mark.slow  # waits for distributed.timeout_s
def test_a_peer_that_never_joins_ends_with_one_line_not_an_abort(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "c.toml"
    cfg.write_text('[lattice]\nlength = 4\n[hilbert]\nkind = "fock"\nn_max = 2\nn_particles = 4\n[hamiltonian]\nkind = "bose-hubbard"\n'
                   "[sampler]\nn_chains = 4\nn_samples = 64\n[distributed]\ntimeout_s = 6\n")
    proc = subprocess.run([sys.executable, "-m", "nqs_cli", "train", str(cfg), "--out", str(tmp_path / "run"), "--n-iter", "2",
                           "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", "0"],
                          capture_output=True, text=True, timeout=120, env={**os.environ})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: distributed: the process group")
