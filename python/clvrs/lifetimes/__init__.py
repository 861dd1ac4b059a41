"""A drop-in path for ``lifetimes`` users: the names and signatures of lifetimes' fitters,
backed by clvrs' models. Change ``from lifetimes import BetaGeoFitter`` to
``from clvrs.lifetimes import BetaGeoFitter``; the numbers are the same where lifetimes is
numerically sound.

Intended differences: covariances (``variance_matrix_``) are correct off the diagonal; no NaN
or overflow where lifetimes returns them (Pareto/NBD with many purchases or ``s`` near 1,
BG/NBD with ``a + b < 1``, BG/BB over long histories); Pareto/NBD is fitted by a deterministic
gradient method (lifetimes: Nelder-Mead from random starts); models are saved as JSON, not
dill pickles; the holdout mean spend of ``calibration_and_holdout_data`` is the mean of
per-period sums (lifetimes averages raw rows).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import _base
from ..models import (
    BetaGeoBetaBinomModel,
    BetaGeoModel,
    GammaGammaModel,
    ModifiedBetaGeoModel,
    ParetoNBDModel,
)
from ..value import customer_lifetime_value
from . import datasets, plotting, utils

__all__ = [
    "BetaGeoBetaBinomFitter",
    "BetaGeoFitter",
    "GammaGammaFitter",
    "ModifiedBetaGeoFitter",
    "ParetoNBDFitter",
    "datasets",
    "plotting",
    "utils",
]


class _Fitter:
    """lifetimes' fitter interface over a clvrs model."""

    _model_class: Any = None
    #: lifetimes' names of the parameters, in clvrs' order.
    _names: tuple[str, ...] = ()

    def __init__(self, penalizer_coef: float = 0.0) -> None:
        self.penalizer_coef = penalizer_coef
        self._model: Any = None

    def __repr__(self) -> str:
        if self._model is None:
            return f"<clvrs.lifetimes.{type(self).__name__}>"
        params = ", ".join(f"{k}: {v:.2f}" for k, v in self.params_.items())
        return (
            f"<clvrs.lifetimes.{type(self).__name__}: fitted with "
            f"{self._model.n_observations_:.0f} subjects, {params}>"
        )

    @property
    def params_(self) -> pd.Series:
        series = self._model.params_.copy()
        series.index = list(self._names)
        return series

    @params_.setter
    def params_(self, values: Any) -> None:
        # lifetimes code sometimes assigns fitted parameters directly.
        given = pd.Series(values, dtype=float)
        names = self._model_class._param_names
        self._model = self._model_class.from_params(
            **{clvrs_name: float(given[name]) for clvrs_name, name in zip(names, self._names)}
        )

    @property
    def summary(self) -> pd.DataFrame:
        s = self._model.summary_frame(0.95)
        out = pd.DataFrame(
            {
                "coef": s["coef"].to_numpy(),
                "se(coef)": s["se"].to_numpy(),
                "lower 95% bound": s["lower"].to_numpy(),
                "upper 95% bound": s["upper"].to_numpy(),
            },
            index=list(self._names),
        )
        return out

    @property
    def variance_matrix_(self) -> pd.DataFrame:
        cov = self._model.covariance_
        return pd.DataFrame(cov.to_numpy(), index=self._names, columns=self._names)

    @property
    def standard_errors_(self) -> pd.Series:
        se = self._model.standard_errors_.copy()
        se.index = list(self._names)
        return se

    def _fit(self, **arrays: Any) -> Any:
        model = self._model_class(penalizer=self.penalizer_coef, on_failure="warn")
        model.fit(**{k: v for k, v in arrays.items() if v is not None})
        self._model = model
        return self

    def save_model(self, path: str, save_data: bool = True, save_generate_data_method: bool = True,
                   values_to_save: Any = None) -> None:  # fmt: skip
        """Save as a clvrs JSON model document (lifetimes used dill)."""
        self._model.save(path)

    def load_model(self, path: str) -> None:
        """Load a model saved by :meth:`save_model` (or ``clvrs`` ``save``)."""
        self._model = _base.load(path)


class _RfmFitter(_Fitter):
    def fit(self, frequency: Any, recency: Any, T: Any, weights: Any = None,
            initial_params: Any = None, verbose: bool = False, tol: float = 1e-7,
            index: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        """Fit to (frequency, recency, T) arrays (lifetimes' signature); the data is kept in
        ``data`` as lifetimes does (its plots read it)."""
        self.data = pd.DataFrame(
            {
                "frequency": np.asarray(frequency, dtype=float),
                "recency": np.asarray(recency, dtype=float),
                "T": np.asarray(T, dtype=float),
            },
            index=index,
        )
        return self._fit(frequency=frequency, recency=recency, T=T, weights=weights)

    def conditional_expected_number_of_purchases_up_to_time(
        self, t: Any, frequency: Any, recency: Any, T: Any
    ) -> Any:
        return self._model.expected_purchases(t=t, frequency=frequency, recency=recency, T=T)

    predict = conditional_expected_number_of_purchases_up_to_time

    def conditional_probability_alive(self, frequency: Any, recency: Any, T: Any) -> Any:
        return self._model.probability_alive(frequency=frequency, recency=recency, T=T)

    def expected_number_of_purchases_up_to_time(self, t: Any) -> Any:
        return self._model.expected_purchases_new_customer(t)

    def probability_of_n_purchases_up_to_time(self, t: Any, n: Any) -> Any:
        return self._model.purchase_count_probability(n, t)


class BetaGeoFitter(_RfmFitter):
    """lifetimes' ``BetaGeoFitter`` over :class:`clvrs.BetaGeoModel`."""

    _model_class = BetaGeoModel
    _names = ("r", "alpha", "a", "b")


class ModifiedBetaGeoFitter(_RfmFitter):
    """lifetimes' ``ModifiedBetaGeoFitter`` over :class:`clvrs.ModifiedBetaGeoModel`."""

    _model_class = ModifiedBetaGeoModel
    _names = ("r", "alpha", "a", "b")


class ParetoNBDFitter(_RfmFitter):
    """lifetimes' ``ParetoNBDFitter`` over :class:`clvrs.ParetoNBDModel`."""

    _model_class = ParetoNBDModel
    _names = ("r", "alpha", "s", "beta")

    def conditional_probability_of_n_purchases_up_to_time(
        self, n: Any, t: Any, frequency: Any, recency: Any, T: Any
    ) -> Any:
        return self._model.conditional_purchase_count_probability(
            n=n, t=t, frequency=frequency, recency=recency, T=T
        )


class BetaGeoBetaBinomFitter(_Fitter):
    """lifetimes' ``BetaGeoBetaBinomFitter`` over :class:`clvrs.BetaGeoBetaBinomModel`."""

    _model_class = BetaGeoBetaBinomModel
    _names = ("alpha", "beta", "gamma", "delta")

    def fit(self, frequency: Any, recency: Any, n_periods: Any, weights: Any = None,
            initial_params: Any = None, verbose: bool = False, tol: float = 1e-7,
            index: Any = None, **kwargs: Any) -> Any:  # fmt: skip
        """Fit to (frequency, recency, n_periods[, weights]) (lifetimes' signature)."""
        return self._fit(frequency=frequency, recency=recency, periods=n_periods, weights=weights)

    def conditional_expected_number_of_purchases_up_to_time(
        self, m_periods_in_future: Any, frequency: Any, recency: Any, n_periods: Any
    ) -> Any:
        return self._model.expected_purchases(
            m=m_periods_in_future, frequency=frequency, recency=recency, periods=n_periods
        )

    def conditional_probability_alive(
        self, m_periods_in_future: Any, frequency: Any, recency: Any, n_periods: Any
    ) -> Any:
        return self._model.probability_alive(
            m=m_periods_in_future, frequency=frequency, recency=recency, periods=n_periods
        )

    def expected_number_of_transactions_in_first_n_periods(self, n: int) -> pd.DataFrame:
        """P(X(n) = x) for x = 0..n, as lifetimes' DataFrame of 'probabilities'."""
        x = np.arange(n + 1)
        probs = self._model.purchase_count_probability(x, n)
        return pd.DataFrame({"probabilities": probs}, index=pd.Index(x, name="frequency"))


class GammaGammaFitter(_Fitter):
    """lifetimes' ``GammaGammaFitter`` over :class:`clvrs.GammaGammaModel`."""

    _model_class = GammaGammaModel
    _names = ("p", "q", "v")

    def fit(self, frequency: Any, monetary_value: Any, weights: Any = None,
            initial_params: Any = None, verbose: bool = False, tol: float = 1e-7,
            index: Any = None, q_constraint: bool = False, **kwargs: Any) -> Any:  # fmt: skip
        """Fit to the repeat buyers' (frequency, monetary_value) (lifetimes' signature; rows
        with frequency 0 are left out and counted instead of raising)."""
        return self._fit(frequency=frequency, monetary_value=monetary_value, weights=weights)

    def conditional_expected_average_profit(
        self, frequency: Any = None, monetary_value: Any = None
    ) -> Any:
        if frequency is None:
            return self._model.population_mean_spend()
        return self._model.expected_average_spend(
            frequency=frequency, monetary_value=monetary_value
        )

    def customer_lifetime_value(self, transaction_prediction_model: Any, frequency: Any,
                                recency: Any, T: Any, monetary_value: Any, time: int = 12,
                                discount_rate: float = 0.01, freq: str = "D") -> Any:  # fmt: skip
        """lifetimes' discrete CLV (monthly steps, ``freq`` the data's unit)."""
        model = getattr(transaction_prediction_model, "_model", transaction_prediction_model)
        return customer_lifetime_value(
            model, self._model, time=time, discount_rate=discount_rate, time_unit=freq,
            frequency=frequency, recency=recency, T=T, monetary_value=monetary_value,
        )  # fmt: skip
