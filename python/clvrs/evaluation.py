"""Model checking and choice: holdout errors, comparison tables and likelihood-ratio tests."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from . import _display
from ._base import BaseModel, _bad_parameter
from .exceptions import InvalidDataError, NotFittedError

__all__ = ["HoldoutEvaluation", "compare_models", "holdout_evaluation", "likelihood_ratio_test"]


#: Shown for the tracking error when the holdout has no purchases (its value is NaN).
_NO_PURCHASES = "n/a: no holdout purchases"


@dataclass
class HoldoutEvaluation:
    """Per-customer and aggregate holdout errors of a model's predictions."""

    #: Per customer: ``actual`` and ``predicted`` holdout purchases, ``error`` (predicted -
    #: actual).
    customers: pd.DataFrame
    #: ``mae``, ``rmse``, ``correlation``, ``bias`` (mean error), ``actual_total``,
    #: ``predicted_total`` and ``tracking_error`` (relative error of the total,
    #: ``predicted_total / actual_total - 1``). ``tracking_error`` is NaN when there are no
    #: actual holdout purchases (a relative error of a zero total is undefined; compare
    #: ``predicted_total`` with 0 instead), and ``correlation`` is NaN when either column is
    #: constant or there is one customer; the displays say "n/a" and why.
    metrics: pd.Series

    def _tracking(self) -> str:
        """The tracking error as displayed, or why there is none."""
        value = float(self.metrics["tracking_error"])
        if math.isnan(value) and float(self.metrics["actual_total"]) == 0:
            return _NO_PURCHASES
        return f"{value:+.1%}"

    def _correlation(self) -> str:
        """The correlation as displayed, or why there is none."""
        value = float(self.metrics["correlation"])
        if not math.isnan(value):
            return f"{value:.4g}"
        customers = self.customers
        if len(customers) < 2:
            return "n/a: one customer"
        if customers["actual"].nunique() < 2:
            return "n/a: every customer has the same actual count"
        return "n/a: every customer has the same prediction"

    def _overview(self) -> list[str]:
        m = self.metrics
        return [
            f"{self.metrics.name or 'model'} on {len(self.customers)} customers' holdout: "
            f"{_display.number(m['actual_total'])} purchases, {m['predicted_total']:.6g} "
            f"predicted (tracking error {self._tracking()})",
            f"mae {m['mae']:.4g}, rmse {m['rmse']:.4g}, correlation {self._correlation()}, "
            f"bias {m['bias']:.4g}; per customer in .customers",
        ]

    def __repr__(self) -> str:
        return "HoldoutEvaluation(" + "\n  ".join(self._overview()) + ")"

    def _repr_html_(self) -> str:
        metrics = self.metrics.to_frame().T
        metrics["actual_total"] = _display.whole(metrics["actual_total"])
        if math.isnan(float(self.metrics["tracking_error"])):
            metrics["tracking_error"] = metrics["tracking_error"].astype(object)
            metrics.loc[:, "tracking_error"] = self._tracking()
        if math.isnan(float(self.metrics["correlation"])):
            metrics["correlation"] = metrics["correlation"].astype(object)
            metrics.loc[:, "correlation"] = self._correlation()
        return _display.html_block(
            "HoldoutEvaluation",
            self._overview(),
            metrics.to_html(float_format=lambda v: f"{v:.6g}", index=False),
        )


def holdout_evaluation(
    model: Any,
    split: pd.DataFrame,
    *,
    frequency: str = "frequency_cal",
    recency: str = "recency_cal",
    T: str = "T_cal",
    holdout: str = "frequency_holdout",
    duration: str = "duration_holdout",
) -> HoldoutEvaluation:
    """Compare a model's expected holdout purchases with the actual ones.

    ``split`` is a calibration/holdout table (:func:`clvrs.calibration_and_holdout`); the model
    should have been fitted on its calibration columns. Each customer's prediction is the
    expected number of purchases over their holdout duration.

    Returns
    -------
    HoldoutEvaluation
        ``customers`` (actual, predicted and error per customer) and ``metrics``. The
        ``tracking_error`` metric, the relative error of the predicted total, is NaN when the
        holdout has no purchases at all (a relative error of 0 is undefined: compare
        ``predicted_total`` with 0); ``correlation`` is NaN when the actual or the predicted
        counts are constant or there is one customer. The repr and the notebook display show
        these as "n/a" with the reason (they showed "+nan%").
    """
    if not callable(getattr(model, "expected_purchases", None)) or not isinstance(model, BaseModel):
        raise _bad_parameter(
            "model",
            f"must be a fitted purchase model (e.g. BetaGeoModel), got {type(model).__name__}",
        )
    from .models._dynamic import DynamicCovariateModel

    if isinstance(model, DynamicCovariateModel):
        raise _bad_parameter(
            "model",
            f"{type(model).__name__} predicts from DynamicCovariateData, not a "
            "calibration/holdout table: compare its expected_purchases over the holdout with "
            "the actual counts",
        )
    if "params_" not in vars(model):
        raise NotFittedError(f"{type(model).__name__} is not fitted: fit it on the calibration")
    from .value import _table_columns

    frame, a = _table_columns(
        split,
        {
            "frequency": frequency,
            "recency": recency,
            "T": T,
            "holdout": holdout,
            "duration": duration,
        },
        non_negative=("holdout", "duration"),
    )
    # The columns go on as arrays, which carry no unit: check the split's recorded unit here.
    from . import _units

    _units.check_same(vars(model).get("time_unit_"), _units.data_unit(split), type(model).__name__)
    horizon = a["duration"]
    if getattr(model, "_spec", lambda: None)() is not None:
        # A model with covariates reads them from the frame, under the model's column names.
        names = model._column_names()
        renamed = frame.rename(
            columns={frequency: names["frequency"], recency: names["recency"], T: names["T"]}
        )
        predicted = model.expected_purchases(renamed, t=horizon)
    else:
        with _naming(frequency=frequency, recency=recency, T=T, periods=T, t=duration):
            if type(model).__name__ == "BetaGeoBetaBinomModel":
                # Discrete opportunities: the holdout duration is a number of them.
                predicted = model.expected_purchases(
                    frequency=a["frequency"], recency=a["recency"], periods=a["T"], m=horizon
                )
            else:
                predicted = model.expected_purchases(
                    frequency=a["frequency"], recency=a["recency"], T=a["T"], t=horizon
                )
    actual = a["holdout"]
    predicted = np.asarray(predicted, dtype=float)
    error = predicted - actual
    customers = pd.DataFrame(
        {"actual": actual, "predicted": predicted, "error": error}, index=frame.index
    )
    total_actual, total_predicted = float(actual.sum()), float(predicted.sum())
    correlation = (
        float(np.corrcoef(actual, predicted)[0, 1])
        if len(actual) > 1 and actual.std() > 0 and predicted.std() > 0
        else float("nan")
    )
    metrics = pd.Series(
        {
            "mae": float(np.abs(error).mean()),
            "rmse": float(np.sqrt((error**2).mean())),
            "correlation": correlation,
            "bias": float(error.mean()),
            "actual_total": total_actual,
            "predicted_total": total_predicted,
            "tracking_error": (total_predicted - total_actual) / total_actual
            if total_actual
            else float("nan"),
        },
        name=type(model).__name__,
    )
    return HoldoutEvaluation(customers, metrics)


@contextlib.contextmanager
def _naming(**names: str) -> Iterator[None]:
    """Call a column by the caller's name in data errors raised under its role, and add the
    index label of the offending row."""
    try:
        yield
    except InvalidDataError as err:
        name = names.get(str(err.column))
        if name is None or name == err.column:
            raise
        renamed = InvalidDataError(str(err).replace(f"`{err.column}`", f"`{name}`", 1))
        renamed.column, renamed.row, renamed.rule = name, err.row, err.rule
        raise renamed from None


def _chi2_sf(x: float, df: int) -> float:
    """P(chi2_df > x) for whole df, exactly (recursion from df = 1 or 2)."""
    if x <= 0:
        return 1.0
    half = x / 2
    if df % 2:
        q, s = math.erfc(math.sqrt(half)), 0.5
    else:
        q, s = math.exp(-half), 1.0
    while s < df / 2:
        q += math.exp(s * math.log(half) - half - math.lgamma(s + 1))
        s += 1
    return min(1.0, q)


#: (restricted, general): number of restrictions, and whether the restriction lies on the
#: boundary of the general model's parameter space (then the p-value halves: the statistic is a
#: 50:50 mixture of 0 and chi-squared).
_NESTED = {
    ("ShiftedBetaGeoModel", "BetaDiscreteWeibullModel"): (1, False),
    ("ParetoNBDModel", "GammaGompertzNBDModel"): (1, True),
}


#: Models with time-varying covariates and the model they reduce to with every coefficient 0.
_COVARIATE_BASE = {
    "ParetoNBDDynamicModel": "ParetoNBDModel",
    "BetaGeoDynamicModel": "BetaGeoModel",
    "ShiftedBetaGeoDynamicModel": "ShiftedBetaGeoModel",
    "BetaDiscreteWeibullDynamicModel": "BetaDiscreteWeibullModel",
}


def likelihood_ratio_test(restricted: BaseModel, general: BaseModel) -> pd.Series:
    """Likelihood-ratio test of a model against a more general one it is nested in.

    Known nestings: sBG in BdW (``c = 1``), Pareto/NBD in GGompertz/NBD (``b -> 0`` with
    ``beta / b`` fixed, a boundary: the p-value is that of the 50:50 mixture of 0 and
    chi-squared), a model in the same model with more covariates (the extra coefficients
    at 0; ``df`` is their number), and Pareto/NBD (BG/NBD) without covariates in
    :class:`ParetoNBDDynamicModel` (:class:`BetaGeoDynamicModel`), fitted to ``data.summary``
    of the same :class:`DynamicCovariateData`, and sBG (BdW) without covariates in
    :class:`ShiftedBetaGeoDynamicModel` (:class:`BetaDiscreteWeibullDynamicModel`), fitted to
    ``clvrs.models.churn_dynamic.subscription_records(data)``. Both models must be fitted to the
    same data.

    Returns
    -------
    pandas.Series
        ``statistic`` (2 x the log-likelihood gain), ``df`` and ``p_value``.
    """
    for name, model in (("restricted", restricted), ("general", general)):
        if not isinstance(model, BaseModel):
            raise _bad_parameter(name, f"must be a fitted clvrs model, got {type(model).__name__}")
        if "params_" not in vars(model):
            raise NotFittedError(f"{name}: {type(model).__name__} is not fitted")
    key = (type(restricted).__name__, type(general).__name__)
    extra = set(general.params_.index) - set(restricted.params_.index)
    # The same model with more covariates; or the model without covariates inside its
    # time-varying covariate model (all coefficients at 0).
    same_model = type(restricted) is type(general) or (
        _COVARIATE_BASE.get(key[1]) == key[0]
        and list(restricted.params_.index) == list(restricted._param_names)
    )
    nested_by_covariates = (
        same_model and set(restricted.params_.index) <= set(general.params_.index) and bool(extra)
    )
    if key not in _NESTED and not nested_by_covariates:
        raise _bad_parameter(
            "general",
            f"{key[0]} is not nested in {key[1]}; known: {[f'{a} in {b}' for a, b in _NESTED]}",
        )
    if restricted.log_likelihood_ is None or general.log_likelihood_ is None:
        raise _bad_parameter("restricted", "both models must be fitted")
    if restricted.n_observations_ != general.n_observations_:
        raise _bad_parameter("general", "the models were fitted to different data")
    df, boundary = (len(extra), False) if nested_by_covariates else _NESTED[key]
    statistic = max(0.0, 2.0 * (general.log_likelihood_ - restricted.log_likelihood_))
    p_value = _chi2_sf(statistic, df) * (0.5 if boundary else 1.0)
    return pd.Series({"statistic": statistic, "df": df, "p_value": p_value})


def _estimated_params(model: Any) -> int:
    """Parameters the model estimated, as its AIC counts them: a regularity model whose k was
    chosen by likelihood counts k too, which ``params_`` does not list."""
    aic, ll = getattr(model, "aic_", None), getattr(model, "log_likelihood_", None)
    if aic is not None and ll is not None and math.isfinite(aic) and math.isfinite(ll):
        return round((aic + 2.0 * ll) / 2.0)
    return len(model.params_)


def compare_models(
    models: Sequence[BaseModel] | Mapping[str, BaseModel],
    split: pd.DataFrame | None = None,
    **holdout_columns: str,
) -> pd.DataFrame:
    """One table across fitted models: parameters, log-likelihood, AIC, BIC and, with a
    calibration/holdout ``split``, holdout errors; likelihood-ratio tests of nested pairs.

    Parameters
    ----------
    models : list or dict of fitted models
        Models fitted to the same calibration data (a dict names the rows).
    split : DataFrame, optional
        A calibration/holdout table for :func:`holdout_evaluation` (``holdout_columns`` rename
        its columns).

    Returns
    -------
    pandas.DataFrame
        One row per model: ``n_params``, ``log_likelihood``, ``aic``, ``bic``, ``converged``,
        the parameters (``param:<name>``), holdout ``mae``, ``rmse``, ``correlation``, ``bias``
        and ``tracking_error``, and for a model that nests an earlier one in the list,
        ``lr_statistic`` and ``lr_p_value`` against it.
    """
    if isinstance(models, (str, bytes)) or not isinstance(models, (Mapping, Sequence)):
        raise _bad_parameter(
            "models", f"must be a list or dict of fitted models, got {type(models).__name__}"
        )
    for model in models.values() if isinstance(models, Mapping) else models:
        if not isinstance(model, BaseModel):
            raise _bad_parameter(
                "models", f"must hold fitted clvrs models, got a {type(model).__name__}"
            )
        if "params_" not in vars(model):
            raise NotFittedError(f"models: {type(model).__name__} is not fitted")
    fitted_to = {
        float(n)
        for m in (models.values() if isinstance(models, Mapping) else models)
        if (n := getattr(m, "n_observations_", None)) is not None
    }
    if len(fitted_to) > 1:
        # Log-likelihoods, AIC and BIC of fits to different data are not comparable.
        raise _bad_parameter(
            "models",
            "were fitted to different data (customers counted: "
            f"{', '.join(f'{n:g}' for n in sorted(fitted_to))}); compare models fitted to the "
            "same calibration data",
        )
    named = (
        dict(models)
        if isinstance(models, Mapping)
        else {
            f"{type(m).__name__}"
            if sum(type(o) is type(m) for o in models) == 1
            else f"{type(m).__name__}[{i}]": m
            for i, m in enumerate(models)
        }
    )
    rows = {}
    for name, model in named.items():
        row: dict[str, Any] = {
            "n_params": _estimated_params(model),
            "log_likelihood": model.log_likelihood_,
            "aic": model.aic_,
            "bic": model.bic_,
            "converged": model.converged_,
        }
        row.update({f"param:{k}": float(v) for k, v in model.params_.items()})
        if split is not None and hasattr(model, "expected_purchases"):
            metrics = holdout_evaluation(model, split, **holdout_columns).metrics
            for key in ("mae", "rmse", "correlation", "bias", "tracking_error"):
                row[key] = metrics[key]
        for other_name, other in named.items():
            if (type(other).__name__, type(model).__name__) in _NESTED:
                test = likelihood_ratio_test(other, model)
                row["lr_vs"] = other_name
                row["lr_statistic"] = test["statistic"]
                row["lr_p_value"] = test["p_value"]
        rows[name] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    return table
