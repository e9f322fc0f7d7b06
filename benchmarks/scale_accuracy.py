"""Accuracy at equal wall time beyond exact diagonalisation: nqs (its defaults, a shipped
config) against NetKet's usual recipe (SGD 0.01 + SR 0.01, 2048 samples, 16 chains,
hamiltonian moves, 300 iterations), both against DMRG.

    pip install ".[bench]"
    OPENBLAS_NUM_THREADS=1 python -m benchmarks.scale_accuracy [--case bh-ring24|spin1-open32] [--netket-iter 300]

For each case NetKet runs its 300 iterations first; its wall time T (compilation included) is
nqs's budget. nqs then trains the shipped config (its defaults, through the same pieces as
`nqs train`) for 85 % of T and spends the rest on its fresh-chain final estimate. NetKet's
energy is its usual one, the mean of the last 50 iterations. Prints one JSON line per case:
energies, relative errors, wall times, iterations of both codes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from benchmarks.cases import nk_bose_hubbard, nk_spin1  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CASES = {
    "bh-ring24": (ROOT / "configs" / "bose_hubbard_ring24.toml", -21.915794761, lambda: nk_bose_hubbard(24, 1, 2048, pbc=True)),
    "spin1-open32": (ROOT / "configs" / "spin1_open32.toml", -43.641857575, lambda: nk_spin1(32, 2, 2048, pbc=False)),
}


def run_netket(build, n_iter: int) -> dict:
    vstate, driver, _ = build()
    energies, errors = [], []
    t0 = time.perf_counter()
    for _ in range(n_iter):
        driver.reset_step()
        loss, dp = driver.compute_loss_and_update()
        driver.update_parameters(dp)
        driver._step_count += 1
        energies.append(float(np.real(loss.mean)))
        errors.append(float(loss.error_of_mean))
    wall = time.perf_counter() - t0
    last = min(50, n_iter)
    e, err = np.array(energies[-last:]), np.array(errors[-last:])
    error = max(float(np.std(e, ddof=1) / math.sqrt(last)), float(math.sqrt(np.sum(err**2)) / last))
    return {"energy": float(np.mean(e)), "energy_error": error, "wall_s": wall, "n_iter": n_iter}


def run_nqs(config: Path, budget_s: float, reserve: float = 0.15) -> dict:
    """nqs with the config's defaults, trained until (1 − reserve)·budget, then the fresh-chain
    final estimate; the whole within about ``budget_s``."""
    from nqs_cli import config as config_mod
    from nqs_cli.run.estimates import estimate_window, final_estimate
    from nqs_cli.run.evaluation import PASS_FACTOR, sample_energy
    from nqs_cli.setup import build_problem, build_training
    from nqs_cli.vmc.loop import Health, run_loop
    from nqs_cli.vmc.step import final_params, root_keys

    t0 = time.perf_counter()
    cfg = config_mod.load(config)
    training = build_training(cfg, build_problem(cfg))
    state = training.init_state(cfg.seed)
    rows = []

    def on_step(s, rec):
        rows.append({"step": rec.step, **rec.stats})

    deadline = t0 + (1.0 - reserve) * budget_s
    tr = cfg.train
    health = Health(spike_factor=tr.spike_factor, spike_retries=tr.spike_retries, dead_steps=tr.dead_steps)
    state, _ = run_loop(jax.jit(training.step), state, root_keys(cfg.seed)[2], 10**7, on_step,
                        should_stop=lambda: time.perf_counter() > deadline, health=health)
    window = estimate_window(len(rows), tr.final_window)
    trajectory = final_estimate(rows, window)
    s = cfg.sampler
    final = sample_energy(training, final_params(state), jax.random.key(cfg.seed + 1_000_003), PASS_FACTOR * s.n_samples,
                          2 * window * s.n_samples, trajectory["energy_error"], start=state.chains)
    return {"energy": final["energy"], "energy_error": final["energy_error"], "final_samples": final["n_samples"],
            "trajectory_energy": trajectory["energy"], "trajectory_energy_error": trajectory["energy_error"],
            "wall_s": time.perf_counter() - t0, "n_iter": len(rows)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=sorted(CASES), action="append")
    ap.add_argument("--netket-iter", type=int, default=300)
    args = ap.parse_args(argv)
    for name in args.case or sorted(CASES):
        config, e0, build = CASES[name]
        nk = run_netket(build, args.netket_iter)
        nq = run_nqs(config, nk["wall_s"])
        row = {"case": name, "reference": e0, "netket": nk, "nqs": nq,
               "netket_rel_error": abs((nk["energy"] - e0) / e0), "nqs_rel_error": abs((nq["energy"] - e0) / e0)}
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
