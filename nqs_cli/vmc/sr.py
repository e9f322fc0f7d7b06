"""Energy gradient estimator and stochastic reconfiguration (S-matrix and minSR forms).

Notation (real parameters, real log ψ): O_ik = ∂ log ψ(x_i)/∂θ_k for N samples and P
parameters; Ō = (O − ⟨O⟩)/√N, ε = (E_loc − ⟨E_loc⟩)/√N. The energy gradient is
g = 2 Ōᵀε, the quantum geometric tensor S = ŌᵀŌ, and SR solves (S + λ·1) δ = g. When N < P
the same δ comes from the sample-space (minSR / kernel) form δ = 2 Ōᵀ (ŌŌᵀ + λ·1)⁻¹ ε
(push-through identity), which costs O(N²P) instead of O(P²N + P³) — or less with a
structured Jacobian (see jacobians.py).

Complex parameters θ = a + ib with log ψ holomorphic in θ (the complex RBM): O_ik is the
complex derivative ∂ log ψ(x_i)/∂θ_k, and ε keeps the imaginary part of E_loc. The energy is
a real function of the real coordinates (a, b); since ∂ log ψ/∂a = O and ∂ log ψ/∂b = iO,

    ∂E/∂a + i ∂E/∂b = 2 Re(Ō†ε) + i·2 Re((iŌ)†ε) = 2 Ō†ε,

and the real part of the QGT on (a, b), Re(J†J) with J = [Ō, iŌ], is the real 2P × 2P
representation of the complex Hermitian S = Ō†Ō (blocks [[Re S, −Im S], [Im S, Re S]]),
just as [Re F; Im F] represents F = 2Ō†ε. Complex products map to real ones under this
representation, so the real system (Re(J†J) + λ)(δa, δb) = ∇_(a,b) E is the complex one
(Ō†Ō + λ)δ = 2Ō†ε with δ = δa + iδb, and θ ← θ − ηδ is the real step on (a, b). (This is
NetKet's real-part QGT for non-holomorphic parameters, which for a holomorphic log ψ
reduces to its holomorphic form.) In sample space the same holds for the stacked real map
A = [Re J; Im J] (2N × 2P) with b = [Re ε; Im ε]: S = AᵀA, F = 2Aᵀb; AAᵀ represents the
complex N × N Gram matrix ŌŌ†, so minSR is δ = 2Ō†(ŌŌ† + λ)⁻¹ε. Every form and solver
below therefore runs unchanged on complex arrays, with conjugate transposes (Cholesky of a
Hermitian matrix; JAX's CG takes real parts of inner products, i.e. it is CG on the real
representation). The trust region's |Ōδ|² = δᵀ Re(J†J) δ and Tr S = Σ|Ō|² stay real.
For real parameters every conjugation is a no-op: the real code, unchanged.

``jac`` arguments are Jacobian linear maps (vmc/jacobians.py, or a model's structured one).
Which form and solver to use is decided once per run, from the sizes alone (``plan``).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

# "auto" solver: a direct Cholesky solve for small systems; above this dimension conjugate
# gradients on matrix-vector products (O(dim²) or less per iteration instead of O(dim³)),
# which is several times faster at the reference sizes and gives the same direction.
CHOLESKY_MAX_DIM = 512
# ... except in sample space (minSR, N < P) while N² ≤ MINSR_CHOLESKY_RATIO · P: the N³/3
# factorisation then costs about as many flops as ~100 CG iterations (2NP each) and runs far
# more efficiently. Measured over 300 iterations (2-core CPU, N = 1008): spin-1 L=10 α=2
# (P = 1890, N²/P = 538) Cholesky 21–33 ms vs CG 44–60 ms from step 20 on; Bose-Hubbard
# L=8 α=1 (P = 1088, N²/P = 934) Cholesky 21–25 ms vs CG 7–18 ms. The N × N Gram matrix
# must fit in memory too: at most MINSR_CHOLESKY_MAX_SAMPLES samples.
MINSR_CHOLESKY_RATIO = 720
MINSR_CHOLESKY_MAX_SAMPLES = 8192
# When the Jacobian forms its N × N Gram matrix cheaply (the structured RBM Jacobian:
# N²(M + H) instead of N²P), sample-space conjugate gradients multiply by that matrix, one
# N² product per iteration, instead of by Ō and Ōᵀ. Measured (2-core CPU, tol 1e-5):
# Bose-Hubbard L=8 (N = 1008, P = 1088) 9.2 ms vs 14.4 ms for parameter-space CG on the
# products; spin-1 L=10 (1008, 1890) 14.2 ms vs 20.5 ms for the Cholesky solve; Bose-Hubbard
# L=32 (4096, 33152) 0.74 s vs 1.22 s for the Cholesky solve. (Bose-Hubbard L=8 since the
# centring moved to the vectors and u·uᵀ to float32, RBMJacobian.gram_matvec: 5.2 ms, of
# which 3.0 ms forming the matrix.) Up to this many samples (the matrix takes N² numbers):
GRAM_CG_MAX_SAMPLES = 4096
# CG's iteration count grows as the shift shrinks (the condition number of ŌŌᵀ + λ is about
# λ_max/λ): below this final shift the sample-space Cholesky solve (when it pays, see
# minsr_cholesky_pays) is used instead. Measured late in training (Bose-Hubbard ring L=24,
# N = 2048, P = 9408, shift 0.001, step 600): 1.15 s per iteration with Gram CG, 0.40 s with
# the Cholesky solve on the same Gram matrix (the same direction).
GRAM_CG_MIN_SHIFT = 0.01


def centered_energies(e_loc: jax.Array, dtype) -> jax.Array:
    """ε = (E_loc − ⟨E_loc⟩)/√N in the parameters' dtype: its real part for real parameters,
    complex for complex ones (whose gradient 2Ō†ε needs Im E_loc too)."""
    n = e_loc.shape[0]
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return ((e_loc - jnp.mean(e_loc)) / jnp.sqrt(jnp.asarray(n, jnp.finfo(dtype).dtype))).astype(dtype)
    return ((e_loc - jnp.mean(e_loc)).real / jnp.sqrt(jnp.asarray(n, dtype))).astype(dtype)


def energy_gradient(jac, eps: jax.Array) -> jax.Array:
    """g = 2 Ō†ε: ∂⟨E⟩/∂θ for real parameters, ∂⟨E⟩/∂a + i ∂⟨E⟩/∂b for complex θ = a + ib."""
    return 2.0 * jac.transpose_apply(eps)


def resolve_solver(solver: str, dim: int) -> str:
    if solver == "auto":
        return "cholesky" if dim <= CHOLESKY_MAX_DIM else "cg"
    return solver


def resolve(mode: str, solver: str, n_samples: int, n_params: int, cheap_gram: bool = False, diag_shift: float | None = None) -> tuple[str, str]:
    """(form, solver) for ``mode``/``solver`` = "auto".

    A direct (Cholesky) solve works in the smaller space: sample space (minSR) when
    n_samples < n_params. Conjugate gradients on products with Ō and Ōᵀ cost the same in
    both forms; there the parameter-space form is used, because its residual is measured on
    the update itself and it stops after fewer iterations. With a Jacobian whose Gram
    matrix is cheap (``cheap_gram``) sample-space CG on that matrix is faster than both
    (see GRAM_CG_MAX_SAMPLES), unless the final ``diag_shift`` is small and the Cholesky
    solve pays (GRAM_CG_MIN_SHIFT).
    """
    small = min(n_samples, n_params)
    if mode != "auto":
        return mode, resolve_solver(solver, n_samples if mode == "minsr" else n_params)
    small_shift = diag_shift is not None and diag_shift < GRAM_CG_MIN_SHIFT and minsr_cholesky_pays(n_samples, n_params)
    if solver == "auto" and cheap_gram and CHOLESKY_MAX_DIM < n_samples <= GRAM_CG_MAX_SAMPLES and n_samples < n_params and not small_shift:
        return "minsr", "cg"
    if solver == "auto" and n_samples < n_params and minsr_cholesky_pays(n_samples, n_params):
        return "minsr", "cholesky"
    solver = resolve_solver(solver, small)
    if solver == "cholesky":
        return ("minsr" if n_samples < n_params else "S"), solver
    return "S", solver


def minsr_cholesky_pays(n_samples: int, n_params: int) -> bool:
    """The sample-space Cholesky solve is cheaper than conjugate gradients (see above)."""
    if n_samples <= CHOLESKY_MAX_DIM:
        return True
    return n_samples <= MINSR_CHOLESKY_MAX_SAMPLES and n_samples**2 <= MINSR_CHOLESKY_RATIO * n_params


def resolve_mode(mode: str, n_samples: int, n_params: int, solver: str = "cholesky") -> str:
    return resolve(mode, solver, n_samples, n_params)[0]


def needs_dense_jacobian(mode: str, solver: str, n_samples: int, n_params: int) -> bool:
    """Only the parameter-space Cholesky form needs the P × P matrix, hence a dense Ō.
    (A cheap Gram matrix only adds a sample-space CG choice to ``resolve``: no effect here.)"""
    return resolve(mode, solver, n_samples, n_params) == ("S", "cholesky")


@dataclass(frozen=True)
class SRPlan:
    """How SR is solved, decided once from the sizes: ``form`` "S" | "minsr", ``solver``
    "cholesky" | "cg"; ``dense_jacobian``: a materialised Ō is needed (parameter-space
    Cholesky, or no structured map); ``gram_cg``: CG on the explicit N × N Gram matrix."""

    form: str
    solver: str
    dense_jacobian: bool
    gram_cg: bool


def plan(mode: str, solver: str, n_samples: int, n_params: int, structured: bool, diag_shift: float | None = None) -> SRPlan:
    """The SR plan for ``mode``/``solver`` (possibly "auto"); ``structured``: the model has a
    structured Jacobian whose Gram matrix is cheap (used unless a dense Ō is needed);
    ``diag_shift``: the final shift (a small one favours the direct solve)."""
    dense = needs_dense_jacobian(mode, solver, n_samples, n_params) or not structured
    cheap_gram = not dense and n_samples <= GRAM_CG_MAX_SAMPLES
    form, solver = resolve(mode, solver, n_samples, n_params, cheap_gram, diag_shift)
    return SRPlan(form=form, solver=solver, dense_jacobian=dense, gram_cg=form == "minsr" and solver == "cg" and cheap_gram)


def solve(sr_plan: SRPlan, jac, eps: jax.Array, diag_shift, tol: float) -> jax.Array:
    """δ = (Ō†Ō + λ)⁻¹ 2Ō†ε in the planned form; ``tol``: CG's relative residual."""
    if sr_plan.form == "minsr":
        if sr_plan.gram_cg:
            gram_matvec = jac.gram_matvec()
            x = _cg(lambda v: gram_matvec(v) + diag_shift * v, eps, tol)
        elif sr_plan.solver == "cg":
            x = _cg(lambda v: jac.apply_native(jac.transpose_apply_native(v)) + diag_shift * v, eps, tol)
        else:
            x = _cholesky(jac.gram(), eps, diag_shift)
        return 2.0 * jac.transpose_apply(x)
    if sr_plan.solver == "cg":
        # in the Jacobian's own parameter representation: no ravel/unravel inside the loop
        g = _scale(2.0, jac.transpose_apply_native(eps))
        matvec = lambda u: _add_scaled(jac.transpose_apply_native(jac.apply_native(u)), diag_shift, u)  # noqa: E731
        return jac.flatten(_cg(matvec, g, tol))
    return _cholesky(jac.s_matrix(), energy_gradient(jac, eps), diag_shift)


def shift_schedule(diag_shift: float, start: float | None = None, steps: int = 0):
    """step -> λ: geometric from ``start`` at step 0 to ``diag_shift`` at ``steps``, then
    constant (constant throughout without a start): a large shift keeps the first steps on a
    random network safe, the decay stops it throttling the late ones."""
    if start is None or steps <= 0:
        return lambda step: diag_shift
    ratio = start / diag_shift
    return lambda step: diag_shift * ratio ** jnp.maximum(0.0, 1.0 - step / steps)


def make_direction(sr_plan: SRPlan, diag_shift, tol: float, momentum: float = 0.0):
    """``(jac, eps, grad, step, previous) -> δ``: the SR direction in the planned form (the
    step's ``direction``); ``diag_shift``: step -> λ (``shift_schedule``).

    With ``momentum`` μ > 0 the direction remembers the previous one ``previous`` (SPRING,
    Goldshlager, Abrahamsen & Lin, J. Comput. Phys. 2024): δ minimises
    |Ōδ − 2ε|² + λ|δ − μδ_prev|², i.e. (S + λ)δ = 2Ōᵀε + λμδ_prev. Writing δ = μδ_prev + δ′,
    δ′ is the ordinary SR solution for ε′ = ε − (μ/2)·Ōδ_prev, so every form and solver
    applies unchanged. The samples of one step see at most N directions; the memory keeps
    the update in the directions they cannot see, instead of letting the shift zero it."""

    def direction(jac, eps, grad, step, previous=None):
        if not momentum:
            return solve(sr_plan, jac, eps, diag_shift(step), tol)
        eps = eps - (0.5 * momentum) * jac.apply(previous).astype(eps.dtype)
        return momentum * previous + solve(sr_plan, jac, eps, diag_shift(step), tol)

    return direction


def sr_direction(jac, eps: jax.Array, diag_shift, mode: str = "auto", solver: str = "cholesky", tol: float = 1e-10) -> jax.Array:
    """``solve`` with the plan for this Jacobian's sizes and kind."""
    n, p = jac.shape
    return solve(plan(mode, solver, n, p, structured=jac.cheap_gram), jac, eps, diag_shift, tol)


def _scale(a, tree):
    return jax.tree_util.tree_map(lambda x: a * x, tree)


def _add_scaled(x, a, y):
    """x + a·y on matching trees."""
    return jax.tree_util.tree_map(lambda u, v: u + a * v, x, y)


def _cholesky(mat, rhs, diag_shift):
    mat = mat + diag_shift * jnp.eye(mat.shape[0], dtype=mat.dtype)
    factor = jax.scipy.linalg.cho_factor(mat, lower=True)
    return jax.scipy.linalg.cho_solve(factor, rhs)


def _cg(matvec, rhs, tol):
    dim = sum(x.size for x in jax.tree_util.tree_leaves(rhs))
    x, _ = jax.scipy.sparse.linalg.cg(matvec, rhs, tol=tol, maxiter=4 * dim)
    return x


__all__ = [
    "SRPlan",
    "centered_energies",
    "energy_gradient",
    "make_direction",
    "needs_dense_jacobian",
    "plan",
    "resolve_mode",
    "resolve_solver",
    "shift_schedule",
    "solve",
    "sr_direction",
]
