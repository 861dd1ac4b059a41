"""GGompertz/NBD: the gamma-Gompertz / NBD model of Bemmaor & Glady (2012)."""

from __future__ import annotations

from typing import Any, ClassVar

from ._rfm import LifetimePredictions

__all__ = ["GammaGompertzNBDModel"]


class GammaGompertzNBDModel(LifetimePredictions):
    r"""GGompertz/NBD model of repeat purchasing (Bemmaor & Glady 2012).

    While active, a customer buys at Poisson rate :math:`\lambda \sim \mathrm{Gamma}(r, \alpha)`;
    the lifetime has a Gompertz hazard :math:`\eta\, b\, e^{b\tau}` with
    :math:`\eta \sim \mathrm{Gamma}(s, \beta)`, so that the probability of being alive at
    :math:`\tau` is :math:`S(\tau) = (\beta / (\beta + e^{b\tau} - 1))^s`. The hazard may grow
    (``b`` large: customers "die suddenly") or stay nearly flat (``b -> 0`` with ``beta / b``
    fixed is Pareto/NBD). For a customer with :math:`x` repeat purchases, the last at
    :math:`t_x`, observed for :math:`T`:

    .. math::

        L = \frac{\Gamma(r + x)\,\alpha^r}{\Gamma(r)} \left[
            \frac{S(T)}{(\alpha + T)^{r + x}}
            + \int_{t_x}^{T} \frac{f(\tau)\,d\tau}{(\alpha + \tau)^{r + x}} \right],
        \qquad f = -S'.

    The integral is computed by adaptive Gauss-Kronrod quadrature (relative accuracy 1e-13)
    with the exact gradient carried along (dual numbers). Predictions integrate the posterior
    lifetime the same way (about 1e-12 relative). ``b`` and ``beta`` are often weakly
    identified (on CDNOW the likelihood is nearly flat along ``beta / b``): the summary flags
    such parameters and the fit warns when the Hessian is ill-conditioned.

    Covariates
    ----------
    ``fit(data, purchase_covariates=[...], dropout_covariates=[...])`` lets time-invariant
    customer characteristics :math:`z_i` shift each customer's scales as CLVTools parameterises
    the model with static covariates: :math:`\alpha_i = \alpha_0 e^{-z_i^\top \gamma_1}` and
    :math:`\beta_i = \beta_0 e^{-z_i^\top \gamma_2}`, so a positive purchase coefficient
    raises the purchase rate and a positive dropout coefficient raises the dropout hazard
    :math:`\eta\, b\, e^{b\tau}` (:math:`\eta \sim \mathrm{Gamma}(s, \beta_i)`), by the
    factor :math:`e^{\gamma}` per unit of the covariate. ``r``, ``b`` and ``s`` are shared.
    Coefficients are named ``purchase:<column>``, ``dropout:<column>`` and ``tied:<column>``
    (``tied_covariates``), as for :class:`ParetoNBDModel`; ``covariate_penalizer`` is an L2
    penalty on them, and ``method="nuts"``/``"map"`` sample or maximise them with the model's
    parameters. The gradient is exact (the quadrature carries it, customer by customer, or per
    group of customers with identical covariates); the Hessian behind the standard errors is
    its central difference, as for the model without covariates. Predictions read each
    customer's covariates from the data.

    Parameters
    ----------
    penalizer, n_jobs, max_iter, tol, on_failure, columns
        As for :class:`BetaGeoModel`.

    Attributes
    ----------
    params_ : pandas.Series
        Estimates of ``r``, ``alpha``, ``b``, ``s``, ``beta``.
    covariance_, standard_errors_, log_likelihood_, aic_, bic_, n_observations_, converged_,
    n_iter_, fit_info_
        As for :class:`BetaGeoModel`.

    References
    ----------
    Bemmaor, A. C. & Glady, N. (2012). Modeling Purchasing Behavior with Sudden "Death": A
    Flexible Customer Lifetime Model. *Management Science* 58(5), 1012-1021.
    """

    _model: ClassVar[str] = "ggnbd"
    _takes_covariates: ClassVar[bool] = True
    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "b", "s", "beta")

    @classmethod
    def from_params(cls, **kwargs: Any) -> GammaGompertzNBDModel:  # noqa: D102
        """Build a model with known ``r``, ``alpha``, ``b``, ``s``, ``beta`` (no fitting)."""
        return super().from_params(**kwargs)  # type: ignore[no-any-return]
