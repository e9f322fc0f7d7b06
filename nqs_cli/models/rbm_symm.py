"""A translation-symmetric ``RBMMultiVal``: one set of hidden features, applied at every
translation of the lattice.

log ψ(x) = Σ_g Σ_f log cosh(Σ_i W[f, i, x_{π_g(i)}] + b_f) + Σ_i a[x_i]

with π_g the site permutation of translation g. Translating x permutes the hidden units
(g → g∘h), so ψ(T_h x) = ψ(x): the state has zero crystal momentum, and it has |G| times
fewer parameters than the plain RBM with the same hidden units. Without structure to
exploit this would be just another network; with it, it *is* an ``RBMMultiVal`` whose kernel
is tied, K[(j, c), (g, f)] = W[f, π_g⁻¹(j), c] (``expand``): the gather-based log ψ, the
O(H)-per-connection local energies and the incremental sampler cache of models/rbm_kernels.py
run unchanged on the expanded parameters; the per-sample gradients in the tied parameters
(the sum over translations of the expanded ones) are formed directly (``gradients``).
Checked against the module and jax.grad in tests/models/test_rbm_symm.py.
"""

from __future__ import annotations

from functools import cached_property, partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from nqs_cli.models import rbm_kernels
from nqs_cli.models.activations import log_cosh, sum_log_cosh
from nqs_cli.models.fast_paths import FastPaths
from nqs_cli.models.rbm import RBMMultiVal, default_init


# The symmetric RBM gets this many times the plain RBM's hidden units by default: it has G
# times fewer parameters at equal hidden units, and with as many it underfits. Measured with
# complex parameters and a reference (300 iterations, final estimate): J1–J2 4×4 at J2 = 0.5,
# 8 / 16 features (factor 4 / 8): 1.26e-2 / 6.2e-3 (8 features after 1000 iterations: 7.2e-3);
# triangular 6×3 with the 120° phase, 8 / 16 / 32 features: 1.65e-2 / 1.18e-2 / ~1.1e-2. With
# the cosh-ratio local energies a step of 16 features costs about what one of 8 did before.
HIDDEN_FACTOR = 8


def n_features(alpha: float, n_sites: int, n_classes: int, n_symmetries: int) -> int:
    """Default features: ceil(HIDDEN_FACTOR · int(alpha · N · C) / G), so that the hidden units
    (features × translations) are HIDDEN_FACTOR times the plain RBM's."""
    return max(1, -(-HIDDEN_FACTOR * int(alpha * n_sites * n_classes) // n_symmetries))


class FrozenArray:
    """A read-only numpy array that a flax module can hold as a field: hashed and compared by
    content (a tuple of tuples would cost one Python object per entry)."""

    def __init__(self, array, dtype=np.float64):
        self.array = np.array(array, dtype=dtype)
        self.array.setflags(write=False)
        self._hash = hash((self.array.shape, self.array.dtype.str, self.array.tobytes()))

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and self.array.shape == other.array.shape and bool(np.all(self.array == other.array))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({' × '.join(map(str, self.array.shape))})"


class Permutations(FrozenArray):
    """(G, N) integer site permutations, π_g(i) = ``array[g, i]``."""

    def __init__(self, array):
        super().__init__(array, dtype=np.int64)

    @cached_property
    def inverse(self) -> np.ndarray:
        """π_g⁻¹ of every row."""
        return np.argsort(self.array, axis=1)


class RBMMultiValSymm(nn.Module):
    """Input: local indices x (..., N); ``permutations``: (G, N) site permutations, π_g(i) as
    ``permutations.array[g, i]`` (a ``Permutations``). Params:
    ``kernel`` (F, N, C), ``hidden_bias`` (F,) if ``use_hidden_bias``, ``visible_bias`` (C,)
    if ``use_visible_bias`` (one per local state, the same on every site). ``phase``: an
    optional fixed (N, C) ``FrozenArray`` of angles, log ψ += i Σ_i phase[i, x_i] (a reference
    phase, not trained; complex parameters only): translating x shifts it by a constant in a
    sector where Σ_i phase[i, x_i] changes so (a spiral at fixed total S^z)."""

    n_classes: int
    permutations: Permutations
    features: int
    param_dtype: Any = jnp.float64
    use_hidden_bias: bool = True
    use_visible_bias: bool = True
    kernel_init: Any = default_init
    hidden_bias_init: Any = default_init
    visible_bias_init: Any = default_init
    phase: FrozenArray | None = None

    @property
    def n_sites(self) -> int:
        return self.permutations.array.shape[1]

    @property
    def n_symmetries(self) -> int:
        return self.permutations.array.shape[0]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        c, f = self.n_classes, self.features
        kernel = self.param("kernel", self.kernel_init, (f, self.n_sites, c), self.param_dtype)
        params = {"kernel": kernel}
        if self.use_hidden_bias:
            params["hidden_bias"] = self.param("hidden_bias", self.hidden_bias_init, (f,), self.param_dtype)
        if self.use_visible_bias:
            params["visible_bias"] = self.param("visible_bias", self.visible_bias_init, (c,), self.param_dtype)
        inner = expand(self, params)["RBM"]
        x_oh = jax.nn.one_hot(x, c, dtype=jnp.finfo(self.param_dtype).dtype)
        x_oh = jnp.reshape(x_oh, (*x.shape[:-1], x.shape[-1] * c))
        th = x_oh @ inner["Dense"]["kernel"]
        if self.use_hidden_bias:
            bias = inner["Dense"]["bias"]
            th = th + bias.reshape((1,) * (th.ndim - 1) + bias.shape)
        out = jnp.sum(log_cosh(th), axis=-1)
        return out + x_oh @ inner["visible_bias"] if "visible_bias" in inner else out


def expanded_model(model: RBMMultiValSymm) -> RBMMultiVal:
    """The plain ``RBMMultiVal`` whose parameters ``expand`` produces (for the kernels)."""
    return RBMMultiVal(n_classes=model.n_classes, alpha=model.n_symmetries * model.features / (model.n_sites * model.n_classes),
                       use_hidden_bias=model.use_hidden_bias, use_visible_bias=model.use_visible_bias or model.phase is not None,
                       param_dtype=model.param_dtype)


def expand(model: RBMMultiValSymm, params) -> dict:
    """The tied parameters as an ``RBMMultiVal`` tree: kernel (N·C, G·F) with
    K[(j, c), (g, f)] = W[f, π_g⁻¹(j), c], hidden bias b_f on every (g, f), visible bias a_c
    on every site, plus i·``phase`` (the fixed reference phase, if any). Affine in ``params``."""
    perms = model.permutations.array
    inverse = model.permutations.inverse  # π_g⁻¹(j)
    w = params["kernel"]  # (F, N, C)
    g, n = perms.shape
    c, f = model.n_classes, model.features
    k = w[:, inverse, :]  # (F, G, N, C): W[f, π_g⁻¹(j), c]
    k = jnp.transpose(k, (2, 3, 1, 0)).reshape(n * c, g * f)
    dense = {"kernel": k}
    if model.use_hidden_bias:
        dense["bias"] = jnp.tile(params["hidden_bias"], g)
    inner = {"Dense": dense}
    if model.use_visible_bias:
        inner["visible_bias"] = jnp.tile(params["visible_bias"], n)
    if model.phase is not None:
        if not jnp.issubdtype(model.param_dtype, jnp.complexfloating):
            raise ValueError("a reference phase needs complex parameters")
        phase = 1j * jnp.asarray(model.phase.array.reshape(n * c))
        inner["visible_bias"] = inner.get("visible_bias", 0) + phase.astype(model.param_dtype)
    return {"RBM": inner}


class _ExpandedIncremental(rbm_kernels.RBMIncremental):
    """The RBM's incremental sampler cache, prepared from the expanded parameters."""

    def __init__(self, model: RBMMultiValSymm):
        super().__init__(expanded_model(model), max_changes=2)
        self.symmetric = model

    def prepare(self, params):
        return super().prepare(expand(self.symmetric, params))


# samples per block of the gradients: the one-hot of every translated configuration is
# (block, G, N, C); blocks keep it near 2^22 values
GRADIENT_BLOCK_VALUES = 1 << 22


def gradients(model: RBMMultiValSymm, params, samples: jax.Array) -> jax.Array:
    """Per-sample ∂ log ψ/∂θ (S, P), flat in ravel_pytree order (hidden_bias, kernel,
    visible_bias), without the expanded kernel's gradient (S × N·C × G·F values) that autodiff
    through ``expand`` would build: with t = tanh θ (G, F) of a sample,

        ∂/∂W[f, i, c] = Σ_g t[g, f] [x_{π_g(i)} = c],  ∂/∂b_f = Σ_g t[g, f],  ∂/∂a_c = #{i: x_i = c}.
    """
    inner = expand(model, params)["RBM"]
    perms = jnp.asarray(model.permutations.array)
    g, c, f = model.n_symmetries, model.n_classes, model.features
    real = jnp.finfo(model.param_dtype).dtype
    dtype = inner["Dense"]["kernel"].dtype

    def one(x):
        v = jax.nn.one_hot(x, c, dtype=real).reshape(-1)
        th = v @ inner["Dense"]["kernel"]
        if model.use_hidden_bias:
            th = th + inner["Dense"]["bias"]
        t = jnp.tanh(th).reshape(g, f)
        moved = jax.nn.one_hot(x[perms], c, dtype=real)  # (G, N, C): x_{π_g(i)}
        parts = {"kernel": jnp.einsum("gf,gnc->fnc", t, moved.astype(dtype))}
        if model.use_hidden_bias:
            parts["hidden_bias"] = jnp.sum(t, axis=0)
        if model.use_visible_bias:
            parts["visible_bias"] = jnp.sum(jax.nn.one_hot(x, c, dtype=real), axis=0).astype(dtype)
        return jnp.concatenate([parts[k].reshape(-1) for k in sorted(parts)])

    block = max(1, GRADIENT_BLOCK_VALUES // (g * model.n_sites * c))
    return jax.lax.map(one, samples, batch_size=min(block, samples.shape[0]))


def fast_paths(model: RBMMultiValSymm, hamiltonian) -> FastPaths:
    """models/rbm_kernels.py's paths on the expanded parameters, and per-sample gradients in
    the tied parameters (``gradients``) for a dense Ō: it has G times fewer columns than the
    plain RBM's, so the plain RBM's structured map buys nothing here."""
    plain = expanded_model(model)
    e_loc = rbm_kernels.local_energy(plain, hamiltonian)

    def log_psi(params, x):
        th, vis = rbm_kernels.theta_and_visible(plain, expand(model, params), x)
        return sum_log_cosh(th) + vis

    return FastPaths(
        log_psi=log_psi,
        local_energy=lambda params, x: e_loc(expand(model, params), x),
        local_energy_block=rbm_kernels.local_energy_block(plain, hamiltonian),
        evaluator=_ExpandedIncremental(model),
        gradients=partial(gradients, model),
    )


__all__ = ["FrozenArray", "Permutations", "RBMMultiValSymm", "expand", "expanded_model", "fast_paths", "gradients", "n_features"]
