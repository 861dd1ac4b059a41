"""Input coercion and output wrapping shared by every estimator.

Input: a pandas or polars DataFrame with named columns, or arrays / Series given as keywords.
Numbers and booleans are data; complex, object (text), date and duration columns are refused,
naming the column. A ``weights`` column counts the customers of each row unless ``columns=``
maps the role elsewhere (whole numbers only). Two per-customer inputs are matched by one rule,
:func:`align_to`: arrays by position, pandas inputs by label only when their labels agree.

Output: a pandas Series on the input's index for pandas input, a polars Series for polars input,
a numpy array otherwise, and a number (numpy ``float64``) when every input was a single number.
"""

from __future__ import annotations

import contextlib
import decimal
import math
import numbers
import warnings
from collections.abc import Collection, Iterator, Mapping, Sequence, Sized
from typing import Any

import numpy as np
import pandas as pd

from .exceptions import InvalidDataError

__all__ = [
    "Columns",
    "align_argument",
    "align_pair",
    "align_to",
    "as_float_array",
    "coerce_columns",
    "data_error",
    "is_number",
    "naming_arguments",
    "resolve_weights_column",
    "wrap_output",
]

#: The column read as row weights when the data has it and ``columns=`` does not map the
#: ``weights`` role (mapping it to None turns weights off).
WEIGHTS_COLUMN = "weights"


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
    scalar : bool
        Whether the caller passed single numbers (no frame, every array a scalar): the output
        is then a number, not a one-element array.
    """

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        names: dict[str, str],
        kind: str,
        index: pd.Index | None,
        scalar: bool = False,
    ) -> None:
        self.arrays = arrays
        self.names = names
        self.kind = kind
        self.index = index
        self.scalar = scalar

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


@contextlib.contextmanager
def naming_arguments(renames: Mapping[str, str]) -> Iterator[None]:
    """Call an argument by the caller's keyword in data errors raised under the core's name
    (BG/BB's horizon ``m`` is the core's ``t``)."""
    try:
        yield
    except InvalidDataError as err:
        column = getattr(err, "column", None)
        new = renames.get(str(column)) if column is not None else None
        if new is None or new == column:
            raise
        renamed = InvalidDataError(str(err).replace(f"column `{column}`", f"column `{new}`", 1))
        renamed.column, renamed.row, renamed.rule = new, err.row, err.rule
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


def is_number(value: Any, *, integer: bool = False) -> bool:
    """Whether ``value`` is a single real number (a Python or numpy int or float, not a bool):
    what every numeric argument and hyperparameter accepts. ``integer`` asks for a whole-number
    type (``4`` or ``np.int64(4)``, not ``4.0``)."""
    if isinstance(value, (bool, np.bool_, np.timedelta64)):
        return False
    kind = numbers.Integral if integer else numbers.Real
    return isinstance(value, kind)


def ndim(values: Any) -> int:
    """``np.ndim`` that counts a ragged nested sequence as one-dimensional (numpy refuses to
    shape it), so that the caller's conversion refuses it with a typed error naming the
    argument instead of numpy's ValueError."""
    try:
        return int(np.ndim(values))
    except ValueError:
        return 1


def as_float_array(values: Any, name: str) -> np.ndarray:
    """Convert a column to a contiguous 1-d float64 array (nulls become NaN, rejected later).

    Numbers and booleans are data; complex numbers, dates, durations and text are refused
    (naming the column) rather than converted: a complex column would lose its imaginary part,
    a date would become days since 1970, neither of which the caller meant.
    """
    if values is None or isinstance(values, (str, bytes)):
        # A single non-number where numbers (one, or one per customer) are wanted.
        hint = (
            f" (for a column of the data, pass data[{values!r}])" if isinstance(values, str) else ""
        )
        err = InvalidDataError(
            f"column `{name}`: must be numeric (a number, or one per customer), got "
            f"{values!r}{hint}"
        )
        err.column, err.rule = name, "must be numeric"
        raise err
    if _is_polars_series(values):
        if not (values.dtype.is_numeric() or values.dtype == _polars_boolean()):
            raise _not_numeric(name, values.dtype)
        values = values.cast(float).to_numpy()  # nulls -> NaN
    elif isinstance(values, (pd.Series, pd.Index)) and _numpy_number(values.dtype):
        # numpy-backed numbers hold no missing values to map (NaN stays NaN): the values as
        # they are, converted below (no pandas missing-value pass, which cost more than the
        # predictions on a few thousand customers).
        values = values.to_numpy()
    elif isinstance(values, (pd.Series, pd.Index)):
        dtype = values.dtype
        if pd.api.types.is_complex_dtype(dtype):
            raise _not_numeric(name, dtype)
        if pd.api.types.is_object_dtype(dtype):
            raise _refuse_object(values.to_numpy(), name)
        if not (pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)):
            raise _not_numeric(name, dtype)
        values = values.to_numpy(dtype=np.float64, na_value=np.nan)
    try:
        raw = np.asarray(values)
    except ValueError:
        # A ragged nested list ("setting an array element with a sequence").
        err = InvalidDataError(
            f"column `{name}`: must be numeric and one-dimensional (a number, or one per "
            f"customer), got a nested sequence of unequal lengths"
        )
        err.column, err.rule = name, "must be one-dimensional"
        raise err from None
    if raw.dtype == object:
        raise _refuse_object(raw, name)
    # Only numbers and booleans are data; dates, durations, complex numbers and strings are
    # refused rather than silently converted to numbers.
    if raw.dtype.kind not in "biuf":
        raise _not_numeric(name, raw.dtype)
    array = raw.astype(np.float64, copy=False)
    if array.ndim == 0:
        array = array.reshape(1)
    if array.ndim != 1:
        err = InvalidDataError(
            f"column `{name}`: must be one-dimensional, got an array of shape {array.shape}"
        )
        err.column, err.rule = name, "must be one-dimensional"
        raise err
    return _native(array)


#: Integer dtypes the core reads in place (converting each value as ``astype(float64)`` does).
_CORE_INTEGERS = frozenset(np.dtype(t) for t in (np.int64, np.int32, np.uint64, np.uint32))


def _integer_array(values: Any) -> np.ndarray | None:
    """A one-dimensional integer column the core reads without a float64 copy (int64, int32,
    uint64, uint32; numpy arrays, numpy-backed pandas Series and Index, polars Series without
    nulls), contiguous and in native byte order; None for anything else, which
    :func:`as_float_array` converts (and checks) as before."""
    if _is_polars_series(values):
        if values.null_count() or not values.dtype.is_integer():
            return None
        values = values.to_numpy()
    elif isinstance(values, (pd.Series, pd.Index)):
        if not isinstance(values.dtype, np.dtype):
            return None  # nullable and Arrow dtypes: converted (nulls become NaN, refused)
        values = values.to_numpy()
    if not isinstance(values, np.ndarray) or values.ndim != 1:
        return None
    dtype = values.dtype.newbyteorder("=")
    if dtype not in _CORE_INTEGERS:
        return None
    return _native(values, dtype=dtype)


def _numpy_number(dtype: Any) -> bool:
    """Whether ``dtype`` is a numpy dtype of real numbers or booleans (not an extension dtype,
    which may hold missing values)."""
    return isinstance(dtype, np.dtype) and dtype.kind in "biuf"


def _refuse_object(raw: np.ndarray, name: str) -> InvalidDataError:
    """The error for a column of dtype object: it is refused, whatever it holds (text, mixed
    values, numbers stored as objects), naming the first value that is not a number."""
    flat = raw.reshape(-1)
    for i, value in enumerate(flat):
        if (
            value is None
            or isinstance(value, (bool, np.bool_, np.timedelta64))
            or not (isinstance(value, (numbers.Real, decimal.Decimal)))
        ):
            row = None if raw.ndim == 0 else i
            where = f", row {row}" if row is not None else ""
            err = InvalidDataError(
                f"column `{name}`{where} (value {value!r}): must be numeric, got dtype object "
                "(text or mixed values); convert the column to numbers first, e.g. with "
                "pd.to_numeric, and check the values that do not convert"
            )
            err.column, err.row, err.rule = name, row, "must be numeric"
            return err
    err = InvalidDataError(
        f"column `{name}`: must be numeric, got dtype object (numbers stored as objects); "
        "convert it with .astype(float) or pd.to_numeric"
    )
    err.column, err.rule = name, "must be numeric"
    return err


def _polars_boolean() -> Any:
    import polars as pl

    return pl.Boolean


def _not_numeric(name: str, dtype: Any) -> InvalidDataError:
    err = InvalidDataError(f"column `{name}`: must be numeric, got dtype {dtype}")
    err.column, err.rule = name, "must be numeric"
    return err


def resolve_weights_column(
    names: Mapping[str, str | None], mapped: Mapping[str, str | None] | None, data: Any
) -> dict[str, str | None]:
    """``names`` with the ``weights`` role set to the data's ``weights`` column when the data
    has one and ``columns=`` (``mapped``) does not map the role (mapping it to None turns
    weights off)."""
    resolved = dict(names)
    if "weights" not in resolved or "weights" in (mapped or {}) or resolved["weights"]:
        return resolved
    if WEIGHTS_COLUMN in resolved.values():
        return resolved  # the column is another role's (columns={"frequency": "weights"})
    if _has_column(data, WEIGHTS_COLUMN):
        resolved["weights"] = WEIGHTS_COLUMN
    return resolved


def _has_column(data: Any, name: str) -> bool:
    """Whether ``data`` (a pandas, polars, Dask or Spark frame) has a column called ``name``
    as text; one hash lookup for a pandas frame whose labels are plain strings."""
    if isinstance(data, pd.DataFrame) and _text_labels(data.columns):
        return name in data.columns
    return name in _frame_columns(data)


def _frame_columns(data: Any) -> list[str]:
    """Column names of a pandas, polars, Dask or Spark frame (none for anything else)."""
    columns = getattr(data, "columns", None)
    if columns is None or isinstance(data, (np.ndarray, pd.Series)):
        return []
    if isinstance(columns, pd.Index):
        columns = columns.tolist()  # (iterating an Arrow-backed index is slow)
    return [str(c) for c in columns]


def align_to(
    values: Any,
    index: pd.Index | None,
    length: int | None,
    name: str,
    reference: str,
) -> Any:
    """Line up per-customer ``values`` with a reference input, row for row.

    The one rule for every function that takes two per-customer inputs:

    - arrays, lists and polars Series (and any input when the reference has no pandas index)
      are matched by position: their length must be the reference's;
    - a pandas Series whose index labels are the reference's pandas index is used as it is;
    - one whose labels are the same set in another order is aligned by label;
    - any other pandas Series (different labels, or duplicate labels in another order) is
      refused: matching by label would leave NaN rows and matching by position would pair
      customers silently by order.

    Parameters
    ----------
    values : array-like, pandas.Series or scalar
        The second input. Scalars (one value for every customer) are returned unchanged.
    index : pandas.Index or None
        The reference's index labels (None: the reference is not a pandas object).
    length : int or None
        The reference's number of rows (None: unknown, no length check).
    name, reference : str
        The caller's names of the two inputs, for errors.

    Returns
    -------
    object
        ``values`` itself, or a pandas Series reindexed to ``index``.

    Raises
    ------
    InvalidDataError
        Naming both inputs, when the lengths or the labels do not match.
    """
    if ndim(values) == 0:
        return values
    if isinstance(values, pd.Series) and index is not None:
        if values.index.equals(index):
            return values
        same_set = (
            len(values.index) == len(index)
            and values.index.is_unique
            and index.is_unique
            and bool(index.isin(values.index).all())
        )
        if same_set:
            return values.reindex(index)
        missing = [label for label in index if label not in values.index][:3]
        extra = [label for label in values.index if label not in index][:3]
        if missing:
            detail = f"labels of `{reference}` missing from `{name}`: {missing}"
        elif extra:
            detail = f"labels of `{name}` not in `{reference}`: {extra}"
        elif len(values.index) != len(index):
            detail = f"{len(values.index)} labels for {len(index)} rows"
        else:
            detail = "duplicate labels in another order"
        err = InvalidDataError(
            f"`{name}` and `{reference}` have different index labels ({detail}), so their "
            "customers cannot be matched. Pass "
            f"`{name}.to_numpy()` to match rows by position, or reindex `{name}` to "
            f"`{reference}`'s index"
        )
        err.column, err.rule = name, "must have the index labels of " + reference
        raise err
    size = len(values) if hasattr(values, "__len__") else int(np.size(values))
    if length is not None and size != length:
        err = InvalidDataError(
            f"`{name}` has {size} values but `{reference}` has {length} rows: give one value "
            f"per row of `{reference}` (matched by position), or a single value"
        )
        err.column, err.rule = name, "must have one value per row of " + reference
        raise err
    return values


def align_argument(values: Any, name: str, data: Any, arrays: Mapping[str, Any] | None) -> Any:
    """A per-customer argument (a horizon, count or rate per customer) lined up with the
    customers by :func:`align_to` when both it and the customers' input are pandas objects
    (the customers: ``data``, else the first pandas Series among the keyword ``arrays``).
    Anything else is returned unchanged and matched by position (its length is checked where
    it is used: one value, or one per customer)."""
    if not isinstance(values, pd.Series):
        return values
    if isinstance(data, pd.DataFrame):
        return align_to(values, data.index, len(data), name, "data")
    for key, array in (arrays or {}).items():
        if isinstance(array, pd.Series):
            return align_to(values, array.index, len(array), name, key)
    return values


def align_pair(values: Any, reference: Any, name: str, reference_name: str) -> Any:
    """``values`` matched to ``reference`` by :func:`align_to` when both hold several values
    (two per-customer inputs of a function that takes no DataFrame, e.g. ``tenure`` and
    ``margin_per_period``); a single value on either side applies to every customer and is
    returned unchanged."""
    if ndim(values) != 1 or ndim(reference) != 1:
        return values
    if np.size(values) == 1 or np.size(reference) == 1:
        return values
    index = reference.index if isinstance(reference, pd.Series) else None
    return align_to(values, index, len(reference), name, reference_name)


def coerce_columns(
    data: Any,
    roles: Sequence[str],
    names: Mapping[str, str | None],
    keywords: Mapping[str, Any],
    optional: Sequence[str] = (),
    keyword_names: Mapping[str, str] | None = None,
    with_data: Collection[str] = (),
    integers: Collection[str] = (),
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
    with_data : collection of str
        Optional roles whose keyword may come with ``data`` (``weights=``): the keyword wins
        over the frame's column, with a warning naming both, and is matched to the frame's
        rows by :func:`align_to`.
    integers : collection of str
        Roles whose integer columns (int64, int32, uint64, uint32) are kept as they are, for
        a core function that reads them in place (no float64 copy); every other column of
        those roles is converted to float64 as usual.

    Notes
    -----
    Keyword arrays are matched with each other by :func:`align_to` (pandas Series by label
    when their labels agree, else refused); weights must be whole numbers (counts of
    customers). Single numbers given for every keyword give ``Columns.scalar``.
    """
    arrays: dict[str, np.ndarray] = {}
    used: dict[str, str] = {}
    given = {role: v for role, v in keywords.items() if v is not None}
    keyword = {role: role for role in keywords}
    keyword.update(keyword_names or {})
    if data is not None:
        extra = {role: v for role, v in given.items() if role in with_data}
        given = {role: v for role, v in given.items() if role not in with_data}
        if given:
            raise InvalidDataError(
                "pass either a DataFrame or arrays as keywords ("
                + ", ".join(sorted(keyword.get(role, role) for role in given))
                + "), not both"
            )
        if isinstance(data, pd.DataFrame):
            kind, index = "pandas", data.index
            read = None if extra else _read_numpy_columns(data, roles, optional, names, integers)
            if read is not None:
                columns = Columns(read[0], read[1], kind, index)
                _check_weights(columns, from_frame=True)
                return columns
            frame_columns = data.columns.tolist()
            available = [str(c) for c in frame_columns]
            # Columns are found by their name as text (a column labelled 0 is `0`).
            labels = {str(c): c for c in frame_columns}

            def getter(name: str) -> Any:
                return data[labels[name]]

        elif _is_polars_frame(data):
            kind, index = "polars", None
            available = list(data.columns)

            def getter(name: str) -> Any:
                return data.get_column(name)
        else:
            raise InvalidDataError(
                f"data must be a pandas or polars DataFrame, got {type(data).__name__}; "
                "pass numpy arrays as keywords instead (frequency=..., recency=..., T=...)"
            )
        readers: dict[str, str] = {}
        for role in list(roles) + list(optional):
            mapped = names.get(role)
            name = None if mapped is None else str(mapped)
            if name is None:
                if role in roles:
                    raise _unmapped(role)
                continue
            if role in extra:
                if name in available:
                    warnings.warn(
                        f"both the `{keyword.get(role, role)}=` argument and the data's "
                        f"`{name}` column were given: using the argument (drop one to silence "
                        "this warning)",
                        UserWarning,
                        stacklevel=_caller_level(),
                    )
                continue
            if name not in available:
                # Optional roles are read only when named, so a named one must exist.
                err = InvalidDataError(
                    f"column `{name}` (the {role} column) is missing; the data has columns "
                    f"{available}. Rename it, or map it with columns={{'{role}': 'your_name'}}"
                )
                err.column, err.rule = name, "required column"
                raise err
            if available.count(name) > 1:
                err = InvalidDataError(
                    f"column `{name}` (the {role} column) appears {available.count(name)} "
                    "times in the data; give every column a distinct name"
                )
                err.column, err.rule = name, "must be a distinct column name"
                raise err
            if name in readers:
                err = InvalidDataError(
                    f"column `{name}` is mapped to two roles, {readers[name]} and {role}; "
                    "each role needs its own column (check columns=)"
                )
                err.column, err.rule = name, "must be mapped to one role"
                raise err
            readers[name] = role
            column = getter(name)
            kept = _integer_array(column) if role in integers else None
            arrays[role] = kept if kept is not None else as_float_array(column, name)
            used[role] = name
        for role, values in extra.items():
            name = keyword.get(role, role)
            rows = len(data)
            arrays[role] = as_float_array(align_to(values, index, rows, name, "data"), name)
            used[role] = name
        columns = Columns(arrays, used, kind, index)
        _check_weights(columns, from_frame="weights" not in extra)
        return columns

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
    scalar = bool(given) and all(ndim(v) == 0 for v in given.values())
    first = ""
    for role, values in given.items():
        name = keyword.get(role, role)
        if isinstance(values, pd.Series):
            if index is None:
                kind, index, first = "pandas", values.index, name
            else:
                values = align_to(values, index, None, name, first)
        elif _is_polars_series(values) and kind == "numpy":
            kind = "polars"
        kept = _integer_array(values) if role in integers else None
        arrays[role] = kept if kept is not None else as_float_array(values, name)
        used[role] = name
    columns = Columns(arrays, used, kind, index, scalar=scalar)
    _check_weights(columns, from_frame=False)
    return columns


def _text_labels(columns: Any) -> bool:
    """Whether a pandas column index holds distinct plain strings and no missing label: then
    every label is its own text, and one lookup finds a column by its name as text, as the
    general path of :func:`coerce_columns` (which compares ``str(label)``) would."""
    if not isinstance(columns, pd.Index) or isinstance(columns, pd.MultiIndex):
        return False
    dtype = columns.dtype
    if isinstance(dtype, pd.StringDtype):
        plain = True  # holds str or missing values only
    elif isinstance(dtype, np.dtype) and dtype.kind == "O":
        # (str subclasses, e.g. enum members, may print as other text: not plain.)
        plain = all(type(label) is str for label in columns)
    else:
        return False
    return plain and columns.is_unique and not columns.hasnans


def _read_numpy_columns(
    data: pd.DataFrame,
    roles: Sequence[str],
    optional: Sequence[str],
    names: Mapping[str, str | None],
    integers: Collection[str],
) -> tuple[dict[str, np.ndarray], dict[str, str]] | None:
    """The arrays and names of the columns :func:`coerce_columns` reads from a pandas
    DataFrame, read straight from the frame's blocks when that gives the same arrays; None
    whenever the general path has anything to decide.

    The fast path for small frames: ``data[name]`` builds a Series (about 11 us a column with
    pandas 3) and the general path lists the labels as text (5 us for an Arrow-backed column
    index); here one hash lookup finds each column and the frame hands over its array. Taken
    only for a plain ``pandas.DataFrame`` (not a subclass), when every label is a distinct
    plain string (:func:`_text_labels`), every named column exists once and is mapped to one
    role, and every column is a one-dimensional numpy array of numbers or booleans; those
    arrays go through the same conversions (:func:`_integer_array`, :func:`as_float_array`) as
    the general path's, read-only, so the result is the same array, bit for bit. Anything else
    (a missing, duplicated or twice-mapped column, nullable, categorical, Arrow or other
    extension dtypes, object, date or text columns) returns None,
    and the general path reads and checks the columns, raising its usual errors.
    """
    if type(data) is not pd.DataFrame:
        return None  # (a subclass may define its own column access)
    columns = data.columns
    column_array = getattr(data, "_get_column_array", None)
    if column_array is None or not _text_labels(columns):
        return None
    arrays: dict[str, np.ndarray] = {}
    used: dict[str, str] = {}
    for role in list(roles) + list(optional):
        mapped = names.get(role)
        if mapped is None:
            if role in roles:
                return None  # (the general path raises)
            continue
        name = str(mapped)
        if name in used.values():
            return None
        try:
            position = columns.get_loc(name)
        except KeyError:
            return None
        if not isinstance(position, int):
            return None
        values = column_array(position)
        if not (
            isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "biuf"
        ):
            return None
        # A read-only view: the columns handed on never write into the caller's frame.
        values = values.view()
        values.flags.writeable = False
        dtype, flags = values.dtype, values.flags
        as_is = (
            dtype.isnative
            and flags.c_contiguous
            and flags.aligned
            and (
                (dtype.kind == "f" and dtype.itemsize == 8)
                or (role in integers and dtype.kind in "iu" and dtype.itemsize in (4, 8))
            )
        )
        if as_is:
            # float64, or an int64/int32/uint64/uint32 column kept for the core, already
            # contiguous: what the conversions below would return (the array itself), at
            # a tenth of their cost.
            arrays[role] = values
        else:
            kept = _integer_array(values) if role in integers else None
            arrays[role] = kept if kept is not None else as_float_array(values, name)
        used[role] = name
    return arrays, used


def _caller_level() -> int:
    """The ``stacklevel`` of a warning raised here that points at the caller's code: the
    first frame outside clvrs (fits reach this function through one or more model layers)."""
    import os
    import sys

    package = os.path.dirname(os.path.abspath(__file__))
    frame: Any = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def _unmapped(role: str) -> InvalidDataError:
    err = InvalidDataError(
        f"column `{role}` is required but columns= maps it to None; map it to a column "
        f"of the data (columns={{'{role}': 'your_name'}})"
    )
    err.column, err.rule = role, "required column"
    return err


def _check_weights(columns: Columns, from_frame: bool) -> None:
    """Weights count the customers sharing a row: refuse a finite, non-negative weight that
    is not a whole number (NaN, infinite and negative weights are left to the core's rules).
    A column of the data read as weights (``weights`` is read by default) gets a hint on how
    to stop that, in case the column means something else."""
    weights = columns.arrays.get("weights")
    if weights is None:
        return
    finite = np.isfinite(weights)
    bad = np.flatnonzero(finite & (weights >= 0) & (np.mod(np.where(finite, weights, 0), 1) != 0))
    if bad.size:
        row = int(bad[0])
        name = columns.names["weights"]
        hint = (
            f"; if the column `{name}` is not a count of customers, pass "
            "columns={'weights': None} so that it is not read as one"
            if from_frame
            else ""
        )
        with columns.locating_rows():
            raise data_error(
                name,
                row,
                float(weights[row]),
                "must be a whole number: weights count the customers who share a row "
                f"(round them, or expand the rows; sampling weights are not supported){hint}",
            )


#: pandas' single-block manager, imported on first use by :func:`_float_series`.
_SingleBlockManager: Any = None


def _float_series(values: np.ndarray, index: pd.Index | None, name: str) -> pd.Series:
    """``pd.Series(values, index=index, name=name, copy=False)`` for a fresh one-dimensional
    float64 array whose length is the index's.

    Built from a single-block manager when this pandas has one (pandas >= 2.1), the name
    stored where the ``name`` property keeps it: the same Series (same array, index object,
    name and flags) in about a fifth of the 10 us of the constructor's general checks, which
    are a tenth of a prediction on a few thousand customers. Any other pandas, or any
    surprise from its internals, takes the constructor.
    """
    if (
        index is not None
        and values.dtype == np.float64
        and values.ndim == 1
        and len(values) == len(index)
    ):
        try:
            global _SingleBlockManager
            if _SingleBlockManager is None:
                from pandas.core.internals import (  # type: ignore[import-not-found]
                    SingleBlockManager as _SingleBlockManager,
                )
            manager = _SingleBlockManager.from_array(values, index)
            series = pd.Series._from_mgr(manager, axes=manager.axes)  # type: ignore[attr-defined]
            # What the ``name`` setter stores once it has checked that the name is hashable
            # (a str is), without pandas' general ``__setattr__`` (4 us of a 9 us build).
            object.__setattr__(series, "_name", name)
            if series.name is name:
                return series
        except Exception:  # (any internals that differ: the public route)
            pass
    return pd.Series(values, index=index, name=name, copy=False)


def wrap_output(values: np.ndarray, columns: Columns, name: str) -> Any:
    """Shape a per-customer result like the input: pandas Series, polars Series or numpy
    array; a numpy float64 scalar (a ``float``) when the caller passed single numbers.

    ``values`` is a fresh array (the core's output): a pandas Series takes it without a copy
    (pandas copies a numpy array by default, which cost a tenth of a 1M-customer P(alive)).
    """
    if columns.scalar and np.size(values) == 1:
        return np.float64(np.asarray(values).reshape(-1)[0])
    if columns.kind == "pandas":
        return _float_series(values, columns.index, name)
    if columns.kind == "polars":
        import polars as pl

        return pl.Series(name, values)
    return values
