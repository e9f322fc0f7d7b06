"""Structure observables of continuous-space samples, as plain JSON-ready data.

``observables(space, samples)`` with samples (n_samples, N*D) positions drawn from |ψ|²:
- open space (a trap): the one-body density. D = 1: n(x) on a symmetric grid, normalised
  so Σ n(x)·Δx = N (particles per unit length). D > 1: the radial density n(r) per unit
  VOLUME (shell volumes, so Σ n(r)·V_shell = N), the natural profile of an isotropic trap.
- a periodic box: the pair correlation g(r) over minimum-image distances r < L_min/2,
  normalised so that an ideal (uniform, uncorrelated) gas has g(r) = 1:
  g(r_k) = 2·count_k / (n_samples · N(N−1) · V_shell(k)/V).
Errors are blocking errors: the samples are cut into ``n_blocks`` consecutive blocks and
the error is std(block values)/√n_blocks (Markov chains are correlated, Poisson is not).
"""

from __future__ import annotations

import math

import numpy as np

from nqs_cli.systems.continuum.space import ParticleSpace

N_BINS = 64
N_BLOCKS = 16


def ball_volume(r: np.ndarray, dims: int) -> np.ndarray:
    """Volume of the D-ball of radius r (D = 1: 2r)."""
    return math.pi ** (dims / 2) / math.gamma(dims / 2 + 1) * r**dims


def observables(space: ParticleSpace, samples: np.ndarray, n_bins: int = N_BINS, n_blocks: int = N_BLOCKS) -> dict:
    """Density profile (trap) or pair correlation g(r) (box); see the module docstring."""
    samples = np.asarray(samples, dtype=float)
    if samples.ndim != 2 or samples.shape[1] != space.n_dof:
        raise ValueError(f"samples must have shape (n_samples, {space.n_dof}), got {samples.shape}")
    pos = samples.reshape(samples.shape[0], space.n_particles, space.dims)
    if space.periodic:
        return {"pair_correlation": pair_correlation(pos, space.extent, n_bins, n_blocks)}
    return {"density": density(pos, n_bins, n_blocks)}


def _blocking_error(estimate, n_samples: int, n_blocks: int) -> np.ndarray:
    """std/√n_blocks of ``estimate(slice) -> array`` over consecutive blocks of samples."""
    n_blocks = max(1, min(n_blocks, n_samples))
    edges = np.linspace(0, n_samples, n_blocks + 1).astype(int)
    blocks = np.stack([estimate(slice(a, b)) for a, b in zip(edges[:-1], edges[1:])])
    err = blocks.std(axis=0, ddof=1) / math.sqrt(n_blocks) if n_blocks > 1 else np.full(blocks.shape[1], np.nan)
    return err


def density(pos: np.ndarray, n_bins: int, n_blocks: int) -> dict:
    """pos (S, N, D) -> n(x) (D = 1) or radial n(r) per unit volume (D > 1)."""
    n_samples, _, dims = pos.shape
    if dims == 1:
        coord = pos[..., 0]
        half = float(np.max(np.abs(coord))) * (1 + 1e-9) if coord.size else 1.0
        edges = np.linspace(-half, half, n_bins + 1)
        measure = np.diff(edges)
        name, norm = "x", "particles per unit length; sum(values * bin_width) = N"
    else:
        coord = np.sqrt(np.sum(pos * pos, axis=-1))
        edges = np.linspace(0.0, float(np.max(coord)) * (1 + 1e-9), n_bins + 1)
        measure = np.diff(ball_volume(edges, dims))
        name, norm = "r", "radial density per unit volume; sum(values * shell_volume) = N"

    def estimate(sl):
        counts, _ = np.histogram(coord[sl], bins=edges)
        return counts / (coord[sl].shape[0] * measure)

    counts, _ = np.histogram(coord, bins=edges)
    return {
        "coordinate": name,
        "bin_centres": (0.5 * (edges[:-1] + edges[1:])).tolist(),
        "bin_edges": edges.tolist(),
        "values": (counts / (n_samples * measure)).tolist(),
        "errors": _blocking_error(estimate, n_samples, n_blocks).tolist(),
        "counts": counts.tolist(),
        "n_samples": n_samples,
        "normalisation": norm,
    }


def pair_distances(pos: np.ndarray, extent) -> np.ndarray:
    """Minimum-image distances of pairs i<j: (S, N, D) -> (S, P)."""
    box = np.asarray(extent, dtype=float)
    i, j = np.triu_indices(pos.shape[1], 1)
    r = pos[:, i, :] - pos[:, j, :]
    r -= box * np.round(r / box)
    return np.sqrt(np.sum(r * r, axis=-1))


def pair_correlation(pos: np.ndarray, extent, n_bins: int, n_blocks: int) -> dict:
    """g(r) in a periodic box for r < min(L)/2, ideal gas → 1."""
    n_samples, n, dims = pos.shape
    if n < 2:
        raise ValueError("g(r) needs at least 2 particles")
    volume = float(np.prod(extent))
    r_max = min(extent) / 2.0
    edges = np.linspace(0.0, r_max, n_bins + 1)
    shell = np.diff(ball_volume(edges, dims))
    dist = pair_distances(pos, extent)

    def estimate(sl):
        counts, _ = np.histogram(dist[sl], bins=edges)
        return 2.0 * counts / (dist[sl].shape[0] * n * (n - 1) * shell / volume)

    counts, _ = np.histogram(dist, bins=edges)
    return {
        "coordinate": "r",
        "bin_centres": (0.5 * (edges[:-1] + edges[1:])).tolist(),
        "bin_edges": edges.tolist(),
        "values": (2.0 * counts / (n_samples * n * (n - 1) * shell / volume)).tolist(),
        "errors": _blocking_error(estimate, n_samples, n_blocks).tolist(),
        "counts": counts.tolist(),
        "n_samples": n_samples,
        "normalisation": "minimum-image pair distances r < min(L)/2; ideal gas g(r) = 1",
    }


N_WAVEVECTORS = 32


def wave_numbers(space: ParticleSpace, pos: np.ndarray | None = None, n_k: int = N_WAVEVECTORS) -> np.ndarray:
    """The |k| of S(k): in a box the allowed 2π m/L (m = 1..n_k, L the smallest side); in open
    space m·π/R (m = 0..n_k − 1), R the largest |coordinate| among ``pos``."""
    if space.periodic:
        return 2 * np.pi * np.arange(1, n_k + 1) / min(space.extent)
    spread = float(np.max(np.abs(pos))) if pos is not None and pos.size else 1.0
    return np.pi * np.arange(n_k) / max(spread, 1e-12)


def structure_factor_values(pos: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Per-sample S(k) = |Σ_j e^{i k x_j^a}|²/N averaged over the axes a: pos (S, N, D),
    k (K,) -> (S, K); its mean under |ψ|² is the static structure factor along the axes."""
    phase = k[None, None, None, :] * pos[..., None]  # (S, N, D, K)
    re, im = np.cos(phase).sum(axis=1), np.sin(phase).sum(axis=1)  # (S, D, K)
    return ((re**2 + im**2) / pos.shape[1]).mean(axis=1)
