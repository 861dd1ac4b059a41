"""Covariates in the Gamma-Gamma spend model: ``gamma_i = gamma exp(z_i . g)``."""

from __future__ import annotations

import json
import math
import os
import pickle

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs._base import load_document
from clvrs.exceptions import InvalidDataError, InvalidParameterError

TRUTH = {"p": 6.0, "q": 4.0, "gamma": 15.0, "spend:flag": 0.5, "spend:size": -0.3}


def simulate(n: int, seed: int, truth: dict[str, float] = TRUTH) -> pd.DataFrame:
    """Repeat buyers with a 0/1 ``flag`` and a standard normal ``size``, their mean spend
    drawn exactly from the model: ``nu ~ Gamma(q, rate gamma_i)``, the mean of ``x`` values
    ``Gamma(p x, rate nu x)``."""
    rng = np.random.default_rng(seed)
    flag = (rng.random(n) < 0.4).astype(float)
    size = rng.normal(size=n)
    gamma_i = truth["gamma"] * np.exp(truth["spend:flag"] * flag + truth["spend:size"] * size)
    x = rng.integers(1, 9, n).astype(float)
    nu = rng.gamma(truth["q"], 1.0, n) / gamma_i
    mean = rng.gamma(truth["p"] * x, 1.0) / (nu * x)
    return pd.DataFrame({"frequency": x, "monetary_value": mean, "flag": flag, "size": size})


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    data = clvrs.datasets.load_cdnow_summary()
    rng = np.random.default_rng(3)
    data["size"] = rng.normal(size=len(data))
    data["channel"] = rng.choice(["email", "store", "web"], size=len(data))
    return data


def test_zero_coefficients_give_the_base_likelihood_and_predictions(cdnow):
    base = clvrs.GammaGammaModel().fit(cdnow)
    model = clvrs.GammaGammaModel().fit(cdnow, spend_covariates=["size", "channel"])
    assert list(model.params_.index) == [
        "p",
        "q",
        "gamma",
        "spend:size",
        "spend:channel[store]",
        "spend:channel[web]",
    ]
    params = model.params_.copy()
    params[:] = 0.0
    params[["p", "q", "gamma"]] = base.params_.to_numpy()
    at_zero = model._with_params(params)
    ll = at_zero.log_likelihood_per_customer(cdnow)
    assert np.nansum(ll) == pytest.approx(base.log_likelihood_, rel=1e-12)
    np.testing.assert_allclose(
        at_zero.expected_average_spend(cdnow), base.expected_average_spend(cdnow), rtol=1e-12
    )
    assert at_zero.population_mean_spend() == pytest.approx(base.population_mean_spend())
    # More parameters can only raise the maximum; n_excluded is the base model's.
    assert model.log_likelihood_ >= base.log_likelihood_ - 1e-6
    assert model.fit_info_["n_excluded"] == base.fit_info_["n_excluded"] == 1411


def test_predictions_use_each_customers_gamma(cdnow):
    model = clvrs.GammaGammaModel().fit(cdnow, spend_covariates=["size", "channel"])
    p = model.params_
    rows = cdnow.iloc[[0, 1, 5, 20, 40]]
    got = model.expected_average_spend(rows)
    for (_, row), value in zip(rows.iterrows(), got):
        eta = p["spend:size"] * row["size"]
        if row["channel"] != "email":
            eta += p[f"spend:channel[{row['channel']}]"]
        single = clvrs.GammaGammaModel.from_params(
            p=p["p"], q=p["q"], gamma=p["gamma"] * math.exp(eta)
        )
        want = single.expected_average_spend(
            frequency=[row["frequency"]], monetary_value=[row["monetary_value"]]
        )[0]
        assert value == pytest.approx(want, rel=1e-12)


def test_fit_recovers_the_coefficients_and_summarises_them():
    data = simulate(4000, seed=1)
    model = clvrs.GammaGammaModel().fit(data, spend_covariates=["flag", "size"])
    frame = model.summary_frame(0.99)
    for name, value in TRUTH.items():
        assert frame.loc[name, "lower"] <= value <= frame.loc[name, "upper"], name
    assert frame.loc["spend:flag", "p"] < 1e-6
    assert frame.loc["spend:flag", "z"] == pytest.approx(
        frame.loc["spend:flag", "coef"] / frame.loc["spend:flag", "se"]
    )
    assert model.converged_


def _coverage(n_sets: int, n: int) -> dict[str, float]:
    hits = dict.fromkeys(TRUTH, 0)
    for seed in range(n_sets):
        data = simulate(n, seed=1000 + seed)
        frame = clvrs.GammaGammaModel().fit(data, spend_covariates=["flag", "size"]).summary_frame()
        for name, value in TRUTH.items():
            hits[name] += bool(frame.loc[name, "lower"] <= value <= frame.loc[name, "upper"])
    return {name: count / n_sets for name, count in hits.items()}


def test_wald_intervals_cover_the_truth():
    """95% Wald intervals over simulated data sets, within 3 binomial standard errors of 95%.
    Always: 100 sets (0.885-1, about 2 s). With ``CLVRS_COVERAGE_SLOW=1``: 400 sets (0.917-1,
    which tells nominal coverage from 90%; about 10 s)."""
    n_sets = 400 if os.environ.get("CLVRS_COVERAGE_SLOW") == "1" else 100
    coverage = _coverage(n_sets, 1500)
    band = 3 * math.sqrt(0.95 * 0.05 / n_sets)
    for name, rate in coverage.items():
        assert 0.95 - band <= rate <= 1.0, (name, rate)


def test_penalizer_shrinks_the_coefficients():
    data = simulate(1500, seed=7)
    free = clvrs.GammaGammaModel().fit(data, spend_covariates="flag")
    shrunk = clvrs.GammaGammaModel().fit(data, spend_covariates="flag", covariate_penalizer=200.0)
    assert abs(shrunk.params_["spend:flag"]) < abs(free.params_["spend:flag"])
    assert shrunk.fit_info_["covariate_penalizer"] == 200.0
    assert free._fit_keywords() == {"spend_covariates": ["flag"], "covariate_penalizer": 0.0}
    with pytest.raises(InvalidParameterError, match="covariate_penalizer"):
        clvrs.GammaGammaModel().fit(data, spend_covariates="flag", covariate_penalizer=-1)
    with pytest.raises(InvalidParameterError, match="covariate_penalizer"):
        clvrs.GammaGammaModel().fit(data, covariate_penalizer=1.0)


def test_persistence_pickle_and_polars(cdnow, tmp_path):
    model = clvrs.GammaGammaModel().fit(cdnow, spend_covariates=["channel", "size"])
    path = tmp_path / "spend.json"
    model.save(path)
    loaded = clvrs.load(path)
    np.testing.assert_array_equal(
        loaded.expected_average_spend(cdnow), model.expected_average_spend(cdnow)
    )
    pd.testing.assert_frame_equal(loaded.summary_frame(), model.summary_frame())
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(
        restored.expected_average_spend(cdnow), model.expected_average_spend(cdnow)
    )
    doc = json.loads(model.to_json())
    assert doc["covariates"] == {
        "process": "spend",
        "columns": ["channel", "size"],
        "levels": {"channel": ["email", "store", "web"]},
    }
    assert load_document(clvrs.GammaGammaModel().fit(cdnow).to_dict()).covariates_ is None
    assert model.summary_frame().loc["spend:channel[web]", "reference"] == "channel=email"
    pl = pytest.importorskip("polars")
    frame = cdnow.reset_index(drop=True)
    polars_fit = clvrs.GammaGammaModel().fit(
        pl.from_pandas(frame), spend_covariates=["channel", "size"]
    )
    np.testing.assert_allclose(polars_fit.params_, model.params_, rtol=1e-9)
    assert isinstance(polars_fit.expected_average_spend(pl.from_pandas(frame)), pl.Series)


def test_value_uses_the_spend_covariates(cdnow):
    purchases = clvrs.BetaGeoModel().fit(cdnow)
    spend = clvrs.GammaGammaModel().fit(cdnow, spend_covariates=["size"])
    clv = clvrs.customer_lifetime_value(purchases, spend, cdnow, time=12, discount_rate=0.01)
    assert np.isfinite(clv).all() and (clv >= 0).all()
    band = clvrs.prediction_interval(spend, "expected_average_spend", cdnow.iloc[:30])
    assert ((band["lower"] <= band["estimate"]) & (band["estimate"] <= band["upper"])).all()
    boot = clvrs.bootstrap(spend, cdnow, n_boot=3, seed=1, progress=False)
    assert list(boot.params.columns) == list(spend.params_.index)


def test_bad_covariates_are_refused_with_column_and_row(cdnow):
    model = clvrs.GammaGammaModel().fit(cdnow, spend_covariates=["channel", "size"])
    unseen = cdnow.iloc[:5].copy()
    unseen.iloc[2, unseen.columns.get_loc("channel")] = "phone"
    with pytest.raises(InvalidDataError, match="phone") as info:
        model.expected_average_spend(unseen)
    assert (info.value.column, info.value.row) == ("channel", 2)
    missing = cdnow.iloc[:5].copy()
    missing.iloc[3, missing.columns.get_loc("size")] = np.nan
    with pytest.raises(InvalidDataError) as info:
        model.expected_average_spend(missing)
    assert (info.value.column, info.value.row) == ("size", 3)
    with pytest.raises(InvalidDataError, match="DataFrame"):
        model.expected_average_spend(frequency=[1.0], monetary_value=[2.0])
    huge = cdnow.iloc[:3].assign(size=[0.0, 1e300, 0.0])
    with pytest.raises(InvalidDataError) as info:
        model.expected_average_spend(huge)
    assert (info.value.column, info.value.row) == ("size", 1)
    with pytest.raises(InvalidDataError, match="constant"):
        clvrs.GammaGammaModel().fit(cdnow.assign(one=1.0), spend_covariates="one")
    with pytest.raises(InvalidParameterError, match="not a covariate"):
        clvrs.GammaGammaModel().fit(cdnow, spend_covariates="monetary_value")
    with pytest.raises(InvalidParameterError, match="prior"):
        clvrs.GammaGammaModel().fit(
            cdnow, spend_covariates="size", method="map", covariate_penalizer=1.0
        )
    with pytest.raises(InvalidParameterError, match="twice"):
        clvrs.GammaGammaModel().fit(cdnow, spend_covariates=["size", "size"])


def test_bayesian_fits_take_the_coefficients():
    data = simulate(1500, seed=11)
    mle = clvrs.GammaGammaModel().fit(data, spend_covariates=["flag", "size"])
    mode = clvrs.GammaGammaModel().fit(data, spend_covariates=["flag", "size"], method="map")
    assert list(mode.params_.index) == list(mle.params_.index)
    # Weak default priors: the mode is near the maximum-likelihood estimate.
    for name in ("spend:flag", "spend:size"):
        assert abs(mode.params_[name] - mle.params_[name]) < 0.5 * mle.standard_errors_[name]
    np.testing.assert_allclose(
        mode.expected_average_spend(data.iloc[:5]),
        mode._with_params(mode.params_).expected_average_spend(data.iloc[:5]),
    )
    small = data.iloc[:500]
    small_mle = clvrs.GammaGammaModel().fit(small, spend_covariates=["flag", "size"])
    posterior = clvrs.GammaGammaModel().fit(
        small,
        spend_covariates=["flag", "size"],
        method="nuts",
        chains=2,
        draws=100,
        tune=100,
        seed=3,
    )
    for name in ("spend:flag", "spend:size"):
        gap = abs(posterior.params_[name] - small_mle.params_[name])
        assert gap < 3 * small_mle.standard_errors_[name], name
    spend = posterior.expected_average_spend(data.iloc[:5])
    assert np.all(np.isfinite(spend)) and np.all(spend > 0)
