"""From transaction logs to model inputs: customer summaries, calibration/holdout splits and
tracking data. The grouping and period arithmetic run in the Rust core; this module only
factorises customer ids and converts timestamps."""

from __future__ import annotations

import datetime
import numbers
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from . import _core
from ._base import _bad_parameter, _check_n_jobs
from ._input import _native
from ._units import check_tracking_unit, record_unit
from .exceptions import ClvError, InvalidDataError, InvalidParameterError, NotFittedError

__all__ = ["calibration_and_holdout", "summarize_transactions", "tracking"]

_NAT = np.iinfo(np.int64).min
_AFTER_END = ("error", "exclude")
#: Most periods a tracking table covers (the expectation is a convolution over them).
_MAX_TRACKED = 5_000_000


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
        column = frame[name]
        if isinstance(column, pd.DataFrame):  # the name is on several columns
            err = InvalidDataError(
                f"column `{name}`: appears {column.shape[1]} times in the transactions; rename "
                "or drop the copies"
            )
            err.column, err.rule = name, "must be one column"
            raise err
        return column
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
#: Values of a text date column tried when inferring its format: its first ones and others
#: spread over the column.
_SAMPLE = 500
_UNIX_FIX = 'for Unix timestamps convert the column first, e.g. pd.to_datetime(col, unit="s")'


def _date_error(
    name: str, row: int | None, value: Any, message: str, rule: str
) -> InvalidDataError:
    where = f"column `{name}`" + ("" if row is None else f", row {row} (value {value!r})")
    err = InvalidDataError(f"{where}: {message}")
    err.column, err.row, err.rule = name, row, rule
    return err


def _first_missing(parsed: pd.Series, values: pd.Series) -> int | None:
    """The first row that parsed to NaT without being missing in the input, or None."""
    bad = parsed.isna().to_numpy() & values.notna().to_numpy()
    rows = np.flatnonzero(bad)
    return int(rows[0]) if rows.size else None


def _to_datetime(values: Any, name: str, **kwargs: Any) -> pd.Series:
    """``pd.to_datetime`` without its warnings, mixed timezones an error on the column."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return pd.to_datetime(values, **kwargs)
    except (ValueError, TypeError, OverflowError) as exc:
        text = str(exc)
        if "timezone" in text or "tz-aware" in text or "tz-naive" in text:
            raise _date_error(
                name,
                None,
                None,
                "holds dates with different timezones or UTC offsets (or aware and naive "
                "dates): convert them to one timezone first, e.g. "
                "pd.to_datetime(col, utc=True).dt.tz_convert(zone)",
                "one timezone",
            ) from None
        raise


def _sample_rows(values: pd.Series) -> np.ndarray:
    """Rows of a sample: the first non-missing values and others spread over the column."""
    n = len(values)
    head = np.flatnonzero(values.iloc[: 4 * _SAMPLE].notna().to_numpy())[:_SAMPLE]
    spread = np.linspace(0, n - 1, num=min(n, _SAMPLE), dtype=np.int64)
    spread = spread[_rows_of(values, spread).notna().to_numpy()]
    return np.unique(np.concatenate([head, spread]))


def _rows_of(values: pd.Series, rows: np.ndarray) -> pd.Series:
    """``values.iloc[rows]`` for a few rows. A column held by pyarrow is read row by row:
    pyarrow's take on a chunked array first joins every chunk into one (0.3 s for a column of
    10M text dates, twice per summary, where the sample's rows take milliseconds)."""
    arrow = isinstance(values.dtype, pd.ArrowDtype) or (
        isinstance(values.dtype, pd.StringDtype)
        and values.dtype.storage in ("pyarrow", "pyarrow_numpy")
    )
    if not arrow:
        return values.iloc[rows]
    # Each chunk's rows taken from that chunk alone (pandas' row-by-row ``iloc`` cost 15 us a
    # row: 0.05 s for a summary's two samples of a text column).
    chunked = values.array.__arrow_array__()
    lengths = np.array([len(chunk) for chunk in chunked.chunks], dtype=np.int64)
    ends = np.cumsum(lengths)
    which = np.searchsorted(ends, rows, side="right")
    picked: list[Any] = [None] * len(rows)
    for c in np.unique(which):
        at = np.flatnonzero(which == c)
        local = rows[at] - (ends[c] - lengths[c])
        for k, value in zip(at, chunked.chunk(int(c)).take(local).to_pylist()):
            picked[int(k)] = value
    return pd.Series(picked, index=values.index[rows], dtype=values.dtype, name=values.name)


def _numeric_times(values: pd.Series, name: str, datetime_format: str | None) -> pd.Series:
    """A numeric date column: refused (numbers are not dates), unless ``datetime_format`` says
    how its whole numbers read (e.g. ``%Y%m%d`` for CDNOW's 19970101)."""
    # Each distinct number is read once (a log has few distinct dates), then spread to rows.
    codes, distinct = pd.factorize(values, use_na_sentinel=True)
    present = codes >= 0
    row = int(np.argmax(present))
    real = not (
        pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_complex_dtype(values.dtype)
    )
    numbers = np.asarray(distinct, dtype=np.float64) if real and len(distinct) else None
    whole = numbers is not None and bool(
        np.all(np.isfinite(numbers) & (numbers == np.round(numbers)))
    )
    if datetime_format is None or not whole:
        first = values.iloc[row]
        first = first.item() if isinstance(first, np.generic) else first
        if whole and numbers is not None and 10_000_101 <= numbers[codes[row]] <= 99_991_231:
            fix = f'for YYYYMMDD numbers pass datetime_format="%Y%m%d"; {_UNIX_FIX}'
        elif whole:
            fix = f'{_UNIX_FIX}; for YYYYMMDD numbers pass datetime_format="%Y%m%d"'
        else:
            fix = f"is it the right column (an amount?); {_UNIX_FIX}"
        given = (
            f" (datetime_format {datetime_format!r} reads whole numbers only)"
            if datetime_format
            else ""
        )
        raise _date_error(
            name,
            row,
            first,
            f"holds numbers ({values.dtype}), not dates: clvrs does not guess what numbers "
            f"mean{given}; {fix}",
            "must be a date or time, not a number",
        )
    assert numbers is not None
    integers = numbers.astype(np.int64)
    if datetime_format == "%Y%m%d":
        # CDNOW's format, read arithmetically.
        year, month, day = integers // 10_000, integers // 100 % 100, integers % 100
        ok = (integers >= 10_000_101) & (integers <= 99_991_231) & (month >= 1) & (month <= 12)
        months = np.where(ok, (year - 1970) * 12 + month - 1, 0).astype("timedelta64[M]")
        start = (np.datetime64("1970-01", "M") + months).astype("datetime64[D]")
        length = ((start.astype("datetime64[M]") + 1).astype("datetime64[D]") - start).astype(
            np.int64
        )
        ok &= (day >= 1) & (day <= length)
        if not ok.all():
            row = int(np.flatnonzero(present & ~ok[codes])[0])
            raise _bad_format_row(name, row, values.iloc[row], datetime_format, given=True)
        read = (start + (day - 1).astype("timedelta64[D]")).astype("datetime64[s]")
    else:
        text = pd.Series(integers.astype(str), dtype=object)
        try:
            read = _text_times(text, name, datetime_format).to_numpy()
        except InvalidDataError as exc:  # name the row of the input, not of the distinct value
            position = exc.row if exc.row is not None else 0
            row = int(np.flatnonzero(codes == position)[0])
            raise _bad_format_row(
                name, row, values.iloc[row], datetime_format, given=True
            ) from None
    dates = read[codes]
    dates[~present] = np.datetime64("NaT")
    return pd.Series(dates, index=values.index, name=values.name)


def _bad_format_row(
    name: str, row: int, value: Any, datetime_format: str, *, given: bool
) -> ClvError:
    """A value that does not follow the format: the column's fault, unless the user's own
    ``datetime_format`` fails on the column's first value (then the format is wrong)."""
    value = value.item() if isinstance(value, np.generic) else value
    if given:
        return _date_error(
            name,
            row,
            value,
            f"must be a date or time in datetime_format {datetime_format!r}",
            "must be a date or time",
        )
    return _date_error(
        name,
        row,
        value,
        f"must be a date or time like the column's other values (format {datetime_format!r}, "
        "inferred from a sample of them); pass datetime_format if the dates are in another "
        "format",
        "must be a date or time",
    )


def _text_times(
    values: pd.Series, name: str, datetime_format: str | None, n_jobs: int | None = None
) -> pd.Series:
    """Dates written as text: parsed with ``datetime_format``, or with the one format that reads
    a sample of the column (inferred as pandas does, day-first and month-first readings
    compared: an ambiguous column is refused), checked on every row in one vectorised pass."""
    rows = _sample_rows(values)
    sample = _rows_of(values, rows)
    if datetime_format is not None:
        if not isinstance(datetime_format, str):
            raise _bad_parameter(
                "datetime_format", f"must be a strftime format string, got {datetime_format!r}"
            )
        if rows.size:
            try:
                first = _to_datetime(sample.iloc[:1], name, format=datetime_format)
            except ValueError:
                value = sample.iloc[0]
                raise _bad_parameter(
                    "datetime_format",
                    f"{datetime_format!r} does not read column `{name}` (row {int(rows[0])}: "
                    f"{value!r}); pass the format its dates are written in",
                ) from None
            del first
        fmt = datetime_format
    else:
        fmt = _infer_format(values, sample, rows, name)
    fast = _iso_text_times(values, name, fmt, n_jobs)
    if fast is not None:
        return fast
    # pandas' own guess (from the same first value) reads faster than that format given.
    own = datetime_format is None and rows.size and fmt == _guess(sample.iloc[0])
    parsed = _to_datetime(values, name, format=None if own else fmt, errors="coerce")
    row = _first_missing(parsed, values)
    if row is not None:
        raise _bad_format_row(name, row, values.iloc[row], fmt, given=datetime_format is not None)
    return parsed


def _text_chunks(values: pd.Series) -> list[tuple[np.ndarray, np.ndarray, Any]] | None:
    """The Arrow buffers of a text column held by pyarrow (pandas' ``str`` dtype, which polars
    and pyarrow input become), for the core to read in place: per chunk, the offsets (shifted
    to the chunk's offset), the bytes and, when it has nulls, each row's validity. None for
    any other column (object columns may mix text with other values: those take pandas' path)."""
    dtype = values.dtype
    if isinstance(dtype, pd.StringDtype):
        if dtype.storage not in ("pyarrow", "pyarrow_numpy"):
            return None
    elif not (isinstance(dtype, pd.ArrowDtype) and str(dtype.pyarrow_dtype) in _ARROW_TEXT):
        return None
    chunked = values.array.__arrow_array__()
    pieces = chunked.chunks if chunked.num_chunks <= _MAX_CHUNKS else [chunked.combine_chunks()]
    chunks = []
    for chunk in pieces:
        kind = _ARROW_TEXT.get(str(chunk.type))
        if kind is None:
            return None
        if not len(chunk):
            continue
        _, offsets, data = chunk.buffers()
        starts = np.frombuffer(offsets, dtype=kind)[chunk.offset : chunk.offset + len(chunk) + 1]
        text = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
        valid = chunk.is_valid().to_numpy(zero_copy_only=False) if chunk.null_count else None
        chunks.append((starts, text, valid))
    return chunks


#: Most chunks handed to the core (it reads fewer than 2^20; more are combined into one).
_MAX_CHUNKS = 4096
#: Arrow text types and the dtype of their offsets.
_ARROW_TEXT = {"string": np.int32, "large_string": np.int64}


def _iso_text_times(values: pd.Series, name: str, fmt: str, n_jobs: int | None) -> pd.Series | None:
    """Text dates in a fixed-width ISO format (``%Y-%m-%d``, and with ``%H:%M:%S``) read by the
    core straight from their Arrow buffers, as pandas reads them (microseconds, nulls NaT). None
    when the column or the format is another, or when any value is not exactly in the format:
    pandas then reads the column (and names the first value it cannot read)."""
    if fmt not in _ISO_FORMATS:
        return None
    chunks = _text_chunks(values)
    if chunks is None:
        return None
    _check_n_jobs(n_jobs)
    micros = _core.parse_text_times(chunks, str(name), fmt, n_jobs=n_jobs)
    if micros is None:
        return None
    # (A fresh array from the core: pandas >= 3 would copy it by default, 0.25 s at 10M rows.)
    return pd.Series(
        micros.view("datetime64[us]"), index=values.index, name=values.name, copy=False
    )


#: The formats :func:`_iso_text_times` reads in the core.
_ISO_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S")


def _guess(value: Any, dayfirst: bool = False) -> str | None:
    """pandas' guess of the format of one text date, without its warnings."""
    if not isinstance(value, str):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return guess_datetime_format(value, dayfirst=dayfirst)


def _infer_format(values: pd.Series, sample: pd.Series, rows: np.ndarray, name: str) -> str:
    if not rows.size:
        return "ISO8601"  # nothing to parse: every row is missing (refused later, by row)
    first = sample.iloc[0]
    if not isinstance(first, str):
        raise _date_error(
            name, int(rows[0]), first, "must be a date or time", "must be a date or time"
        )
    month_first, day_first = _guess(first), _guess(first, dayfirst=True)
    candidates = [f for f in (month_first,) if f]
    alternative = None
    # The day-first reading competes only for formats that put the day before the month
    # without a leading year (pandas' guess of "1997-01-02" with dayfirst is "%Y-%d-%m").
    if (
        day_first
        and day_first != month_first
        and not day_first.startswith("%Y")
        and "%d" in day_first
        and "%m" in day_first
        and day_first.index("%d") < day_first.index("%m")
    ):
        alternative = day_first
        candidates.append(day_first)
    candidates.append("ISO8601")
    reads = {}
    for fmt in candidates:
        try:
            parsed = _to_datetime(sample, name, format=fmt, errors="coerce")
        except InvalidDataError:
            raise
        except ValueError:
            continue
        reads[fmt] = _first_missing(parsed, sample)
    whole = [fmt for fmt, bad in reads.items() if bad is None]
    if not whole:
        # The format that reads the most of the sample, to name its first failure.
        best = (month_first or day_first) if (month_first or day_first) in reads else None
        if best is None:
            at = 0
            message = (
                "must be a date or time (no date format could be inferred from it); pass "
                'datetime_format, e.g. "%Y-%m-%d"'
            )
        else:
            at = reads[best] or 0
            message = (
                f"must be a date or time like the column's first value {first!r} (format "
                f"{best!r}); pass datetime_format if the dates are in another format"
            )
        row = int(rows[at])
        raise _date_error(name, row, values.iloc[row], message, "must be a date or time")
    if alternative is not None and month_first in whole and alternative in whole:
        # Both readings fit the sample: the whole column decides, or the user must.
        fits = [
            fmt
            for fmt in (month_first, alternative)
            if _first_missing(_to_datetime(values, name, format=fmt, errors="coerce"), values)
            is None
        ]
        if len(fits) == 2:
            raise _date_error(
                name,
                None,
                None,
                f"dates such as {first!r} read both month-first and day-first (no day after "
                f"the 12th in the column): pass datetime_format={month_first!r} or "
                f"datetime_format={alternative!r}",
                "an unambiguous date format",
            )
        if fits:
            return fits[0]
    return whole[0]


def _times(
    values: pd.Series,
    name: str,
    datetime_format: str | None,
    zone: Any = None,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, int, Any]:
    """Times as int64 counts of their own unit (no conversion copy), ns per unit, and the
    column's timezone (None when naive). Aware times become their wall clock, after conversion
    to ``zone`` when one is given.

    Datetime columns are taken as they are (every resolution pandas has; no year limit beyond
    it); text is parsed (see :func:`_text_times`); numbers are refused unless
    ``datetime_format`` says how whole numbers read; anything else is converted by pandas and
    refused at its first row that is not a date."""
    series = values
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        series = series.astype(dtype.categories.dtype)
        dtype = series.dtype
    if not pd.api.types.is_datetime64_any_dtype(dtype):
        if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            series = _numeric_times(series, name, datetime_format)
        elif pd.api.types.is_string_dtype(dtype) and _holds_text(series):
            series = _text_times(series, name, datetime_format, n_jobs)
        else:
            series = _object_times(series, name, datetime_format)
    tz = getattr(series.dtype, "tz", None)
    if tz is not None:
        if zone is not None:
            series = series.dt.tz_convert(zone)
        series = series.dt.tz_localize(None)  # periods follow the wall clock
    array = series.to_numpy()
    if array.dtype.kind != "M":  # e.g. a pyarrow-backed timestamp column
        unit_name = getattr(series.dtype, "unit", "ns")
        array = np.asarray(series.astype(np.dtype(f"datetime64[{unit_name}]")))
    unit = np.datetime_data(array.dtype)[0]
    if unit not in _UNIT_NS:
        array, unit = array.astype("datetime64[s]"), "s"  # days, weeks: whole seconds
    return _native(array.view(np.int64)), _UNIT_NS[unit], tz


def _holds_text(values: pd.Series) -> bool:
    """Whether a column of strings or objects holds text (by a sample)."""
    if not pd.api.types.is_object_dtype(values.dtype):
        return True  # a string dtype
    sample = values.iloc[_sample_rows(values)]
    return bool(len(sample)) and all(isinstance(v, str) for v in sample)


def _object_times(values: pd.Series, name: str, datetime_format: str | None) -> pd.Series:
    """A column of date objects (datetime, date, Timestamp), or of anything else."""
    rows = _sample_rows(values)
    sample = values.iloc[rows]
    numbers = [
        (int(row), v)
        for row, v in zip(rows, sample)
        if isinstance(v, (int, float, np.number, bool, np.bool_))
    ]
    if numbers:
        row, value = numbers[0]
        raise _date_error(
            name,
            row,
            value.item() if isinstance(value, np.generic) else value,
            "holds numbers, not dates: clvrs does not guess what numbers mean; "
            f'for YYYYMMDD numbers pass datetime_format="%Y%m%d" on an integer column; '
            f"{_UNIX_FIX}",
            "must be a date or time, not a number",
        )
    try:
        parsed = _to_datetime(values, name, errors="coerce")
    except (ValueError, TypeError):
        parsed = None
    bad = _first_missing(parsed, values) if parsed is not None else 0
    if parsed is None or bad is not None:
        row = bad or 0
        raise _date_error(
            name, row, values.iloc[row], "must be a date or time", "must be a date or time"
        )
    return parsed


def _read_log(
    transactions: Any,
    customer_id_col: str,
    datetime_col: str,
    monetary_value_col: str | None,
    datetime_format: str | None,
    n_jobs: int | None = None,
) -> _Log:
    for argument, column in (
        ("customer_id_col", customer_id_col),
        ("datetime_col", datetime_col),
        ("monetary_value_col", monetary_value_col),
    ):
        if column is None and argument == "monetary_value_col":
            continue
        if not isinstance(column, (str, int, np.integer)) or isinstance(column, (bool, np.bool_)):
            raise _bad_parameter(argument, f"must be a column name, got {column!r}")
    if datetime_format is not None and not isinstance(datetime_format, str):
        raise _bad_parameter(
            "datetime_format", f"must be a strftime format string, got {datetime_format!r}"
        )
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
    times, unit_ns, tz = _times(
        _column(frame, datetime_col), datetime_col, datetime_format, n_jobs=n_jobs
    )
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
    text = _text_chunks(ids)
    if text is not None:
        # Text held by pyarrow: hashed and sorted in the core, from the Arrow buffers.
        _check_n_jobs(n_jobs)
        codes, first_rows = _core.factorize_text(text, str(customer_id_col), n_jobs=n_jobs)
        return _Log(
            codes=codes,
            ids=pd.Index(ids.array.take(first_rows)),
            times=times,
            unit_ns=unit_ns,
            amounts=amounts,
            kind=kind,
            offset=0,
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
    if not len(rank):  # every id is missing: the core names the first row
        rank = np.zeros(1, dtype=np.int64)
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


def _end(
    value: Any, datetime_format: str | None, name: str, zone: Any = None, *, formats: bool = True
) -> Any:
    """A period end as a naive ``pandas.Timestamp`` on the wall clock (None when not given); an
    aware one is first converted to ``zone`` (the transactions' timezone, when theirs are
    aware). Numbers are refused as in the date column; NaT and NaN are not dates."""
    if value is None:
        return None

    def refuse(why: str = "") -> InvalidParameterError:
        return _bad_parameter(
            name,
            f"must be a date (a string like '1997-09-30', a datetime or a Timestamp), got "
            f"{value!r}{why}",
        )

    if isinstance(value, (bool, np.bool_)):
        raise refuse()
    if isinstance(value, (numbers.Number, np.number)) and not isinstance(value, np.datetime64):
        real = float(value) if isinstance(value, (numbers.Real, np.number)) else np.nan
        whole = bool(np.isfinite(real)) and real == int(real)
        if not (datetime_format and whole):
            hint = '; for YYYYMMDD numbers pass datetime_format="%Y%m%d"' if formats else ""
            raise refuse(
                f" (a number: clvrs does not guess what numbers mean{hint})" if whole else ""
            )
        value = str(int(real))
    if not isinstance(value, (str, datetime.date, np.datetime64)):
        raise refuse()
    attempts: list[dict[str, Any]] = [{}]
    if isinstance(value, str) and datetime_format is not None:
        attempts.insert(0, {"format": datetime_format})
    stamp = None
    for kwargs in attempts:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stamp = pd.Timestamp(pd.to_datetime(value, **kwargs))
            break
        except (ValueError, TypeError, OverflowError):
            continue
    if stamp is None or pd.isna(stamp):
        raise refuse()
    if stamp.tzinfo is not None:
        if zone is not None:
            stamp = stamp.tz_convert(zone)
        stamp = stamp.tz_localize(None)
    return stamp


def _in_unit(stamp: Any, unit_ns: int) -> int | None:
    """A timestamp as a count of ``unit_ns`` nanoseconds (floored), None beyond int64."""
    if stamp is None:
        return None
    moment = stamp.to_datetime64()
    ns = int(moment.view(np.int64)) * _UNIT_NS[np.datetime_data(moment.dtype)[0]]
    count = ns // unit_ns
    return count if -(2**63) < count < 2**63 else None


def _ends(log: _Log, *stamps: Any) -> list[int | None]:
    """Period ends in the units of the log's times. An end beyond the range of those units
    (e.g. the year 3000 against nanosecond times) coarsens the times to seconds, which leaves
    every period (hours and longer) as it was."""
    values = [_in_unit(stamp, log.unit_ns) for stamp in stamps]
    if any(stamp is not None and v is None for stamp, v in zip(stamps, values)):
        factor = _UNIT_NS["s"] // log.unit_ns
        log.times = np.where(log.times == _NAT, _NAT, np.floor_divide(log.times, factor))
        log.unit_ns = _UNIT_NS["s"]
        values = [_in_unit(stamp, log.unit_ns) for stamp in stamps]
    return values


def _end_ns(value: Any, datetime_format: str | None, name: str, zone: Any = None) -> int | None:
    """A period end as ns on the wall clock (see :func:`_end`), refused outside the years
    1677-2262 that nanoseconds cover."""
    stamp = _end(value, datetime_format, name, zone)
    ns = _in_unit(stamp, 1)
    if stamp is not None and ns is None:
        raise _bad_parameter(
            name, f"is outside the years 1677-2262 that nanosecond timestamps cover, got {stamp}"
        )
    return ns


def _check_options(freq: Any, freq_multiplier: Any, **flags: Any) -> float:
    """Check the period options and boolean flags before any work; the multiplier as a float."""
    if not isinstance(freq, str) or freq.upper() not in ("H", "D", "W", "M"):
        raise _bad_parameter("freq", f"must be one of H, D, W, M, got {freq!r}")
    number = isinstance(freq_multiplier, (numbers.Real, np.number)) and not isinstance(
        freq_multiplier, (bool, np.bool_)
    )
    multiplier = float(freq_multiplier) if number else np.nan
    if not (np.isfinite(multiplier) and multiplier > 0):
        raise _bad_parameter(
            "freq_multiplier", f"must be a finite number > 0, got {freq_multiplier!r}"
        )
    for name, flag in flags.items():
        if not isinstance(flag, (bool, np.bool_)):
            raise _bad_parameter(name, f"must be True or False, got {flag!r}")
    return multiplier


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
    _check_n_jobs(n_jobs)
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


def _gaps(
    log: _Log,
    result: dict[str, Any],
    *,
    freq: str,
    freq_multiplier: float,
    after_ns: int | None = None,
    n_jobs: int | None = None,
) -> dict[str, np.ndarray]:
    """The inter-purchase statistics (``count``, ``litt``, ``last``, ``previous``) of the
    customers of a summary ``result``, in its row order: gaps between a customer's distinct
    periods over the same rows, in the summary's unit."""
    gaps = _core.transaction_gaps(
        log.codes,
        log.times,
        len(log.ids),
        freq,
        float(freq_multiplier),
        int(result["end_period"]),
        after_ns=after_ns,
        time_unit_ns=log.unit_ns,
        customer_offset=log.offset,
        n_jobs=n_jobs,
    )
    codes = result["customer"]
    return {key: values[codes] for key, values in gaps.items()}


def _nothing_before(end: Any, name: str, log: _Log) -> InvalidParameterError:
    """The error for a period end before every transaction (nothing left to summarise)."""
    present = log.times[log.times != _NAT]
    first = (
        pd.Timestamp(present.min().astype(f"datetime64[{_unit_name(log.unit_ns)}]"))
        if present.size
        else None
    )
    return _bad_parameter(
        name, f"{end} is before every transaction (the first is on {first}): nothing to summarise"
    )


def _unit_name(unit_ns: int) -> str:
    return next(name for name, ns in _UNIT_NS.items() if ns == unit_ns)


def _frame(
    log: _Log, customer_id_col: str, columns: dict[str, np.ndarray], codes: np.ndarray
) -> Any:
    if len(codes) == len(log.ids) and (not len(codes) or codes[-1] == len(codes) - 1):
        # Every customer, in code order (codes are increasing): the ids as they are, without a
        # take (0.07 s for a million text ids).
        ids = log.ids
    else:
        ids = log.ids[codes] if len(codes) else log.ids[:0]
    if log.kind == "polars":
        import polars as pl

        data = {customer_id_col: pl.Series(customer_id_col, pd.Series(ids).to_numpy())}
        data.update({k: pl.Series(k, v) for k, v in columns.items()})
        return pl.DataFrame(data)
    index = pd.Index(ids, name=customer_id_col)
    # The core's arrays are fresh and owned by nobody else: one block each instead of a stacked
    # copy (0.09 s at 10M rows).
    return pd.DataFrame(columns, index=index, copy=False)


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
    regularity: bool = False,
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
        Columns with the customer id (any type: int, string, categorical) and the timestamp:
        datetimes of any resolution (naive or aware; any year), date objects, or text. Numbers
        are not dates and are refused, unless ``datetime_format`` says how their digits read.
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
        ``strftime`` format of text timestamps, or of whole numbers' digits (``"%Y%m%d"`` for
        ``19970101``). Without it, the one format that reads a sample of the column (pandas'
        guess, day-first and month-first compared) is checked on every row; a column both
        readings fit is refused as ambiguous.
    after_end : {"error", "exclude"}, default "error"
        Transactions after ``observation_period_end``: an error naming the first such row, or
        left out with a warning that counts them.
    allow_negative : bool, default False
        Accept negative amounts (returns); otherwise they are an error.
    regularity : bool, default False
        Add ``litt``: the sum over each customer's repeat purchases of the log of the time since
        the previous purchase (the gaps between consecutive distinct periods, in the summary's
        unit: periods divided by ``freq_multiplier``), 0 without repeat purchases. It is what
        the regularity models (:class:`BetaGeoCNBDModel`, :class:`ModifiedBetaGeoCNBDModel`)
        need beyond frequency, recency and T, and is BTYDplus' ``elog2cbs`` field of that name
        (in weeks there: ``freq="D", freq_multiplier=7``). Computed in a second pass over the
        log, so it costs nothing when not asked for.
    n_jobs : int, optional
        Threads (see :class:`BetaGeoModel`).

    Returns
    -------
    pandas.DataFrame or polars.DataFrame
        One row per customer: indexed by customer id (pandas; sorted), or with the id as the
        first column (polars). Columns ``frequency``, ``recency``, ``T``, with
        ``monetary_value_col`` ``monetary_value``, and with ``regularity=True`` ``litt``. A
        pandas result records its time unit in
        ``attrs["time_unit"]`` (``freq``, after ``freq_multiplier`` when that is not 1: ``"W"``,
        ``"7D"``); models fitted on it keep the unit and refuse data in another. Polars frames
        have no ``attrs``: they are unit-free (give ``fit(..., time_unit=...)``).

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
    if not isinstance(after_end, str) or after_end not in _AFTER_END:
        raise _bad_parameter("after_end", f"must be one of {_AFTER_END}, got {after_end!r}")
    _check_options(
        freq,
        freq_multiplier,
        include_first_transaction=include_first_transaction,
        allow_negative=allow_negative,
        regularity=regularity,
    )
    log = _read_log(
        transactions,
        customer_id_col,
        datetime_col,
        monetary_value_col,
        datetime_format,
        n_jobs=n_jobs,
    )
    names = (customer_id_col, datetime_col, monetary_value_col or "amount")
    end = _end(observation_period_end, datetime_format, "observation_period_end", log.tz)
    (end_at,) = _ends(log, end)
    result = _summarize(
        log,
        names,
        freq=freq,
        freq_multiplier=freq_multiplier,
        end_ns=end_at,
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
    if not len(result["customer"]):
        raise _nothing_before(end, "observation_period_end", log)
    columns: dict[str, np.ndarray] = {
        k: result[k] for k in ("frequency", "recency", "T", "monetary_value") if k in result
    }
    if regularity:
        gaps = _gaps(log, result, freq=freq, freq_multiplier=freq_multiplier, n_jobs=n_jobs)
        columns["litt"] = gaps["litt"]
    summary = _frame(log, customer_id_col, columns, result["customer"])
    return record_unit(summary, freq, freq_multiplier)


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
    regularity: bool = False,
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
    design (counted in a warning); customers first seen in the holdout are not rows. With
    ``regularity=True`` the calibration summary has ``litt_cal`` (see
    :func:`summarize_transactions`; fit the regularity models with
    ``columns={"litt": "litt_cal", ...}``).

    Returns
    -------
    pandas.DataFrame or polars.DataFrame
        One row per calibration customer; a pandas result records its time unit in
        ``attrs["time_unit"]`` (see :func:`summarize_transactions`).
    """
    _check_options(
        freq,
        freq_multiplier,
        include_first_transaction=include_first_transaction,
        allow_negative=allow_negative,
        regularity=regularity,
    )
    if calibration_period_end is None:
        raise _bad_parameter("calibration_period_end", "must be a date, got None")
    log = _read_log(
        transactions,
        customer_id_col,
        datetime_col,
        monetary_value_col,
        datetime_format,
        n_jobs=n_jobs,
    )
    names = (customer_id_col, datetime_col, monetary_value_col or "amount")
    cal_stamp = _end(calibration_period_end, datetime_format, "calibration_period_end", log.tz)
    obs_stamp = _end(observation_period_end, datetime_format, "observation_period_end", log.tz)
    cal_end, obs_end = _ends(log, cal_stamp, obs_stamp)
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
    if not len(cal["customer"]):
        raise _nothing_before(cal_stamp, "calibration_period_end", log)
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
    if regularity:
        gaps = _gaps(log, cal, freq=freq, freq_multiplier=freq_multiplier, n_jobs=n_jobs)
        columns["litt_cal"] = gaps["litt"]
    columns["frequency_holdout"] = frequency_holdout
    if monetary_value_col is not None:
        monetary_holdout[rows] = hold["monetary_value"][present]
        columns["monetary_value_holdout"] = monetary_holdout
    duration = (hold["end_period"] - cal["end_period"]) / float(freq_multiplier)
    columns["duration_holdout"] = np.full(len(codes), duration)
    return record_unit(_frame(log, customer_id_col, columns, codes), freq, freq_multiplier)


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
    if not callable(getattr(model, "expected_purchases_new_customer", None)) or not hasattr(
        model, "_params_list"
    ):
        raise _bad_parameter(
            "model",
            "must be a fitted purchase model with expected_purchases_new_customer (e.g. "
            f"BetaGeoModel), got {type(model).__name__}",
        )
    if "params_" not in vars(model):
        raise NotFittedError(f"{type(model).__name__} is not fitted: tracking needs its estimates")
    _check_options(freq, freq_multiplier)
    check_tracking_unit(model, freq, freq_multiplier)
    log = _read_log(
        transactions, customer_id_col, datetime_col, None, datetime_format, n_jobs=n_jobs
    )
    names = (customer_id_col, datetime_col, "amount")
    obs_stamp = _end(observation_period_end, datetime_format, "observation_period_end", log.tz)
    cal_stamp = _end(calibration_period_end, datetime_format, "calibration_period_end", log.tz)
    obs_end, cal_end = _ends(log, obs_stamp, cal_stamp)
    summary = _summarize(
        log,
        names,
        freq=freq,
        freq_multiplier=freq_multiplier,
        end_ns=obs_end,
        include_first=False,
        exclude_after_end=True,
        allow_negative=True,
        track=True,
        n_jobs=n_jobs,
    )
    first = summary["first_period"]
    if not len(first):
        raise _nothing_before(obs_stamp, "observation_period_end", log)
    start, end = int(first.min()), int(summary["end_period"])
    if end - start >= _MAX_TRACKED:
        raise _bad_parameter(
            "freq",
            f"{freq!r} gives {end - start + 1} periods from the first purchase to the end; "
            f"tracking covers at most {_MAX_TRACKED}: pass a longer period",
        )
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
    if cal_end is not None:
        cal_period = int(
            _core.period_index(np.array([cal_end], dtype=np.int64), freq, log.unit_ns)[0]
        )
        frame["calibration"] = periods <= cal_period
    else:
        frame["calibration"] = True
    return frame


def _period_starts(periods: np.ndarray, freq: str) -> pd.DatetimeIndex:
    """The start of each period: nanosecond dates, or seconds for years beyond 1677-2262."""
    code = freq.upper()
    if code == "M":
        starts = np.datetime64("1970-01", "M") + periods.astype("timedelta64[M]")
    elif code == "W":
        starts = np.datetime64("1969-12-29", "D") + (7 * periods).astype("timedelta64[D]")
    elif code == "H":
        starts = np.datetime64("1970-01-01T00", "h") + periods.astype("timedelta64[h]")
    else:
        starts = np.datetime64("1970-01-01", "D") + periods.astype("timedelta64[D]")
    seconds = starts.astype("datetime64[s]")
    inside = not len(seconds) or (
        seconds.min() >= np.datetime64("1677-09-22", "s")
        and seconds.max() <= np.datetime64("2262-04-11", "s")
    )
    return pd.DatetimeIndex(seconds.astype("datetime64[ns]") if inside else seconds)
