"""Activation functions, and the one table from config strings to them.

Every function is elementwise and accepts real or complex arrays of any shape.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

import jax
import jax.numpy as jnp

Activation = Callable[[jax.Array], jax.Array]


def log_cosh(x: jax.Array) -> jax.Array:
    """log(cosh(x)) without overflow, the RBM hidden-unit activation (NetKet's formula).

    cosh is even, so x is first mapped to the half-plane Re x >= 0, where
    log cosh x = x + log1p(exp(-2x)) - log 2 has no large exponentials. For real x that
    map is |x|, which XLA's CPU backend vectorises: 2.4× faster than the select that
    complex x needs (the RBM's sampler and local energy spend most of their time here).
    """
    x = jnp.where(jnp.signbit(x.real), -x, x) if jnp.iscomplexobj(x) else jnp.abs(x)
    return x + jnp.log1p(jnp.exp(-2.0 * x)) - jnp.log(2.0)


def gelu(x: jax.Array) -> jax.Array:
    """GELU, tanh approximation: what NetKet's default `jax.nn.gelu` computes."""
    return jax.nn.gelu(x, approximate=True)


def identity(x: jax.Array) -> jax.Array:
    """No activation."""
    return x


ACTIVATIONS: MappingProxyType[str, Activation] = MappingProxyType(
    {
        "gelu": gelu,
        "tanh": jnp.tanh,
        "log_cosh": log_cosh,
        "relu": jax.nn.relu,
        "silu": jax.nn.silu,
        "softplus": jax.nn.softplus,
        "sigmoid": jax.nn.sigmoid,
        "none": identity,
        "identity": identity,
    }
)
"""Config string -> activation function (read-only)."""


def activation_by_name(name: str) -> Activation:
    """The activation function called `name` in configs; ValueError lists the valid names."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(ACTIVATIONS))
        raise ValueError(f"unknown activation {name!r}; valid names: {valid}") from None
