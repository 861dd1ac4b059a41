"""Covariates in BG/BB: ``alpha_i = alpha exp(z_i . g_purchase)`` and
``gamma_i = gamma exp(z_i . g_dropout)``."""

from __future__ import annotations

import math
import os
import pickle

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs.exceptions import InvalidDataError, InvalidParameterError

BASE = {"alpha": 1.2, "beta": 0.8, "gamma": 0.6, "delta": 2.5}
COEFFICIENTS = {"purchase:flag": 0.4, "purchase:size": -0.3, "dropout:flag": 0.5}


def simulate(n: int, seed: int) -> pd.DataFrame:
    """Histories drawn exactly: before each of 4-8 opportunities an alive customer dies with
    probability ``theta ~ Beta(gamma_i, delta)``, else transacts with probability
    ``p ~ Beta(alpha_i, beta)``."""
    rng = np.random.default_rng(seed)
    flag = (rng.random(n) < 0.4).astype(float)
    size = rng.normal(size=n)
    alpha = BASE["alpha"] * np.exp(
        COEFFICIENTS["purchase:flag"] * flag + COEFFICIENTS["purchase:size"] * size
    )
    gamma = BASE["gamma"] * np.exp(COEFFICIENTS["dropout:flag"] * flag)
    p = rng.beta(alpha, BASE["beta"])
    theta = rng.beta(gamma, BASE["delta"])
    periods = rng.integers(4, 9, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    for j in range(1, 9):
        alive &= (j <= periods) & (rng.random(n) >= theta)
        buy = alive & (rng.random(n) < p)
        x[buy] += 1
        t_x[buy] = j
    return pd.DataFrame(
        {
            "frequency": x,
            "recency": t_x,
            "periods": periods.astype(float),
            "flag": flag,
            "size": size,
        }
    )


def fit(data: pd.DataFrame, **kwargs: object) -> clvrs.BetaGeoBetaBinomModel:
    return clvrs.BetaGeoBetaBinomModel().fit(
        data, purchase_covariates=["flag", "size"], dropout_covariates=["flag"], **kwargs
    )


def test_zero_coefficients_give_the_base_model():
    data = simulate(2000, seed=1)
    base = clvrs.BetaGeoBetaBinomModel().fit(data)
    model = fit(data)
    assert list(model.params_.index) == [*BASE, *COEFFICIENTS]
    params = model.params_.copy()
    params[:] = 0.0
    params[list(BASE)] = base.params_.to_numpy()
    at_zero = model._with_params(params)
    assert at_zero.log_likelihood_per_customer(data).sum() == pytest.approx(
        base.log_likelihood_, rel=1e-12
    )
    for method, kwargs in [
        ("probability_alive", {}),
        ("expected_purchases", {"m": 3}),
        ("expected_residual_transactions", {"discount_rate": 0.1}),
    ]:
        np.testing.assert_allclose(
            getattr(at_zero, method)(data, **kwargs),
            getattr(base, method)(data, **kwargs),
            rtol=1e-12,
            err_msg=method,
        )
    assert model.log_likelihood_ >= base.log_likelihood_ - 1e-6


def test_predictions_use_each_customers_parameters():
    data = simulate(2000, seed=2)
    model = fit(data)
    p = model.params_
    rows = data.iloc[:6]
    got = model.expected_purchases(rows, m=4)
    for (_, row), value in zip(rows.iterrows(), got):
        alpha = p["alpha"] * math.exp(
            p["purchase:flag"] * row["flag"] + p["purchase:size"] * row["size"]
        )
        gamma = p["gamma"] * math.exp(p["dropout:flag"] * row["flag"])
        single = clvrs.BetaGeoBetaBinomModel.from_params(
            alpha=alpha, beta=p["beta"], gamma=gamma, delta=p["delta"]
        )
        want = single.expected_purchases(
            frequency=[row["frequency"]], recency=[row["recency"]], periods=[row["periods"]], m=4
        )[0]
        assert value == pytest.approx(want, rel=1e-12)
    # The discrete model's own rules apply with covariates too (a fractional number of
    # opportunities was read before as if it were whole).
    bad = rows.copy()
    bad["periods"] = bad["periods"].astype(float)
    bad.iloc[2, bad.columns.get_loc("periods")] += 0.5
    for method in ("expected_purchases", "probability_alive"):
        with pytest.raises(InvalidDataError, match="whole number of transaction opportunities"):
            getattr(model, method)(bad, **({"m": 4} if method == "expected_purchases" else {}))


def _coverage(n_sets: int, n: int) -> dict[str, float]:
    truth = {**BASE, **COEFFICIENTS}
    hits = dict.fromkeys(truth, 0)
    for seed in range(n_sets):
        frame = fit(simulate(n, seed=300 + seed)).summary_frame()
        for name, value in truth.items():
            hits[name] += bool(frame.loc[name, "lower"] <= value <= frame.loc[name, "upper"])
    return {name: count / n_sets for name, count in hits.items()}


def test_wald_intervals_cover_the_truth():
    """95% Wald intervals over simulated data sets, within 3 binomial standard errors of 95%.
    Always: 30 sets (0.831-1). With ``CLVRS_COVERAGE_SLOW=1``: 400 sets (0.917-1, which tells
    nominal coverage from 90%)."""
    n_sets = 400 if os.environ.get("CLVRS_COVERAGE_SLOW") == "1" else 30
    coverage = _coverage(n_sets, 2000)
    band = 3 * math.sqrt(0.95 * 0.05 / n_sets)
    for name, rate in coverage.items():
        assert 0.95 - band <= rate <= 1.0, (name, rate)


def test_summary_persistence_map_and_refusals(tmp_path):
    data = simulate(1500, seed=4)
    model = fit(data)
    frame = model.summary_frame()
    assert {"z", "p"} <= set(frame.columns)
    path = tmp_path / "bgbb.json"
    model.save(path)
    loaded = clvrs.load(path)
    np.testing.assert_array_equal(loaded.probability_alive(data), model.probability_alive(data))
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.probability_alive(data), model.probability_alive(data))
    mode = fit(data, method="map")
    assert set(COEFFICIENTS) <= set(mode.params_.index)
    assert abs(mode.params_["purchase:flag"] - model.params_["purchase:flag"]) < 0.2
    tied = clvrs.BetaGeoBetaBinomModel().fit(data, tied_covariates=["flag"])
    assert "tied:flag" in tied.params_.index
    with pytest.raises(InvalidParameterError, match="covariates"):
        model.expected_purchases_new_customer(3)
    with pytest.raises(InvalidParameterError, match="covariates"):
        model.purchase_count_probability(1, 3)
