"""sBG: the shifted-beta-geometric model of Fader & Hardie (2007)."""

from __future__ import annotations

from typing import Any, ClassVar

from ._contractual import ContractualModel

__all__ = ["ShiftedBetaGeoModel"]


class ShiftedBetaGeoModel(ContractualModel):
    r"""Shifted-beta-geometric (sBG) model of subscription retention (Fader & Hardie 2007).

    Each subscriber churns at the end of each period with a constant probability
    :math:`\theta \sim \mathrm{Beta}(\alpha, \beta)`, so a cohort's survival is
    :math:`S(t) = B(\alpha, \beta + t)/B(\alpha, \beta)` and its retention rate
    :math:`(\beta + t - 1)/(\alpha + \beta + t - 1)` rises over time (heterogeneity, not
    loyalty). Fitted from a cohort's survivor counts or from per-customer records (with
    right-censoring of active customers).

    Parameters
    ----------
    penalizer, max_iter, tol, on_failure
        As for :class:`BetaGeoModel`.
    columns : dict, optional
        Column names for the roles ``periods``, ``churned`` and ``weights``.

    Attributes
    ----------
    params_ : pandas.Series
        Estimates of ``alpha`` and ``beta``.

    References
    ----------
    Fader, P. S. & Hardie, B. G. S. (2007). How to Project Customer Retention. *Journal of
    Interactive Marketing* 21(1), 76-90.
    Fader, P. S. & Hardie, B. G. S. (2010). Customer-Base Valuation in a Contractual Setting:
    The Perils of Ignoring Heterogeneity. *Marketing Science* 29(1), 85-93.

    Examples
    --------
    >>> import clvrs
    >>> regular = [1000, 631, 468, 382, 326, 289, 262, 241]
    >>> model = clvrs.ShiftedBetaGeoModel().fit(survivors=regular)
    >>> model.params_.round(3).tolist(), round(model.log_likelihood_, 2)
    ([0.704, 1.182], -1680.27)
    """

    _model: ClassVar[str] = "sbg"
    _param_names: ClassVar[tuple[str, ...]] = ("alpha", "beta")

    @classmethod
    def from_params(cls, **kwargs: Any) -> ShiftedBetaGeoModel:  # noqa: D102
        """Build a model with known ``alpha`` and ``beta`` (no fitting)."""
        return super().from_params(**kwargs)  # type: ignore[no-any-return]
