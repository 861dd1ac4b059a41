"""BG/NBD: the beta-geometric / negative-binomial model."""

from __future__ import annotations

from typing import Any, ClassVar

from ._rfm import RfmModel

__all__ = ["BetaGeoModel"]


class BetaGeoModel(RfmModel):
    r"""BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005).

    While active, a customer buys at Poisson rate :math:`\lambda \sim \mathrm{Gamma}(r, \alpha)`;
    after each repeat purchase they become inactive for good with probability
    :math:`p \sim \mathrm{Beta}(a, b)`. For a customer with :math:`x` repeat purchases, the last at
    :math:`t_x`, observed for :math:`T` since the first purchase, the likelihood is

    .. math::

        L(r, \alpha, a, b \mid x, t_x, T) =
            \frac{B(a, b + x)}{B(a, b)}
            \frac{\Gamma(r + x)\,\alpha^r}{\Gamma(r)(\alpha + T)^{r + x}}
          + \delta_{x > 0} \frac{B(a + 1, b + x - 1)}{B(a, b)}
            \frac{\Gamma(r + x)\,\alpha^r}{\Gamma(r)(\alpha + t_x)^{r + x}}.

    Parameters are estimated by maximum likelihood with analytic gradients (L-BFGS over
    log-parameters); the covariance comes from the Hessian at the optimum via the delta method.

    Predictions avoid the Gaussian hypergeometric closed forms of FHL (2005, eqs. 8-10), which
    divide by ``a - 1`` and have poles when ``a + b + x <= 1``: the expected purchases of an
    active customer are a negative-binomial mixture of truncated geometric sums, all of whose
    terms are positive, so they are finite and accurate for every parameter value. P(alive) is
    eq. 11 in log space; P(X(t) = n) is eq. 8 with the ``1 - sum`` term as a negative-binomial
    upper tail.

    Covariates
    ----------
    ``fit(data, purchase_covariates=[...], dropout_covariates=[...])`` lets time-invariant
    customer characteristics :math:`z_i` shift each customer's parameters (Fader & Hardie 2007;
    CLVTools' parameterisation): :math:`\alpha_i = \alpha_0 e^{-z_i^\top \gamma_1}` (a
    positive purchase coefficient raises the purchase rate) and
    :math:`a_i = a_0 e^{z_i^\top \gamma_2}`, :math:`b_i = b_0 e^{z_i^\top \gamma_2}` (a dropout
    coefficient scales both shapes of the dropout-probability distribution: its mean
    :math:`a/(a+b)` stays, its spread narrows for positive values). ``r`` is shared.
    Coefficients are named ``purchase:<column>``, ``dropout:<column>`` and ``tied:<column>``
    (one coefficient in both processes, ``tied_covariates``); predictions read each
    customer's covariates from the data.

    Parameters
    ----------
    penalizer : float, default 0.0
        L2 penalty ``penalizer * sum(params**2)`` added to the mean negative log-likelihood per
        customer (the same scale as ``lifetimes``). 0 gives plain maximum likelihood.
    n_jobs : int, optional
        Threads for fitting and predicting: ``None`` reads the ``CLVRS_NUM_THREADS`` environment
        variable and defaults to all cores; ``-1`` means all cores; ``1`` runs serially. Results
        are bit-identical for any value.
    max_iter : int, default 1000
        Maximum L-BFGS iterations per starting point.
    tol : float, default 1e-8
        Convergence when the largest gradient component of the mean negative log-likelihood
        (log-parameters) falls below this. A fit whose line search can make no further progress
        in floating point also counts as converged when that component is below 1e-5;
        ``fit_info_["termination"]`` says which rule stopped it.
    on_failure : {"warn", "raise", "ignore"}, default "warn"
        What to do when the fit does not converge: warn with
        :class:`~clvrs.exceptions.ConvergenceWarning`, raise
        :class:`~clvrs.exceptions.ConvergenceError`, or stay silent (``converged_`` tells).
    columns : dict, optional
        Column names for the data roles ``frequency``, ``recency``, ``T`` and ``weights``, when
        they differ from these defaults (``weights`` is read only when named here).

    Attributes
    ----------
    params_ : pandas.Series
        Estimates of ``r``, ``alpha``, ``a``, ``b``.
    covariance_ : pandas.DataFrame or None
        Covariance matrix of the estimates (None if the Hessian is singular).
    standard_errors_ : pandas.Series or None
        Standard errors.
    log_likelihood_ : float
        Log-likelihood at the estimates (weighted sum over customers, no penalty).
    aic_, bic_ : float
        Information criteria.
    n_observations_ : float
        Number of customers (sum of weights).
    converged_ : bool
        Whether the optimiser met its tolerance.
    n_iter_ : int
        L-BFGS iterations.
    fit_info_ : dict
        Termination reason, final gradient norm, evaluations, starts, Hessian condition number
        and the number of distinct rows after compression.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. & Lee, K. L. (2005). "Counting Your Customers" the Easy Way:
    An Alternative to the Pareto/NBD Model. *Marketing Science* 24(2), 275-284.

    Examples
    --------
    >>> import clvrs
    >>> data = clvrs.datasets.load_cdnow_summary()
    >>> model = clvrs.BetaGeoModel().fit(data)
    >>> model.params_.round(3).tolist()
    [0.243, 4.414, 0.793, 2.426]
    """

    _model: ClassVar[str] = "bgnbd"
    _takes_covariates: ClassVar[bool] = True
    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")

    @classmethod
    def from_params(cls, **kwargs: Any) -> BetaGeoModel:  # noqa: D102 - documented on the base
        """Build a model with known ``r``, ``alpha``, ``a``, ``b`` (no fitting).

        Other keywords are hyperparameters. The model predicts like a fitted one but has no
        covariance or log-likelihood.

        Examples
        --------
        >>> m = BetaGeoModel.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426)
        >>> round(float(m.purchase_count_probability(0, 39)), 7)
        0.5737864
        """
        return super().from_params(**kwargs)  # type: ignore[no-any-return]
