"""build_problem(cfg): the one registry from config ``kind`` strings to builders.

A ``Problem`` bundles the static pieces of a run — space, Hamiltonian, model, Metropolis rule —
as pure functions acting on ONE configuration: ``log_psi(params, x)``,
``local_energy(params, x)``, ``random_state(key)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from nqs_cli.config import Config, lattice_dims

EXACT_MAX_STATES = 200_000


@dataclass(frozen=True, eq=False)
class Problem:
    cfg: Config
    space: Any  # FockSpace | SpinSpace | ParticleSpace
    hamiltonian: Any  # BondHamiltonian | continuous Hamiltonian
    model: Any  # flax module acting on one configuration
    rule: Any  # Metropolis rule
    local_energy_factory: Callable  # (log_psi) -> (params, x) -> E_loc(x)
    description: str
    structured_jacobian: Callable | None = None  # (model, params, samples) -> Jacobian map
    fast_log_psi: Callable | None = None  # (params, x) -> log ψ(x), same value as the module
    evaluator: Any = None  # sampler amplitude evaluator (sampler.FullEvaluation when None)
    local_energy_block: int | None = None  # samples per block of local energies (unset: all at once)

    def jacobian(self, params, samples, dense: bool = False, chunk_size: int | None = None):
        """Centred, scaled Jacobian Ō of log ψ at ``samples`` (N, n_dof); see jacobians.py."""
        if self.structured_jacobian is not None and not dense:
            return self.structured_jacobian(self.model, params, samples)
        from nqs_cli.vmc.jacobians import dense_jacobian

        return dense_jacobian(self.log_psi, params, samples, chunk_size=chunk_size)

    def log_psi(self, params, x):
        if self.fast_log_psi is not None:
            return self.fast_log_psi(params, x)
        return self.model.apply({"params": params}, x)

    @cached_property
    def local_energy(self):
        return self.local_energy_factory(self.log_psi)

    def random_state(self, key):
        return self.space.random_state(key)

    def init_params(self, key):
        x = self.random_state(jax.random.key(0))
        return self.model.init(key, x)["params"]

    @property
    def is_discrete(self) -> bool:
        return not self.cfg.is_continuous

    def exact_energy(self) -> float | None:
        """Exact ground-state energy when known in closed form or by Lanczos (small sectors)."""
        if self.cfg.is_continuous:
            from nqs_cli.systems.continuum import hamiltonian as continuous

            return continuous.exact_energy(self.cfg)
        if self.space.n_states > EXACT_MAX_STATES:
            return None
        from nqs_cli.systems.lattice.exact import ground_state_energy

        return ground_state_energy(self.hamiltonian, self.space, max_states=EXACT_MAX_STATES)


# --------------------------------------------------------------------------- discrete pieces


def discrete_local_energy(hamiltonian):
    """E_loc(x) = Σ_k H_{x x'_k} ψ(x'_k)/ψ(x) over the padded connected elements."""

    def factory(log_psi):
        batched = jax.vmap(log_psi, (None, 0))

        def local_energy(params, x):
            xp, mels = hamiltonian.get_conn_padded(x)
            lp = batched(params, xp)
            return jnp.sum(mels * jnp.exp(lp - log_psi(params, x)))

        return local_energy

    return factory


def build_lattice(cfg: Config):
    from nqs_cli.systems.lattice.graph import Lattice

    lat = cfg.lattice
    return Lattice(graph=lat.graph, length=lat.length, dims=lattice_dims(lat), pbc=lat.pbc)


def build_fock(cfg: Config, lattice):
    from nqs_cli.systems.lattice.hilbert import FockSpace

    h = cfg.hilbert
    return FockSpace(n_sites=lattice.n_sites, n_max=h.n_max, n_particles=h.n_particles)


def build_spin(cfg: Config, lattice):
    from nqs_cli.systems.lattice.hilbert import SpinSpace

    h = cfg.hilbert
    return SpinSpace(n_sites=lattice.n_sites, s=h.s, total_sz=h.total_sz)


def build_bose_hubbard(cfg: Config, lattice, space):
    from nqs_cli.systems.lattice.operators import bose_hubbard

    h = cfg.hamiltonian
    return bose_hubbard(lattice, space, J=h.J, U=h.U, V=h.V, mu=h.mu)


def build_heisenberg(cfg: Config, lattice, space):
    from nqs_cli.systems.lattice.operators import heisenberg

    h = cfg.hamiltonian
    if h.sign_rule and not lattice.is_bipartite:
        raise ValueError("hamiltonian.sign_rule: Marshall's sign rule needs a bipartite lattice (this one has odd periodic loops)")
    return heisenberg(lattice, space, J=h.J, beta=h.beta, sign_rule=h.sign_rule)


def build_rbm_multival(cfg: Config, space):
    from nqs_cli.models import RBMMultiVal

    m = cfg.model
    return RBMMultiVal(
        n_classes=space.local_dim,
        alpha=m.alpha,
        use_hidden_bias=m.use_hidden_bias,
        use_visible_bias=m.use_visible_bias,
        param_dtype=_dtype(m.param_dtype, cfg),
    )


def _dtype(name: str, cfg: Config):
    return jnp.float32 if cfg.dtype == "float32" else getattr(jnp, name)


def rule_local(cfg, lattice, space, hamiltonian):
    from nqs_cli.vmc.sampler import LocalRule

    return LocalRule(n_sites=space.n_sites, local_dim=space.local_dim)


def rule_exchange(cfg, lattice, space, hamiltonian):
    from nqs_cli.vmc.sampler import ExchangeRule

    return ExchangeRule(edges=np.asarray(lattice.edges))


def rule_hamiltonian(cfg, lattice, space, hamiltonian):
    from nqs_cli.vmc.sampler import HamiltonianRule

    return HamiltonianRule(operator=hamiltonian)


def rbm_structured_jacobian(model, params, samples):
    from nqs_cli.vmc.jacobians import rbm_jacobian

    return rbm_jacobian(model, params, samples)


class RBMFastKernels:
    """Gather-based log ψ and O(H)-per-connection local energies of RBMMultiVal."""

    @staticmethod
    def log_psi(model, params, x):
        from nqs_cli.models import rbm_kernels

        return rbm_kernels.log_psi(model, params, x)

    @staticmethod
    def local_energy(model, hamiltonian):
        from nqs_cli.models import rbm_kernels

        energy = rbm_kernels.local_energy(model, hamiltonian)
        return lambda log_psi: energy

    @staticmethod
    def evaluator(model):
        from nqs_cli.models import rbm_kernels

        return rbm_kernels.RBMIncremental(model, max_changes=2)

    @staticmethod
    def local_energy_block(model, hamiltonian):
        from nqs_cli.models import rbm_kernels

        return rbm_kernels.local_energy_block(model, hamiltonian)


FAST_KERNELS = {"rbm-multival": RBMFastKernels}
SPACES = {"fock": build_fock, "spin": build_spin}
STRUCTURED_JACOBIANS = {"rbm-multival": rbm_structured_jacobian}
HAMILTONIANS = {"bose-hubbard": build_bose_hubbard, "heisenberg": build_heisenberg}
DISCRETE_MODELS = {"rbm-multival": build_rbm_multival}
DISCRETE_RULES = {
    "metropolis-local": rule_local,
    "metropolis-exchange": rule_exchange,
    "metropolis-hamiltonian": rule_hamiltonian,
}


def describe_discrete(cfg: Config) -> str:
    lat, hil, ham = cfg.lattice, cfg.hilbert, cfg.hamiltonian
    bc = "periodic" if lat.pbc else "open"
    size = "×".join([str(lat.length)] * lattice_dims(lat))
    if hil.kind == "fock":
        n = "" if hil.n_particles is None else f", N={hil.n_particles}"
        space = f"bosons n_max={hil.n_max}{n}"
        terms = f"J={ham.J:g}, U={ham.U:g}" + (f", V={ham.V:g}" if ham.V else "") + (f", mu={ham.mu:g}" if ham.mu else "")
        return f"Bose-Hubbard {lat.graph} {size} ({bc}), {space}, {terms}"
    sz = "" if hil.total_sz is None else f", Sz={hil.total_sz:g}"
    beta = f", beta={ham.beta:g}" if ham.beta else ""
    return f"spin-{hil.s:g} Heisenberg {lat.graph} {size} ({bc}){sz}, J={ham.J:g}{beta}"


def build_problem(cfg: Config) -> Problem:
    """Build every static piece of the run described by a validated config."""
    if cfg.is_continuous:
        from nqs_cli.systems.continuum.hamiltonian import build_continuous_problem

        return build_continuous_problem(cfg)
    lattice = build_lattice(cfg)
    space = SPACES[cfg.hilbert.kind](cfg, lattice)
    hamiltonian = HAMILTONIANS[cfg.hamiltonian.kind](cfg, lattice, space)
    model = DISCRETE_MODELS[cfg.model.kind](cfg, space)
    rule = DISCRETE_RULES[cfg.sampler.kind](cfg, lattice, space, hamiltonian)
    fast = FAST_KERNELS.get(cfg.model.kind)
    return Problem(
        cfg=cfg,
        space=space,
        hamiltonian=hamiltonian,
        model=model,
        rule=rule,
        local_energy_factory=fast.local_energy(model, hamiltonian) if fast else discrete_local_energy(hamiltonian),
        description=describe_discrete(cfg),
        structured_jacobian=STRUCTURED_JACOBIANS.get(cfg.model.kind),
        fast_log_psi=partial(fast.log_psi, model) if fast else None,
        evaluator=fast.evaluator(model) if fast else None,
        local_energy_block=fast.local_energy_block(model, hamiltonian) if fast else None,
    )
