"""Time-varying covariates: a transaction log and a covariate panel, prepared once for
:class:`~clvrs.ParetoNBDDynamicModel` (fits and predictions reuse it).

Each row of the covariate panel gives one customer's covariate values from a date on: they
hold until that customer's next row (the last row holds indefinitely, so it also serves
predictions beyond the end of observation). Dates are floored to ``freq`` periods like the
transactions, so a row applies from the start of its period.
"""

from __future__ import annotations

import numbers
import re
import warnings
from typing import Any

import numpy as np
import pandas as pd

from . import _core
from ._base import _bad_parameter
from ._input import _native
from .data import _AFTER_END, _end_ns, _is_arrow, _is_polars, _read_log, _times
from .exceptions import InvalidDataError

__all__ = ["DynamicCovariateData"]

_NAT = np.iinfo(np.int64).min


def _error(column: str, row: int | None, rule: str, message: str) -> InvalidDataError:
    err = InvalidDataError(
        f"column `{column}`" + (f", row {row}" if row is not None else "") + f": {message}"
    )
    err.column, err.row, err.rule = column, row, rule
    return err


def _nanoseconds(
    times: np.ndarray, unit_ns: int, column: str, rows: np.ndarray | None = None
) -> np.ndarray:
    """Times in their own unit as int64 nanoseconds, refusing those outside that range
    (years 1677-2262) instead of wrapping around; ``rows`` are their rows in the input."""
    limit = np.iinfo(np.int64).max // unit_ns
    outside = np.flatnonzero(np.abs(times) > limit)
    if outside.size:
        at = int(outside[0])
        raise _error(
            column,
            at if rows is None else int(rows[at]),
            "within the nanosecond range",
            "is outside the years 1677-2262 that nanosecond timestamps cover",
        )
    return times * unit_ns


def _show(value: Any) -> str:
    """A customer id as the caller wrote it (numpy scalars as plain Python values)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _frame(data: Any, name: str) -> pd.DataFrame:
    if _is_arrow(data) or _is_polars(data):
        return data.to_pandas()  # type: ignore[no-any-return]
    if isinstance(data, pd.DataFrame):
        return data
    raise _bad_parameter(name, "must be a pandas or polars DataFrame or a pyarrow Table")


class DynamicCovariateData:
    """Transactions with time-varying covariates, for :class:`~clvrs.ParetoNBDDynamicModel`.

    Parameters
    ----------
    transactions : pandas.DataFrame, polars.DataFrame or pyarrow.Table
        One row per transaction, with ``customer_id_col`` and ``datetime_col``. Summarised as
        :func:`clvrs.summarize_transactions` does (purchases in the same period merged).
    covariates : pandas.DataFrame, polars.DataFrame or pyarrow.Table
        The covariate panel: ``customer_id_col``, ``covariate_datetime_col`` and the covariate
        columns. A row gives the customer's values from the start of its date's period until
        the customer's next row; the last row holds indefinitely. Every customer needs a row
        on or before the period of its first purchase; rows of customers without
        transactions are ignored.
    customer_id_col, datetime_col : str
        Column names of the transaction log (the panel uses the same id column).
    covariate_datetime_col : str, optional
        The panel's date column (``datetime_col`` if omitted). Dates count on their wall clock;
        timezone-aware panel dates are first converted to the timezone of the transactions'
        dates, which must then be aware too (and naive with naive).
    observation_period_end : date-like, optional
        End of observation; the latest transaction if omitted.
    freq : {"D", "W", "M", "H"}, default "D"
        The period length and time unit, as in :func:`clvrs.summarize_transactions`.
    freq_multiplier : float, default 1
        Times are divided by it.
    datetime_format : str, optional
        ``strftime`` format of string dates (both frames).
    after_end : {"error", "exclude"}, default "error"
        Transactions after ``observation_period_end``: an error naming the first, or left out
        with a warning.

    Attributes
    ----------
    summary : pandas.DataFrame
        ``frequency``, ``recency``, ``T`` per customer, indexed by customer id (sorted).
    pieces : pandas.DataFrame
        The covariate pieces the model uses: customer id, ``start`` (time since the customer's
        first purchase, 0 for the piece in effect then) and the covariate columns.

    Raises
    ------
    InvalidDataError
        Missing columns, null ids or dates, transactions after the end, two panel rows of a
        customer in one period, or a customer without a panel row at its first purchase,
        naming the column, the row or the customer.

    Examples
    --------
    >>> import pandas as pd, clvrs
    >>> log = pd.DataFrame({"customer_id": [1, 1, 2], "date": ["2024-01-01", "2024-01-09",
    ...                     "2024-01-02"]})
    >>> panel = pd.DataFrame({"customer_id": [1, 1, 2], "date": ["2024-01-01", "2024-01-08",
    ...                       "2023-12-25"], "promo": [0.0, 1.0, 0.0]})
    >>> data = clvrs.DynamicCovariateData(log, panel, freq="W",
    ...                                   observation_period_end="2024-01-31")
    >>> data.summary["frequency"].tolist(), data.pieces["start"].tolist()
    ([1.0, 0.0], [0.0, 1.0, 0.0])
    """

    summary: pd.DataFrame
    covariate_columns: list[str]
    customer_id_col: str
    freq: str
    freq_multiplier: float
    _values: pd.DataFrame
    _panel_rows: np.ndarray
    _piece_offsets: np.ndarray
    _piece_starts: np.ndarray
    _purchase_offsets: np.ndarray
    _purchase_pieces: np.ndarray

    def __init__(
        self,
        transactions: Any,
        covariates: Any,
        *,
        customer_id_col: str = "customer_id",
        datetime_col: str = "date",
        covariate_datetime_col: str | None = None,
        observation_period_end: Any = None,
        freq: str = "D",
        freq_multiplier: float = 1,
        datetime_format: str | None = None,
        after_end: str = "error",
    ) -> None:
        if not isinstance(freq, str) or freq.upper() not in ("H", "D", "W", "M"):
            raise _bad_parameter("freq", f"must be one of H, D, W, M, got {freq!r}")
        freq = freq.upper()
        if not (
            isinstance(freq_multiplier, numbers.Real)
            and not isinstance(freq_multiplier, bool)
            and np.isfinite(freq_multiplier)
            and freq_multiplier > 0
        ):
            raise _bad_parameter(
                "freq_multiplier", f"must be a finite number > 0, got {freq_multiplier!r}"
            )
        if not (isinstance(after_end, str) and after_end in _AFTER_END):
            raise _bad_parameter("after_end", f"must be one of {_AFTER_END}, got {after_end!r}")
        if covariate_datetime_col is None:
            covariate_datetime_col = datetime_col
        elif not isinstance(covariate_datetime_col, str):
            raise _bad_parameter(
                "covariate_datetime_col",
                f"must be a column name of the covariates, got {covariate_datetime_col!r}",
            )
        self.customer_id_col = customer_id_col
        self.freq = freq
        self.freq_multiplier = float(freq_multiplier)

        # -- transactions: customers, their summaries and the periods of repeat purchases ----
        log = _read_log(transactions, customer_id_col, datetime_col, None, datetime_format)
        # Codes index `log.ids` (-1 for a missing id).
        codes = log.codes - log.offset
        for bad, column, what in (
            (codes < 0, customer_id_col, "must not be missing (null)"),
            (log.times == _NAT, datetime_col, "must not be missing (null or unparsable)"),
        ):
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise _error(column, row, what, what)
        ns = _nanoseconds(log.times, log.unit_ns, datetime_col)
        if not len(codes):
            raise _error(customer_id_col, None, "non-empty", "at least one transaction is required")
        end_ns = _end_ns(observation_period_end, datetime_format, "observation_period_end", log.tz)
        if end_ns is None:
            end_ns = int(ns.max())
        # Periods, as the transaction summaries compare them: a purchase later on the last day
        # (or in the last week or month) is inside observation.
        periods = _core.period_index(ns, freq)
        end_period = int(_core.period_index(np.array([end_ns], dtype=np.int64), freq)[0])
        after = periods > end_period
        if after.any():
            if after_end == "error":
                row = int(np.flatnonzero(after)[0])
                raise _error(
                    datetime_col,
                    row,
                    "on or before observation_period_end",
                    "falls after observation_period_end (pass after_end='exclude' to leave such "
                    "transactions out)",
                )
            warnings.warn(
                f"{int(after.sum())} transactions after observation_period_end were left out",
                UserWarning,
                stacklevel=2,
            )
            codes, ns, periods = codes[~after], ns[~after], periods[~after]
        present, customer = np.unique(codes, return_inverse=True)
        n = len(present)
        order = np.lexsort((periods, customer))
        by_customer, by_period = customer[order], periods[order]
        distinct = np.r_[
            True, (by_customer[1:] != by_customer[:-1]) | (by_period[1:] != by_period[:-1])
        ]
        by_customer, by_period = by_customer[distinct], by_period[distinct]
        first = np.r_[True, by_customer[1:] != by_customer[:-1]]
        last = np.r_[by_customer[1:] != by_customer[:-1], True]
        birth = by_period[first]
        first_ns = ns[order][distinct][first]
        frequency = np.bincount(by_customer, minlength=n).astype(np.float64) - 1.0
        recency = (by_period[last] - birth) / self.freq_multiplier
        age = (end_period - birth) / self.freq_multiplier
        repeat_customer = by_customer[~first]
        repeat_period = by_period[~first] - birth[repeat_customer]
        ids = log.ids[present]
        self.summary = pd.DataFrame(
            {"frequency": frequency, "recency": recency, "T": age},
            index=pd.Index(ids, name=customer_id_col),
        )

        # -- the panel: each customer's pieces from its first purchase on ---------------------
        panel = _frame(covariates, "covariates")
        for column in (customer_id_col, covariate_datetime_col):
            if column not in panel.columns:
                raise _error(
                    column,
                    None,
                    "required column",
                    f"not found in the covariates (columns: {[str(c) for c in panel.columns]})",
                )
        panel_ids = panel[customer_id_col]
        missing = np.flatnonzero(panel_ids.isna().to_numpy())
        if missing.size:
            raise _error(
                customer_id_col, int(missing[0]), "no missing values", "must not be missing (null)"
            )
        position = pd.Index(ids).get_indexer(panel_ids)
        if len(panel) and not (position >= 0).any():
            raise _error(
                customer_id_col,
                None,
                "matching ids",
                "no row of the covariates belongs to a customer of the transactions (ids "
                f"{panel_ids.dtype} in the covariates, {pd.Index(ids).dtype} in the "
                "transactions)",
            )
        # Rows of other customers are ignored, whatever they hold.
        rows = np.flatnonzero(position >= 0)
        # Aware panel dates are read on the transactions' wall clock, so that both are cut
        # into the same periods.
        times, unit_ns, panel_tz = _times(
            panel[covariate_datetime_col].iloc[rows],
            covariate_datetime_col,
            datetime_format,
            zone=log.tz,
        )
        if (panel_tz is None) != (log.tz is None):
            raise _error(
                covariate_datetime_col,
                None,
                "timezone like the transactions'",
                f"has {'no timezone' if panel_tz is None else f'timezone {panel_tz}'} but the "
                f"transactions' dates have {'none' if log.tz is None else f'timezone {log.tz}'}: "
                "give both timezone-aware dates, or both naive ones",
            )
        if (times == _NAT).any():
            row = int(rows[np.flatnonzero(times == _NAT)[0]])
            raise _error(
                covariate_datetime_col,
                row,
                "no missing values",
                "must not be missing (null or unparsable)",
            )
        panel_periods = np.zeros(len(panel), dtype=np.int64)
        panel_periods[rows] = _core.period_index(
            _nanoseconds(times, unit_ns, covariate_datetime_col, rows), freq
        )
        rows = rows[np.lexsort((panel_periods[rows], position[rows]))]
        owner, period = position[rows], panel_periods[rows]
        same = np.flatnonzero((owner[1:] == owner[:-1]) & (period[1:] == period[:-1]))
        if same.size:
            a, b = int(rows[same[0]]), int(rows[same[0] + 1])
            raise _error(
                covariate_datetime_col,
                max(a, b),
                "one row per customer and period",
                f"customer {_show(ids[owner[same[0]]])} has two rows in one period "
                f"(rows {min(a, b)} and {max(a, b)})",
            )
        relative = period - birth[owner]
        upto = relative <= 0
        next_other = np.r_[owner[1:] != owner[:-1], True]
        anchor = upto & (next_other | np.r_[relative[1:] > 0, True])
        anchored = np.bincount(owner[anchor], minlength=n)
        if n and not anchored.all():
            c = int(np.flatnonzero(anchored == 0)[0])
            raise _error(
                covariate_datetime_col,
                None,
                "a row at the first purchase",
                f"customer {_show(ids[c])} has no covariate row on or before the period of its "
                f"first purchase ({pd.Timestamp(int(first_ns[c]))}): the covariates must cover "
                "every customer's whole observation",
            )
        kept = anchor | (relative > 0)
        owner, relative, rows = owner[kept], np.maximum(relative[kept], 0), rows[kept]
        self._panel_rows = _native(rows, np.int64)
        self._piece_offsets = _native(
            np.r_[0, np.cumsum(np.bincount(owner, minlength=n))], np.int64
        )
        self._piece_starts = _native(relative / self.freq_multiplier, np.float64)
        # The piece in effect at each repeat purchase: the customer's last piece starting at or
        # before the purchase's period (integer keys: exact).
        width = int(max(relative.max(initial=0), repeat_period.max(initial=0))) + 1
        piece_keys = owner.astype(np.int64) * width + relative
        purchase_keys = repeat_customer.astype(np.int64) * width + repeat_period
        self._purchase_pieces = _native(
            np.searchsorted(piece_keys, purchase_keys, side="right") - 1, np.int64
        )
        self._purchase_offsets = _native(np.r_[0, np.cumsum(frequency.astype(np.int64))], np.int64)
        values = panel.iloc[rows].reset_index(drop=True)
        values = values.drop(columns=[customer_id_col, covariate_datetime_col])
        self.covariate_columns = [str(c) for c in values.columns]
        if "start" in self.covariate_columns:
            raise _error(
                "start",
                None,
                "not a reserved name",
                "is the name of the pieces' start times; rename this covariate",
            )
        self._values = values

    def __len__(self) -> int:
        return len(self.summary)

    @property
    def pieces(self) -> pd.DataFrame:
        """The covariate pieces the model uses: customer id, ``start`` (time since the
        customer's first purchase, 0 for the piece in effect then) and the covariate columns
        (built on demand from the arrays the model reads)."""
        owner = np.repeat(np.arange(len(self)), np.diff(self._piece_offsets))
        ids = self.summary.index.to_numpy()[owner]
        head = pd.DataFrame({self.customer_id_col: ids, "start": self._piece_starts})
        return pd.concat([head, self._values], axis=1)

    def __repr__(self) -> str:
        return (
            f"DynamicCovariateData({len(self)} customers, {len(self._piece_starts)} covariate "
            "pieces, "
            f"covariates {self.covariate_columns}, freq={self.freq!r})"
        )

    def _customers(
        self, pieces: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The customer arrays of the core functions, with every piece or only ``pieces``
        (positions, in order, including every piece a repeat purchase falls in)."""
        s = self.summary
        offsets, starts, bought = self._piece_offsets, self._piece_starts, self._purchase_pieces
        if pieces is not None:
            owner = np.repeat(np.arange(len(self)), np.diff(offsets))[pieces]
            offsets = np.r_[0, np.cumsum(np.bincount(owner, minlength=len(self)))]
            renumber = np.full(len(starts), -1, dtype=np.int64)
            renumber[pieces] = np.arange(len(pieces))
            starts, bought = starts[pieces], renumber[bought]
        return (
            _native(s["frequency"].to_numpy(), np.float64),
            _native(s["recency"].to_numpy(), np.float64),
            _native(s["T"].to_numpy(), np.float64),
            _native(offsets, np.int64),
            _native(starts, np.float64),
            self._purchase_offsets,
            _native(bought, np.int64),
        )

    def _observed(self) -> np.ndarray:
        """Positions of the pieces in effect during observation (starting before ``T``, at 0,
        or holding a repeat purchase): all a fit reads. Later pieces serve predictions only."""
        owner = np.repeat(np.arange(len(self)), np.diff(self._piece_offsets))
        age = self.summary["T"].to_numpy()[owner]
        used = (self._piece_starts < age) | (self._piece_starts == 0)
        used[self._purchase_pieces] = True
        return np.flatnonzero(used)

    def _panel_row(
        self, err: InvalidDataError, pieces: np.ndarray | None = None
    ) -> InvalidDataError:
        """An error about a row of :attr:`pieces` (or of the subset ``pieces`` of them)
        restated for the caller's panel row."""
        rows = self._panel_rows if pieces is None else self._panel_rows[pieces]
        row = getattr(err, "row", None)
        if row is None or not 0 <= row < len(rows):
            return err
        panel_row = int(rows[row])
        # "row 10:" from this layer, "row 10 (value inf):" from the core.
        message = re.sub(
            rf", row {row}\b", f", row {panel_row} of the covariates", str(err), count=1
        )
        restated = InvalidDataError(message)
        restated.column, restated.row, restated.rule = err.column, panel_row, err.rule
        return restated
