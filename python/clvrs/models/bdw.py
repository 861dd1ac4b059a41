"""BdW: the beta-discrete-Weibull model of Fader, Hardie, Liu, Davin & Steenburgh (2018)."""

from __future__ import annotations

from typing import Any, ClassVar

from ._contractual import ContractualModel

__all__ = ["BetaDiscreteWeibullModel"]


class BetaDiscreteWeibullModel(ContractualModel):
    r"""Beta-discrete-Weibull (BdW) model of subscription retention (Fader et al. 2018).

    The sBG model (:class:`ShiftedBetaGeoModel`) with duration dependence: a subscriber with
    churn propensity :math:`\theta \sim \mathrm{Beta}(\alpha, \beta)` survives :math:`t`
    periods with probability :math:`(1 - \theta)^{t^c}`, so
    :math:`S(t) = B(\alpha, \beta + t^c)/B(\alpha, \beta)`. ``c < 1``: individual churn falls
    with tenure; ``c > 1``: it rises; ``c = 1`` is sBG.

    Parameters
    ----------
    penalizer, max_iter, tol, on_failure, columns
        As for :class:`ShiftedBetaGeoModel`.

    Attributes
    ----------
    params_ : pandas.Series
        Estimates of ``alpha``, ``beta`` and ``c``.

    References
    ----------
    Fader, P. S., Hardie, B. G. S., Liu, Y., Davin, J. & Steenburgh, T. (2018). "How to Project
    Customer Retention" Revisited: The Role of Duration Dependence. *Journal of Interactive
    Marketing* 43, 1-16.
    """

    _model: ClassVar[str] = "bdw"
    _param_names: ClassVar[tuple[str, ...]] = ("alpha", "beta", "c")

    @classmethod
    def from_params(cls, **kwargs: Any) -> BetaDiscreteWeibullModel:  # noqa: D102
        """Build a model with known ``alpha``, ``beta`` and ``c`` (no fitting)."""
        return super().from_params(**kwargs)  # type: ignore[no-any-return]
