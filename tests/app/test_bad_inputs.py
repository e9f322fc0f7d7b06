"""Bad CLI arguments and broken run directories: exit 2 (or 1), one line, nothing lost."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from nqs_cli.app.cli import app

runner = CliRunner()

CONFIG = """
name = "bad-inputs"
seed = 3
[lattice]
length = 3
[hilbert]
kind = "fock"
n_max = 2
n_particles = 3
[hamiltonian]
kind = "bose-hubbard"
[sampler]
n_chains = 4
n_samples = 32
[train]
n_iter = 6
checkpoint_every = 3
"""


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    cfg = root / "c.toml"
    cfg.write_text(CONFIG)
    run = root / "run"
    result = runner.invoke(app, ["train", str(cfg), "--out", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    return cfg, run


def snapshot(path):
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def corrupt_all_checkpoints(run):
    for p in (run / "checkpoints").glob("*.msgpack"):
        p.write_bytes(b"not msgpack")


def foreign_checkpoint(run):
    for p in (run / "checkpoints").glob("*.msgpack"):
        p.write_bytes(b"\x81\xa3foo\x01")  # valid msgpack, not ours


def broken_resolved(run):
    (run / "resolved.json").write_text("{ broken")


def missing_resolved(run):
    (run / "resolved.json").unlink()


def not_a_dir(run):
    shutil.rmtree(run)
    run.write_text("a file")


# (argv builder, mutation of a copy of the finished run, expected exit code, text in the message)
CASES = [
    (lambda c, r: ["train", str(c), "--n-iter", "0"], None, 2, "--n-iter"),
    (lambda c, r: ["train", str(c), "--n-iter", "abc"], None, 2, "--n-iter"),
    (lambda c, r: ["train", str(c), "--max-time", "soon"], None, 2, "--max-time"),
    (lambda c, r: ["train", str(c), "--max-time", "-5m"], None, 2, "--max-time"),
    (lambda c, r: ["train", str(c), "--bogus"], None, 2, "--bogus"),
    (lambda c, r: ["train"], None, 2, "Missing argument 'config'"),
    (lambda c, r: ["train", str(c), "--set", "model.alpha=2", "--out", str(r)], None, 2, "model.alpha"),
    (lambda c, r: ["train", str(c), "--set", "hilbert.n_max=3", "--out", str(r)], None, 2, "hilbert.n_max"),
    (lambda c, r: ["train", str(c), "--set", "sampler.n_chains=8", "--out", str(r)], None, 2, "sampler.n_chains"),
    (lambda c, r: ["train", str(c), "--out", str(r)], broken_resolved, 2, "resolved.json"),
    (lambda c, r: ["train", str(c), "--out", str(r)], not_a_dir, 2, "not a directory"),
    (lambda c, r: ["evaluate", str(r)], corrupt_all_checkpoints, 2, "no readable checkpoint"),
    (lambda c, r: ["evaluate", str(r)], missing_resolved, 2, "resolved.json"),
    (lambda c, r: ["evaluate", str(r)], broken_resolved, 2, "resolved.json"),
    (lambda c, r: ["evaluate", str(r)], not_a_dir, 2, "not a run directory"),
    (lambda c, r: ["evaluate", str(r) + "-missing"], None, 2, "not a run directory"),
    (lambda c, r: ["evaluate", str(r), "--n-samples", "0"], None, 2, "--n-samples"),
    (lambda c, r: ["report", str(r) + "-missing"], None, 2, "not a run directory"),
    (lambda c, r: ["report", str(r)], missing_resolved, 2, "resolved.json"),
    (lambda c, r: ["report", str(r)], broken_resolved, 2, "resolved.json"),
    (lambda c, r: ["report", str(r), "--discard", "-1"], None, 2, "--discard"),
    (lambda c, r: ["report"], None, 2, "Missing argument 'runs'"),
    (lambda c, r: ["summary"], None, 2, "--model"),
    (lambda c, r: ["summary", "--model", "mlp"], None, 2, "--model"),
    (lambda c, r: ["summary", "--model", "rbm-multival", "--depth", "-1"], None, 2, "--depth"),
    (lambda c, r: ["summary", "--model", "rbm-multival", "--set", "model.alpha=0"], None, 2, "model.alpha"),
    (lambda c, r: ["exact", str(c) + ".missing"], None, 2, "no such config file"),
    (lambda c, r: ["exact", str(c), "--set", "lattice.length=20", "--set", "hilbert.n_particles=20"], None, 2, "exact-diagonalisation limit"),
    (lambda c, r: ["validate", str(c), "--set", "train.n_iter=0"], None, 2, "train.n_iter"),
    (lambda c, r: ["nonsense"], None, 2, "nonsense"),
]


@pytest.mark.parametrize("argv, mutate, code, expected", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_bad_input(finished, tmp_path, argv, mutate, code, expected):
    cfg, run = finished
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    if mutate is not None:
        mutate(copy)
    before = snapshot(copy) if copy.is_dir() else None
    result = runner.invoke(app, argv(cfg, copy))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("error: ") and all(line.startswith("warning: ") for line in lines[:-1]), lines
    assert expected in result.output, result.output
    if before is not None:
        assert snapshot(copy) == before  # nothing in the run directory was lost or changed


def test_report_mixed_runs_json(finished, tmp_path):
    cfg, run = finished
    interrupted = tmp_path / "interrupted"
    shutil.copytree(run, interrupted)
    res = json.loads((interrupted / "result.json").read_text())
    res["status"] = "interrupted"
    (interrupted / "result.json").write_text(json.dumps(res))
    killed = tmp_path / "killed"
    shutil.copytree(run, killed)
    (killed / "result.json").unlink()
    result = runner.invoke(app, ["report", str(run), str(interrupted), str(killed), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert [r["status"] for r in rows] == ["completed", "interrupted", "running or killed"]
    assert all(r["iterations"] == 6 for r in rows)
    assert rows[2]["energy"] is not None
    table = runner.invoke(app, ["report", str(run), str(interrupted), "--discard", "2"])
    assert table.exit_code == 0 and "interrupted" in table.output


def test_report_plot_writes_a_png(finished, tmp_path):
    pytest.importorskip("matplotlib")
    cfg, run = finished
    png = tmp_path / "traces.png"
    result = runner.invoke(app, ["report", str(run), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_writes_evaluation_json(finished):
    cfg, run = finished
    result = runner.invoke(app, ["evaluate", str(run), "--n-samples", "256"])
    assert result.exit_code == 0, result.output
    ev = json.loads((run / "evaluation.json").read_text())
    assert ev["n_samples"] == 256 and ev["step"] == 6
    assert ev["energy_error"] > 0 and ev["exact_energy"] is not None
    # a short run on 10 states: the fresh estimate is within 5 error bars of the training estimate
    res = json.loads((run / "result.json").read_text())
    assert abs(ev["energy"] - res["energy"]) < 5 * (ev["energy_error"] + res["energy_error"]) + 0.2


@pytest.mark.parametrize("mutate", [corrupt_all_checkpoints, foreign_checkpoint])
def test_train_without_a_readable_checkpoint_starts_again_and_keeps_everything_aside(finished, tmp_path, mutate):
    cfg, run = finished
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    mutate(copy)
    old_metrics = (copy / "metrics.jsonl").read_bytes()
    old_checkpoints = {p.name: p.read_bytes() for p in (copy / "checkpoints").glob("*.msgpack")}
    result = runner.invoke(app, ["train", str(cfg), "--out", str(copy), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "no readable checkpoint" in result.output and "metrics.jsonl.orphaned" in result.output
    assert (copy / "metrics.jsonl.orphaned").read_bytes() == old_metrics
    for name, data in old_checkpoints.items():
        assert (copy / "checkpoints" / (name + ".corrupt")).read_bytes() == data
