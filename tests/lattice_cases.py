"""Tiny, fully enumerable lattice problems shared by the engine and model tests."""

import jax
import jax.numpy as jnp

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
