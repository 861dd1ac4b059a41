"""Pareto/NBD with correlated purchase and dropout rates (Sarmanov bivariate gamma mixing)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .._base import _bad_parameter
from ._rfm import LifetimePredictions

__all__ = ["CorrelatedParetoNBDModel", "correlation_bounds"]


def correlation_bounds(r: float, alpha: float, s: float, beta: float) -> tuple[float, float]:
    r"""The correlations of :math:`(\lambda, \mu)` the Sarmanov family reaches with gamma margins.

    Parameters
    ----------
    r, alpha, s, beta : float
        The margins :math:`\lambda \sim \mathrm{Gamma}(r, \alpha)`,
        :math:`\mu \sim \mathrm{Gamma}(s, \beta)`.

    Returns
    -------
    (float, float)
        The lowest and the highest admissible correlation.

    Examples
    --------
    >>> lo, hi = correlation_bounds(0.55, 10.58, 0.61, 11.67)  # CDNOW, weeks
    >>> round(lo, 4), round(hi, 4)
    (-0.0039, 0.0768)
    """
    la = math.exp(-r * math.log1p(1 / alpha))
    lb = math.exp(-s * math.log1p(1 / beta))
    la_c = -math.expm1(-r * math.log1p(1 / alpha))
    lb_c = -math.expm1(-s * math.log1p(1 / beta))
    scale = la * lb * math.sqrt(r * s) / ((1 + alpha) * (1 + beta))
    return -scale / max(la * lb, la_c * lb_c), scale / max(la * lb_c, la_c * lb)


class CorrelatedParetoNBDModel(LifetimePredictions):
    r"""Pareto/NBD with correlated purchase and dropout rates (CLVTools' ``use.cor = TRUE``).

    The Pareto/NBD (:class:`ParetoNBDModel`) draws each customer's purchase rate
    :math:`\lambda \sim \mathrm{Gamma}(r, \alpha)` and dropout rate
    :math:`\mu \sim \mathrm{Gamma}(s, \beta)` independently. Here they are joined by the
    Sarmanov bivariate distribution with those gamma margins (Sarmanov 1966; the
    :math:`e^{-x}` mixing functions of Lee 1996, used for gamma-distributed rates by Park &
    Fader 2004 and for the Pareto/NBD by Glady, Lemmens & Croux 2015; CLVTools fits the same):

    .. math::

        f(\lambda, \mu) = g_1(\lambda)\, g_2(\mu) \left[1 + \omega
            (e^{-\lambda} - L_A)(e^{-\mu} - L_B)\right],
        \quad L_A = \left(\tfrac{\alpha}{\alpha + 1}\right)^r,
        \ L_B = \left(\tfrac{\beta}{\beta + 1}\right)^s,

    whose correlation is
    :math:`\rho = \omega \sqrt{rs}\, L_A L_B / ((1 + \alpha)(1 + \beta))`. The model is
    fitted in :math:`(r, \alpha, s, \beta, \rho)`: ``correlation`` is :math:`\rho` itself,
    with its standard error from the covariance. Since :math:`g_1 e^{-\lambda} = L_A
    g_1(\cdot; r, \alpha + 1)`, the density is a signed mixture of four independent gamma
    pairs, so the likelihood is
    :math:`L = L_{00} + q (L_{00} + L_{11} - L_{10} - L_{01})` with :math:`L_{ij}` the plain
    Pareto/NBD likelihood at :math:`\alpha + i, \beta + j` and
    :math:`q = \rho (1 + \alpha)(1 + \beta) / \sqrt{rs}`, with its exact gradient; and every
    prediction (P(alive), expected purchases, DERT, purchase-count probabilities, new
    customers, CLV) is the same combination of Pareto/NBD predictions, weighted by the four
    components' posterior (or, for a new customer, prior) weights. At ``correlation = 0`` the
    model is the plain Pareto/NBD to the bit.

    The admissible correlations depend on the margins (:func:`correlation_bounds`) and are
    narrow when :math:`\alpha, \beta` are large: the mixing function :math:`e^{-\lambda}` is
    tied to the time unit (about -0.004 to 0.076 at CDNOW's weekly estimates; a longer time unit
    widens it). Where the likelihood still rises at the edge of that range the fit stops on the
    edge and says so (not converged, no standard errors): on CDNOW in weeks the estimate is the
    highest admissible correlation, 0.076, and the likelihood-ratio statistic against
    independence is 5.4 (a boundary optimum, so its :math:`\chi^2_1` p-value of 0.02 is only a
    guide).

    ``fit`` first fits the plain Pareto/NBD (the null model), starts from its optimum with
    :math:`\rho = 0`, and reports the likelihood-ratio test of independence in
    ``fit_info_["independence_test"]`` and under the summary (``attrs["independence_test"]``):
    the statistic :math:`2 (\ell_1 - \ell_0)` and its :math:`\chi^2_1` p-value. Covariates are
    not supported with correlation.

    Parameters
    ----------
    penalizer, n_jobs, max_iter, tol, on_failure, columns
        As for :class:`BetaGeoModel`.

    Attributes
    ----------
    params_ : pandas.Series
        Estimates of ``r``, ``alpha``, ``s``, ``beta``, ``correlation``.
    covariance_, standard_errors_, log_likelihood_, aic_, bic_, n_observations_, converged_,
    n_iter_, fit_info_
        As for :class:`BetaGeoModel`.

    References
    ----------
    Sarmanov, O. V. (1966). Generalized normal correlation and two-dimensional Fréchet
    classes. *Soviet Mathematics Doklady* 7, 596-599.
    Lee, M.-L. T. (1996). Properties and applications of the Sarmanov family of bivariate
    distributions. *Communications in Statistics - Theory and Methods* 25(6), 1207-1222.
    Park, Y.-H. & Fader, P. S. (2004). Modeling Browsing Behavior at Multiple Websites.
    *Marketing Science* 23(3), 280-303.
    Glady, N., Lemmens, A. & Croux, C. (2015). Unveiling the relationship between the
    transaction timing, spending and dropout behavior of customers. *International Journal of
    Research in Marketing* 32(1), 78-93.

    Examples
    --------
    >>> import clvrs
    >>> data = clvrs.datasets.load_cdnow_summary()
    >>> model = clvrs.CorrelatedParetoNBDModel(on_failure="ignore").fit(data)
    >>> round(float(model.params_["correlation"]), 4)  # the edge of the family (see above)
    0.0883
    >>> round(model.fit_info_["independence_test"]["statistic"], 2)
    6.62
    """

    _model: ClassVar[str] = "pnbdcor"
    _takes_covariates: ClassVar[bool] = False
    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta", "correlation")

    @classmethod
    def from_params(cls, **kwargs: Any) -> CorrelatedParetoNBDModel:  # noqa: D102
        """Build a model with known ``r``, ``alpha``, ``s``, ``beta``, ``correlation``."""
        return super().from_params(**kwargs)  # type: ignore[no-any-return]

    def _set_params(self, values: dict[str, Any]) -> None:
        correlation = values.get("correlation")
        if isinstance(correlation, (bool, np.bool_, str, bytes)) or not (
            isinstance(correlation, (int, float, np.number)) and math.isfinite(correlation)
        ):
            raise _bad_parameter("correlation", f"must be a finite number, got {correlation!r}")
        margins = {k: v for k, v in values.items() if k != "correlation"}
        super()._set_params({**margins, "correlation": 1.0})  # checks the margins
        lo, hi = correlation_bounds(*(float(margins[k]) for k in ("r", "alpha", "s", "beta")))
        if not lo <= float(correlation) <= hi:
            raise _bad_parameter(
                "correlation",
                f"must lie in [{lo:.6g}, {hi:.6g}], the correlations the Sarmanov family "
                f"reaches with these gamma margins, got {correlation!r}",
            )
        self.params_["correlation"] = float(correlation)

    def fit(self, data: Any = None, **kwargs: Any) -> CorrelatedParetoNBDModel:
        """Estimate the parameters from customer summaries, and test independence.

        Takes the arguments of :meth:`ParetoNBDModel.fit` (no covariates). With
        ``method="mle"`` (the default) the plain Pareto/NBD is fitted first; the correlated
        model starts from its optimum, and ``fit_info_["independence_test"]`` holds the
        likelihood-ratio test against it (``statistic``, ``df`` = 1, ``p``, and the plain
        fit's ``log_likelihood``).

        With ``method="nuts"`` or ``"map"`` the sampler (or the mode's optimiser) moves the
        correlation by its position in the range the margins admit (that range moves with
        ``r``, ``alpha``, ``s``, ``beta``; see :func:`correlation_bounds`), so a prior on
        ``correlation`` is a prior on that position: ``clvrs.priors.Beta`` only, default
        ``Beta(1, 1)`` (uniform over the admissible range). The margins take the Pareto/NBD's
        default priors. Draws, means and intervals are of the correlation itself; a posterior
        piled against an end of the range says the data want more correlation than the family
        reaches (as the maximum-likelihood fit's boundary note does).

        Returns
        -------
        self
            The fitted estimator.

        Raises
        ------
        InvalidParameterError
            For covariates, or a ``penalizer`` (the test compares likelihoods; a Bayesian fit
            takes priors instead).
        """
        for name in ("purchase_covariates", "dropout_covariates", "tied_covariates"):
            if kwargs.get(name) is not None:
                raise _bad_parameter(name, "CorrelatedParetoNBDModel does not take covariates")
        if kwargs.get("method", "mle") in ("nuts", "map"):
            from ..priors import Beta, Flat, Uniform

            prior = (kwargs.get("priors") or {}).get("correlation")
            if prior is not None and not isinstance(prior, (Beta, Flat, Uniform)):
                raise _bad_parameter(
                    "priors",
                    "correlation: its prior is on the correlation's position in the range the "
                    "margins admit (0 the lowest, 1 the highest correlation): clvrs.priors.Beta "
                    f"(or Uniform within (0, 1), or Flat), got {prior!r}",
                )
            return super().fit(data, **kwargs)  # type: ignore[no-any-return]
        self._check_hyperparameters()
        if self.penalizer:
            raise _bad_parameter(
                "penalizer",
                "must be 0 for CorrelatedParetoNBDModel (its likelihood-ratio test compares "
                f"unpenalised fits), got {self.penalizer!r}",
            )
        from .pnbd import ParetoNBDModel

        plain = ParetoNBDModel(
            n_jobs=self.n_jobs,
            max_iter=self.max_iter,
            tol=self.tol,
            on_failure=self.on_failure,
            columns=self.columns,
        ).fit(data, **kwargs)
        self._start = [*plain._params_list(), 0.0]
        try:
            super().fit(data, **kwargs)
        finally:
            del self._start
        null = float(plain.log_likelihood_ or 0.0)
        statistic = max(0.0, 2.0 * (float(self.log_likelihood_ or 0.0) - null))
        self.fit_info_["independence_test"] = {
            "statistic": statistic,
            "df": 1,
            "p": math.erfc(math.sqrt(statistic / 2.0)),
            "log_likelihood": null,
        }
        return self

    def _fit_start(self) -> list[float] | None:
        return self.__dict__.get("_start")

    def summary_frame(self, level: float = 0.95) -> pd.DataFrame:
        """Estimates with standard errors and ``level`` confidence intervals.

        As for :class:`ParetoNBDModel`; ``correlation`` gets a plain Wald interval (it may be
        negative) with ``z`` and ``p`` for the hypothesis that it is 0, and the
        likelihood-ratio test of independence is in ``attrs["independence_test"]``. After
        ``fit(..., method="nuts")``, the posterior summary of every model (credible intervals
        of the draws).
        """
        frame = super().summary_frame(level)
        if (self.__dict__.get("fit_info_") or {}).get("method") == "nuts":
            return frame  # posterior summaries: credible intervals of the draws
        from statistics import NormalDist

        z = NormalDist().inv_cdf(0.5 + level / 2)
        values = frame.loc["correlation", ["coef", "se"]].to_numpy(dtype=float)
        coef, se = float(values[0]), float(values[1])
        frame.loc["correlation", "lower"] = coef - z * se
        frame.loc["correlation", "upper"] = coef + z * se
        statistic = coef / se if se > 0 else float("nan")
        frame["z"] = np.nan
        frame["p"] = np.nan
        frame.loc["correlation", "z"] = statistic
        frame.loc["correlation", "p"] = (
            math.erfc(abs(statistic) / math.sqrt(2)) if math.isfinite(statistic) else np.nan
        )
        test = (self.__dict__.get("fit_info_") or {}).get("independence_test")
        if test is not None:
            frame.attrs["independence_test"] = (
                f"LR test of independence (correlation = 0): statistic "
                f"{test['statistic']:.3f}, df 1, p = {test['p']:.4g}"
            )
        return frame
