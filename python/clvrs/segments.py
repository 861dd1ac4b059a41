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

from . import _bayes, _core, _display, _pooling
from ._base import (
    _REGISTRY,
    FORMAT,
    _bad_parameter,
    _check_path,
    _settings_record,
    load_document,
)
from ._bayes import check_method, sampler_settings
from ._input import _is_polars_frame, _native, align_to, as_float_array, ndim
from ._units import data_unit
from .exceptions import ConvergenceError, ConvergenceWarning, InvalidDataError
from .models._regularity import RegularityModel
from .models._rfm import RfmModel
from .priors import from_terms, terms_json

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
    method: str = "mle",
    pooling: str = "none",
    chains: int = 4,
    draws: int = 1000,
    tune: int = 1000,
    seed: int | None = None,
    priors: dict[Any, Any] | None = None,
    target_accept: float = 0.8,
    max_depth: int = 10,
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
        Segments with fewer customers (sum of weights) are reported, not fitted (separate fits;
        with ``pooling="partial"`` or ``"complete"`` every segment is included whatever its
        size: small segments are what pooling is for).
    method : {"mle", "nuts"}, default "mle"
        Maximum likelihood, or posterior draws by NUTS (as ``model.fit(method=...)``).
    pooling : {"none", "partial", "complete"}, default "none"
        ``"none"``: one model per segment, fitted separately (with ``method="nuts"``, one
        posterior per segment). ``"complete"``: one model fitted to every customer, shared by
        all segments. ``"partial"`` (``method="nuts"`` only): one model per segment whose
        log-parameters come from a population distribution whose mean and spread are
        estimated with them, in one joint NUTS run, so that small segments borrow strength
        from large ones (see Notes).
    chains, draws, tune, seed, target_accept, max_depth
        The sampler's settings with ``method="nuts"``, as for ``model.fit``. With
        ``pooling="none"`` segment ``i`` (in sorted order) samples with a seed derived from
        ``seed`` and ``i`` (``models_[segment].fit_info_["seed"]``): its draws are those of
        ``model.fit`` on the segment's customers with that seed. The segments' posteriors run
        in parallel on the crate's pool, each run serially (its chains one after another),
        with the same draws for any ``n_jobs``.
    priors : dict, optional
        ``method="nuts"``: with ``pooling="none"`` or ``"complete"``, the model's priors by
        parameter name (as ``model.fit``); with ``pooling="partial"``, priors on the population
        parameters by name, ``"mu_log_<p>"`` (the mean of ``log p``; a
        ``clvrs.priors.Normal``) and ``"sigma_log_<p>"`` (its spread; a positive
        distribution such as ``clvrs.priors.HalfNormal``).

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
    not converge is refitted from the model's own starting points; one that converges with
    parameters running off to 0 or infinity is refitted from those starting points until one
    converges; the better fit is kept. The estimates are those of fitting each segment alone,
    to the optimiser's tolerance (along a plateau, where parameters run off, any point of it).

    BG/CNBD-k and MBG/CNBD-k (which need ``litt`` when ``k`` is chosen or above 1) are fitted
    differently: each segment by a copy of ``model``, one segment after another (each fit
    parallel over its rows), with the given ``k`` or its own choice of ``k`` over ``1..max_k``
    (``models_[segment].k_``): segments may differ in regularity, and a warm start from a
    pooled estimate of another ``k`` would not serve; they take ``method="mle"`` and
    ``pooling="none"`` only.

    Partial pooling (``pooling="partial"``): for segment ``s`` and each parameter ``p``,
    ``log p_s = mu_log_p + sigma_log_p * z_s`` with ``z_s ~ Normal(0, 1)``: the non-centred
    parameterisation, which keeps the sampler out of the funnel between a small spread and the
    segment parameters when segments carry little information. Default population priors:
    ``mu_log_p ~ Normal(log p0, 2)`` around the largest segment's data-derived starting value
    ``p0`` (the same weakly informative ``LogNormal(log p0, 2)`` a single model's fit puts on
    ``p``, and unit-free), and ``sigma_log_p ~ HalfNormal(1)``: a spread of 1 is a factor of
    e between segments one standard deviation apart; factors of 10 to 20 stay plausible, and
    the mode at 0 pools segments the data cannot tell apart (Gelman 2006 advises half-normal
    or half-t priors on group spreads over the inverse-gamma(eps, eps), which is informative
    near 0). The log density sums each segment's likelihood over its compressed rows,
    segments in parallel on the crate's pool, and is bit-identical for any ``n_jobs``.
    ``posterior_`` holds every segment's draws (a ``segment`` dimension) and the population's;
    ``summary`` lists each segment's posterior and, under the segment ``"population"``, the
    population's. :meth:`SegmentedModel.save` keeps all of it (every segment's draws, the
    population's, the pooling, the priors and the joint run's ``fit_info_``).

    Raises
    ------
    InvalidParameterError
        For an unknown ``method`` or ``pooling``, ``pooling="partial"`` with
        ``method="mle"`` or fewer than 2 segments, priors on unknown parameters, or a
        regularity model with ``method`` or ``pooling`` other than the defaults.
    """
    if not isinstance(model, RfmModel):
        raise _bad_parameter("model", "must be one of the purchase models (e.g. BetaGeoModel)")
    model._check_hyperparameters()
    method = check_method(method)
    pooling = _pooling.check_pooling(pooling, method)
    if method == "nuts":
        settings = sampler_settings(chains, draws, tune, seed, target_accept, max_depth)
        model._check_bayes_hyperparameters()
    elif priors is not None:
        raise _bad_parameter("priors", 'are used by method="nuts" only')
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
        if method != "mle" or pooling != "none":
            raise _bad_parameter(
                "method" if method != "mle" else "pooling",
                f"{type(model).__name__} segments are fitted separately by maximum likelihood "
                'only (method="mle", pooling="none")',
            )
        return _fit_regularity_segments(
            model, cols, codes, keys, float(min_customers), unit, by_name
        )
    if pooling != "none" or method == "nuts":
        return _fit_bayes_or_pooled(
            model, data, cols, codes, keys, by_name, unit, min_customers, method, pooling,
            settings if method == "nuts" else None, priors,
        )  # fmt: skip
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


def _fit_bayes_or_pooled(
    model: RfmModel,
    data: Any,
    cols: Any,
    codes: np.ndarray,
    keys: np.ndarray,
    by_name: str | None,
    unit: str | None,
    min_customers: float,
    method: str,
    pooling: str,
    settings: tuple[int, int, int, int, float, int] | None,
    priors: Any,
) -> SegmentedModel:
    """:func:`fit_segments` with ``pooling="partial"`` or ``"complete"``, or separate
    posteriors (``method="nuts"``, ``pooling="none"``)."""
    a = cols.arrays
    segment_keys = [k.item() if hasattr(k, "item") else k for k in keys]
    counts = np.bincount(
        codes, weights=None if a.get("weights") is None else a["weights"], minlength=len(keys)
    )
    sizes = pd.Series(dict(zip(segment_keys, counts.tolist())), name="customers")
    frequency = as_float_array(a["frequency"], cols.names["frequency"])
    name = type(model).__name__
    if pooling == "complete":
        pooled = type(model)(**model.get_params())
        if settings is None:
            pooled.fit(data)
        else:
            pooled.fit(
                data, method="nuts", chains=settings[0], draws=settings[1], tune=settings[2],
                seed=settings[3], priors=priors, target_accept=settings[4],
                max_depth=settings[5],
            )  # fmt: skip
        out = SegmentedModel(
            model, {key: pooled for key in segment_keys}, {}, sizes, by_name, pooling=pooling
        )
        if settings is not None:
            out.method = "nuts"
            out.priors_ = pooled.priors_
        return out
    assert settings is not None  # (partial pooling and separate posteriors are Bayesian)
    record = _settings_record(settings)
    models: dict[Any, RfmModel] = {}
    failures: dict[Any, str] = {}
    infos = []
    population = None
    shared_stats = None
    if pooling == "partial":
        if len(keys) < 2:
            raise _bad_parameter(
                "pooling",
                f'"partial" needs at least 2 segments to estimate a population from, got '
                f"{len(keys)}",
            )
        names = list(model._param_names)
        with cols.locating_rows():
            result = _core.rfm_sample_pooled(
                model._model,
                frequency,
                a["recency"],
                a["T"],
                a.get("weights"),
                _native(codes, dtype=np.int64),
                len(keys),
                model._names(cols),
                terms_json(priors, _pooling.population_names(names)),
                settings,
                n_jobs=model.n_jobs,
            )
        joint = _bayes.draws_by_chain(result)
        info = _bayes.fit_record(result, record, joint)
        info["pooling"] = "partial"
        infos.append(info)
        population = _pooling.population_draws(result)
        shared_stats = joint["sample_stats"]
        for s, key in enumerate(segment_keys):
            fitted = type(model)(**model.get_params())
            fitted._set_posterior(_pooling.segment_result(result, s), record, quiet=True)
            fitted.fit_info_["pooling"] = "partial"
            fitted.time_unit_ = unit
            models[key] = fitted
        priors_used = from_terms(json.loads(result["priors"]), _pooling.population_names(names))
    else:
        # Segment `s` (in sorted order) samples with a seed derived from `seed` and `s`;
        # segments run in parallel on the crate's pool, each run serially, so the draws do
        # not depend on the thread count.
        seeds = [
            int(np.random.SeedSequence([settings[3], s]).generate_state(1, np.uint64)[0])
            for s in range(len(segment_keys))
        ]
        with cols.locating_rows():
            results = _core.rfm_sample_segments(
                model._model,
                frequency,
                a["recency"],
                a["T"],
                a.get("weights"),
                _native(codes, dtype=np.int64),
                len(keys),
                model._names(cols),
                terms_json(priors, list(model._param_names)),
                settings,
                seeds,
                min_customers=float(min_customers),
                n_jobs=model.n_jobs,
            )
        for result in results:
            key = segment_keys[result["segment"]]
            if "error" in result:
                failures[key] = result["error"]
                continue
            fitted = type(model)(**model.get_params())
            fitted._set_posterior(result, {**record, "seed": seeds[result["segment"]]}, quiet=True)
            fitted.time_unit_ = unit
            models[key] = fitted
            infos.append(fitted.fit_info_)
        priors_used = next(iter(models.values())).priors_ if models else {}
    # One warning for the collection (not one per segment).
    if infos:
        rhats = [np.nan if i["r_hat_max"] is None else float(i["r_hat_max"]) for i in infos]
        worst = {
            "r_hat_max": float(np.max(rhats)),
            "divergences": sum(int(i["divergences"]) for i in infos),
        }
        _bayes.warn_or_raise(f"{name} by segment", worst, model.on_failure)
    out = SegmentedModel(model, models, failures, sizes, by_name, pooling=pooling)
    out.method = "nuts"
    out.priors_ = priors_used
    out._population = population
    out._joint_stats = shared_stats
    if pooling == "partial":
        out.fit_info_ = infos[0]
    return out


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
    method : str
        ``"mle"`` or ``"nuts"``.
    pooling : str
        ``"none"``, ``"partial"`` or ``"complete"``.
    priors_ : dict
        With ``method="nuts"``: the priors used (with partial pooling, the population's).
    fit_info_ : dict
        With ``pooling="partial"``: the joint run's record (sampler settings and health).

    ``save`` writes all of it, with every segment's draws and the population's, to one JSON
    document that ``clvrs.load`` reads back.
    """

    def __init__(
        self,
        template: RfmModel,
        models: Mapping[Any, RfmModel],
        failures: dict[Any, str],
        sizes: pd.Series,
        by: str | None,
        *,
        pooling: str = "none",
    ) -> None:
        self.template = template
        self.models_ = models
        self.failures_ = failures
        self.sizes_ = sizes
        self.by = by
        self.pooling = pooling
        #: "mle" or "nuts" (set by fit_segments).
        self.method = "mle"
        #: With method="nuts": the priors used (partial pooling: the population's).
        self.priors_: dict[Any, Any] = {}
        #: With pooling="partial": the joint run's record (sampler settings, health).
        self.fit_info_: dict[str, Any] = {}
        self._population: dict[str, np.ndarray] | None = None
        self._joint_stats: dict[str, np.ndarray] | None = None

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
        """Estimates per segment: rows (segment, parameter), columns coef, se, lower, upper
        (maximum likelihood) or mean, sd, lower, upper, r_hat, ess_bulk, ess_tail, mcse_mean
        (``method="nuts"``); with partial pooling the population's mean and spread of each
        log-parameter follow under the segment ``"population"``."""
        frames = {key: pd.DataFrame(m.summary) for key, m in self.models_.items()}
        if self._population is not None:
            frames["population"] = self.population_
        if not frames:
            return pd.DataFrame(columns=["coef", "se", "lower", "upper"])
        out = pd.concat(frames, names=["segment", "parameter"])
        return out

    @property
    def population_(self) -> pd.DataFrame:
        """With ``pooling="partial"``: posterior summary of the population parameters
        (``mu_log_<p>``, the mean of ``log p`` across segments, and ``sigma_log_<p>``, its
        spread)."""
        if self._population is None:
            raise AttributeError(
                'population_: only a fit with pooling="partial" has population parameters'
            )
        return _pooling.population_summary(self._population, 0.95)

    @property
    def posterior_(self) -> Any:
        """With ``method="nuts"``: every segment's draws in ArviZ's layout, each parameter
        with dimensions ``(chain, draw, segment)`` (the segments as coordinates), and with
        partial pooling the population parameters ``(chain, draw)``; ``sample_stats`` is the
        joint run's (partial pooling) or per segment. With ``pooling="complete"`` the one
        model's ``posterior_``."""
        if self.method != "nuts" or not self.models_:
            raise AttributeError('posterior_: fit_segments(..., method="nuts") has draws')
        if self.pooling == "complete":
            return next(iter(self.models_.values())).posterior_
        cached = self.__dict__.get("_posterior")
        if cached is None:
            by_chain, keys = _pooling.stacked(
                {key: m._draws for key, m in self.models_.items()},
                self._population,
                self._joint_stats,
            )
            cached = self.__dict__["_posterior"] = _pooling.container(by_chain, keys)
        return cached

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

    def _prior_names(self) -> list[str]:
        """The names the priors of a Bayesian collection are keyed by: the population's with
        partial pooling, else the model's."""
        names = list(self.template._param_names)
        return _pooling.population_names(names) if self.pooling == "partial" else names

    def to_dict(self) -> dict[str, Any]:
        """The collection as one JSON-ready document: every segment's model (with its draws
        after ``method="nuts"``), and the method, pooling, priors and, with partial pooling,
        the population's draws and the joint run's record."""
        from . import __version__
        from ._base import _finite_or_none

        # Complete pooling by NUTS: one model (with its draws) shared by every segment, written
        # once (a maximum-likelihood one stays in every entry, readable by older clvrs).
        complete = self.pooling == "complete" and self.method == "nuts" and bool(self.models_)
        pooled = next(iter(self.models_.values())).to_dict() if complete else None
        members = {} if complete else {key: m.to_dict() for key, m in self.models_.items()}
        extra: dict[str, Any] = {"method": self.method, "pooling": self.pooling}
        if self.priors_:
            extra["priors"] = json.loads(terms_json(self.priors_, self._prior_names()))
        if pooled is not None:
            extra["pooled_model"] = pooled
        if self._population is not None:
            names = list(self._population)
            first = self._population[names[0]]
            extra["population"] = {
                "names": names,
                "chains": int(first.shape[0]),
                "draws": int(first.shape[1]),
                "values": np.stack([self._population[n] for n in names], axis=-1)
                .reshape(-1, len(names))
                .tolist(),
            }
        if self.fit_info_:
            extra["fit"] = {key: _finite_or_none(v) for key, v in self.fit_info_.items()}
        return {
            "format": FORMAT,
            # The newest layout any segment's model needs (1, readable by older clvrs, unless a
            # model keeps a time unit or draws).
            "format_version": max(
                [1] + [doc["format_version"] for doc in [*members.values(), pooled] if doc]
            ),
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
            **extra,
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
        pooling = doc.get("pooling", "none")
        pooled = doc.get("pooled_model")
        shared = None if pooled is None else load_document(pooled)
        for entry in doc["segments"]:
            key = entry["segment"]
            sizes[key] = entry["customers"]
            if shared is not None:
                models[key] = shared  # type: ignore[assignment]
            elif entry.get("model") is not None:
                models[key] = load_document(entry["model"])  # type: ignore[assignment]
            if entry.get("failure") is not None:
                failures[key] = entry["failure"]
        out = cls(
            template,
            models,
            failures,
            pd.Series(sizes, name="customers"),
            doc.get("by"),
            pooling=pooling,
        )
        out.method = doc.get("method", "mle")
        if doc.get("priors"):
            out.priors_ = from_terms(doc["priors"], out._prior_names())
        if doc.get("fit"):
            out.fit_info_ = dict(doc["fit"])
        population = doc.get("population")
        if population is not None:
            chains, draws = int(population["chains"]), int(population["draws"])
            values = np.asarray(population["values"], dtype=float)
            out._population = {
                name: values[:, j].reshape(chains, draws)
                for j, name in enumerate(population["names"])
            }
        if pooling == "partial" and models:
            # Every segment's model holds the joint run's sampler statistics.
            out._joint_stats = next(iter(models.values()))._draws["sample_stats"]
            for m in models.values():
                m.fit_info_["pooling"] = "partial"
        return out


_REGISTRY["SegmentedModel"] = SegmentedModel  # type: ignore[assignment]
