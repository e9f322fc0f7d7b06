"""The DeepSets structured Laplacian equals the trace of jax.hessian (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from continuum_cases import RELDIST, TINY, energies, make_cfg, perturbed_params, spread_configs

from nqs_cli.setup import build_problem as build_continuous_problem


@pytest.mark.parametrize(
    "case",
    [
        dict(dims=1, model=TINY),
        dict(dims=2, model=TINY, pair={"kind": "gaussian", "g": 2.0, "sigma": 0.5}),
        dict(dims=2, model={**TINY, "envelope": "none", "activation": "tanh"}),
        dict(dims=1, model={"features_phi": [8, 8], "features_rho": [8]}, pair={"kind": "gaussian", "g": 2.0, "sigma": 0.5}),
    ],
    # ρ's curvature: along the N·D directions when N·D < F (trap-1d, wide-rho), else by its Hessian
    ids=["trap-1d", "trap-2d-pair", "no-envelope", "wide-rho"],
)
def test_fast_laplacian_deepsets_equals_hessian(case):
    problem = build_continuous_problem(make_cfg(n=4, **case))
    params = perturbed_params(problem)
    xs = jax.random.normal(jax.random.key(7), (8, problem.space.n_dof))
    fast, reference = energies(problem)
    e_fast, e_ref = np.asarray(fast(params, xs)), np.asarray(reference(params, xs))
    assert np.abs(e_fast - e_ref).max() < 1e-10 * max(1.0, np.abs(e_ref).max())


@pytest.mark.parametrize(
    "dims, extent, cusp, features",
    [(1, 6.0, None, 4), (2, [5.0, 4.0], 2, 4), (1, 6.0, 1, 8), (1, 6.0, 0, 4)],
    ids=["1d", "2d-cusp", "1d-cusp-wide", "1d-log-cusp"],
)
def test_fast_laplacian_reldist_equals_hessian_and_is_periodic(dims, extent, cusp, features):
    model = {**RELDIST, "features_rho": features, **({"cusp_exponent": cusp} if cusp is not None else {})}
    cfg = make_cfg(n=4, dims=dims, extent=extent, omega=0.0, pair={"kind": "gaussian", "g": 2.0, "sigma": 0.5}, model=model)
    problem = build_continuous_problem(cfg)
    params = perturbed_params(problem)
    xs = spread_configs(problem.space, 6)
    fast, reference = energies(problem)
    e_fast, e_ref = np.asarray(fast(params, xs)), np.asarray(reference(params, xs))
    assert np.abs(e_fast - e_ref).max() < 1e-10 * max(1.0, np.abs(e_ref).max())
    # shift particle 2 by one box length along each axis (and particle 0 by minus one)
    box = np.atleast_1d(np.asarray(extent, dtype=float))
    shift = np.zeros((4, dims))
    shift[2] = box
    shift[0, -1] = -box[-1]
    e_shift = np.asarray(fast(params, xs + jnp.asarray(shift.reshape(-1))[None, :]))
    assert np.abs(e_shift - e_fast).max() < 1e-10 * max(1.0, np.abs(e_fast).max())
