"""Convergence diagnostics of MCMC draws: rank-normalised split R-hat and bulk and tail
effective sample sizes, as defined by Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021),
"Rank-normalization, folding, and localization: An improved R-hat for assessing convergence of
MCMC", *Bayesian Analysis* 16(2), 667-718 (the definitions ArviZ implements).

Every function takes the draws of one quantity as a ``(chains, draws)`` array.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

__all__ = ["rhat", "ess_bulk", "ess_tail", "mcse_mean"]


def _split(x: np.ndarray) -> np.ndarray:
    """Each chain cut into its first and second half (the middle draw of an odd length is
    dropped), so that a trend within a chain shows as disagreement between chains."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n over all draws, ties sharing their average rank."""
    flat = x.ravel()
    order = np.argsort(flat, kind="mergesort")
    ordered = flat[order]
    ranks = np.empty(flat.size, dtype=float)
    ranks[order] = np.arange(1, flat.size + 1, dtype=float)
    # Average the ranks of tied values.
    boundaries = np.flatnonzero(np.diff(ordered) != 0) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [flat.size]])
    for s, e in zip(starts, ends):
        if e - s > 1:
            ranks[order[s:e]] = 0.5 * (s + 1 + e)
    return ranks.reshape(x.shape)


_inverse_normal = np.vectorize(NormalDist().inv_cdf, otypes=[float])


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank normalisation: normal scores of the fractional ranks (Blom's offsets 3/8, 1/4)."""
    return np.asarray(_inverse_normal((_ranks(x) - 0.375) / (x.size + 0.25)))


def _rhat_plain(x: np.ndarray) -> float:
    """The classic potential scale reduction factor of (chains, draws) values."""
    n = x.shape[1]
    within = float(np.mean(np.var(x, axis=1, ddof=1)))
    between = n * float(np.var(np.mean(x, axis=1), ddof=1))
    if not within > 0:
        return float("nan")
    return float(np.sqrt((between / within + n - 1) / n))


def _valid(x: np.ndarray) -> bool:
    return bool(x.shape[1] >= 4 and np.all(np.isfinite(x)) and np.ptp(x) > 0)


def rhat(x: np.ndarray) -> float:
    """Rank-normalised split R-hat: the larger of the bulk R-hat (of the normal scores) and the
    tail R-hat (of the folded draws' normal scores). NaN when it cannot be computed (fewer than
    4 draws per chain, constant or non-finite draws)."""
    x = np.asarray(x, dtype=float)
    if not _valid(x):
        return float("nan")
    bulk = _rhat_plain(_z_scale(_split(x)))
    folded = np.abs(x - np.median(x))
    tail = _rhat_plain(_z_scale(_split(folded)))
    return max(bulk, tail)


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Biased autocovariance of each chain at every lag, by FFT."""
    n = x.shape[1]
    centred = x - x.mean(axis=1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(centred, n=size, axis=1)
    return np.fft.irfft(spectrum * np.conjugate(spectrum), n=size, axis=1)[:, :n] / n


def _ess(x: np.ndarray) -> float:
    """Effective sample size of (chains, draws) values: the multi-chain autocorrelation
    estimate truncated by Geyer's initial positive sequence and made monotone."""
    if not _valid(x):
        return float("nan")
    chains, n = x.shape
    acov = _autocovariance(x)
    mean_var = float(np.mean(acov[:, 0])) * n / (n - 1.0)
    var_plus = mean_var * (n - 1.0) / n
    if chains > 1:
        var_plus += float(np.var(x.mean(axis=1), ddof=1))
    mean_acov = acov.mean(axis=0)
    rho = np.zeros(n)
    rho[0] = 1.0
    even, odd = 1.0, 1.0 - (mean_var - mean_acov[1]) / var_plus
    rho[1] = odd
    t = 1
    while t < n - 3 and even + odd > 0.0:
        even = 1.0 - (mean_var - mean_acov[t + 1]) / var_plus
        odd = 1.0 - (mean_var - mean_acov[t + 2]) / var_plus
        if even + odd >= 0.0:
            rho[t + 1], rho[t + 2] = even, odd
        t += 2
    last = t - 2
    if even > 0.0:
        rho[last + 1] = even
    # Geyer's initial monotone sequence: pair sums may not increase.
    t = 1
    while t <= last - 2:
        if rho[t + 1] + rho[t + 2] > rho[t - 1] + rho[t]:
            rho[t + 1] = rho[t + 2] = (rho[t - 1] + rho[t]) / 2.0
        t += 2
    total = chains * n
    tau = -1.0 + 2.0 * float(np.sum(rho[: last + 1])) + float(np.sum(rho[last + 1 : last + 2]))
    tau = max(tau, 1.0 / np.log10(total))
    return float(total / tau)


def ess_bulk(x: np.ndarray) -> float:
    """Bulk effective sample size: the ESS of the rank-normalised split chains."""
    x = np.asarray(x, dtype=float)
    if not _valid(x):
        return float("nan")
    return _ess(_z_scale(_split(x)))


def _quantile(x: np.ndarray, q: float) -> float:
    # ArviZ's quantile rule (Hyndman & Fan type 7, numpy's default).
    return float(np.quantile(x, q))


def ess_tail(x: np.ndarray) -> float:
    """Tail effective sample size: the smaller ESS of the indicators of the 5% and 95%
    quantiles (split chains)."""
    x = np.asarray(x, dtype=float)
    if not _valid(x):
        return float("nan")
    low = _ess(_split((x <= _quantile(x, 0.05)).astype(float)))
    high = _ess(_split((x <= _quantile(x, 0.95)).astype(float)))
    return min(low, high)


def mcse_mean(x: np.ndarray) -> float:
    """Monte Carlo standard error of the posterior mean: sd / sqrt(ESS of the split chains)."""
    x = np.asarray(x, dtype=float)
    if not _valid(x):
        return float("nan")
    return float(np.std(x, ddof=1) / np.sqrt(_ess(_split(x))))
