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


# Factors 1 + exp(-2|x|) lie in (1, 2]: a product of 64 of them stays below 2^64, far from
# overflow even in float32, so one logarithm serves a whole group.
_LOG_COSH_GROUP = 64


def sum_log_cosh(x: jax.Array) -> jax.Array:
    """Σ log cosh over the last axis, with one exp per value and one log per group of values.

    With z = x mapped to Re z >= 0 (|x| for real x), Σ log cosh x = Σ z − n log 2 +
    log Π (1 + exp(−2z)): the same sum as ``jnp.sum(log_cosh(x), -1)`` to rounding (for
    complex x, up to a multiple of 2πi: log ψ is a phase modulo 2π). The factors have
    modulus at most 2, so a group's product cannot overflow. On XLA's CPU backend a float64 log
    costs ~4× an exp (16 × 32 values inside a scan: log1p 6.2 µs, exp 1.8 µs, this sum 2.8 µs,
    the elementwise sum 7.1 µs), a complex log more, and the RBM's sampler and local energy
    spend most of their time here.
    """
    n = x.shape[-1]
    z = jnp.where(jnp.signbit(x.real), -x, x) if jnp.iscomplexobj(x) else jnp.abs(x)
    return jnp.sum(z, axis=-1) - n * jnp.log(2.0).astype(z.real.dtype) + sum_log_grouped(1.0 + jnp.exp(-2.0 * z), _LOG_COSH_GROUP)


def sum_log_grouped(factors: jax.Array, group: int) -> jax.Array:
    """Σ log over the last axis as Σ log Π over groups of ``group`` factors (padded with ones):
    one log per group. Equal to ``jnp.sum(jnp.log(factors), -1)`` up to rounding and, for
    complex factors, a multiple of 2πi; the caller bounds the factors so a product stays finite."""
    n = factors.shape[-1]
    group = min(n, group)
    pad = (-n) % group
    if pad:
        factors = jnp.concatenate([factors, jnp.ones((*factors.shape[:-1], pad), factors.dtype)], axis=-1)
    groups = factors.reshape(*factors.shape[:-1], -1, group)
    return jnp.sum(jnp.log(jnp.prod(groups, axis=-1)), axis=-1)


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
