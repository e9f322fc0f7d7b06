"""The run directory keeps every row and file the user had: bad metrics lines, foreign
directories, tampered checkpoints, concurrent runs, early deaths and full disks."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from flax import serialization
from typer.testing import CliRunner

from nqs_cli.app.cli import app
from run_cases import metrics_rows, tiny_run_config, trained_run

runner = CliRunner()

CONFIG = tiny_run_config("integrity", seed=21, U=3.0, n_iter=20, checkpoint_every=5)


def train(cfg, out, *extra):
    return runner.invoke(app, ["train", str(cfg), "--out", str(out), "--quiet", *extra])


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    cfg, run = trained_run(tmp_path_factory.mktemp("integrity"), CONFIG)
    return cfg, metrics_rows(run)


@pytest.fixture
def partial(reference, tmp_path):
    """A run stopped at step 12 (checkpoints at 1, 5, 10)."""
    cfg, _ = reference
    out = tmp_path / "run"
    res = train(cfg, out, "--n-iter", "12")
    assert res.exit_code == 0, res.output
    return cfg, out


@pytest.mark.parametrize("bad", ["not json", "", "42", '{"step": 3}'])
def test_a_bad_line_in_the_middle_is_refused_with_its_number_and_nothing_is_dropped(partial, bad):
    cfg, out = partial
    lines = (out / "metrics.jsonl").read_text().splitlines()
    lines.insert(5, bad)
    text = "\n".join(lines) + "\n"
    (out / "metrics.jsonl").write_text(text)
    res = train(cfg, out, "--n-iter", "15")
    assert res.exit_code == 2, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "metrics.jsonl: line 6" in errors[0]
    assert (out / "metrics.jsonl").read_text() == text


def test_a_torn_last_line_is_dropped_and_the_run_goes_on(partial, reference):
    cfg, out = partial
    with open(out / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 13, "energy": -1.')
    res = train(cfg, out)
    assert res.exit_code == 0, res.output
    assert metrics_rows(out) == reference[1]


@pytest.mark.parametrize("target", ["dir", "cwd"])
def test_out_refuses_a_directory_nqs_did_not_make(reference, tmp_path, monkeypatch, target):
    cfg, _ = reference
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.toml").write_text("my notes")
    (folder / "result.json").write_text("{}")
    if target == "cwd":
        monkeypatch.chdir(folder)
        res = train(cfg, ".")
    else:
        res = train(cfg, folder)
    assert res.exit_code == 2, res.output
    assert "not an nqs run directory" in res.output
    assert sorted(p.name for p in folder.iterdir()) == ["config.toml", "result.json"]
    assert (folder / "config.toml").read_text() == "my notes"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert train(cfg, empty, "--n-iter", "2").exit_code == 0


def _rewrite_checkpoint(path, change):
    payload = serialization.msgpack_restore(path.read_bytes())
    change(payload)
    path.write_bytes(serialization.msgpack_serialize(payload))


@pytest.mark.parametrize("tamper", ["negative step", "flipped byte", "wrong shape", "occupation above n_max"])
def test_a_tampered_checkpoint_falls_back_to_the_previous_one_with_a_warning(partial, reference, tamper):
    cfg, out = partial
    newest = sorted((out / "checkpoints").glob("step_*.msgpack"))[-1]
    assert newest.name == "step_00000012.msgpack"
    if tamper == "negative step":
        _rewrite_checkpoint(newest, lambda p: p.update(step=-5))
    elif tamper == "flipped byte":
        data = bytearray(newest.read_bytes())
        data[len(data) // 2] ^= 0x40
        newest.write_bytes(bytes(data))
    elif tamper == "occupation above n_max":
        def overfill(p):
            import numpy as np

            state = serialization.msgpack_restore(p["state"])
            x = np.array(state["chains"]["x"])
            x[0, 0] = 7  # n_max = 2
            state["chains"]["x"] = x
            body = serialization.msgpack_serialize(state)
            import hashlib

            p.update(state=body, sha256=hashlib.sha256(body).hexdigest())

        _rewrite_checkpoint(newest, overfill)
    else:
        def reshape(p):
            state = serialization.msgpack_restore(p["state"])
            state["chains"]["x"] = state["chains"]["x"][:, :2]
            body = serialization.msgpack_serialize(state)
            import hashlib

            p.update(state=body, sha256=hashlib.sha256(body).hexdigest())

        _rewrite_checkpoint(newest, reshape)
    res = train(cfg, out)
    assert res.exit_code == 0, res.output
    assert "trying the previous one" in res.output
    assert metrics_rows(out) == reference[1]  # resumed from step 10: the same run


@pytest.mark.slow  # subprocesses with their own compilation: in the slow (CI) run
def test_a_second_train_on_the_same_directory_is_refused_and_a_killed_ones_lock_is_stale(reference, tmp_path):
    cfg, _ = reference
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "nqs_cli", "train", str(cfg), "--out", str(out), "--n-iter", "100000", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not ((out / "metrics.jsonl").exists() and (out / "metrics.jsonl").stat().st_size):
            time.sleep(0.2)
        res = train(cfg, out)
        assert res.exit_code == 2, res.output
        assert f"in use by another nqs train (pid {proc.pid}" in res.output
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert (out / "run.lock").exists()
    res = train(cfg, out, "--n-iter", "20")
    assert "taking over the lock" in res.output and f"pid {proc.pid}" in res.output


def test_a_run_that_died_before_its_first_checkpoint_restarts_and_keeps_the_old_metrics_rows(reference, tmp_path):
    cfg, ref = reference
    out = tmp_path / "run"
    assert train(cfg, out, "--n-iter", "3").exit_code == 0
    for ck in (out / "checkpoints").glob("*"):
        ck.unlink()
    old = (out / "metrics.jsonl").read_text()
    (out / ".metrics.jsonl.tmp-99999").write_text("left by a kill")
    res = train(cfg, out)
    assert res.exit_code == 0, res.output
    assert "metrics.jsonl.orphaned" in res.output
    assert (out / "metrics.jsonl.orphaned").read_text() == old
    assert metrics_rows(out) == ref
    assert not list(out.glob(".*.tmp-*"))


def test_the_first_checkpoint_is_written_at_step_one(reference, tmp_path):
    cfg, _ = reference
    out = tmp_path / "run"
    assert train(cfg, out, "--n-iter", "3").exit_code == 0
    assert (out / "checkpoints" / "step_00000001.msgpack").exists()


def test_a_full_disk_is_one_line_exit_74_and_the_same_command_resumes(reference, tmp_path, monkeypatch):
    from nqs_cli.run import run_dir as rd

    cfg, ref = reference
    out = tmp_path / "run"
    real = rd.append_metrics

    def full_at_step_8(path, row):
        if row["step"] == 8:
            with open(path, "a") as fh:
                fh.write('{"step": 8, "ener')  # the partial write a full disk leaves
            raise OSError(28, "No space left on device", str(path))
        real(path, row)

    monkeypatch.setattr(rd, "append_metrics", full_at_step_8)
    res = train(cfg, out)
    assert res.exit_code == 74, res.output
    assert len(res.output.strip().splitlines()) == 1
    assert "metrics.jsonl: No space left on device" in res.output
    monkeypatch.setattr(rd, "append_metrics", real)
    res = train(cfg, out)
    assert res.exit_code == 0, res.output
    assert metrics_rows(out) == ref


def test_the_reverts_counter_survives_a_resume(reference, tmp_path, monkeypatch):
    from nqs_cli.vmc import loop

    cfg, _ = reference
    out = tmp_path / "run"
    calls = {"n": 0}
    real = loop.first_nonfinite

    def once_at_call_3(stats):
        calls["n"] += 1
        return "energy" if calls["n"] == 3 else real(stats)

    monkeypatch.setattr(loop, "first_nonfinite", once_at_call_3)
    assert train(cfg, out, "--n-iter", "6", "--set", 'train.on_nonfinite="revert"').exit_code == 0
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["reverts"] == 1
    monkeypatch.setattr(loop, "first_nonfinite", real)
    assert train(cfg, out, "--n-iter", "8", "--set", 'train.on_nonfinite="revert"').exit_code == 0
    assert json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["reverts"] == 1


@pytest.mark.slow  # subprocesses with their own compilation: in the slow (CI) run
def test_progress_into_a_closed_pipe_never_stops_training(reference, tmp_path):
    cfg, _ = reference
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "nqs_cli", "train", str(cfg), "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.stdout.readline()
    proc.stdout.close()  # like `| head -1`
    assert proc.wait(timeout=300) == 0
    assert len(metrics_rows(out)) == 20 and json.loads((out / "result.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("damage", [
    ("result.json", '{"status": 5}'), ("result.json", '{"status": "completed", "energy": "abc"}'),
    ("result.json", "[1, 2]"), ("resolved.json", "[1, 2]"), ("metrics.jsonl", "42\n"),
])
def test_report_marks_a_malformed_run_unreadable_and_never_raises(reference, tmp_path, damage):
    import shutil

    cfg, _ = reference
    good = cfg.parent / "run"
    bad = tmp_path / "bad"
    shutil.copytree(good, bad)
    name, text = damage
    (bad / name).write_text(text)
    alone = runner.invoke(app, ["report", str(bad)])
    assert alone.exit_code == 2 and alone.exception is None or isinstance(alone.exception, SystemExit), alone.output
    assert alone.output.startswith("error: ") and len(alone.output.strip().splitlines()) == 1 and name in alone.output
    both = runner.invoke(app, ["report", str(good), str(bad), "--json"])
    assert both.exit_code == 2
    table = json.loads(both.output.split("\nerror:")[0])
    assert [r["status"] for r in table] == ["completed", "unreadable"]


def test_evaluate_on_a_directory_it_cannot_write_prints_the_result_and_exits_74(reference, monkeypatch):
    from nqs_cli.run import evaluate

    cfg, _ = reference

    def read_only(path, out):
        raise OSError(30, "Read-only file system", str(path / "evaluation.json"))

    monkeypatch.setattr(evaluate, "write_evaluation", read_only)
    res = runner.invoke(app, ["evaluate", str(cfg.parent / "run"), "--n-samples", "128"])
    assert res.exit_code == 74, res.output
    assert "energy" in res.output and "Read-only file system; the evaluation above was not saved" in res.output


def _shell(command, **env):
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env={**os.environ, **env}, timeout=300)


@pytest.mark.slow  # subprocesses with their own compilation: in the slow (CI) run
def test_odd_streams_and_locales_never_give_a_traceback(reference):
    cfg, _ = reference
    run = cfg.parent / "run"
    nqs = f"{sys.executable} -m nqs_cli"
    ascii_run = _shell(f"{nqs} report {run}", PYTHONIOENCODING="ascii")
    assert ascii_run.returncode == 0 and "+/-" in ascii_run.stdout and "Traceback" not in ascii_run.stderr
    closed = _shell(f"{nqs} report {run} >&-")
    assert closed.returncode == 0 and "Traceback" not in closed.stderr
    full = _shell(f"{nqs} report {run} > /dev/full")
    assert full.returncode == 74 and full.stderr.strip().startswith("error:") and "Traceback" not in full.stderr
    quiet = _shell(f"{nqs} train {cfg} --out {cfg.parent / 'quiet-full'} --quiet > /dev/full")  # the result must not vanish with exit 0
    assert quiet.returncode == 74 and "Traceback" not in quiet.stderr, quiet.stderr
    assert json.loads((cfg.parent / "quiet-full" / "result.json").read_text())["status"] == "completed"
    nan = runner.invoke(app, ["train", str(cfg), "--max-time", "nan"])
    assert nan.exit_code == 2 and "--max-time" in nan.output


def test_a_checkpoint_of_another_seed_is_refused_unless_forced(partial, tmp_path):
    cfg, out = partial
    other = tmp_path / "other.toml"
    other.write_text(cfg.read_text().replace("seed = 21", "seed = 22"))
    res = train(other, out)
    assert res.exit_code == 2, res.output
    assert "seed 21, this config has seed 22" in res.output and "--force" in res.output
    res = train(other, out, "--force")
    assert res.exit_code == 0, res.output
    assert len(metrics_rows(out)) == 20


def test_checkpoints_of_a_model_resolved_otherwise_are_refused_not_discarded(tmp_path, monkeypatch):
    """A run whose model resolved differently (another version's default features) stops with
    exit 2 and one line naming the mismatch; no checkpoint or metrics row is set aside. Given
    the old setting with --force it continues from its newest checkpoint."""
    from nqs_cli.models import rbm_symm

    cfg = tmp_path / "ring.toml"
    cfg.write_text('seed = 2\n[lattice]\ngraph = "chain"\nlength = 6\n[hilbert]\nkind = "spin"\ns = 0.5\ntotal_sz = 0\n'
                   '[hamiltonian]\nkind = "heisenberg"\nJ2 = 0.3\n[model]\nparam_dtype = "complex128"\n'
                   '[sampler]\nn_samples = 64\n[train]\nn_iter = 4\ncheckpoint_every = 2\nfinal_samples = 256\n')
    out = tmp_path / "run"
    monkeypatch.setattr(rbm_symm, "HIDDEN_FACTOR", 4)
    assert train(cfg, out).exit_code == 0
    before = {p.name: p.read_bytes() for p in [*(out / "checkpoints").glob("*.msgpack"), out / "metrics.jsonl"]}
    monkeypatch.setattr(rbm_symm, "HIDDEN_FACTOR", 8)
    res = train(cfg, out, "--n-iter", "6")
    assert res.exit_code == 2, res.output
    error = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "complex128[8] where complex128[16] is expected" in error[0] and "--force" in error[0]
    assert {p.name: p.read_bytes() for p in [*(out / "checkpoints").glob("*.msgpack"), out / "metrics.jsonl"]} == before
    assert not list(out.rglob("*.corrupt")) and not (out / "metrics.jsonl.orphaned").exists()
    res = train(cfg, out, "--n-iter", "6", "--set", "model.features=8", "--force")
    assert res.exit_code == 0 and "resuming" in res.output and "from step 4" in res.output, res.output
    assert len(metrics_rows(out)) == 6


def test_a_folder_that_only_looks_like_an_old_run_directory_is_refused_untouched(reference, tmp_path):
    """config.toml, result.json, meta.json, resolved.json and metrics.jsonl of any content do not
    make a run directory: without the marker, only files as nqs writes them do."""
    cfg, _ = reference
    folder = tmp_path / "lookalike"
    folder.mkdir()
    files = {"config.toml": "my notes", "result.json": "{}", "meta.json": "{}", "resolved.json": "{}", "metrics.jsonl": ""}
    for name, text in files.items():
        (folder / name).write_text(text)
    res = train(cfg, folder)
    assert res.exit_code == 2, res.output
    assert "not an nqs run directory" in res.output
    assert {p.name: p.read_text() for p in folder.iterdir()} == files
    # a run directory written before the marker existed still resumes
    old = tmp_path / "old"
    assert train(cfg, old, "--n-iter", "6").exit_code == 0
    (old / ".nqs-run").unlink()
    res = train(cfg, old, "--n-iter", "8")
    assert res.exit_code == 0, res.output
    assert len(metrics_rows(old)) == 8


def _within(seconds, fn):
    """fn() in a daemon thread: its value, or a failure if it has not returned in ``seconds``."""
    import threading

    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("value", fn()), daemon=True)
    thread.start()
    thread.join(seconds)
    assert "value" in box, f"still blocked after {seconds} s"
    return box["value"]


@pytest.mark.parametrize("which", ["resolved.json", "checkpoint"])
def test_a_fifo_in_place_of_a_file_is_refused_and_never_blocks(partial, which):
    """report, evaluate and a resuming train with a FIFO where nqs keeps a file: one line (or,
    for the newest checkpoint, a warning and the previous one), never a wait for a writer."""
    cfg, out = partial
    target = out / "resolved.json" if which == "resolved.json" else sorted((out / "checkpoints").glob("step_*.msgpack"))[-1]
    target.unlink()
    os.mkfifo(target)
    report = _within(60, lambda: runner.invoke(app, ["report", str(out)]))
    evaluate = _within(120, lambda: runner.invoke(app, ["evaluate", str(out), "--n-samples", "64"]))
    # a resuming train installs signal handlers, so it runs as a process of its own, with a time limit
    proc = subprocess.run([sys.executable, "-m", "nqs_cli", "train", str(cfg), "--out", str(out), "--quiet", "--n-iter", "14"],
                          capture_output=True, text=True, timeout=300)
    resume = type("Result", (), {"exit_code": proc.returncode, "output": proc.stdout + proc.stderr})
    if which == "resolved.json":
        for res in (report, evaluate, resume):
            assert res.exit_code == 2 and "not a regular file" in res.output, res.output
            assert len([ln for ln in res.output.splitlines() if ln.startswith("error:")]) == 1
    else:
        assert report.exit_code == 0, report.output
        assert evaluate.exit_code == 0 and "not a regular file" in evaluate.output, evaluate.output
        assert resume.exit_code == 0 and "not a regular file" in resume.output, resume.output
        assert json.loads((out / "result.json").read_text())["n_iter"] == 14
    assert target.is_fifo()  # left as it was


def test_evaluate_refuses_a_run_that_is_still_training_unless_asked_for_a_snapshot(partial):
    from nqs_cli.run import run_dir as rd

    cfg, out = partial
    lock = rd.RunLock(out).acquire()  # as an nqs train on it would hold it
    try:
        res = runner.invoke(app, ["evaluate", str(out), "--n-samples", "64"])
        assert res.exit_code == 2 and "still training" in res.output and f"pid {os.getpid()}" in res.output, res.output
        assert not (out / "evaluation.json").exists()
        res = runner.invoke(app, ["evaluate", str(out), "--n-samples", "64", "--running"])
        assert res.exit_code == 0, res.output
        snapshot = json.loads((out / "evaluation.json").read_text())["snapshot"]
        assert snapshot.startswith("mid-run: step 12 of ")
    finally:
        lock.release()
    assert runner.invoke(app, ["evaluate", str(out), "--n-samples", "64"]).exit_code == 0  # a finished holder: no refusal
    assert json.loads((out / "evaluation.json").read_text())["snapshot"] is None


def test_long_values_are_cut_in_one_line_errors(reference, tmp_path):
    cfg, _ = reference
    value = "x" * 5000
    res = runner.invoke(app, ["validate", str(cfg), "--set", f"lattice.graph={value}"])
    assert res.exit_code == 2 and len(res.output) < 400 and " characters)…" in res.output, res.output


def test_a_directory_in_a_checkpoints_slot_is_one_line_and_leaves_no_temporary_file(partial, reference):
    cfg, out = partial
    slot = out / "checkpoints" / "step_00000015.msgpack"
    slot.mkdir()
    res = train(cfg, out, "--n-iter", "20")
    assert res.exit_code == 2 and "not a regular file where nqs writes the checkpoint of step 15" in res.output, res.output
    assert not list(out.rglob(".*.tmp-*"))
    slot.rmdir()
    res = train(cfg, out)
    assert res.exit_code == 0, res.output
    assert metrics_rows(out) == reference[1]


def test_an_unwritable_run_directory_says_whether_a_checkpoint_will_resume(reference, tmp_path, monkeypatch):
    """A write that fails before the first checkpoint does not promise one."""
    from nqs_cli.run import checkpoints as ck

    cfg, _ = reference

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck, "atomic_write_bytes", full)
    res = train(cfg, tmp_path / "run")
    assert res.exit_code == 74 and "no checkpoint was written yet" in res.output and "newest checkpoint resumes" not in res.output, res.output


def test_a_checkpoint_whose_name_and_contents_disagree_is_skipped_and_resume_rewinds_nothing(partial, reference):
    """A copy of step 5's file under step 12's name (a restore from a backup): its inner step is
    5, so it is skipped with a warning and the run resumes from step 10, as nqs wrote it."""
    import shutil

    cfg, out = partial
    folder = out / "checkpoints"
    shutil.copyfile(folder / "step_00000005.msgpack", folder / "step_00000012.msgpack")
    res = train(cfg, out)
    assert res.exit_code == 0, res.output
    assert "its name says step 12 but it holds step 5" in res.output and "resuming" in res.output and "from step 10" in res.output
    assert metrics_rows(out) == reference[1]
    assert not list(out.glob("metrics.jsonl.replaced*"))  # a faithful resume replaces no row by another


def test_rows_a_resume_replaces_by_other_values_are_kept(partial):
    """A forged newest checkpoint (other parameters, its checksum recomputed) is accepted, and the
    rows after its step come out differently: the earlier rows are kept in metrics.jsonl.replaced."""
    import hashlib

    import numpy as np

    cfg, out = partial
    before = metrics_rows(out)
    folder = out / "checkpoints"
    (folder / "step_00000012.msgpack").unlink()
    (folder / "final").unlink(missing_ok=True)

    def forge(p):
        state = serialization.msgpack_restore(p["state"])
        for tree in ("params", "average"):  # the final parameters are the running average
            module = state[tree]["RBM"]
            module["visible_bias"] = np.asarray(module["visible_bias"]) + 0.3
        body = serialization.msgpack_serialize(state)
        p.update(state=body, sha256=hashlib.sha256(body).hexdigest())

    _rewrite_checkpoint(folder / "step_00000010.msgpack", forge)
    res = train(cfg, out, "--n-iter", "12")
    assert res.exit_code == 0, res.output
    assert "2 earlier metrics rows (steps 11..12) not reproduced by this resume are kept in metrics.jsonl.replaced" in res.output, res.output
    kept = [json.loads(line) for line in (out / "metrics.jsonl.replaced").read_text().splitlines()]
    assert [{k: v for k, v in r.items() if k != "wall_s"} for r in kept] == before[10:12]


def test_metrics_rows_removed_by_hand_are_a_warning_of_the_resumed_run(partial):
    """metrics.jsonl deleted after step 12: the run continues from its checkpoint (step 12), and
    says on stderr and in result.json that steps 1..12 have no rows."""
    cfg, out = partial
    (out / "metrics.jsonl").unlink()
    res = train(cfg, out)
    assert res.exit_code == 0, res.output
    assert "metrics.jsonl has no rows for 12 of the 12 steps" in res.output
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "completed" and any(w.startswith("metrics.jsonl has no rows for 12 of the 20 steps") for w in result["warnings"])
    row = json.loads(runner.invoke(app, ["report", str(out), "--json"]).output)[0]
    assert "missing rows" in row["flags"]
