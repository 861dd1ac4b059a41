"""lifetimes' ``generate_data``: customers drawn from each model's process.

Draws use numpy's global random state (``np.random.seed`` makes them reproducible), as
lifetimes' do; clvrs' own :meth:`clvrs.BetaGeoModel.simulate` uses seeded per-customer streams
instead. Each function returns lifetimes' columns. As in lifetimes, ``frequency`` of the
continuous-time models counts the distinct whole time units in which repeat purchases fall
(so that it equals the frequency of the daily summary of the transaction log that
:func:`beta_geometric_nbd_model_transactional_data` draws from the same random numbers), and
``recency`` is the exact time of the last repeat purchase.
"""

# Draws use numpy's global random state on purpose (lifetimes' semantics: np.random.seed).
# ruff: noqa: NPY002
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import InvalidParameterError

__all__ = [
    "beta_geometric_beta_binom_model",
    "beta_geometric_nbd_model",
    "beta_geometric_nbd_model_transactional_data",
    "modified_beta_geometric_nbd_model",
    "pareto_nbd_model",
]


def _timedelta(value: float, unit: str) -> Any:
    return pd.to_timedelta(value, unit=unit)  # type: ignore[call-overload]


def _sizes(values: Any, name: str, size: int) -> np.ndarray:
    """One value per customer from a scalar or an array of at least ``size`` values."""
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise InvalidParameterError(f"`size` must be a whole number >= 1, got {size!r}")
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"`{name}` must be numbers, got {values!r}") from None
    if array.ndim == 0:
        array = np.full(int(size), float(array))
    if array.ndim != 1 or array.size < size:
        raise InvalidParameterError(
            f"`{name}` must be one number or at least `size` = {size} numbers, got shape "
            f"{array.shape}"
        )
    out = array[: int(size)]
    if not np.all(np.isfinite(out) & (out >= 0)):
        raise InvalidParameterError(f"`{name}` must hold finite numbers >= 0")
    return out


def _positive(**params: float) -> None:
    for name, value in params.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not (np.isfinite(number) and number > 0):
            raise InvalidParameterError(f"`{name}` must be a finite number > 0, got {value!r}")


def _purchase_paths(T: np.ndarray, rates: np.ndarray, death: Any) -> tuple[list, np.ndarray]:
    """Purchase times in (0, T) of each customer, vectorised over customers.

    ``death`` is ("after", p) -- each purchase is followed by dropout with probability p
    (BG/NBD), ("start", p) -- MBG/NBD, which also allows dropout at time 0 -- or ("time", d),
    a dropout time (Pareto/NBD). Returns the per-customer purchase times and whether each
    customer is alive at T.
    """
    n = T.size
    kind, value = death
    alive = np.ones(n, dtype=bool)
    clock = np.zeros(n)
    horizon = np.minimum(value, T) if kind == "time" else T
    times: list[list[float]] = [[] for _ in range(n)]
    gap = np.random.exponential(scale=1.0 / rates)
    if kind == "start":
        alive = np.random.random(n) > value
    active = alive.copy()
    while active.any():
        candidate = clock + gap
        buys = active & (candidate < horizon)
        for i in np.flatnonzero(buys):
            times[i].append(float(candidate[i]))
        clock = np.where(buys, candidate, clock)
        active = buys
        idx = np.flatnonzero(active)
        if idx.size:
            gap[idx] = np.random.exponential(scale=1.0 / rates[idx])
            if kind in ("after", "start"):
                survives = np.random.random(idx.size) > value[idx]
                alive[idx] = survives
                active[idx] = survives
    if kind == "time":
        alive = value > T
    return times, alive


def _summaries(times: list, T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    frequency = np.array([np.unique(np.floor(t)).size for t in times], dtype=float)
    recency = np.array([max(t) if t else 0.0 for t in times], dtype=float)
    return frequency, recency


def _bg_draws(
    T: Any, r: float, alpha: float, a: float, b: float, size: int, start: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list, np.ndarray]:
    _positive(r=r, alpha=alpha, a=a, b=b)
    ages = _sizes(T, "T", size)
    p = np.random.beta(a, b, size=size)
    rates = np.random.gamma(r, scale=1.0 / alpha, size=size)
    times, alive = _purchase_paths(ages, rates, ("start" if start else "after", p))
    return ages, p, rates, times, alive


def _frame(ages: np.ndarray, times: list, rates: np.ndarray, name: str, values: np.ndarray,
           alive: np.ndarray) -> pd.DataFrame:  # fmt: skip
    frequency, recency = _summaries(times, ages)
    return pd.DataFrame(
        {"frequency": frequency, "recency": recency, "T": ages, "lambda": rates, name: values,
         "alive": alive},
        index=pd.RangeIndex(ages.size, name="customer_id"),
    )  # fmt: skip


def beta_geometric_nbd_model(T: Any, r: float, alpha: float, a: float, b: float,
                             size: int = 1) -> pd.DataFrame:  # fmt: skip
    """Customers drawn from the BG/NBD process with ages ``T``.

    Returns
    -------
    pandas.DataFrame
        ``frequency``, ``recency``, ``T``, ``lambda`` (purchase rate), ``p`` (dropout
        probability after each purchase), ``alive``; indexed by ``customer_id``.
    """
    ages, p, rates, times, alive = _bg_draws(T, r, alpha, a, b, size, start=False)
    return _frame(ages, times, rates, "p", p, alive)


def modified_beta_geometric_nbd_model(T: Any, r: float, alpha: float, a: float, b: float,
                                      size: int = 1) -> pd.DataFrame:  # fmt: skip
    """Customers drawn from the MBG/NBD process (dropout also possible at time 0)."""
    ages, p, rates, times, alive = _bg_draws(T, r, alpha, a, b, size, start=True)
    return _frame(ages, times, rates, "p", p, alive)


def pareto_nbd_model(T: Any, r: float, alpha: float, s: float, beta: float,
                     size: int = 1) -> pd.DataFrame:  # fmt: skip
    """Customers drawn from the Pareto/NBD process; ``mu`` is each customer's dropout rate."""
    _positive(r=r, alpha=alpha, s=s, beta=beta)
    ages = _sizes(T, "T", size)
    rates = np.random.gamma(r, scale=1.0 / alpha, size=size)
    mus = np.random.gamma(s, scale=1.0 / beta, size=size)
    death = np.random.exponential(scale=1.0 / mus)
    times, alive = _purchase_paths(ages, rates, ("time", death))
    return _frame(ages, times, rates, "mu", mus, alive)


def beta_geometric_nbd_model_transactional_data(
    T: Any,
    r: float,
    alpha: float,
    a: float,
    b: float,
    observation_period_end: Any = "2019-1-1",
    freq: str = "D",
    size: int = 1,
) -> pd.DataFrame:
    """A transaction log (``customer_id``, ``date``) drawn from the BG/NBD process.

    Each customer's first purchase is ``T`` units of ``freq`` before the end of the period
    (at ``observation_period_end``), so the log's summary has age ``T``; the draws are those
    :func:`beta_geometric_nbd_model` makes from the same random state.
    """
    end = pd.Timestamp(observation_period_end)
    ages, _, _, times, _ = _bg_draws(T, r, alpha, a, b, size, start=False)
    try:
        unit = _timedelta(1, freq)
    except ValueError:
        raise InvalidParameterError(
            f"`freq` must be a time unit pandas knows ('D', 'h', ...), got {freq!r}"
        ) from None
    ids: list[int] = []
    dates: list[pd.Timestamp] = []
    for i, (age, purchases) in enumerate(zip(ages, times)):
        first = end - unit * float(age)
        start = first + unit
        ids.append(i)
        dates.append(first)
        for t in purchases:
            ids.append(i)
            dates.append(start + _timedelta(t, freq))
    return pd.DataFrame({"customer_id": ids, "date": pd.to_datetime(dates)})


def beta_geometric_beta_binom_model(N: Any, alpha: float, beta: float, gamma: float,
                                    delta: float, size: int = 1) -> pd.DataFrame:  # fmt: skip
    """Customers drawn from the BG/BB process over ``N`` transaction opportunities.

    ``p`` ~ Beta(alpha, beta) is the transaction probability and ``theta`` ~ Beta(gamma,
    delta) the dropout probability before each opportunity; ``alive`` is alive at opportunity
    N + 1 (what ``conditional_probability_alive(1, ...)`` predicts).

    Returns
    -------
    pandas.DataFrame
        ``frequency``, ``recency``, ``n_periods``, ``p``, ``theta``, ``alive``,
        ``customer_id``.
    """
    _positive(alpha=alpha, beta=beta, gamma=gamma, delta=delta)
    periods = _sizes(N, "N", size)
    p = np.random.beta(alpha, beta, size=size)
    theta = np.random.beta(gamma, delta, size=size)
    alive = np.ones(size, dtype=bool)
    frequency = np.zeros(size)
    recency = np.zeros(size)
    for t in range(int(periods.max()) if size else 0):
        open_ = alive & (t < periods)
        alive[open_] = np.random.random(int(open_.sum())) >= theta[open_]
        buys = open_ & alive
        buys[buys] = np.random.random(int(buys.sum())) < p[buys]
        frequency[buys] += 1
        recency[buys] = t + 1
    alive[alive] = np.random.random(int(alive.sum())) >= theta[alive]
    return pd.DataFrame(
        {"frequency": frequency, "recency": recency, "n_periods": periods, "p": p,
         "theta": theta, "alive": alive, "customer_id": np.arange(size)},
    )  # fmt: skip
