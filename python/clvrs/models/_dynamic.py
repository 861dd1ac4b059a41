"""What the models with time-varying covariates share (:class:`~clvrs.ParetoNBDDynamicModel`,
:class:`~clvrs.BetaGeoDynamicModel`): the data check, the covariate design of the panel's
pieces, the fit and the per-customer predictions through the core's ``<model>_fit`` and
``<model>_predict``."""

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

__all__ = ["DynamicCovariateModel"]

#: Names of the summary columns in the core's messages.
_NAMES = ("frequency", "recency", "T", "weights")


class DynamicCovariateModel(CovariateSummary, BaseModel):
    """Base of the models fitted on :class:`~clvrs.DynamicCovariateData` (not an estimator
    itself)."""

    #: The core's name of the model (``<name>_fit`` and ``<name>_predict``); "" for this base.
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
    ) -> Any:
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
        # (A fit without covariates is the base model, with no coefficient table.)
        self.covariates_ = spec if spec.purchase or spec.dropout else None
        try:
            result = self._run_core(
                data,
                observed,
                lambda customers, names, design: getattr(_core, f"{self._model}_fit")(
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
            lambda customers, names, design: getattr(_core, f"{self._model}_predict")(
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
            f"{cls.__name__} is built by fit() or clvrs.load(); for given parameters without "
            f"covariates use {cls._base_name}.from_params",
        )
