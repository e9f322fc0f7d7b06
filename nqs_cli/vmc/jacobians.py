"""The centred, scaled Jacobian Ō = (O − ⟨O⟩)/√N as a linear map, dense or structured.

SR needs only three things of Ō: the sample-space Gram matrix ŌŌᵀ (N × N), products Ōv
and Ōᵀy. The products come in two forms: on flat parameter vectors (``apply``,
``transpose_apply``) and on the map's own parameter representation (``apply_native``,
``transpose_apply_native``; ``flatten`` turns the latter into the former). Iterative solvers
work in the native form, so that no ravel/unravel (slices and a concatenation) runs inside
their loops: besides saving the copies, XLA's CPU backend has been seen to compile such a
loop into one that reads an uninitialised buffer in some processes (a NaN or garbage
direction in about half of fresh processes, reproducible with jax 0.10.2).

Complex parameters (log ψ holomorphic in them, e.g. an RBM with complex weights): Ō is
complex, O_ik = ∂ log ψ(x_i)/∂θ_k the complex derivative, and every transpose is the
conjugate transpose: Gram ŌŌ†, S = Ō†Ō, Ō†y, Tr S = Σ|Ō|² (vmc/sr.py derives why). For real
Ō the conjugations are no-ops and the products are the real ones, unchanged.

``DenseJacobian`` materialises Ō (N × P). A model may offer a structured map with the same
methods that never does (models/rbm_jacobian.py); ``cheap_gram`` says whether it forms the
N × N Gram matrix for less than N²P (then it also has ``gram_matvec``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from jax.flatten_util import ravel_pytree


def abs2(x: jax.Array) -> jax.Array:
    """|x|² elementwise, real (x² for real x)."""
    return x.real**2 + x.imag**2 if jnp.iscomplexobj(x) else x**2


@struct.dataclass
class DenseJacobian:
    o_bar: jax.Array  # (N, P)
    cheap_gram = False  # ŌŌᵀ costs N²P

    @property
    def shape(self):
        return self.o_bar.shape

    def gram(self) -> jax.Array:
        return self.o_bar @ self.o_bar.conj().T

    def s_matrix(self) -> jax.Array:
        return self.o_bar.conj().T @ self.o_bar

    def apply(self, v: jax.Array) -> jax.Array:
        return self.o_bar @ v

    def trace_s(self) -> jax.Array:
        """Tr S = Σ_k Var(O_k): zero exactly when log ψ no longer depends on the parameters."""
        return jnp.sum(abs2(self.o_bar))

    def transpose_apply(self, y: jax.Array) -> jax.Array:
        return self.o_bar.conj().T @ y

    apply_native = apply
    transpose_apply_native = transpose_apply

    def flatten(self, native: jax.Array) -> jax.Array:
        return native


def dense_jacobian(log_psi, params, samples: jax.Array, chunk_size: int | None = None) -> DenseJacobian:
    """Per-sample gradients of log ψ, flattened with ravel_pytree, centred and scaled
    (evaluated ``chunk_size`` samples at a time when set). Complex parameters: the complex
    derivative of a log ψ holomorphic in them."""
    holomorphic = jnp.iscomplexobj(ravel_pytree(params)[0])

    def row(x):
        return ravel_pytree(jax.grad(log_psi, holomorphic=holomorphic)(params, x))[0]

    jac = jax.vmap(row)(samples) if chunk_size is None else jax.lax.map(row, samples, batch_size=chunk_size)
    return centred(jac)


def centred(jac: jax.Array) -> DenseJacobian:
    """Ō from the per-sample gradients O (N, P): (O − ⟨O⟩)/√N."""
    n = jac.shape[0]
    return DenseJacobian(o_bar=(jac - jnp.mean(jac, axis=0, keepdims=True)) / jnp.sqrt(jnp.asarray(n, jac.dtype)))
