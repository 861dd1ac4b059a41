"""How regular are purchase times? Population estimates of the Erlang/gamma shape ``k`` of the
inter-purchase times, from a transaction log."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._base import _bad_parameter
from .data import _check_options, _end, _ends, _frame, _gaps, _nothing_before, _read_log, _summarize

__all__ = ["RegularityEstimate", "estimate_regularity"]

_METHODS = ("wheat", "mle")


@dataclass(frozen=True)
class RegularityEstimate:
    """The result of :func:`estimate_regularity`.

    Attributes
    ----------
    k : float
        The estimate: about 1 for exponential (Poisson) inter-purchase times, larger for more
        regular ones (an Erlang-k gap has coefficient of variation :math:`1/\\sqrt{k}`).
    method : str
        ``"wheat"`` or ``"mle"``.
    n_customers : int
        Customers with enough inter-purchase times that entered the estimate.
    per_customer : pandas.Series
        Indexed by customer id: Wheat & Morrison's statistic
        :math:`M = g_1 / (g_1 + g_2)` of the last two gaps (``"wheat"``), or each customer's
        maximum-likelihood gamma shape (``"mle"``; infinite when all their gaps are equal).
    """

    k: float
    method: str
    n_customers: int
    per_customer: pd.Series

    def __float__(self) -> float:
        return float(self.k)


def _digamma(x: np.ndarray) -> np.ndarray:
    """psi(x) for x > 0: recurrence up to 6, then the asymptotic series (about 1e-15)."""
    x = np.array(x, dtype=float)
    shift = np.zeros_like(x)
    for _ in range(6):
        small = x < 6
        shift = np.where(small, shift - 1.0 / x, shift)
        x = np.where(small, x + 1.0, x)
    inv2 = 1.0 / (x * x)
    series = inv2 * (
        1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 * (1 / 132))))
    )
    return shift + np.log(x) - 0.5 / x - series


def _gamma_shape_mle(s: np.ndarray) -> np.ndarray:
    """The gamma shape k solving ``ln k - psi(k) = s`` (decreasing in k), by bisection on
    ``ln k`` (80 steps: full precision); infinite for ``s = 0`` (all gaps equal)."""
    lo = np.full(s.shape, np.log(1e-6))
    hi = np.full(s.shape, np.log(1e9))
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        k = np.exp(mid)
        above = (np.log(k) - _digamma(k)) > s  # k too small
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    out = np.exp(0.5 * (lo + hi))
    return np.where(s > 0, out, np.inf)


def estimate_regularity(
    transactions: Any,
    customer_id_col: str,
    datetime_col: str,
    method: str = "wheat",
    *,
    min_intervals: int | None = None,
    observation_period_end: Any = None,
    freq: str = "D",
    freq_multiplier: float = 1,
    datetime_format: str | None = None,
    n_jobs: int | None = None,
) -> RegularityEstimate:
    r"""Estimate how regular a population's inter-purchase times are (the shape ``k``).

    A value near 1 supports exponential inter-purchase times (the Poisson purchasing of
    BG/NBD and Pareto/NBD); clearly larger values call for the regularity models
    (:class:`BetaGeoCNBDModel`, :class:`ModifiedBetaGeoCNBDModel`). A customer's purchases are
    the distinct periods of :func:`summarize_transactions` (same-period purchases merged); the
    gaps are between consecutive ones. ``k`` does not depend on the time unit.

    - ``"wheat"`` (Wheat & Morrison 1990): if every customer's gaps are gamma with a common
      shape ``k`` (rates may differ), the statistic :math:`M = g_1 / (g_1 + g_2)` of two
      consecutive gaps is :math:`\mathrm{Beta}(k, k)`, whose variance is
      :math:`1 / (4(2k + 1))`; so :math:`\hat k = (1 - 4 V) / (8 V)` with :math:`V` the
      variance of :math:`M` over customers with at least ``min_intervals`` (default 2) gaps,
      using each customer's last two. :math:`M` and :math:`1 - M` are equally likely, so
      :math:`V` is taken over both (mean exactly 1/2), which is the average of BTYDplus'
      estimator over its random choice of numerator.
    - ``"mle"``: each customer with at least ``min_intervals`` (default 10) gaps gets the
      maximum-likelihood gamma shape of their gaps (the root of
      :math:`\ln k - \psi(k) = \ln \bar g - \overline{\ln g}`); the estimate is their median,
      as in BTYDplus (which searches k in [0.1, 50]; the root here is exact, and infinite for
      a customer whose gaps are all equal).

    Parameters
    ----------
    transactions, customer_id_col, datetime_col, observation_period_end, freq,
    freq_multiplier, datetime_format, n_jobs
        As for :func:`summarize_transactions` (transactions after ``observation_period_end``
        are left out).
    method : {"wheat", "mle"}, default "wheat"
        The estimator.
    min_intervals : int, optional
        Fewest inter-purchase times a customer needs to enter (default 2 for ``"wheat"``, 10
        for ``"mle"``; at least 2).

    Returns
    -------
    RegularityEstimate
        ``k`` with the per-customer statistics (``float(estimate)`` is ``k``).

    References
    ----------
    Wheat, R. D. & Morrison, D. G. (1990). Estimating Purchase Regularity with Two
    Interpurchase Times. *Journal of Marketing Research* 27(1), 87-93.

    Platzer, M. & Reutterer, T. (2016). Ticking Away the Moments: Timing Regularity Helps to
    Better Predict Customer Activity. *Marketing Science* 35(5), 779-799.
    """
    if not isinstance(method, str) or method not in _METHODS:
        raise _bad_parameter("method", f"must be one of {_METHODS}, got {method!r}")
    if min_intervals is None:
        min_intervals = 2 if method == "wheat" else 10
    if (
        isinstance(min_intervals, bool)
        or not isinstance(min_intervals, numbers.Integral)
        or min_intervals < 2
    ):
        raise _bad_parameter("min_intervals", f"must be a whole number >= 2, got {min_intervals!r}")
    multiplier = _check_options(freq, freq_multiplier)
    log = _read_log(transactions, customer_id_col, datetime_col, None, datetime_format)
    names = (customer_id_col, datetime_col, "amount")
    end = _end(observation_period_end, datetime_format, "observation_period_end", log.tz)
    (end_at,) = _ends(log, end)
    result = _summarize(
        log,
        names,
        freq=freq,
        freq_multiplier=multiplier,
        end_ns=end_at,
        include_first=False,
        exclude_after_end=True,
        allow_negative=True,
        n_jobs=n_jobs,
    )
    if not len(result["customer"]):
        raise _nothing_before(end, "observation_period_end", log)
    gaps = _gaps(log, result, freq=freq, freq_multiplier=multiplier, n_jobs=n_jobs)
    count = gaps["count"]
    chosen = count >= min_intervals
    n = int(chosen.sum())
    if n < 2:
        raise _bad_parameter(
            "min_intervals",
            f"leaves {n} customer(s) with at least {min_intervals} inter-purchase times; the "
            "estimate needs two or more (lower min_intervals, or use a longer log)",
        )
    if method == "wheat":
        last, previous = gaps["last"][chosen], gaps["previous"][chosen]
        values = previous / (previous + last)
        variance = 2.0 * np.sum((values - 0.5) ** 2) / (2 * n - 1)
        k = (1.0 - 4.0 * variance) / (8.0 * variance) if variance > 0 else float("inf")
    else:
        mean_gap = result["recency"][chosen] / count[chosen]
        s = np.maximum(np.log(mean_gap) - gaps["litt"][chosen] / count[chosen], 0.0)
        values = _gamma_shape_mle(s)
        k = float(np.median(values))
    codes = result["customer"][chosen]
    frame = _frame(log, customer_id_col, {"value": values}, codes)
    if isinstance(frame, pd.DataFrame):
        per_customer = frame["value"].rename("M" if method == "wheat" else "k")
    else:  # polars: an id column and the values
        per_customer = pd.Series(
            frame.get_column("value").to_numpy(),
            index=pd.Index(frame.get_column(customer_id_col).to_list(), name=customer_id_col),
            name="M" if method == "wheat" else "k",
        )
    return RegularityEstimate(float(k), method, n, per_customer)
