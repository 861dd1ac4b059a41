"""MBG/CNBD-k: MBG/NBD with Erlang-k inter-purchase times."""

from __future__ import annotations

from typing import Any, ClassVar

from ._regularity import RegularityModel

__all__ = ["ModifiedBetaGeoCNBDModel"]


class ModifiedBetaGeoCNBDModel(RegularityModel):
    r"""MBG/CNBD-k model of repeat purchasing with regular purchase timing (Reutterer, Platzer
    & Schröder 2021).

    As :class:`BetaGeoCNBDModel`, but the dropout coin is also tossed right after the first
    purchase (as in :class:`ModifiedBetaGeoModel`), so a customer without repeat purchases may
    be gone too; ``k = 1`` is MBG/NBD exactly. The likelihood is BG/CNBD-k's with :math:`x + 1`
    survived coins: :math:`B(a, b + x + 1)` for :math:`B(a, b + x)`, the dropped-out term
    :math:`a / (b + x)` present for every customer.

    Parameters
    ----------
    k, max_k, penalizer, n_jobs, max_iter, tol, on_failure, columns
        As for :class:`BetaGeoCNBDModel`.

    Attributes
    ----------
    params_, k_, regularity_profile_, covariance_, standard_errors_, log_likelihood_, aic_,
    bic_, n_observations_, converged_, n_iter_, fit_info_
        As for :class:`BetaGeoCNBDModel`.

    References
    ----------
    Reutterer, T., Platzer, M. & Schröder, N. (2021). Leveraging purchase regularity for
    predicting customer behavior the easy way. *International Journal of Research in
    Marketing* 38(1), 194-215. doi:10.1016/j.ijresmar.2020.09.002

    Batislam, E. P., Denizel, M. & Filiztekin, A. (2007). Empirical validation and comparison of
    models for customer base analysis. *International Journal of Research in Marketing* 24(3),
    201-209.
    """

    _model: ClassVar[str] = "mbgcnbd"

    @classmethod
    def from_params(cls, **kwargs: Any) -> ModifiedBetaGeoCNBDModel:  # noqa: D102
        """Build a model with known ``r``, ``alpha``, ``a``, ``b`` and ``k`` (no fitting)."""
        return super().from_params(**kwargs)  # type: ignore[no-any-return]
