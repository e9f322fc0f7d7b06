"""Small continuous-space problems and reference local energies shared by the tests."""

import jax
import jax.numpy as jnp
import numpy as np

from nqs_cli import config
from nqs_cli.systems.continuum.space import ParticleSpace


def make_cfg(n=3, dims=1, extent=0.0, omega=1.0, mass=1.0, pair=None, model=None, **top):
    raw = {
        "space": {"n_particles": n, "dims": dims, "extent": extent, "mass": mass},
        "hamiltonian": {"kind": "continuous", "trap_omega": omega},
        "model": dict(model or {}),
        "sampler": {"kind": "metropolis-gaussian", "n_chains": 2, "n_samples": 8},
        **top,
    }
    if pair is not None:
        raw["hamiltonian"]["pair"] = pair
    return config.from_dict(raw, source="<test>")


def perturbed_params(problem, scale=0.3, seed=0):
    """Init params plus noise, so no layer is trivially zero and the envelope moves off a_init."""
    params = problem.init_params(jax.random.key(seed))
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
    return jax.tree_util.tree_unflatten(tree, [p + scale * jax.random.normal(k, p.shape, p.dtype) for p, k in zip(leaves, keys)])


def energies(problem):
    """(fast E_loc, trace(jax.hessian) E_loc), both batched and jitted, one compile per problem."""
    ham, inv_2m = problem.hamiltonian, 0.5 / problem.space.mass

    def reference(params, x):
        f = lambda y: problem.log_psi(params, y)  # noqa: E731
        g = jax.grad(f)(x)
        return -inv_2m * (jnp.trace(jax.hessian(f)(x)) + g @ g) + ham.potential(x)

    batch = lambda fn: jax.jit(jax.vmap(fn, (None, 0)))  # noqa: E731
    return batch(problem.local_energy), batch(reference)


def spread_configs(space: ParticleSpace, n_configs: int, seed: int = 3) -> jax.Array:
    """Box configurations with particles near a lattice, so pair distances stay O(L/N)."""
    n, d = space.n_particles, space.dims
    base = (np.arange(n)[:, None] + 0.5) / n * np.asarray(space.extent)[None, :]
    rng = np.random.default_rng(seed)
    jitter = rng.uniform(-0.2, 0.2, (n_configs, n, d)) * np.asarray(space.extent)[None, None, :] / n
    return jnp.asarray((base[None] + jitter).reshape(n_configs, n * d))


TINY = {"features_phi": [4, 4], "features_rho": [4]}


RELDIST = {"layers_phi": 2, "layers_rho": 2, "features_phi": 4, "features_rho": 4}
