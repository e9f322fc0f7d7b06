"""Pair potentials v(r) of particles in continuous space (``[hamiltonian.pair] kind``).

- ``gaussian``: g·exp(−r²/2σ²);
- ``lennard-jones``: 4ε[(σ/r)¹² − (σ/r)⁶];
- ``aziz``: HFDHE2 helium–helium potential (Aziz et al., J. Chem. Phys. 70, 4330 (1979))
  in KELVIN with r in ÅNGSTRÖM. With ħ = 1 the kinetic prefactor is ħ²/2m, so for ⁴He
  (ħ²/m = 12.1194 K·Å²) set ``space.mass = 1/12.1194 = 0.0825123``; energies then come out
  in kelvin.
- ``calogero-sutherland``: (π/L)² β(β−1)/m · sin⁻²(πr/L) on a ring of side L, periodic in r
  by construction (no cut-off); its ground state is the Jastrow product Π_{i<j} |sin(πx_ij/L)|^β
  with E₀ = (π/L)² β² N(N²−1)/(6m) (Sutherland, Phys. Rev. A 4, 2019 (1971)).
"""

from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
import numpy as np


def gaussian_pair(g: float, sigma: float) -> Callable:
    return lambda r: g * jnp.exp(-(r * r) / (2.0 * sigma * sigma))


def lennard_jones(epsilon: float, sigma: float) -> Callable:
    def v(r):
        s6 = (sigma / r) ** 6
        return 4.0 * epsilon * (s6 * s6 - s6)

    return v


def aziz(epsilon=10.8, r_m=2.9673, A=0.5448504e6, alpha=13.353384, c6=1.3732412, c8=0.4253785, c10=0.1781, D=1.241314) -> Callable:
    """V(r) = ε [A e^{−αx} − F(x) Σ_n c_n/x^n], x = r/r_m, F = exp(−(D/x − 1)²) for x < D.

    The defaults are HFDHE2 (Aziz, Nain, Carley, Taylor, McConville 1979): ε/k_B in K, r_m in Å.
    """

    def v(r):
        x = r / r_m
        x2 = x * x
        x6 = x2 * x2 * x2
        damping = jnp.where(x < D, jnp.exp(-((D / x - 1.0) ** 2)), 1.0)
        dispersion = (c6 + (c8 + c10 / x2) / x2) / x6
        return epsilon * (A * jnp.exp(-alpha * x) - damping * dispersion)

    return v


def calogero_sutherland(beta: float, length: float, mass: float = 1.0) -> Callable:
    """v(r) = (π/L)² β(β−1)/m / sin²(πr/L): the 1/r² Calogero coupling made periodic on a ring."""
    k = jnp.pi / length
    coupling = k * k * beta * (beta - 1.0) / mass

    def v(r):
        s = jnp.sin(k * r)
        return coupling / (s * s)

    return v


def calogero_sutherland_energy(n_particles: int, beta: float, length: float, mass: float = 1.0) -> float:
    """Exact ground-state energy (π/L)² β² N(N²−1)/(6m) of the Calogero–Sutherland ring."""
    k = float(np.pi) / length
    return k * k * beta * beta * n_particles * (n_particles**2 - 1) / (6.0 * mass)
