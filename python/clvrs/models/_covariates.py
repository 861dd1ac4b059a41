"""Covariates of the purchase and dropout processes: which columns, how they are encoded, and
the matrices handed to the core.

Numeric and boolean columns enter as they are. Other columns (strings, pandas categoricals,
polars strings/categoricals) are one-hot encoded against a reference level: the first category
of a pandas categorical, else the smallest value; every other level gets a column named
``column[level]``. The encoding learned at fit time is stored with the model, so predictions
(and a reloaded model) encode new data the same way and refuse levels never seen in fitting.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from .._input import _is_polars_frame, is_number
from ..exceptions import ClvError, InvalidDataError, InvalidParameterError

if TYPE_CHECKING:
    from .._base import BaseModel

__all__ = [
    "CovariateSpec",
    "CovariateSummary",
    "OneProcessSpec",
    "check_covariate_penalizer",
]

#: The processes, in the order of the coefficient name prefixes.
PROCESSES = ("purchase", "dropout")


def _bad(name: str, message: str) -> InvalidParameterError:
    err = InvalidParameterError(f"{name}: {message}")
    err.parameter = name
    return err


def _data_error(column: str, row: int | None, rule: str, message: str) -> InvalidDataError:
    err = InvalidDataError(
        f"column `{column}`" + (f", row {row}" if row is not None else "") + f": {message}"
    )
    err.column, err.row, err.rule = column, row, rule
    return err


def check_covariate_penalizer(penalty: Any) -> None:
    """Refuse a ``covariate_penalizer`` that is not a finite number >= 0."""
    if not (
        is_number(penalty)  # Python or numpy numbers, not bools
        and np.isfinite(penalty)
        and penalty >= 0
    ):
        from .._base import _bad_parameter

        raise _bad_parameter(
            "covariate_penalizer", f"must be a finite number >= 0, got {penalty!r}"
        )


def _names(value: Any, argument: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        names = [str(v) for v in value]
    except TypeError:
        raise _bad(argument, f"must be a column name or a list of them, got {value!r}") from None
    if len(set(names)) != len(names):
        raise _bad(argument, f"lists a column twice: {names}")
    return names


def _column(data: Any, name: str) -> pd.Series:
    """Column ``name`` of a pandas or polars frame as a pandas Series (positional index)."""
    if isinstance(data, pd.DataFrame):
        if name not in data.columns:
            raise _missing(name, [str(c) for c in data.columns])
        column = data[name]
        if isinstance(column, pd.DataFrame):
            raise _data_error(
                name,
                None,
                "must be a distinct column name",
                f"appears {column.shape[1]} times in the data; give every column a distinct name",
            )
        if pd.api.types.is_complex_dtype(column.dtype):
            # Not numeric for a model: its imaginary part would be dropped silently.
            raise _data_error(
                name, None, "must be numeric", f"must be real, got dtype {column.dtype}"
            )
        return column.reset_index(drop=True)
    if _is_polars_frame(data):
        if name not in data.columns:
            raise _missing(name, list(data.columns))
        column = data.get_column(name)
        if column.dtype.is_numeric() or str(column.dtype) == "Boolean":
            return pd.Series(column.cast(float).to_numpy(), name=name)
        return pd.Series(column.to_list(), name=name, dtype=object)
    raise InvalidDataError(
        "a model with covariates predicts from a pandas or polars DataFrame that holds the "
        f"covariate columns; got {type(data).__name__}"
    )


def _missing(name: str, available: list[str]) -> InvalidDataError:
    err = InvalidDataError(
        f"covariate column `{name}` is missing; the data has columns {available}"
    )
    err.column, err.rule = name, "required column"
    return err


def _is_categorical(series: pd.Series) -> bool:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return False
    return not pd.api.types.is_numeric_dtype(dtype)


class CovariateSpec:
    """The covariates of a fitted model: columns per process, ties and categorical levels.

    Parameters
    ----------
    purchase, dropout : list of str
        Columns acting on the purchase and dropout processes (tied columns are in both).
    tied : list of str
        Columns whose coefficient is shared by the two processes.
    levels : dict of str to list
        For each categorical column, its levels; the first is the reference level.
    """

    def __init__(
        self,
        purchase: list[str],
        dropout: list[str],
        tied: list[str],
        levels: dict[str, list[Any]],
    ) -> None:
        #: The processes covariates act on, in the order of the coefficient name prefixes.
        self.processes: tuple[str, ...] = PROCESSES
        self.purchase = purchase
        self.dropout = dropout
        self.tied = tied
        self.levels = levels

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def learn(
        cls,
        data: Any,
        purchase_covariates: Any,
        dropout_covariates: Any,
        tied_covariates: Any,
        reserved: Sequence[str],
    ) -> CovariateSpec:
        """Check the requested columns and learn the categorical levels from the fit data."""
        purchase = _names(purchase_covariates, "purchase_covariates")
        dropout = _names(dropout_covariates, "dropout_covariates")
        tied = _names(tied_covariates, "tied_covariates")
        for name in tied:
            # A column both tied and per-process would have two coefficients on one process
            # (not identifiable); the per-process one was dropped silently.
            for other, listed in (
                ("purchase_covariates", purchase),
                ("dropout_covariates", dropout),
            ):
                if name in listed:
                    raise _bad(
                        "tied_covariates",
                        f"`{name}` is also in {other}: a tied covariate already acts on both "
                        "processes with one coefficient; list it in one place",
                    )
        # A tied covariate acts on both processes with one coefficient.
        purchase += [c for c in tied if c not in purchase]
        dropout += [c for c in tied if c not in dropout]
        for name in purchase + dropout:
            if name in reserved:
                raise _bad(
                    "covariates",
                    f"`{name}` is one of the model's data columns ({', '.join(reserved)}), "
                    "not a covariate",
                )
        if data is None:
            raise InvalidDataError(
                "fitting with covariates needs a pandas or polars DataFrame holding the "
                "summary and covariate columns (data=...), not arrays"
            )
        levels: dict[str, list[Any]] = {}
        for name in dict.fromkeys(purchase + dropout):
            series = _column(data, name)
            _check_missing(series, name)
            if _is_categorical(series):
                if isinstance(series.dtype, pd.CategoricalDtype):
                    present = set(series.unique())
                    found = [v for v in series.cat.categories if v in present]
                else:
                    found = sorted(series.unique(), key=lambda v: (str(type(v)), v))
                found = [v.item() if isinstance(v, np.generic) else v for v in found]
                if len(found) < 2:
                    raise _data_error(
                        name,
                        None,
                        "needs variation",
                        f"has the single level {found!r}: its effect cannot be estimated",
                    )
                levels[name] = found
            else:
                values = series.to_numpy(dtype=np.float64)
                bad = np.flatnonzero(~np.isfinite(values))
                if bad.size:
                    raise _data_error(
                        name,
                        int(bad[0]),
                        "finite",
                        f"is {values[bad[0]]}; covariates must be finite",
                    )
                if values.size and np.all(values == values[0]):
                    raise _data_error(
                        name,
                        None,
                        "needs variation",
                        f"is constant ({values[0]:g}): its effect cannot be estimated",
                    )
        return cls(purchase, dropout, tied, levels)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> CovariateSpec:
        """Rebuild from :meth:`to_dict` output (a saved model)."""
        return cls(
            list(doc["purchase"]),
            list(doc["dropout"]),
            list(doc["tied"]),
            {str(k): list(v) for k, v in doc["levels"].items()},
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {
            "purchase": list(self.purchase),
            "dropout": list(self.dropout),
            "tied": list(self.tied),
            "levels": {k: list(v) for k, v in self.levels.items()},
        }

    # -- names ----------------------------------------------------------------------------------

    def encoded(self, name: str) -> list[str]:
        """The encoded columns of covariate ``name``."""
        if name in self.levels:
            return [f"{name}[{level}]" for level in self.levels[name][1:]]
        return [name]

    def _process_columns(self, process: str) -> list[str]:
        return list(self.purchase if process == "purchase" else self.dropout)

    def coefficient_names(self) -> list[str]:
        """Coefficient names in fit order: ``purchase:...``, ``dropout:...``, ``tied:...``."""
        names = []
        for process in self.processes:
            for column in self._process_columns(process):
                if column not in self.tied:
                    names += [f"{process}:{e}" for e in self.encoded(column)]
        for column in self.tied:
            names += [f"tied:{e}" for e in self.encoded(column)]
        return names

    def reference_levels(self) -> dict[str, str]:
        """For each coefficient of a categorical covariate, ``column=reference level``."""
        out = {}
        for coefficient in self.coefficient_names():
            encoded = coefficient.split(":", 1)[1]
            column = encoded.split("[", 1)[0]
            if column in self.levels and encoded != column:
                out[coefficient] = f"{column}={self.levels[column][0]}"
        return out

    # -- matrices -------------------------------------------------------------------------------

    def _encode(self, data: Any, name: str) -> np.ndarray:
        """The encoded columns of covariate ``name`` (rows x columns)."""
        series = _column(data, name)
        _check_missing(series, name)
        if name not in self.levels:
            if _is_categorical(series):
                raise _data_error(
                    name,
                    None,
                    "must be numeric",
                    f"was numeric when the model was fitted, got dtype {series.dtype}",
                )
            return series.to_numpy(dtype=np.float64).reshape(-1, 1)
        levels = self.levels[name]
        values = series.astype(object).to_numpy()
        known = {level: i for i, level in enumerate(levels)}
        codes = np.fromiter(
            (known.get(v.item() if isinstance(v, np.generic) else v, -1) for v in values),
            dtype=np.int64,
            count=len(values),
        )
        unseen = np.flatnonzero(codes < 0)
        if unseen.size:
            row = int(unseen[0])
            raise _data_error(
                name,
                row,
                "known level",
                f"has the level {values[row]!r}, not seen when the model was fitted "
                f"(levels: {levels})",
            )
        out = np.zeros((len(values), len(levels) - 1))
        rows = np.flatnonzero(codes > 0)
        out[rows, codes[rows] - 1] = 1.0
        return out

    def culprit(self, data: Any, row: int, params: pd.Series) -> str | None:
        """The covariate column with the largest term in ``row`` (None if it cannot be told)."""
        try:
            sizes = _term_sizes(self, data, row, params)
        except (ClvError, IndexError):
            return None
        return max(sizes, key=lambda k: sizes[k]) if sizes else None

    def design(self, data: Any) -> tuple[Any, ...]:
        """The covariate arguments of the core functions for the rows of ``data``."""
        coefficients = self.coefficient_names()
        index = {name: i for i, name in enumerate(coefficients)}
        matrices = []
        links = []
        column_names = []
        # Processes with the same covariate columns share one matrix (no second copy).
        built: dict[tuple[str, ...], np.ndarray] = {}
        for process in PROCESSES:
            process_columns = tuple(self._process_columns(process))
            process_links = []
            process_names = []
            for column in process_columns:
                prefix = "tied" if column in self.tied else process
                for encoded in self.encoded(column):
                    process_links.append(index[f"{prefix}:{encoded}"])
                    process_names.append(encoded)
            if process_columns not in built:
                blocks = [self._encode(data, column) for column in process_columns]
                if not blocks:
                    built[process_columns] = np.zeros((len(data), 0))
                else:
                    # Filled block by block (row-major, as the core reads it): cheaper than
                    # np.hstack's concatenation.
                    matrix = np.empty((blocks[0].shape[0], sum(b.shape[1] for b in blocks)))
                    start = 0
                    for block in blocks:
                        matrix[:, start : start + block.shape[1]] = block
                        start += block.shape[1]
                    built[process_columns] = matrix
            matrices.append(built[process_columns])
            links.append(process_links)
            column_names.append(process_names)
        return (
            matrices[0],
            matrices[1],
            links[0],
            links[1],
            column_names[0],
            column_names[1],
            coefficients,
        )


def _term_sizes(spec: CovariateSpec, data: Any, row: int, params: pd.Series) -> dict[str, float]:
    """Per covariate column: the largest |coefficient x value| of its terms in ``row``."""
    sizes: dict[str, float] = {}
    with np.errstate(all="ignore"):
        for column in dict.fromkeys(spec.purchase + spec.dropout):
            values = spec._encode(data, column)[row]
            prefixes = ["tied"] if column in spec.tied else []
            prefixes += [p for p in spec.processes if column in spec._process_columns(p)]
            size = 0.0
            for prefix in prefixes:
                for value, encoded in zip(values, spec.encoded(column)):
                    coef = params.get(f"{prefix}:{encoded}")
                    if coef is not None:
                        term = abs(float(coef) * float(value))
                        size = max(size, term if not math.isnan(term) else math.inf)
            sizes[column] = size
    return sizes


class OneProcessSpec(CovariateSpec):
    """The covariates of a model whose covariates act on one process: the spend of
    :class:`~clvrs.GammaGammaModel` (``process="spend"``) or the churn of the subscription
    models (``process="churn"``), with their categorical levels.

    Parameters
    ----------
    process : str
        The process (the coefficients' name prefix).
    columns : list of str
        Columns acting on it.
    levels : dict of str to list
        For each categorical column, its levels; the first is the reference level.
    """

    def __init__(self, process: str, columns: list[str], levels: dict[str, list[Any]]) -> None:
        super().__init__(columns, [], [], levels)
        self.processes = (process,)
        self.process = process
        self.columns = columns

    @classmethod
    def learn_one(
        cls, process: str, data: Any, covariates: Any, reserved: Sequence[str]
    ) -> OneProcessSpec:
        """Check the requested columns (the fit argument ``<process>_covariates``) and learn
        the categorical levels from the fit data."""
        columns = _names(covariates, f"{process}_covariates")
        spec = CovariateSpec.learn(data, columns, None, None, reserved)
        return cls(process, spec.purchase, spec.levels)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> OneProcessSpec:
        """Rebuild from :meth:`to_dict` output (a saved model)."""
        process = str(doc["process"])
        levels = {str(k): list(v) for k, v in doc["levels"].items()}
        return cls(process, list(doc["columns"]), levels)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description."""
        return {
            "process": self.process,
            "columns": list(self.columns),
            "levels": {k: list(v) for k, v in self.levels.items()},
        }

    def fit_keywords(self) -> dict[str, Any]:
        """The fit keyword that reproduces these covariates."""
        return {f"{self.process}_covariates": list(self.columns)}

    def _process_columns(self, process: str) -> list[str]:
        return list(self.columns) if process == self.process else []

    def one_design(self, data: Any) -> tuple[np.ndarray, list[str], list[str]]:
        """The covariate matrix of ``data`` (rows x encoded columns, row-major), the encoded
        columns' names and the coefficients' names."""
        blocks = [self._encode(data, column) for column in self.columns]
        matrix = np.empty((blocks[0].shape[0], sum(b.shape[1] for b in blocks)))
        start = 0
        for block in blocks:
            matrix[:, start : start + block.shape[1]] = block
            start += block.shape[1]
        encoded = [e for column in self.columns for e in self.encoded(column)]
        return matrix, encoded, self.coefficient_names()


def _check_missing(series: pd.Series, name: str) -> None:
    missing = np.flatnonzero(series.isna().to_numpy())
    if missing.size:
        raise _data_error(
            name, int(missing[0]), "no missing values", "is missing; covariates must be given"
        )


class CovariateSummary:
    """Summary and persistence of an estimator that may be fitted with covariates (a mixin
    placed before :class:`~clvrs._base.BaseModel`): coefficients in the summary with ``z``,
    ``p`` and reference levels, and the covariate encoding in saved documents."""

    _param_names: ClassVar[tuple[str, ...]]
    #: The kind of covariate description the estimator keeps (and saves).
    _covariate_spec: ClassVar[type[CovariateSpec]] = CovariateSpec

    #: The covariates of a model fitted with them (None otherwise).
    covariates_: CovariateSpec | None

    def _spec(self) -> CovariateSpec | None:
        spec = self.__dict__.get("covariates_")
        return spec if isinstance(spec, CovariateSpec) else None

    @contextlib.contextmanager
    def _naming_covariates(self, data: Any) -> Iterator[None]:
        """Blame the covariate column, not ``covariates``, for a customer whose covariates put
        the model's parameters outside their domain (a value of 1e300, say): the column whose
        term (coefficient times value) is largest in magnitude in that customer's row."""
        try:
            yield
        except InvalidDataError as err:
            spec = self._spec()
            row = getattr(err, "row", None)
            if spec is None or getattr(err, "column", None) != "covariates" or row is None:
                raise
            params = self.__dict__.get("params_")
            name = None if params is None else spec.culprit(data, row, params)
            if name is None:
                raise
            message = str(err).replace("column `covariates`", f"column `{name}`", 1)
            message = message.replace(
                ": give this customer",
                ": the covariates (this column's term the largest) give this customer",
                1,
            )
            renamed = InvalidDataError(message)
            renamed.column, renamed.row, renamed.rule = name, row, err.rule
            raise renamed from None

    def summary_frame(self, level: float = 0.95) -> pd.DataFrame:
        """Estimates with standard errors and ``level`` confidence intervals.

        Model parameters get Wald intervals on the log scale mapped back (they are positive).
        Covariate coefficients (models fitted with covariates) get plain Wald intervals, with
        ``z`` and the two-sided ``p`` value of the hypothesis that the coefficient is 0, and
        ``reference`` naming the reference level of a categorical covariate.
        """
        frame = super().summary_frame(level)  # type: ignore[misc]
        spec = self._spec()
        if spec is None:
            return frame
        if self._is_bayesian():  # type: ignore[attr-defined]
            # A posterior summary's intervals are the draws' quantiles, coefficients too (no
            # z or p); the reference levels say what a categorical coefficient compares with.
            references = spec.reference_levels()
            frame["reference"] = [references.get(name) for name in frame.index]
            return frame
        from statistics import NormalDist

        z = NormalDist().inv_cdf(0.5 + level / 2)
        coefficients = [name for name in frame.index if name not in self._param_names]
        coef = frame.loc[coefficients, "coef"]
        se = frame.loc[coefficients, "se"]
        frame.loc[coefficients, "lower"] = coef - z * se
        frame.loc[coefficients, "upper"] = coef + z * se
        statistic = coef / se
        frame["z"] = np.nan
        frame["p"] = np.nan
        frame.loc[coefficients, "z"] = statistic
        frame.loc[coefficients, "p"] = [
            math.erfc(abs(v) / math.sqrt(2)) if np.isfinite(v) else np.nan for v in statistic
        ]
        references = spec.reference_levels()
        frame["reference"] = [references.get(name) for name in frame.index]
        return frame

    def to_dict(self) -> dict[str, Any]:  # noqa: D102 - documented on the base
        doc: dict[str, Any] = super().to_dict()  # type: ignore[misc]
        spec = self._spec()
        if spec is not None:
            doc["covariates"] = spec.to_dict()
        return doc

    @classmethod
    def _document_names(cls, doc: dict[str, Any]) -> list[str]:
        covariates = doc.get("covariates")
        names = list(cls._param_names)
        if covariates:
            names += cls._covariate_spec.from_dict(covariates).coefficient_names()
        return names

    @classmethod
    def _from_document(cls, doc: dict[str, Any]) -> BaseModel:
        model = super()._from_document(doc)  # type: ignore[misc]
        covariates = doc.get("covariates")
        model.covariates_ = cls._covariate_spec.from_dict(covariates) if covariates else None  # type: ignore[attr-defined]
        return model
