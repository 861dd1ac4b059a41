"""Pareto/NBD with time-varying covariates (Bachmann, Meierer & Näf 2021)."""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd

from ..dynamic import DynamicCovariateData
from ._dynamic import DynamicCovariateModel

__all__ = ["ParetoNBDDynamicModel"]


class ParetoNBDDynamicModel(DynamicCovariateModel):
    r"""Pareto/NBD with time-varying covariates (Bachmann, Meierer & Näf 2021).

    Covariates that change over time (promotions, seasons, prices, a customer's current
    plan) shift each customer's purchase and dropout rates while they hold: a customer alive at
    time :math:`t` buys at rate :math:`\lambda\, e^{\gamma_1^\top x(t)}` and drops out at
    rate :math:`\mu\, e^{\gamma_2^\top z(t)}`, with :math:`\lambda \sim \mathrm{Gamma}(r,
    \alpha)` and :math:`\mu \sim \mathrm{Gamma}(s, \beta)` as in :class:`ParetoNBDModel`.
    With the cumulative intensities :math:`A(t) = \int_0^t e^{\gamma_1^\top x}` and
    :math:`B(t) = \int_0^t e^{\gamma_2^\top z}`, a customer with repeat purchases at
    :math:`t_1, \dots, t_x \le T` has

    .. math::

        L = \frac{\Gamma(r + x)\,\alpha^r \beta^s}{\Gamma(r)}
            e^{\gamma_1^\top \sum_j x(t_j)} \left[
            \frac{1}{(\alpha + A(T))^{r + x} (\beta + B(T))^s}
            + s \int_{t_x}^{T} \frac{e^{\gamma_2^\top z(\tau)}\, d\tau}
                {(\alpha + A(\tau))^{r + x} (\beta + B(\tau))^{s + 1}} \right].

    The covariates are step functions (:class:`~clvrs.DynamicCovariateData`); the integral is
    computed piece by piece with Gauss-Legendre panels fine enough for any number of
    purchases, and the gradient with it. With covariates that never change this is the
    time-invariant covariate model of :class:`ParetoNBDModel` (``alpha_i = alpha
    exp(-x . g1)``, ``beta_i = beta exp(-z . g2)``), and with every coefficient at 0 it is the
    Pareto/NBD: a positive coefficient raises the purchase (or dropout) rate by the factor
    :math:`e^{\gamma}` per unit of the covariate while the covariate holds. The fit starts
    from the Pareto/NBD fitted without covariates.

    Predictions read the covariates from the data, including pieces after the end of
    observation (the panel's last row holds indefinitely): :meth:`expected_purchases` in
    :math:`(T, T + t]`, :meth:`probability_alive` now or ``t`` ahead,
    :meth:`expected_residual_transactions` (DERT, continuous discounting) and
    :meth:`log_likelihood_per_customer`.

    Parameters
    ----------
    penalizer, n_jobs, max_iter, tol, on_failure
        As for :class:`BetaGeoModel`.

    Attributes
    ----------
    params_ : pandas.Series
        ``r``, ``alpha``, ``s``, ``beta`` and the coefficients (``purchase:<column>``,
        ``dropout:<column>``, ``tied:<column>``).
    covariates_ : CovariateSpec
        The covariates and their encoding (categorical columns one-hot against a reference
        level, named in ``summary["reference"]``).
    covariance_, standard_errors_, log_likelihood_, aic_, bic_, n_observations_, converged_,
    n_iter_, fit_info_
        As for :class:`BetaGeoModel`.

    References
    ----------
    Bachmann, P., Meierer, M. & Näf, J. (2021). The Role of Time-Varying Contextual Factors in
    Latent Attrition Models for Customer Base Analysis. *Marketing Science* 40(4), 783-809.

    Examples
    --------
    >>> import clvrs
    >>> data = clvrs.DynamicCovariateData(log, panel, freq="W")  # doctest: +SKIP
    >>> model = clvrs.ParetoNBDDynamicModel().fit(
    ...     data, purchase_covariates=["promo"], dropout_covariates=["season"]
    ... )  # doctest: +SKIP
    >>> model.expected_purchases(holdout_data, t=13)  # doctest: +SKIP
    """

    _model: ClassVar[str] = "pnbd_dynamic"
    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")
    _base_name: ClassVar[str] = "ParetoNBDModel"

    def expected_purchases(self, data: DynamicCovariateData, t: Any) -> pd.Series:
        """Expected purchases in ``(T, T + t]`` given each customer's history and covariates.

        ``P(alive at T) (r + x) / (alpha + A(T))`` times the integral over ``(T, T + t]`` of
        the purchase multiplier times the chance of surviving to then, in closed form per
        piece.

        Parameters
        ----------
        data : DynamicCovariateData
            The customers (their covariates must extend as far as needed: each customer's last
            panel row holds indefinitely).
        t : float or array-like
            Horizon, one value or one per customer (in the order of ``data.summary``).

        Returns
        -------
        pandas.Series
            Indexed by customer id.
        """
        return self._predict("expected_purchases", data, t)

    def probability_alive(self, data: DynamicCovariateData, t: Any = 0.0) -> pd.Series:
        """P(alive at ``T + t``) given each customer's history and covariates (``t = 0``: now).

        Returns
        -------
        pandas.Series
            Indexed by customer id.
        """
        return self._predict("probability_alive", data, t)

    def expected_residual_transactions(
        self, data: DynamicCovariateData, discount_rate: Any
    ) -> pd.Series:
        """Discounted expected residual transactions (DERT): the purchases expected from ``T``
        on, each discounted by ``exp(-discount_rate * time ahead)``, under each customer's
        covariates ahead (the last panel row holding indefinitely).

        Multiplied by the expected spend per purchase (e.g. :class:`GammaGammaModel`'s
        conditional expected spend) this is the customer's residual lifetime value.

        Parameters
        ----------
        data : DynamicCovariateData
            The customers.
        discount_rate : float or array-like
            Continuous discount rate per time unit (> 0), one value or one per customer:
            ``ln(1.1) / 52`` per week for 10% a year.

        Returns
        -------
        pandas.Series
            Indexed by customer id.
        """
        return self._predict("expected_residual_transactions", data, discount_rate)
