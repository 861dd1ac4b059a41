"""Input coercion and output wrapping shared by every estimator.

Input: a pandas or polars DataFrame with named columns, or arrays / Series given as keywords.
Output: a pandas Series on the input's index for pandas input, a polars Series for polars input,
a numpy array otherwise.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Collection, Iterator, Mapping, Sequence, Sized
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import InvalidDataError

__all__ = ["Columns", "coerce_columns", "wrap_output", "as_float_array", "data_error"]


def _native(array: Any, dtype: Any = None) -> np.ndarray:
    """An array the core can borrow: C-contiguous and aligned (arrays rebuilt from byte
    buffers, e.g. after unpickling on a Dask worker, can be unaligned)."""
    return np.require(array, dtype=dtype, requirements=["C", "A"])


class Columns:
    """Float64 columns pulled out of the caller's input, with what is needed to shape the output.

    Attributes
    ----------
    arrays : dict of str to numpy.ndarray
        Contiguous float64 arrays keyed by role (``frequency``, ``recency``, ...).
    names : dict of str to str
        The caller's name for each role (used in error messages).
    kind : {"pandas", "polars", "numpy"}
        What the caller passed.
    index : pandas.Index or None
        The pandas index to align output to.
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        names: dict[str, str],
        kind: str,
        index: pd.Index | None,
    ) -> None:
        self.arrays = arrays
        self.names = names
        self.kind = kind
        self.index = index

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else 0

    @contextlib.contextmanager
    def locating_rows(
        self,
        arguments: Mapping[str, Sized | None] | None = None,
        lists: Collection[str] = (),
    ) -> Iterator[None]:
        """Say which customer a data error raised inside is about, when it is about one.

        The core reports rows by position; with a pandas index (customer ids, say) the index
        label of the offending row is added, since that is what the caller can look up. That
        is done only for per-customer values: the columns, and any other column the error may
        name (covariates), unless ``arguments`` or ``lists`` say otherwise (a column of the
        input wins over an argument of the same name).

        Parameters
        ----------
        arguments : mapping of str to sized, optional
            The other per-customer arguments passed along (horizons, counts, rates), by the
            name the errors give them, each with one value for every customer or one value per
            customer. An error about one given with a single value (for several customers)
            blames no customer: its row, 0, is dropped from the error and its message. One
            given with one value per customer is located like a column. Entries that are None
            are ignored.
        lists : collection of str
            Arguments that are lists of their own (the horizons of
            :meth:`~clvrs.BetaGeoModel.weighted_expected_purchases`, say): the row of an error
            about one is a position in that list, so it is kept and gets no index label.
        """
        try:
            yield
        except InvalidDataError as err:
            row = getattr(err, "row", None)
            column = getattr(err, "column", None)
            is_column = column in self.names.values()
            if row is None or (column in lists and not is_column):
                raise
            values = None if is_column else (arguments or {}).get(str(column))
            if values is not None and len(values) != len(self):
                if len(values) == 1:
                    raise _without_row(err) from None
                raise  # neither one value nor one per customer: a position in the argument
            index = self.index
            if index is None or not 0 <= row < len(index):
                raise
            label = index[row]
            if isinstance(index, pd.RangeIndex) and label == row:
                raise
            located = InvalidDataError(f"{err} [index label {label!r}]")
            located.column, located.row, located.rule = err.column, err.row, err.rule
            located.label = label
            raise located from None

    @contextlib.contextmanager
    def naming_columns(self) -> Iterator[None]:
        """Call a column by the caller's name in data errors the core raised under its role
        (for core functions that are not given the names)."""
        try:
            yield
        except InvalidDataError as err:
            column = getattr(err, "column", None)
            name = self.names.get(str(column)) if column is not None else None
            if name is None or name == column:
                raise
            renamed = InvalidDataError(
                str(err).replace(f"column `{column}`", f"column `{name}`", 1)
            )
            renamed.column, renamed.row, renamed.rule = name, err.row, err.rule
            renamed.label = err.label
            raise renamed from None


def _without_row(err: InvalidDataError) -> InvalidDataError:
    """``err`` without its row: for a single value that applies to every customer."""
    message = str(err)
    prefix = f"column `{err.column}`, row {err.row}"
    if message.startswith(prefix):
        message = f"column `{err.column}`" + message[len(prefix) :]
    bare = InvalidDataError(message)
    bare.column, bare.rule = err.column, err.rule
    return bare


def data_error(column: str, row: int | None, value: float | None, rule: str) -> InvalidDataError:
    """An :class:`InvalidDataError` worded like the core's:
    ``column `name`, row 3 (value -1): must be ...``."""
    message = f"column `{column}`"
    if row is not None:
        message += f", row {row}"
    if value is not None:
        message += f" (value {_number(value)})"
    err = InvalidDataError(f"{message}: {rule}")
    err.column, err.row, err.rule = column, row, rule
    return err


def _number(value: float) -> str:
    """A float as the core prints it (``-1``, ``0.5``, ``NaN``, ``inf``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == int(value) and abs(value) < 1e16:
        return str(int(value))
    return repr(float(value))


def _is_polars_frame(obj: Any) -> bool:
    return type(obj).__module__.startswith("polars") and hasattr(obj, "get_column")


def _is_polars_series(obj: Any) -> bool:
    return (
        type(obj).__module__.startswith("polars")
        and hasattr(obj, "to_numpy")
        and not hasattr(obj, "get_column")
    )


def as_float_array(values: Any, name: str) -> np.ndarray:
    """Convert a column to a contiguous 1-d float64 array (nulls become NaN, rejected later)."""
    if _is_polars_series(values):
        if not (values.dtype.is_numeric() or values.dtype == _polars_boolean()):
            raise _not_numeric(name, values.dtype)
        values = values.cast(float).to_numpy()  # nulls -> NaN
    elif isinstance(values, (pd.Series, pd.Index)):
        if not (
            pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype)
        ):
            raise _not_numeric(name, values.dtype)
        values = values.to_numpy(dtype=np.float64, na_value=np.nan)
    raw = np.asarray(values)
    # Only numbers and booleans are data; dates, durations and strings are refused rather than
    # silently converted to numbers (days since 1970 is never what the caller meant).
    if raw.dtype.kind not in "biufO":
        raise _not_numeric(name, raw.dtype)
    try:
        array = raw.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise _not_numeric(name, raw.dtype) from exc
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        err = InvalidDataError(
            f"column `{name}`: must be one-dimensional, got an array of shape {array.shape}"
        )
        err.column, err.rule = name, "must be one-dimensional"
        raise err
    return _native(array)


def _polars_boolean() -> Any:
    import polars as pl

    return pl.Boolean


def _not_numeric(name: str, dtype: Any) -> InvalidDataError:
    err = InvalidDataError(f"column `{name}`: must be numeric, got dtype {dtype}")
    err.column, err.rule = name, "must be numeric"
    return err


def coerce_columns(
    data: Any,
    roles: Sequence[str],
    names: Mapping[str, str | None],
    keywords: Mapping[str, Any],
    optional: Sequence[str] = (),
    keyword_names: Mapping[str, str] | None = None,
) -> Columns:
    """Pull the columns for ``roles`` (and ``optional`` roles if present) out of the input.

    Parameters
    ----------
    data : pandas.DataFrame, polars.DataFrame or None
        A frame holding the columns under ``names[role]``.
    roles : sequence of str
        Required roles.
    names : mapping of str to str or None
        Column name for each role (None: the role is not read from the frame).
    keywords : mapping of str to array-like or None
        Arrays passed as keywords, by role; used when ``data`` is None.
    optional : sequence of str
        Roles read only when given: as a keyword, or (with ``data``) when ``names`` names a
        column for them, which must then exist.
    keyword_names : mapping of str to str, optional
        The caller's keyword for a role whose keyword is not the role's name (BG/BB takes the
        ``T`` role as ``periods=``), so that errors call the array what the caller called it.
    """
    arrays: dict[str, np.ndarray] = {}
    used: dict[str, str] = {}
    given = {role: v for role, v in keywords.items() if v is not None}
    keyword = {role: role for role in keywords}
    keyword.update(keyword_names or {})
    if data is not None:
        if given:
            raise InvalidDataError(
                "pass either a DataFrame or arrays as keywords ("
                + ", ".join(sorted(keyword.get(role, role) for role in given))
                + "), not both"
            )
        if isinstance(data, pd.DataFrame):
            kind, index = "pandas", data.index
            available = [str(c) for c in data.columns]
            getter = data.__getitem__
        elif _is_polars_frame(data):
            kind, index = "polars", None
            available = list(data.columns)
            getter = data.get_column
        else:
            raise InvalidDataError(
                f"data must be a pandas or polars DataFrame, got {type(data).__name__}; "
                "pass numpy arrays as keywords instead (frequency=..., recency=..., T=...)"
            )
        for role in list(roles) + list(optional):
            name = names.get(role)
            if name is None:
                continue
            if name not in available:
                # Optional roles are read only when named, so a named one must exist.
                err = InvalidDataError(
                    f"column `{name}` (the {role} column) is missing; the data has columns "
                    f"{available}. Rename it, or map it with columns={{'{role}': 'your_name'}}"
                )
                err.column, err.rule = name, "required column"
                raise err
            arrays[role] = as_float_array(getter(name), name)
            used[role] = name
        return Columns(arrays, used, kind, index)

    kind, index = "numpy", None
    for role in roles:
        if role not in given:
            name = keyword.get(role, role)
            err = InvalidDataError(
                f"`{name}` is required: pass a DataFrame, or arrays as keywords "
                f"({', '.join(keyword.get(r, r) for r in roles)})"
            )
            err.column, err.rule = name, "required column"
            raise err
    for role, values in given.items():
        if isinstance(values, pd.Series) and index is None:
            kind, index = "pandas", values.index
        elif _is_polars_series(values) and kind == "numpy":
            kind = "polars"
        name = keyword.get(role, role)
        arrays[role] = as_float_array(values, name)
        used[role] = name
    return Columns(arrays, used, kind, index)


def wrap_output(values: np.ndarray, columns: Columns, name: str) -> Any:
    """Shape a per-customer result like the input: pandas Series, polars Series or numpy array."""
    if columns.kind == "pandas":
        return pd.Series(values, index=columns.index, name=name)
    if columns.kind == "polars":
        import polars as pl

        return pl.Series(name, values)
    return values
