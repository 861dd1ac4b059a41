"""BG/NBD with time-varying covariates in the purchase process."""

from __future__ import annotations

from typing import Any, ClassVar

import pandas as pd

from ..dynamic import DynamicCovariateData
from ._dynamic import DynamicCovariateModel

__all__ = ["BetaGeoDynamicModel"]


class BetaGeoDynamicModel(DynamicCovariateModel):
    r"""BG/NBD with time-varying purchase covariates, on the panel of
    :class:`ParetoNBDDynamicModel`.

    Covariates that change over time (promotions, seasons, prices) shift each customer's
    purchase rate while they hold: a customer alive at time :math:`t` buys at rate
    :math:`\lambda\, e^{\gamma_1^\top x(t)}` and, after each repeat purchase, drops out with
    probability :math:`p`, with :math:`\lambda \sim \mathrm{Gamma}(r, \alpha)` and
    :math:`p \sim \mathrm{Beta}(a_i, b_i)`, :math:`a_i = a\, e^{\gamma_2^\top z_i}`,
    :math:`b_i = b\, e^{\gamma_2^\top z_i}` as in :class:`BetaGeoModel` with covariates.
    Dropout covariates :math:`z_i` must be constant per customer (a panel whose dropout column
    changes within a customer is refused): :math:`p` is drawn once per customer, so a beta
    distribution that changed from purchase to purchase would not define it (docs/design.md).

    Dropout happens only at purchases, so this is the BG/NBD on the customer's own clock
    :math:`A(t) = \int_0^t e^{\gamma_1^\top x(u)}\, du`: with repeat purchases at
    :math:`t_1, \dots, t_x \le T`,

    .. math::

        L = e^{\gamma_1^\top \sum_j x(t_j)}\;
            L_{\mathrm{BG/NBD}}\bigl(r, \alpha, a_i, b_i;\; x, A(t_x), A(T)\bigr),

    in closed form, with an analytic gradient. With covariates that never change this is
    :class:`BetaGeoModel` with (time-invariant) covariates, and with every coefficient at 0
    the BG/NBD. The fit starts from the BG/NBD fitted without covariates.

    Predictions read the covariates from the data, including pieces after the end of
    observation (the panel's last row holds indefinitely): :meth:`expected_purchases` in
    :math:`(T, T + t]` (the BG/NBD's at horizon :math:`A(T + t) - A(T)`),
    :meth:`probability_alive` now or ``t`` ahead and :meth:`log_likelihood_per_customer`.

    Parameters
    ----------
    penalizer, n_jobs, max_iter, tol, on_failure
        As for :class:`BetaGeoModel`.

    Attributes
    ----------
    params_ : pandas.Series
        ``r``, ``alpha``, ``a``, ``b`` and the coefficients (``purchase:<column>``,
        ``dropout:<column>``, ``tied:<column>``).
    covariates_ : CovariateSpec
        The covariates and their encoding (categorical columns one-hot against a reference
        level, named in ``summary["reference"]``).
    covariance_, standard_errors_, log_likelihood_, aic_, bic_, n_observations_, converged_,
    n_iter_, fit_info_
        As for :class:`BetaGeoModel`.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting Your Customers" the Easy
    Way: An Alternative to the Pareto/NBD Model. *Marketing Science* 24(2), 275-284.

    Examples
    --------
    >>> import clvrs
    >>> data = clvrs.DynamicCovariateData(log, panel, freq="W")  # doctest: +SKIP
    >>> model = clvrs.BetaGeoDynamicModel().fit(
    ...     data, purchase_covariates=["promo"], dropout_covariates=["channel"]
    ... )  # doctest: +SKIP
    >>> model.expected_purchases(holdout_data, t=13)  # doctest: +SKIP
    """

    _model: ClassVar[str] = "bgnbd_dynamic"
    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")
    _base_name: ClassVar[str] = "BetaGeoModel"

    def expected_purchases(self, data: DynamicCovariateData, t: Any) -> pd.Series:
        """Expected purchases in ``(T, T + t]`` given each customer's history and covariates.

        ``P(alive at T)`` times the BG/NBD's expectation for an active customer (posterior
        ``lambda ~ Gamma(r + x, alpha + A(T))``, ``p ~ Beta(a_i, b_i + x)``) over the
        operational time ``A(T + t) - A(T)`` ahead.

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

        P(alive at ``T``) times the chance of surviving the purchases of the coming ``t``:
        ``E[(1 - p)^N]`` with ``N`` the purchases over the operational time ``A(T + t) - A(T)``
        (negative binomial under the posterior of ``lambda``), ``p ~ Beta(a_i, b_i + x)``.

        Parameters
        ----------
        data : DynamicCovariateData
            The customers.
        t : float or array-like, default 0.0
            Horizon, one value or one per customer.

        Returns
        -------
        pandas.Series
            Indexed by customer id.
        """
        return self._predict("probability_alive", data, t)
