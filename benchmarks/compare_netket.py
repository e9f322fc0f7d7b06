"""nqs vs NetKet 3.23 on the same problems, in the same process, interleaved.

    python -m benchmarks.compare_netket [--case NAME ...] [--n-iter N] [--timed K]

Prints one JSON line per case on stdout (progress on stderr). Per-iteration times are
measured AFTER compilation (the first iteration is reported as compile time), one nqs
iteration then one NetKet iteration, alternately, each ended by ``block_until_ready``; the
medians are reported, so machine noise hits both codes alike. With several cases each runs
in its own subprocess, so that ``peak_rss_mb`` belongs to that case alone (both codes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402

from benchmarks.cases import CASES  # noqa: E402

WARMUP = 3
PHASE_REPS = 9


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    jax.block_until_ready(out)
    return time.perf_counter() - t0, out


def median(xs):
    return float(statistics.median(xs)) if xs else None


def continuous_available() -> bool:
    """nqs_cli/systems/continuum/ exists and `nqs validate configs/harmonic_trap.toml` passes."""
    import importlib.util
    from pathlib import Path

    if importlib.util.find_spec("nqs_cli.systems.continuum") is None:
        return False
    cfg = Path(__file__).resolve().parents[1] / "configs" / "harmonic_trap.toml"
    if not cfg.exists():
        return True
    res = subprocess.run([sys.executable, "-m", "nqs_cli", "validate", str(cfg)], capture_output=True)
    return res.returncode == 0


def device_name() -> str:
    d = jax.devices()[0]
    if d.platform == "cpu":
        return f"cpu ({os.cpu_count()} cores)"
    return f"{d.platform} ({d.device_kind})"


def git_commit() -> str | None:
    """HEAD of the nqs checkout, with "+dirty" when nqs_cli/ has uncommitted changes."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "nqs_cli"], cwd=root, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def n_params(tree) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(tree)))


# --------------------------------------------------------------------------- the two sides


class NqsSide:
    def __init__(self, raw: dict, overrides: list[str] | None = None):
        from nqs_cli import config
        from nqs_cli.setup import build_problem, build_training
        from nqs_cli.vmc.step import root_keys

        self.cfg = config.from_dict(raw, source=f"<bench {raw['name']}>", overrides=overrides)
        self.problem = build_problem(self.cfg)
        self.training = build_training(self.cfg, self.problem)
        self.state = self.training.init_state(self.cfg.seed)
        self.step_key = root_keys(self.cfg.seed)[2]
        self.step_fn = jax.jit(self.training.step)
        self.t = 0

    @property
    def n_params(self) -> int:
        return n_params(self.state.params)

    def iterate(self) -> float:
        """One VMC iteration; returns the energy estimate of the samples it drew."""
        self.state, stats = self.step_fn(self.state, jax.random.fold_in(self.step_key, self.t))
        self.t += 1
        return float(jax.block_until_ready(stats["energy"]))

    def phase_fns(self):
        """Jitted pieces of one iteration through public pieces only: sampling, local energies.

        The gradient + SR share is the full step minus these two (the SR internals change
        too often to time them from outside).
        """
        s = self.cfg.sampler
        sample = jax.jit(self.training.sampler(s.n_samples // s.n_chains, s.n_discard_per_chain))
        return sample, jax.jit(self.training.local_energies)


class NetketSide:
    def __init__(self, build):
        self.vstate, self.driver, self.ham = build()

    @property
    def n_params(self) -> int:
        return n_params(self.vstate.parameters)

    def iterate(self) -> float:
        """One iteration exactly as nk.driver.VMC.run does it, minus loggers and callbacks."""
        d = self.driver
        d.reset_step()
        loss, dp = d.compute_loss_and_update()
        d.update_parameters(dp)
        d._step_count += 1
        jax.block_until_ready((self.vstate.parameters, loss.mean))
        return float(jnp.real(loss.mean))


# --------------------------------------------------------------------------- measurements


def run_vmc(case, n_iter: int | None, n_timed: int, phases: bool, overrides: list[str]) -> dict:
    log(f"{case.name}: building nqs and NetKet")
    nqs = NqsSide(case.nqs_raw(), overrides)
    nk = NetketSide(case.netket)
    out = {"n_samples": nqs.cfg.sampler.n_samples, "n_params": nqs.n_params}
    if nk.n_params != nqs.n_params:
        out["netket_n_params"] = nk.n_params
    pre = nk.driver.preconditioner
    out["netket_sr"] = f"qgt={getattr(pre.qgt_constructor, '__name__', pre.qgt_constructor)}, solver={getattr(pre.solver, '__name__', pre.solver)}"
    out["nqs_sr"] = f"mode={nqs.cfg.optimizer.sr.mode}, solver={nqs.cfg.optimizer.sr.solver}"
    if nk.vstate.n_samples != nqs.cfg.sampler.n_samples:
        out["netket_n_samples"] = nk.vstate.n_samples

    t_nqs, e0 = timed(nqs.iterate)
    t_nk, f0 = timed(nk.iterate)
    out["nqs_compile_s"], out["netket_compile_s"] = t_nqs, t_nk
    log(f"{case.name}: first iteration (compile) nqs {t_nqs:.2f} s, NetKet {t_nk:.2f} s")

    total = n_iter if n_iter is not None else 1 + WARMUP + n_timed
    times = {"nqs": [], "nk": []}
    energies = {"nqs": [e0], "nk": [f0]}
    for it in range(1, total):
        for side, obj in (("nqs", nqs), ("nk", nk)) if it % 2 else (("nk", nk), ("nqs", nqs)):
            dt, e = timed(obj.iterate)
            energies[side].append(e)
            if it > WARMUP:
                times[side].append(dt)
        if it % 50 == 0:
            log(f"{case.name}: iter {it}/{total}: E nqs {energies['nqs'][-1]:.5f}, NetKet {energies['nk'][-1]:.5f}")
    out["nqs_s_per_iter"] = median(times["nqs"])
    out["netket_s_per_iter"] = median(times["nk"])
    out["n_timed"] = len(times["nqs"])
    if n_iter is not None:
        window = min(50, max(1, n_iter // 6))
        for side, key in (("nqs", "nqs"), ("nk", "netket")):
            e = float(sum(energies[side][-window:]) / window)
            out[f"{key}_energy"] = e
            out[f"{key}_rel_error"] = abs((e - case.exact_energy) / case.exact_energy) if case.exact_energy else None
        out["energy_window"] = window
    else:
        out["nqs_rel_error"] = out["netket_rel_error"] = None
    if phases:
        out.update(measure_phases(nqs, nk))
    return out


def measure_phases(nqs: NqsSide, nk: NetketSide) -> dict:
    """Median time of each piece of an iteration, interleaved; parameters held fixed.

    nqs: sampling, local energies, and the full step; gradient + SR = step − the two.
    NetKet: sampling, local energies, expect_and_grad (local energies + gradient), SR.
    """
    sample, e_loc = nqs.phase_fns()
    state = nqs.state
    vs, drv = nk.vstate, nk.driver
    key = jax.random.key(7)
    res = {k: [] for k in ("nqs_sample", "nqs_eloc", "nqs_step", "nk_sample", "nk_eloc", "nk_expect_and_grad", "nk_sr")}

    def nk_sample():
        vs.reset()
        return vs.samples

    for r in range(PHASE_REPS + 1):  # rep 0 compiles
        k = jax.random.fold_in(key, r)
        dt, (_, samples, _) = timed(lambda: sample(state.params, state.chains, k))
        flat = samples.reshape((-1, samples.shape[-1]))
        res["nqs_sample"].append(dt)
        res["nk_sample"].append(timed(nk_sample)[0])
        res["nqs_eloc"].append(timed(lambda: e_loc(state.params, flat))[0])
        res["nk_eloc"].append(timed(lambda: vs.local_estimators(nk.ham))[0])
        res["nqs_step"].append(timed(lambda: nqs.step_fn(state, k))[0])
        dt, (_, grad) = timed(lambda: vs.expect_and_grad(nk.ham))
        res["nk_expect_and_grad"].append(dt)
        res["nk_sr"].append(timed(lambda: drv.preconditioner(vs, grad, drv.step_count))[0])
    m = {k: median(v[1:]) for k, v in res.items()}
    return {
        "nqs_phases": {
            "sample": m["nqs_sample"],
            "local_energy": m["nqs_eloc"],
            "grad_sr": max(m["nqs_step"] - m["nqs_sample"] - m["nqs_eloc"], 0.0),
            "step": m["nqs_step"],
        },
        "netket_phases": {
            "sample": m["nk_sample"],
            "local_energy": m["nk_eloc"],
            "grad_sr": max(m["nk_expect_and_grad"] - m["nk_eloc"], 0.0) + m["nk_sr"],
            "expect_and_grad": m["nk_expect_and_grad"],
            "sr": m["nk_sr"],
        },
    }


def run_throughput(case, reps: int, overrides: list[str]) -> dict:
    """Sampling alone and local energies alone (no gradient, no SR), interleaved."""
    log(f"{case.name}: building nqs and NetKet")
    nqs = NqsSide(case.nqs_raw(), overrides)
    nk = NetketSide(case.netket)
    s = nqs.cfg.sampler
    sample, e_loc = nqs.phase_fns()
    params, chains = nqs.state.params, nqs.state.chains
    vs = nk.vstate
    out = {"n_samples": s.n_samples, "n_params": nqs.n_params}
    if nk.n_params != nqs.n_params:
        out["netket_n_params"] = nk.n_params
    res = {k: [] for k in ("nqs_sample", "nk_sample", "nqs_eloc", "nk_eloc")}
    for r in range(reps + 2):  # reps 0 and 1 compile (the chains returned by rep 0 retrace once)
        k = jax.random.fold_in(jax.random.key(11), r)
        dt, (chains, samples, _) = timed(lambda: sample(params, chains, k))
        res["nqs_sample"].append(dt)
        res["nk_sample"].append(timed(vs.sample)[0])  # vs.sample() always draws afresh
        flat = samples.reshape((-1, samples.shape[-1]))
        res["nqs_eloc"].append(timed(lambda: e_loc(params, flat))[0])
        res["nk_eloc"].append(timed(lambda: vs.local_estimators(nk.ham))[0])
        log(f"{case.name}: rep {r}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in res.items()))
    m = {k: median(v[2:]) for k, v in res.items()}
    out.update(
        nqs_sample_s=m["nqs_sample"],
        netket_sample_s=m["nk_sample"],
        nqs_local_energy_s=m["nqs_eloc"],
        netket_local_energy_s=m["nk_eloc"],
        nqs_s_per_iter=m["nqs_sample"] + m["nqs_eloc"],
        netket_s_per_iter=m["nk_sample"] + m["nk_eloc"],
        nqs_compile_s=res["nqs_sample"][0] + res["nqs_eloc"][0],
        netket_compile_s=res["nk_sample"][0] + res["nk_eloc"][0],
        nqs_rel_error=None,
        netket_rel_error=None,
        s_per_iter_means="sampling + local energies",
    )
    return out


def run_case(name: str, args) -> dict:
    case = CASES[name]
    warnings.filterwarnings("ignore")
    if case.kind == "throughput":
        body = run_throughput(case, args.reps, args.nqs_set)
    else:
        body = run_vmc(case, args.n_iter, args.timed, phases=not args.no_phases, overrides=args.nqs_set)
    row = {"case": name, **{k: body.pop(k, None) for k in ("nqs_s_per_iter", "netket_s_per_iter")}}
    row["ratio"] = row["nqs_s_per_iter"] / row["netket_s_per_iter"]
    for k in ("nqs_compile_s", "netket_compile_s", "nqs_rel_error", "netket_rel_error", "n_samples", "n_params"):
        row[k] = body.pop(k, None)
    row["device"] = device_name()
    row["peak_rss_mb"] = round(peak_rss_mb(), 1)
    row["openblas_threads"] = os.environ.get("OPENBLAS_NUM_THREADS")
    row["nqs_commit"] = git_commit()
    row.update(body)
    if args.nqs_set:
        row["nqs_set"] = args.nqs_set
    return _rounded(row)


def _rounded(obj):
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    return float(f"{obj:.6g}") if isinstance(obj, float) else obj


# --------------------------------------------------------------------------- CLI


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compare_netket", description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", action="append", choices=sorted(CASES), help="case to run (repeatable; default: all)")
    ap.add_argument("--n-iter", type=int, default=None, help="run N iterations per code and report the final relative error (mean of the last min(50, N/6) energies)")
    ap.add_argument("--timed", type=int, default=40, help="timed iterations after warm-up when --n-iter is not given (default 40)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions for throughput cases (default 5)")
    ap.add_argument("--nqs-set", action="append", default=[], metavar="KEY=VALUE", help="override an nqs config key (e.g. optimizer.sr.solver=cg); repeatable")
    ap.add_argument("--no-phases", action="store_true", help="skip the per-phase breakdown (sample / local energy / gradient+SR)")
    ap.add_argument("--in-process", action="store_true", help="run several cases in this process (peak_rss_mb is then cumulative)")
    return ap.parse_args(argv)


def selected_cases(args) -> list[str]:
    names = args.case or list(CASES)
    if any(CASES[n].needs_continuous for n in names) and not continuous_available():
        skipped = [n for n in names if CASES[n].needs_continuous]
        log(f"skipping {', '.join(skipped)}: nqs_cli.systems.continuum.hamiltonian missing or `nqs validate configs/harmonic_trap.toml` fails")
        names = [n for n in names if not CASES[n].needs_continuous]
    return names


def main(argv=None) -> int:
    args = parse_args(argv)
    names = selected_cases(args)
    if len(names) > 1 and not args.in_process:
        rc = 0
        passthrough = [a for a in (argv if argv is not None else sys.argv[1:])]
        base = [a for i, a in enumerate(passthrough) if a != "--case" and (i == 0 or passthrough[i - 1] != "--case")]
        for name in names:
            rc |= subprocess.run([sys.executable, "-m", "benchmarks.compare_netket", "--case", name, *base]).returncode
        return rc
    for name in names:
        print(json.dumps(run_case(name, args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
