"""Gaussian moves whose width adapts during thermalisation: the acceptance reaches its target
from far too small and far too large widths, the kept samples still follow |ψ|², and a
checkpoint written before the chains carried a width still resumes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from continuum_cases import make_cfg
from flax import serialization

from nqs_cli.run.checkpoints import restore_checkpoint
from nqs_cli.setup import build_problem, build_training
from nqs_cli.vmc.rules import GaussianRule
from nqs_cli.vmc.sampler import init_chains, make_sampler


def gaussian_log_psi(params, x):
    """ψ = exp(−x²/2) per coordinate: |ψ|² is a normal of variance 1/2."""
    return -0.5 * jnp.sum(x * x)


@pytest.mark.parametrize("sigma", [1e-3, 30.0])
def test_width_reaches_the_target_acceptance_and_samples_follow_psi_squared(sigma):
    rule = GaussianRule(sigma)
    n_chains, n_dof = 32, 3
    chains = init_chains(gaussian_log_psi, None, lambda k: jax.random.normal(k, (n_dof,)), jax.random.key(0), n_chains)
    warm = jax.jit(make_sampler(gaussian_log_psi, rule, 1, 60, 4, target_acceptance=0.5))
    chains, _, _ = warm(None, chains, jax.random.key(1))
    sample = jax.jit(make_sampler(gaussian_log_psi, rule, 400, 0, 4, target_acceptance=0.5))
    chains_after, samples, acceptance = sample(None, chains, jax.random.key(2))
    assert abs(float(acceptance) - 0.5) < 0.1
    np.testing.assert_array_equal(chains_after.width, chains.width)  # fixed while samples are kept
    x2 = np.asarray(samples).reshape(-1) ** 2
    n_eff = x2.size / 10  # generous for the autocorrelation of 4-step sweeps
    assert abs(x2.mean() - 0.5) < 5 * x2.std() / np.sqrt(n_eff)


def test_without_a_target_the_width_stays_put():
    rule = GaussianRule(0.5)
    chains = init_chains(gaussian_log_psi, None, lambda k: jax.random.normal(k, (2,)), jax.random.key(0), 4)
    out, _, _ = jax.jit(make_sampler(gaussian_log_psi, rule, 5, 5, 2))(None, chains, jax.random.key(1))
    np.testing.assert_array_equal(out.width, np.ones(4))


def test_a_checkpoint_without_chain_widths_restores_with_width_one():
    cfg = make_cfg(n=2, model={"features_phi": [4], "features_rho": [4]})
    training = build_training(cfg, build_problem(cfg))
    state = training.init_state(0)
    old = serialization.to_state_dict(state)
    del old["chains"]["width"]
    payload = {"format": 1, "config_hash": "h", "step": 0, "state": old}
    restored = restore_checkpoint(serialization.msgpack_serialize(payload), state, "h", "old.msgpack")
    np.testing.assert_array_equal(restored.chains.width, np.ones(state.chains.x.shape[0]))
    np.testing.assert_array_equal(restored.chains.x, state.chains.x)
