"""The RBM's fast paths equal the generic ones: gather log ψ, O(H) local energies, the
incremental sampler cache and the structured Jacobian (float64, tiny enumerable systems)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from lattice_cases import assert_same_log_psi, random_params, tiny

from nqs_cli.vmc import sr
from nqs_cli.vmc.jacobians import dense_jacobian


def assert_structured_maps_equal_dense(structured, dense, key, dtype=jnp.float64):
    """Gram matrix, Gram products, Ō†y, Ōv and Tr S of the structured RBM Jacobian = the dense one's
    (to 1e-10), for vectors of ``dtype``; returns the random sample-space vector y used."""
    assert structured.shape == dense.shape
    k_y, k_v = jax.random.split(key)
    np.testing.assert_allclose(structured.gram(), dense.gram(), rtol=1e-10, atol=1e-12)
    y = jax.random.normal(k_y, (dense.shape[0],), dtype)
    np.testing.assert_allclose(structured.gram_matvec()(y), dense.gram() @ y, rtol=1e-10, atol=1e-12)
    v = jax.random.normal(k_v, (dense.shape[1],), dtype)
    np.testing.assert_allclose(structured.transpose_apply(y), dense.transpose_apply(y), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(structured.apply(v), dense.apply(v), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(structured.flatten(structured.native(v)), v)
    np.testing.assert_allclose(structured.trace_s(), jnp.trace(dense.s_matrix()), rtol=1e-10)
    return y


@pytest.mark.parametrize("hidden_bias, visible_bias", [(True, False), (False, True), (False, False)])
def test_structured_rbm_jacobian_without_biases_equals_dense(hidden_bias, visible_bias):
    from nqs_cli.models import RBMMultiVal
    from nqs_cli.models.rbm_jacobian import rbm_jacobian

    model = RBMMultiVal(n_classes=3, alpha=1, use_hidden_bias=hidden_bias, use_visible_bias=visible_bias)
    xs = jax.random.randint(jax.random.key(0), (40, 5), 0, 3)
    params = model.init(jax.random.key(1), xs[0])["params"]
    params = jax.tree_util.tree_map(lambda a: a + 0.3 * jax.random.normal(jax.random.key(2), a.shape), params)
    dense = dense_jacobian(lambda p, x: model.apply({"params": p}, x), params, xs)
    structured = rbm_jacobian(model, params, xs)
    assert_structured_maps_equal_dense(structured, dense, jax.random.key(3))


@pytest.mark.parametrize("kind", ["bose-hubbard", "heisenberg"])
def test_structured_rbm_jacobian_equals_dense(kind, monkeypatch):
    problem = tiny(kind)
    params = random_params(problem)
    xs = jnp.asarray(problem.space.all_states())
    dense = dense_jacobian(problem.log_psi, params, xs)
    structured = problem.jacobian(params, xs)
    assert type(structured).__name__ == "RBMJacobian"
    y = assert_structured_maps_equal_dense(structured, dense, jax.random.key(1))
    eps = sr.centered_energies(y, y.dtype)
    reference = sr.sr_direction(dense, eps, 1e-2, "S", "cholesky")
    for solver in ("cholesky", "cg"):
        np.testing.assert_allclose(sr.sr_direction(structured, eps, 1e-2, "minsr", solver), reference, rtol=1e-6, atol=1e-8)
    # sample-space CG on products with Ō and Ōᵀ instead of the Gram matrix (large N)
    monkeypatch.setattr(sr, "GRAM_CG_MAX_SAMPLES", 0)
    np.testing.assert_allclose(sr.sr_direction(structured, eps, 1e-2, "minsr", "cg"), reference, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("kind", ["bose-hubbard", "heisenberg"])
def test_fast_rbm_kernels_equal_the_module(kind):
    problem = tiny(kind)
    params = random_params(problem)
    xs = jnp.asarray(problem.space.all_states())
    module = jax.vmap(lambda x: problem.model.apply({"params": params}, x))(xs)
    fast = jax.vmap(lambda x: problem.log_psi(params, x))(xs)
    np.testing.assert_allclose(fast, module, rtol=1e-12, atol=1e-12)
    generic = jax.vmap(problem_generic_local_energy(problem), (None, 0))(params, xs)
    incremental = jax.vmap(problem.local_energy, (None, 0))(params, xs)
    np.testing.assert_allclose(incremental, generic, rtol=1e-10, atol=1e-10)


def problem_generic_local_energy(problem):
    from nqs_cli.systems.lattice.local_energy import local_energy_factory

    return local_energy_factory(problem.hamiltonian)(lambda p, x: problem.model.apply({"params": p}, x))


def test_incremental_sampler_evaluator_tracks_log_psi():
    """Cached θ updates along a chain give the same log ψ as a fresh evaluation."""
    problem = tiny("bose-hubbard")
    params = random_params(problem)
    ev = problem.evaluator
    ctx = ev.prepare(params)
    x = problem.random_state(jax.random.key(0))
    lp, cache = ev.init(ctx, x)
    for k in jax.random.split(jax.random.key(1), 20):
        x_new, _ = problem.rule.propose(problem.rule.draw(k, (), x.shape[0], jnp.float64), x)
        lp, cache = ev.update(ctx, cache, x, x_new)
        x = x_new
        assert float(lp) == pytest.approx(float(problem.model.apply({"params": params}, x)), abs=1e-12)
    # a one-site (local) move, including site 0
    x_new = x.at[0].set((x[0] + 1) % problem.space.local_dim)
    lp, _ = ev.update(ctx, cache, x, x_new)
    assert float(lp) == pytest.approx(float(problem.model.apply({"params": params}, x_new)), abs=1e-12)


@pytest.mark.parametrize("kind", ["bose-hubbard", "heisenberg"])
def test_site_aware_update_tracks_log_psi(kind):
    """The sampler's path for Hamiltonian moves: the rule names the bond's sites, the cache is
    updated from those alone (including moves that change nothing), and log ψ stays exact."""
    problem = tiny(kind)
    params = random_params(problem)
    ev, rule = problem.evaluator, problem.rule
    ctx = ev.prepare(params)
    x = problem.random_state(jax.random.key(0))
    lp, cache = ev.init(ctx, x)
    for k in jax.random.split(jax.random.key(3), 30):
        x_new, log_q, sites = rule.propose_sites(rule.draw(k, (), x.shape[0], jnp.float64), x)
        ref_new, ref_q = rule.propose(rule.draw(k, (), x.shape[0], jnp.float64), x)
        np.testing.assert_array_equal(x_new, ref_new)
        assert float(log_q) == float(ref_q)
        assert set(np.flatnonzero(np.asarray(x_new != x))) <= set(np.asarray(sites).tolist())
        lp, cache = ev.update_sites(ctx, cache, x, x_new, sites)
        x = x_new
        assert float(lp) == pytest.approx(float(problem.model.apply({"params": params}, x)), abs=1e-12)
    # the same sites with nothing changed: log ψ unchanged
    lp_same, _ = ev.update_sites(ctx, cache, x, x, jnp.asarray([0, 1]))
    assert float(lp_same) == pytest.approx(float(lp), abs=1e-14)


@pytest.mark.parametrize(
    "kind, extra",
    [
        ("bose-hubbard", dict(hamiltonian__trap={"V": 0.7, "center": 1.5}, hamiltonian__onsite=[0.3, -0.2, 0.0, 0.5], lattice__pbc=False)),
        ("heisenberg", dict(hamiltonian__delta=1.5, hamiltonian__J2=0.3, hamiltonian__D=0.4, hamiltonian__h=0.2)),
        ("heisenberg", dict(lattice__graph="triangular", lattice__length=[2, 2], hamiltonian__D=-0.3)),
    ],
)
def test_fast_local_energies_are_exact_ratios_with_site_and_anisotropy_terms(kind, extra):
    """Site-dependent potentials, XXZ, J2 and single-ion terms through the O(H) kernel:
    E_loc(x) = (Hψ)_x / ψ_x on every configuration of the sector."""
    from lattice_cases import exact_quantities

    problem = tiny(kind, **extra)
    params = random_params(problem)
    states, h, log_psi = exact_quantities(problem, params)
    psi = np.exp(np.asarray(log_psi) - np.max(log_psi))
    e_loc = np.asarray(jax.vmap(problem.local_energy, (None, 0))(params, jnp.asarray(states)))
    np.testing.assert_allclose(e_loc, (h @ psi) / psi, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- complex parameters


def complex_problem(kind):
    """The plain RBM with complex parameters (the symmetric one: tests/models/test_rbm_symm.py)."""
    return tiny(kind, model__param_dtype="complex128", model__symmetry="none")


@pytest.mark.parametrize("kind", ["bose-hubbard", "heisenberg"])
def test_complex_fast_rbm_kernels_equal_the_module(kind):
    problem = complex_problem(kind)
    params = random_params(problem)
    assert all(a.dtype == jnp.complex128 for a in jax.tree_util.tree_leaves(params))
    xs = jnp.asarray(problem.space.all_states())
    generic_e_loc = problem_generic_local_energy(problem)

    @jax.jit
    def evaluate(params):
        module = jax.vmap(lambda x: problem.model.apply({"params": params}, x))(xs)
        fast = jax.vmap(lambda x: problem.log_psi(params, x))(xs)
        generic = jax.vmap(generic_e_loc, (None, 0))(params, xs)
        incremental = jax.vmap(problem.local_energy, (None, 0))(params, xs)
        return module, fast, generic, incremental

    module, fast, generic, incremental = evaluate(params)
    assert fast.dtype == jnp.complex128 and np.ptp(np.asarray(module).imag) > 0.1
    assert_same_log_psi(fast, module)
    assert np.max(np.abs(np.asarray(generic).imag)) > 1e-3  # a genuinely complex E_loc
    np.testing.assert_allclose(incremental, generic, rtol=1e-10, atol=1e-10)


def test_complex_jacobians_are_the_holomorphic_derivative(monkeypatch):
    """The dense Jacobian (jax.grad, holomorphic) is ∂ log ψ/∂(Re θ) from forward-mode autodiff
    of log ψ as a function of the real and imaginary parts, log ψ is holomorphic (∂/∂(Im θ) =
    i ∂/∂(Re θ)), the structured map equals the dense one on complex vectors, and every SR form
    and solver gives the same complex direction."""
    problem = complex_problem("heisenberg")
    params = random_params(problem)
    xs = jnp.asarray(problem.space.all_states())
    flat, unravel = jax.flatten_util.ravel_pytree(params)

    def of_parts(a, b):
        return jax.vmap(lambda x: problem.model.apply({"params": unravel(a + 1j * b)}, x))(xs)

    d_re, d_im = jax.jit(jax.jacfwd(of_parts, argnums=(0, 1)))(flat.real, flat.imag)
    np.testing.assert_allclose(d_im, 1j * d_re, rtol=1e-12, atol=1e-12)
    dense = jax.jit(lambda p: dense_jacobian(problem.log_psi, p, xs))(params)
    n = xs.shape[0]
    np.testing.assert_allclose(dense.o_bar, (d_re - d_re.mean(axis=0, keepdims=True)) / np.sqrt(n), rtol=1e-11, atol=1e-12)
    structured = problem.jacobian(params, xs)
    assert type(structured).__name__ == "RBMJacobian"
    y = assert_structured_maps_equal_dense(structured, dense, jax.random.key(1), jnp.complex128)
    eps = sr.centered_energies(y, jnp.complex128)
    reference = sr.sr_direction(dense, eps, 1e-2, "S", "cholesky")
    assert reference.dtype == jnp.complex128
    for mode, solver in [("minsr", "cholesky"), ("minsr", "cg"), ("S", "cg")]:
        direction = jax.jit(lambda j, e: sr.sr_direction(j, e, 1e-2, mode, solver))(structured, eps)
        np.testing.assert_allclose(direction, reference, rtol=1e-6, atol=1e-8)
    monkeypatch.setattr(sr, "GRAM_CG_MAX_SAMPLES", 0)  # sample-space CG on Ō and Ō† products
    np.testing.assert_allclose(jax.jit(lambda j, e: sr.sr_direction(j, e, 1e-2, "minsr", "cg"))(structured, eps), reference, rtol=1e-6, atol=1e-8)


def test_complex_incremental_evaluator_tracks_log_psi():
    """The sampler's cached θ stays exact with complex parameters (phase included)."""
    problem = complex_problem("heisenberg")
    params = random_params(problem)
    ev, rule = problem.evaluator, problem.rule
    ctx = ev.prepare(params)
    x0 = problem.random_state(jax.random.key(0))

    @jax.jit
    def walk(x):
        def move(carry, k):
            x, lp, cache = carry
            x_new, _, sites = rule.propose_sites(rule.draw(k, (), x.shape[0], jnp.float64), x)
            lp, cache = ev.update_sites(ctx, cache, x, x_new, sites)
            return (x_new, lp, cache), (x_new, lp)

        lp, cache = ev.init(ctx, x)
        _, (xs, lps) = jax.lax.scan(move, (x, lp, cache), jax.random.split(jax.random.key(3), 30))
        return xs, lps, jax.vmap(lambda x: problem.model.apply({"params": params}, x))(xs)

    xs, cached, fresh = walk(x0)
    assert len({tuple(np.asarray(x)) for x in xs}) > 3  # the chain moved
    np.testing.assert_allclose(cached, fresh, rtol=0, atol=1e-12)
