"""The translation-symmetric RBM: invariant under every translation, equal to the plain RBM
with its expanded (tied) parameters, and its fast paths (gathers, O(H) local energies, the
incremental sampler cache, the Jacobian through the expansion) equal the generic ones."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from lattice_cases import assert_same_log_psi, random_params, tiny

from nqs_cli.models import RBMMultiVal
from nqs_cli.models.rbm_symm import Permutations, RBMMultiValSymm, expand, expanded_model, gradients, n_features
from nqs_cli.setup import build_problem
from nqs_cli.systems.lattice.graph import Lattice
from nqs_cli.vmc.jacobians import centred, dense_jacobian


@pytest.mark.parametrize("graph, length, pbc, expected", [
    ("chain", 6, True, 6), ("square", (4, 3), True, 12), ("square", 4, (True, False), 4),
    ("triangular", 3, True, 9), ("honeycomb", 2, True, 4), ("chain", 5, False, 1),
])
def test_translations_are_a_group_of_lattice_automorphisms(graph, length, pbc, expected):
    lat = Lattice(graph=graph, length=length, pbc=pbc)
    perms = lat.translations
    assert perms.shape == (expected, lat.n_sites) and lat.n_translations == expected
    np.testing.assert_array_equal(perms[0], np.arange(lat.n_sites))
    bonds = {tuple(e) for e in lat.edges.tolist()}
    rows = {tuple(p) for p in perms.tolist()}
    for p in perms:
        assert sorted(p) == list(range(lat.n_sites))
        assert {tuple(sorted((p[i], p[j]))) for i, j in lat.edges} == bonds  # bonds map to bonds
        for q in perms:
            assert tuple(p[q]) in rows  # closed under composition


def _symm_model(dtype=jnp.float64, **kw):
    lat = Lattice(graph="square", length=(3, 2), pbc=True)
    perms = Permutations(lat.translations)
    return lat, RBMMultiValSymm(n_classes=3, permutations=perms, features=2, param_dtype=dtype, **kw)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.complex128])
@pytest.mark.parametrize("hidden_bias, visible_bias", [(True, True), (False, False)])
def test_invariant_and_equal_to_the_plain_rbm_with_expanded_parameters(dtype, hidden_bias, visible_bias):
    lat, model = _symm_model(dtype, use_hidden_bias=hidden_bias, use_visible_bias=visible_bias)
    xs = jax.random.randint(jax.random.key(0), (20, lat.n_sites), 0, 3)
    params = model.init(jax.random.key(1), xs[0])["params"]
    params = jax.tree_util.tree_map(lambda a: a + 0.5 * jax.random.normal(jax.random.key(2), a.shape, a.dtype), params)
    values = model.apply({"params": params}, xs)
    for perm in lat.translations:
        np.testing.assert_allclose(model.apply({"params": params}, xs[:, perm]), values, rtol=1e-12, atol=1e-12)
    plain = RBMMultiVal(n_classes=3, alpha=expanded_model(model).alpha, use_hidden_bias=hidden_bias,
                        use_visible_bias=visible_bias, param_dtype=dtype)
    np.testing.assert_allclose(plain.apply({"params": expand(model, params)}, xs), values, rtol=1e-12, atol=1e-12)
    # per-sample gradients in the tied parameters = autodiff of the module (holomorphic for complex)
    ref = dense_jacobian(lambda p_, x_: model.apply({"params": p_}, x_), params, xs)
    np.testing.assert_allclose(centred(gradients(model, params, xs)).o_bar, ref.o_bar, rtol=1e-10, atol=1e-12)
    # not invariant under a permutation that is no translation
    swap = np.arange(lat.n_sites)
    swap[[0, 1]] = [1, 0]
    assert not np.allclose(model.apply({"params": params}, xs[:, swap]), values)


def test_default_features_give_eight_times_the_plain_rbms_hidden_units():
    assert n_features(1.0, 16, 2, 16) == 16  # 256 hidden units, against the plain RBM's 32
    assert n_features(1.0, 18, 2, 18) == 16  # the triangular 6×3 torus
    assert n_features(1.0, 12, 3, 4) == 72
    assert n_features(0.5, 10, 3, 10) == 12  # int(15) hidden units -> ceil(120 / 10) features
    assert n_features(0.01, 4, 2, 4) == 1


# a triangular 3×3 torus of spins 1/2 in the S^z = 1/2 sector: the 120° spiral's phase is on
TRIANGULAR = dict(lattice__graph="triangular", lattice__length=[3, 3], hilbert__s=0.5, hilbert__total_sz=0.5, hamiltonian__beta=0.0)


@pytest.mark.parametrize("param_dtype, case", [("float64", {}), ("complex128", {}), ("complex128", TRIANGULAR)])
def test_fast_paths_equal_the_generic_ones(param_dtype, case):
    extra = dict(model__symmetry="translation", model__param_dtype=param_dtype, hamiltonian__sign_rule=False, **case)
    problem = tiny("heisenberg", **extra)
    generic = build_problem(problem_config := __import__("lattice_cases").tiny_config("heisenberg", **extra), fast=False)
    assert isinstance(problem.model, RBMMultiValSymm) and problem_config.model.symmetry == "translation"
    assert (problem.model.phase is not None) == bool(case)
    params = random_params(problem)
    xs = jnp.asarray(problem.space.all_states())
    lp = jax.vmap(problem.log_psi, (None, 0))(params, xs)
    assert_same_log_psi(lp, jax.vmap(generic.log_psi, (None, 0))(params, xs))
    e_fast = jax.vmap(problem.local_energy, (None, 0))(params, xs)
    e_generic = jax.vmap(generic.local_energy, (None, 0))(params, xs)
    np.testing.assert_allclose(e_fast, e_generic, rtol=1e-10, atol=1e-10)
    # full-sum estimator = exact expectation <ψ|H|ψ>/<ψ|ψ>
    h = problem.hamiltonian.to_dense(problem.space.all_states())
    psi = np.exp(np.asarray(lp) - np.max(np.asarray(lp).real))
    p = np.abs(psi) ** 2 / np.sum(np.abs(psi) ** 2)
    np.testing.assert_allclose(np.sum(p * np.asarray(e_fast)), np.vdot(psi, h @ psi) / np.vdot(psi, psi), rtol=1e-10)
    # incremental sampler cache: a move's amplitude equals a full evaluation
    ev = problem.evaluator
    ctx = ev.prepare(params)
    x, y = xs[0], xs[5]
    value, cache = ev.init(ctx, x)
    np.testing.assert_allclose(value, lp[0], rtol=1e-12)
    updated, _ = ev.update(ctx, cache, x, jnp.where(jnp.arange(x.shape[0]) < 2, y, x)) if int(jnp.sum(x != y)) else (value, cache)
    np.testing.assert_allclose(updated, problem.log_psi(params, jnp.where(jnp.arange(x.shape[0]) < 2, y, x)), rtol=1e-12)
    # the Jacobian in the tied parameters = autodiff of the module
    ours = problem.jacobian(params, xs)
    ref = dense_jacobian(lambda p_, x_: problem.model.apply({"params": p_}, x_), params, xs)
    np.testing.assert_allclose(ours.o_bar, ref.o_bar, rtol=1e-10, atol=1e-12)


def test_a_frustrated_ring_with_complex_parameters_trains_resumes_and_reports_its_model(tmp_path):
    """Defaults on a J1–J2 ring with complex parameters: Marshall's sign as a reference and the
    translation-symmetric RBM (resolved.json keeps the auto keys unset, validate says why);
    the run completes, resumes from its checkpoint to the same metrics, and its energy is
    variational (above the exact ground state, within a few error bars)."""
    import json

    from typer.testing import CliRunner

    from nqs_cli.app.cli import app

    cfg = tmp_path / "c.toml"
    cfg.write_text('seed = 2\n[lattice]\ngraph = "chain"\nlength = 8\n[hilbert]\nkind = "spin"\ns = 0.5\ntotal_sz = 0\n'
                   '[hamiltonian]\nkind = "heisenberg"\nJ2 = 0.3\n[model]\nparam_dtype = "complex128"\n'
                   '[sampler]\nn_samples = 256\n[train]\nn_iter = 12\ncheckpoint_every = 5\nfinal_samples = 2048\n')
    runner = CliRunner()
    first = runner.invoke(app, ["train", str(cfg), "--out", str(tmp_path / "a"), "--quiet"])
    assert first.exit_code == 0, first.output
    result = json.loads((tmp_path / "a" / "result.json").read_text())
    assert result["status"] == "completed"
    assert result["energy"] > result["exact_energy"] - 4 * result["energy_error"]
    half = runner.invoke(app, ["train", str(cfg), "--out", str(tmp_path / "b"), "--n-iter", "7", "--quiet"])
    assert half.exit_code == 0, half.output
    rest = runner.invoke(app, ["train", str(cfg), "--out", str(tmp_path / "b"), "--quiet"])
    assert rest.exit_code == 0 and "resuming" in rest.output, rest.output

    def rows(run):
        return [{k: v for k, v in json.loads(line).items() if k != "wall_s"} for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]

    assert rows("b") == rows("a")


def test_the_reference_phase_is_the_spirals_and_keeps_the_state_translation_symmetric_at_fixed_sz():
    """log ψ with the phase = log ψ without it + i Σ_i Q·c_i m(x_i); translating x shifts it by
    the same −i Q·t S^z for every configuration of the sector (a constant: the same state)."""
    from lattice_cases import tiny_config

    cfg = tiny_config("heisenberg", model__param_dtype="complex128", **TRIANGULAR)
    problem = build_problem(cfg)
    model = problem.model
    assert model.phase is not None and cfg.model.spiral_phase is None  # resolved automatically
    params = random_params(problem)
    xs = jnp.asarray(problem.space.all_states())
    lp = model.apply({"params": params}, xs)
    bare = RBMMultiValSymm(n_classes=2, permutations=model.permutations, features=model.features, param_dtype=jnp.complex128)
    lattice = Lattice(graph="triangular", length=(3, 3), pbc=True)
    phi = 2 * np.pi * lattice.coords @ np.array([1 / 3, 2 / 3])  # the 120° spiral of this torus
    m = np.asarray(xs) - 0.5
    np.testing.assert_allclose(lp, bare.apply({"params": params}, xs) + 1j * m @ phi, rtol=1e-12, atol=1e-12)
    for perm in lattice.translations[1:]:
        shift = np.exp(1j * np.asarray(model.apply({"params": params}, xs[:, perm]) - lp).imag)
        np.testing.assert_allclose(np.asarray(model.apply({"params": params}, xs[:, perm]) - lp).real, 0, atol=1e-12)
        np.testing.assert_allclose(shift, shift[0], atol=1e-12)
    with pytest.raises(ValueError, match="complex parameters"):
        RBMMultiValSymm(n_classes=2, permutations=model.permutations, features=1, phase=model.phase).init(jax.random.key(0), xs[0])
