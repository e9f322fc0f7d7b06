"""The config schema: frozen dataclasses, one per TOML section, with each field's check.

A field's metadata says which kinds of its section it belongs to (``kinds``) and how its
value is checked (``check(value) -> str | None``, the expectation text when bad).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable


class ConfigError(ValueError):
    """A user-caused config problem; the message is one line naming file and key."""


# --------------------------------------------------------------------------- field specs
# A field's metadata says which kinds of its section it belongs to and how to check it.
# ``check(value) -> str | None`` returns the expectation text when the value is bad.


def opt(default: Any, check: Callable[[Any], str | None] | None = None, kinds: tuple[str, ...] | None = None, doc: str = "", auto: str = ""):
    """A config key: its default, its check, the kinds it belongs to, what it means (``doc``:
    units, the formula it enters) and, for a ``None`` default, how it is chosen (``auto``)."""
    return field(default=default, metadata={"check": check, "kinds": kinds, "doc": doc, "auto": auto})


def positive(v):
    return None if v > 0 else "> 0"


def non_negative(v):
    return None if v >= 0 else ">= 0"


def at_least(lo):
    return lambda v: None if v >= lo else f">= {lo}"


def one_of(*choices):
    def check(v):
        return None if v in choices else "one of " + ", ".join(f'"{c}"' for c in choices)

    check.choices = choices
    return check


PHYSICAL_LIMIT = 1e6  # couplings, lengths, masses: beyond this float64 arithmetic overflows in ψ or E_loc


def magnitude(v):
    return None if abs(v) <= PHYSICAL_LIMIT else f"a number with |value| <= {PHYSICAL_LIMIT:g}"


def positive_scale(v):
    return None if 0 < v <= PHYSICAL_LIMIT else f"> 0 and <= {PHYSICAL_LIMIT:g}"


def scale_or_zero(v):
    return None if v == 0 or 1e-6 <= v <= PHYSICAL_LIMIT else f"0 or between 1e-06 and {PHYSICAL_LIMIT:g}"


MAX_WIDTH, MAX_LAYERS = 65536, 1000


def all_positive(v):
    vals = v if isinstance(v, tuple) else (v,)
    return None if all(0 < x <= MAX_WIDTH for x in vals) and len(vals) <= MAX_LAYERS else f"positive integers <= {MAX_WIDTH} (at most {MAX_LAYERS})"


def layer_count(v):
    return None if 1 <= v <= MAX_LAYERS else f">= 1 and <= {MAX_LAYERS}"


# --------------------------------------------------------------------------- sections

SYSTEM_KINDS = ("fock", "spin")
HAMILTONIAN_KINDS = ("bose-hubbard", "heisenberg", "continuous")
MODEL_KINDS = ("rbm-multival", "deepsets", "deepsets-reldist")
SAMPLER_KINDS = ("metropolis-local", "metropolis-exchange", "metropolis-hamiltonian", "metropolis-gaussian")
PAIR_KINDS = ("gaussian", "lennard-jones", "aziz", "calogero-sutherland")
PARAM_DTYPES = ("float64", "float32", "complex128", "complex64")
ACTIVATION_NAMES = ("gelu", "tanh", "log_cosh", "relu", "silu", "softplus", "sigmoid", "none", "identity")


def each(check):
    """``check`` applied to one value, or to every entry of a list (the first complaint)."""
    return lambda v: next(filter(None, map(check, v if isinstance(v, tuple) else (v,))), None)


def edge_entries(v):
    ok = all(len(e) in (2, 3) and min(e) >= 0 for e in v)
    return None if ok and len(v) <= 1_000_000 else "a list of [i, j] or [i, j, colour] with sites and colours >= 0"


LATTICE_GRAPHS = ("chain", "square", "hypercube", "triangular", "honeycomb", "kagome", "custom")
GRAPH_DIMS = {"chain": 1, "square": 2, "triangular": 2, "honeycomb": 2, "kagome": 2, "custom": 1}  # hypercube: `dims`
GRAPH_BASIS = {"honeycomb": 2, "kagome": 3}  # sites per unit cell (1 elsewhere)


@dataclass(frozen=True)
class LatticeConfig:
    graph: str = opt("chain", one_of(*LATTICE_GRAPHS), doc="Lattice: `chain` (1D), `square` (2D), `hypercube` (`dims` dimensions), `triangular`, `honeycomb` (2 sites per cell), `kagome` (3 sites per cell), or `custom` (the bonds of `edges` on `length` sites). Bonds ⟨ij⟩ join nearest neighbours (distance 1), each pair once; ⟨⟨ij⟩⟩ next-nearest ones (chain: i, i+2; square and hypercube: the diagonals; triangular, honeycomb, kagome: distance √3). Sites are numbered row-major over the cells, the basis site fastest.")
    length: int | tuple[int, ...] = opt(8, each(at_least(1)), doc="Cells per axis: one integer for every axis (L × L), or a list with one per axis (`[4, 2]`: a 4 × 2 rectangle or ladder). N = Π length × sites per cell. A `custom` graph has `length` sites, numbered 0..length−1.")
    dims: int = opt(1, lambda v: None if 1 <= v <= 12 else ">= 1 and <= 12", doc="Dimensions of a `hypercube` (a chain and a custom graph have 1, the square, triangular, honeycomb and kagome lattices 2; another value for them is an error).")
    pbc: bool | tuple[bool, ...] = opt(True, doc="Periodic boundary conditions: one value for every axis, or a list with one per axis (`[true, false]`: a cylinder or ladder, periodic along the first axis only). Not for a `custom` graph.")
    edges: tuple[tuple[int, ...], ...] | None = opt(None, edge_entries, doc="The bonds of a `custom` graph, in the order given: a list of `[i, j]` or `[i, j, colour]` (sites 0..length−1; colour >= 0, default 0, selects the coupling `hamiltonian.J[colour]`). Only with `graph = \"custom\"`, where it is required.")


@dataclass(frozen=True)
class HilbertConfig:
    kind: str = opt("fock", one_of(*SYSTEM_KINDS), doc="Local Hilbert space: `fock` (bosons, occupation n_i = 0..n_max per site) or `spin` (spin s, m_i = −s..s).", auto="spin for heisenberg, fock for bose-hubbard")
    n_max: int | None = opt(None, at_least(1), kinds=("fock",), doc="Maximum bosons per site; the local dimension is n_max + 1. Required for `fock`.")
    n_particles: int | None = opt(None, non_negative, kinds=("fock",), doc="Fixed total number of bosons N = Σ_i n_i (unset: the grand-canonical Fock space, every N).")
    s: float = opt(0.5, lambda v: None if v > 0 and float(2 * v).is_integer() else "a positive multiple of 1/2", kinds=("spin",), doc="Spin per site (0.5, 1, 1.5, …); the local dimension is 2s + 1. S = σ/2 for s = 1/2.")
    total_sz: float | None = opt(None, lambda v: None if float(2 * v).is_integer() else "a multiple of 1/2", kinds=("spin",), doc="Fixed total magnetisation Σ_i m_i (unset: every sector).")


@dataclass(frozen=True)
class SpaceConfig:
    n_particles: int = opt(None, lambda v: None if 1 <= v <= 100_000 else ">= 1 and <= 100000", doc="Number of bosons N in continuous space. Required.")
    dims: int = opt(1, lambda v: None if 1 <= v <= 10 else ">= 1 and <= 10", doc="Spatial dimensions D; a configuration holds N × D coordinates.")
    extent: float | tuple[float, ...] = opt(0.0, lambda v: next(filter(None, map(scale_or_zero, v if isinstance(v, tuple) else (v,))), None), doc="Side length of a periodic box (one number for every dimension, or one per dimension); 0 = open space, which needs a trap (`hamiltonian.trap_omega` > 0).")
    mass: float = opt(1.0, lambda v: None if 1e-6 <= v <= PHYSICAL_LIMIT else f"between 1e-06 and {PHYSICAL_LIMIT:g}", doc="Particle mass m in the kinetic term −1/(2m) Σ_i ∇_i² (ħ = 1).")


@dataclass(frozen=True)
class PairConfig:
    kind: str = opt("gaussian", one_of(*PAIR_KINDS), doc="Pair potential v(r): `gaussian` g·exp(−r²/2σ²); `lennard-jones` 4ε[(σ/r)¹² − (σ/r)⁶]; `aziz` the HFDHE2 helium potential in kelvin with r in ångström (set `space.mass` = 1/12.1194 for ⁴He); `calogero-sutherland` (π/L)² β(β−1)/m · sin⁻²(πr/L) on a ring of side L (1D periodic box only; exact E₀ = (π/L)² β² N(N²−1)/(6m)).")
    g: float = opt(1.0, magnitude, kinds=("gaussian",), doc="Strength g of the Gaussian pair potential g·exp(−r²/2σ²) (energy units; > 0 repulsive).")
    sigma: float = opt(1.0, positive_scale, kinds=("gaussian", "lennard-jones"), doc="Range σ of the pair potential (length units).")
    epsilon: float = opt(1.0, positive_scale, kinds=("lennard-jones",), doc="Depth ε of the Lennard-Jones well (energy units).")
    beta: float = opt(2.0, lambda v: None if 1 < v <= 100 else "> 1 and <= 100 (β(β−1) > 0: a repulsive sin⁻² potential; at β = 1 it vanishes and the bosons are free, with E₀ = 0: leave out the pair)", kinds=("calogero-sutherland",), doc="Exponent β > 1 of the Calogero–Sutherland ring: coupling β(β−1), ground state Π_{i<j} |sin(π x_ij/L)|^β.")
    cutoff: float | None = opt(None, positive_scale, doc="Cut-off radius r_c: v(r) for r < r_c, 0 beyond (truncated, not shifted).", auto="half the smallest side in a periodic box (the minimum image is unambiguous up to there); none in open space and for `calogero-sutherland` (periodic by construction)")


@dataclass(frozen=True)
class TrapConfig:
    V: float = opt(1.0, magnitude, doc="Strength of the lattice trap: + V Σ_i |r_i − center|² n_i (energy units; r_i the site positions, nearest neighbours at distance 1).")
    center: float | tuple[float, ...] | None = opt(None, each(magnitude), doc="Trap centre in site coordinates: one number for every axis or a list with one per axis (chain: the site index; square, hypercube: the cell coordinates; triangular, honeycomb, kagome: positions, cell (c_0, c_1) at c_0·a_1 + c_1·a_2; custom graph: the site index). Must lie within the lattice's extent.", auto="the centre of the lattice (the mean site position)")


@dataclass(frozen=True)
class HamiltonianConfig:
    kind: str = opt(None, one_of(*HAMILTONIAN_KINDS), doc="`bose-hubbard` (with `fock`), `heisenberg` (with `spin`), `continuous` (with `[space]`); the formulas head this page. Required.")
    J: float | tuple[float, ...] = opt(1.0, each(magnitude), kinds=("bose-hubbard", "heisenberg"), doc="Bose-Hubbard: hopping, −J Σ_⟨ij⟩ (b†_i b_j + h.c.). Heisenberg: exchange, J Σ_⟨ij⟩ [S^x_i S^x_j + S^y_i S^y_j + Δ S^z_i S^z_j] (J > 0 antiferromagnetic). A list gives one value per bond colour of a `custom` graph (`lattice.edges`), J[c] on the bonds of colour c.")
    U: float = opt(4.0, magnitude, kinds=("bose-hubbard",), doc="On-site interaction, + U/2 Σ_i n_i (n_i − 1).")
    V: float = opt(0.0, magnitude, kinds=("bose-hubbard",), doc="Nearest-neighbour interaction, + V Σ_⟨ij⟩ n_i n_j.")
    mu: float = opt(0.0, magnitude, kinds=("bose-hubbard",), doc="Chemical potential, − μ Σ_i n_i.")
    trap: TrapConfig | None = opt(None, kinds=("bose-hubbard",), doc="A harmonic trap on the lattice, + V Σ_i |r_i − center|² n_i: a `[hamiltonian.trap]` table or `trap = {V = 1.0, center = 5}`.")
    onsite: tuple[float, ...] | None = opt(None, each(magnitude), kinds=("bose-hubbard",), doc="On-site energies ε_i, one per site in site order: + Σ_i ε_i n_i (a static potential, disorder; adds to `trap`).")
    delta: float = opt(1.0, magnitude, kinds=("heisenberg",), doc="XXZ anisotropy Δ: multiplies S^z_i S^z_j in the J and J2 bonds (1: isotropic S_i·S_j; |Δ| > 1 Ising-like, |Δ| < 1 XY-like).")
    J2: float = opt(0.0, magnitude, kinds=("heisenberg",), doc="Next-nearest-neighbour exchange: + J2 Σ_⟨⟨ij⟩⟩ [S^x_i S^x_j + S^y_i S^y_j + Δ S^z_i S^z_j] (the J1–J2 model). J2 ≠ 0 frustrates the lattice: Marshall's sign rule no longer holds; with real parameters it is then off and `sign_rule = true` is an error, with complex parameters it stays on (unless set false) as a reference sign that the complex amplitudes correct, taken from the collinear classical order of lowest energy (Néel, or stripes on the square lattice beyond J2 = J/2). Not on a custom graph (give such bonds a colour).")
    D: float = opt(0.0, magnitude, kinds=("heisenberg",), doc="Single-ion anisotropy: + D Σ_i (S^z_i)² (spin-1 chain: the Haldane phase below D ≈ 0.97 J, the large-D phase above; for s = 1/2 the constant D·N/4).")
    h: float = opt(0.0, magnitude, kinds=("heisenberg",), doc="Uniform field along z: − h Σ_i S^z_i (h > 0 favours m > 0). With `hilbert.total_sz` fixed it is the constant −h·total_sz: it shifts every energy and changes no state.")
    beta: float = opt(0.0, magnitude, kinds=("heisenberg",), doc="Biquadratic term: + J β Σ_⟨ij⟩ (S_i·S_j)², isotropic whatever Δ (s = 1, β = 1/3: the AKLT point up to a constant).")
    sign_rule: bool | None = opt(None, kinds=("heisenberg",), doc="Marshall sign rule: rotate one sublattice by π about z, so the antiferromagnet's ground state is positive (the spectrum is unchanged). Needs a bipartite lattice (decided from its bonds), and J2 = 0 for real parameters; with J2 ≠ 0 and complex parameters the rotation is a reference sign, not exact (the spectrum is still unchanged).", auto="true on a bipartite lattice with every J > 0 and J2 = 0 (or J2 ≠ 0 with complex parameters), else false (`nqs validate` says why)")
    trap_omega: float = opt(0.0, lambda v: None if 0 <= v <= PHYSICAL_LIMIT else f">= 0 and <= {PHYSICAL_LIMIT:g}", kinds=("continuous",), doc="Harmonic trap frequency ω: + ½ m ω² Σ_i |x_i|² (0: no trap; open space needs one).")
    pair: PairConfig | None = opt(None, kinds=("continuous",), doc="Optional pair potential + Σ_{i<j} v(|x_i − x_j|) (minimum image in a box): a `[hamiltonian.pair]` table.")


@dataclass(frozen=True)
class ModelConfig:
    kind: str = opt(None, one_of(*MODEL_KINDS), doc="Variational state (NetKet 3.23 semantics and parameter names): `rbm-multival` (lattices), `deepsets` (particles in a trap), `deepsets-reldist` (particles in a periodic box).", auto="rbm-multival on a lattice, deepsets in open space, deepsets-reldist in a periodic box")
    alpha: float = opt(1.0, lambda v: None if 0 < v <= 1e3 else "> 0 and <= 1e+03", kinds=("rbm-multival",), doc="Hidden-unit density: int(alpha × N × d) hidden units for N sites of local dimension d (alpha multiplies the one-hot input width, as in NetKet). log ψ(x) = Σ_j log cosh(Σ_k W_kj v_k + b_j) + Σ_k a_k v_k with v = one_hot(x).")
    use_hidden_bias: bool = opt(True, kinds=("rbm-multival",), doc="Hidden biases b_j.")
    use_visible_bias: bool = opt(True, kinds=("rbm-multival",), doc="Visible biases a_k.")
    param_dtype: str = opt("float64", one_of(*PARAM_DTYPES), doc="Dtype of the parameters (the computation follows the top-level `dtype`). `complex128` (with `dtype = \"float64\"`) or `complex64` (with `dtype = \"float32\"`): complex RBM parameters, so log ψ is complex and ψ can carry any sign or phase (frustrated magnets, no sign rule); rbm-multival only. The kernel and biases start as NetKet's: complex normal, real and imaginary parts each of standard deviation 0.01/√2. Natural-gradient steps treat log ψ as holomorphic in the parameters: (S + ε·1) δ = F with S = Ō†Ō, F = 2 Ō†ε, the same update as the real part of the QGT on (Re θ, Im θ).")
    symmetry: str | None = opt(None, one_of("none", "translation"), kinds=("rbm-multival",), doc="`translation`: one set of hidden features applied at every translation of the lattice (along its periodic axes): log ψ(x) = Σ_g Σ_f log cosh(Σ_i W_f,i,x_{g(i)} + b_f) + Σ_i a_{x_i}, a state of zero crystal momentum with `features` features. Params `kernel` (F, N, d), `hidden_bias` (F,), `visible_bias` (d,). `none`: the plain RBM.", auto="translation with complex parameters and a sign reference (`hamiltonian.sign_rule`) or a reference phase (`spiral_phase`) on a lattice periodic along every axis, else none")
    spiral_phase: bool | None = opt(None, kinds=("rbm-multival",), doc="Multiply ψ by the fixed phase exp(i Σ_i φ_i S^z_i) of the coplanar classical spiral of lowest energy, φ_i = Q·c_i (c_i the site's cell), among the wavevectors the periodic lattice admits: the 120° order on the triangular lattice. A reference phase that the complex parameters correct (the non-bipartite counterpart of `hamiltonian.sign_rule`); not trained. Needs complex parameters, `symmetry = \"translation\"`, a spin Hamiltonian with J > 0 on a non-bipartite Bravais lattice periodic along every axis, and a cluster that admits the infinite lattice's classical order (`nqs validate` says which spiral, or why there is none).", auto="true with complex parameters where the spiral exists (`nqs validate` gives the reason otherwise) and `symmetry` is not `none`, else false")
    features: int | None = opt(None, lambda v: None if 1 <= v <= MAX_WIDTH else f">= 1 and <= {MAX_WIDTH}", kinds=("rbm-multival",), doc="Hidden features of the translation-symmetric RBM (`symmetry = \"translation\"`), each applied at every one of the G translations: features × G hidden units, features × N × d kernel parameters.", auto="ceil(8 × alpha × N × d / G): eight times the plain RBM's hidden units, still G/8 times fewer parameters")
    features_phi: int | tuple[int, ...] = opt(None, all_positive, kinds=("deepsets", "deepsets-reldist"), doc="Widths of φ, the per-particle (deepsets) or per-pair (deepsets-reldist) network of log ψ = ρ(Σ φ(·)): a list gives each layer, an integer every one of `layers_phi` layers.", auto="[16, 16] for deepsets, 16 for deepsets-reldist")
    features_rho: int | tuple[int, ...] = opt(None, all_positive, kinds=("deepsets", "deepsets-reldist"), doc="Widths of ρ, applied to the pooled sum; a final width-1 layer is appended (log ψ is its output).", auto="[16] for deepsets, 16 for deepsets-reldist")
    layers_phi: int = opt(2, layer_count, kinds=("deepsets-reldist",), doc="Layers of φ when `features_phi` is an integer.")
    layers_rho: int = opt(2, layer_count, kinds=("deepsets-reldist",), doc="Layers of ρ when `features_rho` is an integer.")
    activation: str = opt("gelu", one_of(*ACTIVATION_NAMES), kinds=("deepsets", "deepsets-reldist"), doc="Activation of the hidden layers (gelu: the tanh approximation, as jax.nn.gelu).")
    output_activation: str = opt("none", one_of(*ACTIVATION_NAMES), kinds=("deepsets", "deepsets-reldist"), doc="Activation of ρ's output layer.")
    use_bias: bool = opt(True, kinds=("deepsets", "deepsets-reldist"), doc="Biases in the dense layers.")
    envelope: str = opt("gaussian", one_of("gaussian", "none"), kinds=("deepsets",), doc="`gaussian`: log ψ gains −a Σ_i |x_i|² with a trainable a = exp(log_a) (starts at ½), which keeps ψ normalisable in a trap.")
    cusp_exponent: int | None = opt(None, at_least(0), kinds=("deepsets-reldist",), doc="Adds the cusp −½ Σ_{i<j} b/‖d_ij‖^k to log ψ (k = cusp_exponent ≥ 1, trainable b) for hard-core potentials (v ~ r^−n at contact: k = (n − 2)/2, 5 for helium); 0 adds the logarithmic cusp b Σ_{i<j} log ‖d_ij‖ (ψ ∝ r^b at contact) for a 1/r² potential.", auto="0 with a `calogero-sutherland` pair (its 1/r² contact); none otherwise")


@dataclass(frozen=True)
class SamplerConfig:
    kind: str = opt(None, one_of(*SAMPLER_KINDS), doc="Metropolis rule: `metropolis-local` (a new value at one site; not with a fixed N or total_sz), `metropolis-exchange` (swap two neighbouring values; local dimension 2 only), `metropolis-hamiltonian` (move to a configuration connected by H, with the n_conn(x)/n_conn(x′) correction), `metropolis-gaussian` (move every particle by a Gaussian step).", auto="metropolis-hamiltonian on a lattice, metropolis-gaussian in continuous space")
    n_chains: int = opt(16, at_least(1), doc="Independent Markov chains (split over the devices; a multiple of the device count).")
    n_samples: int = opt(1008, at_least(1), doc="Samples per iteration, all chains together (rounded up to a multiple of n_chains).")
    n_discard_per_chain: int = opt(10, non_negative, doc="Thermalisation sweeps per chain at each iteration, before samples are kept.")
    sweep_size: int | None = opt(None, at_least(1), doc="Metropolis moves per sweep (between two kept samples).", auto="the number of sites, or of particles")
    sigma: float | None = opt(None, positive_scale, kinds=("metropolis-gaussian",), doc="Starting width of the Gaussian moves (length units); it adapts during thermalisation towards `target_acceptance`.", auto="0.5/√(ω m) in a trap, extent/20 in a box")
    target_acceptance: float | None = opt(None, lambda v: None if 0 <= v < 1 else "between 0 (no adaptation) and 1", kinds=("metropolis-gaussian",), doc="Acceptance towards which each chain's Gaussian width adapts during the thermalisation sweeps (fixed while samples are kept); 0 keeps `sigma` fixed.", auto="0.5")


@dataclass(frozen=True)
class SRConfig:
    diag_shift: float = opt(None, positive_scale, doc="Diagonal shift ε of the SR solve (S + ε·1) δ = F, reached after the decay from `diag_shift_start`.", auto="0.001 on lattices and in traps, 0.01 in periodic boxes")
    solver: str = opt("auto", one_of("cholesky", "cg", "auto"), doc="Linear solver of the SR system: Cholesky, conjugate gradients, or chosen from the sizes (`nqs validate` shows the choice).")
    mode: str = opt("auto", one_of("auto", "S", "minsr"), doc="Space of the SR solve: `S` (n_params × n_params), `minsr` (n_samples × n_samples, the same update by the push-through identity), `auto` (the smaller).")
    tol: float = opt(1e-5, lambda v: None if 0 < v < 1 else "between 0 and 1", doc="Relative residual at which conjugate gradients stop.")
    diag_shift_start: float = opt(None, non_negative, doc="Shift at the first iteration, decaying geometrically to `diag_shift` over `diag_shift_steps` iterations (0: constant `diag_shift`).", auto="max(0.1, diag_shift)")
    diag_shift_steps: int = opt(None, non_negative, doc="Iterations of the shift's decay.", auto="100")
    momentum: float = opt(None, lambda v: None if 0 <= v < 1 else ">= 0 and < 1", doc="Momentum μ of the SR direction (SPRING): δ minimises |Ōδ − 2ε|² + λ|δ − μδ_prev|², so the update keeps, with weight μ, the part of the previous one that this step's samples cannot resolve (0: plain SR).", auto="0")


@dataclass(frozen=True)
class OptimizerConfig:
    kind: str = opt("sgd", one_of("sgd", "adam"), doc="optax optimiser applied to the (SR-preconditioned) gradient δ: θ ← θ − η·δ for sgd.")
    learning_rate: float = opt(None, positive_scale, doc="Learning rate η (reached after the warm-up; `metrics.jsonl` records the effective one).", auto="sgd: 0.02 on lattices and in periodic boxes, 0.05 in traps; adam: 0.002")
    sr: SRConfig | None = opt(SRConfig(), doc="Stochastic reconfiguration (natural gradient): a `[optimizer.sr]` table; on by default, `sr = false` turns it off.")
    warmup: int = opt(None, non_negative, doc="Iterations of linear learning-rate warm-up from η/warmup to η (0: none).", auto="10")
    trust_region: float = opt(None, non_negative, doc="Bound on the squared Fubini–Study length ΔθᵀSΔθ of each update; a longer update is scaled down to it (0: none).", auto="0.05")


@dataclass(frozen=True)
class TrainConfig:
    n_iter: int = opt(300, at_least(1), doc="Iterations (optimisation steps) of the run; `--n-iter` overrides it.")
    checkpoint_every: int = opt(50, at_least(1), doc="Iterations between checkpoints; one is also written at the end, on SIGINT/SIGTERM and at `--max-time`.")
    on_nonfinite: str = opt("stop", one_of("stop", "revert"), doc="A non-finite energy or update: `stop` fails the run (exit 1), `revert` retries the step with a fresh key.")
    nonfinite_patience: int = opt(5, at_least(1), doc="`revert`: retries in a row before giving up.")
    final_window: int = opt(50, at_least(1), doc="The trajectory estimate averages the last min(final_window, n_iter/5) iterations.")
    exact_energy: bool = opt(True, doc="Compute the exact ground-state energy (Lanczos up to 200 000 states, or a closed form) for the relative error.")
    reference_energy: float | None = opt(None, lambda v: None if abs(v) <= 1e15 else "a number with |value| <= 1e+15", doc="A known ground-state energy (DMRG, literature) for the relative error where exact diagonalisation cannot reach.")
    chunk_size: int | None = opt(None, at_least(1), doc="Samples per chunk of the local-energy and Jacobian evaluation (bounds memory).", auto="all samples at once (RBM local energies in blocks of about 2^18 values)")
    spike_factor: float = opt(10.0, lambda v: None if v > 1 else "> 1", doc="A step whose E_loc variance exceeds this × the median of the last 20, or whose energy is this many error bars above their median, is a spike.")
    spike_retries: int = opt(3, non_negative, doc="A spike redoes the update before it with half the step, up to this many times (0: off).")
    dead_steps: int = opt(5, at_least(1), doc="Consecutive iterations with Tr S ≈ 0 (ψ no longer depends on its parameters) that fail the run.")
    param_average: int | None = opt(None, non_negative, doc="The final parameters are an average of the iterates θ_t: θ̄_t = θ̄_{t−1} + (θ_t − θ̄_{t−1})/min(t, τ) (uniform over the first τ iterations, then exponential with time constant τ); the final estimate, `nqs evaluate` and the checkpoints' `average` use θ̄. Averaging removes the step-to-step noise of the stochastic updates (0: the last iterate).", auto="half the estimate window: max(1, min(final_window, n_iter // 5) // 2)")
    init_from: str | None = opt(None, lambda v: None if v.strip() else "a run directory", doc="Warm start: a run directory whose newest checkpoint's parameters start this run (the model and its parameter shapes must agree; the optimiser state and the chains start fresh). `--init-from` sets it; a resumed run continues from its own checkpoint instead.")
    final_samples: int | None = opt(None, non_negative, doc="Most samples of the final fresh-chain evaluation, in passes of 8 × n_samples until its error bar is no larger than the trajectory estimate's (0: none).", auto="2 × the averaging window × n_samples")


# [observables]: the names each system kind measures (systems/lattice/observables.py and
# systems/continuum/observables.py implement them; a test checks the lists agree).
FOCK_OBSERVABLES = ("density", "number_fluctuation", "density_correlation", "one_body_density_matrix", "momentum_distribution", "condensate_fraction")
SPIN_OBSERVABLES = ("sz_correlation", "spin_correlation", "structure_factor", "staggered_magnetization", "string_order",
                    "spin_structure_factor", "staggered_moment")
PARTICLE_OBSERVABLES = ("density", "pair_correlation", "structure_factor", "energy_split")
OBSERVABLE_NAMES = tuple(dict.fromkeys(FOCK_OBSERVABLES + SPIN_OBSERVABLES + PARTICLE_OBSERVABLES))


def observable_names(v):
    bad = [n for n in v if n not in OBSERVABLE_NAMES]
    return None if not bad else "observable names among " + ", ".join(f'"{n}"' for n in OBSERVABLE_NAMES)


@dataclass(frozen=True)
class ObservablesConfig:
    names: tuple[str, ...] | None = opt(
        None, observable_names,
        doc="Observables measured with the final parameters on fresh chains (the samples of the final estimate, "
            "or of `nqs evaluate`), each with its Monte Carlo error bar, into observables.json (`[]`: none); r_i are the "
            "site positions (nearest neighbours at distance 1), N_b the bulk sites (see edge_sites), ε_i = ±1 on the two "
            "sublattices of a bipartite lattice. Bosons on a lattice: `density` ⟨n_i⟩; `number_fluctuation` ⟨n_i²⟩ − ⟨n_i⟩² "
            "per site (the scalar: its mean over the bulk sites weighted by ⟨n_i⟩); `density_correlation` ⟨n_i n_j⟩ against "
            "the distance |r_i − r_j|; `one_body_density_matrix` ⟨b†_i b_j⟩; `momentum_distribution` n(k) = (1/N_s) Σ_ij "
            "e^{ik·(r_i − r_j)} ⟨b†_i b_j⟩; `condensate_fraction` the largest eigenvalue of ⟨b†_i b_j⟩ over Σ_i ⟨n_i⟩. "
            "Spins: `sz_correlation` ⟨S^z_i S^z_j⟩ and `spin_correlation` ⟨S_i·S_j⟩ against the distance; "
            "`structure_factor` S^zz(q) = (1/N_s) Σ_ij e^{iq·(r_i − r_j)} ⟨S^z_i S^z_j⟩ (the S^z part) and "
            "`spin_structure_factor` S(q), the same with ⟨S_i·S_j⟩; `staggered_magnetization` ⟨(m^z_s)²⟩, "
            "m^z_s = (1/N_b) Σ_{i∈bulk} ε_i S^z_i (the S^z part) and `staggered_moment` ⟨m_s·m_s⟩ = (1/N_b²) "
            "Σ_{i,j∈bulk} ε_i ε_j ⟨S_i·S_j⟩ (bipartite lattices); `string_order` ⟨S^z_i exp(iπ Σ_{i<k<j} S^z_k) S^z_j⟩ "
            "against r (integer spin, chains). Correlations against distance average over the bulk pairs at each distance "
            "(minimum image on periodic axes; on custom graphs the graph distance); momenta are q = Σ_k (m_k/L_k) b_k with "
            "the reciprocal vectors b_k (not on custom graphs). Particles: `density` n(x) (a trap), `pair_correlation` "
            "g(r) (a box), `structure_factor` S(k) = ⟨|Σ_j e^{ik·x_j}|²⟩/N, `energy_split` (kinetic and potential energy). "
            "Off-diagonal ones (`one_body_density_matrix`, `momentum_distribution`, `condensate_fraction`, "
            "`spin_structure_factor`, `staggered_moment`: N_s(N_s − 1) ψ per sample, up to 64 sites; `spin_correlation`: "
            "2 per pair) evaluate ψ at connected configurations.",
        auto="bosons on a lattice: all six (the density matrix ones up to 64 sites); spins: sz_correlation, structure_factor, "
             "staggered_magnetization and, for integer spin on a chain, string_order; particles: density (trap) or pair_correlation (box), "
             "structure_factor, energy_split; of these, the ones the lattice defines (no momenta on custom graphs, no staggering "
             "without two sublattices)")
    max_distance: int | None = opt(None, non_negative, doc="Largest distance |r_i − r_j| (nearest neighbours at distance 1; graph distance on custom graphs) of the correlations against distance.",
                                   auto="the largest distance, rounded up, among the shells holding at least N_b/2 pairs of bulk sites (L/2 on a ring)")
    edge_sites: int | None = opt(None, non_negative, doc="Open axes: the bulk is the sites at least this many cells from either end of every open axis (at most (L − 1)/2 on an axis of L cells); correlations against distance and the scalars average over it.",
                                 auto="L/4 of the longest open axis; 0 when every axis is periodic")
    offdiagonal_samples: int | None = opt(None, at_least(1), doc="Most samples (the first ones of every chain) on which the off-diagonal observables are measured; each costs ψ at the connected configurations.",
                                          auto="as many as evaluate ψ no more often than the local energies of all the samples did (samples × connected elements of H), at most 2^24 ψ evaluations")


def host_port(v):
    host, sep, port = v.rpartition(":")
    return None if sep and host and port.isdigit() and 0 < int(port) < 65536 else '"host:port"'


@dataclass(frozen=True)
class DistributedConfig:
    """Multi-process runs (jax.distributed). All three of coordinator / num_processes /
    process_id, or none: then a cluster launcher's environment is used when ``detect`` is on."""

    coordinator: str | None = opt(None, host_port, doc="Multi-process run: host:port of process 0 (`--coordinator`).")
    num_processes: int | None = opt(None, at_least(1), doc="Multi-process run: number of processes (`--num-processes`).")
    process_id: int | None = opt(None, non_negative, doc="Multi-process run: this process's rank; 0 writes the run directory (`--process-id`).")
    detect: bool = opt(True, doc="Join a multi-process run from the launcher's environment: SLURM (srun), Open MPI (mpirun), NQS_COORDINATOR / NQS_NUM_PROCESSES / NQS_PROCESS_ID.")
    timeout_s: int = opt(300, at_least(1), doc="Seconds to wait for the other processes at start-up.")


@dataclass(frozen=True)
class Config:
    name: str
    seed: int = 0
    dtype: str = "float64"
    lattice: LatticeConfig | None = None
    hilbert: HilbertConfig | None = None
    space: SpaceConfig | None = None
    hamiltonian: HamiltonianConfig = HamiltonianConfig()
    model: ModelConfig = ModelConfig()
    sampler: SamplerConfig = SamplerConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    train: TrainConfig = TrainConfig()
    distributed: DistributedConfig = DistributedConfig()
    observables: ObservablesConfig = ObservablesConfig()
    source: str = field(default="<config>", compare=False)
    explicit: frozenset = field(default=frozenset(), compare=False)
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def is_continuous(self) -> bool:
        return self.space is not None

    @property
    def n_sites(self) -> int:
        lat = self.lattice
        return math.prod(lattice_lengths(lat)) * GRAPH_BASIS.get(lat.graph, 1)


def estimate_window(n_iter: int, final_window: int) -> int:
    """The final estimate averages the last 20% of the iterations, at most ``train.final_window``."""
    return min(final_window, max(1, n_iter // 5))


def average_iterations(train: TrainConfig) -> int:
    """Iterations τ of the parameter average (``train.param_average``; auto: half the estimate window)."""
    if train.param_average is not None:
        return train.param_average
    return max(1, estimate_window(train.n_iter, train.final_window) // 2)


def lattice_dims(lat: LatticeConfig) -> int:
    return GRAPH_DIMS.get(lat.graph, lat.dims)


def lattice_lengths(lat: LatticeConfig) -> tuple[int, ...]:
    """Cells along each axis (a list given for ``length`` as it is; check its size first)."""
    return lat.length if isinstance(lat.length, tuple) else (lat.length,) * lattice_dims(lat)


def couplings(ham: "HamiltonianConfig") -> tuple[float, ...]:
    """``hamiltonian.J`` as one coupling per bond colour."""
    return ham.J if isinstance(ham.J, tuple) else (ham.J,)


SECTIONS = {
    "lattice": LatticeConfig,
    "hilbert": HilbertConfig,
    "space": SpaceConfig,
    "hamiltonian": HamiltonianConfig,
    "model": ModelConfig,
    "sampler": SamplerConfig,
    "optimizer": OptimizerConfig,
    "train": TrainConfig,
    "distributed": DistributedConfig,
    "observables": ObservablesConfig,
}
SUBSECTIONS = {("hamiltonian", "pair"): PairConfig, ("hamiltonian", "trap"): TrapConfig, ("optimizer", "sr"): SRConfig}
TOP_KEYS = {"name": str, "seed": int, "dtype": str}
# (default, meaning) of the top-level keys
TOP_DOCS = {
    "name": ("the config file's stem", "Run name: the run directory is runs/<name>-<UTC time> unless `--out` is given."),
    "seed": (0, "Seed of the initial parameters, the chains and every step's key (fold_in(root, step))."),
    "dtype": ("float64", 'Precision of the computation: "float64" or "float32" (for GPUs).'),
}
