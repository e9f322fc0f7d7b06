"""Permutation-invariant models for identical bosons in continuous space.

`DeepSetMLP` and `DeepSetRelDistance` have NetKet 3.23's fields, defaults, initialisers,
parameter trees and forward passes (tests/models/test_models.py checks them against stored NetKet
output). Two additions, neither of which changes the parameter tree:

- `DeepSetMLP.n_dims`: when set, the model takes flat coordinates (..., N*D);
- `phi` / `rho` methods expose the two halves, log ψ = rho(pooling_i phi(x_i)), for a fast
  Laplacian: `model.apply(variables, x_i, method="phi")`.

`GaussianEnvelope` multiplies any model by exp(-a Σ_i |x_i|²) with a learnable a > 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.nn.initializers import constant, lecun_normal, ones, zeros

from nqs_cli.models.activations import gelu

Features = int | Sequence[int] | None


def _split_features(features: Features) -> tuple[tuple[int, ...], int | None]:
    """NetKet's reading of a width spec: (hidden widths, output width or None = no MLP)."""
    if features is None:
        return (), None
    if isinstance(features, int):
        return (), features
    features = tuple(features)
    if not features:
        return (), None
    return features[:-1], features[-1]


def _append_output_unit(features_rho: Features) -> tuple[int, ...]:
    """ρ always ends in a width-1 layer: None -> (1,), k -> (k, 1), (a, b) -> (a, b, 1)."""
    if features_rho is None:
        return (1,)
    if isinstance(features_rho, int):
        return (features_rho, 1)
    return (*tuple(features_rho), 1)


class _MLP(nn.Module):
    """Dense layers `Dense_0..Dense_K`; hidden ones use `hidden_activation`, the last one
    `output_activation` (None = linear). Acts on the last axis: (..., D_in) -> (..., D_out)."""

    hidden_dims: tuple[int, ...]
    output_dim: int
    hidden_activation: Callable | None
    output_activation: Callable | None
    use_bias: bool
    param_dtype: Any
    kernel_init: Any
    bias_init: Any
    precision: Any

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        widths = (*self.hidden_dims, self.output_dim)
        for k, width in enumerate(widths):
            x = nn.Dense(
                features=width,
                use_bias=self.use_bias,
                param_dtype=self.param_dtype,
                precision=self.precision,
                kernel_init=self.kernel_init,
                bias_init=self.bias_init,
                name=f"Dense_{k}",
            )(x)
            act = self.hidden_activation if k < len(self.hidden_dims) else self.output_activation
            if act is not None:
                x = act(x)
        return x


def _make_mlp(block: "DeepSetBlock", features: Features, output_activation: Callable | None) -> _MLP | None:
    """One half of a DeepSetBlock (a plain function: flax would record a method as a call)."""
    hidden, out = _split_features(features)
    if out is None:
        return None
    return _MLP(
        hidden_dims=hidden,
        output_dim=out,
        hidden_activation=block.hidden_activation,
        output_activation=output_activation,
        use_bias=block.use_bias,
        param_dtype=block.param_dtype,
        kernel_init=block.kernel_init,
        bias_init=block.bias_init,
        precision=block.precision,
    )


class DeepSetBlock(nn.Module):
    """f(x) = ρ(pooling_i φ(x_i)), NetKet's `nn.blocks.DeepSetMLP`: (..., N, D) -> (..., F_ρ).

    `features_rho` here includes ρ's output width. φ's output layer is activated with
    `hidden_activation`, ρ's with `output_activation`. Submodules `ds_phi`, `ds_rho`
    (absent when their features are None).
    """

    features_phi: Features = None
    features_rho: Features = None
    param_dtype: Any = jnp.float64
    hidden_activation: Callable | None = gelu
    output_activation: Callable | None = None
    pooling: Callable = jnp.sum
    use_bias: bool = True
    kernel_init: Any = lecun_normal()
    bias_init: Any = zeros
    precision: Any = None

    def setup(self):
        self.ds_phi = _make_mlp(self, self.features_phi, self.hidden_activation)
        self.ds_rho = _make_mlp(self, self.features_rho, self.output_activation)

    def phi(self, x: jax.Array) -> jax.Array:
        """φ on coordinates: (..., D) -> (..., F_φ); the identity if features_phi is None."""
        return x if self.ds_phi is None else self.ds_phi(x)

    def rho(self, s: jax.Array) -> jax.Array:
        """ρ on the pooled features: (..., F_φ) -> (..., F_ρ)."""
        return s if self.ds_rho is None else self.ds_rho(s)

    def __call__(self, x: jax.Array) -> jax.Array:
        if x.ndim < 2:
            raise ValueError(f"DeepSet input must have shape (..., N, D), got {x.shape}")
        return self.rho(self.pooling(self.phi(x), axis=-2))


class DeepSetMLP(nn.Module):
    """log ψ(x) = ρ(pooling_i φ(x_i)), NetKet's `models.DeepSetMLP`, optionally on flat input.

    Input: particles (..., N, D) when `n_dims` is None (NetKet's convention), or flat
    coordinates (..., N*D) when `n_dims = D`; the reshape (..., N*D) -> (..., N, D),
    particle-major (x[..., i*D + a] is component a of particle i), is the first line of
    `__call__` and nowhere else. Output: log ψ of shape (...), real for real params.

    `features_rho` excludes the final width-1 layer, which is always appended. Params:
    `DeepSetMLP_0/ds_phi/Dense_k/{kernel,bias}`, `DeepSetMLP_0/ds_rho/Dense_k/{kernel,bias}`.

    Halves, for a fast Laplacian (with pooling = jnp.sum, log ψ = rho(Σ_i phi(x_i))):
    `model.apply(v, x_i, method="phi")`: (..., D) -> (..., F_φ), one particle;
    `model.apply(v, s, method="rho")`: (..., F_φ) -> (...), log ψ from pooled features.

    Unlike NetKet 3.23 (which ignores them inside its block), `bias_init` and `precision`
    reach the Dense layers; at their defaults (zeros, None) the two agree exactly.
    """

    features_phi: Features = None
    features_rho: Features = None
    param_dtype: Any = jnp.float64
    hidden_activation: Callable | None = gelu
    output_activation: Callable | None = None
    pooling: Callable = jnp.sum
    use_bias: bool = True
    kernel_init: Any = lecun_normal()
    bias_init: Any = zeros
    precision: Any = None
    n_dims: int | None = None
    """Particle dimension D for flat (..., N*D) input; None = input already (..., N, D)."""

    def setup(self):
        self.block = DeepSetBlock(
            features_phi=self.features_phi,
            features_rho=_append_output_unit(self.features_rho),
            param_dtype=self.param_dtype,
            hidden_activation=self.hidden_activation,
            output_activation=self.output_activation,
            pooling=self.pooling,
            use_bias=self.use_bias,
            kernel_init=self.kernel_init,
            bias_init=self.bias_init,
            precision=self.precision,
            name="DeepSetMLP_0",  # the auto-name NetKet's compact wrapper gets
        )

    def phi(self, x_i: jax.Array) -> jax.Array:
        """φ: (..., D) -> (..., F_φ)."""
        return self.block.phi(x_i)

    def rho(self, s: jax.Array) -> jax.Array:
        """ρ including the final width-1 layer: (..., F_φ) -> (...)."""
        return jnp.squeeze(self.block.rho(s), axis=-1)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.n_dims is not None:
            x = unflatten_particles(x, self.n_dims)
        return jnp.squeeze(self.block(x), axis=-1)


def unflatten_particles(x: jax.Array, n_dims: int) -> jax.Array:
    """(..., N*D) -> (..., N, D), particle-major."""
    if x.ndim < 1 or x.shape[-1] % n_dims:
        raise ValueError(f"expected flat coordinates (..., N*{n_dims}), got shape {x.shape}")
    return jnp.reshape(x, (*x.shape[:-1], x.shape[-1] // n_dims, n_dims))


def _with_layer_count(features: int | Sequence[int], n_layers: int, name: str, last: int | None):
    """Broadcast an int to `n_layers` widths (the last one `last` if given); check lengths."""
    if isinstance(features, int):
        if last is None:
            features = [features] * n_layers
        else:
            features = [features] * (n_layers - 1) + [last]
    features = tuple(features)
    if len(features) != n_layers:
        raise ValueError(
            f"The number of {name} layers ({n_layers}) does not match "
            f"the length of the features list ({len(features)})."
        )
    return features


class DeepSetRelDistance(nn.Module):
    """NetKet's `models.DeepSetRelDistance` for N particles in a periodic box `extent`.

    Input: flat coordinates x (..., N*D), D = len(extent) (as in NetKet). For pairs i<j
    (row-major), d_ij = (L/2)·sin(π (x_i - x_j)/L) per component and y_ij = (d_ij/L)²;
    log ψ = DeepSetMLP(y) + cusp, cusp = -½ Σ_{i<j} b / ‖d_ij‖^k when `cusp_exponent = k` ≥ 1,
    and the logarithmic cusp b Σ_{i<j} log ‖d_ij‖ (ψ ∝ r^b at contact, the behaviour under a 1/r²
    potential; NetKet has no k = 0) when `cusp_exponent = 0`.
    Output: (...). Invariant under permutations and shifts of a particle by L per component.

    Fields as NetKet's, with `extent` (box side lengths, all > 0) in place of `hilbert`.
    An int `features_rho` becomes (f, …, f, 1); a tuple must end in 1; the inner
    DeepSetMLP appends one more width-1 layer. Params: `cusp` (1,) (always present, used
    only with `cusp_exponent`), `deepset/DeepSetMLP_0/ds_{phi,rho}/Dense_k/{kernel,bias}`.

    Halves: `method="pair_features"` (..., N*D) -> (..., P, D); `method="phi"` on one
    pair feature (..., D) -> (..., F_φ); `method="rho"` (..., F_φ) -> (...) (no cusp).
    """

    extent: tuple[float, ...]
    layers_phi: int
    layers_rho: int
    features_phi: tuple[int, ...] | int
    features_rho: tuple[int, ...] | int
    cusp_exponent: int | None = None
    param_dtype: Any = jnp.float64
    activation: Callable | None = gelu
    output_activation: Callable | None = None
    pooling: Callable = jnp.sum
    use_bias: bool = True
    kernel_init: Any = lecun_normal()
    bias_init: Any = zeros
    params_init: Any = ones

    def setup(self):
        if not self.extent or not all(0 < float(e) < math.inf for e in self.extent):
            raise ValueError(
                "DeepSetRelDistance needs a periodic box: every extent must be finite and "
                f"> 0, got {self.extent}"
            )
        features_phi = _with_layer_count(self.features_phi, self.layers_phi, "phi", None)
        features_rho = _with_layer_count(self.features_rho, self.layers_rho, "rho", 1)
        if features_rho[-1] != 1:
            raise ValueError(f"the last rho layer must have 1 feature, got {features_rho}")
        self.deepset = DeepSetMLP(
            features_phi,
            features_rho,
            param_dtype=self.param_dtype,
            hidden_activation=self.activation,
            output_activation=self.output_activation,
            pooling=self.pooling,
            use_bias=self.use_bias,
            kernel_init=self.kernel_init,
            bias_init=self.bias_init,
        )
        self.cusp = self.param("cusp", self.params_init, (1,), self.param_dtype)

    def _box(self, ndim: int) -> jax.Array:
        """Side lengths shaped (1, ..., 1, D) for rank-`ndim` arrays (no rank promotion)."""
        box = jnp.asarray([float(e) for e in self.extent])
        return jnp.reshape(box, (1,) * (ndim - 1) + (box.size,))

    def pair_displacements(self, x: jax.Array) -> jax.Array:
        """d_ij = (L/2) sin(π (x_i - x_j)/L), pairs i<j row-major: (..., N*D) -> (..., P, D)."""
        xs = unflatten_particles(x, len(self.extent))
        i, j = np.triu_indices(xs.shape[-2], 1)
        r = xs[..., i, :] - xs[..., j, :]
        box = self._box(r.ndim)
        return box / 2.0 * jnp.sin(jnp.pi * r / box)

    def pair_features(self, x: jax.Array) -> jax.Array:
        """y_ij = (d_ij / L)²: (..., N*D) -> (..., P, D), the input of φ."""
        d = self.pair_displacements(x)
        return (d / self._box(d.ndim)) ** 2

    def phi(self, y: jax.Array) -> jax.Array:
        """φ on pair features: (..., D) -> (..., F_φ)."""
        return self.deepset.phi(y)

    def rho(self, s: jax.Array) -> jax.Array:
        """ρ on pooled pair features: (..., F_φ) -> (...); the cusp is not included."""
        return self.deepset.rho(s)

    def __call__(self, x: jax.Array) -> jax.Array:
        d = self.pair_displacements(x)
        y = (d / self._box(d.ndim)) ** 2
        log_psi = self.deepset(y)
        if self.cusp_exponent is None:
            return log_psi
        dist = jnp.linalg.norm(d, axis=-1)
        return log_psi + jnp.sum(cusp_term(self.cusp[0], dist, self.cusp_exponent), axis=-1)


def cusp_term(b, dist, k: int):
    """The pair cusp of log ψ: −½ b/‖d‖^k for k ≥ 1, b log ‖d‖ for k = 0."""
    return b * jnp.log(dist) if k == 0 else -0.5 * b / dist**k


class GaussianEnvelope(nn.Module):
    """log ψ(x) = inner(x) - a Σ_i |x_i|², a = exp(log_a) > 0, on flat x (..., N*n_dims).

    `a_init = 0.5` is the exact ground state of unit-mass particles in a harmonic trap with
    ω = 1 (a = mω/2ħ), so the inner model starts as a correction to it. Params: the inner
    module's tree under `inner`, plus `log_a` (scalar). `method="coefficient"` returns a.
    """

    inner: nn.Module
    n_dims: int
    a_init: float = 0.5
    param_dtype: Any = jnp.float64

    def setup(self):
        if not self.a_init > 0:
            raise ValueError(f"GaussianEnvelope.a_init must be > 0, got {self.a_init}")
        self.log_a = self.param("log_a", constant(math.log(self.a_init)), (), self.param_dtype)

    def coefficient(self) -> jax.Array:
        """a, the envelope's width parameter (scalar)."""
        return jnp.exp(self.log_a)

    def __call__(self, x: jax.Array) -> jax.Array:
        unflatten_particles(x, self.n_dims)  # shape check only
        return self.inner(x) - self.coefficient() * jnp.sum(x * x, axis=-1)
