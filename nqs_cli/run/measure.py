"""Observables of fixed parameters, measured on the fresh-chain samples of the final estimate
(end of training) or of `nqs evaluate`, with their Monte Carlo error bars: observables.json.

Error bars: a mean of per-sample values (densities, correlations, the density matrix, n(k),
S(q), ⟨m_s²⟩, string order, S(k), the energy split) has the autocorrelation-corrected error of
the energy (per chain, vmc/stats.statistics); a non-linear function of such means (number
fluctuation ⟨n²⟩ − ⟨n⟩², condensate fraction λ_max(ρ)/N) has a jackknife error over 16 blocks
(the chains, cut into consecutive parts when there are fewer than 16), vmc/stats.jackknife.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from nqs_cli.config import Config
from nqs_cli.setup import Training
from nqs_cli.setup.observables import build_observables, offdiagonal_per_chain
from nqs_cli.systems.continuum import observables as particle_obs
from nqs_cli.systems.lattice.exact import full_sum
from nqs_cli.systems.lattice.observables import OFF_DIAGONAL, LatticeObservables
from nqs_cli.vmc.stats import JACKKNIFE_BLOCKS, block_means, component_statistics, jackknife

CHUNK_CONFIGS = 1 << 16  # ψ evaluations per compiled chunk of the off-diagonal estimators
CHUNK_PAIR_VALUES = 1 << 22  # per-pair values (correlations against r) per compiled chunk
ERRORS = ("means of per-sample values: autocorrelation-corrected error per chain (as the energy); "
          f"non-linear quantities: jackknife over {JACKKNIFE_BLOCKS} blocks (chains, cut into parts when fewer)")


def measure(cfg: Config, training: Training, params, samples, e_loc=None, progress=None) -> dict:
    """observables.json's content for ``samples`` (n_chains, n_per_chain, n_dof) of |ψ|² with
    ``params``; ``e_loc`` (n_chains, n_per_chain), their local energies, for the energy split.
    An observable whose evaluation fails is left out and named, with the error, under
    ``failed``: the others are still measured. ``progress(text)`` is told what is measured next."""
    progress = progress or (lambda text: None)
    samples = np.asarray(samples)
    spec = build_observables(cfg, training.problem)
    head = {"n_samples": int(samples.shape[0] * samples.shape[1]), "n_chains": int(samples.shape[0]), "errors": ERRORS}
    if not spec:
        return {**head, "scalars": {}}
    if isinstance(spec, LatticeObservables):
        return {**head, **measure_lattice(cfg, spec, training, params, samples, progress)}
    return {**head, **measure_particles(spec, training, samples, e_loc, progress)}


def failure_text(exc: Exception) -> str:
    """An evaluation error in one line: its type and the first line of its message (capped)."""
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def measure_lattice(cfg: Config, obs: LatticeObservables, training: Training, params, samples, progress=lambda text: None) -> dict:
    """Diagonal observables on every sample, off-diagonal ones on the first samples of every chain
    within the ψ-evaluation budget (``observables.offdiagonal_samples``). Each group is evaluated
    in one pass; a group that fails is measured name by name, so that one failing estimator
    leaves the others' values."""
    out, scalars, failed = {}, {}, {}
    diagonal = tuple(n for n in obs.names if n not in OFF_DIAGONAL)
    off = tuple(n for n in obs.names if n in OFF_DIAGONAL)
    for is_off, names in ((False, diagonal), (True, off)):
        if not names:
            continue
        n_used = offdiagonal_per_chain(cfg, dataclasses.replace(obs, names=names), samples.shape[0], samples.shape[1], n_connected(training)) \
            if is_off else samples.shape[1]
        progress(f"observables: {', '.join(names)} on {n_used * samples.shape[0]} samples")
        try:
            part = measure_group(cfg, dataclasses.replace(obs, names=names), training, params, samples, is_off)
        except Exception:  # noqa: BLE001 — find which estimator fails, keep the others
            part = {"scalars": {}}
            for name in names:
                try:
                    one = measure_group(cfg, dataclasses.replace(obs, names=(name,)), training, params, samples, is_off)
                except Exception as exc:  # noqa: BLE001 — named in observables.json and result.json
                    failed[name] = failure_text(exc)
                    continue
                part["scalars"].update(one.pop("scalars"))
                part.update(one)
        scalars.update(part.pop("scalars"))
        out.update(part)
    return {**out, "scalars": scalars, **({"failed": failed} if failed else {})}


def n_connected(training: Training) -> int | None:
    """Connected elements of H per configuration (lattices), the measure of the local energy's work."""
    return getattr(training.problem.hamiltonian, "max_conn", None)


def measure_group(cfg: Config, group: LatticeObservables, training: Training, params, samples, is_off: bool) -> dict:
    """The entries of ``group``'s observables (one compiled estimator for all of them)."""
    out = {}
    use = samples
    if is_off:
        per_chain = offdiagonal_per_chain(cfg, group, samples.shape[0], samples.shape[1], n_connected(training))
        use = samples[:, :per_chain]
        out["offdiagonal_samples"] = int(use.shape[0] * use.shape[1])
    values = evaluate_values(group, training.problem.log_psi, params, use)
    means, errors = all_statistics(values)
    blocks = {k: np.asarray(block_means(v)) for k, v in values.items()}
    for key in group.derived(means):
        value, error = jackknife(blocks, lambda m, key=key: group.derived(m)[key])
        means[key], errors[key] = value, error
    return {**out, **group.to_json(means, errors)}


jitted_component_statistics = jax.jit(component_statistics)  # one program per shape in a process


def all_statistics(values: dict) -> tuple[dict, dict]:
    """({key: mean}, {key: error}) of every component of per-sample ``values`` {key: (n_chains,
    n_per_chain, ...)}, in one compiled call for all of them."""
    n_chains, n_per = next(iter(values.values())).shape[:2]
    flat = np.concatenate([np.asarray(v, np.float64).reshape(n_chains, n_per, -1) for v in values.values()], axis=-1)
    mean, error = (np.asarray(a) for a in jitted_component_statistics(flat))
    means, errors, at = {}, {}, 0
    for key, v in values.items():
        shape = np.shape(v)[2:]
        size = int(np.prod(shape))
        means[key], errors[key] = mean[at : at + size].reshape(shape), error[at : at + size].reshape(shape)
        at += size
    return means, errors


def evaluate_values(obs: LatticeObservables, log_psi, params, samples) -> dict:
    """Per-sample estimator values, {key: (n_chains, n_per_chain, ...)}, in compiled chunks."""
    n_chains, n_per, n_sites = samples.shape
    fn = jax.jit(lambda p, xs: jax.vmap(lambda x: obs.values(lambda y: log_psi(p, y), x))(xs))
    flat = samples.reshape(-1, n_sites)
    chunk = max(1, min(len(flat), CHUNK_CONFIGS // max(obs.n_ratios, 1), CHUNK_PAIR_VALUES // max(obs.pair_values_per_config, 1)))
    pad = -len(flat) % chunk  # the last chunk filled up with copies of a sample: one compiled shape for all chunks
    padded = np.concatenate([flat, np.repeat(flat[:1], pad, axis=0)]) if pad else flat
    parts = [jax.device_get(fn(params, jnp.asarray(padded[a : a + chunk]))) for a in range(0, len(padded), chunk)]
    return {k: np.concatenate([p[k] for p in parts])[: len(flat)].reshape(n_chains, n_per, *parts[0][k].shape[1:]) for k in parts[0]}


def measure_particles(names: tuple[str, ...], training: Training, samples, e_loc, progress=lambda text: None) -> dict:
    """Each particle observable on its own, so that one that fails leaves the others."""
    out, scalars, failed = {}, {}, {}
    for name in names:
        progress(f"observables: {name} on {samples.shape[0] * samples.shape[1]} samples")
        try:
            part = measure_particle_observable(name, training, samples, e_loc)
        except Exception as exc:  # noqa: BLE001 — named in observables.json and result.json
            failed[name] = failure_text(exc)
            continue
        scalars.update(part.pop("scalars", {}))
        out.update(part)
    return {**out, "scalars": scalars, **({"failed": failed} if failed else {})}


def measure_particle_observable(name: str, training: Training, samples, e_loc) -> dict:
    """Density (trap) or g(r) (box) with blocking errors, S(k), or the energy split."""
    space = training.problem.space
    n_chains, n_per, _ = samples.shape
    flat = samples.reshape(-1, space.n_dof)  # chain-major: each chain's samples consecutive
    pos = flat.reshape(-1, space.n_particles, space.dims)
    if name == "density":
        return {"density": particle_obs.density(pos, particle_obs.N_BINS, particle_obs.N_BLOCKS)}
    if name == "pair_correlation":
        return {"pair_correlation": particle_obs.pair_correlation(pos, space.extent, particle_obs.N_BINS, particle_obs.N_BLOCKS)}
    if name == "structure_factor":
        k = particle_obs.wave_numbers(space, pos)
        means, errors = all_statistics({"sk": particle_obs.structure_factor_values(pos, k).reshape(n_chains, n_per, -1)})
        return {"structure_factor": {"k": k.tolist(), "values": means["sk"].tolist(), "errors": errors["sk"].tolist(),
                                     "definition": "S(k) = <|sum_j exp(i k x_j)|^2>/N, averaged over the axes"}}
    if name == "energy_split":
        if e_loc is None:
            return {}
        potential = np.asarray(jax.jit(jax.vmap(training.problem.hamiltonian.potential))(jnp.asarray(flat))).reshape(n_chains, n_per)
        values = {"potential_energy": potential, "kinetic_energy": np.asarray(e_loc).real.reshape(n_chains, n_per) - potential}
        means, errors = all_statistics(values)
        split = {key: {"value": float(means[key]), "error": float(errors[key])} for key in ("kinetic_energy", "potential_energy")}
        return {"energy_split": split, "scalars": dict(split)}
    raise ValueError(f"unknown particle observable {name!r}")


EXACT_BUDGET = 1 << 24  # ψ look-ups (sector states × (1 + ratios per state)) of the comparison at the end of training


def measure_exact(cfg: Config, problem, budget: int | None = None) -> dict | None:
    """The exact ground state's observables (exact diagonalisation in the sector), with the
    names, keys and layout of observables.json and zero error bars: exact_observables.json.
    None when the full sum would take more than ``budget`` ψ look-ups (no budget: always)."""
    spec = build_observables(cfg, problem)
    if not isinstance(spec, LatticeObservables):
        raise ValueError("exact observables are computed for lattice systems")
    solved = problem.exact_state() if problem.exact_state is not None else None
    if solved is None:
        raise ValueError("the sector is beyond the exact-diagonalisation limit")
    energy, states, psi = solved
    if budget is not None and len(states) * (1 + spec.n_ratios) > budget:
        return None
    means = full_sum(spec, states, psi) if spec.names else {}
    data = spec.to_json(means, {k: np.zeros_like(np.asarray(v, np.float64)) for k, v in means.items()}) if spec.names else {"scalars": {}}
    return {"source": "exact diagonalisation", "energy": energy, "n_states": int(len(states)), **data}
