"""BG/BB: the discrete-time model of Fader, Hardie & Shang (2010)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from .. import _core
from .._base import _bad_parameter, _check_n_jobs
from .._input import _native, align_argument, as_float_array, data_error, ndim
from ._rfm import RfmModel

__all__ = ["BetaGeoBetaBinomModel"]


def _whole(
    values: Any, name: str, data: Any = None, arrays: dict[str, Any] | None = None
) -> tuple[np.ndarray, bool]:
    scalar = ndim(values) == 0
    array = as_float_array(align_argument(values, name, data, arrays), name)
    if not np.all(np.isfinite(array) & (array >= 0) & (np.mod(array, 1) == 0)):
        raise _bad_parameter(name, f"must be whole numbers of opportunities >= 0, got {values!r}")
    return array, scalar


#: Most opportunities :meth:`BetaGeoBetaBinomModel.purchase_count_probability` sums over (the
#: core's limit, named here with the caller's argument).
_MAX_COUNT_OPPORTUNITIES = 10_000_000


class BetaGeoBetaBinomModel(RfmModel):
    r"""BG/BB model of repeat transactions at discrete opportunities (Fader, Hardie & Shang 2010).

    At each of ``periods`` (:math:`n`) transaction opportunities (annual donation drives, issues
    of a magazine, events) a customer who is still alive transacts with probability
    :math:`p \sim \mathrm{Beta}(\alpha, \beta)`; at the start of each later opportunity an alive
    customer dies with probability :math:`\theta \sim \mathrm{Beta}(\gamma, \delta)`. Data per
    customer: ``frequency`` :math:`x` (repeat transactions), ``recency`` :math:`t_x` (the
    opportunity of the last one, 0 if none) and ``periods`` :math:`n`; identical histories are
    usually given once with ``weights`` (the donations data is 22 rows for 11,104 donors). The
    likelihood (FHS 2010, eq. 5) is

    .. math::

        L = \frac{B(\alpha + x, \beta + n - x)}{B(\alpha, \beta)}
            \frac{B(\gamma, \delta + n)}{B(\gamma, \delta)}
          + \sum_{i=0}^{n - t_x - 1} \frac{B(\alpha + x, \beta + t_x - x + i)}{B(\alpha, \beta)}
            \frac{B(\gamma + 1, \delta + t_x + i)}{B(\gamma, \delta)},

    summed by a recurrence relative to its first term (exact for histories of hundreds of
    opportunities, where ``lifetimes`` floors its terms), with an exact gradient. Predictions
    are finite sums of positive terms instead of the paper's closed forms, which divide by
    :math:`\gamma - 1`.

    Time-invariant covariates (``purchase_covariates``, ``dropout_covariates``,
    ``tied_covariates``, as for :class:`BetaGeoModel`) act through
    :math:`\alpha_i = \alpha \exp(z_i^\top g_{purchase})` and
    :math:`\gamma_i = \gamma \exp(z_i^\top g_{dropout})`: :math:`\exp(z^\top g)` multiplies
    the odds :math:`\alpha_i/\beta` of the customer's mean transaction probability and the
    odds :math:`\gamma_i/\delta` of their mean dropout probability (no published covariate
    form for BG/BB was found; this is the exponential link Fader & Hardie 2007 give one
    parameter of each heterogeneity distribution of the Pareto/NBD).

    Parameters
    ----------
    penalizer, n_jobs, max_iter, tol, on_failure
        As for :class:`BetaGeoModel`.
    columns : dict, optional
        Column names for the roles ``frequency``, ``recency``, ``T`` (the number of
        opportunities; default column ``periods``) and ``weights``.

    Attributes
    ----------
    params_ : pandas.Series
        Estimates of ``alpha``, ``beta``, ``gamma``, ``delta``.
    covariance_, standard_errors_, log_likelihood_, aic_, bic_, n_observations_, converged_,
    n_iter_, fit_info_
        As for :class:`BetaGeoModel`.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. & Shang, J. (2010). Customer-Base Analysis in a Discrete-Time
    Noncontractual Setting. *Marketing Science* 29(6), 1086-1108.

    Examples
    --------
    >>> import clvrs
    >>> donations = clvrs.datasets.load_donations()
    >>> model = clvrs.BetaGeoBetaBinomModel().fit(donations)  # its `weights` column counts donors
    >>> model.params_.round(3).tolist()
    [1.204, 0.75, 0.657, 2.783]
    >>> model.expected_purchases_new_customer([1, 2, 3, 4, 5]).round(4).tolist()
    [0.4985, 0.9233, 1.2969, 1.6323, 1.9381]
    """

    _model: ClassVar[str] = "bgbb"
    _takes_covariates: ClassVar[bool] = True
    _param_names: ClassVar[tuple[str, ...]] = ("alpha", "beta", "gamma", "delta")
    _default_columns: ClassVar[dict[str, str | None]] = {
        "frequency": "frequency",
        "recency": "recency",
        "T": "periods",
        "weights": None,
    }

    # The T role is passed as `periods=`: errors call such an array `periods` (the base
    # class's `_columns` passes this on to `coerce_columns`).
    _keyword_names: ClassVar[dict[str, str] | None] = {"T": "periods"}

    @classmethod
    def from_params(cls, **kwargs: Any) -> BetaGeoBetaBinomModel:  # noqa: D102
        """Build a model with known ``alpha``, ``beta``, ``gamma``, ``delta`` (no fitting)."""
        return super().from_params(**kwargs)  # type: ignore[no-any-return]

    def fit(  # type: ignore[override]
        self,
        data: Any = None,
        *,
        frequency: Any = None,
        recency: Any = None,
        periods: Any = None,
        weights: Any = None,
        method: str = "mle",
        chains: int = 4,
        draws: int = 1000,
        tune: int = 1000,
        seed: int | None = None,
        priors: dict[Any, Any] | None = None,
        target_accept: float = 0.8,
        max_depth: int = 10,
        purchase_covariates: Any = None,
        dropout_covariates: Any = None,
        tied_covariates: Any = None,
        covariate_penalizer: float = 0.0,
    ) -> BetaGeoBetaBinomModel:
        """Estimate the parameters from (frequency, recency, periods) histories.

        Parameters
        ----------
        data : pandas.DataFrame or polars.DataFrame, optional
            One row per history with columns ``frequency``, ``recency`` and ``periods`` (and
            ``weights``, the number of customers with that history, used by default: the
            bundled donations data fits as loaded).
        frequency, recency, periods : array-like, optional
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
            ``method="nuts"`` draws from the posterior instead of maximising the likelihood;
            see :meth:`BetaGeoModel.fit` for these options and :mod:`clvrs.priors` for the
            default priors.
        purchase_covariates, dropout_covariates, tied_covariates, covariate_penalizer
            Time-invariant covariates, as for :meth:`BetaGeoModel.fit`, through
            ``alpha_i = alpha exp(z_i . g_purchase)`` and
            ``gamma_i = gamma exp(z_i . g_dropout)``: ``exp(z . g)`` multiplies
            the odds of the customer's mean transaction probability (positive purchase
            coefficients: more transactions) and of their mean dropout probability (positive
            dropout coefficients: faster dropout); ``beta`` and ``delta`` stay shared.

        Returns
        -------
        BetaGeoBetaBinomModel
            self, fitted.

        Raises
        ------
        InvalidDataError
            For non-integer or negative values, recency > periods, frequency > recency, or
            recency > 0 with frequency 0, and for weights that are not whole numbers >= 0.
        """
        super().fit(
            data,
            frequency=frequency,
            recency=recency,
            T=periods,
            weights=weights,
            method=method,
            chains=chains,
            draws=draws,
            tune=tune,
            seed=seed,
            priors=priors,
            target_accept=target_accept,
            max_depth=max_depth,
            purchase_covariates=purchase_covariates,
            dropout_covariates=dropout_covariates,
            tied_covariates=tied_covariates,
            covariate_penalizer=covariate_penalizer,
        )
        return self

    def expected_purchases(  # type: ignore[override]
        self,
        data: Any = None,
        m: Any = 1,
        *,
        frequency: Any = None,
        recency: Any = None,
        periods: Any = None,
    ) -> Any:
        """Expected transactions in the next ``m`` opportunities given each history.

        P(alive) times the posterior mean of ``p`` times the expected number of the ``m``
        opportunities survived (FHS 2010, eq. 13).
        """
        arrays = {"frequency": frequency, "recency": recency, "T": periods}
        horizon, _ = _whole(m, "m", data, arrays)
        return self._per_customer(
            "expected_purchases", "expected_purchases", data, arrays, t=horizon, t_name="m"
        )

    def probability_alive(  # type: ignore[override]
        self,
        data: Any = None,
        m: Any = 0,
        *,
        frequency: Any = None,
        recency: Any = None,
        periods: Any = None,
    ) -> Any:
        """Probability that each customer is alive ``m`` opportunities after the last observed
        one (``m = 0``: now, at the end of observation)."""
        arrays = {"frequency": frequency, "recency": recency, "T": periods}
        horizon, scalar = _whole(m, "m", data, arrays)
        if scalar and horizon[0] == 0:
            return self._per_customer("probability_alive", "probability_alive", data, arrays)
        return self._per_customer(
            "probability_alive", "probability_alive", data, arrays, t=horizon, t_name="m"
        )

    def log_likelihood_per_customer(  # type: ignore[override]
        self,
        data: Any = None,
        *,
        frequency: Any = None,
        recency: Any = None,
        periods: Any = None,
    ) -> Any:
        """Each customer's log-likelihood at the current parameters (unweighted)."""
        arrays = {"frequency": frequency, "recency": recency, "T": periods}
        return self._per_customer("log_likelihood", "log_likelihood", data, arrays)

    def expected_residual_transactions(
        self,
        data: Any = None,
        discount_rate: Any = None,
        *,
        frequency: Any = None,
        recency: Any = None,
        periods: Any = None,
    ) -> Any:
        r"""Discounted expected residual transactions (DERT, FHS 2010 eq. 14, as a sum).

        :math:`\sum_{j \ge 1} E[Y_{n+j} \mid \text{history}] / (1 + d)^j` with ``discount_rate``
        :math:`d` per opportunity: a finite number > 0, one value or one per customer.
        """
        if discount_rate is None:
            raise _bad_parameter("discount_rate", "is required (rate per opportunity)")
        arrays = {"frequency": frequency, "recency": recency, "T": periods}
        rate = as_float_array(
            align_argument(discount_rate, "discount_rate", data, arrays), "discount_rate"
        )
        return self._per_customer(
            "expected_residual_transactions",
            "expected_residual_transactions",
            data,
            arrays,
            t=rate,
        )

    def _continuous_dert(self, data: Any, delta: float, rfm: dict[str, Any]) -> Any:
        # Discrete opportunities: continuous discounting at delta per time unit is the rate
        # expm1(delta) per opportunity (the DERT discounts opportunity j by (1 + d)^-j).
        return self.expected_residual_transactions(
            data,
            discount_rate=math.expm1(delta),
            frequency=rfm["frequency"],
            recency=rfm["recency"],
            periods=rfm["T"],
        )

    def expected_purchases_new_customer(self, n: Any) -> Any:  # type: ignore[override]
        """E[X(n)]: expected transactions of a new customer in its first ``n`` opportunities.

        Not available for a model fitted with covariates.
        """
        self._without_covariates("expected_purchases_new_customer")
        horizon, scalar = _whole(n, "n")
        _check_n_jobs(self.n_jobs)
        out = self._mean_over_posterior(
            lambda params: _core.rfm_new_customer(
                self._model, "expected_purchases", params, horizon, n_jobs=self.n_jobs
            )
        )
        return float(out[0]) if scalar else out

    def purchase_count_probability(self, x: Any, n: Any) -> Any:  # type: ignore[override]
        """P(X(n) = x): probability that a new customer makes ``x`` transactions in ``n``
        opportunities (FHS 2010, eq. 7).

        Parameters
        ----------
        x : int or array-like of int
            Transaction counts, whole numbers >= 0.
        n : int or array-like of int
            Numbers of opportunities, whole numbers >= 0; broadcast against ``x``.

        Returns
        -------
        float or numpy.ndarray
            A float when both are scalars, else an array of the broadcast shape (1-d).

        Raises
        ------
        InvalidParameterError
            If ``n`` is not made of whole numbers >= 0.
        InvalidDataError
            Naming ``x`` (and, for an array, the first offending position) if a count is not a
            whole number >= 0.
        """
        self._without_covariates("purchase_count_probability")
        opportunities, n_scalar = _whole(n, "n")
        too_long = np.flatnonzero(opportunities > _MAX_COUNT_OPPORTUNITIES)
        if too_long.size:
            row = int(too_long[0])
            raise data_error(
                "n",
                None if n_scalar else row,
                float(opportunities[row]),
                "must be at most 10,000,000 opportunities for purchase_count_probability (it "
                "sums over each one): use coarser opportunities",
            )
        counts = as_float_array(x, "x")
        scalar = ndim(x) == 0
        bad = np.flatnonzero(~(np.isfinite(counts) & (counts >= 0) & (np.mod(counts, 1) == 0)))
        if bad.size:
            row = int(bad[0])
            raise data_error(
                "x", None if scalar else row, float(counts[row]), "must be a whole number >= 0"
            )
        if len(counts) != len(opportunities) and 1 not in (len(counts), len(opportunities)):
            raise data_error(
                "x",
                None,
                None,
                f"must be one value or one per value of n ({len(opportunities)}), "
                f"got {len(counts)}",
            )
        counts, opportunities = np.broadcast_arrays(counts, opportunities)
        _check_n_jobs(self.n_jobs)
        out = self._mean_over_posterior(
            lambda params: _core.rfm_new_customer(
                self._model,
                "purchase_count_probability",
                params,
                _native(opportunities),
                n=_native(counts),
                n_jobs=self.n_jobs,
            )
        )
        return float(out[0]) if scalar and n_scalar else out
