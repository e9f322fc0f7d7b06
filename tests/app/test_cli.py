"""The command line: train into a run directory, exact, summary, --help."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from nqs_cli.app.cli import app

runner = CliRunner()

TINY_BH = """
name = "tiny-bh"
seed = 7
[lattice]
graph = "chain"
length = 4
[hilbert]
kind = "fock"
n_max = 3
n_particles = 4
[hamiltonian]
kind = "bose-hubbard"
U = 4.0
[sampler]
n_chains = 8
n_samples = 256
[train]
n_iter = 40
checkpoint_every = 15
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    cfg = root / "tiny.toml"
    cfg.write_text(TINY_BH)
    out = root / "run"
    result = runner.invoke(app, ["train", str(cfg), "--out", str(out), "--quiet"])
    return cfg, out, result


def test_train_writes_the_run_directory(tiny_run):
    cfg, out, result = tiny_run
    assert result.exit_code == 0, result.output
    for name in ("config.toml", "resolved.json", "meta.json", "metrics.jsonl", "result.json"):
        assert (out / name).exists(), name
    assert (out / "config.given.toml").read_text() == TINY_BH
    import tomllib

    assert tomllib.loads((out / "config.toml").read_text()) == tomllib.loads(TINY_BH)  # no overrides: the same config
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 41))
    for key in ("energy", "energy_error", "variance", "r_hat", "tau_corr", "acceptance", "wall_s"):
        assert key in rows[0]
    res = json.loads((out / "result.json").read_text())
    assert res["status"] == "completed" and res["n_iter"] == 40
    assert res["exact_energy"] == pytest.approx(-3.9739226507, abs=1e-8)
    # 40 iterations on 31 states: within a few percent and a few error bars of exact
    assert res["relative_error"] < 0.02
    assert res["energy"] > res["exact_energy"] - 5 * res["energy_error"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 7 and meta["x64"] is True and "jax" in meta["versions"]
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("*.msgpack"))
    assert "step_00000040.msgpack" in ckpts


def test_rerun_of_a_finished_run_trains_nothing(tiny_run):
    cfg, out, _ = tiny_run
    before = (out / "metrics.jsonl").read_text()
    result = runner.invoke(app, ["train", str(cfg), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "already at step 40" in result.output
    assert (out / "metrics.jsonl").read_text() == before


def test_resume_with_a_changed_model_is_refused(tiny_run):
    cfg, out, _ = tiny_run
    result = runner.invoke(app, ["train", str(cfg), "--out", str(out), "--set", "model.alpha=2"])
    assert result.exit_code == 2
    assert "model.alpha" in result.output and "--force" in result.output


def test_exact_matches_reference(tmp_path):
    cfg = tmp_path / "bh.toml"
    cfg.write_text(TINY_BH)
    result = runner.invoke(app, ["exact", str(cfg)])
    assert result.exit_code == 0, result.output
    assert float(result.stdout.strip().splitlines()[-1]) == pytest.approx(-3.9739226507, abs=1e-8)


# NetKet 3.23 counts (tests/fixtures/netket_models.json): RBMMultiVal L=8 C=4 α=1 → 1088;
# DeepSetMLP φ=(16,16) ρ=(16,) → 593, plus our Gaussian envelope's one width → 594;
# DeepSetRelDistance layers 2/2, features 16 (cusp parameter included) → 596.
@pytest.mark.parametrize("model, total", [("rbm-multival", 1088), ("deepsets", 594), ("deepsets-reldist", 596)])
def test_summary_builtin_model(model, total):
    result = runner.invoke(app, ["summary", "--model", model])
    assert result.exit_code == 0, result.output
    assert "built-in default system" in result.output
    assert f"total parameters: {total}" in result.output
    assert "\x1b[" not in result.output  # piped: no escape codes


def test_summary_of_a_config_with_depth(tmp_path):
    cfg = tmp_path / "bh.toml"
    cfg.write_text(TINY_BH)
    result = runner.invoke(app, ["summary", str(cfg), "--depth", "1", "--set", "model.alpha=2"])
    assert result.exit_code == 0, result.output
    # L=4, n_max=3: one-hot width 16, α=2 → 16·32 + 32 + 16
    assert "total parameters: 560" in result.output
    assert "RBMMultiVal" in result.output


def test_summary_rejects_unknown_model():
    result = runner.invoke(app, ["summary", "--model", "transformer"])
    assert result.exit_code == 2
    assert "--model" in result.output


def test_help_in_a_subprocess():
    out = subprocess.run([sys.executable, "-m", "nqs_cli", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for command in ("train", "validate", "exact", "summary"):
        assert command in out.stdout
