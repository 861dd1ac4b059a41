"""Many models at once: one model per segment or acquisition cohort, fitted in parallel."""

from __future__ import annotations

import json
import math
import numbers
import os
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from . import _core, _display
from ._base import _REGISTRY, FORMAT, _bad_parameter, _check_path, load_document
from ._input import _is_polars_frame, _native, align_to, ndim
from ._units import data_unit
from .exceptions import ConvergenceError, ConvergenceWarning, InvalidDataError
from .models._regularity import RegularityModel
from .models._rfm import RfmModel

__all__ = ["SegmentedModel", "fit_segments"]

#: Prediction arguments that take one value per customer (sliced with the rows by segment).
_PER_ROW = frozenset({"t", "n", "m", "discount_rate"})


def _segment_values(data: Any, by: Any, n_rows: int) -> tuple[np.ndarray, str | None]:
    """The segment of each row (from a column name or an array) and the column's name."""
    if isinstance(by, str):
        if data is None:
            raise _bad_parameter("by", "a column name needs `data`")
        try:
            column = data[by]
        except Exception:
            err = InvalidDataError(f"column `{by}`: not found (the segment column)")
            err.column, err.rule = by, "must be present"
            raise err from None
        values = column.to_numpy() if hasattr(column, "to_numpy") else np.asarray(column)
        return np.asarray(values), by
    if by is None or isinstance(by, (bytes, dict)):
        raise _bad_parameter("by", f"must be a column name or the segment of each row, got {by!r}")
    if isinstance(by, pd.Series) and isinstance(data, pd.DataFrame):
        # Matched to the rows by the rule of `align_to` (labels, when they agree).
        by = align_to(by, data.index, n_rows, "by", "data")
    try:
        values = np.asarray(by.to_numpy() if hasattr(by, "to_numpy") else by)
    except ValueError:  # ragged nested lists
        raise _bad_parameter("by", "must be a column name or one segment per row") from None
    if values.ndim != 1:
        raise _bad_parameter(
            "by", f"must be a column name or one segment per row, got {type(by).__name__}"
        )
    if len(values) != n_rows:
        raise _bad_parameter("by", f"has {len(values)} values for {n_rows} customers")
    return values, getattr(by, "name", None)


def _factorize_sorted(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes of ``values`` into their sorted distinct values (``-1`` for missing values), and
    those values: ``pandas.factorize(values, sort=True)``, with a direct path for integer
    segment numbers in a compact range (a table instead of a hash, several times faster)."""
    if values.dtype.kind in "iu" and len(values):
        low, high = int(values.min()), int(values.max())
        int64 = np.iinfo(np.int64)
        # Offsets in int64 (the input's own type would wrap, e.g. int8 keys -100 and 100).
        if int64.min <= low and high <= int64.max and high - low < 2 * len(values) + 1024:
            offsets = values.astype(np.int64) - low
            present = np.zeros(high - low + 1, dtype=bool)
            present[offsets] = True
            keys = (np.flatnonzero(present).astype(np.int64) + low).astype(values.dtype)
            codes = (np.cumsum(present, dtype=np.int64) - 1)[offsets]
            return codes, keys
    return pd.factorize(values, sort=True, use_na_sentinel=True)


def fit_segments(
    model: RfmModel,
    data: Any,
    by: Any,
    *,
    min_customers: float = 50,
) -> SegmentedModel:
    """Fit one copy of ``model`` to each segment of the customers, in parallel.

    Segments run in parallel on the crate's thread pool (``model.n_jobs`` threads), each fit
    serially, so many small segments use every core. A segment smaller than ``min_customers``
    is not fitted and one whose fit fails is reported; neither stops the others.

    Parameters
    ----------
    model : BetaGeoModel, ModifiedBetaGeoModel, ParetoNBDModel, GammaGompertzNBDModel,
        BetaGeoBetaBinomModel, NBDModel, BetaGeoCNBDModel or ModifiedBetaGeoCNBDModel
        An unfitted estimator whose hyperparameters (penalizer, tolerances, columns, n_jobs)
        every segment's fit uses.
    data : DataFrame
        Customer summaries (the model's columns).
    by : str or array-like
        The segment column's name, or the segment of each row.
    min_customers : float, default 50
        Segments with fewer customers (sum of weights) are reported, not fitted.

    Returns
    -------
    SegmentedModel
        The fitted collection.

    Notes
    -----
    Every segment's fit starts from the estimate for all segments pooled (fitted to a
    subsample of about 20,000 customers when there are more than 200,000). BG/NBD, MBG/NBD
    and Pareto/NBD, whose likelihoods give the value, gradient and Hessian in one pass, take
    Newton steps from there, usually 3 or 4 passes over the segment; the other models take
    L-BFGS steps. A segment whose fit from there does
    not converge, or converges with parameters running off to 0 or infinity, is refitted from
    the model's own starting points and the better fit is kept. The estimates are those of
    fitting each segment alone, to the optimiser's tolerance.

    BG/CNBD-k and MBG/CNBD-k (which need ``litt`` when ``k`` is chosen or above 1) are fitted
    differently: each segment by a copy of ``model``, one segment after another (each fit
    parallel over its rows), with the given ``k`` or its own choice of ``k`` over ``1..max_k``
    (``models_[segment].k_``): segments may differ in regularity, and a warm start from a
    pooled estimate of another ``k`` would not serve.
    """
    if not isinstance(model, RfmModel):
        raise _bad_parameter("model", "must be one of the purchase models (e.g. BetaGeoModel)")
    model._check_hyperparameters()
    if not (
        isinstance(min_customers, numbers.Real)
        and not isinstance(min_customers, bool)
        and math.isfinite(min_customers)
        and min_customers >= 0
    ):
        raise _bad_parameter(
            "min_customers", f"must be a finite number >= 0, got {min_customers!r}"
        )
    regularity = isinstance(model, RegularityModel)
    optional: tuple[str, ...] = ("weights",)
    keywords: dict[str, Any] = {"weights": None}
    if regularity:
        optional = model._require_litt(data, None)
        keywords["litt"] = None
    cols = model._columns(data, keywords, optional=optional, fitting=True)
    unit = data_unit(data)
    a = cols.arrays
    values, by_name = _segment_values(data, by, len(a["frequency"]))
    codes, keys = _factorize_sorted(values)
    missing = np.flatnonzero(codes < 0)
    if missing.size:
        # Named after the caller's column (or the `by` argument), not the core's `segment`.
        err = InvalidDataError(
            f"column `{by_name or 'by'}`, row {int(missing[0])}: must not be missing (null); "
            "give every customer a segment"
        )
        err.column, err.row, err.rule = by_name or "by", int(missing[0]), "must not be missing"
        with cols.locating_rows({err.column: values}):
            raise err
    if regularity:
        return _fit_regularity_segments(
            model, cols, codes, keys, float(min_customers), unit, by_name
        )
    with cols.locating_rows():
        results = _core.rfm_fit_segments(
            model._model,
            a["frequency"],
            a["recency"],
            a["T"],
            a.get("weights"),
            _native(codes, dtype=np.int64),
            len(keys),
            model._names(cols),
            min_customers=float(min_customers),
            penalizer=float(model.penalizer),
            max_iter=int(model.max_iter),
            tol=float(model.tol),
            n_jobs=model.n_jobs,
        )
    fits: dict[Any, dict[str, Any]] = {}
    failures: dict[Any, str] = {}
    sizes = {}
    for result in results:
        key = keys[result["segment"]]
        key = key.item() if hasattr(key, "item") else key
        sizes[key] = result["customers"]
        if "error" in result:
            failures[key] = result["error"]
        else:
            fits[key] = result
    models = _SegmentModels(model, fits, unit)
    not_converged = [k for k, r in fits.items() if not r["converged"]]
    if not_converged and model.on_failure != "ignore":
        warnings.warn(
            f"{len(not_converged)} of {len(models)} segment fits did not converge "
            f"(segments {not_converged[:5]}{'...' if len(not_converged) > 5 else ''}); see "
            "SegmentedModel.fit_table",
            ConvergenceWarning,
            stacklevel=2,
        )
    return SegmentedModel(model, models, failures, pd.Series(sizes, name="customers"), by_name)


def _fit_regularity_segments(
    model: RegularityModel,
    cols: Any,
    codes: np.ndarray,
    keys: np.ndarray,
    min_customers: float,
    unit: str | None,
    by_name: str | None,
) -> SegmentedModel:
    """:func:`fit_segments` for BG/CNBD-k and MBG/CNBD-k: each segment's rows fitted by a copy
    of ``model`` (its own ``k``, or its own choice of ``k`` over ``1..max_k``), one segment
    after another, each fit parallel over its rows. The core's segment fits start every
    segment from the pooled estimate for a fixed parameter set; here the parameter set itself
    (``k``) may differ between segments, so each fit is a model's own fit."""
    a = cols.arrays
    if "litt" in a:
        # The whole data's rules first, so that an error names its first offending row.
        with cols.locating_rows():
            _core.cnbd_check_litt(
                a["frequency"],
                a["recency"],
                a["T"],
                a.get("weights"),
                a["litt"],
                model._names(cols),
                litt_name=cols.names.get("litt", "litt"),
            )
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(keys) + 1))
    weights = a.get("weights")
    models: dict[Any, RfmModel] = {}
    failures: dict[Any, str] = {}
    sizes: dict[Any, float] = {}
    for code, raw_key in enumerate(keys):
        key = raw_key.item() if hasattr(raw_key, "item") else raw_key
        rows = order[bounds[code] : bounds[code + 1]]
        customers = float(len(rows) if weights is None else np.sum(weights[rows]))
        sizes[key] = customers
        if customers < min_customers:
            failures[key] = (
                f"column `segment`: has {customers:g} customers, fewer than the "
                f"{min_customers:g} required to fit (min_customers)"
            )
            continue
        fitted = type(model)(**model.get_params())
        fitted.on_failure = "ignore"
        try:
            fitted.fit(
                **{name: values[rows] for name, values in a.items()},
                time_unit=unit,
            )
        except (InvalidDataError, ConvergenceError) as err:
            failures[key] = str(err)
            continue
        fitted.on_failure = model.on_failure
        models[key] = fitted
    not_converged = [k for k, m in models.items() if not m.converged_]
    if not_converged and model.on_failure != "ignore":
        warnings.warn(
            f"{len(not_converged)} of {len(models)} segment fits did not converge "
            f"(segments {not_converged[:5]}{'...' if len(not_converged) > 5 else ''}); see "
            "SegmentedModel.fit_table",
            ConvergenceWarning,
            stacklevel=3,
        )
    return SegmentedModel(model, models, failures, pd.Series(sizes, name="customers"), by_name)


class _SegmentModels(Mapping[Any, RfmModel]):
    """Segment -> fitted model, each built from the core's result when first used (building
    a thousand estimators with pandas attributes costs more than fitting them)."""

    def __init__(
        self, template: RfmModel, fits: dict[Any, dict[str, Any]], time_unit: str | None = None
    ) -> None:
        self._template = template
        self._fits = fits
        self._time_unit = time_unit
        self._built: dict[Any, RfmModel] = {}

    def __getitem__(self, key: Any) -> RfmModel:
        if key not in self._built:
            result = self._fits[key]
            fitted = type(self._template)(**self._template.get_params())
            fitted.on_failure = "ignore"
            fitted._set_fit(result)
            fitted.time_unit_ = self._time_unit
            fitted.on_failure = self._template.on_failure
            self._built[key] = fitted
        return self._built[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._fits)

    def __len__(self) -> int:
        return len(self._fits)


class SegmentedModel:
    """One fitted model per segment, with a combined summary and routed predictions.

    Attributes
    ----------
    models_ : dict
        Segment -> fitted model.
    failures_ : dict
        Segment -> why it was not fitted (too small, or the fit failed).
    sizes_ : pandas.Series
        Customers per segment (all segments).
    """

    def __init__(
        self,
        template: RfmModel,
        models: Mapping[Any, RfmModel],
        failures: dict[Any, str],
        sizes: pd.Series,
        by: str | None,
    ) -> None:
        self.template = template
        self.models_ = models
        self.failures_ = failures
        self.sizes_ = sizes
        self.by = by

    def _overview(self) -> list[str]:
        """What the collection holds, in a few lines (for ``repr`` and the notebook display)."""
        by = "" if self.by is None else f" by {self.by!r}"
        customers = _display.number(float(np.sum(self.sizes_.to_numpy(dtype=float))))
        fitted = len(self.models_)
        # The core's results, when the models are not built yet (building them costs more).
        fits = getattr(self.models_, "_fits", None)
        if fits is not None:
            not_converged = sum(1 for result in fits.values() if not result["converged"])
        else:
            not_converged = sum(1 for model in self.models_.values() if not model.converged_)
        head = (
            f"{fitted} of {len(self.sizes_)} segments fitted ({customers} customers)"
            if fitted == len(self.sizes_)
            else f"{fitted} of {len(self.sizes_)} segments fitted ({customers} customers; "
            f"{len(self.sizes_) - fitted} not fitted: see fit_table's status)"
        )
        if not_converged:
            head += f"; {not_converged} did not converge"
        return [f"{type(self.template).__name__}{by}: {head}"]

    def __repr__(self) -> str:
        columns = ["customers", "status", "converged", "log_likelihood"]
        first = self._fit_frame(self.sizes_.iloc[: _display.TEXT_ROWS])[columns]
        table = _display.text_table(first, what="segments", total=len(self.sizes_))
        return "SegmentedModel(" + self._overview()[0] + ")\n" + table

    def _repr_html_(self) -> str:
        first = self._fit_frame(self.sizes_.iloc[: _display.HTML_ROWS])
        table = _display.html_table(first, what="segments (see fit_table)", total=len(self.sizes_))
        return _display.html_block("SegmentedModel", self._overview(), table)

    @property
    def summary(self) -> pd.DataFrame:
        """Estimates per segment: rows (segment, parameter), columns coef, se, lower, upper."""
        frames = {key: m.summary for key, m in self.models_.items()}
        if not frames:
            return pd.DataFrame(columns=["coef", "se", "lower", "upper"])
        out = pd.concat(frames, names=["segment", "parameter"])
        return out

    @property
    def fit_table(self) -> pd.DataFrame:
        """Per segment: customers (whole numbers when the counts are), status (fitted / the
        reason it was not), convergence, log-likelihood, AIC, BIC."""
        return self._fit_frame(self.sizes_)

    def _fit_frame(self, sizes: pd.Series) -> pd.DataFrame:
        """:attr:`fit_table`'s rows of the segments in ``sizes`` (building only their models)."""
        rows = []
        for key, size in sizes.items():
            m = self.models_.get(key)
            rows.append(
                {
                    "segment": key,
                    "customers": size,
                    "status": "fitted" if m is not None else self.failures_.get(key, "missing"),
                    "converged": None if m is None else m.converged_,
                    "log_likelihood": None if m is None else m.log_likelihood_,
                    "aic": None if m is None else m.aic_,
                    "bic": None if m is None else m.bic_,
                }
            )
        return _display.whole_columns(pd.DataFrame(rows).set_index("segment"), ["customers"])

    def predict(self, method: str, data: Any, by: Any = None, **kwargs: Any) -> pd.Series:
        """Any per-customer prediction of the segment models (``method`` names it, e.g.
        ``"expected_purchases"``), each row by its own segment's model. Rows of segments without
        a model are NaN.

        Returns
        -------
        pandas.Series
            On the data's index (a RangeIndex for non-pandas input).
        """
        if not (
            isinstance(method, str)
            and not method.startswith("_")
            and callable(getattr(self.template, method, None))
        ):
            raise _bad_parameter("method", f"{type(self.template).__name__} has no {method!r}")
        if isinstance(data, pd.DataFrame):
            frame = data
        elif _is_polars_frame(data):
            frame = data.to_pandas()
        elif isinstance(data, Mapping):
            try:
                frame = pd.DataFrame(data)
            except (TypeError, ValueError) as exc:
                raise InvalidDataError(f"data: not a table of customers ({exc})") from None
        else:
            raise InvalidDataError(
                f"data must be a pandas or polars DataFrame of customers, got {type(data).__name__}"
            )
        values, _ = _segment_values(frame, by if by is not None else self.by, len(frame))
        out = np.full(len(frame), np.nan)
        # Per-customer arguments (a horizon, count or rate per row) go with their rows to the
        # rows' segments, matched to the data by the rule of `align_to`.
        per_row = {
            key: np.asarray(align_to(value, frame.index, len(frame), key, "data"))
            for key, value in kwargs.items()
            if key in _PER_ROW and ndim(value) == 1 and len(value) == len(frame) != 1
        }
        keys = pd.Series(values)
        # A segment the model never saw (a typo, a new region) is refused, not left NaN like
        # the segments too small to fit or whose fit failed (listed in fit_table).
        unknown = np.flatnonzero(~keys.isin(self.sizes_.index))
        if unknown.size:
            position = int(unknown[0])
            value = keys.iloc[position]
            name = by if isinstance(by, str) else self.by if by is None else None
            column = name if isinstance(name, str) else "by"
            fitted = [str(k) for k in self.sizes_.index[:10]]
            err = InvalidDataError(
                f"column `{column}`, row {position} (value {value!r}): must be one of the "
                f"segments the model was fitted on ({', '.join(fitted)}"
                f"{', ...' if len(self.sizes_) > 10 else ''})"
            )
            err.column, err.row, err.rule = column, position, "must be a fitted segment"
            label = frame.index[position]
            if not (isinstance(frame.index, pd.RangeIndex) and label == position):
                err.label = label
                err.args = (f"{err} [index label {label!r}]",)
            raise err
        for key, positions in keys.groupby(keys, sort=False).indices.items():
            model = self.models_.get(key.item() if hasattr(key, "item") else key)
            if model is None:
                continue
            part = frame.iloc[positions]
            arguments = {**kwargs, **{k: v[positions] for k, v in per_row.items()}}
            out[positions] = np.asarray(getattr(model, method)(part, **arguments), dtype=float)
        return pd.Series(out, index=frame.index, name=method)

    def expected_purchases(self, data: Any, t: Any = 1.0, *, by: Any = None) -> pd.Series:
        """Expected purchases in the next ``t`` per customer, by segment."""
        return self.predict("expected_purchases", data, by, t=t)

    def probability_alive(self, data: Any, *, by: Any = None) -> pd.Series:
        """P(alive) per customer, by segment."""
        return self.predict("probability_alive", data, by)

    # -- persistence ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The collection as one JSON-ready document."""
        from . import __version__

        members = {key: model.to_dict() for key, model in self.models_.items()}
        return {
            "format": FORMAT,
            # The newest layout any segment's model needs (1, readable by older clvrs, unless a
            # model keeps a time unit or draws).
            "format_version": max([1] + [doc["format_version"] for doc in members.values()]),
            "clvrs_version": __version__,
            "model": "SegmentedModel",
            "template": type(self.template).__name__,
            "hyperparameters": self.template.get_params(),
            "by": self.by,
            "segments": [
                {
                    "segment": key,
                    "customers": float(self.sizes_[key]),
                    "model": members.get(key),
                    "failure": self.failures_.get(key),
                }
                for key in self.sizes_.index
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, allow_nan=False)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the collection to ``path`` as one JSON document (``clvrs.load`` reads it)."""
        _check_path(path)
        text = self.to_json()
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)

    @classmethod
    def _from_document(cls, doc: dict[str, Any]) -> SegmentedModel:
        template_cls = _REGISTRY[doc["template"]]
        template: RfmModel = template_cls(**doc["hyperparameters"])  # type: ignore[assignment]
        models: dict[Any, RfmModel] = {}
        failures: dict[Any, str] = {}
        sizes: dict[Any, float] = {}
        for entry in doc["segments"]:
            key = entry["segment"]
            sizes[key] = entry["customers"]
            if entry.get("model") is not None:
                models[key] = load_document(entry["model"])  # type: ignore[assignment]
            if entry.get("failure") is not None:
                failures[key] = entry["failure"]
        return cls(template, models, failures, pd.Series(sizes, name="customers"), doc.get("by"))


_REGISTRY["SegmentedModel"] = SegmentedModel  # type: ignore[assignment]
