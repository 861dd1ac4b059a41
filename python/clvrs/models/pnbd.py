"""Pareto/NBD: the model of Schmittlein, Morrison & Colombo (1987)."""

from __future__ import annotations

from typing import Any, ClassVar

from ._rfm import LifetimePredictions

__all__ = ["ParetoNBDModel"]


class ParetoNBDModel(LifetimePredictions):
    r"""Pareto/NBD model of repeat purchasing (Schmittlein, Morrison & Colombo 1987).

    While active, a customer buys at Poisson rate :math:`\lambda \sim \mathrm{Gamma}(r, \alpha)`;
    the lifetime is exponential with rate :math:`\mu \sim \mathrm{Gamma}(s, \beta)`, independent
    of :math:`\lambda`. For a customer with :math:`x` repeat purchases, the last at :math:`t_x`,
    observed for :math:`T` (Fader & Hardie, note 009):

    .. math::

        L = \frac{\Gamma(r + x)\,\alpha^r \beta^s}{\Gamma(r)} \left[
            \frac{1}{(\alpha + T)^{r + x} (\beta + T)^s}
            + s \int_{t_x}^{T} \frac{d\tau}{(\alpha + \tau)^{r + x} (\beta + \tau)^{s + 1}}
            \right].

    The integral (the classic closed form is a difference of Gaussian hypergeometric functions
    that cancels when :math:`t_x \approx T` and overflows for large :math:`x`) is computed
    directly: a series of positive terms in the ratio of the two rate scales where it converges
    fast, adaptive Gauss-Kronrod quadrature elsewhere, with the exact gradient carried along
    (dual numbers). The fit is deterministic: every one of a fixed set of starting points is
    tried and the best optimum kept (``fit_info_["termination"]`` reports it), because the
    likelihood is flat in ``beta`` on typical data.

    Predictions: :meth:`expected_purchases` (``(r+x)/(alpha+T)`` times the expected active time,
    continuous through ``s = 1``, where the textbook form divides by ``s - 1``),
    :meth:`probability_alive` (now or ``t`` ahead), :meth:`expected_purchases_new_customer`,
    :meth:`purchase_count_probability` (new customer) and
    :meth:`conditional_purchase_count_probability` (notes 027/028, by quadrature), and
    :meth:`expected_residual_transactions` (DERT, note 015, continuous discounting).

    Covariates
    ----------
    ``fit(data, purchase_covariates=[...], dropout_covariates=[...])`` lets time-invariant
    customer characteristics :math:`z_i` shift each customer's rate scales (Fader & Hardie 2007;
    CLVTools' parameterisation): :math:`\alpha_i = \alpha_0 e^{-z_i^\top \gamma_1}` and
    :math:`\beta_i = \beta_0 e^{-z_i^\top \gamma_2}`, so a positive purchase coefficient
    raises the purchase rate and a positive dropout coefficient raises the dropout rate, by the
    factor :math:`e^{\gamma}` per unit of the covariate. ``r`` and ``s`` are shared.
    Coefficients are named ``purchase:<column>``, ``dropout:<column>`` and ``tied:<column>``
    (one coefficient in both processes, ``tied_covariates``); predictions read each
    customer's covariates from the data.

    Parameters
    ----------
    penalizer, n_jobs, max_iter, tol, on_failure, columns
        As for :class:`BetaGeoModel`.

    Attributes
    ----------
    params_ : pandas.Series
        Estimates of ``r``, ``alpha``, ``s``, ``beta``.
    covariance_, standard_errors_, log_likelihood_, aic_, bic_, n_observations_, converged_,
    n_iter_, fit_info_
        As for :class:`BetaGeoModel`.

    References
    ----------
    Schmittlein, D. C., Morrison, D. G. & Colombo, R. (1987). Counting Your Customers: Who Are
    They and What Will They Do Next? *Management Science* 33(1), 1-24.
    Fader, P. S. & Hardie, B. G. S. (2005). A Note on Deriving the Pareto/NBD Model and Related
    Expressions (note 009); Fader, Hardie & Lee (2005), RFM and CLV: Using Iso-Value Curves for
    Customer Base Analysis, *Journal of Marketing Research* 42(4) (DERT).

    Examples
    --------
    >>> import clvrs
    >>> data = clvrs.datasets.load_cdnow_summary()
    >>> model = clvrs.ParetoNBDModel().fit(data)
    >>> model.params_.round(3).tolist()  # published: 0.553, 10.578, 0.606, 11.669 (flat in beta)
    [0.553, 10.578, 0.606, 11.668]
    """

    _model: ClassVar[str] = "pnbd"
    _takes_covariates: ClassVar[bool] = True
    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")

    @classmethod
    def from_params(cls, **kwargs: Any) -> ParetoNBDModel:  # noqa: D102
        """Build a model with known ``r``, ``alpha``, ``s``, ``beta`` (no fitting)."""
        return super().from_params(**kwargs)  # type: ignore[no-any-return]
