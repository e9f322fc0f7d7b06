"""Discrete Hilbert spaces: bosonic Fock and spin-s sites, optionally in a fixed sector.

A configuration is an int32 array of local indices ``0..local_dim-1``, shape (n_sites,).
Physical values live here: ``local_values[k]`` is the occupation n (Fock) or the spin
projection m = -s + k (Spin). Both fixed-sector constraints (particle number, total S^z)
are a fixed sum of local indices, ``index_sum``; all sector logic works on that.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np

MAX_STATES = 200_000  # the largest sector enumerated (exact diagonalisation, full sums)


class _DiscreteSpace:
    """Shared sector logic; subclasses define ``n_sites``, ``local_dim``, ``index_sum``."""

    n_sites: int

    @property
    def local_dim(self) -> int:
        raise NotImplementedError

    @property
    def index_sum(self) -> int | None:
        """The fixed sum of local indices in the sector, or None when unconstrained."""
        raise NotImplementedError

    @property
    def is_constrained(self) -> bool:
        return self.index_sum is not None

    @property
    def n_states(self) -> int:
        """Number of configurations in the sector (exact Python int, not enumerated)."""
        return self.count(self.n_sites, self.index_sum)

    def count(self, n_sites: int, index_sum: int | None) -> int:
        """Configurations of ``n_sites`` sites with this local dimension and the given sum of
        local indices (None: any), an exact Python int."""
        d = self.local_dim
        if index_sum is None:
            return d**n_sites
        if index_sum < 0:
            return 0
        # ways[t] = number of prefixes with index sum t
        ways = [1] + [0] * index_sum
        for _ in range(n_sites):
            ways = [sum(ways[max(t - d + 1, 0) : t + 1]) for t in range(index_sum + 1)]
        return ways[index_sum]

    def marginals(self) -> tuple[np.ndarray, np.ndarray]:
        """(P(x_i = a) (d,), P(x_i = a, x_j = b) (d, d) for i ≠ j) under the uniform
        distribution over the sector's configurations (the same for every site and pair)."""
        d, n, total = self.local_dim, self.n_sites, self.index_sum
        whole = self.count(n, total)

        def rest(k: int, used: int) -> float:
            return self.count(n - k, None if total is None else total - used) / whole

        one = np.array([rest(1, a) for a in range(d)])
        two = np.array([[rest(2, a + b) if n >= 2 else 0.0 for b in range(d)] for a in range(d)])
        return one, two

    def all_states(self, max_states: int = MAX_STATES) -> np.ndarray:
        """(n_states, n_sites) int32 configurations of the sector, in lexicographic order."""
        count = self.n_states
        if count > max_states:
            raise ValueError(
                f"the sector has {count} states, more than max_states = {max_states}; "
                "exact enumeration is for small systems"
            )
        d, n, total = self.local_dim, self.n_sites, self.index_sum
        states = np.zeros((1, 0), np.int32)
        sums = np.zeros(1, np.int64)
        for site in range(n):
            values = np.arange(d, dtype=np.int32)
            states = np.concatenate(
                [np.repeat(states, d, axis=0), np.tile(values, len(states))[:, None]], axis=1
            )
            sums = np.repeat(sums, d) + np.tile(values, len(sums))
            if total is not None:  # keep prefixes that can still reach the total
                room = (n - site - 1) * (d - 1)
                keep = (sums <= total) & (sums + room >= total)
                states, sums = states[keep], sums[keep]
        assert len(states) == count
        return states

    def random_state(self, key: jax.Array) -> jax.Array:
        """A random valid configuration, (n_sites,) int32. Jittable.

        In a fixed sector, ``index_sum`` units are dropped into distinct slots of the
        ``n_sites * (local_dim - 1)`` available ones (each site has ``local_dim - 1``).
        """
        d, n = self.local_dim, self.n_sites
        if self.index_sum is None:
            return jax.random.randint(key, (n,), 0, d, dtype=jnp.int32)
        if self.index_sum == 0:
            return jnp.zeros((n,), jnp.int32)
        # the index_sum largest of iid uniforms: a random subset of slots, one cheap top_k
        _, slots = jax.lax.top_k(jax.random.uniform(key, (n * (d - 1),)), self.index_sum)
        return jnp.bincount(slots // (d - 1), length=n).astype(jnp.int32)

    def is_valid(self, x) -> jax.Array:
        """Whether ``x`` (n_sites,) is a configuration of the sector; a jnp bool scalar."""
        x = jnp.asarray(x)
        ok = (x.shape == (self.n_sites,)) and jnp.all((x >= 0) & (x < self.local_dim))
        if self.index_sum is not None:
            ok = ok & (jnp.sum(x) == self.index_sum)
        return jnp.asarray(ok)


def _check_int(name: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class FockSpace(_DiscreteSpace):
    """Bosons on ``n_sites`` sites, at most ``n_max`` per site; local value n = index."""

    n_sites: int
    n_max: int
    n_particles: int | None = None

    def __post_init__(self):
        _check_int("n_sites", self.n_sites, 1)
        _check_int("n_max", self.n_max, 1)
        if self.n_particles is not None:
            n = _check_int("n_particles", self.n_particles, 0)
            if n > self.n_sites * self.n_max:
                raise ValueError(
                    f"n_particles = {n} does not fit on {self.n_sites} sites with n_max = "
                    f"{self.n_max} (at most {self.n_sites * self.n_max})"
                )

    @property
    def local_dim(self) -> int:
        return self.n_max + 1

    @property
    def local_values(self) -> np.ndarray:
        return np.arange(self.local_dim, dtype=np.float64)

    @property
    def index_sum(self) -> int | None:
        return None if self.n_particles is None else int(self.n_particles)


@dataclass(frozen=True)
class SpinSpace(_DiscreteSpace):
    """Spin-s sites (s = 1/2, 1, 3/2, ...); index k <-> m = -s + k."""

    n_sites: int
    s: float
    total_sz: float | None = None

    def __post_init__(self):
        _check_int("n_sites", self.n_sites, 1)
        two_s = 2 * Fraction(self.s).limit_denominator(1000)
        exact = abs(float(two_s) - 2 * self.s) < 1e-12
        if isinstance(self.s, bool) or two_s.denominator != 1 or two_s < 1 or not exact:
            raise ValueError(f"spin s must be a positive multiple of 1/2, got {self.s!r}")
        if self.total_sz is not None:
            sz = Fraction(self.total_sz).limit_denominator(1000)
            shifted = sz + self.n_sites * two_s / 2  # the sum of local indices
            top = self.n_sites * int(two_s)
            if shifted.denominator != 1 or not 0 <= shifted <= top:
                raise ValueError(
                    f"total_sz = {self.total_sz} is not reachable with {self.n_sites} spins s = "
                    f"{self.s}: allowed values are -{top / 2:g}, -{top / 2 - 1:g}, ..., {top / 2:g}"
                )

    @property
    def local_dim(self) -> int:
        return int(round(2 * self.s)) + 1

    @property
    def local_values(self) -> np.ndarray:
        return np.arange(self.local_dim, dtype=np.float64) - (self.local_dim - 1) / 2

    @property
    def index_sum(self) -> int | None:
        if self.total_sz is None:
            return None
        return int(round(self.total_sz + self.n_sites * (self.local_dim - 1) / 2))
