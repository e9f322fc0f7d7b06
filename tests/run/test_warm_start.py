"""Warm starts: `nqs train --init-from RUN` (train.init_from) starts from another run's final
parameters with fresh optimiser state and chains; a mismatch is one line, exit 2; resume keeps
its own checkpoint."""

import json

import numpy as np
from flax import serialization
from run_cases import tiny_run_config, trained_run
from typer.testing import CliRunner

from nqs_cli.app.cli import app
from nqs_cli.run import checkpoints as ck


def mkdir(path):
    path.mkdir()
    return path


def params_of(run):
    payload = serialization.msgpack_restore(ck.list_checkpoints(run)[0].read_bytes())
    state = serialization.msgpack_restore(payload["state"])
    return {k: np.asarray(v) for k, v in ck._flat_items(state["params"])}, state


def test_warm_start_takes_the_parameters_and_resume_keeps_its_own_checkpoint(tmp_path):
    _, source = trained_run(mkdir(tmp_path / "a"), tiny_run_config("src", seed=1, n_iter=6))
    cfg = tmp_path / "b.toml"
    cfg.write_text(tiny_run_config("warm", seed=2, U=3.5, n_iter=2))
    out = tmp_path / "warm"
    # a vanishing learning rate: the warm run's parameters stay the source's
    args = ["train", str(cfg), "--out", str(out), "--quiet", "--init-from", str(source), "--set", "optimizer.learning_rate=1e-12"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    got, state = params_of(out)
    want, _ = params_of(source)
    assert got.keys() == want.keys() and all(np.allclose(got[k], want[k], atol=1e-9) for k in got)
    assert int(state["step"]) == 2  # the step count starts again
    record = json.loads((out / "init_from.json").read_text())
    assert record == {"run": str(source.resolve()), "checkpoint": "step_00000006.msgpack", "step": 6}
    assert json.loads((out / "meta.json").read_text())["init_from"] == record
    assert "train.init_from" in (out / "config.toml").read_text() or "init_from" in (out / "config.toml").read_text()
    # resuming (more iterations, same command otherwise) continues the run's own checkpoint
    result = CliRunner().invoke(app, args + ["--n-iter", "4"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert json.loads((out / "meta.json").read_text())["init_from"] == record
    # another shape of the same model, or no run directory at all: one line, exit 2, nothing trained
    for extra, src, words in ((["--set", "model.alpha=2"], source, "RBM/Dense/bias: float64[12] where this model has float64[24]"),
                              ([], tmp_path, "not an nqs run directory")):
        result = CliRunner().invoke(app, ["train", str(cfg), "--out", str(tmp_path / "other"), "--quiet", "--init-from", str(src), *extra])
        assert result.exit_code == 2
        assert words in result.output and "train.init_from" in result.output
        assert len(result.output.strip().splitlines()) == 1
