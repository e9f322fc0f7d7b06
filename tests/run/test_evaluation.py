"""The fresh-chain energy estimate (final estimate of training, `nqs evaluate`) and E∞."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from lattice_cases import exact_quantities, random_params, tiny_config
from typer.testing import CliRunner

from nqs_cli.app.cli import app
from nqs_cli.run.evaluation import infinite_temperature_energy, sample_energy, v_score
from nqs_cli.setup import build_problem, build_training


@pytest.mark.parametrize("kind", ["bose-hubbard", "heisenberg"])
def test_sampled_energy_agrees_with_the_full_sum_within_its_error_bar(kind):
    cfg = tiny_config(kind, sampler__n_chains=8, sampler__n_samples=256)
    training = build_training(cfg, build_problem(cfg))
    params = random_params(training.problem, scale=0.2)
    states, h, log_psi = exact_quantities(training.problem, params)
    psi = np.exp(np.asarray(log_psi) - np.max(log_psi))
    exact = float(psi @ h @ psi / (psi @ psi))
    st = sample_energy(training, params, jax.random.key(3), 2048, 2048)
    assert st["n_samples"] == 2048 and st["discard_sweeps"] > 0
    assert abs(st["energy"] - exact) < 4 * st["energy_error"]
    # a target error is met by more passes of the same chains, within the cap
    target = st["energy_error"] / 2
    more = sample_energy(training, params, jax.random.key(3), 2048, 4 * 2048 * 4, target)
    assert more["energy_error"] <= target or more["n_samples"] == 4 * 2048 * 4
    assert more["n_samples"] > 2048
    assert abs(more["energy"] - exact) < 4 * more["energy_error"]
    # chains that start from given configurations (the training's) sample the same |ψ|²
    start = training.fresh_chains(random_params(training.problem, scale=0.2, seed=7), jax.random.key(5))
    warm = sample_energy(training, params, jax.random.key(4), 2048, 2048, start=start)
    assert warm["chains_from"] == "the training chains" and st["chains_from"] == "random configurations"
    assert abs(warm["energy"] - exact) < 4 * warm["energy_error"]


@pytest.mark.parametrize("kind", ["bose-hubbard", "heisenberg"])
def test_infinite_temperature_energy_is_the_trace_over_the_dimension(kind):
    cfg = tiny_config(kind)
    problem = build_problem(cfg)
    states = problem.space.all_states()
    h = problem.hamiltonian.to_dense(states)
    e_inf = infinite_temperature_energy(build_training(cfg, problem))
    assert e_inf == pytest.approx(np.trace(h) / len(states), abs=1e-12)
    assert v_score(-2.0, 0.5, 4, e_inf) == pytest.approx(4 * 0.5 / (-2.0 - e_inf) ** 2)


def test_training_reports_the_fresh_chain_estimate_and_evaluate_matches_it(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[lattice]\nlength = 4\n[hilbert]\nkind = "fock"\nn_max = 2\nn_particles = 4\n[hamiltonian]\nkind = "bose-hubbard"\n'
        "[sampler]\nn_chains = 4\nn_samples = 64\n[train]\nn_iter = 20\n"
    )
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(cfg), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    res = json.loads((out / "result.json").read_text())
    assert res["estimate"].startswith("fresh chains")
    assert res["energy_error"] <= res["trajectory_energy_error"] or res["final_samples"] == 2 * 4 * 64
    assert res["v_score"] == pytest.approx(4 * res["variance"] / (res["energy"] - res["e_inf"]) ** 2)
    result = CliRunner().invoke(app, ["evaluate", str(out), "--n-samples", "4096"])
    assert result.exit_code == 0, result.output
    ev = json.loads((out / "evaluation.json").read_text())
    assert ev["n_samples"] == 4096 and ev["step"] == 20
    # the same parameters: the two estimates agree within their combined error bars
    assert abs(ev["energy"] - res["energy"]) < 4 * float(jnp.hypot(ev["energy_error"], res["energy_error"]))


def test_evaluate_twice_gives_two_independent_estimates_that_agree(tmp_path):
    """Each `nqs evaluate` samples with a seed of its own (recorded): neither equals training's
    final estimate nor the other evaluation, and all three agree within their error bars."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[lattice]\nlength = 4\n[hilbert]\nkind = "fock"\nn_max = 2\nn_particles = 4\n[hamiltonian]\nkind = "bose-hubbard"\n'
        "[sampler]\nn_chains = 4\nn_samples = 64\n[train]\nn_iter = 10\nfinal_samples = 2048\n"
    )
    out = tmp_path / "run"
    assert CliRunner().invoke(app, ["train", str(cfg), "--out", str(out), "--quiet"]).exit_code == 0
    res = json.loads((out / "result.json").read_text())
    evaluations = []
    for _ in range(2):
        result = CliRunner().invoke(app, ["evaluate", str(out), "--n-samples", "2048"])
        assert result.exit_code == 0, result.output
        evaluations.append(json.loads((out / "evaluation.json").read_text()))
    first, second = evaluations
    assert first["seed"] == 1_000_003 + 1 and second["seed"] == first["seed"] + 1 and second["earlier_seeds"] == [first["seed"]]
    energies = [res["energy"], first["energy"], second["energy"]]
    assert len(set(energies)) == 3  # three samplings, not one repeated
    errors = [res["energy_error"], first["energy_error"], second["energy_error"]]
    for i in range(3):
        for j in range(i):
            assert abs(energies[i] - energies[j]) < 4 * float(jnp.hypot(errors[i], errors[j]))
    # an explicit --seed is used as given
    assert CliRunner().invoke(app, ["evaluate", str(out), "--n-samples", "2048", "--seed", "5"]).exit_code == 0
    assert json.loads((out / "evaluation.json").read_text())["seed"] == 5


def test_final_estimate_from_chains_that_disagree_is_a_warning():
    from nqs_cli.run.estimates import final_warnings

    assert final_warnings(None) == [] and final_warnings({"r_hat": 1.02, "discard_sweeps": 100}) == []
    (warning,) = final_warnings({"r_hat": 6.46, "discard_sweeps": 100})
    assert "split-R̂ = 6.46 > 1.1" in warning and "100 sweeps" in warning


def test_a_final_state_far_from_an_eigenstate_is_a_warning():
    """V-score above 0.02: the frustrated 4x3 triangular run that ended 3.8e-2 above E0 scored 0.17."""
    from nqs_cli.run.estimates import final_warnings

    assert final_warnings({"r_hat": 1.0, "v_score": 0.004}) == []
    (warning,) = final_warnings({"r_hat": 1.0, "v_score": 0.169})
    assert "V-score" in warning and "0.169 > 0.02" in warning and "train.n_iter" in warning
    # the formula N Var / (E - E_inf)^2 on numbers of that run (E_inf taken as 0 here)
    from nqs_cli.run.evaluation import v_score

    assert v_score(-6.6655, 0.4825, 12, 0.0) == pytest.approx(12 * 0.4825 / 6.6655**2)
    assert final_warnings({"v_score": v_score(-6.6655, 0.4825, 12, 0.0)})


def test_the_v_score_remedy_names_keys_of_the_runs_own_model():
    """An RBM run is told about model.alpha (model.features when symmetric); a DeepSets run about
    its network's widths and the cusp, never about RBM keys."""
    from continuum_cases import RELDIST, make_cfg
    from nqs_cli.run.estimates import final_warnings
    from nqs_cli.setup.models import enlarge_hint

    lattice = tiny_config("heisenberg")
    rbm = enlarge_hint(lattice, build_problem(lattice).model)
    assert "model.alpha" in rbm and "model.features_phi" not in rbm and "complex128" in rbm
    bosons = tiny_config("bose-hubbard")
    assert "complex128" not in enlarge_hint(bosons, build_problem(bosons).model)  # a bosonic ground state has no signs
    box = make_cfg(n=4, extent=5.0, omega=0.0, pair={"kind": "gaussian", "g": 2.0, "sigma": 0.5}, model={**RELDIST, "kind": "deepsets-reldist"})
    deepsets = enlarge_hint(box, build_problem(box).model)
    assert "model.features_phi" in deepsets and "model.cusp_exponent" in deepsets
    assert "model.alpha" not in deepsets and "complex128" not in deepsets
    (warning,) = final_warnings({"v_score": 0.1}, deepsets)
    assert deepsets in warning
