"""Observables of a run: sampled estimates against the full sum, observables.json from
training and `nqs evaluate`, the report's columns, and bad names in the config."""

import importlib.util
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from lattice_cases import random_params, tiny_config
from run_cases import tiny_run_config, trained_run
from typer.testing import CliRunner

from nqs_cli.app.cli import app
from nqs_cli.run.evaluation import sample_energy
from nqs_cli.run.measure import measure
from nqs_cli.setup import build_problem, build_training
from nqs_cli.setup.observables import build_observables


def full_sum(obs, problem, params):
    states = jnp.asarray(problem.space.all_states())
    log_psi = jax.vmap(problem.log_psi, (None, 0))(params, states).real
    p = np.exp(2 * (np.asarray(log_psi) - np.max(log_psi)))
    p /= p.sum()
    values = jax.vmap(lambda x: obs.values(lambda y: problem.log_psi(params, y), x))(states)
    means = {k: np.tensordot(p, np.asarray(v), axes=1) for k, v in values.items()}
    return {**means, **obs.derived(means)}


FOCK = ["density", "number_fluctuation", "density_correlation", "one_body_density_matrix", "momentum_distribution", "condensate_fraction"]


@pytest.mark.parametrize("kind, names, keys", [
    ("bose-hubbard", ["density", "number_fluctuation", "density_correlation", "one_body_density_matrix", "momentum_distribution", "condensate_fraction"],
     {"density": "n", "number_fluctuation": "number_fluctuation_sites", "density_correlation": "nn", "one_body_density_matrix": "rho",
      "momentum_distribution": "nk", "condensate_fraction": "condensate_fraction"}),
    pytest.param("heisenberg", ["sz_correlation", "spin_correlation", "structure_factor", "staggered_magnetization", "string_order"],
                 {"sz_correlation": "zz", "spin_correlation": "ss", "structure_factor": "sq", "staggered_magnetization": "ms2", "string_order": "string"},
                 marks=pytest.mark.slow),
])
def test_sampled_observables_agree_with_the_full_sum_within_their_error_bars(kind, names, keys):
    cfg = tiny_config(kind, sampler__n_chains=8, sampler__n_samples=256, observables__names=names)
    training = build_training(cfg, build_problem(cfg))
    params = random_params(training.problem, scale=0.2)
    kept = {}
    sample_energy(training, params, jax.random.key(5), 4096, 4096, keep=kept)
    assert kept["samples"].shape == (8, 512, 4) and kept["e_loc"].shape == (8, 512)
    got = measure(cfg, training, params, kept["samples"], kept["e_loc"])
    exact = full_sum(build_observables(cfg, training.problem), training.problem, params)
    assert got["n_samples"] == 4096 and set(names) <= set(got)
    for name in names:
        entry = got[name]
        value = np.asarray(entry.get("values", entry.get("value")))
        error = np.asarray(entry.get("errors", entry.get("error")))
        want = np.asarray(exact[keys[name]])
        constant = error < 1e-12  # e.g. S_i·S_i = s(s+1), Σ n_i = N: no fluctuation at all
        np.testing.assert_allclose(value[constant], want[constant], atol=1e-9)
        assert np.all(np.abs(value - want)[~constant] < 4.5 * error[~constant]), name
    assert set(got["scalars"]) == {n for n in names if n in ("number_fluctuation", "condensate_fraction", "staggered_magnetization", "string_order")}


def test_training_and_evaluate_write_observables_and_report_shows_them(tmp_path):
    _, run = trained_run(tmp_path, tiny_run_config("obs", seed=2, n_iter=10, observables=FOCK))
    first = json.loads((run / "observables.json").read_text())
    assert first["step"] == 10 and first["source"].startswith("final parameters")
    assert first["density"]["values"] == pytest.approx([1.0] * 4, abs=0.2)
    assert set(first["scalars"]) == {"number_fluctuation", "condensate_fraction"}
    result = CliRunner().invoke(app, ["evaluate", str(run), "--n-samples", "2048"])
    assert result.exit_code == 0, result.output
    assert "condensate_fraction" in result.output
    obs = json.loads((run / "observables.json").read_text())
    assert obs["source"] == "nqs evaluate" and obs["n_samples"] == 2048 and obs["step"] == 10
    assert "observables" not in json.loads((run / "evaluation.json").read_text())
    result = CliRunner().invoke(app, ["report", str(run)])
    assert result.exit_code == 0 and "condensate_fraction" in result.output and "number_fluctuation" in result.output
    rows = json.loads(CliRunner().invoke(app, ["report", str(run), "--json"]).output)
    assert rows[0]["observables"]["momentum_distribution"]["values"]


@pytest.mark.slow
def test_error_bars_shrink_like_one_over_the_square_root_of_the_samples(tmp_path):
    _, run = trained_run(tmp_path, tiny_run_config("obs", seed=2, n_iter=10, observables=FOCK))
    errors = {}
    for n in (1024, 16384):
        result = CliRunner().invoke(app, ["evaluate", str(run), "--n-samples", str(n)])
        assert result.exit_code == 0, result.output
        errors[n] = np.asarray(json.loads((run / "observables.json").read_text())["density_correlation"]["errors"][1:])
    # 16 × the samples: error bars about 4 × smaller, within the noise of the error estimates
    assert 2.5 < np.median(errors[1024] / errors[16384]) < 6.5


@pytest.mark.parametrize("setting, words", [
    ('observables.names=["string_order"]', '"string_order" is not an observable of bosons on a lattice'),
    ('observables.names=["magnetisation"]', "observable names among"),
    ("observables.max_distance=9", "expected <= 2"),
    ("observables.edge_sites=1", "only open lattices"),
])
def test_bad_observables_are_one_line_exit_2(tmp_path, setting, words):
    cfg = tmp_path / "c.toml"
    cfg.write_text(tiny_run_config("bad", seed=0))
    result = CliRunner().invoke(app, ["validate", str(cfg), "--set", setting])
    assert result.exit_code == 2
    assert words in result.output and "observables." in result.output and len(result.output.strip().splitlines()) == 1


def test_an_empty_list_measures_nothing_and_defaults_fit_the_system():
    assert tiny_config("bose-hubbard", observables__names=[]).observables.names == ()
    assert "string_order" in tiny_config("heisenberg").observables.names
    assert "string_order" not in tiny_config("heisenberg", hilbert__s=0.5).observables.names


def test_a_failing_observable_keeps_the_energy_exits_non_zero_and_a_rerun_measures_it_again(tmp_path, monkeypatch):
    from nqs_cli.systems.lattice.observables import LatticeObservables

    honest = LatticeObservables.values

    def broken(self, log_psi, x):
        if "density_correlation" in self.names:
            raise FloatingPointError("injected fault")
        return honest(self, log_psi, x)

    monkeypatch.setattr(LatticeObservables, "values", broken)
    cfg = tmp_path / "c.toml"
    cfg.write_text(tiny_run_config("fault", seed=4, n_iter=6, observables=["density", "density_correlation"]))
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", str(cfg), "--out", str(run), "--quiet"])
    assert result.exit_code == 1, result.output
    assert "density_correlation" in result.output and "injected fault" in result.output
    saved = json.loads((run / "result.json").read_text())
    assert saved["status"] == "completed" and np.isfinite(saved["energy"])
    assert set(saved["observables_failed"]) == {"density_correlation"}
    assert any("density_correlation" in w for w in saved["warnings"])
    obs = json.loads((run / "observables.json").read_text())
    assert "density" in obs and "density_correlation" not in obs and set(obs["failed"]) == {"density_correlation"}
    # the fault mended, the same command measures the observables again and leaves the energy as it was
    monkeypatch.setattr(LatticeObservables, "values", honest)
    result = CliRunner().invoke(app, ["train", str(cfg), "--out", str(run), "--quiet"])
    assert result.exit_code == 0, result.output
    again = json.loads((run / "result.json").read_text())
    assert "observables_failed" not in again and again["energy"] == saved["energy"]
    obs = json.loads((run / "observables.json").read_text())
    assert "failed" not in obs and obs["density_correlation"]["values"]


def test_a_ladder_trains_and_measures_every_default_observable(tmp_path):
    text = tiny_run_config("ladder", seed=5, n_iter=4).replace('length = 4', 'graph = "square"\nlength = [2, 2]\npbc = [true, false]')
    text = text.replace('names = []', '')
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    result = CliRunner().invoke(app, ["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    obs = json.loads((tmp_path / "run" / "observables.json").read_text())
    assert set(FOCK) <= set(obs) and "failed" not in obs
    assert obs["density_correlation"]["distance"] == [0.0, 1.0, 1.414214]


def test_exact_observables_have_the_layout_of_the_measured_ones_and_report_shows_both(tmp_path):
    _, run = trained_run(tmp_path, tiny_run_config("exact", seed=3, n_iter=6, observables=FOCK))
    result = CliRunner().invoke(app, ["exact", str(run)])
    assert result.exit_code == 0, result.output
    exact = json.loads((run / "exact_observables.json").read_text())
    measured = json.loads((run / "observables.json").read_text())
    assert set(FOCK) <= set(exact) and exact["source"] == "exact diagonalisation"
    for name in FOCK:
        if name in exact["scalars"]:
            continue
        assert np.shape(exact[name]["values"]) == np.shape(measured[name]["values"])
    # free of any sampling: Σ_k n(k) = N and ⟨n_i⟩ = N/L on the ring, to float precision
    assert np.sum(exact["momentum_distribution"]["values"]) == pytest.approx(4, abs=1e-9)
    np.testing.assert_allclose(exact["density"]["values"], 1.0, atol=1e-9)
    assert float(result.output.strip().splitlines()[-1]) == pytest.approx(exact["energy"], abs=1e-9)
    table = CliRunner().invoke(app, ["report", str(run)])
    assert table.exit_code == 0 and "(exact " in table.output
    plot = tmp_path / "obs.png"
    drawn = CliRunner().invoke(app, ["report", str(run), "--plot-observables", str(plot)])
    if importlib.util.find_spec("matplotlib") is None:  # the plot extra is not installed: one line, exit 2
        assert drawn.exit_code == 2 and "needs matplotlib" in drawn.output and not plot.exists()
        return
    assert drawn.exit_code == 0, drawn.output
    assert plot.stat().st_size > 10_000


def test_undefined_observables_are_refused_before_training(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(tiny_run_config("x", seed=0, observables=["density"]).replace('length = 4', 'graph = "custom"\nlength = 4\nedges = [[0, 1], [1, 2], [2, 3]]'))
    result = CliRunner().invoke(app, ["train", str(cfg), "--set", 'observables.names=["momentum_distribution"]', "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "no site positions" in result.output and "observables.names" in result.output
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


GEOMETRIES = {
    "bose-hubbard-ladder-6x2": ({"graph": "square", "length": [6, 2], "pbc": [True, False]}, "fock"),
    "bose-hubbard-torus-4x3": ({"graph": "square", "length": [4, 3]}, "fock"),
    "heisenberg-honeycomb-3x3": ({"graph": "honeycomb", "length": 3}, "spin"),
    "heisenberg-triangular-4x3": ({"graph": "triangular", "length": [4, 3]}, "spin"),
    "bose-hubbard-custom": ({"graph": "custom", "length": 6, "edges": [[0, 1], [1, 2], [2, 0], [2, 3], [3, 4], [4, 5], [5, 3]]}, "fock"),
}


@pytest.mark.slow  # five systems, each with its own compilation
@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_every_lattice_trains_and_writes_every_default_observable(tmp_path, name):
    from nqs_cli.config import from_dict, to_toml

    lattice, kind = GEOMETRIES[name]
    n = int(np.prod(lattice["length"])) * (2 if lattice["graph"] == "honeycomb" else 1)
    system = ({"hilbert": {"kind": "fock", "n_max": 2, "n_particles": n}, "hamiltonian": {"kind": "bose-hubbard", "U": 4.0}} if kind == "fock"
              else {"hilbert": {"kind": "spin", "s": 0.5, "total_sz": 0}, "hamiltonian": {"kind": "heisenberg"}})
    raw = {"name": name, "seed": 1, "lattice": lattice, **system, "sampler": {"n_chains": 8, "n_samples": 256}, "train": {"n_iter": 5}}
    cfg = tmp_path / "c.toml"
    cfg.write_text(to_toml(raw))
    result = CliRunner().invoke(app, ["train", str(cfg), "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    resolved = json.loads((tmp_path / "run" / "resolved.json").read_text())["observables"]
    expected = from_dict(raw, source="c.toml").observables.names
    obs = json.loads((tmp_path / "run" / "observables.json").read_text())
    assert resolved["names"] and set(resolved["names"]) <= set(expected) and set(resolved["names"]) <= set(obs)
    for entry in resolved["names"]:
        assert obs[entry]  # a value for every default observable the lattice defines
    dropped = set(expected) - set(resolved["names"])
    assert dropped == ({"staggered_magnetization"} if "triangular" in name else {"momentum_distribution"} if "custom" in name else set())


@pytest.mark.parametrize("lattice, name, words", [
    ({"graph": "triangular", "length": [4, 3]}, "staggered_magnetization", "not bipartite"),
    ({"graph": "triangular", "length": [4, 3]}, "staggered_moment", "not bipartite"),
    ({"graph": "custom", "length": 4, "edges": [[0, 1], [1, 2], [2, 3], [3, 0]]}, "structure_factor", "no site positions"),
    ({"graph": "custom", "length": 4, "edges": [[0, 1], [1, 2], [2, 3], [3, 0]]}, "spin_structure_factor", "no site positions"),
    ({"graph": "square", "length": 4}, "string_order", "chain"),
])
def test_validate_refuses_what_the_lattice_cannot_measure(tmp_path, lattice, name, words):
    from nqs_cli.config import to_toml

    cfg = tmp_path / "c.toml"
    s = 1 if name == "string_order" else 0.5
    cfg.write_text(to_toml({"name": "x", "lattice": lattice, "hilbert": {"kind": "spin", "s": s, "total_sz": 0},
                            "hamiltonian": {"kind": "heisenberg"}, "observables": {"names": [name]}}))
    result = CliRunner().invoke(app, ["validate", str(cfg)])
    assert result.exit_code == 2, result.output
    assert words in result.output and "observables.names" in result.output and len(result.output.strip().splitlines()) == 1
