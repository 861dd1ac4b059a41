"""Customer value: discounted lifetime value, historical value, value segments, RFM scores and
acquisition budgets."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._base import _bad_parameter
from ._input import align_to

__all__ = [
    "TIME_UNITS_PER_MONTH",
    "Segmentation",
    "acquisition_budget",
    "clv_segments",
    "customer_lifetime_value",
    "historical_clv",
    "rfm_segments",
]

#: Time units per month for ``time_unit`` (the convention of ``lifetimes``: 4.345 weeks, 30 days,
#: 720 hours per month).
TIME_UNITS_PER_MONTH = {"W": 4.345, "M": 1.0, "D": 30.0, "H": 720.0}

#: Continuous discounting of models without a closed-form DERT: `int_0^inf e^-u E(u / delta) du`
#: by 16-point Gauss-Legendre on each of these pieces of u (the rest, beyond u = 40, is below
#: e^-40 of the total); about 1e-12 relative against Pareto/NBD's exact DERT at monthly rates
#: from 0.1% to 10%.
_DERT_PIECES = (0.0, 0.1, 0.5, 2.0, 6.0, 15.0, 40.0)
_DERT_NODES = 16


def _dert_rule(delta: float) -> tuple[np.ndarray, np.ndarray]:
    """Horizons and weights with sum_j w_j E(t_j) = delta * int_0^inf e^(-delta t) E(t) dt."""
    x, w = np.polynomial.legendre.leggauss(_DERT_NODES)
    horizons, weights = [], []
    for a, b in zip(_DERT_PIECES[:-1], _DERT_PIECES[1:]):
        u = 0.5 * (b - a) * x + 0.5 * (a + b)
        horizons.append(u / delta)
        weights.append(0.5 * (b - a) * w * np.exp(-u))
    return np.concatenate(horizons), np.concatenate(weights)


def _units_per_month(time_unit: Any) -> float:
    if isinstance(time_unit, str):
        if time_unit not in TIME_UNITS_PER_MONTH:
            raise _bad_parameter(
                "time_unit",
                f"must be one of {sorted(TIME_UNITS_PER_MONTH)} or a number of time units per "
                f"month, got {time_unit!r}",
            )
        return TIME_UNITS_PER_MONTH[time_unit]
    if isinstance(time_unit, numbers.Real) and math.isfinite(time_unit) and float(time_unit) > 0:
        return float(time_unit)
    raise _bad_parameter(
        "time_unit", f"must be a unit name or a positive number, got {time_unit!r}"
    )


def _spend(spend_model: Any, data: Any, frequency: Any, monetary_value: Any) -> Any:
    """Expected spend per transaction: from a spend model, or given (a number or per customer)."""
    if hasattr(spend_model, "expected_average_spend"):
        return spend_model.expected_average_spend(
            data, frequency=frequency, monetary_value=monetary_value
        )
    if isinstance(spend_model, numbers.Real) and not isinstance(spend_model, bool):
        if not (math.isfinite(spend_model) and float(spend_model) >= 0):
            raise _bad_parameter("spend_model", f"must be >= 0, got {spend_model!r}")
        return float(spend_model)
    values = np.asarray(spend_model, dtype=float)
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise _bad_parameter("spend_model", "per-customer spends must be finite and >= 0")
    return spend_model


def customer_lifetime_value(
    transaction_model: Any,
    spend_model: Any,
    data: Any = None,
    *,
    time: int | None = 12,
    discount_rate: float = 0.01,
    time_unit: Any = "W",
    margin: float = 1.0,
    method: str = "discrete",
    frequency: Any = None,
    recency: Any = None,
    T: Any = None,
    monetary_value: Any = None,
) -> Any:
    r"""Discounted value of each customer's future purchases.

    ``margin`` times the expected spend per transaction times a discounted stream of expected
    purchases from the transaction model:

    - ``method="discrete"`` (the convention of ``lifetimes``, and its numbers):
      :math:`\sum_{i=1}^{\text{time}} (E[X(T, T + i f)] - E[X(T, T + (i-1) f)]) / (1 + d)^i`,
      monthly steps of :math:`f` time units (``time_unit``) over ``time`` months, discounted at
      the monthly rate :math:`d` = ``discount_rate``.
    - ``method="continuous"``: the infinite-horizon discounted expected residual transactions
      :math:`\int_0^\infty e^{-\delta t}\, dE[X(T, T + t)]` with :math:`\delta = \ln(1 + d) / f`
      per time unit (the same monthly rate, compounded continuously). Pareto/NBD and
      GGompertz/NBD use their DERT (``expected_residual_transactions``); BG/NBD and MBG/NBD
      integrate :math:`\delta \int e^{-\delta t} E(t)\, dt` numerically (composite
      Gauss-Legendre in :math:`\delta t`, 96 horizons, about 1e-12 relative), as one weighted
      sum of expectations per customer; BG/BB (discrete opportunities) its DERT at the rate
      :math:`e^{\delta} - 1` per opportunity. ``time`` must be None.

    Parameters
    ----------
    transaction_model : fitted RFM model
        :class:`BetaGeoModel`, :class:`ModifiedBetaGeoModel`, :class:`ParetoNBDModel` or
        :class:`GammaGompertzNBDModel`.
    spend_model : GammaGammaModel, float or array-like
        A fitted spend model (its :meth:`GammaGammaModel.expected_average_spend`), or a known
        spend per transaction (one value, or one per customer).
    data : DataFrame, optional
        Customer summaries with ``frequency``, ``recency``, ``T`` and ``monetary_value`` (each
        model's ``columns`` mapping applies).
    time : int or None, default 12
        Months of value (discrete method); None for the continuous method.
    discount_rate : float, default 0.01
        Monthly discount rate (> -1; > 0 for the continuous method).
    time_unit : {"W", "D", "M", "H"} or float, default "W"
        The data's time unit, or the number of its units per month.
    margin : float, default 1.0
        Profit share of revenue (1 gives revenue).
    method : {"discrete", "continuous"}, default "discrete"
        See above.
    frequency, recency, T, monetary_value : array-like, optional
        Columns as arrays when ``data`` is not given.

    Returns
    -------
    pandas.Series, polars.Series or numpy.ndarray
        Value per customer, shaped like the input.

    Examples
    --------
    >>> import clvrs
    >>> data = clvrs.datasets.load_cdnow_summary()
    >>> bgnbd = clvrs.BetaGeoModel().fit(data)
    >>> spend = clvrs.GammaGammaModel().fit(data)
    >>> clv = clvrs.customer_lifetime_value(bgnbd, spend, data, time=12, discount_rate=0.01)
    >>> round(float(clv.sum()))
    71510
    """
    if not hasattr(transaction_model, "weighted_expected_purchases"):
        raise _bad_parameter(
            "transaction_model",
            f"{type(transaction_model).__name__} does not give the monthly expectations this "
            "function sums; for ParetoNBDDynamicModel multiply its "
            "expected_residual_transactions(data, discount_rate) by the expected spend per "
            "purchase",
        )
    f = _units_per_month(time_unit)
    if not (isinstance(margin, numbers.Real) and math.isfinite(margin) and margin >= 0):
        raise _bad_parameter("margin", f"must be a finite number >= 0, got {margin!r}")
    if not (
        isinstance(discount_rate, numbers.Real)
        and math.isfinite(discount_rate)
        and discount_rate > -1
    ):
        raise _bad_parameter("discount_rate", f"must be a finite rate > -1, got {discount_rate!r}")
    rfm = {"frequency": frequency, "recency": recency, "T": T}
    if method == "discrete":
        if not (isinstance(time, numbers.Integral) and not isinstance(time, bool) and time > 0):
            raise _bad_parameter("time", f"must be a positive whole number of months, got {time!r}")
        months = np.arange(1, int(time) + 1, dtype=float)
        discount = (1.0 + discount_rate) ** -months
        # sum_i (E_i - E_{i-1}) D_i = sum_{i<n} E_i (D_i - D_{i+1}) + E_n D_n, with E_0 = 0.
        weights = np.append(discount[:-1] - discount[1:], discount[-1])
        purchases = transaction_model.weighted_expected_purchases(data, months * f, weights, **rfm)
    elif method == "continuous":
        if time is not None:
            raise _bad_parameter(
                "time", "must be None for method='continuous' (the horizon is infinite)"
            )
        if not discount_rate > 0:
            raise _bad_parameter(
                "discount_rate", "must be > 0 for method='continuous' (else the value is infinite)"
            )
        delta = math.log1p(discount_rate) / f
        purchases = transaction_model._continuous_dert(data, delta, rfm)
        if purchases is None:
            horizons, weights = _dert_rule(delta)
            purchases = transaction_model.weighted_expected_purchases(
                data, horizons, weights, **rfm
            )
    else:
        raise _bad_parameter("method", f"must be 'discrete' or 'continuous', got {method!r}")
    spend = _spend(spend_model, data, frequency, monetary_value)
    if np.ndim(spend) == 1 and not hasattr(spend_model, "expected_average_spend"):
        # One spend per customer: matched to the customers by the rule of `align_to`
        # (positions for arrays, labels only when both carry the same ones).
        if isinstance(data, pd.DataFrame):
            index, reference = data.index, "data"
        else:
            index = purchases.index if isinstance(purchases, pd.Series) else None
            reference = "frequency"
        if len(spend) != 1:
            spend = align_to(spend, index, np.size(purchases), "spend_model", reference)
        spend = np.asarray(spend, dtype=float)
        if np.ndim(purchases) == 0:
            spend = spend[0]
    value = purchases * spend * margin
    if isinstance(value, pd.Series):
        value.name = "clv"
    elif hasattr(value, "alias"):
        value = value.alias("clv")
    return value


def historical_clv(
    data: Any,
    lifespan: float,
    *,
    margin: float = 1.0,
    frequency: str = "frequency",
    T: str = "T",
    monetary_value: str = "monetary_value",
) -> pd.Series:
    """Historical (customer-based) value, for users without a fitted model.

    Average order value times purchase frequency times margin times expected lifespan: the
    customer's mean repeat-purchase value, times their repeat purchases per time unit
    (``frequency / T``, 0 for ``T = 0``), times ``margin``, times ``lifespan`` (in the data's
    time unit). It extrapolates past behaviour and ignores churn; prefer
    :func:`customer_lifetime_value` when a model can be fitted.

    Parameters
    ----------
    data : pandas.DataFrame
        Customer summaries.
    lifespan : float
        Expected remaining lifespan, in the data's time unit.
    margin : float, default 1.0
        Profit share of revenue.
    frequency, T, monetary_value : str
        Column names.

    Returns
    -------
    pandas.Series
        Value per customer, on the data's index.
    """
    if not (isinstance(lifespan, numbers.Real) and math.isfinite(lifespan) and lifespan >= 0):
        raise _bad_parameter("lifespan", f"must be a finite number >= 0, got {lifespan!r}")
    if not (isinstance(margin, numbers.Real) and math.isfinite(margin) and margin >= 0):
        raise _bad_parameter("margin", f"must be a finite number >= 0, got {margin!r}")
    frame = pd.DataFrame(data)
    x = frame[frequency].astype(float)
    age = frame[T].astype(float)
    rate = np.where(age > 0, x / age.where(age > 0, 1.0), 0.0)
    value = frame[monetary_value].astype(float) * rate * margin * float(lifespan)
    return pd.Series(value, index=frame.index, name="historical_clv")


@dataclass
class Segmentation:
    """Customers grouped by value: each customer's segment and a table per segment."""

    #: Segment of each customer (ordered categorical, lowest value first).
    labels: pd.Series
    #: Per segment: customers, share of customers, total value, share of value, mean, min, max.
    table: pd.DataFrame


def clv_segments(
    values: Any,
    segments: int | list[float] = 4,
    labels: list[str] | None = None,
) -> Segmentation:
    """Tiers (or deciles) of customers by value, with each tier's share of customers and value.

    Parameters
    ----------
    values : pandas.Series or array-like
        Value per customer (e.g. from :func:`customer_lifetime_value`).
    segments : int or list of float, default 4
        Number of equal-sized tiers (10 for deciles), or quantile edges in [0, 1] (e.g.
        ``[0, 0.5, 0.8, 0.95, 1]``).
    labels : list of str, optional
        Names of the tiers, lowest value first (default "Q1".."Qn", or "D1".."D10").

    Returns
    -------
    Segmentation
        ``labels`` per customer and the per-tier ``table`` (highest value first), whose
        ``share_of_value`` column shows how concentrated value is.
    """
    series = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values, float))
    series = series.astype(float)
    if series.isna().any() or not np.all(np.isfinite(series.to_numpy())):
        raise _bad_parameter("values", "must be finite numbers (no NaN)")
    if isinstance(segments, numbers.Integral):
        if segments < 1:
            raise _bad_parameter("segments", f"must be >= 1, got {segments!r}")
        edges = np.linspace(0.0, 1.0, int(segments) + 1)
    else:
        edges = np.asarray(segments, dtype=float)
        if edges[0] != 0 or edges[-1] != 1 or np.any(np.diff(edges) <= 0):
            raise _bad_parameter("segments", "quantile edges must rise strictly from 0 to 1")
    n = len(edges) - 1
    if labels is None:
        prefix = "D" if n == 10 else "Q"
        labels = [f"{prefix}{i + 1}" for i in range(n)]
    if len(labels) != n:
        raise _bad_parameter("labels", f"needs {n} names, got {len(labels)}")
    # Rank first so that ties (many customers with the same value) still split evenly.
    ranks = series.rank(method="first", pct=True)
    assigned = pd.cut(ranks, bins=list(edges), labels=list(labels), include_lowest=True)
    assigned.name = "segment"
    total = float(series.sum())
    grouped = series.groupby(assigned, observed=False)
    table = pd.DataFrame(
        {
            "customers": grouped.size(),
            "share_of_customers": grouped.size() / len(series),
            "value": grouped.sum(),
            "share_of_value": grouped.sum() / total if total else np.nan,
            "mean_value": grouped.mean(),
            "min_value": grouped.min(),
            "max_value": grouped.max(),
        }
    ).iloc[::-1]
    table.index.name = "segment"
    return Segmentation(labels=assigned, table=table)


def rfm_segments(
    data: Any,
    quantiles: int = 4,
    *,
    frequency: str = "frequency",
    recency: str = "recency",
    T: str = "T",
    monetary_value: str = "monetary_value",
) -> pd.DataFrame:
    """Classic RFM scores: quantile scores of recency, frequency and monetary value.

    Recency is scored on the time since the last purchase (``T - recency``): the most recent
    customers score highest. Ties are broken by position, so every score is used.

    Returns
    -------
    pandas.DataFrame
        Columns ``r``, ``f``, ``m`` (1 .. ``quantiles``), ``rfm`` (e.g. "443") and ``score``
        (r + f + m), on the data's index.
    """
    if not (isinstance(quantiles, numbers.Integral) and quantiles >= 2):
        raise _bad_parameter("quantiles", f"must be a whole number >= 2, got {quantiles!r}")
    frame = pd.DataFrame(data)
    since_last = frame[T].astype(float) - frame[recency].astype(float)

    def score(column: pd.Series) -> pd.Series:
        ranks = column.rank(method="first", pct=True)
        return np.ceil(ranks * quantiles).clip(1, quantiles).astype("int64")

    out = pd.DataFrame(index=frame.index)
    out["r"] = score(-since_last)
    out["f"] = score(frame[frequency].astype(float))
    out["m"] = score(frame[monetary_value].astype(float))
    out["rfm"] = out["r"].astype(str) + out["f"].astype(str) + out["m"].astype(str)
    out["score"] = out["r"] + out["f"] + out["m"]
    return out


def acquisition_budget(
    clv: Any,
    acquisition_cost: Any = None,
    *,
    by: Any = None,
    target_ratio: float = 3.0,
) -> pd.DataFrame:
    """What a customer is worth against what it costs to win one, per segment or channel.

    Parameters
    ----------
    clv : pandas.Series or array-like
        Value per customer (e.g. from :func:`customer_lifetime_value`).
    acquisition_cost : float, dict or pandas.Series, optional
        Cost of acquiring one customer: one number, or one per group (a dict or Series keyed by
        group).
    by : pandas.Series or array-like, optional
        Group of each customer (segment, channel, cohort); all customers form one group if
        omitted.
    target_ratio : float, default 3.0
        The CLV:CAC ratio to plan for (3 is a common rule of thumb).

    Returns
    -------
    pandas.DataFrame
        Per group: ``customers``, ``mean_clv``, ``max_affordable_cac`` (mean CLV divided by the
        target ratio) and, when costs are given, ``acquisition_cost``, ``clv_to_cac`` and
        ``headroom`` (affordable minus actual cost per customer).
    """
    if not (isinstance(target_ratio, numbers.Real) and target_ratio > 0):
        raise _bad_parameter("target_ratio", f"must be > 0, got {target_ratio!r}")
    values = clv if isinstance(clv, pd.Series) else pd.Series(np.asarray(clv, dtype=float))
    values = values.astype(float)
    if by is None:
        groups = pd.Series("all", index=values.index, name="group")
    else:
        groups = by if isinstance(by, pd.Series) else pd.Series(np.asarray(by), index=values.index)
        if isinstance(by, pd.Series) and isinstance(clv, pd.Series):
            # Matched to the customers by the rule of `align_to`: by label when the labels
            # are the same (in any order), refused when they differ.
            aligned = align_to(by, clv.index, len(values), "by", "clv")
            groups = pd.Series(aligned.to_numpy(), index=values.index)
    grouped = values.groupby(groups.to_numpy(), observed=True)
    table = pd.DataFrame({"customers": grouped.size(), "mean_clv": grouped.mean()})
    table.index.name = "group" if by is None else (getattr(by, "name", None) or "group")
    table["max_affordable_cac"] = table["mean_clv"] / target_ratio
    if acquisition_cost is not None:
        if isinstance(acquisition_cost, dict | pd.Series):
            cost = pd.Series(acquisition_cost, dtype=float).reindex(table.index)
            if cost.isna().any():
                missing = list(cost.index[cost.isna()])
                raise _bad_parameter("acquisition_cost", f"no cost given for groups {missing}")
        else:
            cost = pd.Series(float(acquisition_cost), index=table.index)
        if (cost <= 0).any():
            raise _bad_parameter("acquisition_cost", "costs must be > 0")
        table["acquisition_cost"] = cost
        table["clv_to_cac"] = table["mean_clv"] / cost
        table["headroom"] = table["max_affordable_cac"] - cost
    return table
