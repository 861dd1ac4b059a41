"""From transaction logs to model inputs: customer summaries, calibration/holdout splits and
tracking data. The grouping and period arithmetic run in the Rust core; this module only
factorises customer ids and converts timestamps."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import _core
from ._base import _bad_parameter
from ._input import _native
from .exceptions import InvalidDataError

__all__ = ["calibration_and_holdout", "summarize_transactions", "tracking"]

_NAT = np.iinfo(np.int64).min
_AFTER_END = ("error", "exclude")


@dataclass
class _Log:
    """A transaction log reduced to arrays: dense customer codes, times, amounts."""

    codes: np.ndarray  # int64, -1 for a missing id
    ids: Any  # the distinct ids, in code order
    times: np.ndarray  # int64 time units since the epoch, NaT for missing
    unit_ns: int  # nanoseconds per unit of `times`
    amounts: np.ndarray | None
    kind: str  # "pandas" or "polars": the type of the result
    offset: int  # subtracted from `codes` to give the code (dense integer ids)
    tz: Any = None  # the timezone of the dates (None when naive); `times` are its wall clock


def _is_polars(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "polars"


def _is_arrow(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "pyarrow"


def _column(frame: Any, name: str) -> Any:
    try:
        return frame[name]
    except (KeyError, Exception) as exc:  # polars raises ColumnNotFoundError
        if isinstance(exc, KeyError) or type(exc).__name__ == "ColumnNotFoundError":
            err = InvalidDataError(
                f"column `{name}`: not found in the transactions (columns: "
                f"{list(getattr(frame, 'columns', frame))})"
            )
            err.column, err.rule = name, "must be present"
            raise err from None
        raise


_UNIT_NS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


def _times(
    values: pd.Series, name: str, datetime_format: str | None, zone: Any = None
) -> tuple[np.ndarray, int, Any]:
    """Times as int64 counts of their own unit (no conversion copy), ns per unit, and the
    column's timezone (None when naive). Aware times become their wall clock, after conversion
    to ``zone`` when one is given."""
    series = values
    if not pd.api.types.is_datetime64_any_dtype(series):
        try:
            series = pd.to_datetime(series, format=datetime_format)
        except (ValueError, TypeError) as exc:
            # Find the first row that does not parse, to name it.
            for row, value in enumerate(values):
                try:
                    if not pd.isna(value):
                        pd.to_datetime(value, format=datetime_format)
                except (ValueError, TypeError):
                    hint = (
                        f"format {datetime_format}"
                        if datetime_format
                        else "or pass datetime_format"
                    )
                    err = InvalidDataError(
                        f"column `{name}`, row {row} (value {value!r}): must be a date or time "
                        f"({hint})"
                    )
                    err.column, err.row, err.rule = name, row, "must be a parsable date or time"
                    raise err from None
            raise _bad_parameter("datetime_format", str(exc)) from exc
    tz = getattr(series.dtype, "tz", None)
    if tz is not None:
        if zone is not None:
            series = series.dt.tz_convert(zone)
        series = series.dt.tz_localize(None)  # periods follow the wall clock
    array = series.to_numpy()
    unit = np.datetime_data(array.dtype)[0]
    if unit not in _UNIT_NS:
        array, unit = array.astype("datetime64[ns]"), "ns"
    return _native(array.view(np.int64)), _UNIT_NS[unit], tz


def _read_log(
    transactions: Any,
    customer_id_col: str,
    datetime_col: str,
    monetary_value_col: str | None,
    datetime_format: str | None,
) -> _Log:
    kind = "pandas"
    frame = transactions
    if _is_arrow(frame):
        frame = frame.to_pandas()
    elif _is_polars(frame):
        kind = "polars"
        names = [customer_id_col, datetime_col] + (
            [monetary_value_col] if monetary_value_col else []
        )
        # Column by column, without a copy where polars allows (numbers, datetimes): the
        # columns are only read.
        frame = {name: _polars_to_pandas(_column(frame, name)) for name in names}
    elif not isinstance(frame, pd.DataFrame):
        raise _bad_parameter(
            "transactions", "must be a pandas or polars DataFrame or a pyarrow Table"
        )
    ids = _column(frame, customer_id_col)
    times, unit_ns, tz = _times(_column(frame, datetime_col), datetime_col, datetime_format)
    amounts = _amounts(frame, monetary_value_col)
    if (
        pd.api.types.is_integer_dtype(ids.dtype)
        and not isinstance(ids.dtype, pd.CategoricalDtype)
        and not (isinstance(ids.dtype, pd.api.extensions.ExtensionDtype) and ids.isna().any())
    ):
        values = _native(ids.to_numpy(dtype=np.int64))
        lo, hi = (int(values.min()), int(values.max())) if len(values) else (0, -1)
        if hi - lo <= 4 * len(values) + 1_000_000:
            # Integer ids in a dense range are their own codes (id - smallest id): no hashing.
            return _Log(
                codes=values,
                ids=np.arange(lo, hi + 1, dtype=values.dtype),
                times=times,
                unit_ns=unit_ns,
                amounts=amounts,
                kind=kind,
                offset=lo,
                tz=tz,
            )
    # Factorise by hashing, then renumber the codes in sorted id order (cheaper than sorting
    # all rows: only the distinct ids are sorted).
    codes, uniques = pd.factorize(ids, sort=False, use_na_sentinel=True)
    keys = np.asarray(uniques)
    if keys.dtype == object and pd.api.types.infer_dtype(keys, skipna=False) == "string":
        keys = keys.astype(str)  # fixed-width: sorted in C, not by Python comparisons
    try:
        order = np.argsort(keys, kind="stable")
    except TypeError:  # ids of mixed types: keep first-appearance order
        order = np.arange(len(uniques))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    codes = np.where(codes >= 0, rank[np.maximum(codes, 0)], -1)
    uniques = uniques.take(order) if hasattr(uniques, "take") else np.asarray(uniques)[order]
    return _Log(
        codes=_native(codes, dtype=np.int64),
        ids=uniques,
        times=times,
        unit_ns=unit_ns,
        amounts=amounts,
        kind=kind,
        offset=0,
        tz=tz,
    )


def _polars_to_pandas(series: Any) -> pd.Series:
    """A polars column as a pandas Series, sharing memory for numbers and datetimes."""
    dtype = series.dtype
    # (numpy has no timezones: an aware column would come out as naive UTC, not the wall
    # clock that pandas input gives, so it goes through pandas.)
    aware = getattr(dtype, "time_zone", None) is not None
    if series.null_count() == 0 and (dtype.is_numeric() or dtype.is_temporal()) and not aware:
        try:
            return pd.Series(series.to_numpy(), name=series.name, copy=False)
        except (TypeError, ValueError):
            pass
    return series.to_pandas()


def _amounts(frame: Any, monetary_value_col: str | None) -> np.ndarray | None:
    amounts = None
    if monetary_value_col is not None:
        raw = _column(frame, monetary_value_col)
        if pd.api.types.is_float_dtype(raw.dtype):
            return _native(raw.to_numpy(dtype=np.float64))
        try:
            amounts = _native(pd.to_numeric(raw).to_numpy(dtype=np.float64))
        except (ValueError, TypeError):
            bad = pd.to_numeric(raw, errors="coerce").isna() & raw.notna()
            row = int(np.flatnonzero(bad.to_numpy())[0])
            err = InvalidDataError(
                f"column `{monetary_value_col}`, row {row}: must be a number, got {raw.iloc[row]!r}"
            )
            err.column, err.row, err.rule = monetary_value_col, row, "must be a number"
            raise err from None
    return amounts


def _end_ns(value: Any, datetime_format: str | None, name: str, zone: Any = None) -> int | None:
    """A period end as ns on the wall clock; an aware one is first converted to ``zone`` (the
    transactions' timezone, when theirs are aware)."""
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(pd.to_datetime(value, format=datetime_format))
    except (ValueError, TypeError) as exc:
        raise _bad_parameter(name, f"must be a date, got {value!r}") from exc
    if stamp.tzinfo is not None:
        if zone is not None:
            stamp = stamp.tz_convert(zone)
        stamp = stamp.tz_localize(None)
    return int(stamp.value)


def _summarize(
    log: _Log,
    names: tuple[str, str, str],
    *,
    freq: str,
    freq_multiplier: float,
    end_ns: int | None,
    include_first: bool,
    exclude_after_end: bool,
    allow_negative: bool,
    after_ns: int | None = None,
    track: bool = False,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    if not isinstance(freq, str):
        raise _bad_parameter("freq", f"must be one of H, D, W, M, got {freq!r}")
    return dict(
        _core.summarize_transactions(
            log.codes,
            log.times,
            log.amounts,
            len(log.ids),
            names,
            freq=freq,
            freq_multiplier=float(freq_multiplier),
            end_ns=end_ns,
            include_first=include_first,
            exclude_after_end=exclude_after_end,
            allow_negative=allow_negative,
            after_ns=after_ns,
            track=track,
            time_unit_ns=log.unit_ns,
            customer_offset=log.offset,
            n_jobs=n_jobs,
        )
    )


def _frame(
    log: _Log, customer_id_col: str, columns: dict[str, np.ndarray], codes: np.ndarray
) -> Any:
    ids = log.ids[codes] if len(codes) else log.ids[:0]
    if log.kind == "polars":
        import polars as pl

        data = {customer_id_col: pl.Series(customer_id_col, pd.Series(ids).to_numpy())}
        data.update({k: pl.Series(k, v) for k, v in columns.items()})
        return pl.DataFrame(data)
    index = pd.Index(ids, name=customer_id_col)
    return pd.DataFrame(columns, index=index)


def summarize_transactions(
    transactions: Any,
    customer_id_col: str,
    datetime_col: str,
    monetary_value_col: str | None = None,
    observation_period_end: Any = None,
    freq: str = "D",
    freq_multiplier: float = 1,
    include_first_transaction: bool = False,
    datetime_format: str | None = None,
    *,
    after_end: str = "error",
    allow_negative: bool = False,
    n_jobs: int | None = None,
) -> Any:
    """Customer summaries (frequency, recency, T, monetary value) from a transaction log.

    The semantics of ``lifetimes``' ``summary_data_from_transaction_data``: timestamps are
    floored to ``freq`` periods (``H`` hours, ``D`` days, ``W`` weeks from Monday, ``M``
    calendar months); a customer's purchases in the same period are merged (amounts summed);
    ``frequency`` is the number of distinct periods minus one, ``recency`` the number of periods
    from the first purchase to the last, ``T`` from the first to the end of observation, both
    divided by ``freq_multiplier``; ``monetary_value`` is the mean of the per-period sums
    excluding the first (0 when there is no repeat purchase). With
    ``include_first_transaction=True`` the first period counts in both.

    Parameters
    ----------
    transactions : pandas.DataFrame, polars.DataFrame or pyarrow.Table
        One row per transaction.
    customer_id_col, datetime_col : str
        Columns with the customer id (any type: int, string, categorical) and the timestamp
        (datetime, or strings parsed with ``datetime_format``).
    monetary_value_col : str, optional
        Column with the transaction amount.
    observation_period_end : date-like, optional
        End of observation; the latest transaction if omitted.
    freq : {"D", "W", "M", "H"}, default "D"
        The period length.
    freq_multiplier : float, default 1
        recency and T are divided by it (e.g. ``freq="H", freq_multiplier=24`` for fractional
        days).
    include_first_transaction : bool, default False
        Count the first period in frequency and in the mean amount (not for model fitting).
    datetime_format : str, optional
        ``strftime`` format of string timestamps.
    after_end : {"error", "exclude"}, default "error"
        Transactions after ``observation_period_end``: an error naming the first such row, or
        left out with a warning that counts them.
    allow_negative : bool, default False
        Accept negative amounts (returns); otherwise they are an error.
    n_jobs : int, optional
        Threads (see :class:`BetaGeoModel`).

    Returns
    -------
    pandas.DataFrame or polars.DataFrame
        One row per customer: indexed by customer id (pandas; sorted), or with the id as the
        first column (polars). Columns ``frequency``, ``recency``, ``T`` and, with
        ``monetary_value_col``, ``monetary_value``.

    Raises
    ------
    InvalidDataError
        Missing columns, null ids, null or unparsable times, NaN or (without
        ``allow_negative``) negative amounts, transactions after the end: naming the column and
        the first offending row.

    Examples
    --------
    >>> import clvrs
    >>> log = clvrs.datasets.load_cdnow_transactions()
    >>> summary = clvrs.summarize_transactions(
    ...     log, "customer_id", "date", observation_period_end="1997-09-30", freq="W",
    ...     after_end="exclude",
    ... )  # doctest: +SKIP
    """
    if after_end not in _AFTER_END:
        raise _bad_parameter("after_end", f"must be one of {_AFTER_END}, got {after_end!r}")
    log = _read_log(
        transactions, customer_id_col, datetime_col, monetary_value_col, datetime_format
    )
    names = (customer_id_col, datetime_col, monetary_value_col or "amount")
    result = _summarize(
        log,
        names,
        freq=freq,
        freq_multiplier=freq_multiplier,
        end_ns=_end_ns(observation_period_end, datetime_format, "observation_period_end", log.tz),
        include_first=include_first_transaction,
        exclude_after_end=after_end == "exclude",
        allow_negative=allow_negative,
        n_jobs=n_jobs,
    )
    if result["excluded_after_end"]:
        warnings.warn(
            f"{result['excluded_after_end']} transactions after observation_period_end were "
            "left out",
            UserWarning,
            stacklevel=2,
        )
    columns: dict[str, np.ndarray] = {
        k: result[k] for k in ("frequency", "recency", "T", "monetary_value") if k in result
    }
    return _frame(log, customer_id_col, columns, result["customer"])


def calibration_and_holdout(
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
    *,
    allow_negative: bool = False,
    n_jobs: int | None = None,
) -> Any:
    """A calibration summary with each customer's holdout behaviour.

    Customers who first bought by ``calibration_period_end`` are summarised over the
    calibration period (``frequency_cal``, ``recency_cal``, ``T_cal``, ``monetary_value_cal``,
    as :func:`summarize_transactions`); their holdout columns count the distinct purchase
    periods after the calibration end up to ``observation_period_end``
    (``frequency_holdout``), the mean of those periods' amounts (``monetary_value_holdout`` --
    per-period sums, consistent with the summary; ``lifetimes`` averages raw rows here), and the
    holdout length in periods (``duration_holdout``). Later transactions are left out by
    design (counted in a warning); customers first seen in the holdout are not rows.

    Returns
    -------
    pandas.DataFrame or polars.DataFrame
        One row per calibration customer.
    """
    log = _read_log(
        transactions, customer_id_col, datetime_col, monetary_value_col, datetime_format
    )
    names = (customer_id_col, datetime_col, monetary_value_col or "amount")
    cal_end = _end_ns(calibration_period_end, datetime_format, "calibration_period_end", log.tz)
    obs_end = _end_ns(observation_period_end, datetime_format, "observation_period_end", log.tz)
    common = dict(
        freq=freq,
        freq_multiplier=freq_multiplier,
        allow_negative=allow_negative,
        n_jobs=n_jobs,
    )
    cal = _summarize(
        log,
        names,
        end_ns=cal_end,
        include_first=include_first_transaction,
        exclude_after_end=True,
        **common,  # type: ignore[arg-type]
    )
    hold = _summarize(
        log,
        names,
        end_ns=obs_end,
        include_first=True,
        exclude_after_end=True,
        after_ns=cal_end,
        **common,  # type: ignore[arg-type]
    )
    if hold["end_period"] < cal["end_period"]:
        raise _bad_parameter(
            "observation_period_end", "must not come before calibration_period_end"
        )
    if hold["excluded_after_end"]:
        warnings.warn(
            f"{hold['excluded_after_end']} transactions after observation_period_end were left out",
            UserWarning,
            stacklevel=2,
        )
    codes = cal["customer"]
    position = pd.Series(np.arange(len(codes)), index=codes)
    frequency_holdout = np.zeros(len(codes))
    monetary_holdout = np.zeros(len(codes))
    found = position.reindex(hold["customer"])
    present = found.notna().to_numpy()
    rows = found.to_numpy()[present].astype(np.int64)
    frequency_holdout[rows] = hold["frequency"][present]
    columns = {
        "frequency_cal": cal["frequency"],
        "recency_cal": cal["recency"],
        "T_cal": cal["T"],
    }
    if monetary_value_col is not None:
        columns["monetary_value_cal"] = cal["monetary_value"]
    columns["frequency_holdout"] = frequency_holdout
    if monetary_value_col is not None:
        monetary_holdout[rows] = hold["monetary_value"][present]
        columns["monetary_value_holdout"] = monetary_holdout
    duration = (hold["end_period"] - cal["end_period"]) / float(freq_multiplier)
    columns["duration_holdout"] = np.full(len(codes), duration)
    return _frame(log, customer_id_col, columns, codes)


def tracking(
    model: Any,
    transactions: Any,
    customer_id_col: str,
    datetime_col: str,
    calibration_period_end: Any = None,
    observation_period_end: Any = None,
    freq: str = "D",
    freq_multiplier: float = 1,
    datetime_format: str | None = None,
    *,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Actual vs model-expected repeat transactions of the whole customer base, per period.

    For every period from the first purchase in the log to the end of observation: the actual
    repeat transactions (distinct purchase periods after each customer's first), and the
    model's expectation, the sum over customers acquired by then of the new-customer
    expectation :math:`E[X(t - t_0)]` since their first period :math:`t_0`, both per period
    (``actual``, ``expected``) and cumulative. The data behind a tracking plot; the
    calibration end, if given, is marked in the ``calibration`` column.

    Returns
    -------
    pandas.DataFrame
        Indexed by period start date, with ``actual``, ``expected``, ``actual_cumulative``,
        ``expected_cumulative`` and ``calibration`` (bool: the period is in the calibration
        span).
    """
    log = _read_log(transactions, customer_id_col, datetime_col, None, datetime_format)
    names = (customer_id_col, datetime_col, "amount")
    summary = _summarize(
        log,
        names,
        freq=freq,
        freq_multiplier=freq_multiplier,
        end_ns=_end_ns(observation_period_end, datetime_format, "observation_period_end", log.tz),
        include_first=False,
        exclude_after_end=True,
        allow_negative=True,
        track=True,
        n_jobs=n_jobs,
    )
    first = summary["first_period"]
    start, end = int(first.min()), int(summary["end_period"])
    periods = np.arange(start, end + 1)
    actual = np.zeros(len(periods))
    for period, count in summary["repeat_counts"]:
        actual[period - start] += count
    # Customers acquired in each period, and E[X(k)] for k = 0 .. span (in model time units).
    births = np.bincount(first - start, minlength=len(periods)).astype(float)
    ages = np.arange(len(periods), dtype=float) / float(freq_multiplier)
    cumulative_new = np.asarray(model.expected_purchases_new_customer(ages), dtype=float)
    expected_cumulative = np.convolve(births, cumulative_new)[: len(periods)]
    expected = np.diff(expected_cumulative, prepend=0.0)
    frame = pd.DataFrame(
        {
            "actual": actual,
            "expected": expected,
            "actual_cumulative": np.cumsum(actual),
            "expected_cumulative": expected_cumulative,
        },
        index=_period_starts(periods, freq),
    )
    frame.index.name = "period"
    if calibration_period_end is not None:
        cal_ns = _end_ns(calibration_period_end, datetime_format, "calibration_period_end", log.tz)
        assert cal_ns is not None
        cal_period = int(_core.period_index(np.array([cal_ns], dtype=np.int64), freq)[0])
        frame["calibration"] = periods <= cal_period
    else:
        frame["calibration"] = True
    return frame


def _period_starts(periods: np.ndarray, freq: str) -> pd.DatetimeIndex:
    code = freq.upper()
    if code == "M":
        months = (np.datetime64("1970-01", "M") + periods.astype("timedelta64[M]")).astype(
            "datetime64[ns]"
        )
        return pd.DatetimeIndex(months)
    if code == "W":
        monday = np.datetime64("1969-12-29", "D")
        return pd.DatetimeIndex(
            (monday + (7 * periods).astype("timedelta64[D]")).astype("datetime64[ns]")
        )
    epoch = np.datetime64("1970-01-01T00", "h") if code == "H" else np.datetime64("1970-01-01", "D")
    step = "timedelta64[h]" if code == "H" else "timedelta64[D]"
    return pd.DatetimeIndex((epoch + periods.astype(step)).astype("datetime64[ns]"))
