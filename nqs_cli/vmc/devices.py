"""Placing the VMC state on all visible devices: chains sharded over one mesh axis.

Parameters and optimiser state are replicated; the chain state (n_chains, ...) is split over
a 1-D mesh named "chains". The compiled step then runs each device's chains locally and XLA
inserts the collectives for the statistics, the Gram matrix and the gradient. A checkpoint
stores global (gathered) arrays, so it resumes on any device count.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec


class DeviceError(ValueError):
    """The config does not fit the visible devices (exit code 2)."""


def chain_mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), ("chains",))


def check_chains(n_chains: int) -> None:
    n_dev = jax.device_count()
    if n_chains % n_dev:
        raise DeviceError(f"sampler.n_chains = {n_chains} is not a multiple of the {n_dev} visible devices; use a multiple of {n_dev}")


def place_state(state):
    """Replicate everything but the chains, which are split over the devices (no-op on one device).

    Built from host copies with ``make_array_from_callback``, so the same code places the
    state over the local devices or over the devices of every process of a distributed run.
    """
    if jax.device_count() == 1:
        return jax.device_put(state)
    check_chains(state.chains.x.shape[0])
    mesh = chain_mesh()
    replicated = NamedSharding(mesh, PartitionSpec())
    by_chain = NamedSharding(mesh, PartitionSpec("chains"))

    def put(sharding):
        def one(a):
            host = np.asarray(a)
            return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

        return one

    chains = jax.tree_util.tree_map(put(by_chain), state.chains)
    rest = jax.tree_util.tree_map(put(replicated), state.replace(chains=None))
    return rest.replace(chains=chains)
