"""N particles in D dimensions: open space or a periodic box.

Configurations are flat (N*D,) arrays, particle-major (x[i*D + a] is component a of
particle i). In a periodic box positions live in [0, L).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp


@dataclass(frozen=True)
class ParticleSpace:
    """N particles in D dimensions: open space (extent None) or a periodic box.

    ``extent``: side lengths (D,), all > 0, or None / all 0.0 for open space.
    ``trap_omega`` only sets the width 1/√(mω) of random open-space states.
    """

    n_particles: int
    dims: int
    extent: tuple[float, ...] | None = None
    mass: float = 1.0
    trap_omega: float = 1.0

    def __post_init__(self):
        if self.extent is not None:
            ext = tuple(float(e) for e in self.extent)
            if len(ext) != self.dims:
                raise ValueError(f"extent needs {self.dims} side lengths, got {ext}")
            if all(e == 0.0 for e in ext):
                ext = None
            elif not all(e > 0.0 for e in ext):
                raise ValueError(f"extent: all sides > 0 (a box) or all 0 (open space), got {ext}")
            object.__setattr__(self, "extent", ext)
        if not self.mass > 0:
            raise ValueError(f"mass must be > 0, got {self.mass}")

    @property
    def n_dof(self) -> int:
        return self.n_particles * self.dims

    @property
    def periodic(self) -> bool:
        return self.extent is not None

    @property
    def coordinate_extent(self) -> tuple[float, ...] | None:
        """Box length of every flat coordinate (N*D,), or None in open space."""
        return None if self.extent is None else self.extent * self.n_particles

    def random_state(self, key) -> jax.Array:
        """(N*D,) float: uniform in the box, or N(0, 1/(mω)) per coordinate in open space."""
        if self.periodic:
            box = jnp.asarray(self.coordinate_extent)
            return jax.random.uniform(key, (self.n_dof,), dtype=box.dtype) * box
        width = 1.0 / math.sqrt(self.mass * self.trap_omega) if self.trap_omega > 0 else 1.0
        return width * jax.random.normal(key, (self.n_dof,))
