"""What a batch user sees: the run directory reproduces the run, stops are honest (exit codes,
one-line messages with the exact resume command), reruns never degrade a finished run, and
`report` acts on its options and flags what needs a look."""

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from nqs_cli.app.cli import app
from run_cases import metrics_rows, tiny_run_config, trained_run
from nqs_cli.app.render import TrainReporter
from nqs_cli.run.training import StopFlag

runner = CliRunner()

CONFIG = tiny_run_config("batch", seed=5, U=4.0, n_iter=30, checkpoint_every=10)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "scan.toml"
    path.write_text(CONFIG)
    return path


def test_a_scan_point_is_redone_from_the_run_directory_config_alone(config, tmp_path):
    a = tmp_path / "a"
    res = runner.invoke(app, ["train", str(config), "--set", "hamiltonian.U=3", "--set", "sampler.n_samples=32", "--n-iter", "12", "--out", str(a), "--quiet"])
    assert res.exit_code == 0, res.output
    text = (a / "config.toml").read_text()
    assert "--set hamiltonian.U=3" in text and "--n-iter 12" in text  # the overrides, listed in a comment
    assert (a / "config.given.toml").read_text() == CONFIG
    copy = tmp_path / "elsewhere" / "copy.toml"
    copy.parent.mkdir()
    copy.write_text(text)
    b = tmp_path / "b"
    res = runner.invoke(app, ["train", str(copy), "--out", str(b), "--quiet"])
    assert res.exit_code == 0, res.output
    assert json.loads((b / "resolved.json").read_text()) == json.loads((a / "resolved.json").read_text())
    assert metrics_rows(b) == metrics_rows(a) and len(metrics_rows(a)) == 12


def test_effective_config_round_trips_every_toml_value():
    import tomllib

    from nqs_cli.config import to_toml

    data = {"name": "x y", "seed": 3, "a": {"f": 1e-05, "big": 1e300, "neg": -0.5, "s": 'q"\\\\ü\n', "l": [1, 2], "t": True,
                                           "sub": {"k": [0.5, 1.5]}}, "b": {"c": {"d": 1}}}
    assert tomllib.loads(to_toml(data, "a comment\nover two lines")) == data


@pytest.mark.slow  # a subprocess and its own compilation: in the slow (CI) run
def test_sigint_prints_the_exact_command_to_resume_on_one_line(config, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "nqs_cli", "train", str(config), "--set", "hamiltonian.U=3", "--n-iter", "400", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "COLUMNS": "60"})
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        metrics = out / "metrics.jsonl"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    line = next(ln for ln in err.splitlines() if "Resume with:" in ln)
    resume = shlex.split(line.split("Resume with: ", 1)[1])
    assert resume[:3] == ["nqs", "train", str(config)]
    assert resume[3:] == ["--set", "hamiltonian.U=3", "--out", str(out), "--n-iter", "400"]
    exact = next(ln for ln in err.splitlines() if "exact E0" in ln)
    assert exact.rstrip().endswith(tuple("0123456789"))  # never wrapped, though COLUMNS is 60


def test_max_time_exits_75_with_the_reason_and_the_resume_command(config, tmp_path):
    out = tmp_path / "run"
    res = runner.invoke(app, ["train", str(config), "--out", str(out), "--max-time", "1s", "--quiet"])
    assert res.exit_code == 75, res.output
    (line,) = [ln for ln in res.output.splitlines() if "--max-time" in ln]
    assert line.startswith("stopped at step") and "checkpoint written" in line
    assert line.endswith(f"Resume with: nqs train {config} --out {out} --max-time 1s --quiet")
    assert json.loads((out / "result.json").read_text())["reason"] == "max-time"


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_max_time_predicts_the_next_step_without_compilation():
    """A first step of 10 s that was 9.9 s of compiling leaves room for many 0.1-s steps: the
    prediction uses the step's own time, so a 20-s budget fits every step that ends before it."""
    from nqs_cli.run import training
    from nqs_cli.vmc.loop import StepRecord

    clock = FakeClock()
    stop = StopFlag(deadline=20.0, clock=clock)
    compiled = {"s": 0.0}
    training.compile_seconds, saved = (lambda: compiled["s"]), training.compile_seconds
    try:
        class Cfg:
            seed = 0

            class train:
                checkpoint_every = 10**6

            class optimizer:
                learning_rate = 0.1

            class sampler:
                sigma = None

        class Reporter:
            def step(self, *a):
                pass

        log = training.StepLog(None, "h", Cfg, Reporter(), None, stop, 0)
        stats = {k: 0.0 for k in training.METRIC_KEYS} | {"step_scale": 1.0}
        steps = 0
        while not stop():
            wall = 10.0 if steps == 0 else 0.1
            if steps == 0:
                compiled["s"] += 9.9
            clock.t += wall
            steps += 1
            log(None, StepRecord(step=steps, stats=stats, wall_s=wall))
    finally:
        training.compile_seconds = saved
    assert clock.t <= 20.0
    assert steps >= 1 + int((20.0 - 10.0 - 1.0) / 0.1) - 2  # all but the safety margin of 1 s + 1.5 steps


def test_the_first_progress_line_separates_compilation_from_the_step_time():
    import io

    from rich.console import Console

    rep = TrainReporter(Console(file=io.StringIO()), Console(file=io.StringIO()))
    rep.n_iter = 300
    row = {"step": 1, "energy": -1.0, "energy_error": 0.1, "variance": 1.0, "r_hat": 1.0, "acceptance": 0.5, "wall_s": 14.5}
    line = rep.line(row, None, step_s=0.5)
    assert "0.500 s/it (+14.0 s compiling)" in line and "ETA 2m30s" in line


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    return trained_run(tmp_path_factory.mktemp("finished"), CONFIG)


def test_rerunning_a_finished_run_changes_none_of_its_files(finished):
    cfg, run = finished
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    res = runner.invoke(app, ["train", str(cfg), "--out", str(run), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "nothing to train" in res.output
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    assert after == before
    result = json.loads(before["result.json"])
    assert result["seconds_per_iteration"] is not None and result["compile_seconds"] is not None


def test_report_window_and_discard_act_on_the_estimate(finished):
    _, run = finished
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]

    def energy(*args):
        res = runner.invoke(app, ["report", str(run), "--json", *args])
        assert res.exit_code == 0, res.output
        return json.loads(res.output)[0]

    last5 = energy("--window", "5")
    assert last5["energy"] == pytest.approx(sum(r["energy"] for r in metrics[-5:]) / 5, rel=1e-12)
    assert "steps 26..30" in last5["estimate"]
    after20 = energy("--discard", "20")
    assert after20["energy"] == pytest.approx(sum(r["energy"] for r in metrics[20:]) / 10, rel=1e-12)
    both = energy("--discard", "20", "--window", "3")
    assert "steps 28..30" in both["estimate"]
    default = energy()
    assert default["energy"] == json.loads((run / "result.json").read_text())["energy"]


def test_report_shows_the_latest_evaluation(finished):
    _, run = finished
    res = runner.invoke(app, ["evaluate", str(run), "--n-samples", "256"])
    assert res.exit_code == 0, res.output
    evaluation = json.loads((run / "evaluation.json").read_text())
    res = runner.invoke(app, ["report", str(run), "--json"])
    row = json.loads(res.output)[0]
    assert row["evaluation_energy"] == evaluation["energy"] and row["evaluation_step"] == 30
    res = runner.invoke(app, ["report", str(run)])
    assert "evaluation" in res.output and "(step 30)" in res.output


def test_report_flags_a_diverged_run_and_a_huge_r_hat_and_prints_strict_json(finished, tmp_path):
    import shutil

    _, run = finished
    bad = tmp_path / "bad"
    shutil.copytree(run, bad)
    lines = (bad / "metrics.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    last["r_hat"] = 2007424402435.6
    last["variance"] = float("nan")
    lines[-1] = json.dumps(last)
    (bad / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    result = json.loads((bad / "result.json").read_text())
    result["status"] = "diverged"
    (bad / "result.json").write_text(json.dumps(result))
    res = runner.invoke(app, ["report", str(bad), "--json", "--window", "1"])
    row = json.loads(res.output)[0]  # strict JSON: the NaN variance is null
    assert row["variance"] is None if "variance" in row else True
    assert "diverged" in row["flags"] and "R̂>1.1" in row["flags"]
    res = runner.invoke(app, ["report", str(bad)])
    assert "R̂>1.1" in res.output


def test_a_diverged_run_has_no_energy_and_says_what_exists(config, tmp_path, monkeypatch):
    from nqs_cli.vmc import loop

    calls = {"n": 0}

    def nonfinite_from_step_4(stats):
        calls["n"] += 1
        return "energy" if calls["n"] >= 4 else None

    monkeypatch.setattr(loop, "first_nonfinite", nonfinite_from_step_4)
    res = runner.invoke(app, ["train", str(config), "--out", str(tmp_path / "run"), "--quiet"])
    assert res.exit_code == 1, res.output
    assert len(res.output.strip().splitlines()) == 1
    assert "non-finite energy at step 4" in res.output and "the newest checkpoint is" in res.output and "step_00000001.msgpack" in res.output
    assert "metrics.jsonl holds 3 iterations" in res.output
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "diverged" and result["energy"] is None and result["energy_error"] is None
    assert result["relative_error"] is None and result["trajectory_energy"] is not None


def test_plot_hint_works_from_a_checkout(finished, monkeypatch, tmp_path):
    _, run = finished
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    res = runner.invoke(app, ["report", str(run), "--plot", str(tmp_path / "p.png")])
    assert res.exit_code == 2
    assert "pip install matplotlib" in res.output and "nqs-cli[plot]" not in res.output


def test_version_and_flags_without_a_type():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.startswith("nqs ")
    res = runner.invoke(app, ["train", "--help"])
    quiet = next(ln for ln in res.output.splitlines() if "--quiet" in ln)
    assert "<bool>" not in quiet


def test_evaluate_with_defaults_is_at_least_as_precise_as_the_training_estimate(finished):
    _, run = finished
    res = runner.invoke(app, ["evaluate", str(run)])
    assert res.exit_code == 0, res.output
    evaluation = json.loads((run / "evaluation.json").read_text())
    result = json.loads((run / "result.json").read_text())
    assert evaluation["energy_error"] <= result["trajectory_energy_error"]


def test_report_shows_the_v_score_and_a_flag_for_every_warning_of_result_json(finished, tmp_path):
    import shutil

    from nqs_cli.run.estimates import final_warnings, sampling_warnings
    from nqs_cli.run.final_observables import observables_warning

    _, run = finished
    flagged = tmp_path / "flagged"
    shutil.copytree(run, flagged)
    result = json.loads((flagged / "result.json").read_text())
    result["v_score"] = 0.0431
    result["warnings"] = final_warnings({"v_score": 0.0431, "r_hat": 1.5, "discard_sweeps": 100}) + [observables_warning({"density": "boom"})]
    (flagged / "result.json").write_text(json.dumps(result))
    row = json.loads(runner.invoke(app, ["report", str(flagged), "--json"]).output)[0]
    assert row["v_score"] == 0.0431 and row["warnings"] == result["warnings"]
    assert {"V-score>0.02", "final R̂>1.1", "observables failed"} <= set(row["flags"])
    table = runner.invoke(app, ["report", str(flagged)], terminal_width=400).output
    assert "V-score" in table and "0.043" in table and "V-score>0.02" in table
    # every warning nqs writes has a flag of its own kind
    rows = [{"r_hat": 2.0, "acceptance": 0.01}] * 10
    from nqs_cli.run.estimates import warning_flag

    for text in sampling_warnings(rows, 10) + final_warnings({"v_score": 1.0, "r_hat": 2.0}) + [observables_warning({"x": "y"})]:
        assert warning_flag(text) != "warning", text


def test_max_time_reached_in_the_final_estimate_exits_75_and_the_rerun_makes_only_it(config, tmp_path, monkeypatch):
    """The deadline also holds for the final estimate: a deadline that comes in its passes stops it
    (exit 75, reason max-time, every step saved), and the same command then makes only the final
    estimate."""
    from nqs_cli.run import training

    out = tmp_path / "run"
    in_final = {"on": False}
    real_final, real_call = training.final_evaluation, training.StopFlag.__call__

    def final_evaluation(*args, **kwargs):
        in_final["on"] = True
        try:
            return real_final(*args, **kwargs)
        finally:
            in_final["on"] = False

    def call(self):
        if in_final["on"] and self.deadline is not None:
            self.reason = "max-time"
            return True
        return real_call(self)

    monkeypatch.setattr(training, "final_evaluation", final_evaluation)
    monkeypatch.setattr(training.StopFlag, "__call__", call)
    res = runner.invoke(app, ["train", str(config), "--out", str(out), "--max-time", "1h", "--quiet"])
    assert res.exit_code == 75, res.output
    assert "the final estimate would pass --max-time 1h" in res.output
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "interrupted" and result["reason"] == "max-time" and result["n_iter"] == result["n_iter_target"]
    rows = (out / "metrics.jsonl").read_text()
    res = runner.invoke(app, ["train", str(config), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "completed" and result["estimate"].startswith("fresh chains")
    assert (out / "metrics.jsonl").read_text() == rows  # no step trained again
