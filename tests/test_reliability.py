"""Reliability: degenerate data for every model, unusable model files, Ctrl-C during a fit, and
fits from several Python threads at once.

Degenerate data must give a clear typed error or a well-defined answer: a finite log-likelihood
that is attainable (below a bound every model of its kind must respect, and consistent with the
per-customer log-likelihoods), and finite, in-range predictions. Cases that currently return
garbage are strict expected failures, listed in docs/validation_rules.md ("Degenerate data").
"""

from __future__ import annotations

import _thread
import json
import signal
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import mpmath
import numpy as np
import pandas as pd
import pytest
from conftest import bgnbd_synth

import clvrs
from clvrs.exceptions import (
    ClvError,
    ConvergenceError,
    ConvergenceWarning,
    InvalidDataError,
    ModelFileError,
)

CENTURIES = 36500.0 * 3  # three centuries, in days
RFM_MODELS = [
    clvrs.BetaGeoModel,
    clvrs.ModifiedBetaGeoModel,
    clvrs.ParetoNBDModel,
    clvrs.GammaGompertzNBDModel,
]
CHURN_MODELS = [clvrs.ShiftedBetaGeoModel, clvrs.BetaDiscreteWeibullModel]
ALL_MODELS = [*RFM_MODELS, clvrs.BetaGeoBetaBinomModel, clvrs.GammaGammaModel, *CHURN_MODELS]
#: Plausible parameters of each purchase model (published ones where there are).
PARAMS = {
    clvrs.BetaGeoModel: {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426},
    clvrs.ModifiedBetaGeoModel: {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614},
    clvrs.ParetoNBDModel: {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669},
    clvrs.GammaGompertzNBDModel: {"r": 0.55, "alpha": 10.58, "b": 1e-3, "s": 0.6, "beta": 11.7},
    clvrs.BetaGeoBetaBinomModel: {"alpha": 1.204, "beta": 0.75, "gamma": 0.657, "delta": 2.783},
}


def _arrays(**columns: Any) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=float) for k, v in columns.items()}


# --------------------------------------------------------------------------------------------
# degenerate data: one builder per model family and scenario
# --------------------------------------------------------------------------------------------

SCENARIOS = ["no-repeat", "single", "identical", "heavy-buyer", "T=0-rows", "huge-T"]


def _rfm_data(scenario: str) -> dict[str, np.ndarray]:
    x, t_x, age = bgnbd_synth(300, seed=1)
    if scenario == "no-repeat":  # every customer acquired at the end: T = 0, no repeat
        return _arrays(frequency=np.zeros(40), recency=np.zeros(40), T=np.zeros(40))
    if scenario == "single":
        return _arrays(frequency=[3], recency=[20], T=[30])
    if scenario == "identical":
        return _arrays(frequency=np.full(50, 2), recency=np.full(50, 10), T=np.full(50, 30))
    if scenario == "heavy-buyer":  # 5,000 purchases among ordinary customers
        return _arrays(
            frequency=np.append(x, 5000), recency=np.append(t_x, 77.0), T=np.append(age, 78.0)
        )
    if scenario == "T=0-rows":
        zeros = np.zeros(20)
        return _arrays(
            frequency=np.append(x, zeros), recency=np.append(t_x, zeros), T=np.append(age, zeros)
        )
    assert scenario == "huge-T"  # the same histories stretched to centuries
    scale = CENTURIES / age.max()
    return _arrays(frequency=x, recency=t_x * scale, T=age * scale)


def _bgbb_data(scenario: str) -> dict[str, np.ndarray]:
    donations = clvrs.datasets.load_donations()
    base = {k: donations[k].to_numpy(dtype=float) for k in donations.columns}

    def plus(frequency: float, recency: float, periods: float, weight: float) -> dict:
        extra = {"frequency": frequency, "recency": recency, "periods": periods, "weights": weight}
        return {k: np.append(v, extra[k]) for k, v in base.items()}

    if scenario == "no-repeat":
        return _arrays(frequency=np.zeros(5), recency=np.zeros(5), periods=np.arange(5))
    if scenario == "single":
        return _arrays(frequency=[3], recency=[5], periods=[6])
    if scenario == "identical":
        return _arrays(frequency=np.full(50, 3), recency=np.full(50, 5), periods=np.full(50, 6))
    if scenario == "heavy-buyer":
        return plus(5000, 5100, 5200, 1)
    if scenario == "T=0-rows":
        return plus(0, 0, 0, 100)
    assert scenario == "huge-T"  # opportunities every day for three centuries
    scale = CENTURIES / 6
    return {**base, "recency": base["recency"] * scale, "periods": base["periods"] * scale}


def _spend_data(scenario: str) -> dict[str, np.ndarray]:
    cdnow = clvrs.datasets.load_cdnow_summary()
    x = cdnow["frequency"].to_numpy(dtype=float)
    m = cdnow["monetary_value"].to_numpy(dtype=float)
    if scenario == "no-repeat":
        return _arrays(frequency=np.zeros(10), monetary_value=np.zeros(10))
    if scenario == "single":
        return _arrays(frequency=[3], monetary_value=[20])
    if scenario == "identical":
        return _arrays(frequency=np.full(50, 3), monetary_value=np.full(50, 20))
    if scenario == "heavy-buyer":
        return _arrays(frequency=np.append(x, 5000), monetary_value=np.append(m, 30.0))
    if scenario == "T=0-rows":  # customers without a repeat purchase carry no spend
        zeros = np.zeros(100)
        return _arrays(frequency=np.append(x, zeros), monetary_value=np.append(m, zeros))
    assert scenario == "huge-T"  # the spend analogue: amounts of 1e12 times the usual
    return _arrays(frequency=x, monetary_value=np.where(x > 0, m * 1e12, 0.0))


def _churn_data(scenario: str) -> dict[str, np.ndarray]:
    survivors = [1000, 631, 468, 382, 326, 289, 262, 241]
    lost = -np.diff(survivors)
    periods = np.append(np.arange(1, len(survivors)), len(survivors) - 1)
    churned = np.append(np.ones(len(lost)), 0)
    weights = np.append(lost, survivors[-1])

    def plus(p: float, c: float, w: float) -> dict[str, np.ndarray]:
        return _arrays(
            periods=np.append(periods, p),
            churned=np.append(churned, c),
            weights=np.append(weights, w),
        )

    if scenario == "no-repeat":  # no customer observed for a single period
        return _arrays(periods=np.zeros(5), churned=np.zeros(5))
    if scenario == "single":
        return _arrays(periods=[3], churned=[1])
    if scenario == "identical":
        return _arrays(periods=np.full(50, 3), churned=np.ones(50))
    if scenario == "heavy-buyer":  # one subscriber with 5,000 renewals
        return plus(5000, 0, 1)
    if scenario == "T=0-rows":  # subscribers who joined at the end of observation
        return plus(0, 0, 100)
    assert scenario == "huge-T"
    return _arrays(periods=[1, 5, CENTURIES, CENTURIES], churned=[1, 1, 0, 1])


def _data(cls: type, scenario: str) -> dict[str, np.ndarray]:
    if cls in RFM_MODELS:
        return _rfm_data(scenario)
    if cls is clvrs.BetaGeoBetaBinomModel:
        return _bgbb_data(scenario)
    if cls is clvrs.GammaGammaModel:
        return _spend_data(scenario)
    return _churn_data(scenario)


def _no_weights(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in data.items() if k != "weights"}


def _rfm_upper_bound(x: np.ndarray, t_x: np.ndarray) -> np.ndarray:
    """An upper bound of any continuous-time purchase model's log-likelihood of (x, t_x, T).

    Given its purchase rate and lifetime, a customer's likelihood is at most
    lambda^x exp(-lambda t_x) (purchase times in (0, t_x], alive until t_x), whose maximum over
    lambda is (x / t_x)^x e^-x; a mixture over customers cannot exceed it. 0 when x = 0.
    """
    bound = np.zeros_like(x)
    repeat = x > 0
    with np.errstate(divide="ignore"):
        bound[repeat] = x[repeat] * np.log(x[repeat] / t_x[repeat]) - x[repeat]
    return bound


def _gamma_gamma_log_likelihood(params: pd.Series, x: np.ndarray, m: np.ndarray) -> float:
    """The Gamma-Gamma log-likelihood of the repeat buyers in 40-digit arithmetic."""
    mpmath.mp.dps = 40
    p, q, g = (mpmath.mpf(float(v)) for v in params[["p", "q", "gamma"]])
    total = mpmath.mpf(0)
    rows, counts = np.unique(np.column_stack([x, m])[x > 0], axis=0, return_counts=True)
    for (xi, mi), count in zip(rows, counts):
        xi, mi = mpmath.mpf(float(xi)), mpmath.mpf(float(mi))
        total += count * (
            mpmath.loggamma(p * xi + q)
            - mpmath.loggamma(p * xi)
            - mpmath.loggamma(q)
            + q * mpmath.log(g)
            + (p * xi - 1) * mpmath.log(mi)
            + p * xi * mpmath.log(xi)
            - (p * xi + q) * mpmath.log(g + xi * mi)
        )
    return float(total)


def _check_rfm(model: Any, data: dict[str, np.ndarray]) -> None:
    rows = _no_weights(data)
    ll = model.log_likelihood_per_customer(**rows)
    assert np.all(np.isfinite(ll))
    x, t_x = rows["frequency"], rows["recency"]
    bound = _rfm_upper_bound(x, t_x)
    assert np.all(ll <= bound + 1e-9 * np.maximum(1, np.abs(bound))), "unattainable likelihood"
    assert model.log_likelihood_ == pytest.approx(ll.sum(), rel=1e-9, abs=1e-9)
    alive = model.probability_alive(**rows)
    assert np.all((alive >= 0) & (alive <= 1))
    soon, later = model.expected_purchases(**rows, t=1.0), model.expected_purchases(**rows, t=52.0)
    assert np.all(np.isfinite(later)) and np.all(soon >= 0) and np.all(later >= soon)
    new = model.expected_purchases_new_customer(np.array([1.0, 52.0]))
    assert np.all(np.isfinite(new)) and 0 <= new[0] <= new[1]


def _check_bgbb(model: Any, data: dict[str, np.ndarray]) -> None:
    rows = _no_weights(data)
    weights = data.get("weights", np.ones(len(rows["frequency"])))
    ll = model.log_likelihood_per_customer(**rows)
    assert np.all(np.isfinite(ll)) and np.all(ll <= 1e-12), "a probability above 1"
    assert model.log_likelihood_ == pytest.approx((weights * ll).sum(), rel=1e-9, abs=1e-9)
    alive = model.probability_alive(**rows)
    assert np.all((alive >= 0) & (alive <= 1))
    soon, later = model.expected_purchases(**rows, m=1), model.expected_purchases(**rows, m=10)
    assert np.all(np.isfinite(later)) and np.all(soon >= 0) and np.all(later >= soon)


def _check_spend(model: Any, data: dict[str, np.ndarray]) -> None:
    x, m = data["frequency"], data["monetary_value"]
    reference = _gamma_gamma_log_likelihood(model.params_, x, m)
    assert model.log_likelihood_ == pytest.approx(reference, rel=1e-9, abs=1e-6)
    ll = model.log_likelihood_per_customer(frequency=x, monetary_value=m)
    assert np.all(np.isfinite(ll[x > 0])) and np.all(np.isnan(ll[x == 0]))
    if model.params_["q"] > 1:
        spend = model.expected_average_spend(frequency=x, monetary_value=m)
        assert np.all(np.isfinite(spend)) and np.all(spend > 0)


def _check_churn(model: Any, data: dict[str, np.ndarray]) -> None:
    assert np.isfinite(model.log_likelihood_) and model.log_likelihood_ <= 1e-12
    t = np.arange(0, 30)
    survival = model.survival(t)
    assert np.all((survival >= 0) & (survival <= 1)) and np.all(np.diff(survival) <= 0)
    retention = model.retention_rate(t[1:])
    assert np.all((retention >= 0) & (retention <= 1))
    derl = model.expected_residual_lifetime(np.array([0, 3, 100]), 0.1)
    assert np.all(np.isfinite(derl)) and np.all(derl >= 0)


def _check(model: Any, data: dict[str, np.ndarray]) -> None:
    assert np.all(np.isfinite(model.params_.to_numpy())) and np.all(model.params_ > 0)
    assert np.isfinite(model.log_likelihood_)
    cls = type(model)
    if cls in RFM_MODELS:
        _check_rfm(model, data)
    elif cls is clvrs.BetaGeoBetaBinomModel:
        _check_bgbb(model, data)
    elif cls is clvrs.GammaGammaModel:
        _check_spend(model, data)
    else:
        _check_churn(model, data)


#: Scenarios whose fit must raise (the error class and words of its message).
EXPECTED_ERRORS: dict[tuple[type, str], tuple[type, str]] = {
    **{(cls, "no-repeat"): (InvalidDataError, "0 for every customer") for cls in RFM_MODELS},
    (clvrs.BetaGeoBetaBinomModel, "no-repeat"): (InvalidDataError, "0 for every customer"),
    (clvrs.GammaGammaModel, "no-repeat"): (InvalidDataError, "no customer has a repeat"),
    # No customer observed for a period: the likelihood is constant, so there is nothing to fit.
    **{(cls, "no-repeat"): (InvalidDataError, "period") for cls in CHURN_MODELS},
}

#: Known problems (see docs/validation_rules.md, "Degenerate data").
KNOWN_GAPS: dict[tuple[type, str], str] = {}


def _degenerate_cases() -> list:
    cases = []
    for cls in ALL_MODELS:
        for scenario in SCENARIOS:
            marks = []
            if (cls, scenario) in KNOWN_GAPS:
                marks.append(pytest.mark.xfail(strict=True, reason=KNOWN_GAPS[cls, scenario]))
            cases.append(pytest.param(cls, scenario, id=f"{cls.__name__}-{scenario}", marks=marks))
    return cases


def _fit(cls: type, data: dict[str, np.ndarray]) -> Any:
    return cls().fit(**data)


@pytest.mark.parametrize("cls, scenario", _degenerate_cases())
def test_degenerate_data_gives_a_clear_error_or_a_valid_answer(cls, scenario):
    data = _data(cls, scenario)
    expected = EXPECTED_ERRORS.get((cls, scenario))
    with warnings.catch_warnings():
        # Boundary estimates are reported by a ConvergenceWarning: that is the clear signal.
        warnings.simplefilter("ignore", ConvergenceWarning)
        if expected is not None:
            error, words = expected
            with pytest.raises(error, match=words) as info:
                _fit(cls, data)
            assert isinstance(info.value, ClvError)
            return
        model = _fit(cls, data)
    _check(model, data)


@pytest.mark.parametrize(
    "cls", [*RFM_MODELS, clvrs.BetaGeoBetaBinomModel], ids=lambda c: c.__name__
)
def test_extreme_rows_give_finite_predictions(cls):
    model = cls.from_params(**PARAMS[cls])
    rows = {
        "frequency": np.array([0.0, 0.0, 5000.0, 3.0, 2.0, 0.0]),
        "recency": np.array([0.0, 0.0, 109000.0, 1.0, CENTURIES, 0.0]),
        "T": np.array([0.0, CENTURIES, CENTURIES, CENTURIES, CENTURIES, 1e-300]),
    }
    horizon = {"t": 52.0}
    if cls is clvrs.BetaGeoBetaBinomModel:
        rows = {
            "frequency": rows["frequency"],
            "recency": np.array([0.0, 0.0, 109000.0, 3.0, CENTURIES, 0.0]),
            "periods": np.array([0.0, CENTURIES, CENTURIES, CENTURIES, CENTURIES, 1.0]),
        }
        horizon = {"m": 52}
    ll = model.log_likelihood_per_customer(**rows)
    alive = model.probability_alive(**rows)
    expected = model.expected_purchases(**rows, **horizon)
    bound = _rfm_upper_bound(rows["frequency"], rows["recency"]) if cls in RFM_MODELS else 0.0
    assert np.all(np.isfinite(ll)) and np.all(ll <= bound + 1e-12)
    assert np.all((alive >= 0) & (alive <= 1))
    assert np.all(np.isfinite(expected)) and np.all(expected >= 0)
    # A customer acquired at the end of observation (T = 0) gets the new-customer prediction.
    new = model.expected_purchases_new_customer(next(iter(horizon.values())))
    assert expected[0] == pytest.approx(new, rel=1e-9)
    assert ll[0] == pytest.approx(0.0, abs=1e-12)


def test_a_failed_fit_leaves_a_fitted_model_as_it_was(cdnow):
    model = clvrs.BetaGeoModel().fit(cdnow)
    before = dict(vars(model))
    with pytest.raises(InvalidDataError):
        model.fit(cdnow.assign(recency=cdnow["T"] + 1))
    with pytest.raises(ConvergenceError):
        model.set_params(max_iter=1, on_failure="raise").fit(cdnow)
    model.set_params(max_iter=before["max_iter"], on_failure=before["on_failure"])
    _assert_unchanged(model, before)


def _assert_unchanged(model: Any, before: dict[str, Any]) -> None:
    """The estimator's attributes are the very objects they were (and no new ones)."""
    assert vars(model).keys() == before.keys()
    for key, value in before.items():
        assert vars(model)[key] is value, key


# --------------------------------------------------------------------------------------------
# model files: corrupt, truncated, foreign, future
# --------------------------------------------------------------------------------------------


def _fitted_models(cdnow: pd.DataFrame) -> list[Any]:
    donations = clvrs.datasets.load_donations()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return [
            clvrs.BetaGeoModel().fit(cdnow),
            clvrs.ModifiedBetaGeoModel.from_params(**PARAMS[clvrs.ModifiedBetaGeoModel]),
            clvrs.ParetoNBDModel.from_params(**PARAMS[clvrs.ParetoNBDModel]),
            clvrs.GammaGompertzNBDModel.from_params(**PARAMS[clvrs.GammaGompertzNBDModel]),
            clvrs.BetaGeoBetaBinomModel(columns={"weights": "weights"}).fit(donations),
            clvrs.GammaGammaModel().fit(cdnow),
            clvrs.ShiftedBetaGeoModel().fit(survivors=[1000, 631, 468, 382, 326, 289, 262, 241]),
            clvrs.BetaDiscreteWeibullModel().fit(survivors=[1000, 631, 468, 382, 326, 289]),
        ]


def _load_text(tmp_path: Any, content: str | bytes) -> Any:
    path = tmp_path / "model.json"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    return clvrs.load(path)


def test_every_truncation_of_every_model_file_is_rejected(tmp_path, cdnow):
    for model in _fitted_models(cdnow):
        text = model.to_json()
        assert type(_load_text(tmp_path, text)) is type(model)
        for end in range(0, len(text), 3):
            with pytest.raises(ModelFileError, match="not valid JSON"):
                _load_text(tmp_path, text[:end])


def test_corrupted_bytes_are_rejected_or_load_a_usable_model(tmp_path, cdnow_model):
    """Flipping single bytes either breaks the document (ModelFileError) or changes a number,
    which is undetectable without a checksum, but the result must then be a usable model."""
    raw = cdnow_model.to_json().encode()
    rng = np.random.default_rng(20240611)
    outcomes = {"rejected": 0, "loaded": 0}
    for _ in range(400):
        corrupt = bytearray(raw)
        corrupt[rng.integers(len(raw))] = rng.integers(256)
        try:
            loaded = _load_text(tmp_path, bytes(corrupt))
        except ModelFileError as exc:
            assert "not a usable clvrs model file" in str(exc)
            outcomes["rejected"] += 1
            continue
        assert type(loaded) is clvrs.BetaGeoModel
        assert np.isfinite(loaded.expected_purchases_new_customer(39.0))
        outcomes["loaded"] += 1
    assert outcomes["rejected"] > 200  # most flips break the JSON or the document


FOREIGN = {
    "geojson": {"type": "FeatureCollection", "features": []},
    "package.json": {"name": "clvrs", "version": "1.0.0", "dependencies": {}},
    "sklearn-like": {"model": "BetaGeoModel", "params": {"r": 0.2}},
    "other format": {"format": "lifetimes.model", "format_version": 1, "model": "BetaGeoModel"},
    "string": "clvrs.model",
    "number": 1,
    "null": None,
    "nested list": [[{"format": "clvrs.model"}]],
}


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_foreign_json_is_rejected(tmp_path, kind):
    with pytest.raises(ModelFileError, match='"format": "clvrs.model"'):
        _load_text(tmp_path, json.dumps(FOREIGN[kind]))


def test_deeply_nested_json_is_rejected(tmp_path):
    with pytest.raises(ModelFileError, match="nested too deeply"):
        _load_text(tmp_path, "[" * 100_000 + "]" * 100_000)


@pytest.mark.parametrize(
    "name", ["RfmModel", "LifetimePredictions", "ContractualModel", "BaseModel", "", None, 1]
)
def test_documents_naming_an_internal_class_are_rejected(tmp_path, name):
    doc = {"format": "clvrs.model", "format_version": 1, "model": name}
    doc.update(hyperparameters={}, params={}, covariance=None, fit={})
    with pytest.raises(ModelFileError, match="unknown model") as info:
        _load_text(tmp_path, json.dumps(doc))
    # The list of known models names the estimators only.
    known = str(info.value).split("known:")[1]
    assert "'BetaGeoModel'" in known and "SegmentedModel" in known
    assert not {"RfmModel", "LifetimePredictions", "ContractualModel"} & set(known.split("'"))


def _document(model: Any, **changes: Any) -> str:
    """``model``'s document with top-level keys (or ``fit`` keys, as ``fit__key``) replaced."""
    doc = model.to_dict()
    for key, value in changes.items():
        if key.startswith("fit__"):
            doc["fit"][key[len("fit__") :]] = value
        else:
            doc[key] = value
    return json.dumps(doc)


@pytest.mark.parametrize("version", [True, False, -1, 0, 1.0, "1", None])
def test_invalid_format_versions_are_rejected(tmp_path, cdnow_model, version):
    with pytest.raises(ModelFileError, match="format_version must be a positive whole number"):
        _load_text(tmp_path, _document(cdnow_model, format_version=version))


@pytest.mark.parametrize("converged", ["yes", "false", 1, 0, None, [], {}])
def test_converged_must_be_a_bool(tmp_path, cdnow_model, converged):
    with pytest.raises(ModelFileError, match='"converged" must be true or false'):
        _load_text(tmp_path, _document(cdnow_model, fit__converged=converged))


def test_models_built_from_parameters_load_without_a_convergence_flag(tmp_path):
    model = clvrs.BetaGeoModel.from_params(**PARAMS[clvrs.BetaGeoModel])
    assert model.to_dict()["fit"]["converged"] is None
    loaded = _load_text(tmp_path, model.to_json())
    assert loaded.converged_ is None and loaded.log_likelihood_ is None


def _covariances(k: int) -> dict[str, Any]:
    square = np.eye(k).tolist()
    asymmetric = np.eye(k)
    asymmetric[0, 1] = 0.5
    return {
        "not a list": {"r": 1.0},
        "a number": 1.0,
        "a string": "[[1, 0], [0, 1]]",
        "too few rows": square[:-1],
        "too many rows": [*square, square[0]],
        "ragged": [square[0][:-1], *square[1:]],
        "too many columns": [[*row, 0.0] for row in square],
        "a row not a list": [1.0, *square[1:]],
        "a string entry": [["1", *square[0][1:]], *square[1:]],
        "a bool entry": [[True, *square[0][1:]], *square[1:]],
        "a null entry": [[None, *square[0][1:]], *square[1:]],
        "NaN": [[float("nan"), *square[0][1:]], *square[1:]],
        "Infinity": [[float("inf"), *square[0][1:]], *square[1:]],
        "asymmetric": asymmetric.tolist(),
    }


@pytest.mark.parametrize("kind", list(_covariances(4)))
def test_covariances_that_are_not_symmetric_square_matrices_are_rejected(
    tmp_path, cdnow_model, kind
):
    covariance = _covariances(len(cdnow_model.params_))[kind]
    with pytest.raises(ModelFileError, match='"covariance" must be') as info:
        _load_text(tmp_path, _document(cdnow_model, covariance=covariance))
    assert ("symmetric" in str(info.value)) == (kind == "asymmetric")


def test_every_fitted_model_round_trips_its_covariance(tmp_path, cdnow):
    for model in _fitted_models(cdnow):
        loaded = _load_text(tmp_path, model.to_json())
        if model.covariance_ is None:
            assert loaded.covariance_ is None
        else:
            pd.testing.assert_frame_equal(loaded.covariance_, model.covariance_)
        assert loaded.converged_ == model.converged_


def test_future_versions_are_refused_before_reading_their_content(tmp_path, cdnow):
    for model in _fitted_models(cdnow):
        doc = {
            "format": "clvrs.model",
            "format_version": clvrs._base.FORMAT_VERSION + 1,
            "clvrs_version": "99.0.0",
            "model": type(model).__name__,
            "estimates": {"layout": "changed"},  # and no "params": a reader must not look
        }
        with pytest.raises(ModelFileError) as info:
            _load_text(tmp_path, json.dumps(doc))
        message = str(info.value)
        assert "newer clvrs (99.0.0" in message and "upgrade clvrs" in message


# --------------------------------------------------------------------------------------------
# Ctrl-C during a fit
# --------------------------------------------------------------------------------------------


def _interrupt_during(call: Callable[[], Any]) -> BaseException | None:
    """Run ``call`` in the main thread while another thread simulates Ctrl-C, after 100 ms
    (when ``call`` is well inside the core) and then every 20 ms.

    A SIGINT handler armed for one shot turns the first delivery into KeyboardInterrupt, so a
    simulated signal still pending when ``call`` ends cannot escape into the test runner.
    Returns the KeyboardInterrupt (or None if ``call`` finished first).
    """
    state = {"armed": True}

    def handler(signum: int, frame: Any) -> None:
        if state["armed"]:
            state["armed"] = False
            raise KeyboardInterrupt

    stop = threading.Event()

    def interrupter() -> None:
        delay = 0.1
        while not stop.wait(delay):
            _thread.interrupt_main()
            delay = 0.02

    previous = signal.signal(signal.SIGINT, handler)
    thread = threading.Thread(target=interrupter, daemon=True)
    caught: BaseException | None = None
    try:
        thread.start()
        try:
            call()
        except KeyboardInterrupt as exc:
            caught = exc
    finally:
        state["armed"] = False
        stop.set()
        thread.join()
        time.sleep(0.05)  # deliver any simulated signal still pending, to the disarmed handler
        signal.signal(signal.SIGINT, previous)
    return caught


@pytest.fixture(scope="module")
def big_sample() -> dict[str, np.ndarray]:
    # Pareto/NBD on 50,000 distinct rows takes seconds (one evaluation: tens of ms).
    x, t_x, age = bgnbd_synth(50_000, seed=5)
    return {"frequency": x, "recency": t_x, "T": age}


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_ctrl_c_during_a_fit_leaves_the_fitted_estimator_as_it_was(cdnow, big_sample, n_jobs):
    model = clvrs.ParetoNBDModel(n_jobs=n_jobs).fit(cdnow)
    before = dict(vars(model))
    before_params = model.params_.copy()
    model.set_params(tol=1e-300, max_iter=10**6, on_failure="ignore")
    interrupt = _interrupt_during(lambda: model.fit(**big_sample))
    assert isinstance(interrupt, KeyboardInterrupt), "the fit was not interrupted"
    # The signal was taken inside the core's fit (its handler ran on top of the `fit` frame).
    frames = []
    tb = interrupt.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code)
        tb = tb.tb_next
    assert frames[-1].co_name == "handler"
    assert frames[-2].co_name == "fit" and frames[-2].co_filename.endswith("_rfm.py")
    # Nothing fitted was touched.
    model.set_params(**{k: before[k] for k in ("tol", "max_iter", "on_failure")})
    _assert_unchanged(model, before)
    pd.testing.assert_series_equal(model.params_, before_params, check_exact=True)
    # And the estimator (and the thread pool) still work: the same fit again, bit for bit.
    refit = model.fit(cdnow)
    pd.testing.assert_series_equal(refit.params_, before_params, check_exact=True)


# --------------------------------------------------------------------------------------------
# fits from several Python threads at once
# --------------------------------------------------------------------------------------------


def _jobs() -> dict[str, Callable[[], Any]]:
    cdnow = clvrs.datasets.load_cdnow_summary()
    donations = clvrs.datasets.load_donations()
    samples = {seed: bgnbd_synth(20_000, seed=seed) for seed in (1, 2)}

    def kw(seed: int) -> dict[str, np.ndarray]:
        x, t_x, age = samples[seed]
        return {"frequency": x, "recency": t_x, "T": age}

    small = {k: v[:3000] for k, v in kw(2).items()}
    bad = {**kw(1), "recency": kw(1)["T"] + 1.0}
    return {
        "bgnbd-1": lambda: clvrs.BetaGeoModel(n_jobs=2).fit(**kw(1)),
        "bgnbd-2": lambda: clvrs.BetaGeoModel(n_jobs=1).fit(**kw(2)),
        "mbgnbd": lambda: clvrs.ModifiedBetaGeoModel().fit(**kw(1)),
        "pnbd": lambda: clvrs.ParetoNBDModel(n_jobs=2).fit(**small),
        "bgbb": lambda: clvrs.BetaGeoBetaBinomModel(columns={"weights": "weights"}).fit(donations),
        "gamma-gamma": lambda: clvrs.GammaGammaModel().fit(cdnow),
        "sbg": lambda: clvrs.ShiftedBetaGeoModel().fit(survivors=[1000, 631, 468, 382, 326]),
        "bdw": lambda: clvrs.BetaDiscreteWeibullModel().fit(survivors=[1000, 631, 468, 382, 326]),
        "bad-data": lambda: clvrs.BetaGeoModel(n_jobs=2).fit(**bad),
        "predict": lambda: clvrs.BetaGeoModel.from_params(
            **PARAMS[clvrs.BetaGeoModel]
        ).expected_purchases(**kw(2), t=np.linspace(0, 52, 20_000)),
    }


def _outcome(job: Callable[[], Any]) -> Any:
    try:
        result = job()
    except ClvError as exc:
        return (type(exc).__name__, str(exc))
    if isinstance(result, np.ndarray):
        return result
    return (result.params_.to_numpy(), result.log_likelihood_, result.covariance_)


def test_concurrent_fits_from_python_threads_match_serial_fits():
    jobs = _jobs()
    serial = {name: _outcome(job) for name, job in jobs.items()}
    assert serial["bad-data"][0] == "InvalidDataError"
    barrier = threading.Barrier(len(jobs))

    def together(name: str) -> Any:
        barrier.wait(60)
        return _outcome(jobs[name])

    for _ in range(2):
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            futures = {name: pool.submit(together, name) for name in jobs}
            concurrent = {name: future.result(timeout=300) for name, future in futures.items()}
        for name, expected in serial.items():
            got = concurrent[name]
            if isinstance(expected, np.ndarray):
                np.testing.assert_array_equal(got, expected, err_msg=name)
            elif isinstance(expected[0], str):
                assert got == expected, name
            else:
                np.testing.assert_array_equal(got[0], expected[0], err_msg=name)
                assert got[1] == expected[1], name
                if expected[2] is None:
                    assert got[2] is None, name
                else:
                    pd.testing.assert_frame_equal(got[2], expected[2], check_exact=True)
