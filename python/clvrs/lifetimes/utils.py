"""lifetimes' ``utils``: transaction summaries, tracking, CLV and the input checks.

The summaries come from clvrs' :func:`clvrs.summarize_transactions` and
:func:`clvrs.calibration_and_holdout` with lifetimes' lenient semantics: transactions after
``observation_period_end`` are dropped silently (lifetimes does not warn).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from ..data import calibration_and_holdout, summarize_transactions
from ..exceptions import ConvergenceError, InvalidDataError, InvalidParameterError

__all__ = [
    "ConvergenceError",
    "calculate_alive_path",
    "calibration_and_holdout_data",
    "expected_cumulative_transactions",
    "summary_data_from_transaction_data",
]


def _quietly(function: Any, *args: Any, **kwargs: Any) -> Any:
    """Call a clvrs summary without its notice about rows after the period end (lifetimes
    drops them without a word)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*after observation_period_end.*")
        return function(*args, **kwargs)


def summary_data_from_transaction_data(
    transactions: Any,
    customer_id_col: str,
    datetime_col: str,
    monetary_value_col: str | None = None,
    datetime_format: str | None = None,
    observation_period_end: Any = None,
    freq: str = "D",
    freq_multiplier: float = 1,
    include_first_transaction: bool = False,
) -> pd.DataFrame:
    """lifetimes' customer summary: frequency, recency, T (and monetary_value), indexed by
    customer id; purchases in one period of ``freq`` count once; transactions after
    ``observation_period_end`` are left out."""
    out = _quietly(
        summarize_transactions, transactions, customer_id_col, datetime_col,
        monetary_value_col=monetary_value_col, observation_period_end=observation_period_end,
        freq=freq, freq_multiplier=freq_multiplier,
        include_first_transaction=include_first_transaction, datetime_format=datetime_format,
        after_end="exclude",
    )  # fmt: skip
    return _plain(out)


def _plain(frame: Any) -> pd.DataFrame:
    """A clvrs summary as lifetimes' plain float frame (no clvrs metadata)."""
    out = pd.DataFrame(frame).copy()
    out.attrs = {}
    return out


def calibration_and_holdout_data(
    transactions: Any,
    customer_id_col: str,
    datetime_col: str,
    calibration_period_end: Any,
    observation_period_end: Any = None,
    freq: str = "D",
    freq_multiplier: float = 1,
    datetime_format: str | None = None,
    monetary_value_col: str | None = None,
    include_first_transaction: bool = False,
) -> pd.DataFrame:
    """lifetimes' calibration/holdout table: the calibration summary (``*_cal``),
    ``frequency_holdout`` (and ``monetary_value_holdout``) and ``duration_holdout``.

    Raises
    ------
    InvalidParameterError
        "There is no data available ..." (lifetimes' words, then clvrs' reason naming the
        argument) when a period end is before every transaction.
    """
    try:
        out = _quietly(
            calibration_and_holdout, transactions, customer_id_col, datetime_col,
            calibration_period_end, observation_period_end=observation_period_end, freq=freq,
            freq_multiplier=freq_multiplier, datetime_format=datetime_format,
            monetary_value_col=monetary_value_col,
            include_first_transaction=include_first_transaction,
        )  # fmt: skip
    except InvalidParameterError as err:
        if "nothing to summarise" not in str(err):
            raise
        raise InvalidParameterError(
            f"There is no data available: {err}; check `observation_period_end` and "
            "`calibration_period_end` against the dates in `transactions`"
        ) from err
    return _plain(out)


def _to_dates(values: Any, datetime_format: str | None, column: str) -> pd.Series:
    """A date column parsed as lifetimes does (``pd.to_datetime`` with ``datetime_format``);
    numbers given with a format (CDNOW's 19970101) are read as text in that format."""
    series = pd.Series(values)
    if datetime_format is None and (
        pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype)
    ):
        # pandas reads numbers as nanoseconds since 1970: CDNOW's 19970101 became one instant.
        first = series.dropna().iloc[0] if series.notna().any() else None
        err = InvalidDataError(
            f"column `{column}`: holds numbers ({series.dtype}, e.g. {first}), not dates; for "
            'YYYYMMDD numbers pass datetime_format="%Y%m%d" where the function takes it, or '
            'convert the column first: pd.to_datetime(col.astype(str), format="%Y%m%d")'
        )
        err.column, err.rule = column, "must hold dates, not numbers"
        raise err
    if datetime_format is not None and pd.api.types.is_numeric_dtype(series.dtype):
        series = series.astype("int64").astype(str) if series.notna().all() else series.astype(str)
    try:
        return pd.to_datetime(series, format=datetime_format)
    except (ValueError, TypeError) as err:
        raise InvalidDataError(f"column `{column}`: not dates ({err})") from None


def _find_first_transactions(
    transactions: pd.DataFrame,
    customer_id_col: str,
    datetime_col: str,
    monetary_value_col: str | None = None,
    datetime_format: str | None = None,
    observation_period_end: Any = None,
    freq: str = "D",
) -> pd.DataFrame:
    """One row per customer and period of ``freq`` with a purchase (values summed within a
    period), the period as a ``pandas.Period``, and ``first``: whether it is the customer's
    first period. Periods after ``observation_period_end`` are left out."""
    columns = [customer_id_col, datetime_col] + ([monetary_value_col] if monetary_value_col else [])
    _require(transactions, *columns)
    frame = transactions[columns].copy()
    dates = _to_dates(frame[datetime_col], datetime_format, datetime_col)
    end = dates.max() if observation_period_end is None else observation_period_end
    if isinstance(end, pd.Period):
        end = end.to_timestamp()
    end = pd.Timestamp(_to_dates([end], datetime_format, "observation_period_end").iloc[0])
    frame[datetime_col] = dates.dt.to_period(freq)
    frame = frame.loc[frame[datetime_col].dt.start_time <= end]
    frame = frame.sort_values([customer_id_col, datetime_col], kind="stable")
    keys = [customer_id_col, datetime_col]
    if monetary_value_col:
        per_period = frame.groupby(keys, sort=False, as_index=False)[monetary_value_col].sum()
    else:
        per_period = frame.drop_duplicates(keys)[keys]
    per_period = per_period.reset_index(drop=True)
    per_period["first"] = ~per_period[customer_id_col].duplicated()
    return per_period[columns + ["first"]]


def _whole(name: str, value: Any, minimum: int = 0) -> int:
    """A whole-number argument (a count or a number of periods) as an int, or a typed error
    naming it (numpy's "negative dimensions" or a silently truncated 2.5 otherwise)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer, float, np.floating))
        or not (np.isfinite(value) and float(value).is_integer() and value >= minimum)
    ):
        raise InvalidParameterError(f"`{name}` must be a whole number >= {minimum}, got {value!r}")
    return int(value)


def _require(transactions: Any, *columns: str) -> None:
    present = getattr(transactions, "columns", None)
    if present is None:
        raise InvalidParameterError(
            f"`transactions` must be a DataFrame, got {type(transactions).__name__}"
        )
    for column in columns:
        if column not in present:
            err = InvalidDataError(
                f"column `{column}`: not found in the transactions (columns: {list(present)})"
            )
            err.column, err.rule = column, "must be a column of the transactions"
            raise err


def calculate_alive_path(
    model: Any, transactions: pd.DataFrame, datetime_col: str, t: int, freq: str = "D"
) -> pd.Series:
    """P(alive) of one customer at the end of each period 0..t of ``freq`` since their first
    purchase, from their transactions (``transactions`` holds one customer's rows)."""
    steps = _whole("t", t) + 1
    _require(transactions, datetime_col)
    dates = _to_dates(transactions[datetime_col], None, datetime_col)
    if dates.empty:
        raise InvalidDataError(f"column `{datetime_col}`: no transactions for the customer")
    periods = dates.dt.to_period(freq)
    offsets = np.unique((periods - periods.min()).map(lambda d: d.n).to_numpy(dtype=np.int64))
    age = np.arange(max(steps, int(offsets.max()) + 1), dtype=float)
    bought = np.zeros(age.size, dtype=bool)
    bought[offsets] = True
    frequency = np.cumsum(bought) - 1.0
    last = np.where(bought, age, np.nan)
    recency = pd.Series(last).ffill().fillna(0).to_numpy()
    alive = model.conditional_probability_alive(frequency, recency, age)
    return pd.Series(np.asarray(alive, dtype=float))


def _scale_time(age: Any) -> float:
    """lifetimes' time scale: 1 / the largest age."""
    return float(1.0 / np.max(np.asarray(age, dtype=float)))


def _check_inputs(frequency: Any, recency: Any = None, T: Any = None,
                  monetary_value: Any = None) -> None:  # fmt: skip
    """lifetimes' summary checks; raises :class:`~clvrs.exceptions.InvalidDataError` (a
    ``ValueError``) naming the column and the first offending row."""
    f = np.asarray(frequency, dtype=float)

    def fail(column: str, rows: np.ndarray, rule: str, values: np.ndarray) -> None:
        row = int(np.flatnonzero(rows)[0])
        err = InvalidDataError(f"column `{column}`, row {row} (value {values[row]:g}): {rule}")
        err.column, err.row, err.rule = column, row, rule
        raise err

    if recency is not None:
        r = np.asarray(recency, dtype=float)
        if T is not None:
            age = np.asarray(T, dtype=float)
            if any(x.shape[0] == 0 for x in (r, f, age)):
                raise InvalidDataError("frequency, recency and T must not be empty")
            if np.any(r > age):
                fail("recency", r > age, "must not exceed T", r)
        if np.any((f == 0) & (r != 0)):
            fail("recency", (f == 0) & (r != 0), "must be 0 when frequency is 0", r)
        if np.any(r < 0):
            fail("recency", r < 0, "must be >= 0", r)
    if np.any(f != np.floor(f)):
        fail("frequency", f != np.floor(f), "must be a whole number", f)
    if monetary_value is not None:
        m = np.asarray(monetary_value, dtype=float)
        if np.any(m <= 0):
            fail("monetary_value", m <= 0, "must be > 0", m)


#: lifetimes' periods of ``freq`` per month.
_PER_MONTH = {"W": 4.345, "M": 1.0, "D": 30.0, "H": 30.0 * 24}


def _customer_lifetime_value(
    transaction_prediction_model: Any,
    frequency: Any,
    recency: Any,
    T: Any,
    monetary_value: Any,
    time: int = 12,
    discount_rate: float = 0.01,
    freq: str = "D",
) -> Any:
    """lifetimes' discrete CLV: for each month 1..``time``, the expected purchases in that
    month times ``monetary_value``, discounted by ``(1 + discount_rate) ** month``.

    ``freq`` is the data's time unit ('W', 'M', 'D' or 'H'). Values are matched to customers by
    position; the result has the index of ``frequency`` (when it is a Series), or is a number
    when the customer's values are single numbers.
    """
    if freq not in _PER_MONTH:
        raise InvalidParameterError(
            f"`freq` must be one of {sorted(_PER_MONTH)} (the data's time unit), got {freq!r}"
        )
    if (
        isinstance(time, bool)
        or not isinstance(time, (int, np.integer, float, np.floating))
        or not (np.isfinite(time) and float(time).is_integer() and time >= 0)
    ):
        raise InvalidParameterError(f"`time` must be a whole number of months >= 0, got {time!r}")
    time = int(time)
    single = all(np.ndim(v) == 0 for v in (frequency, recency, T, monetary_value))
    rate = float(discount_rate)
    if not (np.isfinite(rate) and rate > -1):
        raise InvalidParameterError(f"`discount_rate` must be a finite number > -1, got {rate!r}")
    factor = _PER_MONTH[freq]
    from .._input import align_to

    index = frequency.index if isinstance(frequency, pd.Series) else None
    f = np.asarray(frequency, dtype=float)
    # lifetimes lines spends up with customers by label; other labels would give NaN rows
    monetary_value = align_to(monetary_value, index, f.size, "monetary_value", "frequency")
    spend = np.asarray(monetary_value, dtype=float)
    if spend.ndim and spend.shape != f.shape:
        raise InvalidDataError(
            f"`monetary_value` has {spend.size} values for {f.size} customers: give one per "
            "customer"
        )
    months = np.arange(1, int(time) + 1, dtype=float)
    discount = (1.0 + rate) ** -months
    # sum_k d_k (E(k m) - E((k - 1) m)) = sum_k E(k m) (d_k - d_{k+1}), with d_{time+1} = 0.
    weights = discount - np.append(discount[1:], 0.0)
    from ..models._rfm import RfmModel
    from .fitters import _RfmFitter

    fitter = transaction_prediction_model
    arrays = {"frequency": f, "recency": np.asarray(recency, float), "T": np.asarray(T, float)}
    model = fitter._model if isinstance(fitter, _RfmFitter) else fitter
    if isinstance(model, RfmModel):  # a shim fitter or a clvrs model: one pass in the core
        if isinstance(fitter, _RfmFitter):
            fixed, odd = fitter._lenient(arrays)
        else:
            fixed, odd = arrays, np.zeros(f.size, dtype=bool)
        total = np.asarray(
            model.weighted_expected_purchases(
                horizons=(months * factor).tolist(), weights=weights.tolist(), **fixed
            ),
            dtype=float,
        ).copy()
        if odd.any():
            alive, base, _ = fitter._alive(arrays)
            total[odd] *= alive[odd] / base[odd]
    else:  # any object with lifetimes' predict(t, frequency, recency, T)
        predict = fitter.predict
        total = np.zeros(f.size)
        for k, w in zip(months, weights):
            total += w * np.asarray(predict(k * factor, *arrays.values()), dtype=float)
    if single:  # scalars in, a number out (f"{clv:.2f}", float(clv))
        return np.float64(np.asarray(spend * total, dtype=float).reshape(-1)[0])
    return pd.Series(spend * total, index=index, name="clv")


def expected_cumulative_transactions(
    model: Any,
    transactions: pd.DataFrame,
    datetime_col: str,
    customer_id_col: str,
    t: int,
    datetime_format: str | None = None,
    freq: str = "D",
    set_index_date: bool = False,
    freq_multiplier: int = 1,
) -> pd.DataFrame:
    """Actual and model-expected cumulative repeat transactions of the cohort in the log, at
    the end of each ``freq_multiplier`` periods of ``freq`` over the first ``t`` periods
    (lifetimes' columns ``actual`` and ``predicted``; indexed by step number, or by period
    with ``set_index_date``).

    A customer whose first purchase falls in period ``j`` is expected to have made
    ``model.expected_number_of_purchases_up_to_time((i - j) / freq_multiplier)`` repeat
    purchases by the start of period ``i``.
    """
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or t < 1:
        raise InvalidParameterError(f"`t` must be a whole number of periods >= 1, got {t!r}")
    step = int(freq_multiplier)
    if step < 1 or step != freq_multiplier:
        raise InvalidParameterError(
            f"`freq_multiplier` must be a whole number >= 1, got {freq_multiplier!r}"
        )
    _require(transactions, datetime_col, customer_id_col)
    dates = _to_dates(transactions[datetime_col], datetime_format, datetime_col)
    start = dates.min().to_period(freq)
    periods = _find_first_transactions(
        transactions, customer_id_col, datetime_col, datetime_format=datetime_format,
        observation_period_end=start + int(t), freq=freq,
    )  # fmt: skip
    offset = (periods[datetime_col] - start).map(lambda d: d.n).to_numpy(dtype=np.int64)
    first = periods["first"].to_numpy()
    cohort = pd.Series(offset[first]).value_counts().sort_index()
    repeat_counts = np.bincount(offset[~first], minlength=int(t) + 1)
    steps = np.arange(step, int(t) + 1, step)
    actual = [int(repeat_counts[:i].sum()) for i in steps]
    new_customer = getattr(model, "expected_number_of_purchases_up_to_time", None)
    if new_customer is None:  # a clvrs model
        new_customer = model.expected_purchases_new_customer
    predicted = []
    for i in steps:
        ages = i - cohort.index.to_numpy()
        keep = ages > 0
        expected = new_customer(ages[keep] / step)
        predicted.append(float(np.sum(np.asarray(expected) * cohort.to_numpy()[keep])))
    if set_index_date:
        index: Any = pd.period_range(start, periods=int(t) + 1, freq=freq)[step - 1 : -1 : step]
    else:
        index = range(len(steps))
    return pd.DataFrame({"actual": actual, "predicted": predicted}, index=index)
