"""What a customer not yet acquired is worth: purchases, spend and CLV of prospects.

CLVTools' ``newcustomer()`` asks a fitted model what a *new* customer with given
characteristics will do. Here :func:`prospect_value` turns a fitted transaction model (with or
without covariates) and a spend per purchase into each prospect's expected purchases over a
horizon, expected spend and discounted value, the figure :func:`clvrs.acquisition_budget`
compares with the cost of winning a customer, per channel or campaign.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import pandas as pd

from ._base import _bad_parameter, _check_level
from ._input import _is_polars_frame, as_float_array, ndim
from .value import MAX_DISCRETE_MONTHS, _clv_units_per_month

__all__ = ["prospect_value"]


def _spend_per_purchase(spend: Any, rows: int | None) -> np.ndarray:
    if hasattr(spend, "population_mean_spend"):
        return np.full(rows or 1, float(spend.population_mean_spend()))
    if isinstance(spend, numbers.Real) and not isinstance(spend, bool):
        if not (math.isfinite(spend) and float(spend) >= 0):
            raise _bad_parameter("spend", f"must be a finite number >= 0, got {spend!r}")
        return np.full(rows or 1, float(spend))
    if isinstance(spend, (str, bytes, dict)) or not np.iterable(spend):
        raise _bad_parameter(
            "spend",
            "must be a fitted GammaGammaModel, a number, or one number per prospect, got "
            f"{spend!r}",
        )
    if ndim(spend) != 1:
        raise _bad_parameter("spend", "must give one number per prospect (a 1-d sequence)")
    values = as_float_array(spend, "spend")
    if values.ndim != 1 or (rows is not None and values.size != rows):
        raise _bad_parameter(
            "spend", f"must give one value per prospect ({rows}), got shape {values.shape}"
        )
    if not np.all(np.isfinite(values) & (values >= 0)):
        raise _bad_parameter("spend", "values must be finite numbers >= 0")
    return values


def prospect_value(
    transaction_model: Any,
    spend: Any,
    prospects: Any = None,
    *,
    time: int = 12,
    discount_rate: float = 0.01,
    time_unit: Any = None,
    margin: float = 1.0,
    first_purchase: bool = True,
    level: float | None = None,
) -> pd.DataFrame:
    r"""Expected purchases, spend and value of customers not yet acquired (prospects).

    A prospect acquired now makes its first purchase at once and then buys as a new customer
    of the fitted model: :math:`E[X(t)]` repeat purchases in :math:`(0, t]`
    (``expected_purchases_new_customer``), with the covariates of its row of ``prospects``
    for a model fitted with covariates (channel, campaign, region, ...). Over ``time`` months
    of :math:`f` time units:

    .. math::

        \mathrm{value} = \mathrm{margin} \cdot \mathrm{spend} \cdot \Big[\mathbb{1}_{\text{first}}
            + \sum_{i=1}^{\text{time}} \frac{E[X(i f)] - E[X((i-1) f)]}{(1 + d)^i}\Big],

    the monthly discounting of :func:`customer_lifetime_value` (``method="discrete"``).

    Parameters
    ----------
    transaction_model : fitted model
        Any model with ``expected_purchases_new_customer`` (BG/NBD, MBG/NBD, Pareto/NBD with or
        without static covariates, the correlated Pareto/NBD, GGompertz/NBD, ...).
    spend : GammaGammaModel, float or array-like
        Spend per purchase: a fitted :class:`GammaGammaModel` (its population mean
        :math:`p\gamma/(q-1)`, what a customer without history is expected to spend), one
        number, or one number per prospect.
    prospects : pandas or polars DataFrame, optional
        One row per prospect with the covariate columns the model was fitted with (required
        for a model with covariates; without covariates one row of results is returned).
    time : int, default 12
        Horizon in months (at most 600).
    discount_rate : float, default 0.01
        Monthly discount rate (> -1).
    time_unit : str or float, optional
        Time unit of the model (its ``time_unit_`` by default, else weeks).
    margin : float, default 1.0
        Share of spend that is profit.
    first_purchase : bool, default True
        Count the acquisition purchase itself (undiscounted, at time 0).
    level : float, optional
        Add delta-method intervals at this level (e.g. 0.9): the uncertainty of the fitted
        parameters (the transaction model's and, when ``spend`` is a fitted
        :class:`GammaGammaModel`, the spend model's, independent fits) carried to each column
        by :func:`delta_interval` (Wald intervals on the log scale). Needs models fitted by
        maximum likelihood (with a covariance).

    Returns
    -------
    pandas.DataFrame
        Per prospect (the index of ``prospects``): ``expected_purchases`` (undiscounted, over
        the horizon, the first purchase included when ``first_purchase``), ``expected_spend``
        (their spend) and ``value`` (discounted, times ``margin``). Pass ``value`` to
        :func:`acquisition_budget` with ``by=prospects["channel"]``. With ``level``, each
        column also has ``<column>_se``, ``<column>_lower`` and ``<column>_upper``.

    Raises
    ------
    InvalidParameterError
        For a model without new-customer predictions, a missing ``prospects`` table for a
        model with covariates, or invalid ``time``, ``discount_rate``, ``margin`` or ``spend``.

    Examples
    --------
    >>> import clvrs
    >>> data = clvrs.datasets.load_cdnow_summary()
    >>> bgnbd = clvrs.BetaGeoModel().fit(data)
    >>> out = clvrs.prospect_value(bgnbd, 35.0, time=12)
    >>> round(float(out["expected_purchases"].iloc[0]), 3)
    2.447
    """
    if level is not None:
        level = _check_level(level)
    if not hasattr(transaction_model, "expected_purchases_new_customer"):
        raise _bad_parameter(
            "transaction_model",
            f"{type(transaction_model).__name__} has no new-customer predictions",
        )
    if not (isinstance(time, numbers.Integral) and not isinstance(time, bool) and time > 0):
        raise _bad_parameter("time", f"must be a positive whole number of months, got {time!r}")
    if time > MAX_DISCRETE_MONTHS:
        raise _bad_parameter("time", f"must be at most {MAX_DISCRETE_MONTHS} months, got {time}")
    for name, value, low in (("discount_rate", discount_rate, -1.0), ("margin", margin, None)):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        ok = ok and math.isfinite(value) and (value > low if low is not None else value >= 0)
        if not ok:
            raise _bad_parameter(name, f"must be a finite number in range, got {value!r}")
    if not isinstance(first_purchase, (bool, np.bool_)):
        raise _bad_parameter("first_purchase", f"must be True or False, got {first_purchase!r}")
    if _is_polars_frame(prospects):
        prospects = prospects.to_pandas()
    if prospects is not None and not isinstance(prospects, pd.DataFrame):
        raise _bad_parameter(
            "prospects",
            "must be a DataFrame with one row per prospect (its covariate columns), got "
            f"{type(prospects).__name__}",
        )
    with_covariates = transaction_model.__dict__.get("covariates_") is not None
    if with_covariates and prospects is None:
        raise _bad_parameter(
            "prospects",
            "is required for a model fitted with covariates: a DataFrame with one row of "
            "covariates per prospect",
        )
    f = _clv_units_per_month(transaction_model, None, {}, time_unit)
    months = np.arange(1, int(time) + 1, dtype=float)
    if with_covariates:
        index = prospects.index
        rows = len(prospects)
        cumulative = np.column_stack(
            [
                np.asarray(
                    transaction_model.expected_purchases_new_customer(m * f, prospects),
                    dtype=float,
                )
                for m in months
            ]
        )
    else:
        index = None if prospects is None else prospects.index
        rows = 1 if prospects is None else len(prospects)
        curve = np.asarray(
            transaction_model.expected_purchases_new_customer(months * f), dtype=float
        )
        cumulative = np.broadcast_to(curve, (rows, curve.size))
    increments = np.diff(cumulative, axis=1, prepend=0.0)
    discount = (1.0 + discount_rate) ** -months
    first = 1.0 if first_purchase else 0.0
    purchases = first + cumulative[:, -1]
    discounted = first + increments @ discount
    per_purchase = _spend_per_purchase(spend, rows)
    table = pd.DataFrame(
        {
            "expected_purchases": purchases,
            "expected_spend": purchases * per_purchase,
            "value": margin * discounted * per_purchase,
        },
        index=index,
    )
    if level is None:
        return table
    return _with_intervals(
        table,
        transaction_model,
        spend,
        {
            "prospects": prospects,
            "time": time,
            "discount_rate": discount_rate,
            "time_unit": time_unit,
            "margin": margin,
            "first_purchase": first_purchase,
        },
        level,
    )


def _with_intervals(
    table: pd.DataFrame,
    transaction_model: Any,
    spend: Any,
    options: dict[str, Any],
    level: float,
) -> pd.DataFrame:
    """``table`` with ``<column>_se``, ``_lower`` and ``_upper`` from the delta method over the
    fitted models (the columns stacked into one prediction, so each model parameter is
    shifted once for all three)."""
    from .models.gamma_gamma import GammaGammaModel
    from .uncertainty import delta_interval

    columns = list(table.columns)
    models = [transaction_model]
    if isinstance(spend, GammaGammaModel):
        models.append(spend)

    def predict(*fitted: Any) -> np.ndarray:
        spend_now = fitted[1] if len(fitted) > 1 else spend
        shifted = prospect_value(fitted[0], spend_now, **options)
        return shifted[columns].to_numpy().T.ravel()

    band = delta_interval(predict, models, level=level, scale="log")
    rows = len(table)
    out = {}
    for k, column in enumerate(columns):
        part = slice(k * rows, (k + 1) * rows)
        out[column] = table[column].to_numpy()
        for stat in ("se", "lower", "upper"):
            out[f"{column}_{stat}"] = band[stat].to_numpy()[part]
    return pd.DataFrame(out, index=table.index)
