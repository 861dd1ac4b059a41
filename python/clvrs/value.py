"""Customer value: discounted lifetime value, historical value, value segments, RFM scores and
acquisition budgets."""

from __future__ import annotations

import contextlib
import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import _bayes, _display, _units
from ._base import BaseModel, _bad_parameter, _check_level
from ._input import (
    _is_polars_frame,
    align_argument,
    align_to,
    as_float_array,
    data_error,
    ndim,
)
from .exceptions import InvalidDataError, InvalidParameterError, TimeUnitError

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

#: Longest horizon of the discrete CLV, in months (50 years). Its cost is one expected-purchases
#: evaluation per month, each of which (BG/NBD, MBG/NBD: a hypergeometric series in
#: t / (alpha + T + t)) takes terms in proportion to the horizon: quadratic in ``time``
#: (all of CDNOW at 1,200 months took 40-90 s). Beyond 50 years a monthly discount leaves little
#: value, and ``method="continuous"`` values the infinite horizon at bounded cost.
MAX_DISCRETE_MONTHS = 600

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
        if time_unit in TIME_UNITS_PER_MONTH:
            return TIME_UNITS_PER_MONTH[time_unit]
        try:
            return _units.units_per_month(time_unit)  # e.g. "7D", "w"
        except InvalidParameterError:
            raise _bad_parameter(
                "time_unit",
                f"must be one of {sorted(TIME_UNITS_PER_MONTH)} (optionally after a multiplier, "
                f'e.g. "7D") or a number of time units per month, got {time_unit!r}',
            ) from None
    if isinstance(time_unit, numbers.Real) and math.isfinite(time_unit) and float(time_unit) > 0:
        return float(time_unit)
    raise _bad_parameter(
        "time_unit", f"must be a unit name or a positive number, got {time_unit!r}"
    )


def _clv_units_per_month(model: Any, data: Any, keywords: dict[str, Any], time_unit: Any) -> float:
    """Time units per month for CLV: ``time_unit`` if given, else the model's unit (else the
    data's recorded unit, else weeks); a ``time_unit`` contradicting a known unit is refused."""
    known = getattr(model, "__dict__", {}).get("time_unit_")
    source = "the model's time unit"
    if known is None:
        known, source = _units.data_unit(data, keywords), "the data's recorded time unit"
    if time_unit is None:
        return _units.units_per_month(known) if known is not None else TIME_UNITS_PER_MONTH["W"]
    f = _units_per_month(time_unit)
    if known is not None and not _units.same_per_month(known, f):
        err = TimeUnitError(
            f"time_unit: {time_unit!r} ({f:g} per month) contradicts {source} "
            f'"{known}" ({_units.units_per_month(known):g} per month); leave time_unit out to '
            "use it"
        )
        err.parameter = "time_unit"
        err.expected, err.found = known, str(time_unit)
        raise err
    return f


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
    wrong = _bad_parameter(
        "spend_model",
        "must be a fitted spend model (GammaGammaModel), a spend per transaction or one per "
        f"customer, got {type(spend_model).__name__}",
    )
    if spend_model is None or isinstance(spend_model, (BaseModel, str, bytes, bool, dict)):
        raise wrong
    try:
        raw = np.asarray(spend_model)
        if raw.dtype.kind == "O" and any(v is None or v is pd.NA for v in raw.ravel()):
            raise _bad_parameter("spend_model", "per-customer spends must be finite and >= 0")
        # Text and booleans are not amounts: "10" is refused, not read as 10.
        if raw.dtype.kind in "USb" or (
            raw.dtype.kind == "O"
            and not all(
                isinstance(v, numbers.Real) and not isinstance(v, bool) for v in raw.ravel()
            )
        ):
            raise wrong
        values = np.asarray(spend_model, dtype=float)
    except (TypeError, ValueError):
        raise wrong from None
    if values.ndim > 1:
        raise wrong
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise _bad_parameter("spend_model", "per-customer spends must be finite and >= 0")
    return spend_model


def _table_columns(
    data: Any, columns: dict[str, Any], non_negative: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The named columns of a customer table as float arrays, checked: present, numeric,
    finite (and >= 0 for the roles in ``non_negative``).

    ``columns`` maps each role (the keyword naming the column) to the caller's column name.
    """
    if isinstance(data, pd.DataFrame):
        frame = data
    elif type(data).__module__.startswith("polars") and hasattr(data, "to_pandas"):
        frame = data.to_pandas()
    elif isinstance(data, dict):
        try:
            frame = pd.DataFrame(data)
        except (TypeError, ValueError) as exc:
            raise InvalidDataError(f"data: not a table of customers ({exc})") from None
    else:
        raise InvalidDataError(
            f"data must be a pandas or polars DataFrame of customers, got {type(data).__name__}"
        )
    available = [str(c) for c in frame.columns]
    out = {}
    for role, name in columns.items():
        try:
            present = isinstance(name, str) and name in frame.columns
        except TypeError:
            present = False
        if not present:
            err = InvalidDataError(
                f"column `{name}` (the {role} column) is missing; the data has columns "
                f"{available}. Rename it, or name it with {role}='your_name'"
            )
            err.column, err.rule = str(name), "required column"
            raise err
        series = frame[name]
        if not (
            pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype)
        ) or pd.api.types.is_complex_dtype(series.dtype):
            err = InvalidDataError(f"column `{name}`: must be numeric, got dtype {series.dtype}")
            err.column, err.rule = name, "must be numeric"
            raise err
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        lowest = 0.0 if role in non_negative else -np.inf
        bad = np.flatnonzero(~(np.isfinite(values) & (values >= lowest)))
        if bad.size:
            rule = "must be a finite number" + (" >= 0" if role in non_negative else "")
            err = data_error(name, int(bad[0]), float(values[bad[0]]), rule)
            label = frame.index[bad[0]]
            if not (isinstance(frame.index, pd.RangeIndex) and label == bad[0]):
                err.label = label
                err = _labelled(err)
            raise err
        out[role] = values
    return frame, out


def _labelled(err: InvalidDataError) -> InvalidDataError:
    """``err`` with its row's index label added to the message."""
    located = InvalidDataError(f"{err} [index label {err.label!r}]")
    located.column, located.row, located.rule, located.label = (
        err.column,
        err.row,
        err.rule,
        err.label,
    )
    return located


def _posterior_value_terms(
    transaction_model: Any,
    spend_model: Any,
    data: Any,
    frequency: Any,
    monetary_value: Any,
    margin: float,
) -> dict[str, Any]:
    """What multiplies a Bayesian transaction model's discounted purchases at each draw: the
    paired draw of a Bayesian spend model (with the customers' spend columns), or a fixed
    spend (the spend model's point prediction or the given spend), times the margin."""
    if isinstance(spend_model, BaseModel) and spend_model._is_bayesian():
        cols = spend_model._columns(
            data, {"frequency": frequency, "monetary_value": monetary_value}
        )
        # (The core checks the spend columns and each draw's spend, as the spend model's own
        # prediction does.)
        return {
            "scale": np.array([float(margin)]),
            "spend_draws": _bayes.draws_matrix(spend_model),
            "spend_frequency": np.ascontiguousarray(cols.arrays["frequency"], dtype=float),
            "spend_monetary": np.ascontiguousarray(cols.arrays["monetary_value"], dtype=float),
        }
    spend = _spend(spend_model, data, frequency, monetary_value)
    if ndim(spend) == 1 and not hasattr(spend_model, "expected_average_spend"):
        # One spend per customer: matched to the customers by the rule of `align_to`, as
        # for a maximum-likelihood fit (labels when both are pandas objects).
        spend = align_argument(spend, "spend_model", data, {"frequency": frequency})
        if isinstance(data, pd.DataFrame) or _is_polars_frame(data):
            customers: int | None = len(data)
        else:
            customers = None if frequency is None else int(np.size(frequency))
        if customers is not None and len(spend) not in (1, customers):
            raise _bad_parameter(
                "spend_model",
                f"has {len(spend)} spends for {customers} customers: give one spend per "
                "transaction, or one per customer",
            )
    values = np.atleast_1d(np.asarray(spend.to_numpy() if hasattr(spend, "to_numpy") else spend))
    return {"scale": np.ascontiguousarray(values.astype(float) * float(margin))}


def _posterior_value(
    purchases: Any, request: dict[str, Any], data: Any, transaction_model: Any, level: Any
) -> Any:
    """The posterior mean value (or, with ``level``, its table) shaped like ``purchases``."""
    result = request["result"]
    index = purchases.index if isinstance(purchases, pd.Series) else None
    if level is not None:
        return pd.DataFrame(
            {
                "estimate": np.asarray(result["mean"], dtype=float),
                "se": np.asarray(result["sd"], dtype=float),
                "lower": np.asarray(result["lower"], dtype=float),
                "upper": np.asarray(result["upper"], dtype=float),
            },
            index=index,
        )
    value = purchases
    if isinstance(value, pd.Series):
        value = value.rename("clv")
        if isinstance(data, pd.DataFrame):
            column = transaction_model._column_names(data).get("weights")
            if column is not None and column in data.columns:
                value.attrs[ROWS_ATTR] = str(column)
    elif hasattr(value, "alias"):
        value = value.alias("clv")
    return value


def _delta_value_interval(
    transaction_model: Any, spend_model: Any, data: Any, level: float, options: dict[str, Any]
) -> pd.DataFrame:
    """Delta-method interval of the value over the covariances of the transaction model and,
    when it is a fitted model with one, the spend model."""
    from .uncertainty import delta_interval

    models = [transaction_model]
    if isinstance(spend_model, BaseModel) and spend_model.covariance_ is not None:
        models.append(spend_model)

    def predict(*fitted: Any) -> Any:
        spend = fitted[1] if len(fitted) > 1 else spend_model
        return customer_lifetime_value(fitted[0], spend, data, **options)

    return delta_interval(predict, models, level=level, scale="log")


def customer_lifetime_value(
    transaction_model: Any,
    spend_model: Any,
    data: Any = None,
    *,
    time: int | None = 12,
    discount_rate: float = 0.01,
    time_unit: Any = None,
    margin: float = 1.0,
    method: str = "discrete",
    frequency: Any = None,
    recency: Any = None,
    T: Any = None,
    monetary_value: Any = None,
    level: float | None = None,
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
        Months of value (discrete method, at most ``MAX_DISCRETE_MONTHS`` = 600: its cost
        grows with the square of the horizon); None for the continuous method.
    discount_rate : float, default 0.01
        Monthly discount rate (> -1; > 0 for the continuous method).
    time_unit : {"W", "D", "M", "H"}, str or float, optional
        The data's time unit (optionally after a multiplier: ``"7D"``), or the number of its
        units per month (4.345 weeks, 30 days, 720 hours). By default the model's
        ``time_unit_`` (recorded when it was fitted on a summary from
        :func:`summarize_transactions`), else the data's recorded unit, else ``"W"``. A
        ``time_unit`` more than 2% away from a known unit is refused (``TimeUnitError``).
    margin : float, default 1.0
        Profit share of revenue (1 gives revenue).
    method : {"discrete", "continuous"}, default "discrete"
        See above.
    frequency, recency, T, monetary_value : array-like, optional
        Columns as arrays when ``data`` is not given.
    level : float, optional
        Also give a ``level`` interval per customer: a DataFrame with columns ``estimate``,
        ``se``, ``lower``, ``upper`` is returned instead of the values. After a Bayesian fit
        of the transaction model (``method="nuts"``) it is the equal-tailed credible interval
        of the value over the posterior draws (see below); otherwise a delta-method interval
        on the log scale over both models' covariances (:func:`clvrs.delta_interval`).

    Returns
    -------
    pandas.Series, polars.Series or numpy.ndarray
        Value per customer, shaped like the input (a DataFrame with ``level``).

    Notes
    -----
    After ``fit(..., method="nuts")`` of the transaction model the value is the posterior mean
    of the value, not the value at the posterior mean of the parameters: the core evaluates
    the discounted purchase stream at every draw, times the spend at the paired draw of a
    Bayesian spend model (draw ``s`` with spend draw ``s`` modulo the spend model's number of
    draws: the two posteriors are independent, so the pairs are draws of the joint), or times
    the spend model's point prediction or the given spend, and streams the results customer
    block by customer block: memory does not grow with the number of draws. Interval ends are
    within (largest - smallest value over the draws) / 512 of the exact quantiles of the
    draws.

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
            "purchase (BetaGeoDynamicModel: its expected_purchases(data, t))",
        )
    if not hasattr(spend_model, "expected_average_spend"):
        # A given spend (a number, or one per customer) is checked before the expectations.
        _spend(spend_model, None, None, None)
    f = _clv_units_per_month(
        transaction_model, data, {"frequency": frequency, "recency": recency, "T": T}, time_unit
    )
    if not (
        isinstance(margin, numbers.Real)
        and not isinstance(margin, bool)
        and math.isfinite(margin)
        and margin >= 0
    ):
        raise _bad_parameter("margin", f"must be a finite number >= 0, got {margin!r}")
    if not (
        isinstance(discount_rate, numbers.Real)
        and not isinstance(discount_rate, bool)
        and math.isfinite(discount_rate)
        and discount_rate > -1
    ):
        raise _bad_parameter("discount_rate", f"must be a finite rate > -1, got {discount_rate!r}")
    if not (isinstance(method, str) and method in ("discrete", "continuous")):
        raise _bad_parameter("method", f"must be 'discrete' or 'continuous', got {method!r}")
    rfm = {"frequency": frequency, "recency": recency, "T": T}
    if level is not None:
        _check_level(level)
    bayesian = isinstance(transaction_model, BaseModel) and transaction_model._is_bayesian()
    if level is not None and not bayesian:
        return _delta_value_interval(
            transaction_model,
            spend_model,
            data,
            level,
            dict(
                time=time,
                discount_rate=discount_rate,
                time_unit=time_unit,
                margin=margin,
                method=method,
                frequency=frequency,
                recency=recency,
                T=T,
                monetary_value=monetary_value,
            ),
        )
    extra = (
        _posterior_value_terms(
            transaction_model, spend_model, data, frequency, monetary_value, margin
        )
        if bayesian
        else {}
    )
    with (
        _bayes.credible_request(level, **extra) if bayesian else contextlib.nullcontext() as request
    ):
        if method == "discrete":
            if not (isinstance(time, numbers.Integral) and not isinstance(time, bool) and time > 0):
                raise _bad_parameter(
                    "time", f"must be a positive whole number of months, got {time!r}"
                )
            if time > MAX_DISCRETE_MONTHS:
                raise _bad_parameter(
                    "time",
                    f"must be at most {MAX_DISCRETE_MONTHS} months (50 years) for the discrete "
                    f"method, got {time!r}: for a longer horizon use time=None, "
                    "method='continuous' (the infinite horizon, continuously discounted)",
                )
            months = np.arange(1, int(time) + 1, dtype=float)
            discount = (1.0 + discount_rate) ** -months
            # sum_i (E_i - E_{i-1}) D_i = sum_{i<n} E_i (D_i - D_{i+1}) + E_n D_n, with E_0 = 0.
            weights = np.append(discount[:-1] - discount[1:], discount[-1])
            purchases = transaction_model.weighted_expected_purchases(
                data, months * f, weights, **rfm
            )
        elif method == "continuous":
            if time is not None:
                raise _bad_parameter(
                    "time", "must be None for method='continuous' (the horizon is infinite)"
                )
            if not discount_rate > 0:
                raise _bad_parameter(
                    "discount_rate",
                    "must be > 0 for method='continuous' (else the value is infinite)",
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
    if request is not None:
        return _posterior_value(purchases, request, data, transaction_model, level)
    spend = _spend(spend_model, data, frequency, monetary_value)
    if ndim(spend) == 1 and len(spend) not in (1, np.size(purchases)):
        raise _bad_parameter(
            "spend_model",
            f"has {len(spend)} spends for {np.size(purchases)} customers: give one spend per "
            "transaction, or one per customer",
        )
    if ndim(spend) == 1 and not hasattr(spend_model, "expected_average_spend"):
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
        if ndim(purchases) == 0:
            spend = spend[0]
    value = purchases * spend * margin
    if isinstance(value, pd.Series):
        value.name = "clv"
        if isinstance(data, pd.DataFrame):
            names = getattr(transaction_model, "_column_names", None)
            column = names(data).get("weights") if callable(names) else None
            if column is not None and column in data.columns:
                value.attrs[ROWS_ATTR] = str(column)
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
    if not (
        isinstance(margin, numbers.Real)
        and not isinstance(margin, bool)
        and math.isfinite(margin)
        and margin >= 0
    ):
        raise _bad_parameter("margin", f"must be a finite number >= 0, got {margin!r}")
    frame, a = _table_columns(
        data,
        {"frequency": frequency, "T": T, "monetary_value": monetary_value},
        non_negative=("frequency", "T"),
    )
    x, age = a["frequency"], a["T"]
    rate = np.where(age > 0, x / np.where(age > 0, age, 1.0), 0.0)
    value = a["monetary_value"] * rate * margin * float(lifespan)
    return pd.Series(value, index=frame.index, name="historical_clv")


def _value_series(values: Any, name: str) -> pd.Series:
    """Values per customer as a float Series: finite numbers, at least one."""
    if isinstance(values, pd.Series):
        series = values
    elif type(values).__module__.startswith("polars") and hasattr(values, "to_pandas"):
        series = values.to_pandas()
    else:
        if values is None or isinstance(values, (str, bytes, dict)):
            raise _bad_parameter(name, f"must be numbers, one per customer, got {values!r}")
        try:
            array = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            raise _bad_parameter(name, "must be numbers, one per customer") from None
        if array.ndim != 1:
            raise _bad_parameter(
                name, f"must be one number per customer, got an array of shape {array.shape}"
            )
        series = pd.Series(array)
    if not (
        pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype)
    ) or pd.api.types.is_complex_dtype(series.dtype):
        raise _bad_parameter(name, f"must be numbers, got dtype {series.dtype}")
    series = series.astype(float)
    if len(series) == 0:
        raise _bad_parameter(name, "is empty: give one value per customer")
    bad = np.flatnonzero(~np.isfinite(series.to_numpy()))
    if bad.size:
        raise _bad_parameter(
            name,
            f"must be finite numbers (no NaN): row {int(bad[0])} "
            f"(index label {series.index[bad[0]]!r}) is {series.iloc[bad[0]]}",
        )
    return series


#: ``Series.attrs`` key that :func:`customer_lifetime_value` sets on values computed from a
#: table whose rows stand for several customers each (a weights column): it names that column,
#: so that the functions counting customers (:func:`clv_segments`,
#: :func:`acquisition_budget`) refuse the values without their weights instead of counting
#: rows as customers.
ROWS_ATTR = "customers_per_row"


def _row_weights(values: pd.Series, weights: Any, name: str, given: Any) -> np.ndarray | None:
    """Customers per row of ``values`` (``None``: each row is one customer).

    ``weights`` is matched to ``values`` by the rule of :func:`clvrs._input.align_to`
    (``given`` is the caller's input, whose pandas index decides); weights count customers,
    so they are whole numbers >= 0 with a positive total.
    """
    if weights is None:
        column = values.attrs.get(ROWS_ATTR)
        if column is not None:
            raise _bad_parameter(
                "weights",
                f"`{name}` was computed from rows that each stand for several customers (the "
                f"data's `{column}` column): pass weights=data[{column!r}] so that customers, "
                "not rows, are counted",
            )
        return None
    index = given.index if isinstance(given, pd.Series) else None
    counts = as_float_array(align_to(weights, index, len(values), "weights", name), "weights")
    if len(counts) == 1 and len(values) != 1:
        counts = np.full(len(values), counts[0])
    bad = np.flatnonzero(~(np.isfinite(counts) & (counts >= 0) & (np.mod(counts, 1) == 0)))
    if bad.size:
        row = int(bad[0])
        raise data_error(
            "weights",
            row,
            float(counts[row]),
            "must be a whole number >= 0 (the customers each row stands for)",
        )
    total = float(counts.sum())
    if not 0 < total <= 2.0**53:
        # Beyond 2**53 customers a float64 count is no longer exact (nor a count).
        raise _bad_parameter(
            "weights", f"must add up to between 1 and 2**53 customers, got {total:g}"
        )
    return counts


def _customer_share(series: pd.Series, counts: np.ndarray | None) -> pd.Series:
    """Each row's position among the customers ranked by value, as a share in (0, 1]: the
    customers up to and including the row's, over all customers. Ties are ranked by position,
    so that every tier is used; with one customer per row this is ``rank(pct=True)``."""
    if counts is None:
        return series.rank(method="first", pct=True)
    order = np.argsort(series.to_numpy(), kind="stable")
    through = np.empty(len(series))
    through[order] = np.cumsum(counts[order])
    return pd.Series(through / counts.sum(), index=series.index)


@dataclass
class Segmentation:
    """Customers grouped by value: each customer's segment and a table per segment."""

    #: Segment of each customer (ordered categorical, lowest value first).
    labels: pd.Series
    #: Per segment: customers, share of customers, total value, share of value, mean, min, max.
    table: pd.DataFrame

    def _overview(self) -> list[str]:
        total = _display.number(self.table["customers"].sum())
        value = float(self.table["value"].sum())
        return [
            f"{total} customers in {len(self.table)} segments, highest value first "
            f"(total value {value:,.6g}); each customer's segment in .labels"
        ]

    def __repr__(self) -> str:
        columns = ["customers", "share_of_customers", "share_of_value", "mean_value"]
        table = _display.text_table(self.table[columns], rows=10, what="segments")
        return f"Segmentation({self._overview()[0]})\n{table}"

    def _repr_html_(self) -> str:
        table = _display.html_table(self.table, what="segments")
        return _display.html_block("Segmentation", self._overview(), table)


def clv_segments(
    values: Any,
    segments: int | list[float] = 4,
    labels: list[str] | None = None,
    *,
    weights: Any = None,
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
    weights : pandas.Series or array-like, optional
        Customers each row stands for (whole numbers), for values of an aggregated table:
        tiers are then shares of customers, not of rows. Values that
        :func:`customer_lifetime_value` computed from a table with a weights column are
        refused without them.

    Returns
    -------
    Segmentation
        ``labels`` per row and the per-tier ``table`` (highest value first), whose
        ``share_of_value`` column shows how concentrated value is. A row of an aggregated table
        goes whole to the tier of its customers' position.
    """
    series = _value_series(values, "values")
    counts = _row_weights(series, weights, "values", values)
    if isinstance(segments, numbers.Integral) and not isinstance(segments, bool):
        if not 1 <= segments <= max(len(series), 1):
            raise _bad_parameter(
                "segments",
                f"must be a whole number of tiers from 1 to the number of customers "
                f"({len(series)}), got {segments!r}",
            )
        edges = np.linspace(0.0, 1.0, int(segments) + 1)
    else:
        rule = (
            "must be a whole number of tiers, or quantile edges rising strictly from 0 to 1 "
            f"(e.g. [0, 0.5, 0.8, 1]), got {segments!r}"
        )
        if isinstance(segments, (str, bytes, bool, dict)) or not np.iterable(segments):
            raise _bad_parameter("segments", rule)
        try:
            edges = np.asarray(list(segments), dtype=float)
        except (TypeError, ValueError):
            raise _bad_parameter("segments", rule) from None
        if (
            edges.ndim != 1
            or len(edges) < 2
            or edges[0] != 0
            or edges[-1] != 1
            or not np.all(np.diff(edges) > 0)  # NaN fails too
        ):
            raise _bad_parameter("segments", rule)
    n = len(edges) - 1
    if labels is None:
        prefix = "D" if n == 10 else "Q"
        labels = [f"{prefix}{i + 1}" for i in range(n)]
    if isinstance(labels, (str, bytes, dict)) or not np.iterable(labels):
        raise _bad_parameter("labels", f"must be a list of {n} names, got {labels!r}")
    labels = list(labels)
    if len(labels) != n:
        raise _bad_parameter("labels", f"needs {n} names, got {len(labels)}")
    try:
        distinct = len(set(labels)) == n
    except TypeError:
        distinct = False
    if not distinct:
        raise _bad_parameter("labels", f"must be {n} distinct names, got {labels!r}")
    # Rank first so that ties (many customers with the same value) still split evenly.
    ranks = _customer_share(series, counts)
    assigned = pd.cut(ranks, bins=list(edges), labels=list(labels), include_lowest=True)
    assigned.name = "segment"
    customers = pd.Series(np.ones(len(series)) if counts is None else counts, index=series.index)
    worth = series * customers
    total = float(worth.sum())
    grouped = series.groupby(assigned, observed=False)
    tier_value = worth.groupby(assigned, observed=False).sum()
    per_tier = customers.groupby(assigned, observed=False).sum()
    table = pd.DataFrame(
        {
            "customers": per_tier.astype("int64"),
            "share_of_customers": per_tier / customers.sum(),
            "value": tier_value,
            "share_of_value": tier_value / total if total else np.nan,
            "mean_value": tier_value / per_tier.where(per_tier > 0),
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
    weights: str | None = "weights",
) -> pd.DataFrame:
    """Classic RFM scores: quantile scores of recency, frequency and monetary value.

    Recency is scored on the time since the last purchase (``T - recency``): the most recent
    customers score highest. Ties are broken by position, so every score is used. Quantiles are
    of customers: a row of an aggregated table (a ``weights`` column, the customers each row
    stands for, as the models read it) counts as that many customers.

    Parameters
    ----------
    data : pandas.DataFrame
        Customer summaries.
    quantiles : int, default 4
        Number of scores per dimension.
    frequency, recency, T, monetary_value : str
        Column names.
    weights : str or None, default "weights"
        Column of customers per row, used when the data has it; None: each row is one customer.

    Returns
    -------
    pandas.DataFrame
        Columns ``r``, ``f``, ``m`` (1 .. ``quantiles``), ``rfm`` (e.g. "443") and ``score``
        (r + f + m), on the data's index.
    """
    if not (
        isinstance(quantiles, numbers.Integral)
        and not isinstance(quantiles, bool)
        and quantiles >= 2
    ):
        raise _bad_parameter("quantiles", f"must be a whole number >= 2, got {quantiles!r}")
    frame, a = _table_columns(
        data,
        {"frequency": frequency, "recency": recency, "T": T, "monetary_value": monetary_value},
    )
    since_last = pd.Series(a["T"] - a["recency"], index=frame.index)
    if weights is not None and not isinstance(weights, str):
        raise _bad_parameter("weights", f"must be a column name or None, got {weights!r}")
    counts = None
    if weights is not None and weights in frame.columns:
        counts = _row_weights(
            pd.Series(np.zeros(len(frame)), index=frame.index), frame[weights], "data", frame
        )

    def score(column: pd.Series) -> pd.Series:
        ranks = _customer_share(column, counts)
        return np.ceil(ranks * quantiles).clip(1, quantiles).astype("int64")

    out = pd.DataFrame(index=frame.index)
    out["r"] = score(-since_last)
    out["f"] = score(pd.Series(a["frequency"], index=frame.index))
    out["m"] = score(pd.Series(a["monetary_value"], index=frame.index))
    out["rfm"] = out["r"].astype(str) + out["f"].astype(str) + out["m"].astype(str)
    out["score"] = out["r"] + out["f"] + out["m"]
    return out


def acquisition_budget(
    clv: Any,
    acquisition_cost: Any = None,
    *,
    by: Any = None,
    target_ratio: float = 3.0,
    weights: Any = None,
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
    weights : pandas.Series or array-like, optional
        Customers each row stands for (whole numbers), for values of an aggregated table:
        ``customers`` and ``mean_clv`` then count customers, not rows. Values that
        :func:`customer_lifetime_value` computed from a table with a weights column are
        refused without them.

    Returns
    -------
    pandas.DataFrame
        Per group: ``customers``, ``mean_clv``, ``max_affordable_cac`` (mean CLV divided by the
        target ratio) and, when costs are given, ``acquisition_cost``, ``clv_to_cac`` and
        ``headroom`` (affordable minus actual cost per customer).
    """
    if not (
        isinstance(target_ratio, numbers.Real)
        and not isinstance(target_ratio, bool)
        and math.isfinite(target_ratio)
        and target_ratio > 0
    ):
        raise _bad_parameter("target_ratio", f"must be a finite number > 0, got {target_ratio!r}")
    values = _value_series(clv, "clv")
    counts = _row_weights(values, weights, "clv", clv)
    if by is None:
        groups = pd.Series("all", index=values.index, name="group")
    else:
        if isinstance(by, (str, bytes, dict)) or not np.iterable(by):
            raise _bad_parameter("by", f"must give each customer's group, got {by!r}")
        groups = by if isinstance(by, pd.Series) else pd.Series(list(by))
        if isinstance(by, pd.Series) and isinstance(clv, pd.Series):
            # Matched to the customers by the rule of `align_to`: by label when the labels
            # are the same (in any order), refused when they differ.
            aligned = align_to(by, clv.index, len(values), "by", "clv")
            groups = pd.Series(aligned.to_numpy(), index=values.index)
        elif len(groups) != len(values):
            raise _bad_parameter(
                "by", f"has {len(groups)} groups for {len(values)} customers (clv)"
            )
        else:
            groups = pd.Series(groups.to_numpy(), index=values.index)
        missing = np.flatnonzero(groups.isna().to_numpy())
        if missing.size:
            # A customer without a group would silently drop out of every group's figures.
            raise _bad_parameter(
                "by",
                f"customer at row {int(missing[0])} (index label "
                f"{values.index[missing[0]]!r}) has no group (missing, or absent from `by`'s "
                "index); give every customer a group",
            )
    customers = pd.Series(np.ones(len(values)) if counts is None else counts, index=values.index)
    keys = groups.to_numpy()
    per_group = customers.groupby(keys, observed=True).sum()
    worth = (values * customers).groupby(keys, observed=True).sum()
    table = pd.DataFrame(
        {"customers": per_group.astype("int64"), "mean_clv": worth / per_group.where(per_group > 0)}
    )
    table.index.name = "group" if by is None else (getattr(by, "name", None) or "group")
    table["max_affordable_cac"] = table["mean_clv"] / target_ratio
    if acquisition_cost is not None:
        if isinstance(acquisition_cost, dict | pd.Series):
            raw = (
                list(acquisition_cost.values())
                if isinstance(acquisition_cost, dict)
                else list(acquisition_cost.to_numpy(dtype=object))
            )
            # Text ("5") and booleans are not costs: refused, not read as numbers.
            if not all(isinstance(c, numbers.Real) and not isinstance(c, bool) for c in raw):
                raise _bad_parameter(
                    "acquisition_cost", "must map each group to a number (not text or a bool)"
                )
            try:
                given = pd.Series(acquisition_cost, dtype=float)
            except (TypeError, ValueError):
                raise _bad_parameter(
                    "acquisition_cost", "must map each group to a number"
                ) from None
            cost = given.reindex(table.index)
            absent = [g for g in table.index if g not in given.index]
            if absent:
                raise _bad_parameter("acquisition_cost", f"no cost given for groups {absent}")
        elif isinstance(acquisition_cost, numbers.Real) and not isinstance(acquisition_cost, bool):
            cost = pd.Series(float(acquisition_cost), index=table.index)
        else:
            raise _bad_parameter(
                "acquisition_cost",
                "must be a number, or a dict or Series of numbers by group, got "
                f"{acquisition_cost!r}",
            )
        bad = [g for g, c in cost.items() if not (math.isfinite(c) and c > 0)]
        if bad:
            raise _bad_parameter(
                "acquisition_cost",
                f"costs must be finite numbers > 0; group {bad[0]!r} has {cost[bad[0]]}",
            )
        table["acquisition_cost"] = cost
        table["clv_to_cac"] = table["mean_clv"] / cost
        table["headroom"] = table["max_affordable_cac"] - cost
    return table
