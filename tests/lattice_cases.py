"""Tiny, fully enumerable lattice problems shared by the engine and model tests."""

import jax
import jax.numpy as jnp
import numpy as np

from nqs_cli import config
from nqs_cli.setup import build_problem


def tiny_config(kind: str, **extra):
    if kind == "bose-hubbard":
        raw = {
            "lattice": {"graph": "chain", "length": 4, "pbc": True},
            "hilbert": {"kind": "fock", "n_max": 3, "n_particles": 4},
            "hamiltonian": {"kind": "bose-hubbard", "J": 1.0, "U": 4.0, "V": 0.3, "mu": 0.2},
            "model": {"kind": "rbm-multival", "alpha": 1},
        }
    else:
        raw = {
            "lattice": {"graph": "chain", "length": 4, "pbc": True},
            "hilbert": {"kind": "spin", "s": 1, "total_sz": 0},
            "hamiltonian": {"kind": "heisenberg", "J": 1.0, "beta": 0.2},
            "model": {"kind": "rbm-multival", "alpha": 2},
        }
    for key, value in extra.items():
        section, name = key.split("__")
        raw.setdefault(section, {})[name] = value
    return config.from_dict(raw)


def tiny(kind: str, **extra):
    return build_problem(tiny_config(kind, **extra))


def random_params(problem, scale=0.3, seed=3):
    """Parameters far from the near-zero initialisation, so ψ is far from uniform."""
    params = problem.init_params(jax.random.key(seed))
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    leaves = [scale * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)]
    return jax.tree_util.tree_unflatten(tree, leaves)


def exact_quantities(problem, params):
    states = problem.space.all_states()
    h = problem.hamiltonian.to_dense(states)
    log_psi = jax.vmap(problem.log_psi, (None, 0))(params, jnp.asarray(states))
    return states, h, log_psi


def assert_same_log_psi(actual, desired, rtol=1e-12, atol=1e-12):
    """log ψ values agree: equal real parts and equal phases (log ψ is defined modulo 2πi)."""
    actual, desired = np.asarray(actual), np.asarray(desired)
    np.testing.assert_allclose(actual.real, desired.real, rtol=rtol, atol=atol)
    if np.iscomplexobj(actual) or np.iscomplexobj(desired):
        np.testing.assert_allclose(np.exp(1j * actual.imag), np.exp(1j * desired.imag), rtol=0, atol=max(atol, rtol * np.max(np.abs(desired))))
