"""Pareto/NBD with time-varying covariates (Bachmann, Meierer & Näf 2021)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import _core
from .._base import BaseModel, _bad_parameter, _check_n_jobs
from .._input import as_float_array
from ..dynamic import DynamicCovariateData
from ..exceptions import InvalidDataError
from ._covariates import CovariateSpec, CovariateSummary, check_covariate_penalizer

__all__ = ["ParetoNBDDynamicModel"]

#: Names of the summary columns in the core's messages.
_NAMES = ("frequency", "recency", "T", "weights")


class ParetoNBDDynamicModel(CovariateSummary, BaseModel):
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

    def __init__(
        self,
        penalizer: float = 0.0,
        *,
        n_jobs: int | None = None,
        max_iter: int = 1000,
        tol: float = 1e-8,
        on_failure: str = "warn",
    ) -> None:
        super().__init__(
            penalizer, n_jobs=n_jobs, max_iter=max_iter, tol=tol, on_failure=on_failure
        )

    @staticmethod
    def _check_data(data: Any) -> DynamicCovariateData:
        if not isinstance(data, DynamicCovariateData):
            raise _bad_parameter(
                "data",
                "must be a clvrs.DynamicCovariateData (transactions with their covariate "
                f"panel), got {type(data).__name__}",
            )
        return data

    def _design(
        self, data: DynamicCovariateData, pieces: np.ndarray | None = None
    ) -> tuple[Any, ...]:
        """The covariate matrices of every piece of ``data``, or of ``pieces`` only."""
        spec = self._spec() or CovariateSpec([], [], [], {})
        values = data._values if pieces is None else data._values.iloc[pieces]
        try:
            return spec.design(values.reset_index(drop=True))
        except InvalidDataError as err:
            raise data._panel_row(err, pieces) from None

    def _run_core(
        self, data: DynamicCovariateData, pieces: np.ndarray | None, call: Any, *args: Any
    ) -> Any:
        """Run a core function on ``data`` (every piece, or ``pieces``), restating errors about
        a covariate value for the caller's panel row."""
        design = self._design(data, pieces)
        try:
            return call(data._customers(pieces), _NAMES, design, *args)
        except InvalidDataError as err:
            if err.column in design[4] or err.column in design[5]:
                raise data._panel_row(err, pieces) from None
            raise

    def fit(
        self,
        data: DynamicCovariateData,
        *,
        purchase_covariates: Any = None,
        dropout_covariates: Any = None,
        tied_covariates: Any = None,
        covariate_penalizer: float = 0.0,
    ) -> ParetoNBDDynamicModel:
        """Estimate the parameters and coefficients.

        Parameters
        ----------
        data : DynamicCovariateData
            Transactions with their covariate panel.
        purchase_covariates, dropout_covariates : str or list of str, optional
            Panel columns acting on the purchase and the dropout rate. Numeric and boolean
            columns enter as they are; other columns are one-hot encoded against a reference
            level.
        tied_covariates : str or list of str, optional
            Columns with one coefficient in both processes.
        covariate_penalizer : float, default 0.0
            L2 penalty on the coefficients (mean log-likelihood per customer scale).

        Returns
        -------
        self
        """
        self._check_hyperparameters()
        data = self._check_data(data)
        penalty = covariate_penalizer
        check_covariate_penalizer(penalty)
        # Levels and variation are learned from the observed pieces: a level that first occurs
        # after the end of observation has no estimable effect (predictions then refuse it).
        observed = data._observed()
        try:
            spec = CovariateSpec.learn(
                data._values.iloc[observed].reset_index(drop=True),
                purchase_covariates,
                dropout_covariates,
                tied_covariates,
                reserved=[data.customer_id_col],
            )
        except InvalidDataError as err:
            raise data._panel_row(err, observed) from None
        previous = self.__dict__.get("covariates_")
        # (A fit without covariates is the Pareto/NBD, with no coefficient table.)
        self.covariates_ = spec if spec.purchase or spec.dropout else None
        try:
            result = self._run_core(
                data,
                observed,
                lambda customers, names, design: _core.pnbd_dynamic_fit(
                    customers,
                    names,
                    design,
                    penalizer=float(self.penalizer),
                    covariate_penalizer=float(penalty),
                    max_iter=int(self.max_iter),
                    tol=float(self.tol),
                    n_jobs=self.n_jobs,
                ),
            )
            self._set_fit(result)
        except BaseException:
            # A failed fit leaves the estimator as it was.
            if previous is None:
                self.__dict__.pop("covariates_", None)
            else:
                self.covariates_ = previous
            raise
        self.fit_info_["covariate_penalizer"] = float(penalty)
        return self

    def _predict(self, quantity: str, data: DynamicCovariateData, t: Any) -> pd.Series:
        data = self._check_data(data)
        _check_n_jobs(self.n_jobs)  # handed to the core as it is
        name = "discount_rate" if quantity == "expected_residual_transactions" else "t"
        values = as_float_array(t, name)
        if values.size not in (1, len(data)):
            raise _bad_parameter(
                name, f"must be one value or one per customer ({len(data)}), got {values.size}"
            )
        horizons = np.broadcast_to(values, (len(data),)).copy()
        out = self._run_core(
            data,
            None,
            lambda customers, names, design: _core.pnbd_dynamic_predict(
                quantity,
                self._params_list(),
                customers,
                names,
                design,
                horizons,
                n_jobs=self.n_jobs,
            ),
        )
        return pd.Series(out, index=data.summary.index, name=quantity)

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

    def log_likelihood_per_customer(self, data: DynamicCovariateData) -> pd.Series:
        """Each customer's log-likelihood at the estimates.

        Returns
        -------
        pandas.Series
            Indexed by customer id.
        """
        return self._predict("log_likelihood", data, 0.0)

    @classmethod
    def from_params(cls, **kwargs: Any) -> Any:  # noqa: D102
        """Not available: a model with coefficients needs its covariate encoding; fit it, or
        load a saved one."""
        raise _bad_parameter(
            "from_params",
            "ParetoNBDDynamicModel is built by fit() or clvrs.load(); for given Pareto/NBD "
            "parameters without covariates use ParetoNBDModel.from_params",
        )
