"""The shared machinery of the contractual (subscription) models: sBG and BdW."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import _core
from .._base import BaseModel, _bad_parameter, _settings_record
from .._bayes import check_method, sampler_settings
from .._input import _native, align_pair, as_float_array, ndim
from ..exceptions import InvalidDataError
from ..priors import terms_json
from ._covariates import (
    CovariateSpec,
    CovariateSummary,
    OneProcessSpec,
    _names,
    check_covariate_penalizer,
)

__all__ = ["ContractualModel"]


class ContractualModel(CovariateSummary, BaseModel):
    r"""Base of the subscription models fitted on churn data (not used directly).

    ``fit(data, churn_covariates=[...])`` (per-customer records only) lets time-invariant
    covariates act on each customer's churn: :math:`\alpha_i = \alpha \exp(z_i^\top g)`, so
    :math:`\exp(z_i^\top g)` multiplies the odds :math:`\alpha_i/\beta` of the customer's
    mean churn probability (a positive coefficient: more churn; ``beta`` and BdW's ``c`` stay
    shared), the exponential link Fader & Hardie (2007) give one parameter of a heterogeneity
    distribution. Coefficients are named ``churn:column`` (``churn:column[level]`` for
    categorical levels against their reference level) with standard errors, Wald intervals,
    ``z`` and ``p`` in :meth:`summary_frame`; ``covariate_penalizer`` adds an L2 penalty. The
    predictions then take ``data`` (the customers' covariate columns) and give one value per
    row, ``t`` (and ``periods``/``discount_rate``) one value or one per row.
    """

    _covariate_spec: ClassVar[type[CovariateSpec]] = OneProcessSpec

    _model: ClassVar[str] = ""
    _default_columns: ClassVar[dict[str, str | None]] = {
        "periods": "periods",
        "churned": "churned",
        "weights": None,
    }
    _roles: ClassVar[tuple[str, ...]] = ("periods", "churned")

    def __init__(
        self,
        penalizer: float = 0.0,
        *,
        max_iter: int = 1000,
        tol: float = 1e-8,
        on_failure: str = "warn",
        columns: dict[str, str | None] | None = None,
    ) -> None:
        self.penalizer = penalizer
        self.n_jobs = None
        self.max_iter = max_iter
        self.tol = tol
        self.on_failure = on_failure
        self.columns = columns

    def fit(
        self,
        data: Any = None,
        *,
        survivors: Any = None,
        periods: Any = None,
        churned: Any = None,
        weights: Any = None,
        method: str = "mle",
        chains: int = 4,
        draws: int = 1000,
        tune: int = 1000,
        seed: int | None = None,
        priors: dict[Any, Any] | None = None,
        target_accept: float = 0.8,
        max_depth: int = 10,
        churn_covariates: Any = None,
        covariate_penalizer: float = 0.0,
    ) -> Any:
        r"""Estimate the parameters from a cohort's survivor counts or per-customer records.

        Parameters
        ----------
        data : DataFrame, optional
            One row per customer (or per distinct record, with ``weights``): ``periods`` (the
            period a churned customer left in, or the periods completed by an active one) and
            ``churned`` (bool).
        survivors : array-like, optional
            Instead of customer records: the number of a cohort's customers still active at the
            end of periods 0, 1, 2, ... (the first is the cohort size), e.g.
            ``[1000, 631, 468, 382, 326, 289, 262, 241]``.
        periods, churned : array-like, optional
            Customer records as arrays, when ``data`` is not given.
        weights : array-like, optional
            How many customers share each row: whole numbers >= 0 (frequency weights; sampling
            weights are refused). By default a column named ``weights`` in ``data`` is used
            (map another with ``columns={"weights": "count"}``, or turn it off with
            ``columns={"weights": None}``); given as an argument it wins over that column, with
            a warning naming both, and a pandas Series is matched to ``data``'s rows by label
            (the same labels in any order) or, for arrays, by position. ``n_observations_`` is
            the total weight.
        method, chains, draws, tune, seed, priors, target_accept, max_depth
            ``method="nuts"`` draws from the posterior instead of maximising the likelihood,
            ``method="map"`` finds the posterior mode; see :meth:`BetaGeoModel.fit` for these
            options and :mod:`clvrs.priors` for the default priors.
        churn_covariates : str or list of str, optional
            Columns of ``data`` (one value per customer) acting on churn through
            :math:`\alpha_i = \alpha \exp(z_i^\top g)`; numeric and boolean columns enter as
            they are, others are one-hot encoded against their first level. Needs per-customer
            records in a DataFrame (survivor counts carry no covariates). With
            ``method="nuts"`` or ``"map"`` the coefficients get priors (``priors`` keyed by
            ``"churn:column"``) and predictions average over the draws.
        covariate_penalizer : float, default 0.0
            L2 penalty ``covariate_penalizer * sum(coefficients**2)`` on the coefficients.

        Returns
        -------
        self
            The fitted estimator.
        """
        self._check_hyperparameters()
        method = check_method(method)
        churn_covariates = _names(churn_covariates, "churn_covariates")
        check_covariate_penalizer(covariate_penalizer)
        if churn_covariates:
            if method != "mle" and covariate_penalizer:
                raise _bad_parameter(
                    "covariate_penalizer",
                    f'is for method="mle" (got {covariate_penalizer!r}); with method="{method}" '
                    "give the coefficients a prior (priors={...: clvrs.priors.Normal(0, s)})",
                )
            if method == "mle" and priors is not None:
                raise _bad_parameter("priors", 'are used by method="nuts" and method="map" only')
            if survivors is not None:
                raise _bad_parameter(
                    "churn_covariates",
                    "need per-customer records (data with periods, churned and the covariate "
                    "columns): survivor counts carry no covariates",
                )
            sampling = (
                sampler_settings(chains, draws, tune, seed, target_accept, max_depth)
                if method == "nuts"
                else None
            )
            return self._fit_covariates(
                data,
                periods,
                churned,
                weights,
                churn_covariates,
                covariate_penalizer,
                method,
                priors,
                sampling,
            )
        if covariate_penalizer:
            raise _bad_parameter(
                "covariate_penalizer",
                f"is only used with churn_covariates (got {covariate_penalizer!r})",
            )
        bayesian = method == "nuts"
        if method in ("nuts", "map"):
            settings = sampler_settings(chains, draws, tune, seed, target_accept, max_depth)
            self._check_bayes_hyperparameters()
            prior_terms = terms_json(priors, list(self._param_names))
        elif priors is not None:
            raise _bad_parameter("priors", 'are used by method="nuts" and method="map" only')

        def run(**arrays: Any) -> dict[str, Any]:
            if bayesian:
                result: dict[str, Any] = _core.churn_sample(
                    self._model, prior_terms, settings, **arrays
                )
            elif method == "map":
                result = _core.churn_map(
                    self._model,
                    prior_terms,
                    max_iter=int(self.max_iter),
                    tol=float(self.tol),
                    **arrays,
                )
            else:
                result = _core.churn_fit(
                    self._model,
                    penalizer=float(self.penalizer),
                    max_iter=int(self.max_iter),
                    tol=float(self.tol),
                    **arrays,
                )
            return result

        if survivors is not None:
            if data is not None or periods is not None or churned is not None:
                raise _bad_parameter(
                    "survivors", "give either survivor counts or customer records, not both"
                )
            result = run(survivors=as_float_array(survivors, "survivors"))
        else:
            cols = self._columns(
                data,
                {"periods": periods, "churned": churned, "weights": weights},
                optional=("weights",),
            )
            a = cols.arrays
            with cols.locating_rows(), cols.naming_columns():
                result = run(periods=a["periods"], churned=a["churned"], weights=a.get("weights"))
        if bayesian:
            self._set_posterior(result, _settings_record(settings))
        elif method == "map":
            self._set_map(result)
        else:
            self._set_fit(result)
        self.covariates_ = None
        return self

    def _fit_covariates(
        self,
        data: Any,
        periods: Any,
        churned: Any,
        weights: Any,
        columns: list[str],
        penalty: Any,
        method: str = "mle",
        priors: dict[Any, Any] | None = None,
        settings: Any = None,
    ) -> Any:
        check_covariate_penalizer(penalty)
        cols = self._columns(
            data,
            {"periods": periods, "churned": churned, "weights": weights},
            optional=("weights",),
        )
        a = cols.arrays
        spec = OneProcessSpec.learn_one("churn", data, columns, reserved=list(cols.names.values()))
        matrix, encoded, coefficients = spec.one_design(data)
        if method != "mle":
            self._check_bayes_hyperparameters()
            with cols.locating_rows(), cols.naming_columns():
                result = _core.churn_bayes_covariates(
                    self._model,
                    as_float_array(a["periods"], "periods"),
                    as_float_array(a["churned"], "churned"),
                    None if a.get("weights") is None else as_float_array(a["weights"], "weights"),
                    matrix,
                    encoded,
                    coefficients,
                    terms_json(priors, [*self._param_names, *coefficients]),
                    settings,
                    max_iter=int(self.max_iter),
                    tol=float(self.tol),
                )
            if method == "nuts":
                self._set_posterior(result, _settings_record(settings))
            else:
                self._set_map(result)
            self.covariates_ = spec
            self.fit_info_["covariate_penalizer"] = 0.0
            return self
        with cols.locating_rows(), cols.naming_columns():
            result = _core.churn_fit_covariates(
                self._model,
                as_float_array(a["periods"], "periods"),
                as_float_array(a["churned"], "churned"),
                None if a.get("weights") is None else as_float_array(a["weights"], "weights"),
                matrix,
                encoded,
                coefficients,
                penalizer=float(self.penalizer),
                covariate_penalizer=float(penalty),
                max_iter=int(self.max_iter),
                tol=float(self.tol),
            )
        self._set_fit(result)
        self.covariates_ = spec
        self.fit_info_["covariate_penalizer"] = float(penalty)
        return self

    def _fit_keywords(self) -> dict[str, Any]:
        """The fit keywords that reproduce this model's covariates (for refits: bootstrap)."""
        spec = self._spec()
        if not isinstance(spec, OneProcessSpec):
            return {}
        return {
            **spec.fit_keywords(),
            "covariate_penalizer": float(self.fit_info_.get("covariate_penalizer", 0.0)),
        }

    def _predict_customers(
        self, quantity: str, t: Any, k: Any, data: Any, k_name: str, t_name: str
    ) -> np.ndarray:
        """Per-customer predictions of a model fitted with covariates: one per row of
        ``data``, each customer at their own ``alpha``."""
        spec = self._spec()
        assert isinstance(spec, OneProcessSpec)
        if data is None:
            raise _bad_parameter(
                "data",
                "is required for a model fitted with churn_covariates: a DataFrame with the "
                "customers' covariate columns (one prediction per row)",
            )
        matrix, encoded, _ = spec.one_design(data)
        n = matrix.shape[0]

        def per_row(values: Any, name: str) -> np.ndarray:
            array = as_float_array(values, name)
            if len(array) not in (1, n):
                raise _bad_parameter(
                    name, f"has {len(array)} values for {n} customers: give one, or one per row"
                )
            return np.ascontiguousarray(np.broadcast_to(array, (n,)), dtype=np.float64)

        first = per_row(t, t_name)
        second = None if k is None else per_row(k, k_name)
        with self._naming_covariates(data):
            try:
                # After a Bayesian fit: the mean over the draws.
                out: np.ndarray = self._mean_over_posterior(
                    lambda params: _core.churn_predict_covariates(
                        self._model, quantity, params, matrix, encoded, first, second
                    )
                )
            except InvalidDataError as err:
                if getattr(err, "column", None) not in ("t", "k"):
                    raise
                name = t_name if err.column == "t" else k_name
                renamed = InvalidDataError(
                    str(err).replace(f"column `{err.column}`", f"column `{name}`", 1)
                )
                renamed.column, renamed.row, renamed.rule = name, err.row, err.rule
                raise renamed from None
        return out

    def _predict(
        self,
        quantity: str,
        t: Any,
        k: Any = None,
        k_name: str = "periods",
        t_name: str = "t",
        data: Any = None,
    ) -> Any:
        if self._spec() is not None:
            return self._predict_customers(quantity, t, k, data, k_name, t_name)
        if data is not None:
            raise _bad_parameter(
                "data",
                "is only used by models fitted with churn_covariates (the customers' covariates)",
            )
        scalar = ndim(t) == 0 and ndim(k) == 0
        first = as_float_array(t, t_name)
        try:
            if k is None:
                out = self._mean_over_posterior(
                    lambda params: _core.churn_predict(self._model, quantity, params, first)
                )
            else:
                if isinstance(k, pd.Series) and isinstance(t, pd.Series):
                    k = align_pair(k, t, k_name, t_name)  # by label, when the labels agree
                second = as_float_array(k, k_name)
                if len(second) not in (1, len(first)) and len(first) != 1:
                    raise _bad_parameter(
                        k_name,
                        f"has {len(second)} values for {len(first)} values of {t_name}: give one "
                        f"value, or one per value of {t_name}",
                    )
                first, second = np.broadcast_arrays(first, second)
                out = self._mean_over_posterior(
                    lambda params: _core.churn_predict(
                        self._model,
                        quantity,
                        params,
                        _native(first),
                        _native(second),
                    )
                )
        except InvalidDataError as err:
            # The core calls its first argument `t`; the caller may have called it `tenure`.
            if t_name == "t" or getattr(err, "column", None) != "t":
                raise
            renamed = InvalidDataError(str(err).replace("column `t`", f"column `{t_name}`", 1))
            renamed.column, renamed.row, renamed.rule = t_name, err.row, err.rule
            raise renamed from None
        return float(out[0]) if scalar else out

    def survival(self, t: Any, data: Any = None) -> Any:
        """S(t): the share of a new cohort still active after ``t`` periods (with
        ``churn_covariates``: of each customer in ``data``)."""
        return self._predict("survival", t, data=data)

    def churn_probability(self, t: Any, data: Any = None) -> Any:
        """P(T = t): the share of a new cohort lost in period ``t`` (>= 1)."""
        return self._predict("churn_probability", t, data=data)

    def retention_rate(self, t: Any, data: Any = None) -> Any:
        """The cohort's retention rate in period ``t`` (>= 1), ``S(t) / S(t - 1)``; it rises
        with ``t`` as the customers most likely to churn leave first."""
        return self._predict("retention_rate", t, data=data)

    def probability_active(self, tenure: Any, periods: Any = 1, data: Any = None) -> Any:
        """P(still active ``periods`` periods from now | active after ``tenure`` periods)."""
        return self._predict("probability_active", tenure, periods, t_name="tenure", data=data)

    def expected_renewals(self, tenure: Any, periods: Any, data: Any = None) -> Any:
        """Expected renewals in the next ``periods`` periods of a customer active after
        ``tenure`` periods."""
        return self._predict("expected_renewals", tenure, periods, t_name="tenure", data=data)

    def expected_residual_lifetime(
        self, tenure: Any, discount_rate: Any = 0.0, data: Any = None
    ) -> Any:
        r"""Discounted expected residual lifetime (DERL; Fader & Hardie 2010, eq. 6), in
        payments, of a customer who has made ``tenure`` renewals (is active after ``tenure``
        periods): :math:`\sum_{k \ge 0} (S(n + 1 + k) / S(n)) / (1 + d)^k`. The payment just
        made is excluded; the next counts with its renewal probability, undiscounted.
        Undiscounted (``d = 0``) it is the expected number of future payments (an error if
        that is infinite)."""
        return self._predict(
            "residual_lifetime", tenure, discount_rate, "discount_rate", t_name="tenure", data=data
        )

    def subscription_value(
        self, tenure: Any, margin_per_period: Any, discount_rate: Any = 0.0, data: Any = None
    ) -> Any:
        """Residual value of a subscriber who has made ``tenure`` renewals: DERL times the
        margin per period (Fader & Hardie 2010). A new subscriber, before the first payment, is
        worth the margin times ``1 + DERL(0) / (1 + d)``."""
        # One margin per subscriber is matched to the tenures by the rule of `align_to`.
        margin_per_period = align_pair(margin_per_period, tenure, "margin_per_period", "tenure")
        margin = as_float_array(margin_per_period, "margin_per_period")
        if not np.all(np.isfinite(margin) & (margin >= 0)):
            raise _bad_parameter("margin_per_period", "must be finite and >= 0")
        derl = self.expected_residual_lifetime(tenure, discount_rate, data=data)
        value = derl * (margin if ndim(margin_per_period) else float(margin[0]))
        return float(value) if ndim(value) == 0 else value
