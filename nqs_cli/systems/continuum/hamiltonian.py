"""The Hamiltonian of bosons in continuous space: a harmonic trap and a pair potential.

Units: ħ = 1 and H = −1/(2m) Σ_i ∇_i² + ½ m ω² Σ_i |x_i|² + Σ_{i<j} v(|x_i − x_j|).
In a periodic box pair distances use the minimum image. Cut-off: in a box the default is
half the smallest side (the largest radius for which the minimum image is unambiguous); open
space has none; ``pair.cutoff`` overrides both. The potential is truncated, NOT shifted:
v(r) for r < r_c, 0 beyond (no tail correction).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from nqs_cli.systems.continuum.space import ParticleSpace


@dataclass(frozen=True, eq=False)
class ContinuousHamiltonian:
    """External trap ½ m ω² Σ|x_i|² plus an optional pair potential v(r), truncated at r_c."""

    space: ParticleSpace
    trap_omega: float = 0.0
    pair: Callable | None = None
    cutoff: float | None = None

    def pair_distances(self, x: jax.Array) -> jax.Array:
        """|r_ij| for pairs i<j (row-major), minimum image in a box: (N*D,) -> (P,)."""
        sp = self.space
        xs = x.reshape(sp.n_particles, sp.dims)
        i, j = np.triu_indices(sp.n_particles, 1)
        r = xs[i] - xs[j]
        if sp.periodic:
            box = jnp.asarray(sp.extent, x.dtype)[None, :]
            r = r - box * jnp.round(r / box)
        return jnp.sqrt(jnp.sum(r * r, axis=-1))

    def potential(self, x: jax.Array) -> jax.Array:
        """V(x), scalar, for one configuration (N*D,)."""
        v = jnp.zeros((), x.dtype)
        if self.trap_omega > 0:
            v = v + 0.5 * self.space.mass * self.trap_omega**2 * jnp.sum(x * x)
        if self.pair is not None and self.space.n_particles > 1:
            r = self.pair_distances(x)
            vr = self.pair(r)
            if self.cutoff is not None:
                vr = jnp.where(r < self.cutoff, vr, 0.0)
            v = v + jnp.sum(vr)
        return v


def default_cutoff(space: ParticleSpace, cutoff: float | None) -> float | None:
    """The given cut-off, else half the smallest side of a box, else none (open space)."""
    if cutoff is not None:
        return cutoff
    return min(space.extent) / 2.0 if space.periodic else None


def free_boson_energy(space: ParticleSpace, trap_omega: float) -> float | None:
    """Ground-state energy of non-interacting bosons: N·D·ω/2 in a trap (open space), 0 in a
    box without a trap (ψ = const); None for a trap inside a box."""
    if space.periodic:
        return 0.0 if trap_omega == 0 else None
    return space.n_particles * space.dims * trap_omega / 2.0
