"""Continuous space: the space, potentials, zero variance, exact energies, observables."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from continuum_cases import TINY, make_cfg, perturbed_params

from nqs_cli.config import ConfigError
from nqs_cli.setup import build_problem as build_continuous_problem
from nqs_cli.setup.continuum import exact_energy
from nqs_cli.systems.continuum.hamiltonian import ContinuousHamiltonian
from nqs_cli.systems.continuum.observables import observables
from nqs_cli.systems.continuum.local_energy import local_energy_factory
from nqs_cli.systems.continuum.potentials import aziz, calogero_sutherland, gaussian_pair, lennard_jones
from nqs_cli.systems.continuum.space import ParticleSpace

ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- space, potentials


def test_particle_space_states_and_invariants():
    box = ParticleSpace(4, 2, (3.0, 5.0))
    x = jax.vmap(box.random_state)(jax.random.split(jax.random.key(0), 64))
    assert x.shape == (64, 8) and box.periodic and box.n_dof == 8
    xs = np.asarray(x).reshape(64, 4, 2)
    assert (xs >= 0).all() and (xs[..., 0] < 3).all() and (xs[..., 1] < 5).all()
    assert box.coordinate_extent == (3.0, 5.0) * 4
    assert ParticleSpace(4, 2, (0.0, 0.0)).extent is None
    with pytest.raises(ValueError):
        ParticleSpace(4, 2, (1.0, 0.0))
    trap = ParticleSpace(2000, 1, None, mass=4.0, trap_omega=1.0)
    assert abs(float(jnp.std(trap.random_state(jax.random.key(1)))) - 0.5) < 0.03


def test_pair_potential_values():
    sigma, eps = 0.7, 2.5
    r_min = 2 ** (1 / 6) * sigma
    assert abs(float(lennard_jones(eps, sigma)(jnp.asarray(r_min))) + eps) < 1e-12
    assert abs(float(lennard_jones(eps, sigma)(jnp.asarray(sigma)))) < 1e-12
    assert abs(float(gaussian_pair(2.0, 0.5)(jnp.asarray(0.5))) - 2.0 * math.exp(-0.5)) < 1e-14
    r = jnp.linspace(2.5, 3.5, 10001)
    v = aziz()(r)
    k = int(jnp.argmin(v))
    assert abs(float(r[k]) - 2.9673) < 2e-3 and abs(float(v[k]) + 10.8) < 0.01
    assert float(aziz()(jnp.asarray(2.0))) > 0  # repulsive core


def test_minimum_image_trap_and_cutoff():
    space = ParticleSpace(3, 1, (6.0,))
    ham = ContinuousHamiltonian(space, 0.0, gaussian_pair(2.0, 0.5), cutoff=3.0)
    x = jnp.asarray([0.1, 5.9, 3.0])
    assert np.allclose(ham.pair_distances(x), [0.2, 2.9, 2.9])
    expected = 2.0 * (math.exp(-0.02 / 0.25) + 2 * math.exp(-(2.9**2) / 0.5))
    assert abs(float(ham.potential(x)) - expected) < 1e-13
    cut = ContinuousHamiltonian(space, 0.0, gaussian_pair(2.0, 0.5), cutoff=1.0)
    assert abs(float(cut.potential(x)) - 2.0 * math.exp(-0.02 / 0.25)) < 1e-13  # truncated, not shifted
    trap = ContinuousHamiltonian(ParticleSpace(2, 2, None, mass=2.0), 0.5)
    assert abs(float(trap.potential(jnp.asarray([1.0, 2.0, 0.0, -1.0]))) - 0.5 * 2.0 * 0.25 * 6.0) < 1e-14


def test_default_cutoff_and_description():
    box = build_continuous_problem(make_cfg(n=4, extent=8.0, omega=0.0, pair={"kind": "lennard-jones"}, model=TINY))
    assert box.hamiltonian.cutoff == 4.0
    assert "4 bosons in a 1D periodic box L=8" in box.description and "cut-off 4" in box.description
    trap = build_continuous_problem(make_cfg(n=6, pair={"kind": "gaussian", "g": 2.0, "sigma": 0.5}, model=TINY))
    assert trap.hamiltonian.cutoff is None
    assert trap.description == "6 bosons in a 1D harmonic trap (ω=1), gaussian pair g=2 σ=0.5"
    over = build_continuous_problem(make_cfg(n=4, extent=8.0, omega=0.0, pair={"kind": "aziz", "cutoff": 2.5}, model=TINY))
    assert over.hamiltonian.cutoff == 2.5


def test_exact_energy():
    assert exact_energy(make_cfg(n=6, dims=2, omega=0.5)) == 3.0
    assert exact_energy(make_cfg(n=6, pair={"kind": "gaussian", "g": 2.0})) is None
    assert exact_energy(make_cfg(n=6, extent=5.0, omega=0.0, model=TINY)) == 0.0
    assert exact_energy(make_cfg(n=6, extent=5.0, omega=1.0, model=TINY)) is None
    assert exact_energy(make_cfg(n=6, extent=5.0, omega=0.0, pair={"kind": "aziz"}, model=TINY)) is None


# --------------------------------------------------------------------------- local energy


@pytest.mark.parametrize("dims", [1, 2])
def test_zero_variance_gaussian_ground_state(dims):
    """ρ's output layer zeroed, envelope a = mω/2: E_loc ≡ N·D·ω/2 on both Laplacian paths."""
    mass, omega, n = 2.0, 0.7, 3
    cfg = make_cfg(n=n, dims=dims, mass=mass, omega=omega, model=TINY)
    problem = build_continuous_problem(cfg)
    params = perturbed_params(problem)
    last = params["inner"]["DeepSetMLP_0"]["ds_rho"]
    name = max(last)
    last[name] = jax.tree_util.tree_map(jnp.zeros_like, last[name])
    params["log_a"] = jnp.log(jnp.asarray(mass * omega / 2))
    xs = 2.0 * jax.random.normal(jax.random.key(5), (16, n * dims))
    generic = build_continuous_problem(cfg, fast=False)  # the forward-over-reverse path
    expected = n * dims * omega / 2
    assert exact_energy(cfg) == pytest.approx(expected)
    for prob in (problem, generic):
        e_loc = jax.jit(jax.vmap(prob.local_energy, (None, 0)))(params, xs)
        assert np.abs(np.asarray(e_loc) - expected).max() < 1e-10


@pytest.mark.parametrize("n, length, beta, mass", [(10, 15.0, 2.0, 1.0), (5, 4.0, 3.5, 0.5), (3, 7.0, 1.25, 2.0)])
def test_calogero_sutherland_jastrow_is_an_eigenstate_with_the_exact_energy(n, length, beta, mass):
    """log ψ = β Σ_{i<j} log|sin(π x_ij/L)|: E_loc(x) = (π/L)² β² N(N²−1)/(6m) at every x (Laplacian
    by forward-over-reverse), and nqs's exact energy of the config is that number."""
    pair = {"kind": "calogero-sutherland", "beta": beta}
    cfg = make_cfg(n=n, extent=length, omega=0.0, mass=mass, pair=pair, model=TINY)
    problem = build_continuous_problem(cfg)
    assert problem.hamiltonian.cutoff is None and f"β={beta:g}" in problem.description
    i, j = np.triu_indices(n, 1)

    def log_psi(params, x):
        return beta * jnp.sum(jnp.log(jnp.abs(jnp.sin(jnp.pi * (x[i] - x[j]) / length))))

    e_loc = jax.jit(jax.vmap(local_energy_factory(problem.hamiltonian)(log_psi), (None, 0)))
    xs = jax.random.uniform(jax.random.key(7), (32, n), maxval=length)
    expected = (math.pi / length) ** 2 * beta**2 * n * (n * n - 1) / (6 * mass)
    assert exact_energy(cfg) == pytest.approx(expected, rel=1e-14)
    np.testing.assert_allclose(np.asarray(e_loc(None, xs)), expected, rtol=1e-9)
    if (n, length, beta) == (10, 15.0, 2.0):
        assert round(expected, 3) == 28.951  # the ring of NetKet's DeepSets example
    v = calogero_sutherland(beta, length, mass)
    assert float(v(jnp.asarray(length / 2))) == pytest.approx((math.pi / length) ** 2 * beta * (beta - 1) / mass)


@pytest.mark.parametrize("space", [{"dims": 2, "extent": 5.0}, {"dims": 1, "extent": 0.0}])
def test_calogero_sutherland_outside_a_ring_is_refused(space):
    with pytest.raises(ConfigError, match="hamiltonian.pair.kind"):
        make_cfg(n=4, omega=1.0, pair={"kind": "calogero-sutherland"}, model=TINY, **{"space": {"n_particles": 4, **space}})


# --------------------------------------------------------------------------- observables


def test_pair_correlation_of_ideal_gas_is_one():
    cfg = make_cfg(n=8, dims=2, extent=[4.0, 6.0], omega=0.0, model=TINY)
    rng = np.random.default_rng(0)
    samples = rng.uniform(size=(4000, 8, 2)) * np.asarray([4.0, 6.0])
    obs = observables(build_continuous_problem(cfg).space, samples.reshape(4000, 16))
    g = obs["pair_correlation"]
    json.dumps(obs)
    values, errors = np.asarray(g["values"]), np.asarray(g["errors"])
    assert g["bin_centres"][-1] < 2.0 and len(values) == len(errors) == len(g["counts"])
    assert abs(values.mean() - 1.0) < 0.01
    assert np.all(np.abs(values - 1.0) < 5 * errors + 0.02)


@pytest.mark.parametrize("dims", [1, 3])
def test_density_normalisation(dims):
    cfg = make_cfg(n=5, dims=dims, model=TINY)
    samples = np.random.default_rng(1).normal(size=(2000, 5 * dims))
    d = observables(build_continuous_problem(cfg).space, samples)["density"]
    edges = np.asarray(d["bin_edges"])
    if dims == 1:
        measure = np.diff(edges)
    else:
        measure = np.diff(4 / 3 * math.pi * edges**3)
    assert abs(np.sum(np.asarray(d["values"]) * measure) - 5.0) < 1e-9
    assert sum(d["counts"]) == 2000 * 5
    if dims == 1:  # a unit Gaussian: n(0) ≈ N/√(2π)
        centre = np.asarray(d["values"])[np.argmin(np.abs(d["bin_centres"]))]
        assert abs(centre - 5 / math.sqrt(2 * math.pi)) < 0.15


# --------------------------------------------------------------------------- convergence


@pytest.mark.slow
def test_harmonic_trap_config_converges(tmp_path):
    from typer.testing import CliRunner

    from nqs_cli.app.cli import app

    result = CliRunner().invoke(app, ["train", str(ROOT / "configs/harmonic_trap.toml"), "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    res = json.loads((tmp_path / "run" / "result.json").read_text())
    assert abs(res["energy"] - 3.0) <= 1e-3
    assert res["variance"] < 1e-3


def test_structure_factor_of_an_ideal_gas_is_one_and_n_at_k_zero():
    from nqs_cli.systems.continuum.observables import structure_factor_values, wave_numbers

    space = ParticleSpace(8, 2, (5.0, 5.0))
    pos = np.random.default_rng(0).uniform(0, 5.0, (20000, 8, 2))
    k = wave_numbers(space)
    sk = structure_factor_values(pos, k)
    # uncorrelated uniform particles: S(k) = 1 at every allowed k ≠ 0; per-sample values are
    # exponential-like with variance ≈ 1, so the mean of 20000 is within 5/√20000 of 1
    np.testing.assert_allclose(sk.mean(axis=0), 1.0, atol=5 / np.sqrt(20000))
    assert structure_factor_values(pos[:3], np.array([0.0]))[:, 0] == pytest.approx([8.0] * 3)
