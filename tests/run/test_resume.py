"""Runs that survive: resume reproduces the uninterrupted run; signals, kills, corrupt checkpoints, NaNs."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import pytest
from typer.testing import CliRunner

from nqs_cli.app.cli import app
from nqs_cli.vmc.loop import RunError, run_loop

runner = CliRunner()

CONFIG = """
name = "resume"
seed = 11
[lattice]
graph = "chain"
length = 4
[hilbert]
kind = "fock"
n_max = 2
n_particles = 4
[hamiltonian]
kind = "bose-hubbard"
U = 3.0
[sampler]
n_chains = 4
n_samples = 64
[train]
n_iter = 30
checkpoint_every = 4
"""


def metrics(path):
    """metrics.jsonl rows without the wall-clock time (the only field allowed to differ)."""
    rows = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("wall_s")
    return rows


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    cfg = root / "c.toml"
    cfg.write_text(CONFIG)
    result = runner.invoke(app, ["train", str(cfg), "--out", str(root / "ref"), "--quiet"])
    assert result.exit_code == 0, result.output
    return cfg, metrics(root / "ref")


def test_resume_reproduces_the_uninterrupted_run_bit_for_bit(reference, tmp_path):
    cfg, ref = reference
    out = tmp_path / "run"
    first = runner.invoke(app, ["train", str(cfg), "--out", str(out), "--n-iter", "13", "--quiet"])
    assert first.exit_code == 0, first.output
    # simulate a crash after step 13 whose metrics got ahead of the last checkpoint (step 13 is final)
    second = runner.invoke(app, ["train", str(cfg), "--out", str(out), "--quiet"])
    assert second.exit_code == 0, second.output
    assert "resuming" in second.output
    assert metrics(out) == ref


def test_metrics_are_truncated_back_to_the_checkpoint(reference, tmp_path):
    cfg, ref = reference
    out = tmp_path / "run"
    runner.invoke(app, ["train", str(cfg), "--out", str(out), "--n-iter", "10", "--quiet"])
    # steps 9..10 ran after the step-8 checkpoint; drop the final checkpoint as a kill would
    (out / "checkpoints" / "step_00000010.msgpack").unlink()
    with open(out / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 11, "energy": 0.0')  # a torn line from a crash mid-write
    result = runner.invoke(app, ["train", str(cfg), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert metrics(out) == ref


def test_corrupt_newest_checkpoint_falls_back_with_a_warning(reference, tmp_path):
    cfg, ref = reference
    out = tmp_path / "run"
    runner.invoke(app, ["train", str(cfg), "--out", str(out), "--n-iter", "12", "--quiet"])
    (out / "checkpoints" / "step_00000012.msgpack").write_bytes(b"\x00garbage")
    result = runner.invoke(app, ["train", str(cfg), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "corrupt checkpoint" in result.output
    assert metrics(out) == ref


# The kill tests run long enough (1 ms an iteration here) that the signal, sent once 6 rows
# exist, lands mid-training on a loaded machine too; the resumed run must still match the
# uninterrupted one.
KILL_N_ITER = "1000"


@pytest.fixture(scope="module")
def long_reference(reference, tmp_path_factory):
    cfg, _ = reference
    root = tmp_path_factory.mktemp("long")
    result = runner.invoke(app, ["train", str(cfg), "--out", str(root / "ref"), "--n-iter", KILL_N_ITER, "--quiet"])
    assert result.exit_code == 0, result.output
    return cfg, metrics(root / "ref")


def _spawn(cfg, out, *extra):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "nqs_cli", "train", str(cfg), "--out", str(out), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )


def _wait_for_rows(out, n, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        path = out / "metrics.jsonl"
        if path.exists() and len(path.read_text().splitlines()) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"training ended early: {proc.stdout.read()}")
        time.sleep(0.05)
    pytest.fail("no progress")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_killed_run_resumes_to_the_same_metrics(long_reference, tmp_path, sig):
    cfg, ref = long_reference
    out = tmp_path / "run"
    proc = _spawn(cfg, out, "--n-iter", KILL_N_ITER)
    _wait_for_rows(out, 6, proc)
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=120)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130, output
        result = json.loads((out / "result.json").read_text())
        assert result["status"] == "interrupted"
        assert result["n_iter"] < int(KILL_N_ITER)
        assert "Resume with" in output
    resumed = runner.invoke(app, ["train", str(cfg), "--out", str(out), "--n-iter", KILL_N_ITER, "--quiet"])
    assert resumed.exit_code == 0, resumed.output
    assert metrics(out) == ref


def test_a_signal_during_the_final_estimate_leaves_it_to_the_rerun(reference, tmp_path, monkeypatch):
    """Every step ran; SIGTERM arrives as the final estimate starts: exit 130, result.json says
    interrupted and why, and the rerun makes only the final estimate (metrics unchanged)."""
    import nqs_cli.run.training as training_module

    cfg, ref = reference
    out = tmp_path / "run"
    original = training_module.sample_energy

    def signalled(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kwargs)

    monkeypatch.setattr(training_module, "sample_energy", signalled)
    first = runner.invoke(app, ["train", str(cfg), "--out", str(out), "--quiet"])
    assert first.exit_code == 130, first.output
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "interrupted" and result["n_iter"] == 30
    assert "SIGTERM during the final estimate" in result["reason"]
    assert "interrupted during the final estimate" in first.output and "Resume with" in first.output
    monkeypatch.setattr(training_module, "sample_energy", original)
    second = runner.invoke(app, ["train", str(cfg), "--out", str(out), "--quiet"])
    assert second.exit_code == 0, second.output
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "completed" and result["final_samples"] > 0
    assert metrics(out) == ref


def fake_step(bad_steps, bad_calls=None):
    calls = {"n": 0}

    def step(state, key, scale=1.0):
        calls["n"] += 1
        step_no = int(state.step) + 1
        bad = step_no in bad_steps and (bad_calls is None or calls["n"] in bad_calls)
        e = math.nan if bad else -1.0
        stats = {k: jnp.asarray(v) for k, v in dict(energy=e, energy_error=0.1, variance=0.5, r_hat=1.0, tau_corr=0.0,
                                                     acceptance=0.5, grad_norm=1.0, update_norm=1.0, trace_s=1.0).items()}
        stats["params_finite"] = jnp.asarray(True)
        return state.replace(step=state.step + 1), stats

    return step


class _State:
    def __init__(self, step):
        self.step = jnp.asarray(step)

    def replace(self, step):
        return _State(step)


def test_nonfinite_stop_names_step_and_quantity():
    import jax

    seen = []
    with pytest.raises(RunError, match=r"non-finite energy at step 3"):
        run_loop(fake_step({3}), _State(0), jax.random.key(0), 5, lambda s, rec: seen.append(rec.step))
    assert seen == [1, 2]


def test_nonfinite_revert_retries_with_a_fresh_key_and_counts():
    import jax

    seen = []
    key = jax.random.key(0)
    state, status = run_loop(fake_step({3}, bad_calls={3, 4}), _State(0), key, 5, lambda s, rec: seen.append(rec),
                             on_nonfinite="revert", patience=3)
    assert status == "completed" and [r.step for r in seen] == [1, 2, 3, 4, 5]
    assert seen[2].stats["reverts"] == 2
    with pytest.raises(RunError, match="persisted through 2 reverts"):
        run_loop(fake_step({2}), _State(0), key, 5, lambda s, rec: None, on_nonfinite="revert", patience=2)


def test_max_time_stops_cleanly_and_resumes(reference, tmp_path):
    cfg, ref = reference
    out = tmp_path / "run"
    first = runner.invoke(app, ["train", str(cfg), "--out", str(out), "--max-time", "1s", "--quiet"])
    assert first.exit_code == 75, first.output  # EX_TEMPFAIL: rerun the same command to continue
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "interrupted" and result["reason"] == "max-time"
    assert 0 <= result["n_iter"] < 30
    second = runner.invoke(app, ["train", str(cfg), "--out", str(out), "--quiet"])
    assert second.exit_code == 0, second.output
    assert metrics(out) == ref


@pytest.mark.slow
def test_twenty_kills_at_random_moments_then_resume(reference, tmp_path):
    """SIGTERM / SIGINT / SIGKILL at random moments (start-up, compile, steps, checkpoint
    writes), rerunning the same command each time: the final metrics equal the reference."""
    import random

    cfg, ref = reference
    rng = random.Random(1234)
    kills, finished, attempt = 0, 0, 0
    out = tmp_path / "run0"
    while kills < 20 or finished == 0:
        proc = _spawn(cfg, out)
        if kills < 20:
            time.sleep(rng.uniform(0.5, 8.0))
            if proc.poll() is None:
                proc.send_signal(rng.choice([signal.SIGTERM, signal.SIGINT, signal.SIGKILL]))
                kills += 1
        output, _ = proc.communicate(timeout=300)
        # -SIGTERM: killed during interpreter start-up, before any handler exists (nothing done yet)
        assert proc.returncode in (0, 130, -signal.SIGKILL, -signal.SIGTERM), output
        if proc.returncode == 0:  # this directory is complete: it must equal the reference
            assert metrics(out) == ref
            finished += 1
            attempt += 1
            out = tmp_path / f"run{attempt}"


def test_a_dead_ansatz_fails_the_run_with_exit_1_and_the_reason(tmp_path, monkeypatch):
    """The command layer's side of the dead-ansatz check (the detection itself: tests/vmc/test_loop.py):
    with every step judged dead, `nqs train` exits 1 with one line naming the cause and the keys,
    and result.json says status "failed" with that reason."""
    from nqs_cli.run import training
    from nqs_cli.vmc.loop import Health

    monkeypatch.setattr(training, "Health", lambda **kw: Health(**kw, dead_tol=float("inf")))
    config = tmp_path / "c.toml"
    config.write_text(CONFIG.replace("n_iter = 30", "n_iter = 30\ndead_steps = 3"))
    result = runner.invoke(app, ["train", str(config), "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 1, result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "stopped depending on its parameters" in result.output and "optimizer.learning_rate" in result.output
    res = json.loads((tmp_path / "run" / "result.json").read_text())
    assert res["status"] == "failed" and "stopped depending" in res["reason"]
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 3


COMPLEX_CONFIG = """
name = "complex-resume"
seed = 5
[lattice]
length = 4
[hilbert]
kind = "spin"
total_sz = 0
[hamiltonian]
kind = "heisenberg"
sign_rule = false
[model]
param_dtype = "complex128"
[sampler]
n_chains = 4
n_samples = 32
[train]
n_iter = 4
checkpoint_every = 2
final_samples = 0
"""


def test_complex_state_round_trips_through_a_checkpoint(tmp_path):
    """Complex parameters, optimiser state and chain amplitudes are written and restored
    exactly, with their dtype checked against the run's template."""
    import jax
    import numpy as np

    from nqs_cli import config
    from nqs_cli.run.checkpoints import load_checkpoint, save_checkpoint
    from nqs_cli.run.files import RunDirError
    from nqs_cli.setup import build_problem, build_training

    path = tmp_path / "c.toml"
    path.write_text(COMPLEX_CONFIG.replace("[optimizer]", "") + "[optimizer]\nkind = \"adam\"\n")
    cfg = config.load(path)
    training = build_training(cfg, build_problem(cfg))
    state = training.init_state(5)
    state = state.replace(chains=state.chains.replace(log_psi=state.chains.log_psi + 0.5j))
    saved = save_checkpoint(tmp_path, state, "hash")
    restored = load_checkpoint(saved, training.init_state(6), "hash")
    leaves = jax.tree_util.tree_leaves(state)
    assert any(np.iscomplexobj(a) and np.any(np.asarray(a).imag != 0) for a in leaves)
    for a, b in zip(leaves, jax.tree_util.tree_leaves(restored)):
        assert np.asarray(a).dtype == np.asarray(b).dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    real = config.load(path, ["model.param_dtype=float64"])
    with pytest.raises(RunDirError, match=r"complex128\[8\] where float64\[8\] is expected"):
        load_checkpoint(saved, build_training(real, build_problem(real)).init_state(5), "hash")


@pytest.mark.slow
def test_complex_parameters_round_trip_through_checkpoints(tmp_path):
    """Complex parameters, optimiser state and chain amplitudes survive a checkpoint: the
    resumed run's metrics equal the uninterrupted run's bit for bit."""
    from flax import serialization

    cfg = tmp_path / "c.toml"
    cfg.write_text(COMPLEX_CONFIG)
    ref = runner.invoke(app, ["train", str(cfg), "--out", str(tmp_path / "ref"), "--quiet"])
    assert ref.exit_code == 0, ref.output
    first = runner.invoke(app, ["train", str(cfg), "--out", str(tmp_path / "run"), "--n-iter", "2", "--quiet"])
    assert first.exit_code == 0, first.output
    payload = serialization.msgpack_restore((tmp_path / "run" / "checkpoints" / "step_00000002.msgpack").read_bytes())
    state = serialization.msgpack_restore(payload["state"])
    assert state["params"]["RBM"]["Dense"]["kernel"].dtype == "complex128"
    assert state["chains"]["log_psi"].dtype == "complex128"
    second = runner.invoke(app, ["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet"])
    assert second.exit_code == 0, second.output
    assert "resuming" in second.output
    rows = metrics(tmp_path / "run")
    assert rows == metrics(tmp_path / "ref")
    assert all("energy_imag" in r for r in rows)
