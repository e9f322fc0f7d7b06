"""Local-energy throughput: DeepSets fast Laplacian vs the jax.hessian-based one.

Prints one JSON line. Default case (design.md §6): N=32 bosons in a 1D trap, DeepSetMLP
with the default widths × Gaussian envelope, a batch of 256 samples, float64.

    python benchmarks/laplacian.py [--n-particles 32] [--dims 1] [--batch 256] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp

jax.config.update("jax_enable_x64", True)

from nqs_cli import config  # noqa: E402
from nqs_cli.setup import build_problem  # noqa: E402


def time_fn(fn, params, xs, repeats: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    fn(params, xs).block_until_ready()
    compile_s = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(params, xs).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return best, compile_s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-particles", type=int, default=32)
    ap.add_argument("--dims", type=int, default=1)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    raw = {
        "space": {"n_particles": args.n_particles, "dims": args.dims, "extent": 0.0},
        "hamiltonian": {"kind": "continuous", "trap_omega": 1.0},
        "model": {"kind": "deepsets"},
        "sampler": {"kind": "metropolis-gaussian"},
    }
    cfg = config.from_dict(raw, source="<benchmark>")
    problem = build_problem(cfg)
    generic = build_problem(cfg, fast=False)  # trace of jacfwd(grad): jax.hessian's Laplacian
    params = problem.init_params(jax.random.key(0))
    xs = jax.vmap(problem.random_state)(jax.random.split(jax.random.key(1), args.batch))
    fast = jax.jit(jax.vmap(problem.local_energy, (None, 0)))
    slow = jax.jit(jax.vmap(generic.local_energy, (None, 0)))
    t_fast, c_fast = time_fn(fast, params, xs, args.repeats)
    t_slow, c_slow = time_fn(slow, params, xs, args.repeats)
    err = float(jnp.max(jnp.abs(fast(params, xs) - slow(params, xs))))
    print(json.dumps({
        "benchmark": "laplacian",
        "n_particles": args.n_particles,
        "dims": args.dims,
        "batch": args.batch,
        "fast_s": round(t_fast, 6),
        "hessian_s": round(t_slow, 6),
        "speedup": round(t_slow / t_fast, 2),
        "max_abs_diff": err,
        "compile_fast_s": round(c_fast, 3),
        "compile_hessian_s": round(c_slow, 3),
        "device": str(jax.devices()[0]),
    }))


if __name__ == "__main__":
    main()
