"""sBG and BdW with time-varying covariates, per period, on a
:class:`~clvrs.DynamicCovariateData` panel of subscription payments."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from .. import _core
from .._base import BaseModel, _bad_parameter, _check_n_jobs
from .._input import _native, as_float_array
from ..dynamic import DynamicCovariateData, _error, _show
from ..exceptions import InvalidDataError
from ._covariates import CovariateSummary, OneProcessSpec, _names, check_covariate_penalizer
from ._dynamic import DynamicCovariateModel

__all__ = ["BetaDiscreteWeibullDynamicModel", "ShiftedBetaGeoDynamicModel"]


def subscription_records(data: DynamicCovariateData) -> pd.DataFrame:
    """Each customer's subscription record read from a payment log: ``periods`` and
    ``churned``.

    A customer pays once per period from acquisition (its first payment, period 0 of its own
    time) on. One whose last payment falls in the period of ``observation_period_end`` is
    active, having completed ``periods = T`` periods; one whose last payment is in an earlier
    period ``k`` did not renew in the next and churned in period ``k + 1``.

    Raises
    ------
    InvalidParameterError
        ``data`` is not whole periods (``freq_multiplier`` other than 1).
    InvalidDataError
        A customer skipped a period between payments (a lapse and a return is not a
        subscription the models describe), naming the customer.
    """
    if data.freq_multiplier != 1:
        raise _bad_parameter(
            "data",
            "the subscription models count whole periods: build the DynamicCovariateData with "
            f"freq_multiplier=1 (got {data.freq_multiplier:g}) and freq the billing period",
        )
    s = data.summary
    frequency = s["frequency"].to_numpy()
    recency = s["recency"].to_numpy()
    age = s["T"].to_numpy()
    gaps = np.flatnonzero(frequency != recency)
    if gaps.size:
        i = int(gaps[0])
        raise _error(
            data.customer_id_col,
            None,
            "one payment per period",
            f"customer {_show(s.index[i])} paid in {int(frequency[i]) + 1} of the "
            f"{int(recency[i]) + 1} periods from its first payment to its last: the "
            "subscription models read one payment per period, from acquisition until the "
            "customer churns (a skipped period would be a churn and a return)",
        )
    churned = recency < age
    periods = np.where(churned, recency + 1.0, recency)
    return pd.DataFrame({"periods": periods, "churned": churned}, index=s.index)


def _horizon_error(
    err: InvalidDataError, name: str, single: bool, customers: pd.Index
) -> InvalidDataError:
    """The core's error about the horizon ``t`` as the caller gave it: under the caller's
    keyword (``periods=``), without a row when one value was given for every customer and the
    value itself breaks the rule (as the purchase models report it), else naming the
    customer by its id: a horizon past the panel is about that customer's panel."""
    row = err.row
    about_customer = row is not None and "reaches this customer" in str(err.rule)
    message = str(err).replace("column `t`", f"column `{name}`", 1)
    if row is not None and single and not about_customer:
        message = message.replace(f", row {row}", "", 1)
        row = None
    elif row is not None and 0 <= row < len(customers):
        label = customers[row]
        label = label.item() if isinstance(label, np.generic) else label
        message = f"{message} [customer {label!r}]"
    out = InvalidDataError(message)
    out.column, out.row, out.rule = name, row, err.rule
    return out


class _DynamicChurnModel(CovariateSummary, BaseModel):
    r"""Base of the subscription models with time-varying covariates (not used directly).

    A customer with churn propensity :math:`\theta \sim \mathrm{Beta}(\alpha, \beta)` survives
    period :math:`j` of its tenure with probability :math:`(1 - \theta)^{c_j}`,
    :math:`c_j = (j^c - (j - 1)^c)\, e^{g^\top x_j}`, with :math:`x_j` its covariates in that
    period: proportional hazards on the complementary log-log scale. So
    :math:`S(t \mid \theta) = (1 - \theta)^{C(t)}`, :math:`C(t) = \sum_{j \le t} c_j`, and

    .. math::

        S(t) = \frac{B(\alpha, \beta + C(t))}{B(\alpha, \beta)}, \qquad
        P(\text{churn in } t) = S(t - 1) - S(t),

    in closed form.
    """

    _covariate_spec: ClassVar[type[OneProcessSpec]] = OneProcessSpec
    _model: ClassVar[str] = ""
    _param_names: ClassVar[tuple[str, ...]] = ()
    #: The model without covariates, named in messages.
    _base_name: ClassVar[str] = ""

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

    # -- the data -------------------------------------------------------------------------------

    @staticmethod
    def _records(data: Any) -> tuple[DynamicCovariateData, pd.DataFrame]:
        data = DynamicCovariateModel._check_data(data)
        return data, subscription_records(data)

    @staticmethod
    def _owner(data: DynamicCovariateData) -> np.ndarray:
        return np.repeat(np.arange(len(data)), np.diff(data._piece_offsets))

    def _observed(self, data: DynamicCovariateData, records: pd.DataFrame) -> np.ndarray:
        """The pieces a fit reads: those in effect in an observed period (starting before the
        customer's last observed period ends), and each customer's first."""
        owner = self._owner(data)
        periods = records["periods"].to_numpy()[owner]
        used = (data._piece_starts < periods) | (data._piece_starts == 0)
        return np.flatnonzero(used)

    @staticmethod
    def _customers(
        data: DynamicCovariateData, records: pd.DataFrame, pieces: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        offsets, starts = data._piece_offsets, data._piece_starts
        if pieces is not None:
            owner = np.repeat(np.arange(len(data)), np.diff(offsets))[pieces]
            offsets = np.r_[0, np.cumsum(np.bincount(owner, minlength=len(data)))]
            starts = starts[pieces]
        return (
            _native(records["periods"].to_numpy(), np.float64),
            _native(records["churned"].to_numpy(), np.float64),
            _native(offsets, np.int64),
            _native(starts, np.float64),
        )

    def _design(
        self, spec: OneProcessSpec, data: DynamicCovariateData, pieces: np.ndarray | None
    ) -> tuple[np.ndarray, list[str], list[str]]:
        values = data._values if pieces is None else data._values.iloc[pieces]
        try:
            return spec.one_design(values.reset_index(drop=True))
        except InvalidDataError as err:
            raise data._panel_row(err, pieces) from None

    @staticmethod
    def _covered(data: DynamicCovariateData) -> np.ndarray:
        """The last period of each customer's tenure that the panel describes: through the
        period of the panel's latest date (or of the end of observation, if later)."""
        age = data.summary["T"].to_numpy()
        beyond = (
            data._piece_starts - age[np.repeat(np.arange(len(data)), np.diff(data._piece_offsets))]
        )
        ahead = max(0.0, float(beyond.max(initial=0.0)))
        # Period j of the tenure is the time (j - 1, j]: the panel's last period, `ahead`
        # periods after the end of observation, is the customer's period T + ahead + 1.
        return _native(age + ahead + 1.0, np.float64)

    # -- fit --------------------------------------------------------------------------------------

    def fit(
        self,
        data: DynamicCovariateData,
        *,
        churn_covariates: Any = None,
        covariate_penalizer: float = 0.0,
    ) -> Any:
        """Estimate the parameters and coefficients.

        Parameters
        ----------
        data : DynamicCovariateData
            The payment log (one payment per period from acquisition; see
            :func:`~clvrs.models.churn_dynamic.subscription_records`) with its covariate
            panel; built with ``freq`` the billing period and ``freq_multiplier=1``.
        churn_covariates : str or list of str, optional
            Panel columns acting on churn in each period (a positive coefficient: more
            churn). Numeric and boolean columns enter as they are; other columns are one-hot
            encoded against a reference level. Without them the fit is the base model's.
        covariate_penalizer : float, default 0.0
            L2 penalty ``covariate_penalizer * sum(coefficients**2)`` on the coefficients.

        Returns
        -------
        self
        """
        self._check_hyperparameters()
        data, records = self._records(data)
        columns = _names(churn_covariates, "churn_covariates")
        check_covariate_penalizer(covariate_penalizer)
        observed = self._observed(data, records)
        values = data._values.iloc[observed].reset_index(drop=True)
        try:
            spec = OneProcessSpec.learn_one(
                "churn", values, columns, reserved=[data.customer_id_col]
            )
        except InvalidDataError as err:
            raise data._panel_row(err, observed) from None
        if columns:
            matrix, encoded, coefficients = self._design(spec, data, observed)
        else:
            matrix, encoded, coefficients = np.zeros((len(observed), 0)), [], []
        try:
            result = _core.churn_dynamic_fit(
                self._model,
                self._customers(data, records, observed),
                matrix,
                encoded,
                coefficients,
                penalizer=float(self.penalizer),
                covariate_penalizer=float(covariate_penalizer),
                max_iter=int(self.max_iter),
                tol=float(self.tol),
                n_jobs=self.n_jobs,
            )
        except InvalidDataError as err:
            if err.column in encoded:
                raise data._panel_row(err, observed) from None
            raise
        self._set_fit(result)
        self.covariates_ = spec if columns else None
        self.fit_info_["covariate_penalizer"] = float(covariate_penalizer)
        return self

    # -- predictions ------------------------------------------------------------------------------

    def _predict(self, quantity: str, data: Any, t: Any, name: str = "t") -> pd.Series:
        data, records = self._records(data)
        _check_n_jobs(self.n_jobs)
        params = self._params_list()
        spec = self._spec()
        encoded: list[str] = []
        if isinstance(spec, OneProcessSpec):
            matrix, encoded, _ = self._design(spec, data, None)
        else:
            matrix = np.zeros((len(data._piece_starts), 0))
        covered = self._covered(data)
        single = False
        if t is None:
            # Every period the panel describes.
            horizons = np.maximum(covered - records["periods"].to_numpy(), 0.0)
        else:
            values = as_float_array(t, name)
            if values.size not in (1, len(data)):
                raise _bad_parameter(
                    name,
                    f"must be one value or one per customer ({len(data)}), got {values.size}",
                )
            single = values.size == 1
            horizons = np.broadcast_to(values, (len(data),)).copy()
        try:
            out = _core.churn_dynamic_predict(
                self._model,
                quantity,
                params,
                self._customers(data, records, None),
                matrix,
                encoded,
                _native(horizons, np.float64),
                covered,
                n_jobs=self.n_jobs,
            )
        except InvalidDataError as err:
            if err.column in encoded:
                raise data._panel_row(err, None) from None
            if err.column != "t":
                raise
            raise _horizon_error(err, name, single, data.summary.index) from None
        return pd.Series(out, index=data.summary.index, name=quantity)

    def log_likelihood_per_customer(self, data: DynamicCovariateData) -> pd.Series:
        """Each customer's log-likelihood at the estimates.

        Parameters
        ----------
        data : DynamicCovariateData
            The customers.

        Returns
        -------
        pandas.Series
            Indexed by customer id.
        """
        return self._predict("log_likelihood", data, 0.0)

    def survival(self, data: DynamicCovariateData, t: Any) -> pd.Series:
        """P(still active ``t`` periods from now) given each customer's record and covariates.

        ``S(n + t) / S(n)`` for a customer active after ``n`` periods (at its own exposure
        ``C``, which reads the covariates of the coming periods from the panel); 0 for a
        customer who churned.

        Parameters
        ----------
        data : DynamicCovariateData
            The customers (the panel must describe the periods asked about).
        t : int or array-like
            Whole periods ahead (>= 0), one value or one per customer.

        Returns
        -------
        pandas.Series
            Indexed by customer id.

        Raises
        ------
        InvalidDataError
            A horizon past the panel's last date (naming the customer): the model needs the
            covariates of every period it predicts.
        """
        return self._predict("survival", data, t)

    def retention_rate(self, data: DynamicCovariateData, t: Any) -> pd.Series:
        """P(renewing at the end of the ``t``-th period from now | active at its start):
        ``S(n + t) / S(n + t - 1)``; 0 for a customer who churned.

        Parameters
        ----------
        data : DynamicCovariateData
            The customers.
        t : int or array-like
            Whole periods ahead (>= 1), one value or one per customer.

        Returns
        -------
        pandas.Series
            Indexed by customer id.
        """
        return self._predict("retention_rate", data, t)

    def expected_renewals(self, data: DynamicCovariateData, periods: Any = None) -> pd.Series:
        """Expected remaining lifetime within the next ``periods`` periods:
        ``sum_{k=1..periods} S(n + k) / S(n)``, the expected number of those periods the
        customer completes (0 for a customer who churned).

        Parameters
        ----------
        data : DynamicCovariateData
            The customers.
        periods : int or array-like, optional
            Whole periods ahead, one value or one per customer; by default every period the
            panel describes after each customer's last observed one (the expected remaining
            lifetime over the panel's future periods).

        Returns
        -------
        pandas.Series
            Indexed by customer id.
        """
        return self._predict("expected_renewals", data, periods, name="periods")

    @classmethod
    def from_params(cls, **kwargs: Any) -> Any:  # noqa: D102
        """Not available: a model with coefficients needs its covariate encoding; fit it, or
        load a saved one."""
        raise _bad_parameter(
            "from_params",
            f"{cls.__name__} is built by fit() or clvrs.load(); for given parameters without "
            f"covariates use {cls._base_name}.from_params",
        )


class ShiftedBetaGeoDynamicModel(_DynamicChurnModel):
    r"""Shifted-beta-geometric (sBG) model with covariates that change from period to period.

    A subscriber with churn propensity :math:`\theta \sim \mathrm{Beta}(\alpha, \beta)`
    survives period :math:`j` of its tenure with probability
    :math:`(1 - \theta)^{\exp(g^\top x_j)}`, :math:`x_j` its covariates in that period
    (proportional hazards on the complementary log-log scale,
    :math:`\log(-\log P(\text{survive } j \mid \theta)) = \log(-\log(1 - \theta)) + g^\top
    x_j`). With the exposure :math:`C(t) = \sum_{j \le t} e^{g^\top x_j}`,

    .. math::

        S(t) = \frac{B(\alpha, \beta + C(t))}{B(\alpha, \beta)}, \qquad
        P(\text{churn in } t) = S(t - 1) - S(t),

    in closed form with an analytic gradient. With every coefficient at 0 this is
    :class:`ShiftedBetaGeoModel`. (It is not :class:`ShiftedBetaGeoModel` with
    ``churn_covariates`` when covariates never change: that model scales :math:`\alpha`, this
    one the hazard; docs/design.md.)

    The data are a :class:`~clvrs.DynamicCovariateData` of subscription payments, one per
    period from acquisition until the customer churns, built with ``freq`` the billing period
    and ``freq_multiplier=1``; the covariates of period :math:`j` are the panel row in effect
    at its start. A customer whose last payment is in the last observed period is active,
    others churned in the period after their last payment
    (:func:`~clvrs.models.churn_dynamic.subscription_records`). Predictions read the
    covariates of the coming periods from the panel, as far as its latest date; a horizon
    beyond it is refused.

    Parameters
    ----------
    penalizer, n_jobs, max_iter, tol, on_failure
        As for :class:`BetaGeoModel`.

    Attributes
    ----------
    params_ : pandas.Series
        ``alpha``, ``beta`` and the coefficients ``churn:<column>``.
    covariates_ : OneProcessSpec or None
        The covariates and their encoding.
    covariance_, standard_errors_, log_likelihood_, aic_, bic_, n_observations_, converged_,
    n_iter_, fit_info_
        As for :class:`BetaGeoModel`.

    References
    ----------
    Fader, P. S. & Hardie, B. G. S. (2007). How to Project Customer Retention. *Journal of
    Interactive Marketing* 21(1), 76-90.
    Fader, P. S., Hardie, B. G. S., Liu, Y., Davin, J. & Steenburgh, T. (2018). "How to Project
    Customer Retention" Revisited: The Role of Duration Dependence. *Journal of Interactive
    Marketing* 43, 1-16.
    Schweidel, D. A., Fader, P. S. & Bradlow, E. T. (2008). Understanding Service Retention
    Within and Across Cohorts Using Limited Information. *Journal of Marketing* 72(1), 82-94.

    Examples
    --------
    >>> import clvrs
    >>> data = clvrs.DynamicCovariateData(payments, panel, freq="M")  # doctest: +SKIP
    >>> model = clvrs.ShiftedBetaGeoDynamicModel().fit(
    ...     data, churn_covariates=["price_increase"]
    ... )  # doctest: +SKIP
    >>> model.survival(data, t=3)  # doctest: +SKIP
    """

    _model: ClassVar[str] = "sbg"
    _param_names: ClassVar[tuple[str, ...]] = ("alpha", "beta")
    _base_name: ClassVar[str] = "ShiftedBetaGeoModel"


class BetaDiscreteWeibullDynamicModel(_DynamicChurnModel):
    r"""Beta-discrete-Weibull (BdW) model with covariates that change from period to period.

    :class:`ShiftedBetaGeoDynamicModel` with duration dependence: a subscriber with churn
    propensity :math:`\theta \sim \mathrm{Beta}(\alpha, \beta)` survives period :math:`j` with
    probability :math:`(1 - \theta)^{c_j}`, :math:`c_j = (j^c - (j - 1)^c)\, e^{g^\top x_j}`,
    proportional hazards on the complementary log-log scale, the standard way covariates enter
    the discrete Weibull (Fader et al. 2018; Schweidel et al. 2008 for time-varying ones).
    With :math:`C(t) = \sum_{j \le t} c_j`,
    :math:`S(t) = B(\alpha, \beta + C(t)) / B(\alpha, \beta)` and
    :math:`P(\text{churn in } t) = S(t - 1) - S(t)`, in closed form. With every coefficient at
    0 this is :class:`BetaDiscreteWeibullModel`; data, predictions and their limits are as for
    :class:`ShiftedBetaGeoDynamicModel`.

    Parameters
    ----------
    penalizer, n_jobs, max_iter, tol, on_failure
        As for :class:`BetaGeoModel`.

    Attributes
    ----------
    params_ : pandas.Series
        ``alpha``, ``beta``, ``c`` and the coefficients ``churn:<column>``.
    covariates_ : OneProcessSpec or None
        The covariates and their encoding.
    covariance_, standard_errors_, log_likelihood_, aic_, bic_, n_observations_, converged_,
    n_iter_, fit_info_
        As for :class:`BetaGeoModel`.

    References
    ----------
    Fader, P. S., Hardie, B. G. S., Liu, Y., Davin, J. & Steenburgh, T. (2018). "How to Project
    Customer Retention" Revisited: The Role of Duration Dependence. *Journal of Interactive
    Marketing* 43, 1-16.
    Schweidel, D. A., Fader, P. S. & Bradlow, E. T. (2008). Understanding Service Retention
    Within and Across Cohorts Using Limited Information. *Journal of Marketing* 72(1), 82-94.

    Examples
    --------
    >>> import clvrs
    >>> data = clvrs.DynamicCovariateData(payments, panel, freq="M")  # doctest: +SKIP
    >>> model = clvrs.BetaDiscreteWeibullDynamicModel().fit(
    ...     data, churn_covariates=["price_increase"]
    ... )  # doctest: +SKIP
    >>> model.expected_renewals(data)  # doctest: +SKIP
    """

    _model: ClassVar[str] = "bdw"
    _param_names: ClassVar[tuple[str, ...]] = ("alpha", "beta", "c")
    _base_name: ClassVar[str] = "BetaDiscreteWeibullModel"
