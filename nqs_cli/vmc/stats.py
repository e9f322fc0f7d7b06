"""Monte Carlo statistics of per-chain time series: mean, error, variance, split-R̂, τ.

All functions take ``data`` of shape (n_chains, n_per_chain) and are jittable.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct


@struct.dataclass
class Stats:
    mean: jax.Array
    error_of_mean: jax.Array
    variance: jax.Array
    tau_corr: jax.Array
    r_hat: jax.Array

    def to_dict(self) -> dict[str, float]:
        return {
            "energy": float(self.mean),
            "energy_error": float(self.error_of_mean),
            "variance": float(self.variance),
            "r_hat": float(self.r_hat),
            "tau_corr": float(self.tau_corr),
        }


def integrated_time(x: jax.Array, window_c: float = 5.0) -> jax.Array:
    """Integrated autocorrelation time of one series (FFT, Sokal's automatic window).

    τ = Σ_{t≥1} ρ(t) summed up to the first window M with M ≥ c·(1 + 2τ(M));
    τ = 0 for uncorrelated data, so the effective sample size is n / (1 + 2τ).
    """
    n = x.shape[0]
    xc = x - jnp.mean(x)
    f = jnp.fft.rfft(xc, n=2 * n)
    acf = jnp.fft.irfft(f * jnp.conj(f))[:n]
    acf = jnp.where(acf[0] > 0, acf / jnp.where(acf[0] > 0, acf[0], 1.0), jnp.zeros_like(acf).at[0].set(1.0))
    cumulative = jnp.cumsum(acf) - 1.0  # Σ_{t=1..M} ρ(t) for window M (index M)
    windows = jnp.arange(n)
    ok = windows >= window_c * (1.0 + 2.0 * cumulative)
    first = jnp.where(jnp.any(ok), jnp.argmax(ok), n - 1)
    return jnp.maximum(cumulative[first], 0.0)


def split_r_hat(data: jax.Array) -> jax.Array:
    """Split-R̂ (Gelman-Rubin on chains cut in half); NaN for a single chain."""
    n_chains, n = data.shape
    half = n // 2
    if n_chains * 2 < 2 or half < 2:
        return jnp.array(jnp.nan, dtype=data.dtype)
    halves = jnp.concatenate([data[:, :half], data[:, half : 2 * half]], axis=0)
    within = jnp.mean(jnp.var(halves, axis=1, ddof=1))
    between_over_n = jnp.var(jnp.mean(halves, axis=1), ddof=1)
    ratio = ((half - 1) / half * within + between_over_n) / within
    return jnp.sqrt(jnp.where(within > 0, ratio, 1.0))


def statistics(data: jax.Array) -> Stats:
    """Statistics of MCMC data (n_chains, n_per_chain), autocorrelation-corrected error."""
    data = jnp.atleast_2d(data)
    n_total = data.size
    mean = jnp.mean(data)
    variance = jnp.var(data)
    tau = jnp.mean(jax.vmap(integrated_time)(data))
    error = jnp.sqrt(variance * (1.0 + 2.0 * tau) / n_total)
    return Stats(mean=mean, error_of_mean=error, variance=variance, tau_corr=tau, r_hat=split_r_hat(data))


def component_statistics(data) -> tuple[jax.Array, jax.Array]:
    """(mean, autocorrelation-corrected error) of every component of per-sample values
    ``data`` (n_chains, n_per_chain, *shape), each as ``statistics`` gives it; shapes ``shape``."""
    data = jnp.asarray(data)
    n_chains, n = data.shape[:2]
    shape = data.shape[2:]
    flat = jnp.moveaxis(data.reshape(n_chains, n, -1), -1, 0)
    st = jax.vmap(statistics)(flat)
    return st.mean.reshape(shape), st.error_of_mean.reshape(shape)


JACKKNIFE_BLOCKS = 16


def block_means(data, n_blocks: int = JACKKNIFE_BLOCKS):
    """Means of (n_chains, n_per_chain, ...) over equal blocks: every chain cut into
    ceil(n_blocks / n_chains) consecutive parts (the chains themselves when there are enough);
    (n_chains × parts, ...). Samples past a whole number of parts are left out. A NumPy array
    gives a NumPy result (no compiled program for a host-side mean)."""
    xp = np if isinstance(data, np.ndarray) else jnp
    data = xp.asarray(data)
    n_chains, n = data.shape[:2]
    parts = max(1, min(n, -(-n_blocks // n_chains)))
    size = n // parts
    cut = data[:, : parts * size].reshape(n_chains * parts, size, *data.shape[2:])
    return xp.mean(cut, axis=1)


def jackknife(blocks: dict, f) -> tuple:
    """(f(means), jackknife error) of a non-linear function ``f(dict of means) -> array`` of the
    means of per-sample values, from their equal-size ``blocks`` ({name: (B, ...)}):
    error² = (B − 1)/B Σ_b (f_(b) − mean_b f_(b))², f_(b) evaluated without block b."""
    b = next(iter(blocks.values())).shape[0]
    total = {k: np.asarray(v).sum(axis=0) for k, v in blocks.items()}
    value = np.asarray(f({k: v / b for k, v in total.items()}))
    if b < 2:
        return value, np.full(value.shape, np.nan)
    leave_out = np.stack([np.asarray(f({k: (total[k] - np.asarray(v)[i]) / (b - 1) for k, v in blocks.items()})) for i in range(b)])
    error = np.sqrt((b - 1) / b * np.sum((leave_out - leave_out.mean(axis=0)) ** 2, axis=0))
    return value, error
