"""Gamma-Gamma: the spend-per-transaction model of Fader, Hardie & Lee (2005)."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from .. import _bayes, _core
from .._base import BaseModel, _bad_parameter, _settings_record
from .._bayes import check_method, sampler_settings
from .._input import Columns, wrap_output
from ..exceptions import ModelWarning
from ..priors import terms_json
from ._covariates import (
    CovariateSpec,
    CovariateSummary,
    OneProcessSpec,
    _names,
    check_covariate_penalizer,
)

__all__ = ["GammaGammaModel"]


class GammaGammaModel(CovariateSummary, BaseModel):
    r"""Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005; Colombo & Jiang
    1999).

    A customer's transaction values are :math:`\mathrm{Gamma}(p, \nu)` with
    :math:`\nu \sim \mathrm{Gamma}(q, \gamma)` across customers, independent of how often they
    buy. It is fitted on the customers with repeat transactions from their number ``frequency``
    (:math:`x`) and mean value ``monetary_value`` (:math:`\bar m`), by the likelihood of
    :math:`\bar m`:

    .. math::

        L = \frac{\Gamma(px + q)}{\Gamma(px)\Gamma(q)}
            \frac{\gamma^q\, \bar m^{px - 1} x^{px}}{(\gamma + x \bar m)^{px + q}}.

    Customers without repeat transactions carry no spend information: they are left out of the
    fit and counted in ``fit_info_["n_excluded"]`` (not an error). The expected spend per
    transaction of a customer is :math:`p(\gamma + x\bar m)/(px + q - 1)`, a weighted average
    of the population mean :math:`p\gamma/(q - 1)` and the customer's own mean. When
    :math:`q \le 1` the population mean is infinite: the fit warns
    (:class:`~clvrs.exceptions.ModelWarning`) and mean-based predictions raise
    :class:`~clvrs.exceptions.InvalidParameterError` instead of returning a negative or
    infinite spend.

    ``fit(data, spend_covariates=[...])`` lets time-invariant covariates scale each
    customer's spend: :math:`\gamma_i = \gamma \exp(z_i^\top g)`, the heterogeneity
    distribution's scale, so :math:`\exp(z_i^\top g)` multiplies every expected transaction
    value of customer :math:`i` (a positive coefficient raises spend; ``p`` and ``q`` stay
    shared). This is the exponential link Fader & Hardie (2007) give the scale parameters of
    the Pareto/NBD and BG/NBD heterogeneity distributions; no published Gamma-Gamma covariate
    extension puts them elsewhere that we found (CLVTools' spending model takes none).
    Coefficients are named ``spend:column`` (``spend:column[level]`` for the levels of a
    categorical column, against its reference level) and come with standard errors, Wald
    intervals, ``z`` and ``p`` in :meth:`summary_frame`; ``covariate_penalizer`` adds an L2
    penalty on them (``method="nuts"``/``"map"``: priors). Predictions then read each
    customer's covariates from the data.

    Parameters
    ----------
    penalizer, n_jobs, max_iter, tol, on_failure
        As for :class:`BetaGeoModel`.
    columns : dict, optional
        Column names for the roles ``frequency``, ``monetary_value`` and ``weights``.

    Attributes
    ----------
    params_ : pandas.Series
        Estimates of ``p``, ``q``, ``gamma``.
    covariance_, standard_errors_, log_likelihood_, aic_, bic_, n_observations_, converged_,
    n_iter_, fit_info_
        As for :class:`BetaGeoModel`; ``n_observations_`` counts the repeat buyers and
        ``fit_info_["n_excluded"]`` the customers left out.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). RFM and CLV: Using Iso-Value Curves for
    Customer Base Analysis. *Journal of Marketing Research* 42(4), 415-430.
    Colombo, R. & Jiang, W. (1999). A stochastic RFM model. *Journal of Interactive Marketing*
    13(3), 2-12.
    Fader, P. S. & Hardie, B. G. S. (2007). Incorporating time-invariant covariates into the
    Pareto/NBD and BG/NBD models. http://brucehardie.com/notes/019/

    Examples
    --------
    >>> import clvrs
    >>> data = clvrs.datasets.load_cdnow_summary()
    >>> spend = clvrs.GammaGammaModel().fit(data)
    >>> spend.fit_info_["n_excluded"], int(spend.n_observations_)
    (1411, 946)
    """

    _param_names: ClassVar[tuple[str, ...]] = ("p", "q", "gamma")
    _covariate_spec: ClassVar[type[CovariateSpec]] = OneProcessSpec
    _default_columns: ClassVar[dict[str, str | None]] = {
        "frequency": "frequency",
        "monetary_value": "monetary_value",
        "weights": None,
    }
    _roles: ClassVar[tuple[str, ...]] = ("frequency", "monetary_value")

    @classmethod
    def from_params(cls, **kwargs: Any) -> GammaGammaModel:  # noqa: D102
        """Build a model with known ``p``, ``q``, ``gamma`` (no fitting)."""
        return super().from_params(**kwargs)  # type: ignore[no-any-return]

    def _names(self, cols: Columns) -> tuple[str, str, str]:
        n = cols.names
        return (n["frequency"], n["monetary_value"], n.get("weights", "weights"))

    def fit(
        self,
        data: Any = None,
        *,
        frequency: Any = None,
        monetary_value: Any = None,
        weights: Any = None,
        method: str = "mle",
        chains: int = 4,
        draws: int = 1000,
        tune: int = 1000,
        seed: int | None = None,
        priors: dict[Any, Any] | None = None,
        target_accept: float = 0.8,
        max_depth: int = 10,
        spend_covariates: Any = None,
        covariate_penalizer: float = 0.0,
    ) -> GammaGammaModel:
        r"""Estimate ``p``, ``q``, ``gamma`` from the repeat buyers' mean spend.

        Parameters
        ----------
        data : pandas.DataFrame or polars.DataFrame, optional
            One row per customer with ``frequency`` (repeat transactions) and
            ``monetary_value`` (their mean value; ignored where frequency is 0).
        frequency, monetary_value : array-like, optional
            The same columns as arrays, when ``data`` is not given.
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
        spend_covariates : str or list of str, optional
            Columns of ``data`` (time-invariant, one value per customer) that scale each
            customer's spend through :math:`\gamma_i = \gamma \exp(z_i^\top g)`; numeric
            and boolean columns enter as they are, others are one-hot encoded against their
            first level. Needs ``data`` as a DataFrame. With ``method="nuts"`` or ``"map"``
            the coefficients get priors like the model's parameters (``priors`` keyed by
            ``"spend:column"``) and predictions average over the draws.
        covariate_penalizer : float, default 0.0
            L2 penalty ``covariate_penalizer * sum(coefficients**2)`` on the covariate
            coefficients (``penalizer`` still applies to ``p``, ``q``, ``gamma``).

        Returns
        -------
        GammaGammaModel
            self, fitted.

        Raises
        ------
        InvalidDataError
            For negative or non-integer frequencies, non-positive or non-finite mean values of
            repeat buyers, mismatched lengths, no repeat buyer at all, or weights that are not
            whole numbers >= 0.
        """
        self._check_hyperparameters()
        cols = self._columns(
            data,
            {"frequency": frequency, "monetary_value": monetary_value, "weights": weights},
            optional=("weights",),
        )
        a = cols.arrays
        method = check_method(method)
        spend_covariates = _names(spend_covariates, "spend_covariates")
        check_covariate_penalizer(covariate_penalizer)
        if spend_covariates:
            if method != "mle" and covariate_penalizer:
                raise _bad_parameter(
                    "covariate_penalizer",
                    f'is for method="mle" (got {covariate_penalizer!r}); with method="{method}" '
                    "give the coefficients a prior (priors={...: clvrs.priors.Normal(0, s)})",
                )
            if method == "mle" and priors is not None:
                raise _bad_parameter("priors", 'are used by method="nuts" and method="map" only')
            settings = (
                sampler_settings(chains, draws, tune, seed, target_accept, max_depth)
                if method == "nuts"
                else None
            )
            return self._fit_covariates(
                data, cols, spend_covariates, covariate_penalizer, method, priors, settings
            )
        if covariate_penalizer:
            raise _bad_parameter(
                "covariate_penalizer",
                f"is only used with spend_covariates (got {covariate_penalizer!r})",
            )
        if method == "nuts":
            settings = sampler_settings(chains, draws, tune, seed, target_accept, max_depth)
            self._check_bayes_hyperparameters()
            with cols.locating_rows():
                result = _core.gamma_gamma_sample(
                    a["frequency"],
                    a["monetary_value"],
                    a.get("weights"),
                    self._names(cols),
                    terms_json(priors, list(self._param_names)),
                    settings,
                    n_jobs=self.n_jobs,
                )
            self._set_posterior(result, _settings_record(settings))
        elif method == "map":
            self._check_bayes_hyperparameters()
            with cols.locating_rows():
                result = _core.gamma_gamma_map(
                    a["frequency"],
                    a["monetary_value"],
                    a.get("weights"),
                    self._names(cols),
                    terms_json(priors, list(self._param_names)),
                    max_iter=int(self.max_iter),
                    tol=float(self.tol),
                    n_jobs=self.n_jobs,
                )
            self._set_map(result)
        else:
            if priors is not None:
                raise _bad_parameter("priors", 'are used by method="nuts" and method="map" only')
            with cols.locating_rows():
                result = _core.gamma_gamma_fit(
                    a["frequency"],
                    a["monetary_value"],
                    a.get("weights"),
                    self._names(cols),
                    penalizer=float(self.penalizer),
                    max_iter=int(self.max_iter),
                    tol=float(self.tol),
                    n_jobs=self.n_jobs,
                )
            self._set_fit(result)
        self.covariates_ = None
        self._after_fit(result)
        return self

    def _fit_covariates(
        self,
        data: Any,
        cols: Columns,
        spend_covariates: list[str],
        penalty: Any,
        method: str = "mle",
        priors: dict[Any, Any] | None = None,
        settings: Any = None,
    ) -> GammaGammaModel:
        check_covariate_penalizer(penalty)
        a = cols.arrays
        spec = OneProcessSpec.learn_one(
            "spend", data, spend_covariates, reserved=list(cols.names.values())
        )
        matrix, encoded, coefficients = spec.one_design(data)
        if method != "mle":
            self._check_bayes_hyperparameters()
            arguments = (
                a["frequency"],
                a["monetary_value"],
                a.get("weights"),
                self._names(cols),
                matrix,
                encoded,
                coefficients,
                terms_json(priors, [*self._param_names, *coefficients]),
            )
            with cols.locating_rows():
                if method == "nuts":
                    result = _core.gamma_gamma_sample_covariates(
                        *arguments, settings, n_jobs=self.n_jobs
                    )
                    self._set_posterior(result, _settings_record(settings))
                else:
                    result = _core.gamma_gamma_map_covariates(
                        *arguments,
                        max_iter=int(self.max_iter),
                        tol=float(self.tol),
                        n_jobs=self.n_jobs,
                    )
                    self._set_map(result)
            self.covariates_ = spec
            self.fit_info_["covariate_penalizer"] = 0.0
            self._after_fit(result)
            return self
        with cols.locating_rows():
            result = _core.gamma_gamma_fit_covariates(
                a["frequency"],
                a["monetary_value"],
                a.get("weights"),
                self._names(cols),
                matrix,
                encoded,
                coefficients,
                penalizer=float(self.penalizer),
                covariate_penalizer=float(penalty),
                max_iter=int(self.max_iter),
                tol=float(self.tol),
                n_jobs=self.n_jobs,
            )
        self._set_fit(result)
        self.covariates_ = spec
        self.fit_info_["covariate_penalizer"] = float(penalty)
        self._after_fit(result)
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

    def _after_fit(self, result: dict[str, Any]) -> None:
        excluded = float(result["n_excluded"])
        self.fit_info_["n_excluded"] = int(excluded) if excluded.is_integer() else excluded
        if self.params_["q"] <= 1.0:
            warnings.warn(
                f"GammaGammaModel: q = {self.params_['q']:.4g} <= 1, so the spend distribution "
                "has no finite mean: expected spend and customer value are undefined and will "
                "raise. A few very large transactions usually cause this; check monetary values "
                "for outliers (or cap them) and refit.",
                ModelWarning,
                stacklevel=3,
            )

    def _predict(self, quantity: str, name: str, data: Any, arrays: dict[str, Any]) -> Any:
        cols = self._columns(data, arrays)
        a = cols.arrays
        spec = self._spec()
        if isinstance(spec, OneProcessSpec):
            matrix, encoded, _ = spec.one_design(data)
            # After a Bayesian fit: the mean over the draws (one pass per draw).
            with cols.locating_rows(), self._naming_covariates(data):
                out = self._mean_over_posterior(
                    lambda params: _core.gamma_gamma_predict_covariates(
                        quantity,
                        params,
                        a["frequency"],
                        a["monetary_value"],
                        self._names(cols),
                        matrix,
                        encoded,
                        n_jobs=self.n_jobs,
                    )
                )
            return wrap_output(out, cols, name)
        with cols.locating_rows():
            if quantity == "expected_spend" and self._is_bayesian():
                out = _bayes.posterior_prediction(
                    lambda **options: _core.gamma_gamma_posterior_predict(
                        _bayes.draws_matrix(self),
                        a["frequency"],
                        a["monetary_value"],
                        level=options["level"],
                        bins=options["bins"],
                        n_jobs=self.n_jobs,
                    )
                )
                return wrap_output(out, cols, name)
            if quantity == "log_likelihood" and self._is_bayesian():
                return wrap_output(self._posterior_log_likelihood(a), cols, name)
            out = _core.gamma_gamma_predict(
                quantity,
                self._params_list(),
                a["frequency"],
                a["monetary_value"],
                self._names(cols),
                n_jobs=self.n_jobs,
            )
        return wrap_output(out, cols, name)

    def _posterior_log_likelihood(self, a: dict[str, Any]) -> np.ndarray:
        """Each customer's log-likelihood averaged over the posterior draws (streamed in the
        core), NaN for customers without repeat transactions, as for the other models'
        Bayesian fits."""
        frequency = np.asarray(a["frequency"], dtype=float)
        monetary = np.asarray(a["monetary_value"], dtype=float)
        repeat = np.flatnonzero(frequency > 0)

        def call(**options: Any) -> dict[str, Any]:
            part = _core.gamma_gamma_posterior_predict(
                _bayes.draws_matrix(self),
                np.ascontiguousarray(frequency[repeat]),
                np.ascontiguousarray(monetary[repeat]),
                level=options["level"],
                bins=options["bins"],
                n_jobs=self.n_jobs,
                quantity="log_likelihood",
            )
            out = {}
            for key, values in part.items():
                full = np.full(frequency.size, np.nan)
                full[repeat] = values
                out[key] = full
            return out

        return _bayes.posterior_prediction(call)

    def expected_average_spend(
        self, data: Any = None, *, frequency: Any = None, monetary_value: Any = None
    ) -> Any:
        r"""Expected spend per transaction of each customer.

        :math:`p(\gamma + x\bar m)/(px + q - 1)`: the posterior mean given the customer's
        ``frequency`` :math:`x` and mean value :math:`\bar m`; the population mean for customers
        with no repeat transaction. After ``fit(..., method="nuts")``, its mean over the
        posterior draws (:func:`clvrs.prediction_interval` gives its credible interval).

        Returns
        -------
        pandas.Series, polars.Series or numpy.ndarray
            One value per customer, shaped like the input.

        Raises
        ------
        InvalidParameterError
            When the mean is infinite (``q <= 1``, or ``p x + q <= 1`` for some customer).
        """
        arrays = {"frequency": frequency, "monetary_value": monetary_value}
        return self._predict("expected_spend", "expected_average_spend", data, arrays)

    def population_mean_spend(self) -> float:
        r"""Mean spend per transaction across customers, :math:`p\gamma/(q - 1)`.

        For a model fitted with ``spend_covariates`` this is the mean of a customer whose
        covariates are all 0 (the reference levels); :meth:`expected_average_spend` of a
        customer with ``frequency`` 0 gives the mean at that customer's covariates.

        Raises
        ------
        InvalidParameterError
            When ``q <= 1`` (the mean is infinite).
        """
        if self._spec() is not None:
            return float(
                self._mean_over_posterior(
                    lambda params: _core.gamma_gamma_population_mean(params[:3])
                )
            )
        return float(self._mean_over_posterior(_core.gamma_gamma_population_mean))

    def log_likelihood_per_customer(
        self, data: Any = None, *, frequency: Any = None, monetary_value: Any = None
    ) -> Any:
        """Each customer's log-likelihood of their mean spend (NaN where frequency is 0).

        At the fitted parameters; after ``fit(..., method="nuts")``, as for the purchase
        models, its mean over the posterior draws (the posterior mean of the customer's
        log-likelihood, streamed in the core; :func:`clvrs.prediction_interval` gives its sd
        and credible interval), which is not the log-likelihood at the posterior-mean
        parameters.
        """
        arrays = {"frequency": frequency, "monetary_value": monetary_value}
        return self._predict("log_likelihood", "log_likelihood", data, arrays)
