"""Fast pure-function evaluation of ``RBMMultiVal`` on local indices.

The flax module one-hots its input and multiplies by the (N·C, H) kernel: O(N·C·H). The
same θ = b + Σ_s W[s·C + x_s] is a gather of N rows: O(N·H). A connected configuration of
a bond Hamiltonian changes two sites, so its θ' = θ + (W[i·C+a'] − W[i·C+x_i]) + (same
for j): O(H), and the local energy needs no full forward pass per connected element.
Both are checked against the module (tests/models/test_rbm_kernels.py).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from nqs_cli.models.activations import sum_log_cosh, sum_log_grouped
from nqs_cli.models.fast_paths import FastPaths
from nqs_cli.models.rbm_jacobian import rbm_jacobian


def _kernel_rows(model, params, x):
    """(W rows of the occupied one-hot entries (N, H), flat one-hot indices (N,))."""
    inner = params["RBM"]
    idx = jnp.arange(x.shape[-1]) * model.n_classes + x
    return inner["Dense"]["kernel"][idx], idx


def visible_term(model, params, flat_index: jax.Array) -> jax.Array:
    if not model.use_visible_bias:
        return jnp.zeros(flat_index.shape, params["RBM"]["Dense"]["kernel"].dtype)
    return params["RBM"]["visible_bias"][flat_index]


def theta_and_visible(model, params, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Hidden pre-activations θ (H,) and the visible-bias term (scalar) of one configuration
    of local indices x (N,), from one gather of kernel rows."""
    rows, idx = _kernel_rows(model, params, x)
    th = jnp.sum(rows, axis=0)
    if model.use_hidden_bias:
        th = th + params["RBM"]["Dense"]["bias"]
    return th, jnp.sum(visible_term(model, params, idx))


def theta(model, params, x: jax.Array) -> jax.Array:
    """Hidden pre-activations θ (H,) of one configuration of local indices x (N,)."""
    return theta_and_visible(model, params, x)[0]


def log_psi(model, params, x: jax.Array) -> jax.Array:
    """log ψ(x) of ``RBMMultiVal`` by gathers (same value as ``model.apply``)."""
    th, vis = theta_and_visible(model, params, x)
    return sum_log_cosh(th) + vis


def delta_tables(model, params):
    """Change of θ (L, C, C, H) and of the visible term (L, C, C) when site s goes a → a'."""
    inner = params["RBM"]
    kernel = inner["Dense"]["kernel"]
    c = model.n_classes
    w = kernel.reshape(-1, c, kernel.shape[-1])  # (L, C, H), site-major one-hot rows
    d_theta = w[:, None, :, :] - w[:, :, None, :]
    if model.use_visible_bias:
        a = inner["visible_bias"].reshape(-1, c)
        d_vis = a[:, None, :] - a[:, :, None]
    else:
        d_vis = jnp.zeros(d_theta.shape[:3], kernel.dtype)
    return d_theta, d_vis


# The local energy's largest intermediate holds the shifted θ of every connected element,
# (samples × K × H) values. XLA's CPU backend runs that fused loop several times faster
# over blocks of samples (a scan over blocks) than over all samples at once. Measured
# (2-core CPU, ms, blocks of 2^16 .. 2^21 values; a block of more than N samples is all N
# at once):
#   Bose-Hubbard L=8 (K·H = 544, 1008 samples):   3.9  3.2  3.1  3.0  5.2  5.1
#   spin-1 L=10 (K·H = 1260, 1008 samples):        9.0  7.3  6.5  7.1 11.9 11.4
#   Bose-Hubbard L=32 (K·H = 16640, 4096 samples): 472  315  319  330  377  370 (all at once: 1400)
LOCAL_ENERGY_BLOCK_VALUES = 1 << 18


def local_energy_block(model, hamiltonian) -> int:
    """Samples per block of local-energy evaluation (see LOCAL_ENERGY_BLOCK_VALUES)."""
    hidden = int(model.alpha * hamiltonian.n_sites * model.n_classes)
    return max(1, LOCAL_ENERGY_BLOCK_VALUES // (hamiltonian.max_conn * hidden))


# Complex θ: log cosh costs a complex exp and a complex log per value. The local energy needs
# only the ratios cosh(θ + δ)/cosh θ = cosh δ + tanh θ · sinh δ: tanh θ once per sample,
# cosh δ and sinh δ from per-parameter tables of one site's change (two sites combine by the
# addition theorems), and one complex log per group of this many factors. A factor is at most
# e^{|Re δ|}(1 + |tanh θ|): 16 of them stay far inside float64's range.
_RATIO_GROUP = 16


def local_energy(model, hamiltonian):
    """E_loc(x) = Σ_k H_{x,x'_k} ψ(x'_k)/ψ(x) with O(H) updates of θ per connected element
    (complex parameters: the cosh ratios above, with no transcendental per connected element
    and hidden unit).

    The per-site change tables depend on the parameters only, so under ``vmap`` over
    samples they are built once per evaluation, not once per sample.
    """

    def e_loc(params, x):
        d_theta, d_vis = delta_tables(model, params)
        sites, new, mels = hamiltonian.get_conn_changes(x)  # (K, 2), (K, 2), (K,)
        old = x[sites]
        first, second = (sites[:, 0], old[:, 0], new[:, 0]), (sites[:, 1], old[:, 1], new[:, 1])
        th = theta(model, params, x)
        if jnp.iscomplexobj(d_theta):
            ch, sh = jnp.cosh(d_theta), jnp.sinh(d_theta)
            c1, s1, c2, s2 = ch[first], sh[first], ch[second], sh[second]  # (K, H) each
            factors = c1 * c2 + s1 * s2 + jnp.tanh(th)[None, :] * (s1 * c2 + c1 * s2)
            return jnp.sum(mels * jnp.exp(sum_log_grouped(factors, _RATIO_GROUP) + d_vis[first] + d_vis[second]))
        shift = d_theta[first] + d_theta[second]  # (K, H)
        d_log = sum_log_cosh(th[None, :] + shift) - sum_log_cosh(th)
        d_log = d_log + d_vis[first] + d_vis[second]
        return jnp.sum(mels * jnp.exp(d_log))

    return e_loc


class RBMIncremental:
    """Sampler amplitude evaluator: keeps (θ, visible term) per chain and updates them in
    O(H) for moves that change at most ``max_changes`` sites (hops, exchanges, local moves).
    """

    def __init__(self, model, max_changes: int = 2):
        self.model = model
        self.max_changes = max_changes

    def prepare(self, params):
        return params, *delta_tables(self.model, params)

    def init(self, ctx, x):
        th, vis = theta_and_visible(self.model, ctx[0], x)
        return sum_log_cosh(th) + vis, (th, vis)

    def update(self, ctx, cache, x, x_new):
        changed = x_new != x
        (sites,) = jnp.nonzero(changed, size=self.max_changes, fill_value=0)
        valid = jnp.arange(self.max_changes) < jnp.sum(changed)  # the padding repeats site 0
        return self._shift(ctx, cache, x, x_new, sites, valid)

    def update_sites(self, ctx, cache, x, x_new, sites):
        """``update`` when the move can only have changed ``sites``: an unchanged site has a
        zero entry in the change tables (a → a), so no search for the changed ones."""
        return self._shift(ctx, cache, x, x_new, sites, jnp.ones(sites.shape, bool))

    def _shift(self, ctx, cache, x, x_new, sites, weights):
        _, d_theta, d_vis = ctx
        th, vis = cache
        weights = weights.astype(th.dtype)
        old, new = x[sites], x_new[sites]
        th = th + jnp.sum(weights[:, None] * d_theta[sites, old, new], axis=0)
        vis = vis + jnp.sum(weights * d_vis[sites, old, new])
        return sum_log_cosh(th) + vis, (th, vis)


def fast_paths(model, hamiltonian) -> FastPaths:
    """The RBM's gather-based log ψ, O(H)-per-connection local energies on ``hamiltonian``
    (a bond Hamiltonian: ``get_conn_changes``, ``max_conn``, ``n_sites``), the incremental
    sampler cache and the structured Jacobian."""
    return FastPaths(
        log_psi=partial(log_psi, model),
        local_energy=local_energy(model, hamiltonian),
        local_energy_block=local_energy_block(model, hamiltonian),
        evaluator=RBMIncremental(model, max_changes=2),
        jacobian=partial(rbm_jacobian, model),
    )


__all__ = ["theta", "log_psi", "local_energy", "local_energy_block", "delta_tables", "RBMIncremental", "fast_paths"]
