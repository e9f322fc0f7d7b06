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
from nqs_cli.systems.lattice.observables import OFF_DIAGONAL, LatticeObservables
from nqs_cli.vmc.stats import JACKKNIFE_BLOCKS, block_means, component_statistics, jackknife

CHUNK_CONFIGS = 1 << 16  # ψ evaluations per compiled chunk of the off-diagonal estimators
CHUNK_PAIR_VALUES = 1 << 22  # per-pair values (correlations against r) per compiled chunk
ERRORS = ("means of per-sample values: autocorrelation-corrected error per chain (as the energy); "
          f"non-linear quantities: jackknife over {JACKKNIFE_BLOCKS} blocks (chains, cut into parts when fewer)")


def measure(cfg: Config, training: Training, params, samples, e_loc=None) -> dict:
    """observables.json's content for ``samples`` (n_chains, n_per_chain, n_dof) of |ψ|² with
    ``params``; ``e_loc`` (n_chains, n_per_chain), their local energies, for the energy split."""
    samples = np.asarray(samples)
    spec = build_observables(cfg, training.problem)
    head = {"n_samples": int(samples.shape[0] * samples.shape[1]), "n_chains": int(samples.shape[0]), "errors": ERRORS}
    if not spec:
        return {**head, "scalars": {}}
    if isinstance(spec, LatticeObservables):
        return {**head, **measure_lattice(cfg, spec, training, params, samples)}
    return {**head, **measure_particles(spec, training, samples, e_loc)}


def measure_lattice(cfg: Config, obs: LatticeObservables, training: Training, params, samples) -> dict:
    """Diagonal observables on every sample, off-diagonal ones on the first samples of every chain
    within the ψ-evaluation budget (``observables.offdiagonal_samples``)."""
    out, scalars = {}, {}
    diagonal = tuple(n for n in obs.names if n not in OFF_DIAGONAL)
    off = tuple(n for n in obs.names if n in OFF_DIAGONAL)
    for is_off, names in ((False, diagonal), (True, off)):
        if not names:
            continue
        group = dataclasses.replace(obs, names=names)
        use = samples
        if is_off:
            per_chain = offdiagonal_per_chain(cfg, group, samples.shape[0], samples.shape[1])
            use = samples[:, :per_chain]
            out["offdiagonal_samples"] = int(use.shape[0] * use.shape[1])
        values = evaluate_values(group, training.problem.log_psi, params, use)
        means, errors = all_statistics(values)
        blocks = {k: np.asarray(block_means(v)) for k, v in values.items()}
        for key in group.derived(means):
            value, error = jackknife(blocks, lambda m, key=key: group.derived(m)[key])
            means[key], errors[key] = value, error
        part = group.to_json(means, errors)
        scalars.update(part.pop("scalars"))
        out.update(part)
    return {**out, "scalars": scalars}


def all_statistics(values: dict) -> tuple[dict, dict]:
    """({key: mean}, {key: error}) of every component of per-sample ``values`` {key: (n_chains,
    n_per_chain, ...)}, in one compiled call for all of them."""
    n_chains, n_per = next(iter(values.values())).shape[:2]
    flat = np.concatenate([np.asarray(v, np.float64).reshape(n_chains, n_per, -1) for v in values.values()], axis=-1)
    mean, error = (np.asarray(a) for a in jax.jit(component_statistics)(flat))
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
    chunk = max(1, min(CHUNK_CONFIGS // max(obs.n_ratios, 1), CHUNK_PAIR_VALUES // max(obs.pair_values_per_config, 1)))
    parts = [jax.device_get(fn(params, jnp.asarray(flat[a : a + chunk]))) for a in range(0, len(flat), chunk)]
    return {k: np.concatenate([p[k] for p in parts]).reshape(n_chains, n_per, *parts[0][k].shape[1:]) for k in parts[0]}


def measure_particles(names: tuple[str, ...], training: Training, samples, e_loc) -> dict:
    """Density (trap) or g(r) (box) with blocking errors as before, S(k) and the energy split."""
    space = training.problem.space
    n_chains, n_per, _ = samples.shape
    flat = samples.reshape(-1, space.n_dof)  # chain-major: each chain's samples consecutive
    pos = flat.reshape(-1, space.n_particles, space.dims)
    out, scalars = {}, {}
    if "density" in names and not space.periodic:
        out["density"] = particle_obs.density(pos, particle_obs.N_BINS, particle_obs.N_BLOCKS)
    if "pair_correlation" in names and space.periodic and space.n_particles > 1:
        out["pair_correlation"] = particle_obs.pair_correlation(pos, space.extent, particle_obs.N_BINS, particle_obs.N_BLOCKS)
    values, k = {}, None
    if "structure_factor" in names:
        k = particle_obs.wave_numbers(space, pos)
        values["sk"] = particle_obs.structure_factor_values(pos, k).reshape(n_chains, n_per, -1)
    if "energy_split" in names and e_loc is not None:
        potential = np.asarray(jax.jit(jax.vmap(training.problem.hamiltonian.potential))(jnp.asarray(flat))).reshape(n_chains, n_per)
        values["potential_energy"] = potential
        values["kinetic_energy"] = np.asarray(e_loc).real.reshape(n_chains, n_per) - potential
    if values:
        means, errors = all_statistics(values)
        if k is not None:
            out["structure_factor"] = {"k": k.tolist(), "values": means["sk"].tolist(), "errors": errors["sk"].tolist(),
                                       "definition": "S(k) = <|sum_j exp(i k x_j)|^2>/N, averaged over the axes"}
        if "kinetic_energy" in values:
            split = {key: {"value": float(means[key]), "error": float(errors[key])} for key in ("kinetic_energy", "potential_energy")}
            out["energy_split"] = split
            scalars.update(split)
    return {**out, "scalars": scalars}
