"""The local energy of a lattice Hamiltonian from its padded connected elements."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def local_energy_factory(hamiltonian):
    """(log_psi) -> (params, x) -> E_loc(x) = Σ_k H_{x x'_k} ψ(x'_k)/ψ(x) over the padded
    connected elements of ``hamiltonian`` (``get_conn_padded``)."""

    def factory(log_psi):
        batched = jax.vmap(log_psi, (None, 0))

        def local_energy(params, x):
            xp, mels = hamiltonian.get_conn_padded(x)
            lp = batched(params, xp)
            return jnp.sum(mels * jnp.exp(lp - log_psi(params, x)))

        return local_energy

    return factory
