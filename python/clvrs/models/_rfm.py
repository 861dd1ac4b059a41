"""The shared machinery of the models on (frequency, recency, T) customer summaries."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import _bayes, _core
from .._base import (
    BaseModel,
    _bad_parameter,
    _check_n_jobs,
    _check_seed,
    _settings_record,
)
from .._bayes import check_method, sampler_settings
from .._input import (
    Columns,
    _native,
    align_argument,
    as_float_array,
    data_error,
    naming_arguments,
    ndim,
    wrap_output,
)
from .._units import fit_unit
from ..exceptions import InvalidDataError, InvalidParameterError
from ..priors import terms_json
from ._covariates import CovariateSpec, CovariateSummary, _names, check_covariate_penalizer

__all__ = ["ConditionalPredictions", "LifetimePredictions", "RfmModel"]


def _float_list(values: Any, name: str) -> list[float]:
    """A list of numbers (horizons, weights) as floats; other types are refused."""
    rule = f"must be a list of numbers, got {type(values).__name__}"
    if values is None or isinstance(values, (str, bytes, dict)):
        raise _bad_parameter(name, rule)
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise _bad_parameter(name, rule) from None
    if array.ndim != 1:
        raise _bad_parameter(name, f"must be a list of numbers, got shape {array.shape}")
    return [float(v) for v in array]


def _values(
    values: Any, name: str, data: Any = None, arrays: dict[str, Any] | None = None
) -> tuple[np.ndarray, bool]:
    """A horizon, count or rate as a 1-d float64 array, and whether the caller gave a scalar;
    a pandas Series is lined up with the customers (``data`` or the keyword ``arrays``)."""
    scalar = ndim(values) == 0
    return as_float_array(align_argument(values, name, data, arrays), name), scalar


def _check_rates(rates: np.ndarray) -> None:
    """Refuse a discount rate that is not a finite number > 0, naming the first one."""
    bad = np.flatnonzero(~(np.isfinite(rates) & (rates > 0)))
    if bad.size:
        row = int(bad[0])
        raise data_error("discount_rate", row, float(rates[row]), "must be a finite number > 0")


def _representable(out: np.ndarray, quantity: str, model: Any) -> np.ndarray:
    """Refuse a prediction that is not a finite number (its value, or a quantity on the way to
    it, over- or underflows double precision at the model's parameters), naming the first
    position and the parameters; finite inputs never give NaN or infinity silently."""
    # (The common case, all finite, costs one sum without a temporary array: a finite sum
    # means every value is finite; positions are looked for only when it is not, which
    # values near the largest double can also cause.)
    if math.isfinite(np.add.reduce(out)) or np.isfinite(out).all():
        return out
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        i = int(bad[0])
        params = ", ".join(f"{k} {float(v):.6g}" for k, v in model.params_.items())
        raise _bad_parameter(
            "params_",
            f"{quantity} at position {i} is {out[i]} at these parameters ({params}): the answer "
            "(or a quantity on the way to it) is outside double precision, so none is "
            "returned; such parameters are far outside any fitted range (refit, or check the "
            "model file they came from)",
        )
    return out


class RfmModel(CovariateSummary, BaseModel):
    """Base of the repeat-purchase models fitted on customer summaries (not used directly).

    Subclasses name their core model in ``_model`` and document the model; fitting and the
    predictions all of these models make live here.
    """

    #: The core's name for the model.
    _model: ClassVar[str] = ""
    _default_columns: ClassVar[dict[str, str | None]] = {
        "frequency": "frequency",
        "recency": "recency",
        "T": "T",
        "weights": None,
    }
    _roles: ClassVar[tuple[str, ...]] = ("frequency", "recency", "T")
    #: Whether the model takes covariates (BG/NBD, MBG/NBD, Pareto/NBD, GGompertz/NBD, BG/BB).
    _takes_covariates: ClassVar[bool] = False

    def _design(self, data: Any) -> tuple[Any, ...] | None:
        """The covariate matrices of ``data`` for a model fitted with covariates, else None."""
        spec = self._spec()
        return None if spec is None else spec.design(data)

    def _without_covariates(self, what: str) -> None:
        if self._spec() is not None:
            raise _bad_parameter(
                what,
                "is not available for a model fitted with covariates (it describes a customer "
                "without covariate values); use the per-customer predictions, which read each "
                "customer's covariates from the data",
            )

    def _fit_keywords(self) -> dict[str, Any]:
        """The fit keywords that reproduce this model's covariates (for refits: bootstrap)."""
        spec = self._spec()
        if spec is None:
            return {}
        return {
            "purchase_covariates": [c for c in spec.purchase if c not in spec.tied],
            "dropout_covariates": [c for c in spec.dropout if c not in spec.tied],
            "tied_covariates": list(spec.tied),
            "covariate_penalizer": float(self.fit_info_.get("covariate_penalizer", 0.0)),
        }

    def _names(self, cols: Columns) -> tuple[str, str, str, str]:
        n = cols.names
        return (n["frequency"], n["recency"], n["T"], n.get("weights", "weights"))

    def _per_customer(
        self,
        quantity: str,
        name: str,
        data: Any,
        arrays: dict[str, Any],
        t: np.ndarray | None = None,
        n: np.ndarray | None = None,
        t_name: str = "t",
    ) -> Any:
        """Run a per-customer core prediction on the input and shape the result like it.

        ``t`` (the discount rate for ``expected_residual_transactions``) and ``n`` hold one value
        or one per customer; an error about a single value blames no customer. ``t_name`` is
        the caller's keyword for ``t`` (BG/BB's ``m``), which errors about it use.
        """
        # (An integer frequency column goes to the core as it is: no float64 copy.)
        cols = self._columns(data, arrays, integers=("frequency",))
        a = cols.arrays
        rate = quantity == "expected_residual_transactions"
        try:
            if rate and t is not None:
                _check_rates(t)
            if self._is_bayesian():
                out = _bayes.posterior_prediction(
                    lambda **options: _core.rfm_posterior_predict(
                        self._model,
                        quantity,
                        _bayes.draws_matrix(self),
                        # The posterior path reads float64 only: one copy of an integer
                        # column, small beside the pass over every draw.
                        np.asarray(a["frequency"], dtype=np.float64),
                        a["recency"],
                        a["T"],
                        self._names(cols),
                        t=t,
                        n=n,
                        n_jobs=self.n_jobs,
                        covariates=self._design(data),
                        **options,
                    )
                )
            else:
                out = _core.rfm_predict(
                    self._model,
                    quantity,
                    self._params_list(),
                    a["frequency"],
                    a["recency"],
                    a["T"],
                    self._names(cols),
                    t=t,
                    n=n,
                    n_jobs=self.n_jobs,
                    covariates=self._design(data),
                )
        except InvalidDataError:
            # The caller's names for what the error is about: its keyword for the horizon,
            # the customer's index label, the covariate column. (Entered only on an error:
            # three context managers cost about 4 us, a twentieth of a small prediction.)
            with (
                naming_arguments({"t": t_name}),
                cols.locating_rows({"discount_rate" if rate else "t": t, "n": n}),
                self._naming_covariates(data),
            ):
                raise
        return wrap_output(_representable(out, quantity, self), cols, name)

    def weighted_expected_purchases(
        self,
        data: Any = None,
        horizons: Any = (),
        weights: Any = (),
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
    ) -> Any:
        r"""Weighted sums of expected purchases over several horizons, per customer.

        :math:`\sum_j w_j E[X(T, T + t_j)]`: the building block of discounted values (a
        discounted purchase stream is such a sum). Computed in one pass; for BG/NBD and MBG/NBD
        one interpolant per frequency serves the whole sum.

        Parameters
        ----------
        data : DataFrame, optional
            Customer summaries (see :meth:`fit`).
        horizons, weights : sequence of float
            The horizons :math:`t_j` (in the data's time unit) and their weights :math:`w_j`.

        Returns
        -------
        pandas.Series, polars.Series or numpy.ndarray
            One value per customer, shaped like the input.
        """
        cols = self._columns(data, {"frequency": frequency, "recency": recency, "T": T})
        a = cols.arrays
        with cols.locating_rows(lists=("horizons", "weights")), self._naming_covariates(data):
            if self._is_bayesian():
                out = _bayes.posterior_prediction(
                    lambda **options: _core.rfm_posterior_predict(
                        self._model,
                        "weighted_expected_purchases",
                        _bayes.draws_matrix(self),
                        a["frequency"],
                        a["recency"],
                        a["T"],
                        self._names(cols),
                        horizons=_float_list(horizons, "horizons"),
                        weights=_float_list(weights, "weights"),
                        n_jobs=self.n_jobs,
                        covariates=self._design(data),
                        **options,
                    )
                )
                return wrap_output(out, cols, "expected_purchases")
            out = _core.rfm_weighted_expected_purchases(
                self._model,
                self._params_list(),
                a["frequency"],
                a["recency"],
                a["T"],
                self._names(cols),
                _float_list(horizons, "horizons"),
                _float_list(weights, "weights"),
                n_jobs=self.n_jobs,
                covariates=self._design(data),
            )
        return wrap_output(out, cols, "expected_purchases")

    def simulate(self, T: Any, seed: int = 0) -> pd.DataFrame:
        """Customer summaries drawn from the model: one customer per age in ``T``.

        Customer ``i`` uses random stream ``i`` of ``seed`` (reproducible, independent of the
        thread count). Purchases follow the model's process exactly (no discretisation).

        Returns
        -------
        pandas.DataFrame
            Columns ``frequency``, ``recency``, ``T``.
        """
        self._without_covariates("simulate")
        seed = _check_seed(seed)
        ages = as_float_array(T, "T")
        try:
            x, t_x = _core.rfm_simulate(self._model, self._params_list(), ages, seed)
        except InvalidParameterError as err:
            if getattr(err, "parameter", None) != "quantity":
                raise
            raise _bad_parameter(
                "model", f"{type(self).__name__} has no simulator (simulate is not available)"
            ) from None
        return pd.DataFrame({"frequency": x, "recency": t_x, "T": ages})

    def fit(
        self,
        data: Any = None,
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
        weights: Any = None,
        purchase_covariates: Any = None,
        dropout_covariates: Any = None,
        tied_covariates: Any = None,
        covariate_penalizer: float = 0.0,
        time_unit: str | None = None,
        method: str = "mle",
        chains: int = 4,
        draws: int = 1000,
        tune: int = 1000,
        seed: int | None = None,
        priors: dict[Any, Any] | None = None,
        target_accept: float = 0.8,
        max_depth: int = 10,
    ) -> Any:
        """Estimate the parameters from customer summaries.

        Parameters
        ----------
        data : pandas.DataFrame or polars.DataFrame, optional
            One row per customer (or per distinct history, with ``weights``) with columns
            ``frequency`` (repeat purchases), ``recency`` (time of the last repeat purchase since
            the first) and ``T`` (time since the first purchase), in one time unit.
        frequency, recency, T : array-like, optional
            The same columns as arrays, when ``data`` is not given.
        weights : array-like, optional
            How many customers share each row: whole numbers >= 0 (frequency weights; sampling
            weights are refused). By default a column named ``weights`` in ``data`` is used
            (map another with ``columns={"weights": "count"}``, or turn it off with
            ``columns={"weights": None}``); given as an argument it wins over that column, with
            a warning naming both, and a pandas Series is matched to ``data``'s rows by label
            (the same labels in any order) or, for arrays, by position. ``n_observations_`` is
            the total weight.
        purchase_covariates, dropout_covariates : str or list of str, optional
            Columns of ``data`` (time-invariant customer characteristics) that shift the
            purchase and the dropout process (BG/NBD, MBG/NBD and Pareto/NBD): see
            "Covariates" in the model's documentation. Numeric and boolean columns enter as
            they are; other columns are one-hot encoded against a reference level (the first
            category of a pandas categorical, else the smallest value), named in
            ``summary["reference"]``.
        tied_covariates : str or list of str, optional
            Covariates with one coefficient shared by both processes (an equality constraint;
            they are added to both lists).
        covariate_penalizer : float, default 0.0
            L2 penalty ``covariate_penalizer * sum(coefficients**2)`` on the covariate
            coefficients, on the scale of ``penalizer`` (mean log-likelihood per customer).
        time_unit : str, optional
            The time unit of the data (``"W"``, ``"D"``, ``"7D"``, ...), for input that does
            not record it (numpy arrays, polars, a pandas frame made by hand). A summary from
            :func:`summarize_transactions` records its unit in ``attrs["time_unit"]``, which is
            used when ``time_unit`` is not given (a contradicting ``time_unit`` is refused). The
            model keeps the unit as ``time_unit_`` and refuses to predict on data recorded in
            another unit; without any unit the model is unit-free (None) and checks nothing.
        method : {"mle", "nuts", "map"}, default "mle"
            ``"mle"``: maximum likelihood. ``"nuts"``: posterior draws by the No-U-Turn
            Sampler (the nuts-rs crate, nutpie's engine) over the same likelihood pass, on
            log-parameters with their Jacobian; ``params_`` is then the posterior mean,
            ``covariance_`` and ``standard_errors_`` the posterior covariance and standard
            deviations, ``posterior_`` the draws in ArviZ's layout, ``priors_`` the priors
            used, and ``summary`` reports R-hat, bulk and tail ESS and the sampler's health.
            Every per-customer prediction is then the posterior mean of the prediction
            (streamed over the draws in the core; see "Bayesian fits" in the user guide), and
            :func:`clvrs.prediction_interval` gives its credible interval. ``"map"``: the
            posterior mode under the same priors, by the maximum-likelihood optimiser, with
            standard errors from the Hessian of the log posterior (``fit_info_["method"]`` is
            ``"map"``, ``fit_info_["log_posterior"]`` its value, ``log_likelihood_`` the
            likelihood alone at the mode; predictions at the mode). ``penalizer`` is for
            ``"mle"`` only (a penalty is a prior: give one in ``priors``).
        chains, draws, tune : int, default 4, 1000, 1000
            ``"nuts"``: chains (run in parallel on ``n_jobs`` threads), draws kept per chain,
            and tuning draws per chain (step size and diagonal mass matrix; discarded).
        seed : int, optional
            ``"nuts"``: seed of the sampler; the same seed gives the same draws bit for bit
            on any number of threads. None draws one (recorded in ``fit_info_["seed"]``).
        priors : dict, optional
            ``"nuts"``, ``"map"``: priors by parameter name (or pair of names) from
            :mod:`clvrs.priors`, e.g. ``{"r": clvrs.priors.Gamma(2, 1)}``; the others get the
            defaults documented in :mod:`clvrs.priors`.
        target_accept : float, default 0.8
            ``"nuts"``: target acceptance statistic of the step-size adaptation (raise it, e.g.
            to 0.95, when the fit reports divergences).
        max_depth : int, default 10
            ``"nuts"``: maximum tree depth (at most ``2**max_depth - 1`` steps per draw).

        Returns
        -------
        self
            The fitted estimator.

        Raises
        ------
        InvalidDataError
            Naming the column, first offending row and rule, for NaN, negative or non-integer
            frequencies, recency > T, recency > 0 with frequency 0, mismatched lengths, empty
            input, or weights that are not whole numbers >= 0.
        TimeUnitError
            If ``time_unit`` contradicts the unit recorded on the data.
        ConvergenceError
            If the fit does not converge and ``on_failure="raise"``.
        """
        self._check_hyperparameters()
        keywords = {"frequency": frequency, "recency": recency, "T": T, "weights": weights}
        unit = fit_unit(data, keywords, time_unit)
        # An integer frequency column is read by the core's fit in place (no float64 copy).
        cols = self._columns(
            data, keywords, optional=("weights",), fitting=True, integers=("frequency",)
        )
        a = cols.arrays
        # Column names as lists (a numpy array of names too); anything else is refused.
        purchase_covariates = _names(purchase_covariates, "purchase_covariates")
        dropout_covariates = _names(dropout_covariates, "dropout_covariates")
        tied_covariates = _names(tied_covariates, "tied_covariates")
        covariates_given = bool(purchase_covariates or dropout_covariates or tied_covariates)
        if covariates_given and not self._takes_covariates:
            raise _bad_parameter(
                "purchase_covariates" if purchase_covariates else "dropout_covariates",
                f"{type(self).__name__} does not take covariates (BetaGeoModel, "
                "ModifiedBetaGeoModel, ParetoNBDModel, GammaGompertzNBDModel and "
                "BetaGeoBetaBinomModel do)",
            )
        method = check_method(method)
        if method in ("nuts", "map"):
            settings = sampler_settings(chains, draws, tune, seed, target_accept, max_depth)
            self._check_bayes_hyperparameters()
            if covariate_penalizer:
                raise _bad_parameter(
                    "covariate_penalizer",
                    f'is for method="mle" (got {covariate_penalizer!r}); with method="{method}" '
                    "give the coefficients a prior (priors={...: clvrs.priors.Normal(0, s)})",
                )
            spec = (
                CovariateSpec.learn(
                    data,
                    purchase_covariates,
                    dropout_covariates,
                    tied_covariates,
                    reserved=list(cols.names.values()),
                )
                if covariates_given
                else None
            )
            design = None if spec is None else spec.design(data)
            names = list(self._param_names) + ([] if design is None else list(design[6]))
            if method == "map":
                with cols.locating_rows():
                    result = _core.rfm_map(
                        self._model,
                        as_float_array(a["frequency"], cols.names["frequency"]),
                        a["recency"],
                        a["T"],
                        a.get("weights"),
                        self._names(cols),
                        terms_json(priors, names),
                        max_iter=int(self.max_iter),
                        tol=float(self.tol),
                        n_jobs=self.n_jobs,
                        covariates=design,
                    )
                self._set_map(result)
                self.time_unit_ = unit
                self.covariates_ = spec
                if spec is not None:
                    self.fit_info_["covariate_penalizer"] = 0.0
                return self
            with cols.locating_rows():
                result = _core.rfm_sample(
                    self._model,
                    as_float_array(a["frequency"], cols.names["frequency"]),
                    a["recency"],
                    a["T"],
                    a.get("weights"),
                    self._names(cols),
                    terms_json(priors, names),
                    settings,
                    n_jobs=self.n_jobs,
                    covariates=design,
                )
            self._set_posterior(result, _settings_record(settings))
            self.time_unit_ = unit
            self.covariates_ = spec
            if spec is not None:
                self.fit_info_["covariate_penalizer"] = 0.0
            return self
        if priors is not None:
            raise _bad_parameter("priors", 'are used by method="nuts" and method="map" only')
        if purchase_covariates or dropout_covariates or tied_covariates:
            if not self._takes_covariates:
                raise _bad_parameter(
                    "purchase_covariates" if purchase_covariates else "dropout_covariates",
                    f"{type(self).__name__} does not take covariates (BetaGeoModel, "
                    "ModifiedBetaGeoModel, ParetoNBDModel, GammaGompertzNBDModel and "
                    "BetaGeoBetaBinomModel do)",
                )
            penalty = covariate_penalizer
            check_covariate_penalizer(penalty)
            spec = CovariateSpec.learn(
                data,
                purchase_covariates,
                dropout_covariates,
                tied_covariates,
                reserved=list(cols.names.values()),
            )
            with cols.locating_rows():
                result = _core.rfm_fit_covariates(
                    self._model,
                    as_float_array(a["frequency"], cols.names["frequency"]),
                    a["recency"],
                    a["T"],
                    a.get("weights"),
                    self._names(cols),
                    spec.design(data),
                    penalizer=float(self.penalizer),
                    covariate_penalizer=float(penalty),
                    max_iter=int(self.max_iter),
                    tol=float(self.tol),
                    n_jobs=self.n_jobs,
                )
            self._set_fit(result)
            self.time_unit_ = unit
            self.covariates_ = spec
            self.fit_info_["covariate_penalizer"] = float(penalty)
            return self
        with cols.locating_rows():
            result = _core.rfm_fit(
                self._model,
                a["frequency"],
                a["recency"],
                a["T"],
                a.get("weights"),
                self._names(cols),
                penalizer=float(self.penalizer),
                max_iter=int(self.max_iter),
                tol=float(self.tol),
                n_jobs=self.n_jobs,
                start=self._fit_start(),
            )
        self._set_fit(result)
        self.time_unit_ = unit
        self.covariates_ = None
        return self

    def _fit_start(self) -> list[float] | None:
        """Where the maximum-likelihood fit without covariates starts (None: the model's own
        starting points)."""
        return None

    def expected_purchases(
        self,
        data: Any = None,
        t: Any = 1.0,
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
    ) -> Any:
        """Expected number of purchases in :math:`(T, T + t]` given each customer's history.

        Parameters
        ----------
        data : DataFrame, optional
            Customer summaries (see :meth:`fit`).
        t : float or array-like, default 1.0
            Horizon, in the data's time unit; one value or one per customer.
        frequency, recency, T : array-like, optional
            Columns as arrays when ``data`` is not given.

        Returns
        -------
        pandas.Series, polars.Series or numpy.ndarray
            One value per customer, shaped like the input.
        """
        arrays = {"frequency": frequency, "recency": recency, "T": T}
        horizon, _ = _values(t, "t", data, arrays)
        return self._per_customer(
            "expected_purchases", "expected_purchases", data, arrays, t=horizon
        )

    def probability_alive(
        self,
        data: Any = None,
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
    ) -> Any:
        """Probability that each customer is still active at the end of observation, ``T``.

        Returns
        -------
        pandas.Series, polars.Series or numpy.ndarray
            Values in [0, 1], shaped like the input.
        """
        arrays = {"frequency": frequency, "recency": recency, "T": T}
        return self._per_customer("probability_alive", "probability_alive", data, arrays)

    def log_likelihood_per_customer(
        self,
        data: Any = None,
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
    ) -> Any:
        """Each customer's log-likelihood at the current parameters (unweighted); after
        ``fit(..., method="nuts")``, its mean over the posterior draws (streamed in the
        core), not the log-likelihood at the posterior-mean parameters."""
        arrays = {"frequency": frequency, "recency": recency, "T": T}
        return self._per_customer("log_likelihood", "log_likelihood", data, arrays)

    def _new_customers(
        self, quantity: str, data: Any, horizon: np.ndarray, counts: np.ndarray | None
    ) -> Any:
        """New-customer predictions, one per row of ``data`` (covariate models) or element."""
        _check_n_jobs(self.n_jobs)  # handed to the core (or CLVRS_NUM_THREADS, when None)
        spec = self._spec()
        if spec is None:
            if data is not None:
                raise _bad_parameter(
                    "data",
                    "is only used by models fitted with covariates (it holds each new "
                    "customer's covariates)",
                )
            return _representable(
                self._mean_over_posterior(
                    lambda params: _core.rfm_new_customer(
                        self._model,
                        quantity,
                        params,
                        _native(horizon),
                        n=None if counts is None else _native(counts),
                        n_jobs=self.n_jobs,
                    )
                ),
                quantity,
                self,
            )
        if data is None:
            raise _bad_parameter(
                "data",
                "is required for a model fitted with covariates: a DataFrame with the new "
                "customers' covariates (one prediction per row)",
            )
        rows = len(data)
        if horizon.size not in (1, rows) or (counts is not None and counts.size not in (1, rows)):
            raise _bad_parameter(
                "t", f"must be one value or one per row of data ({rows}), got {horizon.size}"
            )
        with self._naming_covariates(data):
            design = spec.design(data)
            out = self._mean_over_posterior(
                lambda params: _core.rfm_new_customer(
                    self._model,
                    quantity,
                    params,
                    _native(np.broadcast_to(horizon, rows), np.float64),
                    n=None
                    if counts is None
                    else _native(np.broadcast_to(counts, rows), np.float64),
                    n_jobs=self.n_jobs,
                    covariates=design,
                )
            )
        _representable(out, quantity, self)
        if isinstance(data, pd.DataFrame):
            return pd.Series(out, index=data.index, name=quantity)
        from .._input import _is_polars_frame

        if _is_polars_frame(data):
            import polars as pl

            return pl.Series(quantity, out)
        return out

    def expected_purchases_new_customer(self, t: Any, data: Any = None) -> Any:
        """E[X(t)]: expected purchases of a newly acquired customer in :math:`(0, t]`.

        Parameters
        ----------
        t : float or array-like
            Horizon(s). With covariates: one value, or one per row of ``data``.
        data : DataFrame, optional
            For a model fitted with covariates (required there): the new customers'
            covariate columns, one prediction per row.

        Returns
        -------
        float, numpy.ndarray or Series
            A float for a scalar ``t``, else an array of the same length; with covariates, a
            Series (pandas or polars, like ``data``) with one value per row of ``data``.
        """
        horizon, scalar = _values(t, "t", data)
        out = self._new_customers("expected_purchases", data, horizon, None)
        return float(out[0]) if scalar and data is None else out

    def purchase_count_probability(self, n: Any, t: Any, data: Any = None) -> Any:
        """P(X(t) = n): probability that a new customer makes exactly ``n`` purchases in (0, t].

        Parameters
        ----------
        n : int or array-like of int
            Purchase counts.
        t : float or array-like
            Horizon(s); broadcast against ``n``.
        data : DataFrame, optional
            For a model fitted with covariates (required there): the new customers'
            covariate columns; ``n`` and ``t`` are then one value or one per row.

        Returns
        -------
        float, numpy.ndarray or Series
            A float when both are scalars, else an array of the broadcast shape (1-d); with
            covariates, one value per row of ``data``.
        """
        scalar = ndim(n) == 0 and ndim(t) == 0
        counts, horizon = np.broadcast_arrays(_values(n, "n", data)[0], _values(t, "t", data)[0])
        out = self._new_customers("purchase_count_probability", data, horizon, counts)
        return float(out[0]) if scalar and data is None else out

    def _continuous_dert(self, data: Any, delta: float, rfm: dict[str, Any]) -> Any:
        """Expected purchases from T on, discounted continuously at ``delta`` per time unit,
        when the model has them in closed form (its DERT); None otherwise, and customer value
        integrates weighted expectations instead."""
        return None


class ConditionalPredictions(RfmModel):
    """Predictions beyond the end of observation of the models whose core has them: P(alive)
    ahead and conditional purchase counts (Pareto/NBD, GGompertz/NBD, NBD, (M)BG/CNBD-k)."""

    def probability_alive(  # type: ignore[override]
        self,
        data: Any = None,
        t: Any = 0.0,
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
    ) -> Any:
        """Probability that each customer is still active at :math:`T + t`.

        Parameters
        ----------
        data : DataFrame, optional
            Customer summaries (see :meth:`fit`).
        t : float or array-like, default 0.0
            Time after the end of observation; one value or one per customer. 0 gives P(alive)
            at ``T``.
        frequency, recency, T : array-like, optional
            Columns as arrays when ``data`` is not given.

        Returns
        -------
        pandas.Series, polars.Series or numpy.ndarray
            Values in [0, 1], shaped like the input.
        """
        arrays = {"frequency": frequency, "recency": recency, "T": T}
        horizon, scalar = _values(t, "t", data, arrays)
        if scalar and float(horizon[0]) == 0.0:
            return self._per_customer("probability_alive", "probability_alive", data, arrays)
        return self._per_customer("probability_alive", "probability_alive", data, arrays, t=horizon)

    def conditional_purchase_count_probability(
        self,
        data: Any = None,
        n: Any = 0,
        t: Any = 1.0,
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
    ) -> Any:
        """Probability that each customer makes exactly ``n`` purchases in :math:`(T, T + t]`.

        P(alive) times the new-customer formula applied to the posterior of the purchase rate
        and the remaining lifetime, plus P(not alive) for ``n = 0`` (see the model's
        documentation for how it is computed).

        Parameters
        ----------
        data : DataFrame, optional
            Customer summaries (see :meth:`fit`).
        n : int or array-like of int, default 0
            Purchase count; one value or one per customer.
        t : float or array-like, default 1.0
            Horizon; one value or one per customer.
        frequency, recency, T : array-like, optional
            Columns as arrays when ``data`` is not given.

        Returns
        -------
        pandas.Series, polars.Series or numpy.ndarray
            Probabilities, shaped like the input.
        """
        arrays = {"frequency": frequency, "recency": recency, "T": T}
        counts, _ = _values(n, "n", data, arrays)
        horizon, _ = _values(t, "t", data, arrays)
        return self._per_customer(
            "purchase_count_probability",
            "purchase_count_probability",
            data,
            arrays,
            t=horizon,
            n=counts,
        )


class LifetimePredictions(ConditionalPredictions):
    """Predictions of the models with a lifetime independent of the purchase rate
    (Pareto/NBD, GGompertz/NBD): P(alive) ahead, conditional purchase counts and DERT."""

    def _continuous_dert(self, data: Any, delta: float, rfm: dict[str, Any]) -> Any:
        return self.expected_residual_transactions(data, discount_rate=delta, **rfm)

    def expected_residual_transactions(
        self,
        data: Any = None,
        discount_rate: Any = None,
        *,
        frequency: Any = None,
        recency: Any = None,
        T: Any = None,
    ) -> Any:
        r"""Discounted expected residual transactions (DERT) of each customer.

        :math:`E[\int_T^\infty e^{-\delta (u - T)} dX(u) \mid x, t_x, T]` with continuous
        discounting at ``discount_rate`` :math:`\delta` per unit of the data's time (a yearly
        rate ``d`` on weekly data is :math:`\delta = \ln(1 + d) / 52`). Multiplied by a
        margin and an expected spend per transaction it is the residual customer value.

        Parameters
        ----------
        data : DataFrame, optional
            Customer summaries (see :meth:`fit`).
        discount_rate : float or array-like
            Continuous discount rate per time unit, > 0; one value or one per customer.
        frequency, recency, T : array-like, optional
            Columns as arrays when ``data`` is not given.

        Returns
        -------
        pandas.Series, polars.Series or numpy.ndarray
            One value per customer, shaped like the input.
        """
        if discount_rate is None:
            from .._base import _bad_parameter

            raise _bad_parameter("discount_rate", "is required (continuous rate per time unit)")
        arrays = {"frequency": frequency, "recency": recency, "T": T}
        rate, _ = _values(discount_rate, "discount_rate", data, arrays)
        return self._per_customer(
            "expected_residual_transactions",
            "expected_residual_transactions",
            data,
            arrays,
            t=rate,
        )
