"""The structured Jacobian of ``RBMMultiVal``: Ō as a linear map that is never materialised.

For an RBM on one-hot inputs v with hidden activations t = tanh(θ), the per-sample gradient
of the kernel is the outer product v ⊗ t, so

    (OOᵀ)_ij = (t_i·t_j)(v_i·v_j) + t_i·t_j [hidden bias] + v_i·v_j [visible bias],

which costs N²(H + M) instead of N²·M·H, and Ōᵀy = (V∘y)ᵀT costs one N·M·H product
(the biases ride along as a constant column of V and of T, see ``RBMJacobian``). Same
methods as vmc/jacobians.DenseJacobian; checked against it in tests/models/test_rbm_kernels.py.

Complex parameters: log ψ is holomorphic in them and ∂ log ψ/∂W = v ⊗ tanh θ still, with a
complex t; the Gram matrix is ŌŌ† (w·w̄ in place of w·w) and the transpose products use w̄
(u is real). Real parameters take exactly the real code (conjugation of a real array is a no-op).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from jax.flatten_util import ravel_pytree


def _center_gram(k: jax.Array) -> jax.Array:
    """C K C / N with C = 1 − 11ᵀ/N (centring both sides, then the 1/N scale)."""
    n = k.shape[0]
    row = jnp.mean(k, axis=1, keepdims=True)
    col = jnp.mean(k, axis=0, keepdims=True)
    return (k - row - col + jnp.mean(k)) / n


def _abs2(x: jax.Array) -> jax.Array:
    """|x|² elementwise, real (x·x for real x)."""
    return x.real**2 + x.imag**2 if jnp.iscomplexobj(x) else x * x


@struct.dataclass
class RBMJacobian:
    """Structured Ō of ``RBMMultiVal`` (params {'RBM': {'Dense': {kernel, bias?}, visible_bias?}}).

    With u = [v, 1] (the one-hot inputs, plus a constant when there is a hidden bias) and
    w = [t, 1] (the hidden activations, plus a constant when there is a visible bias), every
    parameter's derivative is one entry of the outer product u ⊗ w: the kernel's are v ⊗ t,
    the hidden bias's 1 ⊗ t, the visible bias's v ⊗ 1 (the 1 ⊗ 1 corner is no parameter).
    So the native parameter representation is one (M', H') matrix Θ = [[kernel, a], [b, 0]],
    and Ōv and Ōᵀy are one matrix product each: sum((uΘ)∘w) and (u∘y)ᵀw.
    """

    u: jax.Array  # (N, M') one-hot inputs [, 1]
    w: jax.Array  # (N, H') tanh of the hidden pre-activations [, 1]
    params: dict  # only for the tree structure
    use_hidden_bias: bool = struct.field(pytree_node=False)
    use_visible_bias: bool = struct.field(pytree_node=False)
    cheap_gram = True  # ŌŌᵀ costs N²(M + H)

    @classmethod
    def from_activations(cls, v, t, params, use_hidden_bias: bool, use_visible_bias: bool) -> "RBMJacobian":
        """From one-hot inputs v (N, M) and t = tanh(θ) (N, H)."""
        ones = jnp.ones((v.shape[0], 1), v.dtype)
        u = jnp.concatenate([v, ones], axis=1) if use_hidden_bias else v
        w = jnp.concatenate([t, ones], axis=1) if use_visible_bias else t
        return cls(u=u, w=w, params=params, use_hidden_bias=use_hidden_bias, use_visible_bias=use_visible_bias)

    @property
    def _m(self) -> int:
        return self.u.shape[1] - self.use_hidden_bias

    @property
    def _h(self) -> int:
        return self.w.shape[1] - self.use_visible_bias

    @property
    def shape(self):
        m, h = self._m, self._h
        return (self.u.shape[0], m * h + h * self.use_hidden_bias + m * self.use_visible_bias)

    def _uncentred_gram(self) -> jax.Array:
        """Σ over parameters of O_i O_j = (u_i·u_j)(w_i·w_j) − [corner] 1, without the
        constant corner term (it vanishes under the centring). u holds zeros and ones, so
        u·uᵀ counts agreements: exact in float32, whose product is ~1.5× faster."""
        agree = self.u.astype(jnp.float32) @ self.u.astype(jnp.float32).T
        return agree.astype(self.w.dtype) * (self.w @ self.w.conj().T)

    def gram(self) -> jax.Array:
        return _center_gram(self._uncentred_gram())

    def gram_matvec(self):
        """y ↦ ŌŌᵀy, with the uncentred N × N matrix formed once and the centring applied to
        the vectors (O(N) per product) instead of to the matrix (three O(N²) passes)."""
        k = self._uncentred_gram()
        return lambda y: self._centred(k @ self._centred(y))  # C K C y / N, C = 1 − 11ᵀ/N

    def _centred(self, y: jax.Array) -> jax.Array:
        n = y.shape[0]
        return (y - jnp.mean(y)) / jnp.sqrt(jnp.asarray(n, y.real.dtype))

    def _without_corner(self, theta: jax.Array) -> jax.Array:
        if self.use_hidden_bias and self.use_visible_bias:
            return theta.at[-1, -1].set(0.0)
        return theta

    def transpose_apply_native(self, y: jax.Array) -> jax.Array:
        """Ō†y = O†(y − ȳ)/√N as the (M', H') matrix Θ."""
        return self._without_corner((self.u * self._centred(y)[:, None]).T @ self.w.conj())

    def apply_native(self, theta: jax.Array) -> jax.Array:
        """Ōv for v given as the (M', H') matrix Θ."""
        return self._centred(jnp.sum((self.u @ self._without_corner(theta)) * self.w, axis=1))

    def flatten(self, theta: jax.Array) -> jax.Array:
        """Θ → the flat vector in ravel_pytree order of ``params``."""
        m, h = self._m, self._h
        dense = {"kernel": theta[:m, :h]}
        if self.use_hidden_bias:
            dense["bias"] = theta[m, :h]
        tree = {"Dense": dense}
        if self.use_visible_bias:
            tree["visible_bias"] = theta[:m, h]
        return ravel_pytree({"RBM": tree})[0]

    def native(self, vec: jax.Array) -> jax.Array:
        """The flat vector (ravel_pytree order) → Θ."""
        inner = ravel_pytree(self.params)[1](vec)["RBM"]
        theta = inner["Dense"]["kernel"]
        if self.use_visible_bias:
            theta = jnp.concatenate([theta, inner["visible_bias"][:, None]], axis=1)
        if self.use_hidden_bias:
            bias = inner["Dense"]["bias"]
            if self.use_visible_bias:
                bias = jnp.concatenate([bias, jnp.zeros((1,), bias.dtype)])
            theta = jnp.concatenate([theta, bias[None, :]], axis=0)
        return theta

    def transpose_apply(self, y: jax.Array) -> jax.Array:
        """Ōᵀy flattened in ravel_pytree order of ``params``."""
        return self.flatten(self.transpose_apply_native(y))

    def apply(self, vec: jax.Array) -> jax.Array:
        """Ōv for a flat parameter vector v."""
        return self.apply_native(self.native(vec))

    def trace_s(self) -> jax.Array:
        """Tr S = mean_i |O_i|² − |mean O|² with O_i = u_i ⊗ w_i (the corner term cancels)."""
        n = self.u.shape[0]
        row = jnp.sum(self.u * self.u, axis=1) * jnp.sum(_abs2(self.w), axis=1)
        mean = (self.u.T @ self.w) / n
        return jnp.mean(row) - jnp.sum(_abs2(mean))

    def s_matrix(self) -> jax.Array:
        raise NotImplementedError("the parameter-space S matrix of an RBM is dense: use DenseJacobian")


def rbm_jacobian(model, params, samples: jax.Array) -> RBMJacobian:
    """Structured Jacobian of an ``RBMMultiVal`` with log_cosh activation at integer samples (N, L)."""
    dtype = jnp.finfo(model.param_dtype).dtype
    v = jax.nn.one_hot(samples, model.n_classes, dtype=dtype).reshape((samples.shape[0], -1))
    inner = params["RBM"]
    theta = v @ inner["Dense"]["kernel"]
    if model.use_hidden_bias:
        theta = theta + inner["Dense"]["bias"][None, :]
    return RBMJacobian.from_activations(v, jnp.tanh(theta), params, model.use_hidden_bias, model.use_visible_bias)
