"""MBG/NBD: the modified beta-geometric / negative-binomial model."""

from __future__ import annotations

from typing import Any, ClassVar

from ._rfm import RfmModel

__all__ = ["ModifiedBetaGeoModel"]


class ModifiedBetaGeoModel(RfmModel):
    r"""MBG/NBD model of repeat purchasing (Batislam, Denizel & Filiztekin 2007).

    As BG/NBD (:class:`BetaGeoModel`), but the dropout coin :math:`p \sim \mathrm{Beta}(a, b)`
    is also tossed right after the first purchase, so a customer without repeat purchases may
    be gone too. The likelihood of a customer with :math:`x` repeat purchases, the last at
    :math:`t_x`, observed for :math:`T`, is

    .. math::

        L = \frac{B(a, b + x + 1)}{B(a, b)}
            \frac{\Gamma(r + x)\,\alpha^r}{\Gamma(r)(\alpha + T)^{r + x}}
          + \frac{B(a + 1, b + x)}{B(a, b)}
            \frac{\Gamma(r + x)\,\alpha^r}{\Gamma(r)(\alpha + t_x)^{r + x}}.

    Every BG/NBD formula depends on the dropout process only through the number of coins an
    active customer has survived (:math:`x` there, :math:`x + 1` here), so fitting (analytic
    gradient and Hessian) and every prediction share BG/NBD's exact, pole-free code.

    Covariates
    ----------
    As for :class:`~clvrs.BetaGeoModel`: ``purchase_covariates`` act on
    :math:`\alpha_i = \alpha_0 e^{-z_i^\top \gamma_1}`, ``dropout_covariates`` on
    :math:`a_i = a_0 e^{z_i^\top \gamma_2}` and :math:`b_i = b_0 e^{z_i^\top \gamma_2}`.

    Parameters
    ----------
    penalizer, n_jobs, max_iter, tol, on_failure, columns
        As for :class:`BetaGeoModel`.

    Attributes
    ----------
    params_ : pandas.Series
        Estimates of ``r``, ``alpha``, ``a``, ``b``.
    covariance_, standard_errors_, log_likelihood_, aic_, bic_, n_observations_, converged_,
    n_iter_, fit_info_
        As for :class:`BetaGeoModel`.

    References
    ----------
    Batislam, E. P., Denizel, M. & Filiztekin, A. (2007). Empirical validation and comparison of
    models for customer base analysis. *International Journal of Research in Marketing* 24(3),
    201-209.

    Examples
    --------
    >>> import clvrs
    >>> data = clvrs.datasets.load_cdnow_summary()
    >>> model = clvrs.ModifiedBetaGeoModel().fit(data)
    >>> model.params_.round(3).tolist()
    [0.525, 6.183, 0.891, 1.614]
    """

    _model: ClassVar[str] = "mbgnbd"
    _takes_covariates: ClassVar[bool] = True
    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")

    @classmethod
    def from_params(cls, **kwargs: Any) -> ModifiedBetaGeoModel:  # noqa: D102
        """Build a model with known ``r``, ``alpha``, ``a``, ``b`` (no fitting)."""
        return super().from_params(**kwargs)  # type: ignore[no-any-return]
