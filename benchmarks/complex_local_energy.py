"""Local energies of a complex RBM: cosh ratios from change tables vs log cosh per hidden unit.

Prints one JSON line. Both evaluate E_loc on the same samples in the same process, in the blocks of samples that
training uses (rbm_kernels.local_energy_block); the
reference recomputes Σ_h log cosh(θ_h + δ_h) − log cosh θ_h per connected element (what the
real-parameter path does), nqs's path uses cosh(θ + δ)/cosh θ = cosh δ + tanh θ sinh δ with
tabled cosh δ, sinh δ (models/rbm_kernels.py). Default case: the spin-1/2 Heisenberg torus on
the triangular 6×3 lattice with the 120° reference phase and the translation-symmetric RBM,
16 features (288 hidden units), 1008 samples, complex128.

    python benchmarks/complex_local_energy.py [--length 6 3] [--features 16] [--samples 1008] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from nqs_cli import config  # noqa: E402
from nqs_cli.models import rbm_kernels  # noqa: E402
from nqs_cli.models.activations import log_cosh  # noqa: E402
from nqs_cli.models.rbm_symm import expand, expanded_model  # noqa: E402
from nqs_cli.setup import build_problem  # noqa: E402


def log_cosh_local_energy(model, hamiltonian):
    """E_loc with a complex log cosh per connected element and hidden unit (the reference)."""

    def e_loc(params, x):
        d_theta, d_vis = rbm_kernels.delta_tables(model, params)
        sites, new, mels = hamiltonian.get_conn_changes(x)
        old = x[sites]
        th = rbm_kernels.theta(model, params, x)
        shift = d_theta[sites[:, 0], old[:, 0], new[:, 0]] + d_theta[sites[:, 1], old[:, 1], new[:, 1]]
        d_log = jnp.sum(log_cosh(th[None, :] + shift), -1) - jnp.sum(log_cosh(th))
        d_log = d_log + d_vis[sites[:, 0], old[:, 0], new[:, 0]] + d_vis[sites[:, 1], old[:, 1], new[:, 1]]
        return jnp.sum(mels * jnp.exp(d_log))

    return e_loc


def best_time(fn, *args, repeats: int) -> float:
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--length", type=int, nargs=2, default=[6, 3])
    ap.add_argument("--features", type=int, default=16)
    ap.add_argument("--samples", type=int, default=1008)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    raw = {"lattice": {"graph": "triangular", "length": list(args.length), "pbc": True},
           "hilbert": {"kind": "spin", "s": 0.5, "total_sz": 0},
           "hamiltonian": {"kind": "heisenberg", "J": 1.0},
           "model": {"kind": "rbm-multival", "param_dtype": "complex128", "features": args.features}}
    problem = build_problem(config.from_dict(raw))
    params = jax.tree_util.tree_map(lambda a: a + 0.1 * jax.random.normal(jax.random.key(1), a.shape, a.dtype),
                                    problem.init_params(jax.random.key(0)))
    keys = jax.random.split(jax.random.key(2), args.samples)
    xs = jax.vmap(problem.space.random_state)(keys)
    plain, expanded = expanded_model(problem.model), expand(problem.model, params)
    block = rbm_kernels.local_energy_block(plain, problem.hamiltonian)  # samples per block, as in training

    def blocked(e_loc):
        return jax.jit(lambda p, x: jax.lax.map(lambda one: e_loc(p, one), x, batch_size=min(block, x.shape[0])))

    ours = blocked(rbm_kernels.local_energy(plain, problem.hamiltonian))
    reference = blocked(log_cosh_local_energy(plain, problem.hamiltonian))
    e_ours, e_ref = ours(expanded, xs), reference(expanded, xs)
    t_ours = best_time(ours, expanded, xs, repeats=args.repeats)
    t_ref = best_time(reference, expanded, xs, repeats=args.repeats)
    print(json.dumps({
        "case": f"triangular {args.length[0]}x{args.length[1]}, {args.features} features ({args.features * problem.model.n_symmetries} hidden), {args.samples} samples",
        "cosh_ratio_s": round(t_ours, 5), "log_cosh_s": round(t_ref, 5), "ratio": round(t_ours / t_ref, 3),
        "max_rel_diff": float(np.max(np.abs(np.asarray(e_ours - e_ref)) / np.maximum(np.abs(np.asarray(e_ref)), 1e-12))),
        "device": jax.devices()[0].device_kind,
    }))


if __name__ == "__main__":
    main()
