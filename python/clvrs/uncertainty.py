"""Uncertainty of estimates and predictions: delta-method intervals from the parameter
covariance, and the bootstrap (nonparametric or parametric), refitted in parallel."""

from __future__ import annotations

import concurrent.futures
import inspect
import math
import numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from . import _core, _display
from ._base import BaseModel, _bad_parameter, _check_level, _check_n_jobs, _check_seed
from ._input import _is_polars_frame, _native
from .exceptions import ConvergenceError, InvalidDataError, NotFittedError

__all__ = ["BootstrapResult", "bootstrap", "delta_interval", "prediction_interval"]

#: Relative step of the central differences in log-parameters.
_STEP = 1e-5


def _z(level: float) -> float:
    return NormalDist().inv_cdf(0.5 + _check_level(level) / 2)


def _log_covariance(model: BaseModel) -> np.ndarray:
    """Covariance of the log-parameters (delta method from the natural scale); covariate
    coefficients stay on their own scale."""
    cov = getattr(model, "covariance_", None)
    if cov is None:
        raise NotFittedError(
            f"{type(model).__name__} has no parameter covariance (not fitted, built with "
            "from_params, or a singular Hessian): no delta-method interval; try bootstrap()"
        )
    theta = np.where(model._log_scale(), model.params_.to_numpy(), 1.0)
    return np.asarray(cov, dtype=float) / np.outer(theta, theta)


def _values(out: Any) -> np.ndarray:
    # A prediction for single numbers is a number: one row (customer) of the table.
    try:
        values = np.atleast_1d(
            np.asarray(out.to_numpy() if hasattr(out, "to_numpy") else out, dtype=float)
        )
    except (TypeError, ValueError):
        values = np.empty((0, 0))
    if values.ndim != 1 or isinstance(out, (str, bytes)):
        raise _bad_parameter(
            "predict", f"must return numbers, one per customer, got {type(out).__name__}"
        )
    return values


def delta_interval(
    predict: Callable[..., Any],
    models: Sequence[BaseModel],
    *,
    level: float = 0.95,
    scale: str = "log",
) -> pd.DataFrame:
    """Delta-method standard errors and intervals of any prediction of fitted models.

    ``predict(*models)`` returns one value per customer. Its gradient in each model's
    log-parameters (and covariate coefficients, as they are) is taken by central differences
    (2 evaluations per parameter); with the
    models' covariances (independent fits: block-diagonal) it gives
    :math:`\\mathrm{se} = \\sqrt{g^\\top \\Sigma g}`. Intervals are Wald intervals on the
    ``scale`` where the prediction is unbounded: ``"log"`` for positive quantities, ``"logit"``
    for probabilities, ``"identity"`` otherwise.

    Returns
    -------
    pandas.DataFrame
        ``estimate``, ``se``, ``lower``, ``upper`` per customer (the index of the prediction
        when it is a Series).
    """
    z = _z(level)
    if not (isinstance(scale, str) and scale in ("log", "logit", "identity")):
        raise _bad_parameter("scale", f"must be 'log', 'logit' or 'identity', got {scale!r}")
    if not callable(predict):
        raise _bad_parameter("predict", f"must be a function of the models, got {predict!r}")
    if isinstance(models, BaseModel) or not isinstance(models, Sequence):
        raise _bad_parameter("models", f"must be a list of fitted models, got {models!r}")
    if len(models) == 0:
        raise _bad_parameter("models", "must hold at least one fitted model")
    for model in models:
        if not isinstance(model, BaseModel):
            raise _bad_parameter("models", f"must hold clvrs models, got {model!r}")
        _log_covariance(model)  # a model without a covariance fails before any prediction
    base = predict(*models)
    estimate = _values(base)
    variance = np.zeros_like(estimate)
    for m, model in enumerate(models):
        cov = _log_covariance(model)
        log_scale = model._log_scale()
        grads = []
        for j in range(len(model.params_)):
            shifted = []
            for sign in (1.0, -1.0):
                params = model.params_.copy()
                if log_scale[j]:
                    params.iloc[j] = params.iloc[j] * math.exp(sign * _STEP)
                else:
                    params.iloc[j] = params.iloc[j] + sign * _STEP
                clone = model._with_params(params)
                args = list(models)
                args[m] = clone
                shifted.append(_values(predict(*args)))
            grads.append((shifted[0] - shifted[1]) / (2 * _STEP))
        g = np.vstack(grads)  # parameters x customers
        variance += np.einsum("ic,ij,jc->c", g, cov, g)
    se = np.sqrt(np.maximum(variance, 0.0))
    if scale == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            spread = np.exp(z * se / estimate)
        lower, upper = estimate / spread, estimate * spread
    elif scale == "logit":
        with np.errstate(divide="ignore", invalid="ignore"):
            logit = np.log(estimate / (1 - estimate))
            half = z * se / (estimate * (1 - estimate))
            lower = 1 / (1 + np.exp(-(logit - half)))
            upper = 1 / (1 + np.exp(-(logit + half)))
        # P = 0 or 1 exactly: the interval collapses to the point.
        lower = np.where(np.isfinite(lower), lower, estimate)
        upper = np.where(np.isfinite(upper), upper, estimate)
    elif scale == "identity":
        lower, upper = estimate - z * se, estimate + z * se
    else:
        raise _bad_parameter("scale", f"must be 'log', 'logit' or 'identity', got {scale!r}")
    index = base.index if isinstance(base, pd.Series) else None
    return pd.DataFrame(
        {"estimate": estimate, "se": se, "lower": lower, "upper": upper}, index=index
    )


def prediction_interval(
    model: BaseModel, method: str, data: Any = None, *, level: float = 0.95, **kwargs: Any
) -> pd.DataFrame:
    """Interval of one of ``model``'s per-customer predictions: delta method, or credible
    interval after a Bayesian fit.

    ``method`` names the prediction (``"expected_purchases"``, ``"probability_alive"``,
    ``"expected_average_spend"``, ...); ``kwargs`` are its arguments. For a maximum-likelihood
    (or MAP) fit the interval is a delta-method Wald interval: probabilities on the logit
    scale, other predictions on the log scale. After ``fit(..., method="nuts")`` the columns
    are the posterior mean of the prediction (``estimate``), its posterior sd (``se``) and
    the equal-tailed ``level`` credible interval, streamed over the draws in the core with
    memory independent of their number; each interval end is within (largest - smallest
    value of the prediction over the draws) / 512 of the exact quantile of the draws.

    Examples
    --------
    >>> import clvrs
    >>> data = clvrs.datasets.load_cdnow_summary()
    >>> model = clvrs.BetaGeoModel().fit(data)
    >>> band = clvrs.prediction_interval(model, "expected_purchases", data, t=52, level=0.9)
    >>> list(band.columns)
    ['estimate', 'se', 'lower', 'upper']
    """
    if not isinstance(model, BaseModel):
        raise _bad_parameter("model", f"must be a fitted clvrs model, got {type(model).__name__}")
    if not (isinstance(method, str) and not method.startswith("_") and hasattr(model, method)):
        raise _bad_parameter("method", f"{type(model).__name__} has no prediction {method!r}")
    if not callable(getattr(model, method)):
        raise _bad_parameter("method", f"{type(model).__name__}.{method} is not a prediction")
    _check_level(level)
    accepted = inspect.signature(getattr(model, method)).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        for key in kwargs:
            if key not in accepted or key == "data":
                raise _bad_parameter(
                    key,
                    f"{type(model).__name__}.{method} takes no argument {key!r}; it takes "
                    f"{[name for name in accepted if name != 'data']}",
                )
    scale = "logit" if "probability" in method else "log"

    def predict(m: BaseModel) -> Any:
        return getattr(m, method)(data, **kwargs)

    if model._is_bayesian():
        return _credible_interval(model, method, predict, level)
    return delta_interval(predict, [model], level=level, scale=scale)


def _credible_interval(
    model: BaseModel, method: str, predict: Callable[[BaseModel], Any], level: float
) -> pd.DataFrame:
    """The posterior mean, sd and equal-tailed credible interval of a prediction of a Bayesian
    fit, streamed over the draws in the core."""
    from . import _bayes

    with _bayes.credible_request(level) as request:
        base = predict(model)
    result = request.get("result")
    if result is None or "lower" not in result:
        raise _bad_parameter(
            "method",
            f"{type(model).__name__}.{method} has no per-customer posterior to stream "
            "(credible intervals are for the per-customer predictions)",
        )
    index = base.index if isinstance(base, pd.Series) else None
    return pd.DataFrame(
        {
            "estimate": _values(base),
            "se": np.asarray(result["sd"], dtype=float),
            "lower": np.asarray(result["lower"], dtype=float),
            "upper": np.asarray(result["upper"], dtype=float),
        },
        index=index,
    )


#: Core model names with a simulator (for ``kind="parametric"``), and their estimators.
_SIMULATED = {
    "bgnbd": "BetaGeoModel",
    "mbgnbd": "ModifiedBetaGeoModel",
    "pnbd": "ParetoNBDModel",
    "ggnbd": "GammaGompertzNBDModel",
}


def _bootstrap_frame(data: Any) -> pd.DataFrame:
    """The customer table to resample, as a pandas DataFrame."""
    if isinstance(data, pd.DataFrame):
        return data
    if _is_polars_frame(data):
        return data.to_pandas()  # type: ignore[no-any-return]
    raise InvalidDataError(
        f"data must be a pandas or polars DataFrame of the customers, got {type(data).__name__}"
    )


@dataclass
class BootstrapResult:
    """Bootstrap replicates of a fit: estimates and (optionally) predictions."""

    #: Estimates of each replicate (rows) by parameter (columns).
    params: pd.DataFrame
    #: Percentile intervals of the parameters: columns lower, upper.
    param_intervals: pd.DataFrame
    #: Predictions of each replicate (rows) by customer (columns), when asked for.
    predictions: pd.DataFrame | None
    #: Percentile intervals of the predictions per customer (lower, upper), when asked for.
    prediction_intervals: pd.DataFrame | None
    #: Replicates whose fit failed or did not converge (left out of the intervals).
    failed: int
    #: Level of the percentile intervals.
    level: float = 0.95
    #: ``"nonparametric"`` (customers resampled) or ``"parametric"`` (histories simulated).
    kind: str = "nonparametric"

    def _overview(self) -> list[str]:
        kept = len(self.params)
        lines = [
            f"{kept + self.failed} {self.kind} replicates ({self.failed} failed or did not "
            f"converge, left out); {self.level:.0%} percentile intervals of the parameters"
        ]
        if self.prediction_intervals is not None:
            lines.append(
                f"predictions of {len(self.prediction_intervals)} customers, with intervals in "
                ".prediction_intervals"
            )
        return lines

    def __repr__(self) -> str:
        intervals = _display.text_table(self.param_intervals, rows=10, what="parameters")
        return "BootstrapResult(" + "\n  ".join(self._overview()) + ")\n" + intervals

    def _repr_html_(self) -> str:
        intervals = _display.html_table(self.param_intervals, what="parameters")
        return _display.html_block("BootstrapResult", self._overview(), intervals)


#: Most replicates ``bootstrap`` makes (each is a refit; a count like 10**12 spent minutes
#: preparing random streams before the first refit).
_MAX_N_BOOT = 100_000


def bootstrap(
    model: BaseModel,
    data: Any,
    n_boot: int = 200,
    *,
    kind: str = "nonparametric",
    seed: int = 0,
    level: float = 0.95,
    predict: Callable[[BaseModel], Any] | None = None,
    n_jobs: int | None = None,
    progress: bool | None = None,
) -> BootstrapResult:
    """Bootstrap a fitted model: refit to resampled (or simulated) data, in parallel.

    - ``kind="nonparametric"``: resample customers with replacement (multinomial counts on the
      rows, so identical rows cost nothing);
    - ``kind="parametric"``: simulate new histories from the fitted model at the same ages
      (purchase models with a simulator).

    Replicate ``i`` uses random stream ``i`` of ``seed``, so results are the same for any
    number of threads. Replicates run on ``n_jobs`` threads (all cores by default), each fit
    single-threaded; the core releases the GIL. ``predict(fitted_replicate)``, if given,
    returns per-customer predictions whose percentile intervals are reported too. A progress
    bar is shown when ``tqdm`` is installed and ``progress`` is true (default: on a terminal).

    Returns
    -------
    BootstrapResult
    """
    if not isinstance(model, BaseModel):
        raise _bad_parameter("model", f"must be a fitted clvrs model, got {type(model).__name__}")
    if "params_" not in vars(model):
        raise NotFittedError("bootstrap needs a fitted model")
    from .models._dynamic import DynamicCovariateModel
    from .models._rfm import RfmModel

    if isinstance(model, DynamicCovariateModel):
        raise _bad_parameter(
            "model",
            "bootstrap resamples customer summaries, which do not hold time-varying "
            f"covariates; for {type(model).__name__}'s predictions use delta_interval",
        )
    if not (isinstance(kind, str) and kind in ("nonparametric", "parametric")):
        raise _bad_parameter("kind", f"must be 'nonparametric' or 'parametric', got {kind!r}")
    _check_n_jobs(n_jobs)
    if progress is not None and not isinstance(progress, (bool, np.bool_)):
        raise _bad_parameter("progress", f"must be True, False or None, got {progress!r}")
    if not (
        isinstance(n_boot, numbers.Integral)
        and not isinstance(n_boot, bool)
        and 2 <= n_boot <= _MAX_N_BOOT
    ):
        raise _bad_parameter(
            "n_boot", f"must be a whole number from 2 to {_MAX_N_BOOT:,}, got {n_boot!r}"
        )
    n_boot = int(n_boot)
    seed = _check_seed(seed)
    level = _check_level(level)
    if predict is not None and not callable(predict):
        raise _bad_parameter("predict", f"must be a function of a fitted model, got {predict!r}")
    if kind == "parametric" and not (
        isinstance(model, RfmModel) and model._model in _SIMULATED  # type: ignore[attr-defined]
    ):
        raise _bad_parameter(
            "kind",
            f"parametric bootstrap needs a purchase model that can simulate histories "
            f"({', '.join(sorted(_SIMULATED.values()))}), not {type(model).__name__}; use "
            "kind='nonparametric'",
        )
    # Refits use the same covariates (and their penalty) as the model.
    refit: dict[str, Any] = getattr(model, "_fit_keywords", dict)()
    if refit and kind == "parametric":
        raise _bad_parameter(
            "kind",
            "parametric bootstrap is not available for models fitted with covariates "
            "(histories are simulated without them); use kind='nonparametric'",
        )
    threads = int(_core.resolve_n_jobs(None if n_jobs is None else int(n_jobs)))
    frame = _bootstrap_frame(data)
    params = model.get_params()
    hyper = {**params, "on_failure": "ignore"}
    if "n_jobs" in params:
        hyper["n_jobs"] = 1
    names = model._column_names(frame)
    # The data are checked once, up front, by the fit every replicate makes: a bad row would
    # otherwise fail only the replicates that drew it, and the intervals would silently come
    # from the others.
    type(model)(**{**hyper, "n_jobs": threads} if "n_jobs" in params else hyper).fit(frame, **refit)
    weight_col = names.get("weights")
    base_weights = frame[weight_col].to_numpy(dtype=float) if weight_col else np.ones(len(frame))
    total = int(round(base_weights.sum()))
    root = np.random.SeedSequence(seed)
    streams = root.spawn(n_boot)

    def replicate(i: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        rng = np.random.default_rng(streams[i])
        fitted = type(model)(**hyper)
        if kind == "nonparametric":
            counts = rng.multinomial(total, base_weights / base_weights.sum()).astype(float)
            sample = frame.assign(_clvrs_weight=counts)
            fitted.columns = {**(fitted.columns or {}), "weights": "_clvrs_weight"}
            sample = sample[counts > 0]
        else:
            ages = frame[names["T"]].to_numpy(dtype=float)
            x, t_x = _core.rfm_simulate(
                model._model,  # type: ignore[attr-defined]
                model._params_list(),
                _native(ages),
                int(rng.integers(2**63)),
            )
            sample = frame.assign(**{str(names["frequency"]): x, str(names["recency"]): t_x})
        try:
            fitted.fit(sample, **refit)
        except Exception:  # a failed replicate is counted, not fatal
            return None, None
        if not fitted.converged_:
            return None, None
        estimates = fitted.params_.to_numpy()
        fitted.columns = model.columns
        values = None if predict is None else _values(predict(fitted))
        return estimates, values

    show = progress if progress is not None else os.isatty(2)
    bar = None
    if show:
        try:
            from tqdm.auto import tqdm  # type: ignore[import-untyped]

            bar = tqdm(total=n_boot, desc="bootstrap")
        except ImportError:
            bar = None
    results: list[tuple[np.ndarray | None, np.ndarray | None]] = [(None, None)] * n_boot
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        futures = {pool.submit(replicate, i): i for i in range(n_boot)}
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    kept = [r for r in results if r[0] is not None]
    failed = n_boot - len(kept)
    if not kept:
        raise ConvergenceError(
            f"every bootstrap replicate failed to fit or converge ({n_boot} of {n_boot})"
        )
    alpha = (1 - level) / 2
    params = pd.DataFrame([r[0] for r in kept], columns=list(model.params_.index))
    param_intervals = params.quantile([alpha, 1 - alpha]).T
    param_intervals.columns = ["lower", "upper"]
    predictions = prediction_intervals = None
    if predict is not None:
        lengths = {len(r[1]) for r in kept if r[1] is not None}
        if len(lengths) > 1:
            raise _bad_parameter(
                "predict",
                f"returned {sorted(lengths)} values in different replicates: it must return "
                "one value per customer, the same customers every time",
            )
        predictions = pd.DataFrame([r[1] for r in kept])
        prediction_intervals = predictions.quantile([alpha, 1 - alpha]).T
        prediction_intervals.columns = ["lower", "upper"]
    return BootstrapResult(
        params, param_intervals, predictions, prediction_intervals, failed, level, kind
    )
