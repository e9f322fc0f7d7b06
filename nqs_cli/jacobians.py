"""The centred, scaled Jacobian Ō = (O − ⟨O⟩)/√N as a linear map, dense or structured.

SR needs only three things of Ō: the sample-space Gram matrix ŌŌᵀ (N × N), products Ōv
and Ōᵀy. The products come in two forms: on flat parameter vectors (``apply``,
``transpose_apply``) and on the map's own parameter representation (``apply_native``,
``transpose_apply_native``; ``flatten`` turns the latter into the former). Iterative solvers
work in the native form, so that no ravel/unravel (slices and a concatenation) runs inside
their loops: besides saving the copies, XLA's CPU backend has been seen to compile such a
loop into one that reads an uninitialised buffer in some processes (a NaN or garbage
direction in about half of fresh processes, reproducible with jax 0.10.2).

``DenseJacobian`` materialises Ō (N × P). ``RBMJacobian`` never does: for an RBM on
one-hot inputs v with hidden activations t = tanh(θ), the per-sample gradient of the
kernel is the outer product v ⊗ t, so

    (OOᵀ)_ij = (t_i·t_j)(v_i·v_j) + t_i·t_j [hidden bias] + v_i·v_j [visible bias],

which costs N²(H + M) instead of N²·M·H, and Ōᵀy = (V∘y)ᵀT costs one N·M·H product.
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


@struct.dataclass
class DenseJacobian:
    o_bar: jax.Array  # (N, P)

    @property
    def shape(self):
        return self.o_bar.shape

    def gram(self) -> jax.Array:
        return self.o_bar @ self.o_bar.T

    def s_matrix(self) -> jax.Array:
        return self.o_bar.T @ self.o_bar

    def apply(self, v: jax.Array) -> jax.Array:
        return self.o_bar @ v

    def transpose_apply(self, y: jax.Array) -> jax.Array:
        return self.o_bar.T @ y

    apply_native = apply
    transpose_apply_native = transpose_apply

    def flatten(self, native: jax.Array) -> jax.Array:
        return native


def dense_jacobian(log_psi, params, samples: jax.Array, chunk_size: int | None = None) -> DenseJacobian:
    """Per-sample gradients of log ψ, flattened with ravel_pytree, centred and scaled
    (evaluated ``chunk_size`` samples at a time when set)."""

    def row(x):
        return ravel_pytree(jax.grad(log_psi)(params, x))[0]

    jac = jax.vmap(row)(samples) if chunk_size is None else jax.lax.map(row, samples, batch_size=chunk_size)
    n = samples.shape[0]
    o_bar = (jac - jnp.mean(jac, axis=0, keepdims=True)) / jnp.sqrt(jnp.asarray(n, jac.dtype))
    return DenseJacobian(o_bar=o_bar)


@struct.dataclass
class RBMJacobian:
    """Structured Ō of ``RBMMultiVal`` (params {'RBM': {'Dense': {kernel, bias?}, visible_bias?}})."""

    v: jax.Array  # (N, M) one-hot inputs
    t: jax.Array  # (N, H) tanh of the hidden pre-activations
    params: dict  # only for the tree structure and flags
    use_hidden_bias: bool = struct.field(pytree_node=False)
    use_visible_bias: bool = struct.field(pytree_node=False)

    @property
    def shape(self):
        n, m = self.v.shape
        h = self.t.shape[1]
        return (n, m * h + h * self.use_hidden_bias + m * self.use_visible_bias)

    def gram(self) -> jax.Array:
        vv = self.v @ self.v.T
        tt = self.t @ self.t.T
        k = tt * vv
        if self.use_hidden_bias:
            k = k + tt
        if self.use_visible_bias:
            k = k + vv
        return _center_gram(k)

    def _centred(self, y: jax.Array) -> jax.Array:
        n = y.shape[0]
        return (y - jnp.mean(y)) / jnp.sqrt(jnp.asarray(n, y.dtype))

    def transpose_apply_native(self, y: jax.Array) -> dict:
        """Ōᵀy = Oᵀ(y − ȳ)/√N as a parameter tree shaped like ``params``."""
        z = self._centred(y)
        grads = {"Dense": {"kernel": (self.v * z[:, None]).T @ self.t}}
        if self.use_hidden_bias:
            grads["Dense"]["bias"] = self.t.T @ z
        if self.use_visible_bias:
            grads["visible_bias"] = self.v.T @ z
        return {"RBM": grads}

    def apply_native(self, tree: dict) -> jax.Array:
        """Ōv for a parameter tree v shaped like ``params``."""
        inner = tree["RBM"]
        out = jnp.sum((self.v @ inner["Dense"]["kernel"]) * self.t, axis=1)
        if self.use_hidden_bias:
            out = out + self.t @ inner["Dense"]["bias"]
        if self.use_visible_bias:
            out = out + self.v @ inner["visible_bias"]
        return self._centred(out)

    def flatten(self, tree: dict) -> jax.Array:
        return ravel_pytree(tree)[0]

    def transpose_apply(self, y: jax.Array) -> jax.Array:
        """Ōᵀy flattened in ravel_pytree order of ``params``."""
        return self.flatten(self.transpose_apply_native(y))

    def apply(self, vec: jax.Array) -> jax.Array:
        """Ōv for a flat parameter vector v."""
        return self.apply_native(ravel_pytree(self.params)[1](vec))

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
    return RBMJacobian(
        v=v,
        t=jnp.tanh(theta),
        params=params,
        use_hidden_bias=model.use_hidden_bias,
        use_visible_bias=model.use_visible_bias,
    )
