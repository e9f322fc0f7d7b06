"""Restricted Boltzmann machines with NetKet 3.23's fields, parameters and forward pass.

A parameter tree made by `netket.models.RBM` / `RBMMultiVal` gives the same log-amplitude
here to float64 round-off (tests/models/test_models.py checks this against stored NetKet output).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.nn.initializers import normal

from nqs_cli.models.activations import log_cosh

default_init = normal(stddev=0.01)


class RBM(nn.Module):
    """log ψ(x) = Σ_j activation(Σ_i W_ij x_i + b_j) + Σ_i a_i x_i.

    Input: x of shape (..., M), real; output: log ψ of shape (...).
    Params: `Dense/kernel` (M, H), `Dense/bias` (H,) if `use_hidden_bias`,
    `visible_bias` (M,) if `use_visible_bias`, with H = int(alpha * M).
    """

    param_dtype: Any = jnp.float64
    activation: Any = log_cosh
    alpha: float | int = 1
    """Hidden-unit density: H = int(alpha * M) for input width M."""
    use_hidden_bias: bool = True
    use_visible_bias: bool = True
    precision: Any = None
    kernel_init: Any = default_init
    hidden_bias_init: Any = default_init
    visible_bias_init: Any = default_init

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        n_visible = x.shape[-1]
        h = nn.Dense(
            features=int(self.alpha * n_visible),
            use_bias=self.use_hidden_bias,
            param_dtype=self.param_dtype,
            precision=self.precision,
            kernel_init=self.kernel_init,
            bias_init=self.hidden_bias_init,
            name="Dense",
        )(x)
        out = jnp.sum(self.activation(h), axis=-1)
        if not self.use_visible_bias:
            return out
        a = self.param("visible_bias", self.visible_bias_init, (n_visible,), self.param_dtype)
        return out + jnp.dot(x, a)


class RBMMultiVal(nn.Module):
    """An `RBM` on the one-hot encoding of local indices, for large local dimensions.

    Input: local indices x of shape (..., N), integers in 0..n_classes-1 (NOT physical
    values: an out-of-range value one-hots to all zeros). The one-hot (..., N, C), with
    entries 0/1, is flattened site-major to (..., N*C) and fed to the inner RBM, so
    `alpha` multiplies N*C. Params: `RBM/Dense/kernel` (N*C, int(alpha*N*C)),
    `RBM/Dense/bias`, `RBM/visible_bias` (N*C,). Output: log ψ of shape (...).
    """

    n_classes: int
    param_dtype: Any = jnp.float64
    activation: Any = log_cosh
    alpha: float | int = 1
    use_hidden_bias: bool = True
    use_visible_bias: bool = True
    precision: Any = None
    kernel_init: Any = default_init
    hidden_bias_init: Any = default_init
    visible_bias_init: Any = default_init

    def setup(self):
        self.RBM = RBM(
            param_dtype=self.param_dtype,
            activation=self.activation,
            alpha=self.alpha,
            use_hidden_bias=self.use_hidden_bias,
            use_visible_bias=self.use_visible_bias,
            precision=self.precision,
            kernel_init=self.kernel_init,
            hidden_bias_init=self.hidden_bias_init,
            visible_bias_init=self.visible_bias_init,
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        # One-hot in the real dtype of the parameters, so float32 runs stay float32.
        x_oh = jax.nn.one_hot(x, self.n_classes, dtype=jnp.finfo(self.param_dtype).dtype)
        x_oh = jnp.reshape(x_oh, (*x.shape[:-1], x.shape[-1] * self.n_classes))
        return self.RBM(x_oh)
