"""Convergence diagnostics of MCMC draws: rank-normalised split R-hat and bulk and tail
effective sample sizes, as defined by Vehtari, Gelman, Simpson, Carpenter & Buerkner (2021),
"Rank-normalization, folding, and localization: An improved R-hat for assessing convergence of
MCMC", *Bayesian Analysis* 16(2), 667-718 (the definitions ArviZ implements).

Every function takes the draws of one quantity as a ``(chains, draws)`` array.
"""

from __future__ import annotations

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


# Wichura's AS241 (1988) rational approximations (the algorithm of Python's
# ``statistics.NormalDist.inv_cdf``), numerators then denominators, highest power first: the
# central region |p - 1/2| <= 0.425, then the tails for r = sqrt(-ln min(p, 1 - p)) <= 5 and > 5.
_AS241_CENTRAL = (
    [2.5090809287301226727e3, 3.3430575583588128105e4, 6.7265770927008700853e4,
     4.5921953931549871457e4, 1.3731693765509461125e4, 1.9715909503065514427e3,
     1.3314166789178437745e2, 3.3871328727963666080e0],
    [5.2264952788528545610e3, 2.8729085735721942674e4, 3.9307895800092710610e4,
     2.1213794301586595867e4, 5.3941960214247511077e3, 6.8718700749205790830e2,
     4.2313330701600911252e1, 1.0],
)  # fmt: skip
_AS241_NEAR = (
    [7.74545014278341407640e-4, 2.27238449892691845833e-2, 2.41780725177450611770e-1,
     1.27045825245236838258e0, 3.64784832476320460504e0, 5.76949722146069140550e0,
     4.63033784615654529590e0, 1.42343711074968357734e0],
    [1.05075007164441684324e-9, 5.47593808499534494600e-4, 1.51986665636164571966e-2,
     1.48103976427480074590e-1, 6.89767334985100004550e-1, 1.67638483018380384940e0,
     2.05319162663775882187e0, 1.0],
)  # fmt: skip
_AS241_FAR = (
    [2.01033439929228813265e-7, 2.71155556874348757815e-5, 1.24266094738807843860e-3,
     2.65321895265761230930e-2, 2.96560571828504891230e-1, 1.78482653991729133580e0,
     5.46378491116411436990e0, 6.65790464350110377720e0],
    [2.04426310338993978564e-15, 1.42151175831644588870e-7, 1.84631831751005468180e-5,
     7.86869131145613259100e-4, 1.48753612908506148525e-2, 1.36929880922735805310e-1,
     5.99832206555887937690e-1, 1.0],
)  # fmt: skip


def _inverse_normal(p: np.ndarray) -> np.ndarray:
    """The standard normal quantiles of probabilities in (0, 1), elementwise: the formulas
    of ``NormalDist().inv_cdf`` over whole arrays (a Python call per draw took most of the
    time of a fit's diagnostics)."""
    q = p - 0.5
    central = np.abs(q) <= 0.425
    out = np.empty_like(p)
    qc = q[central]
    r = 0.180625 - qc * qc
    out[central] = qc * np.polyval(_AS241_CENTRAL[0], r) / np.polyval(_AS241_CENTRAL[1], r)
    tail = ~central
    qt = q[tail]
    r = np.sqrt(-np.log(np.where(qt <= 0.0, p[tail], 1.0 - p[tail])))
    near = r <= 5.0
    x = np.empty_like(r)
    rn = r[near] - 1.6
    x[near] = np.polyval(_AS241_NEAR[0], rn) / np.polyval(_AS241_NEAR[1], rn)
    rf = r[~near] - 5.0
    x[~near] = np.polyval(_AS241_FAR[0], rf) / np.polyval(_AS241_FAR[1], rf)
    out[tail] = np.where(qt < 0.0, -x, x)
    return out


def _z_scale(x: np.ndarray) -> np.ndarray:
    """Rank normalisation: normal scores of the fractional ranks (Blom's offsets 3/8, 1/4)."""
    return _inverse_normal((_ranks(x) - 0.375) / (x.size + 0.25))


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
