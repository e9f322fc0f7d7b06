"""Exact identities of the VMC engine on tiny, fully enumerable systems (float64)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from lattice_cases import exact_quantities, random_params, tiny, tiny_config

from nqs_cli import config
from nqs_cli.setup import build_problem, build_training
from nqs_cli.vmc import sr
from nqs_cli.vmc.jacobians import DenseJacobian, dense_jacobian
from nqs_cli.vmc.sampler import init_chains, make_sampler
from nqs_cli.vmc.stats import integrated_time, statistics


@pytest.mark.parametrize("kind", ["bose-hubbard", "heisenberg"])
def test_full_sum_local_energy_equals_rayleigh_quotient(kind):
    problem = tiny(kind)
    params = random_params(problem)
    states, h, log_psi = exact_quantities(problem, params)
    psi = np.exp(np.asarray(log_psi) - np.max(log_psi))
    rayleigh = psi @ h @ psi / (psi @ psi)
    e_loc = np.asarray(jax.vmap(problem.local_energy, (None, 0))(params, jnp.asarray(states)))
    weights = psi**2 / np.sum(psi**2)
    assert np.sum(weights * e_loc) == pytest.approx(rayleigh, abs=1e-10)
    # local energies are exact ratios: (Hψ)_x / ψ_x
    np.testing.assert_allclose(e_loc, (h @ psi) / psi, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["bose-hubbard", "heisenberg"])
def test_gradient_estimator_with_exact_weights_equals_autodiff(kind):
    problem = tiny(kind)
    params = random_params(problem)
    states = problem.space.all_states()
    h = jnp.asarray(problem.hamiltonian.to_dense(states))
    xs = jnp.asarray(states)

    def energy(p):
        lp = jax.vmap(problem.log_psi, (None, 0))(p, xs)
        psi = jnp.exp(lp - jax.lax.stop_gradient(jnp.max(lp)))
        return psi @ h @ psi / (psi @ psi)

    exact_grad = jax.flatten_util.ravel_pytree(jax.grad(energy)(params))[0]
    lp = jax.vmap(problem.log_psi, (None, 0))(params, xs)
    w = jnp.exp(2 * (lp - jnp.max(lp)))
    w = w / jnp.sum(w)
    e_loc = jax.vmap(problem.local_energy, (None, 0))(params, xs)
    jac = jax.vmap(lambda x: jax.flatten_util.ravel_pytree(jax.grad(problem.log_psi)(params, x))[0])(xs)
    o_bar = jnp.sqrt(w)[:, None] * (jac - (w @ jac)[None, :])
    eps = jnp.sqrt(w) * (e_loc - w @ e_loc)
    np.testing.assert_allclose(sr.energy_gradient(DenseJacobian(o_bar), eps), exact_grad, rtol=1e-9, atol=1e-11)


def test_minsr_equals_parameter_space_sr():
    key_o, key_e = jax.random.split(jax.random.key(0))
    for n, p in [(40, 90), (90, 40)]:
        raw = jax.random.normal(key_o, (n, p))
        o_bar = (raw - jnp.mean(raw, axis=0, keepdims=True)) / np.sqrt(n)
        jac = DenseJacobian(o_bar)
        eps = sr.centered_energies(jax.random.normal(key_e, (n,)), o_bar.dtype)
        d_s = sr.sr_direction(jac, eps, 1e-3, mode="S", solver="cholesky")
        d_min = sr.sr_direction(jac, eps, 1e-3, mode="minsr", solver="cholesky")
        d_cg = sr.sr_direction(jac, eps, 1e-3, mode="minsr", solver="cg")
        d_scg = sr.sr_direction(jac, eps, 1e-3, mode="S", solver="cg")
        np.testing.assert_allclose(d_min, d_s, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(d_cg, d_s, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(d_scg, d_s, rtol=1e-5, atol=1e-7)
        # it solves (S + λ) δ = g
        s_mat = o_bar.T @ o_bar
        np.testing.assert_allclose(s_mat @ d_s + 1e-3 * d_s, sr.energy_gradient(jac, eps), rtol=1e-8, atol=1e-10)
    assert sr.resolve_mode("auto", 100, 1000) == "minsr"


def test_sr_momentum_solves_the_spring_system_in_every_form():
    """δ = argmin |Ōδ − 2ε|² + λ|δ − μδ_prev|²: (S + λ)δ = 2Ōᵀε + λμδ_prev, the same in
    parameter and sample space, with Cholesky and conjugate gradients."""
    key_o, key_e, key_p = jax.random.split(jax.random.key(1), 3)
    lam, mu = 1e-3, 0.9
    for n, p in [(40, 90), (90, 40)]:
        raw = jax.random.normal(key_o, (n, p))
        o_bar = (raw - jnp.mean(raw, axis=0, keepdims=True)) / np.sqrt(n)
        jac = DenseJacobian(o_bar)
        eps = sr.centered_energies(jax.random.normal(key_e, (n,)), o_bar.dtype)
        previous = jax.random.normal(key_p, (p,))
        rhs = sr.energy_gradient(jac, eps) + lam * mu * previous
        for mode, solver, rtol in [("S", "cholesky", 1e-8), ("minsr", "cholesky", 1e-8), ("S", "cg", 1e-5), ("minsr", "cg", 1e-5)]:
            direction = sr.make_direction(sr.plan(mode, solver, n, p, structured=False), lambda step: lam, 1e-10, mu)
            d = direction(jac, eps, None, 0, previous)
            np.testing.assert_allclose(o_bar.T @ (o_bar @ d) + lam * d, rhs, rtol=rtol, atol=1e-8, err_msg=f"{mode}/{solver}")
        # without momentum the memory is ignored
        plain = sr.make_direction(sr.plan("S", "cholesky", n, p, structured=False), lambda step: lam, 1e-10)
        np.testing.assert_allclose(plain(jac, eps, None, 0, previous), sr.sr_direction(jac, eps, lam, "S", "cholesky"), rtol=1e-12)


def test_sr_resolution_rules():
    assert sr.resolve_mode("auto", 100, 1000) == "minsr"
    assert sr.resolve_mode("auto", 1000, 100) == "S"
    assert sr.resolve("auto", "auto", 100, 300) == ("minsr", "cholesky")
    assert sr.resolve("auto", "auto", 1008, 1088) == ("S", "cg")
    assert sr.resolve("minsr", "auto", 1008, 1088) == ("minsr", "cg")
    # sample-space Cholesky while N² ≤ 720 P and N ≤ 8192: spin-1 L=10 α=2 yes, L=32 α=2 at 4096 yes, at 16384 no
    assert sr.resolve("auto", "auto", 1008, 1890) == ("minsr", "cholesky")
    assert sr.resolve("auto", "auto", 4096, 33152) == ("minsr", "cholesky")
    assert sr.resolve("auto", "auto", 16384, 33152) == ("S", "cg")
    assert sr.resolve("auto", "cg", 1008, 1890) == ("S", "cg")
    # a cheap Gram matrix (structured RBM Jacobian): sample-space CG on it for 512 < N ≤ 4096, N < P
    assert sr.resolve("auto", "auto", 100, 300, cheap_gram=True) == ("minsr", "cholesky")
    for n, p in [(1008, 1088), (1008, 1890), (4096, 33152)]:
        assert sr.resolve("auto", "auto", n, p, cheap_gram=True) == ("minsr", "cg")
    assert sr.resolve("auto", "auto", 16384, 33152, cheap_gram=True) == ("S", "cg")
    assert sr.resolve("auto", "auto", 1008, 600, cheap_gram=True) == ("S", "cg")
    # a small final shift makes CG slow: the direct solve on the same Gram matrix, where it pays
    assert sr.resolve("auto", "auto", 2048, 9408, cheap_gram=True, diag_shift=0.001) == ("minsr", "cholesky")
    assert sr.resolve("auto", "auto", 2048, 9408, cheap_gram=True, diag_shift=0.01) == ("minsr", "cg")
    assert sr.resolve("auto", "auto", 1008, 1088, cheap_gram=True, diag_shift=0.001) == ("minsr", "cg")


def total_variation_bound(p: np.ndarray, n_effective: float) -> float:
    """Five standard deviations of the empirical total variation for n independent draws."""
    return 5 * 0.5 * np.sum(np.sqrt(p * (1 - p) / n_effective))


@pytest.mark.parametrize(
    "kind, sampler",
    [
        ("bose-hubbard", "metropolis-hamiltonian"),
        ("heisenberg", "metropolis-hamiltonian"),
        ("bose-hubbard-open", "metropolis-local"),
    ],
)
def test_sampler_histogram_matches_born_distribution(kind, sampler):
    if kind == "bose-hubbard-open":
        problem = build_problem(
            config.from_dict(
                {
                    "lattice": {"graph": "chain", "length": 3},
                    "hilbert": {"kind": "fock", "n_max": 2},
                    "hamiltonian": {"kind": "bose-hubbard"},
                    "sampler": {"kind": sampler},
                }
            )
        )
    else:
        problem = tiny(kind)
    params = random_params(problem, scale=0.2)
    states, _, log_psi = exact_quantities(problem, params)
    p = np.exp(2 * (np.asarray(log_psi) - np.max(log_psi)))
    p /= p.sum()
    n_chains, n_per_chain = 64, 400
    sample = jax.jit(make_sampler(problem.log_psi, problem.rule, n_per_chain, 50, 3 * problem.space.n_sites, problem.evaluator))
    chains = init_chains(problem.log_psi, params, problem.random_state, jax.random.key(5), n_chains)
    _, samples, acceptance = sample(params, chains, jax.random.key(6))
    flat = np.asarray(samples).reshape(-1, states.shape[1])
    index = {tuple(s): i for i, s in enumerate(states)}
    counts = np.zeros(len(states))
    for s in flat:
        counts[index[tuple(s)]] += 1  # KeyError = a state outside the sector: conservation broken
    tv = 0.5 * np.abs(counts / counts.sum() - p).sum()
    # long sweeps (3 moves per site) between samples: allow autocorrelation τ ≤ 2
    assert tv < total_variation_bound(p, flat.shape[0] / 5)
    assert 0.05 < float(acceptance) <= 1.0


def test_hamiltonian_moves_conserve_particle_number_and_magnetisation():
    for kind in ("bose-hubbard", "heisenberg"):
        problem = tiny(kind)
        params = random_params(problem)
        sample = jax.jit(make_sampler(problem.log_psi, problem.rule, 20, 5, 4, problem.evaluator))
        chains = init_chains(problem.log_psi, params, problem.random_state, jax.random.key(1), 8)
        _, samples, _ = sample(params, chains, jax.random.key(2))
        values = problem.space.local_values[np.asarray(samples)]
        target = 4 if kind == "bose-hubbard" else 0
        assert np.all(np.isclose(values.sum(axis=-1), target))


def test_integrated_time_of_ar1_process():
    phi, n = 0.8, 200_000
    rng = np.random.default_rng(0)
    noise = rng.normal(size=n)
    x = np.empty(n)
    x[0] = noise[0]
    for t in range(1, n):
        x[t] = phi * x[t - 1] + noise[t]
    tau = float(integrated_time(jnp.asarray(x)))
    assert tau == pytest.approx(phi / (1 - phi), rel=0.1)  # exact: Σ_t φ^t = φ/(1-φ) = 4
    st = statistics(jnp.asarray(x).reshape(8, -1))
    assert float(st.error_of_mean) == pytest.approx(np.sqrt(np.var(x) * (1 + 2 * phi / (1 - phi)) / n), rel=0.1)
    assert float(st.r_hat) == pytest.approx(1.0, abs=0.01)


def test_train_step_keeps_shapes_and_is_finite():
    cfg = tiny_config("bose-hubbard", sampler__n_samples=64, sampler__n_chains=8)
    training = build_training(cfg, build_problem(cfg))
    state = training.init_state(0)
    step = jax.jit(training.step)
    new, stats = step(state, jax.random.key(0))
    assert int(new.step) == 1
    assert jax.tree_util.tree_structure(new.params) == jax.tree_util.tree_structure(state.params)
    for a, b in zip(jax.tree_util.tree_leaves(new.params), jax.tree_util.tree_leaves(state.params)):
        assert a.shape == b.shape and a.dtype == b.dtype
    assert new.chains.x.shape == (8, 4) and new.chains.x.dtype == state.chains.x.dtype
    assert all(np.isfinite(float(v)) for v in stats.values())


def test_the_reported_parameters_are_the_running_average_of_the_iterates():
    """θ̄_t = θ̄_{t-1} + (θ_t − θ̄_{t-1})/min(t, τ): the mean of the first τ iterates, then an
    exponential average; checked against the iterates themselves, with τ = 3 over 6 steps."""
    from nqs_cli.vmc.step import final_params

    cfg = tiny_config("bose-hubbard", sampler__n_samples=64, sampler__n_chains=8, train__param_average=3)
    training = build_training(cfg, build_problem(cfg))
    assert training.average == 3
    state = training.init_state(0)
    step = jax.jit(training.step)
    iterates = []
    for t in range(6):
        state, _ = step(state, jax.random.key(t))
        iterates.append(jax.flatten_util.ravel_pytree(state.params)[0])
    expected = np.mean(iterates[:3], axis=0)
    for theta in iterates[3:]:
        expected = expected + (theta - expected) / 3
    np.testing.assert_allclose(jax.flatten_util.ravel_pytree(final_params(state))[0], expected, rtol=1e-12, atol=1e-14)
    # τ = 0 reports the last iterate
    off = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, param_average=0))
    plain = build_training(off, build_problem(off))
    state = plain.init_state(0)
    state, _ = jax.jit(plain.step)(state, jax.random.key(0))
    assert final_params(state) is state.params
    # the automatic τ is half the estimate window
    assert config.average_iterations(dataclasses.replace(cfg.train, param_average=None, n_iter=300, final_window=50)) == 25
    assert config.average_iterations(dataclasses.replace(cfg.train, param_average=None, n_iter=30, final_window=50)) == 3


def test_chunked_evaluation_equals_unchunked():
    from nqs_cli.vmc.step import chunked_map

    cfg = tiny_config("heisenberg")
    problem = build_problem(cfg)
    params = random_params(problem)
    xs = jnp.asarray(problem.space.all_states())
    full = jax.vmap(problem.local_energy, (None, 0))(params, xs)
    np.testing.assert_allclose(chunked_map(problem.local_energy, 7)(params, xs), full, rtol=1e-13, atol=1e-13)
    blocked = dataclasses.replace(problem, fast=dataclasses.replace(problem.fast, local_energy_block=5))
    np.testing.assert_allclose(jax.jit(build_training(cfg, blocked).local_energies)(params, xs), full, rtol=1e-13, atol=1e-13)
    dense = dense_jacobian(problem.log_psi, params, xs)
    chunked = problem.jacobian(params, xs, dense=True, chunk_size=5)
    np.testing.assert_allclose(chunked.o_bar, dense.o_bar, rtol=1e-13, atol=1e-13)


FRESH_PROCESS_SR = """
import jax, jax.numpy as jnp, numpy as np
jax.config.update("jax_enable_x64", True)
from nqs_cli.vmc import sr
from nqs_cli.models.rbm_jacobian import RBMJacobian
from nqs_cli.vmc.jacobians import DenseJacobian
rng = np.random.default_rng(7)
n, sites, classes, hidden = 1008, 10, 3, 20
v = jnp.asarray(np.eye(classes)[rng.integers(0, classes, (n, sites))].reshape(n, -1))
t = jnp.tanh(jnp.asarray(rng.normal(size=(n, hidden))))
m = v.shape[1]
params = {"RBM": {"Dense": {"kernel": jnp.zeros((m, hidden)), "bias": jnp.zeros(hidden)}, "visible_bias": jnp.zeros(m)}}
jac = RBMJacobian.from_activations(v, t, params, use_hidden_bias=True, use_visible_bias=True)
o = jnp.concatenate([t, (v[:, :, None] * t[:, None, :]).reshape(n, -1), v], axis=1)  # ravel_pytree order
dense = DenseJacobian((o - o.mean(0)) / np.sqrt(n))
eps = sr.centered_energies(jnp.asarray(rng.normal(size=n)), jnp.float64)
ref = sr.sr_direction(dense, eps, 0.01, "S", "cholesky")
for mode in ("S", "minsr"):
    d = jax.jit(lambda j, e: sr.sr_direction(j, e, 0.01, mode, "cg", 1e-5))(jac, eps)
    print(mode, float(jnp.max(jnp.abs(d - ref)) / jnp.max(jnp.abs(ref))))
"""


@pytest.mark.slow
def test_compiled_cg_direction_is_right_in_fresh_processes():
    """Regression: a CG loop over flat (ravelled) RBM parameters compiled, in about half of
    fresh processes, to code that returned NaN or garbage; the solve now runs on parameter
    trees. Each fresh process must give the dense Cholesky direction."""
    import subprocess
    import sys

    for _ in range(8):  # the old loop failed in 2 of 6 processes with these settings
        out = subprocess.run([sys.executable, "-c", FRESH_PROCESS_SR], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        errors = dict(line.split() for line in out.stdout.split("\n") if line)
        assert set(errors) == {"S", "minsr"}
        for mode, err in errors.items():
            # CG stops at a relative residual of 1e-5; the direction then agrees to ~1.5e-5
            assert float(err) < 1e-4, (mode, err)


# --------------------------------------------------------------------------- complex parameters


def test_complex_parameters_full_sum_identities():
    """Complex RBM (spin-1, no sign rule): the full-sum ⟨E_loc⟩ is ψ†Hψ/ψ†ψ, E_loc = (Hψ)/ψ,
    and the estimator 2Ō†ε with exact weights is ∂E/∂(Re θ) + i ∂E/∂(Im θ) from autodiff of
    the exact energy as a function of the real and imaginary parts."""
    problem = tiny("heisenberg", model__param_dtype="complex128")
    params = random_params(problem)
    states = problem.space.all_states()
    h = jnp.asarray(problem.hamiltonian.to_dense(states))
    xs = jnp.asarray(states)
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    log_psi_all = jax.vmap(problem.log_psi, (None, 0))

    @jax.jit
    def exact_energy(a, b):
        lp = log_psi_all(unravel(a + 1j * b), xs)
        psi = jnp.exp(lp - jax.lax.stop_gradient(jnp.max(lp.real)))
        return jnp.real(jnp.conj(psi) @ h @ psi) / jnp.real(jnp.conj(psi) @ psi)

    @jax.jit
    def estimates(params):
        lp = log_psi_all(params, xs)
        w = jnp.exp(2 * (lp.real - jnp.max(lp.real)))
        w = w / jnp.sum(w)
        e_loc = jax.vmap(problem.local_energy, (None, 0))(params, xs)
        jac = jax.vmap(lambda x: jax.flatten_util.ravel_pytree(jax.grad(problem.log_psi, holomorphic=True)(params, x))[0])(xs)
        o_bar = jnp.sqrt(w)[:, None] * (jac - (w @ jac)[None, :])
        eps = jnp.sqrt(w) * (e_loc - w @ e_loc)
        psi = jnp.exp(lp - jnp.max(lp.real))
        return w @ e_loc, e_loc, psi, sr.energy_gradient(DenseJacobian(o_bar), eps)

    mean, e_loc, psi, grad = estimates(params)
    assert abs(float(mean.imag)) < 1e-12  # H is Hermitian: the exact mean of Im E_loc vanishes
    assert float(mean.real) == pytest.approx(float(exact_energy(flat.real, flat.imag)), abs=1e-10)
    np.testing.assert_allclose(e_loc, (h @ psi) / psi, rtol=1e-10, atol=1e-10)
    g_re, g_im = jax.jit(jax.grad(exact_energy, argnums=(0, 1)))(flat.real, flat.imag)
    np.testing.assert_allclose(grad, g_re + 1j * g_im, rtol=1e-9, atol=1e-11)


def realified(o_bar):
    """The real map A on (Re δ, Im δ) ↦ (Re Ōδ, Im Ōδ): [[Re Ō, −Im Ō], [Im Ō, Re Ō]] (2N × 2P)."""
    return jnp.block([[o_bar.real, -o_bar.imag], [o_bar.imag, o_bar.real]])


def test_complex_sr_is_the_real_part_qgt_in_every_form():
    """For complex Ō, every form and solver (with and without momentum) gives the same δ, and
    δ = δa + iδb solves the real system of the stacked map A on (Re θ, Im θ):
    (AᵀA + λ)(δa, δb) = 2Aᵀ(Re ε, Im ε) + λμ(Re δ_prev, Im δ_prev), i.e. S = Re(J†J),
    F = 2 Re(J†ε) with J = [Ō, iŌ]."""
    key_o, key_e, key_p = jax.random.split(jax.random.key(2), 3)
    lam, mu = 1e-3, 0.9
    forms = [("S", "cholesky", 1e-8), ("minsr", "cholesky", 1e-8), ("S", "cg", 1e-5), ("minsr", "cg", 1e-5)]
    for n, p in [(40, 90), (90, 40)]:
        raw = jax.random.normal(key_o, (n, p), jnp.complex128)
        o_bar = (raw - jnp.mean(raw, axis=0, keepdims=True)) / np.sqrt(n)
        eps = sr.centered_energies(jax.random.normal(key_e, (n,), jnp.complex128), jnp.complex128)
        previous = jax.random.normal(key_p, (p,), jnp.complex128)

        @jax.jit
        def compute(o_bar, eps, previous):
            jac = DenseJacobian(o_bar)
            a = realified(o_bar)
            b = jnp.concatenate([eps.real, eps.imag])
            prev_real = jnp.concatenate([previous.real, previous.imag])
            out = {"trace": (jac.trace_s(), jnp.trace(a.T @ a) / 2),  # Σ|Ō|² (A counts each twice)
                   "fs": (jnp.sum(jnp.abs(jac.apply(previous)) ** 2), prev_real @ (a.T @ a) @ prev_real)}
            for momentum in (0.0, mu):
                real = jnp.linalg.solve(a.T @ a + lam * jnp.eye(2 * p), 2 * a.T @ b + lam * momentum * prev_real)
                out[f"real {momentum}"] = real[:p] + 1j * real[p:]
                for mode, solver, _ in forms:
                    direction = sr.make_direction(sr.plan(mode, solver, n, p, structured=False), lambda step: lam, 1e-10, momentum)
                    out[f"{mode} {solver} {momentum}"] = direction(jac, eps, None, 0, previous)
            return out

        out = compute(o_bar, eps, previous)
        np.testing.assert_allclose(*out["trace"], rtol=1e-12)
        np.testing.assert_allclose(*out["fs"], rtol=1e-12)  # the trust region's |Ōδ|² = δᵀAᵀAδ
        for momentum in (0.0, mu):
            for mode, solver, rtol in forms:
                d = out[f"{mode} {solver} {momentum}"]
                assert d.dtype == jnp.complex128
                np.testing.assert_allclose(d, out[f"real {momentum}"], rtol=rtol, atol=1e-7, err_msg=f"{mode}/{solver}/μ={momentum}")
