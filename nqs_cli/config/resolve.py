"""Resolution: defaults that depend on other sections, and the cross-section rules."""

from __future__ import annotations

import dataclasses
import math
from typing import NoReturn, Protocol

from nqs_cli.config.schema import (
    FOCK_OBSERVABLES,
    GRAPH_DIMS,
    PARTICLE_OBSERVABLES,
    SPIN_OBSERVABLES,
    Config,
    DistributedConfig,
    ObservablesConfig,
    OptimizerConfig,
    couplings,
    lattice_dims,
)


class KeyErrors(Protocol):
    """What resolution needs of the parser: the keys given explicitly, and a one-line failure."""

    explicit: set[str]

    def fail(self, key: str, message: str) -> NoReturn: ...


def resolve(cfg: Config, p: KeyErrors) -> Config:
    """Fill defaults that depend on other sections, and check cross-section rules."""
    notes: list[str] = []
    if cfg.is_continuous:
        cfg, model, sampler, family = _resolve_continuous(cfg, p)
    else:
        model, sampler, family = _resolve_lattice(cfg, p, notes)
        # the dimensions a graph implies (resolved.json then reads back without a contradiction)
        cfg = dataclasses.replace(cfg, lattice=dataclasses.replace(cfg.lattice, dims=lattice_dims(cfg.lattice)))
    optimizer = _optimizer_defaults(cfg.optimizer, family)
    if sampler.n_samples % sampler.n_chains:
        rounded = -(-sampler.n_samples // sampler.n_chains) * sampler.n_chains
        notes.append(f"sampler.n_samples rounded up from {sampler.n_samples} to {rounded}, a multiple of sampler.n_chains = {sampler.n_chains}")
        sampler = dataclasses.replace(sampler, n_samples=rounded)
    if cfg.train.checkpoint_every > cfg.train.n_iter and "train.checkpoint_every" in p.explicit:
        notes.append("train.checkpoint_every exceeds train.n_iter: only the final checkpoint is written")
    _check_distributed(cfg.distributed, p)
    _check_param_dtype(cfg, model, p)
    observables = _resolve_observables(cfg, p)
    cfg = dataclasses.replace(cfg, model=model, sampler=sampler, optimizer=optimizer, observables=observables, explicit=frozenset(p.explicit), notes=tuple(notes))
    _check_kinds(cfg, p)
    return cfg


# Gaussian moves: the width adapts during thermalisation towards this acceptance (sampler.sigma
# is the starting width).
TARGET_ACCEPTANCE = 0.5


def _resolve_continuous(cfg: Config, p: KeyErrors):
    """(cfg with the extent as one side length per dimension, model, sampler, optimizer family)."""
    model, sampler, ham, space = cfg.model, cfg.sampler, cfg.hamiltonian, cfg.space
    if space.n_particles is None:
        p.fail("space.n_particles", "required")
    extent = space.extent if isinstance(space.extent, tuple) else (space.extent,) * space.dims
    if len(extent) != space.dims:
        p.fail("space.extent", f"expected {space.dims} side lengths (one per dimension), got {len(extent)}")
    periodic = any(e > 0 for e in extent)
    if periodic and not all(e > 0 for e in extent):
        p.fail("space.extent", "mixed open and periodic directions are not supported")
    space = dataclasses.replace(space, extent=tuple(float(e) for e in extent))
    cfg = dataclasses.replace(cfg, space=space)
    if not periodic and ham.trap_omega <= 0:
        p.fail("hamiltonian.trap_omega", "open space (space.extent = 0) needs a trap: set trap_omega > 0, or give a periodic box")
    if ham.pair is not None and ham.pair.kind == "calogero-sutherland" and (space.dims != 1 or not periodic):
        p.fail("hamiltonian.pair.kind", '"calogero-sutherland" is the ring of Sutherland: one dimension (space.dims = 1) in a periodic box (space.extent > 0)')
    default_model = "deepsets-reldist" if periodic else "deepsets"
    model = _fill(model, kind=default_model)
    if model.kind == "rbm-multival":
        p.fail("model.kind", '"rbm-multival" needs a lattice system; particles in [space] use "deepsets" or "deepsets-reldist"')
    if model.kind == "deepsets-reldist" and not periodic:
        p.fail("model.kind", '"deepsets-reldist" needs a periodic box (space.extent > 0); use "deepsets" in open space')
    if model.kind == "deepsets" and periodic:
        p.fail("model.kind", '"deepsets" is not periodic; use "deepsets-reldist" in a periodic box')
    if model.kind == "deepsets":
        model = _fill(model, features_phi=(16, 16), features_rho=(16,))
    else:
        model = _fill(model, features_phi=16, features_rho=16)
        if ham.pair is not None and ham.pair.kind == "calogero-sutherland":
            model = _fill(model, cusp_exponent=0)  # ψ ∝ r^β at contact: the logarithmic cusp
    sampler = _fill(sampler, kind="metropolis-gaussian", target_acceptance=TARGET_ACCEPTANCE)
    if sampler.kind != "metropolis-gaussian":
        p.fail("sampler.kind", f'"{sampler.kind}" is a lattice sampler; particles in [space] use "metropolis-gaussian"')
    if sampler.sigma is None:
        scale = min(extent) / 20 if periodic else 0.5 / math.sqrt(ham.trap_omega * space.mass)
        sampler = dataclasses.replace(sampler, sigma=round(scale, 6))
    sampler = _fill(sampler, sweep_size=space.n_particles)
    return cfg, model, sampler, "box" if periodic else "trap"


def _resolve_lattice(cfg: Config, p: KeyErrors, notes: list[str]):
    """(model, sampler, optimizer family) of a lattice system; notes on its terms go to ``notes``."""
    _check_lattice_system(cfg, p)
    _check_terms(cfg, p, notes)
    model, sampler, hil = cfg.model, cfg.sampler, cfg.hilbert
    model = _fill(model, kind="rbm-multival")
    if model.kind != "rbm-multival":
        p.fail("model.kind", f'"{model.kind}" needs particles in continuous space ([space]); lattice systems use "rbm-multival"')
    constrained = (hil.kind == "fock" and hil.n_particles is not None) or (hil.kind == "spin" and hil.total_sz is not None)
    sampler = _fill(sampler, kind="metropolis-hamiltonian")
    if sampler.kind == "metropolis-gaussian":
        p.fail("sampler.kind", '"metropolis-gaussian" is for particles in continuous space; lattice systems use "metropolis-hamiltonian"')
    if sampler.kind == "metropolis-local" and constrained:
        what = "hilbert.n_particles" if hil.kind == "fock" else "hilbert.total_sz"
        p.fail("sampler.kind", f'"metropolis-local" changes the particle number / magnetisation, but {what} is fixed; use "metropolis-hamiltonian"')
    local_dim = hil.n_max + 1 if hil.kind == "fock" else int(round(2 * hil.s)) + 1
    if sampler.kind == "metropolis-exchange" and local_dim > 2:
        p.fail(
            "sampler.kind",
            f'"metropolis-exchange" only permutes site values, so with local dimension {local_dim} it never leaves one occupation multiset '
            '(biased energies); use "metropolis-hamiltonian"',
        )
    return model, _fill(sampler, sweep_size=cfg.n_sites), "lattice"


def _check_distributed(d: DistributedConfig, p: KeyErrors) -> None:
    given = {k: getattr(d, k) for k in ("coordinator", "num_processes", "process_id") if getattr(d, k) is not None}
    if given and len(given) < 3:
        missing = [k for k in ("coordinator", "num_processes", "process_id") if k not in given]
        p.fail(f"distributed.{missing[0]}", "coordinator, num_processes and process_id are given together (or all left to the cluster environment)")
    if given and d.process_id >= d.num_processes:
        p.fail("distributed.process_id", f"expected < num_processes = {d.num_processes}, got {d.process_id}")


def _check_param_dtype(cfg: Config, model, p: KeyErrors) -> None:
    """Complex parameters: the RBM only (its log ψ is holomorphic in them), in the precision of ``dtype``."""
    if not model.param_dtype.startswith("complex"):
        return
    if model.kind != "rbm-multival":
        p.fail("model.param_dtype", f'"{model.param_dtype}" (complex parameters) is supported for model.kind = "rbm-multival" only, not "{model.kind}"')
    want = "complex64" if cfg.dtype == "float32" else "complex128"
    if model.param_dtype != want:
        p.fail("model.param_dtype", f'"{model.param_dtype}" contradicts dtype = "{cfg.dtype}": complex parameters in that precision are "{want}"')


def _check_kinds(cfg: Config, p: KeyErrors) -> None:
    """Keys given explicitly must belong to their section's resolved kind."""
    for key in sorted(p.explicit):
        parts = key.split(".")
        if len(parts) < 2:
            continue
        section = getattr(cfg, parts[0])
        for part in parts[1:-1]:
            section = getattr(section, part)
        kind = getattr(section, "kind", None)
        f = {f.name: f for f in dataclasses.fields(section)}[parts[-1]]
        kinds = f.metadata.get("kinds")
        if kinds is not None and kind is not None and kind not in kinds:
            p.fail(key, f'not a key of {parts[0]} kind "{kind}" (it belongs to {", ".join(kinds)})')


# Tuned at the design budget (300 iterations, ~1000 samples, SGD + SR): lattice RBMs on the
# Bose-Hubbard and spin-1 chains, DeepSets on the harmonic trap with and without repulsion.
# A periodic box (DeepSetRelDistance) freezes its chains at the trap's settings: larger shift.
# The lattice shift 0.001 (it was 0.01) comes from the chains beyond exact diagonalisation,
# where a large shift throttles every late step (measured with the step control below, same
# seeds, fresh-chain or last-50 estimates against DMRG): Bose-Hubbard ring L=24, 600 iterations,
# 1.48e-2 -> 9.1e-3 (1e-4: 9.0e-3 after 500); spin-1 open chain L=32, 924 iterations,
# 1.24e-2 (1027 iterations) -> 9.2e-3.
OPTIMIZER_DEFAULTS = {
    "lattice": {"sgd": 0.02, "adam": 0.002, "diag_shift": 0.001},
    "trap": {"sgd": 0.05, "adam": 0.002, "diag_shift": 0.001},
    "box": {"sgd": 0.02, "adam": 0.002, "diag_shift": 0.01},
}


# Step control, one rule for every family: a 10-iteration learning-rate warm-up, a trust region
# of 0.05 on the squared Fubini–Study length of each update, and an SR shift that starts at
# 0.1 (or diag_shift, if larger) and decays geometrically to diag_shift over 100 iterations.
# Measured at 300 iterations (fresh-chain final estimates, same seeds) against constant settings:
# trapped interacting bosons 11.8652 ± 0.0021 -> 11.8517 ± 0.0010 (29 -> 0 spike retries),
# Bose-Hubbard L=8 rel. error 2.0e-3 -> 1.5e-3, spin-1/2 ring L=16 6.2e-4 -> 5.7e-4, periodic
# box (6 bosons) 4.9256 -> 4.9248, spin-1 L=10 2.4e-3 -> 2.8e-3, harmonic trap exact either way.
STEP_DEFAULTS = {"warmup": 10, "trust_region": 0.05}
SHIFT_START, SHIFT_STEPS = 0.1, 100
SR_MOMENTUM = 0.0


def _optimizer_defaults(opt: OptimizerConfig, family: str) -> OptimizerConfig:
    table = OPTIMIZER_DEFAULTS[family]
    opt = _fill(opt, learning_rate=table[opt.kind], **STEP_DEFAULTS)
    if opt.sr is not None:
        sr = _fill(opt.sr, diag_shift=table["diag_shift"])
        sr = _fill(sr, diag_shift_start=max(SHIFT_START, sr.diag_shift), diag_shift_steps=SHIFT_STEPS, momentum=SR_MOMENTUM)
        opt = dataclasses.replace(opt, sr=sr)
    return opt


def _fill(section, **defaults):
    """Replace fields that are still None by the given defaults."""
    updates = {k: v for k, v in defaults.items() if getattr(section, k) is None}
    return dataclasses.replace(section, **updates) if updates else section


def _check_lattice_system(cfg: Config, p: KeyErrors) -> None:
    lat, hil, ham = cfg.lattice, cfg.hilbert, cfg.hamiltonian
    if lat.graph in GRAPH_DIMS and "lattice.dims" in p.explicit and lat.dims != lattice_dims(lat):
        p.fail("lattice.dims", f'graph "{lat.graph}" has {lattice_dims(lat)} dimension(s); dims = {lat.dims} contradicts it')
    _check_lattice_shape(cfg, p)
    if cfg.n_sites > 4096:
        p.fail("lattice.length", f"{cfg.n_sites} sites is more than the supported 4096")
    if hil.kind == "fock":
        if ham.kind != "bose-hubbard":
            p.fail("hilbert.kind", f'"fock" space goes with hamiltonian.kind = "bose-hubbard", not "{ham.kind}"')
        if hil.n_max is None:
            p.fail("hilbert.n_max", 'required for kind "fock" (the maximum number of bosons per site)')
        if hil.n_particles is not None and hil.n_particles > cfg.n_sites * hil.n_max:
            p.fail("hilbert.n_particles", f"{hil.n_particles} bosons do not fit on {cfg.n_sites} sites with n_max = {hil.n_max}")
    else:
        if ham.kind != "heisenberg":
            p.fail("hilbert.kind", f'"spin" space goes with hamiltonian.kind = "heisenberg", not "{ham.kind}"')
        if hil.total_sz is not None:
            if abs(hil.total_sz) > hil.s * cfg.n_sites:
                p.fail("hilbert.total_sz", f"|total_sz| = {abs(hil.total_sz)} exceeds s * n_sites = {hil.s * cfg.n_sites}")
            if not float(hil.total_sz - hil.s * cfg.n_sites).is_integer():
                p.fail("hilbert.total_sz", f"{hil.total_sz} is not reachable with {cfg.n_sites} spins s = {hil.s}")


def _check_lattice_shape(cfg: Config, p: KeyErrors) -> None:
    """Per-axis lists of the right size; a custom graph's edge list within its sites."""
    lat, dims = cfg.lattice, lattice_dims(cfg.lattice)
    for key, value in (("lattice.length", lat.length), ("lattice.pbc", lat.pbc)):
        if isinstance(value, tuple) and len(value) != dims:
            p.fail(key, f'expected one value per dimension ({dims} for graph "{lat.graph}"), got a list of {len(value)}')
    if lat.graph != "custom":
        if lat.edges is not None:
            p.fail("lattice.edges", f'an edge list needs graph = "custom", not "{lat.graph}"')
        return
    if lat.edges is None:
        p.fail("lattice.edges", 'required for graph = "custom": a list of [i, j] or [i, j, colour]')
    if lat.pbc is not True:  # true, the default, is what a resolved config writes back
        p.fail("lattice.pbc", "a custom graph has no boundary: its bonds are exactly lattice.edges")
    n, seen = cfg.n_sites, set()
    for e in lat.edges:
        i, j = e[0], e[1]
        if max(i, j) >= n:
            p.fail("lattice.edges", f"edge {list(e)} names site {max(i, j)}, but the graph has {n} sites (0..{n - 1}, lattice.length)")
        if i == j:
            p.fail("lattice.edges", f"edge {list(e)} joins site {i} to itself")
        if (min(i, j), max(i, j)) in seen:
            p.fail("lattice.edges", f"edge {list(e)} repeats the bond {sorted((i, j))}")
        seen.add((min(i, j), max(i, j)))


def _check_terms(cfg: Config, p: KeyErrors, notes: list[str]) -> None:
    """The Hamiltonian's terms against the lattice and the sector: coupling lists, J2, the
    sign rule, trap and on-site sizes; constant terms are said in ``notes``."""
    lat, hil, ham = cfg.lattice, cfg.hilbert, cfg.hamiltonian
    colours = 1 + max((e[2] for e in lat.edges if len(e) == 3), default=0) if lat.edges is not None else 1
    if isinstance(ham.J, tuple) and len(ham.J) != colours:
        p.fail("hamiltonian.J", f"expected one coupling per bond colour ({colours}: colours 0..{colours - 1} of lattice.edges), got a list of {len(ham.J)}")
    if ham.kind == "bose-hubbard":
        if ham.onsite is not None and len(ham.onsite) != cfg.n_sites:
            p.fail("hamiltonian.onsite", f"expected one on-site energy per site ({cfg.n_sites}), got a list of {len(ham.onsite)}")
        center = ham.trap.center if ham.trap is not None else None
        if isinstance(center, tuple) and len(center) != lattice_dims(lat):
            p.fail("hamiltonian.trap.center", f"expected one coordinate per dimension ({lattice_dims(lat)}), got a list of {len(center)}")
        return
    if ham.J2 != 0 and lat.graph == "custom":
        p.fail("hamiltonian.J2", "a custom graph has no next-nearest bonds: give them a colour in lattice.edges and a coupling in hamiltonian.J")
    complex_params = cfg.model.param_dtype.startswith("complex")
    if ham.J2 != 0 and ham.sign_rule and not complex_params:
        p.fail("hamiltonian.sign_rule", "Marshall's sign rule does not hold with J2 != 0 (frustrated exchange), and real parameters cannot "
               "correct it; leave it unset or false, or use complex parameters (model.param_dtype), for which it is a reference sign")
    if ham.h != 0 and hil.total_sz is not None:
        notes.append(f"hamiltonian.h: with hilbert.total_sz = {hil.total_sz:g} fixed, the field term -h Σ S^z_i is the constant "
                     f"{-ham.h * hil.total_sz + 0.0:g}: it shifts every energy and changes no state")
    if ham.D != 0 and hil.s == 0.5:
        notes.append(f"hamiltonian.D: for s = 1/2, (S^z_i)² = 1/4, so D Σ (S^z_i)² is the constant D·N/4 = {ham.D * cfg.n_sites / 4:g}")
    if min(couplings(ham)) < 0 < max(couplings(ham)) and ham.sign_rule:
        notes.append("hamiltonian.sign_rule: with couplings of both signs the rotated Hamiltonian is not sign-free (the spectrum is unchanged)")


MAX_MATRIX_SITES = 64  # the one-body density matrix costs N_s (N_s − 1) ψ evaluations per sample


def _resolve_observables(cfg: Config, p: KeyErrors) -> ObservablesConfig:
    """The observables' names (a default set per system), checked against the system. What
    depends on the lattice's geometry (distances, momenta, sublattices, the bulk, and so
    ``max_distance`` and ``edge_sites``) is settled by setup/observables.settle_observables."""
    obs = cfg.observables
    if cfg.is_continuous:
        system, allowed = "particles in continuous space", PARTICLE_OBSERVABLES
        periodic = any(e > 0 for e in cfg.space.extent)
        default = ("pair_correlation" if periodic else "density", "structure_factor", "energy_split")
    elif cfg.hilbert.kind == "fock":
        system, allowed = "bosons on a lattice", FOCK_OBSERVABLES
        default = FOCK_OBSERVABLES if cfg.n_sites <= MAX_MATRIX_SITES else FOCK_OBSERVABLES[:3]
    else:
        system, allowed = f"spin-{cfg.hilbert.s:g} sites", SPIN_OBSERVABLES
        integer_chain = float(cfg.hilbert.s).is_integer() and cfg.lattice.graph == "chain"
        default = ("sz_correlation", "structure_factor", "staggered_magnetization") + (("string_order",) if integer_chain else ())
    names = default if obs.names is None else tuple(dict.fromkeys(obs.names))
    for name in names:
        if name not in allowed:
            p.fail("observables.names", f'"{name}" is not an observable of {system}; these are: ' + ", ".join(f'"{n}"' for n in allowed))
    if cfg.is_continuous:
        _check_particle_observables(cfg, names, p)
        return dataclasses.replace(obs, names=names)
    if "string_order" in names and not (float(cfg.hilbert.s).is_integer() and cfg.lattice.graph == "chain"):
        p.fail("observables.names", '"string_order" needs integer spin (hilbert.s = 1, 2, …) on a chain')
    return dataclasses.replace(obs, names=names)


def _check_particle_observables(cfg: Config, names: tuple[str, ...], p: KeyErrors) -> None:
    """n(x) is measured in a trap (a periodic box's density is uniform), g(r) in a box of two or
    more particles (a trap has no translation invariance to average g over)."""
    periodic = any(e > 0 for e in cfg.space.extent)
    if "density" in names and periodic:
        p.fail("observables.names", '"density" is the profile n(x) of a trap; in a periodic box it is uniform (use "pair_correlation")')
    if "pair_correlation" in names and not periodic:
        p.fail("observables.names", '"pair_correlation" g(r) is measured in a periodic box (space.extent); in a trap use "density"')
    if "pair_correlation" in names and cfg.space.n_particles < 2:
        p.fail("observables.names", '"pair_correlation" needs at least two particles')
