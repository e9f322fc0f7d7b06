"""Particles in continuous space: the space, potentials and the local energy.

Units: ħ = 1 and H = −1/(2m) Σ_i ∇_i² + ½ m ω² Σ_i |x_i|² + Σ_{i<j} v(|x_i − x_j|).
Configurations are flat (N*D,) arrays, particle-major (x[i*D + a] is component a of
particle i). In a periodic box positions live in [0, L) and pair distances use the
minimum image.

Pair potentials (``[hamiltonian.pair] kind``):
- ``gaussian``: g·exp(−r²/2σ²);
- ``lennard-jones``: 4ε[(σ/r)¹² − (σ/r)⁶];
- ``aziz``: HFDHE2 helium–helium potential (Aziz et al., J. Chem. Phys. 70, 4330 (1979))
  in KELVIN with r in ÅNGSTRÖM. With ħ = 1 the kinetic prefactor is ħ²/2m, so for ⁴He
  (ħ²/m = 12.1194 K·Å²) set ``space.mass = 1/12.1194 = 0.0825123``; energies then come out
  in kelvin.
Cut-off: in a box the default is half the smallest side (the largest radius for which the
minimum image is unambiguous); open space has none; ``pair.cutoff`` overrides both. The
potential is truncated, NOT shifted: v(r) for r < r_c, 0 beyond (no tail correction).

Kinetic energy: E_loc = −1/(2m) [∇² log ψ + |∇ log ψ|²] + V(x). Two paths:
- ``generic_derivatives``: forward-over-reverse Hessian trace (what ``jax.hessian`` does),
  for any log ψ; cost O((N*D)² · cost of one particle's φ);
- ``deepset_derivatives``: exploits log ψ = ρ(Σ_u h(u)) over units u (particles, or pairs
  of particles): per unit one D-direction forward-over-forward pass, one F×F Hessian of ρ;
  cost O(N · D) unit passes (O(N²) pair passes for DeepSetRelDistance). See its docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from nqs_cli.config import Config

# --------------------------------------------------------------------------- space


@dataclass(frozen=True)
class ParticleSpace:
    """N particles in D dimensions: open space (extent None) or a periodic box.

    ``extent``: side lengths (D,), all > 0, or None / all 0.0 for open space.
    ``trap_omega`` only sets the width 1/√(mω) of random open-space states.
    """

    n_particles: int
    dims: int
    extent: tuple[float, ...] | None = None
    mass: float = 1.0
    trap_omega: float = 1.0

    def __post_init__(self):
        if self.extent is not None:
            ext = tuple(float(e) for e in self.extent)
            if len(ext) != self.dims:
                raise ValueError(f"extent needs {self.dims} side lengths, got {ext}")
            if all(e == 0.0 for e in ext):
                ext = None
            elif not all(e > 0.0 for e in ext):
                raise ValueError(f"extent: all sides > 0 (a box) or all 0 (open space), got {ext}")
            object.__setattr__(self, "extent", ext)
        if not self.mass > 0:
            raise ValueError(f"mass must be > 0, got {self.mass}")

    @property
    def n_dof(self) -> int:
        return self.n_particles * self.dims

    @property
    def periodic(self) -> bool:
        return self.extent is not None

    @property
    def coordinate_extent(self) -> tuple[float, ...] | None:
        """Box length of every flat coordinate (N*D,), or None in open space."""
        return None if self.extent is None else self.extent * self.n_particles

    def random_state(self, key) -> jax.Array:
        """(N*D,) float: uniform in the box, or N(0, 1/(mω)) per coordinate in open space."""
        if self.periodic:
            box = jnp.asarray(self.coordinate_extent)
            return jax.random.uniform(key, (self.n_dof,), dtype=box.dtype) * box
        width = 1.0 / math.sqrt(self.mass * self.trap_omega) if self.trap_omega > 0 else 1.0
        return width * jax.random.normal(key, (self.n_dof,))


# --------------------------------------------------------------------------- potentials


def gaussian_pair(g: float, sigma: float) -> Callable:
    return lambda r: g * jnp.exp(-(r * r) / (2.0 * sigma * sigma))


def lennard_jones(epsilon: float, sigma: float) -> Callable:
    def v(r):
        s6 = (sigma / r) ** 6
        return 4.0 * epsilon * (s6 * s6 - s6)

    return v


# HFDHE2 (Aziz, Nain, Carley, Taylor, McConville 1979): ε/k_B in K, r_m in Å.
AZIZ_HFDHE2 = dict(epsilon=10.8, r_m=2.9673, A=0.5448504e6, alpha=13.353384, c6=1.3732412, c8=0.4253785, c10=0.1781, D=1.241314)


def aziz(epsilon=10.8, r_m=2.9673, A=0.5448504e6, alpha=13.353384, c6=1.3732412, c8=0.4253785, c10=0.1781, D=1.241314) -> Callable:
    """V(r) = ε [A e^{−αx} − F(x) Σ_n c_n/x^n], x = r/r_m, F = exp(−(D/x − 1)²) for x < D."""

    def v(r):
        x = r / r_m
        x2 = x * x
        x6 = x2 * x2 * x2
        damping = jnp.where(x < D, jnp.exp(-((D / x - 1.0) ** 2)), 1.0)
        dispersion = (c6 + (c8 + c10 / x2) / x2) / x6
        return epsilon * (A * jnp.exp(-alpha * x) - damping * dispersion)

    return v


PAIR_POTENTIALS = {
    "gaussian": lambda p: gaussian_pair(p.g, p.sigma),
    "lennard-jones": lambda p: lennard_jones(p.epsilon, p.sigma),
    "aziz": lambda p: aziz(**AZIZ_HFDHE2),
}


@dataclass(frozen=True, eq=False)
class ContinuousHamiltonian:
    """External trap ½ m ω² Σ|x_i|² plus an optional pair potential v(r), truncated at r_c."""

    space: ParticleSpace
    trap_omega: float = 0.0
    pair: Callable | None = None
    cutoff: float | None = None

    def pair_distances(self, x: jax.Array) -> jax.Array:
        """|r_ij| for pairs i<j (row-major), minimum image in a box: (N*D,) -> (P,)."""
        sp = self.space
        xs = x.reshape(sp.n_particles, sp.dims)
        i, j = np.triu_indices(sp.n_particles, 1)
        r = xs[i] - xs[j]
        if sp.periodic:
            box = jnp.asarray(sp.extent, x.dtype)[None, :]
            r = r - box * jnp.round(r / box)
        return jnp.sqrt(jnp.sum(r * r, axis=-1))

    def potential(self, x: jax.Array) -> jax.Array:
        """V(x), scalar, for one configuration (N*D,)."""
        v = jnp.zeros((), x.dtype)
        if self.trap_omega > 0:
            v = v + 0.5 * self.space.mass * self.trap_omega**2 * jnp.sum(x * x)
        if self.pair is not None and self.space.n_particles > 1:
            r = self.pair_distances(x)
            vr = self.pair(r)
            if self.cutoff is not None:
                vr = jnp.where(r < self.cutoff, vr, 0.0)
            v = v + jnp.sum(vr)
        return v


def default_cutoff(space: ParticleSpace, pair_cfg) -> float | None:
    if pair_cfg.cutoff is not None:
        return pair_cfg.cutoff
    return min(space.extent) / 2.0 if space.periodic else None


# --------------------------------------------------------------------------- derivatives


def generic_derivatives(log_psi: Callable, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(∇ log ψ (N*D,), ∇² log ψ) by forward-over-reverse: trace of jacfwd(grad), as jax.hessian."""
    grad, hvp = jax.linearize(jax.grad(log_psi), x)
    hess = jax.vmap(hvp)(jnp.eye(x.shape[0], dtype=x.dtype))
    return grad, jnp.trace(hess)


def deepset_derivatives(h: Callable, rho: Callable, units: jax.Array, n_particles: int, pairs=None):
    """(∇ log ψ (N*D,), ∇² log ψ) for log ψ = ρ(s), s = Σ_u h(u_u).

    units: (U, D) — particle coordinates (pairs None) or pair displacements r_ij = x_i − x_j
    with pairs = (i, j) index arrays (U,). h: (D,) -> (F,); ρ: (F,) -> scalar.
    With J_u = ∂h/∂u (D, F) and G_ia = ∂s/∂x_ia = Σ_u ±J_u[a] (+ for i, − for j):
      ∂_ia log ψ = ∇ρ · G_ia,   ∇² log ψ = Σ_ia G_iaᵀ H_ρ G_ia + ∇ρ · Σ_ia ∂²s/∂x_ia²,
    and Σ_ia ∂²s/∂x_ia² = c Σ_u Δh(u_u), c = 1 for particles, 2 for pairs (sign² = 1).
    """
    d = units.shape[-1]
    basis = jnp.eye(d, dtype=units.dtype)

    def along(u, v):
        # jvp of (h, ∂_v h): primal (h, ∂_v h), tangent (∂_v h, ∂²_v h)
        (val, d1), (_, d2) = jax.jvp(lambda y: jax.jvp(h, (y,), (v,)), (u,), (v,))
        return val, d1, d2

    def unit(u):
        val, d1, d2 = jax.vmap(along, (None, 0))(u, basis)
        return val[0], d1, jnp.sum(d2, axis=0)

    vals, jac, lap_h = jax.vmap(unit)(units)  # (U, F), (U, D, F), (U, F)
    s = jnp.sum(vals, axis=0)
    if pairs is None:
        g = jac
        weight = 1.0
    else:
        i, j = pairs
        g = jnp.zeros((n_particles, *jac.shape[1:]), jac.dtype).at[i].add(jac).at[j].add(-jac)
        weight = 2.0
    grad_rho = jax.grad(rho)(s)
    grad = jnp.einsum("naf,f->na", g, grad_rho).reshape(-1)
    directions = g.reshape(-1, g.shape[-1])  # (N·D, F)
    if directions.shape[0] < directions.shape[1]:
        # Σ_ia G_iaᵀ H_ρ G_ia as second derivatives of ρ along the N·D directions G_ia
        # (forward over forward), cheaper than the F × F Hessian when N·D < F
        along_g = lambda v: jax.jvp(lambda y: jax.jvp(rho, (y,), (v,))[1], (s,), (v,))[1]  # noqa: E731
        curvature = jnp.sum(jax.vmap(along_g)(directions))
    else:
        curvature = jnp.einsum("nf,fk,nk->", directions, jax.hessian(rho)(s), directions)
    lap = curvature + weight * jnp.dot(grad_rho, jnp.sum(lap_h, axis=0))
    return grad, lap


def deepsets_fast(model) -> Callable:
    """(params, x) -> (∇, ∇²) of log ψ for DeepSetMLP (flat input), optionally × GaussianEnvelope.

    The envelope −a|x_i|² rides along as one extra per-particle feature that ρ adds linearly.
    """
    from nqs_cli.models import GaussianEnvelope

    enveloped = isinstance(model, GaussianEnvelope)
    inner = model.inner if enveloped else model
    n_dims = inner.n_dims

    def derivatives(params, x):
        p_inner = params["inner"] if enveloped else params
        phi = lambda u: inner.apply({"params": p_inner}, u, method="phi")  # noqa: E731
        rho = lambda s: inner.apply({"params": p_inner}, s, method="rho")  # noqa: E731
        units = x.reshape(-1, n_dims)
        if not enveloped:
            return deepset_derivatives(phi, rho, units, units.shape[0])
        a = jnp.exp(params["log_a"])
        h = lambda u: jnp.concatenate([phi(u), -a * jnp.sum(u * u, keepdims=True)])  # noqa: E731
        rho_env = lambda s: rho(s[:-1]) + s[-1]  # noqa: E731
        return deepset_derivatives(h, rho_env, units, units.shape[0])

    return derivatives


def reldist_fast(model) -> Callable:
    """(params, x) -> (∇, ∇²) of log ψ for DeepSetRelDistance: pair units r_ij = x_i − x_j.

    Per pair h(r) = [φ(y(r)), cusp(r)], y = (sin(πr/L)/2)², cusp = −½ b/‖d‖^k with
    d = (L/2) sin(πr/L); ρ adds the cusp feature linearly.
    """
    box = tuple(float(e) for e in model.extent)
    n_dims = len(box)
    k = model.cusp_exponent

    def derivatives(params, x):
        xs = x.reshape(-1, n_dims)
        n = xs.shape[0]
        i, j = np.triu_indices(n, 1)
        L = jnp.asarray(box, x.dtype)
        phi = lambda y: model.apply({"params": params}, y, method="phi")  # noqa: E731
        rho = lambda s: model.apply({"params": params}, s, method="rho")  # noqa: E731

        def h(r):
            dist = L / 2.0 * jnp.sin(jnp.pi * r / L)
            feats = phi((dist / L) ** 2)
            if k is None:
                return feats
            norm = jnp.sqrt(jnp.sum(dist * dist, keepdims=True))
            return jnp.concatenate([feats, -0.5 * params["cusp"] / norm**k])

        rho_c = rho if k is None else (lambda s: rho(s[:-1]) + s[-1])
        return deepset_derivatives(h, rho_c, xs[i] - xs[j], n, pairs=(i, j))

    return derivatives


FAST_PATHS = {"deepsets": deepsets_fast, "deepsets-reldist": reldist_fast}


def local_energy_factory(hamiltonian: ContinuousHamiltonian, derivatives: Callable | None = None) -> Callable:
    """(log_psi) -> (params, x) -> E_loc(x). ``derivatives(params, x) -> (∇, ∇²)`` is the fast
    path (it ignores log_psi); None uses ``generic_derivatives`` on log_psi."""
    inv_2m = 0.5 / hamiltonian.space.mass

    def factory(log_psi):
        def local_energy(params, x):
            if derivatives is None:
                grad, lap = generic_derivatives(lambda y: log_psi(params, y), x)
            else:
                grad, lap = derivatives(params, x)
            return -inv_2m * (lap + jnp.dot(grad, grad)) + hamiltonian.potential(x)

        return local_energy

    return factory


# --------------------------------------------------------------------------- building


def build_space(cfg: Config) -> ParticleSpace:
    s = cfg.space
    extent = s.extent if isinstance(s.extent, tuple) else (s.extent,) * s.dims
    return ParticleSpace(s.n_particles, s.dims, extent, s.mass, cfg.hamiltonian.trap_omega)


def build_hamiltonian(cfg: Config, space: ParticleSpace) -> ContinuousHamiltonian:
    pair_cfg = cfg.hamiltonian.pair
    if pair_cfg is None:
        return ContinuousHamiltonian(space, cfg.hamiltonian.trap_omega)
    pair = PAIR_POTENTIALS[pair_cfg.kind](pair_cfg)
    return ContinuousHamiltonian(space, cfg.hamiltonian.trap_omega, pair, default_cutoff(space, pair_cfg))


def _param_dtype(cfg: Config):
    return jnp.float32 if cfg.dtype == "float32" else getattr(jnp, cfg.model.param_dtype)


def build_deepsets(cfg: Config, space: ParticleSpace):
    from nqs_cli.models import DeepSetMLP, GaussianEnvelope, activation_by_name

    m = cfg.model
    dtype = _param_dtype(cfg)
    net = DeepSetMLP(
        features_phi=m.features_phi,
        features_rho=m.features_rho,
        param_dtype=dtype,
        hidden_activation=activation_by_name(m.activation),
        output_activation=activation_by_name(m.output_activation),
        use_bias=m.use_bias,
        n_dims=space.dims,
    )
    if m.envelope == "none":
        return net
    omega = cfg.hamiltonian.trap_omega if cfg.hamiltonian.trap_omega > 0 else 1.0
    return GaussianEnvelope(inner=net, n_dims=space.dims, a_init=0.5 * space.mass * omega, param_dtype=dtype)


def build_reldist(cfg: Config, space: ParticleSpace):
    from nqs_cli.models import DeepSetRelDistance, activation_by_name

    m = cfg.model
    return DeepSetRelDistance(
        extent=space.extent,
        layers_phi=m.layers_phi,
        layers_rho=m.layers_rho,
        features_phi=m.features_phi,
        features_rho=m.features_rho,
        cusp_exponent=m.cusp_exponent,
        param_dtype=_param_dtype(cfg),
        activation=activation_by_name(m.activation),
        output_activation=activation_by_name(m.output_activation),
        use_bias=m.use_bias,
    )


MODELS = {"deepsets": build_deepsets, "deepsets-reldist": build_reldist}


def describe(cfg: Config, ham: ContinuousHamiltonian) -> str:
    sp = ham.space
    who = f"{sp.n_particles} boson{'s' if sp.n_particles != 1 else ''}"
    if sp.periodic:
        where = f"a {sp.dims}D periodic box L={'×'.join(f'{e:g}' for e in sp.extent)}"
    else:
        where = f"a {sp.dims}D harmonic trap (ω={ham.trap_omega:g})"
    text = f"{who} in {where}"
    if sp.periodic and ham.trap_omega > 0:
        text += f" with a trap (ω={ham.trap_omega:g})"
    if sp.mass != 1.0:
        text += f", m={sp.mass:g}"
    p = cfg.hamiltonian.pair
    if p is not None:
        params = {"gaussian": f"g={p.g:g} σ={p.sigma:g}", "lennard-jones": f"ε={p.epsilon:g} σ={p.sigma:g}", "aziz": "HFDHE2, K and Å"}[p.kind]
        cut = f", cut-off {ham.cutoff:g}" if ham.cutoff is not None else ""
        text += f", {p.kind} pair {params}{cut}"
    return text


def build_continuous_problem(cfg: Config, fast: bool = True):
    """The Problem for a continuous config; ``fast=False`` uses the generic Hessian Laplacian."""
    from nqs_cli.setup.problem import Problem
    from nqs_cli.vmc.sampler import GaussianRule

    space = build_space(cfg)
    ham = build_hamiltonian(cfg, space)
    model = MODELS[cfg.model.kind](cfg, space)
    rule = GaussianRule(cfg.sampler.sigma, space.coordinate_extent)
    derivatives = FAST_PATHS[cfg.model.kind](model) if fast else None
    return Problem(
        cfg=cfg,
        space=space,
        hamiltonian=ham,
        model=model,
        rule=rule,
        local_energy_factory=local_energy_factory(ham, derivatives),
        description=describe(cfg, ham),
    )


def exact_energy(cfg: Config) -> float | None:
    """Non-interacting bosons: N·D·ω/2 in a trap (open space), 0 in a box without a trap
    (ψ = const); None otherwise."""
    sp, ham = cfg.space, cfg.hamiltonian
    extent = sp.extent if isinstance(sp.extent, tuple) else (sp.extent,)
    free = ham.pair is None or (ham.pair.kind == "gaussian" and ham.pair.g == 0.0)
    if not free:
        return None
    if any(e > 0 for e in extent):
        return 0.0 if ham.trap_omega == 0 else None
    return sp.n_particles * sp.dims * ham.trap_omega / 2.0
