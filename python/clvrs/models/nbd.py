"""NBD: the negative-binomial model of repeat buying (no dropout)."""

from __future__ import annotations

from typing import Any, ClassVar

from ._rfm import LifetimePredictions

__all__ = ["NBDModel"]


class NBDModel(LifetimePredictions):
    r"""NBD model of repeat buying (Ehrenberg 1959): purchases without dropout.

    Every customer buys at a Poisson rate :math:`\lambda \sim \mathrm{Gamma}(r, \alpha)` for
    ever: the baseline the dropout models (BG/NBD, Pareto/NBD, ...) are compared with. For a
    customer with :math:`x` repeat purchases observed for :math:`T` since the first purchase,
    the likelihood of the purchase times is

    .. math::

        L(r, \alpha \mid x, T) = \frac{\Gamma(r + x)\,\alpha^r}{\Gamma(r)(\alpha + T)^{r + x}}

    (``recency`` does not enter, but is validated like every model's). Given the history,
    :math:`\lambda \sim \mathrm{Gamma}(r + x, \alpha + T)`, so the predictions are closed
    forms: :math:`E[X(T, T + t)] = t (r + x) / (\alpha + T)`, negative-binomial purchase-count
    probabilities, P(alive) = 1, and the discounted expected residual transactions
    :math:`(r + x) / ((\alpha + T)\delta)`. The log-likelihood is on the same scale as
    BG/NBD's, so the two compare directly (``compare_models``, ``likelihood_ratio_test``).

    Parameters
    ----------
    penalizer, n_jobs, max_iter, tol, on_failure, columns
        As for :class:`BetaGeoModel`.

    Attributes
    ----------
    params_ : pandas.Series
        Estimates of ``r``, ``alpha``.
    covariance_, standard_errors_, log_likelihood_, aic_, bic_, n_observations_, converged_,
    n_iter_, fit_info_
        As for :class:`BetaGeoModel`.

    References
    ----------
    Ehrenberg, A. S. C. (1959). The Pattern of Consumer Purchases. *Journal of the Royal
    Statistical Society, Series C* 8(1), 26-41.

    Examples
    --------
    >>> import clvrs
    >>> model = clvrs.NBDModel.from_params(r=0.35, alpha=5.8)
    >>> round(model.expected_purchases_new_customer(52), 4)
    3.1379
    """

    _model: ClassVar[str] = "nbd"
    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha")

    @classmethod
    def from_params(cls, **kwargs: Any) -> NBDModel:  # noqa: D102
        """Build a model with known ``r``, ``alpha`` (no fitting)."""
        return super().from_params(**kwargs)  # type: ignore[no-any-return]
