"""The benchmark cases: the same problem built twice, once in nqs and once in NetKet 3.23.

Each case gives an nqs config dict (``nqs_cli.config.from_dict`` shape) and a NetKet builder
returning ``(vstate, driver, hamiltonian)``. The two sides share: system, model family and
size (same parameter count, checked at run time), sampler rule, chains, samples, discarded
sweeps, sweep size, optimiser (SGD lr 0.01 + SR diag_shift 0.01) and float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

SEED = 1234
LR = 0.01
DIAG_SHIFT = 0.01


@dataclass(frozen=True)
class Case:
    name: str
    kind: str  # "vmc" (full iterations) | "throughput" (sampling, local energies alone)
    nqs_raw: Callable[[], dict]
    netket: Callable[[], tuple]  # -> (vstate, driver | None, hamiltonian)
    exact_energy: float | None
    description: str
    needs_continuous: bool = False
    tags: dict = field(default_factory=dict)


def _optimizer_section() -> dict:
    return {"kind": "sgd", "learning_rate": LR, "sr": {"diag_shift": DIAG_SHIFT}}


def _lattice_raw(name, length, hilbert, hamiltonian, alpha, n_samples) -> dict:
    return {
        "name": name,
        "seed": SEED,
        "dtype": "float64",
        "lattice": {"graph": "chain", "length": length, "pbc": True},
        "hilbert": hilbert,
        "hamiltonian": hamiltonian,
        "model": {"kind": "rbm-multival", "alpha": alpha},
        "sampler": {
            "kind": "metropolis-hamiltonian",
            "n_chains": 16,
            "n_samples": n_samples,
            "n_discard_per_chain": 10,
            "sweep_size": length,
        },
        "optimizer": _optimizer_section(),
        "train": {"n_iter": 300},
    }


def _trap_raw(name, pair: bool) -> dict:
    raw = {
        "name": name,
        "seed": SEED,
        "dtype": "float64",
        "space": {"n_particles": 6, "dims": 1, "extent": 0.0, "mass": 1.0},
        "hamiltonian": {"kind": "continuous", "trap_omega": 1.0},
        "model": {"kind": "deepsets", "envelope": "gaussian", "features_phi": [16, 16], "features_rho": [16]},
        "sampler": {"kind": "metropolis-gaussian", "n_chains": 16, "n_samples": 1024, "n_discard_per_chain": 10, "sweep_size": 6, "sigma": 0.5},
        "optimizer": _optimizer_section(),
        "train": {"n_iter": 300},
    }
    if pair:
        raw["hamiltonian"]["pair"] = {"kind": "gaussian", "g": 2.0, "sigma": 0.5}
    return raw


# --------------------------------------------------------------------------- NetKet side


def _nk_vmc(hilbert, hamiltonian, model, sampler, n_samples, with_driver=True):
    import netket as nk

    vstate = nk.vqs.MCState(sampler, model, n_samples=n_samples, n_discard_per_chain=10, seed=SEED, sampler_seed=SEED + 1)
    driver = None
    if with_driver:
        driver = nk.driver.VMC(
            hamiltonian,
            nk.optimizer.Sgd(learning_rate=LR),
            variational_state=vstate,
            preconditioner=nk.optimizer.SR(diag_shift=DIAG_SHIFT),
        )
    return vstate, driver, hamiltonian


def nk_bose_hubbard(length: int, alpha: int, n_samples: int, with_driver: bool = True, pbc: bool = True):
    import netket as nk

    graph = nk.graph.Chain(length, pbc=pbc)
    hi = nk.hilbert.Fock(n_max=3, N=length, n_particles=length)  # local values 0..3 = nqs indices
    ham = nk.operator.BoseHubbard(hi, graph, U=4.0, J=1.0).to_jax_operator()
    model = nk.models.RBMMultiVal(n_classes=4, alpha=alpha)
    sampler = nk.sampler.MetropolisHamiltonian(hi, ham, n_chains=16, sweep_size=length)
    return _nk_vmc(hi, ham, model, sampler, n_samples, with_driver)


def spin1_bond(sign_rule: bool = True) -> np.ndarray:
    """S·S on a bond in NetKet's Spin(s=1) local order (values 2, 0, -2, i.e. m = 1, 0, -1)."""
    sz = np.diag([1.0, 0.0, -1.0])
    sp = np.zeros((3, 3))
    sp[0, 1] = sp[1, 2] = math.sqrt(2.0)  # S+|m> = sqrt(2)|m+1>
    sm = sp.T
    flip = 0.5 * (np.kron(sp, sm) + np.kron(sm, sp))
    return np.kron(sz, sz) + (-flip if sign_rule else flip)


def _spin_index_rbm(alpha: int):
    """nk.models.RBMMultiVal fed local indices: NetKet's spin-1 values 2m ∈ {-2,0,2} -> m+1."""
    import flax.linen as nn
    import netket as nk

    class SpinIndexRBMMultiVal(nn.Module):
        alpha: int

        @nn.compact
        def __call__(self, x):
            return nk.models.RBMMultiVal(n_classes=3, alpha=self.alpha)((x + 2.0) / 2.0)

    return SpinIndexRBMMultiVal(alpha=alpha)


def nk_spin1(length: int, alpha: int, n_samples: int, pbc: bool = True):
    import netket as nk
    from netket.operator import LocalOperatorJax

    graph = nk.graph.Chain(length, pbc=pbc)
    hi = nk.hilbert.Spin(s=1, N=length, total_sz=0)
    # nk.operator.Heisenberg is spin-1/2 only (Pauli bond matrices); build S·S for s=1,
    # with the Marshall sign rule as nqs does by default on a bipartite chain.
    ham = nk.operator.GraphOperator(hi, graph, bond_ops=[spin1_bond(True)], cls=LocalOperatorJax)
    sampler = nk.sampler.MetropolisHamiltonian(hi, ham, n_chains=16, sweep_size=length)
    return _nk_vmc(hi, ham, _spin_index_rbm(alpha), sampler, n_samples)


def _enveloped_deepset(n_particles: int, dims: int):
    """nk.models.DeepSetMLP on (N, D) times exp(-a Σ x²), a = exp(log_a), log_a init log(1/2)."""
    import flax.linen as nn
    import jax.numpy as jnp
    import netket as nk

    class EnvelopedDeepSet(nn.Module):
        @nn.compact
        def __call__(self, x):
            inner = nk.models.DeepSetMLP(features_phi=(16, 16), features_rho=(16,), hidden_activation=nn.gelu, output_activation=None)
            log_a = self.param("log_a", nn.initializers.constant(math.log(0.5)), (), jnp.float64)
            xs = x.reshape(x.shape[:-1] + (n_particles, dims))
            return inner(xs) - jnp.exp(log_a) * jnp.sum(x * x, axis=-1)

    return EnvelopedDeepSet()


def nk_trap(pair: bool):
    import jax.numpy as jnp
    import netket as nk

    n, d = 6, 1
    hi = nk.experimental.hilbert.Particle(N=n, geometry=nk.experimental.geometry.FreeSpace(d=d))
    iu, ju = np.triu_indices(n, 1)

    def trap(x):
        return 0.5 * jnp.sum(x * x, axis=-1)

    def gaussian_pair(x):
        xs = x.reshape(x.shape[:-1] + (n, d))
        r2 = jnp.sum((xs[..., iu, :] - xs[..., ju, :]) ** 2, axis=-1)
        return jnp.sum(2.0 * jnp.exp(-r2 / (2.0 * 0.5**2)), axis=-1)

    ham = nk.operator.KineticEnergy(hi, mass=1.0) + nk.operator.PotentialEnergy(hi, trap)
    if pair:
        ham = ham + nk.operator.PotentialEnergy(hi, gaussian_pair)
    sampler = nk.sampler.MetropolisGaussian(hi, sigma=0.5, n_chains=16, sweep_size=n)
    return _nk_vmc(hi, ham, _enveloped_deepset(n, d), sampler, 1024)


# --------------------------------------------------------------------------- registry

BH = {"kind": "fock", "n_max": 3}
BH_H = {"kind": "bose-hubbard", "J": 1.0, "U": 4.0}

CASES = {
    c.name: c
    for c in [
        Case(
            "bh-l8",
            "vmc",
            lambda: _lattice_raw("bh-l8", 8, {**BH, "n_particles": 8}, BH_H, 1, 1008),
            lambda: nk_bose_hubbard(8, 1, 1008),
            -7.4500452954,
            "Bose-Hubbard chain L=8, N=8, n_max=3, U=4; RBMMultiVal α=1; hamiltonian moves; 1008 samples",
        ),
        Case(
            "spin1-l10",
            "vmc",
            lambda: _lattice_raw("spin1-l10", 10, {"kind": "spin", "s": 1, "total_sz": 0}, {"kind": "heisenberg", "J": 1.0, "beta": 0.0}, 2, 1008),
            lambda: nk_spin1(10, 2, 1008),
            -14.0941299549,
            "spin-1 Heisenberg chain L=10 (PBC, Sz=0); RBMMultiVal α=2; hamiltonian moves; 1008 samples",
        ),
        Case(
            "bh-l32-throughput",
            "throughput",
            lambda: _lattice_raw("bh-l32", 32, {**BH, "n_particles": 32}, BH_H, 2, 4096),
            lambda: nk_bose_hubbard(32, 2, 4096, with_driver=False),
            None,
            "Bose-Hubbard chain L=32, N=32, n_max=3; RBMMultiVal α=2; 4096 samples: sampling and local energies alone",
        ),
        Case(
            "trap-n6",
            "vmc",
            lambda: _trap_raw("trap-n6", pair=False),
            lambda: nk_trap(pair=False),
            3.0,
            "6 bosons, 1D harmonic trap; DeepSetMLP × Gaussian envelope; Gaussian moves σ=0.5; 1024 samples",
            needs_continuous=True,
        ),
        Case(
            "trap-interacting-n6",
            "vmc",
            lambda: _trap_raw("trap-interacting-n6", pair=True),
            lambda: nk_trap(pair=True),
            None,
            "same + Gaussian pair repulsion g=2, σ=0.5 (NetKet reference 11.8636 ± 0.0018)",
            needs_continuous=True,
        ),
    ]
}
