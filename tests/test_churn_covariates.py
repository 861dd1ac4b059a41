"""Covariates in the subscription models (sBG, BdW): ``alpha_i = alpha exp(z_i . g)``."""

from __future__ import annotations

import json
import math
import os
import pickle

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs.exceptions import InvalidDataError, InvalidParameterError

MODELS = {
    "sbg": (clvrs.ShiftedBetaGeoModel, {"alpha": 1.0, "beta": 3.0}),
    "bdw": (clvrs.BetaDiscreteWeibullModel, {"alpha": 1.0, "beta": 3.0, "c": 0.7}),
}
COEFFICIENTS = {"churn:flag": 0.5, "churn:size": -0.3}


def simulate(kind: str, n: int, seed: int) -> pd.DataFrame:
    """Customer records drawn exactly: ``theta ~ Beta(alpha_i, beta)``, survival through
    period ``t`` with probability ``(1 - theta)^(t^c - (t-1)^c)``, observed for 4-12 periods
    (then still active)."""
    _, base = MODELS[kind]
    c = base.get("c", 1.0)
    rng = np.random.default_rng(seed)
    flag = (rng.random(n) < 0.4).astype(float)
    size = rng.normal(size=n)
    alpha = base["alpha"] * np.exp(
        COEFFICIENTS["churn:flag"] * flag + COEFFICIENTS["churn:size"] * size
    )
    theta = rng.beta(alpha, base["beta"])
    horizon = rng.integers(4, 13, n)
    periods = horizon.astype(float)
    churned = np.zeros(n, dtype=bool)
    alive = np.ones(n, dtype=bool)
    for t in range(1, 13):
        exposure = t**c - (t - 1) ** c
        leave = alive & (t <= horizon) & (rng.random(n) > (1 - theta) ** exposure)
        periods[leave] = t
        churned[leave] = True
        alive &= ~leave
    return pd.DataFrame({"periods": periods, "churned": churned, "flag": flag, "size": size})


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_zero_coefficients_give_the_base_model(kind):
    cls, _ = MODELS[kind]
    data = simulate(kind, 800, seed=1)
    base = cls().fit(data)
    model = cls().fit(data, churn_covariates=["flag", "size"])
    assert list(model.params_.index) == [*cls._param_names, "churn:flag", "churn:size"]
    params = model.params_.copy()
    params[:] = 0.0
    params[list(cls._param_names)] = base.params_.to_numpy()
    at_zero = model._with_params(params)
    rows = data.iloc[:7]
    for method, args in [
        ("survival", (5,)),
        ("churn_probability", (3,)),
        ("retention_rate", (4,)),
        ("probability_active", (2, 3)),
        ("expected_renewals", (2, 3)),
        ("expected_residual_lifetime", (2, 0.1)),
    ]:
        got = getattr(at_zero, method)(*args, data=rows)
        want = getattr(base, method)(*args)
        np.testing.assert_allclose(got, np.full(len(rows), want), rtol=1e-12, err_msg=method)
    # More parameters can only raise the maximum.
    assert model.log_likelihood_ >= base.log_likelihood_ - 1e-6


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_predictions_use_each_customers_alpha(kind):
    cls, _ = MODELS[kind]
    data = simulate(kind, 1500, seed=2)
    model = cls().fit(data, churn_covariates=["flag", "size"])
    p = model.params_
    rows = data.iloc[:5]
    got = model.survival(6, data=rows)
    for (_, row), value in zip(rows.iterrows(), got):
        alpha = p["alpha"] * math.exp(p["churn:flag"] * row["flag"] + p["churn:size"] * row["size"])
        single = cls.from_params(**{**dict(p[list(cls._param_names)]), "alpha": alpha})
        assert value == pytest.approx(single.survival(6), rel=1e-12)
    # One tenure per customer.
    per_row = model.expected_residual_lifetime(np.arange(5), 0.1, data=rows)
    assert per_row.shape == (5,) and np.all(per_row > 0)


def _coverage(kind: str, n_sets: int, n: int) -> dict[str, float]:
    cls, base = MODELS[kind]
    truth = {**base, **COEFFICIENTS}
    hits = dict.fromkeys(truth, 0)
    for seed in range(n_sets):
        data = simulate(kind, n, seed=500 + seed)
        frame = cls().fit(data, churn_covariates=["flag", "size"]).summary_frame()
        for name, value in truth.items():
            hits[name] += bool(frame.loc[name, "lower"] <= value <= frame.loc[name, "upper"])
    return {name: count / n_sets for name, count in hits.items()}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_wald_intervals_cover_the_truth(kind):
    """95% Wald intervals over simulated data sets, within 3 binomial standard errors of 95%.
    Always: 60 sets (0.866-1, about 3 s). With ``CLVRS_COVERAGE_SLOW=1``: 400 sets (0.917-1,
    which tells nominal coverage from 90%; about 20 s per model)."""
    n_sets = 400 if os.environ.get("CLVRS_COVERAGE_SLOW") == "1" else 60
    coverage = _coverage(kind, n_sets, 1500)
    band = 3 * math.sqrt(0.95 * 0.05 / n_sets)
    for name, rate in coverage.items():
        assert 0.95 - band <= rate <= 1.0, (name, rate)


def test_summary_penalizer_persistence_and_categoricals(tmp_path):
    data = simulate("sbg", 1500, seed=3)
    data["plan"] = np.where(data["flag"] == 1, "monthly", "annual")
    model = clvrs.ShiftedBetaGeoModel().fit(data, churn_covariates=["plan", "size"])
    frame = model.summary_frame()
    assert frame.loc["churn:plan[monthly]", "reference"] == "plan=annual"
    assert frame.loc["churn:plan[monthly]", "p"] < 0.05
    path = tmp_path / "sbg.json"
    model.save(path)
    loaded = clvrs.load(path)
    np.testing.assert_array_equal(loaded.survival(4, data=data), model.survival(4, data=data))
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.survival(4, data=data), model.survival(4, data=data))
    doc = json.loads(model.to_json())
    assert doc["covariates"]["process"] == "churn"
    assert doc["covariates"]["levels"] == {"plan": ["annual", "monthly"]}
    shrunk = clvrs.ShiftedBetaGeoModel().fit(
        data, churn_covariates=["plan"], covariate_penalizer=50.0
    )
    free = clvrs.ShiftedBetaGeoModel().fit(data, churn_covariates=["plan"])
    assert abs(shrunk.params_["churn:plan[monthly]"]) < abs(free.params_["churn:plan[monthly]"])
    assert free._fit_keywords() == {"churn_covariates": ["plan"], "covariate_penalizer": 0.0}


def test_bad_input_is_refused():
    data = simulate("sbg", 300, seed=4)
    model = clvrs.ShiftedBetaGeoModel().fit(data, churn_covariates=["size"])
    with pytest.raises(InvalidParameterError, match="data"):
        model.survival(3)
    with pytest.raises(InvalidParameterError, match="only used by models fitted"):
        clvrs.ShiftedBetaGeoModel().fit(data).survival(3, data=data)
    with pytest.raises(InvalidParameterError, match="survivor counts"):
        clvrs.ShiftedBetaGeoModel().fit(survivors=[100, 60, 40], churn_covariates="size")
    with pytest.raises(InvalidParameterError, match="prior"):
        clvrs.ShiftedBetaGeoModel().fit(
            data, churn_covariates="size", method="map", covariate_penalizer=1.0
        )
    with pytest.raises(InvalidParameterError, match="covariate_penalizer"):
        clvrs.ShiftedBetaGeoModel().fit(data, covariate_penalizer=1.0)
    missing = data.copy()
    missing.loc[missing.index[4], "size"] = np.nan
    with pytest.raises(InvalidDataError) as info:
        model.survival(3, data=missing)
    assert (info.value.column, info.value.row) == ("size", 4)
    with pytest.raises(InvalidDataError) as info:
        model.churn_probability(0, data=data.iloc[:3])
    assert info.value.column == "t"
    with pytest.raises(InvalidParameterError, match="customers"):
        model.survival([1, 2], data=data.iloc[:3])


def test_bayesian_fits_take_the_coefficients():
    data = simulate("sbg", 1500, seed=6)
    mle = clvrs.ShiftedBetaGeoModel().fit(data, churn_covariates=["flag", "size"])
    mode = clvrs.ShiftedBetaGeoModel().fit(data, churn_covariates=["flag", "size"], method="map")
    assert list(mode.params_.index) == list(mle.params_.index)
    for name in ("churn:flag", "churn:size"):
        assert abs(mode.params_[name] - mle.params_[name]) < 0.5 * mle.standard_errors_[name]
    posterior = clvrs.BetaDiscreteWeibullModel().fit(
        data.iloc[:600],
        churn_covariates=["flag", "size"],
        method="nuts",
        chains=2,
        draws=100,
        tune=100,
        seed=3,
    )
    assert {"churn:flag", "churn:size"} <= set(posterior.params_.index)
    survival = posterior.survival(4, data=data.iloc[:5])
    assert survival.shape == (5,) and np.all((survival > 0) & (survival < 1))
