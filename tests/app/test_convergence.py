"""Slow: the shipped lattice configs reach their reference accuracy at the design budget."""

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nqs_cli.app.cli import app

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, exact, tolerance",
    [
        ("bose_hubbard_1d.toml", -7.4500452954, 3e-3),  # NetKet at this budget: 3.5e-3
        ("spin1_heisenberg.toml", -14.0941299549, 5e-3),  # NetKet: 8.1e-3
        ("heisenberg_complex16.toml", -7.1422963606, 1e-2),  # complex parameters, no sign rule: 1.7e-3 measured
        # J1–J2 4×4 at J2 = 0.5, complex parameters: Marshall reference + translation-symmetric RBM
        ("j1j2_square4.toml", -8.4579233514, 1e-2),
    ],
)
def test_shipped_lattice_config_reaches_reference_accuracy(tmp_path, name, exact, tolerance):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(CONFIGS / name), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    res = json.loads((out / "result.json").read_text())
    assert res["exact_energy"] == pytest.approx(exact, abs=1e-8)
    assert res["relative_error"] <= tolerance
    # variational: not below the exact energy beyond the statistical error
    assert res["energy"] >= exact - 4 * res["energy_error"]


@pytest.mark.slow
def test_trapped_interacting_bosons_beat_netket_at_the_same_budget(tmp_path):
    """configs/trap_interacting.toml with its defaults: the fresh-chain final estimate is at or
    below NetKet's 11.8636 ± 0.0018 (same model and budget), with an error bar ≤ 0.002."""
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(CONFIGS / "trap_interacting.toml"), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    res = json.loads((out / "result.json").read_text())
    assert res["estimate"].startswith("fresh chains")
    assert res["energy_error"] <= 0.002
    assert res["energy"] <= 11.8636


@pytest.mark.slow
def test_trained_aklt_ring_has_string_order_minus_four_ninths(tmp_path):
    """The AKLT ring (spin-1, β = 1/3, L = 10) trained with defaults for 1500 iterations: the
    string order at every distance 2..5 agrees with −4/9 (exact up to 3^−10) within 3 error
    bars. Measured: −0.4426 … −0.4449 ± 0.0024, relative energy error 4.4e-4."""
    out = tmp_path / "run"
    args = ["train", str(CONFIGS / "spin1_heisenberg.toml"), "--set", "hamiltonian.beta=0.3333333333333333",
            "--set", 'observables.names=["string_order"]', "--n-iter", "1500", "--out", str(out), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    res = json.loads((out / "result.json").read_text())
    assert res["exact_energy"] == pytest.approx(-20 / 3, abs=1e-8)  # −2/3 per bond
    string = json.loads((out / "observables.json").read_text())["string_order"]
    for r, value, error in zip(string["distance"], string["values"], string["errors"]):
        if r >= 2:
            assert 0 < error < 0.005
            assert abs(value + 4 / 9) < 3 * error, (r, value, error)


@pytest.mark.slow
def test_triangular_torus_trains_past_the_ferromagnetic_saddle_with_the_120_degree_phase(tmp_path):
    """configs/triangular6x3.toml at a CI-sized budget (8 features, 300 iterations; the shipped
    32 features and 1000 iterations reach 7.4e-3, about 40 minutes here): the 120° reference
    phase resolves on, and the symmetric RBM ends within 2.5e-2 (1.65e-2 measured). Without the
    phase it stays at the ferromagnetic eigenstate (E = +13); the plain RBM was 6.5e-2 off
    after 200 iterations."""
    out = tmp_path / "run"
    args = ["train", str(CONFIGS / "triangular6x3.toml"), "--out", str(out), "--quiet", "--n-iter", "300", "--set", "model.features=8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    res = json.loads((out / "result.json").read_text())
    assert res["exact_energy"] == pytest.approx(-10.4599356358, abs=1e-8)
    assert res["relative_error"] <= 2.5e-2
    assert res["energy"] >= res["exact_energy"] - 4 * res["energy_error"]


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [[], ["space.n_particles=6", "space.extent=8.0", "hamiltonian.pair.beta=3.0", "seed=7"]],
                         ids=["shipped", "N6-L8-beta3"])
def test_calogero_sutherland_ring_reaches_its_exact_energy_with_defaults(tmp_path, overrides):
    """configs/calogero_sutherland.toml (N = 10, L = 15, β = 2) and a ring nobody shipped: the
    fresh-chain estimate within 1e-3 of (π/L)² β² N(N²−1)/6, and variational. Measured: 2.8e-7
    (28.9508476 ± 0.0000074 against 28.9508395765) and 2.1e-6."""
    out = tmp_path / "run"
    args = ["train", str(CONFIGS / "calogero_sutherland.toml"), "--out", str(out), "--quiet"]
    result = CliRunner().invoke(app, args + [a for o in overrides for a in ("--set", o)])
    assert result.exit_code == 0, result.output
    res = json.loads((out / "result.json").read_text())
    resolved = json.loads((out / "resolved.json").read_text())
    n, length, beta = resolved["space"]["n_particles"], resolved["space"]["extent"][0], resolved["hamiltonian"]["pair"]["beta"]
    assert res["exact_energy"] == pytest.approx((math.pi / length) ** 2 * beta**2 * n * (n * n - 1) / 6, rel=1e-12)
    assert res["relative_error"] <= 1e-3
    assert res["energy"] >= res["exact_energy"] - 4 * res["energy_error"]
