"""Predictions of Bayesian fits (posterior means and credible intervals streamed over the draws
in the core) against predictions computed draw by draw, and MAP fits (method="map")."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs import priors as P
from clvrs._base import load_document

#: Histogram bins behind the streamed intervals: an interval end is within (max - min) / BINS
#: of numpy's quantile of the draws.
BINS = 512


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return clvrs.datasets.load_cdnow_summary()


@pytest.fixture(scope="module")
def small(cdnow: pd.DataFrame) -> pd.DataFrame:
    # Every kind of history: one-timers, repeat buyers, the most frequent buyers.
    picks = np.r_[0:25, cdnow["frequency"].nlargest(5).index.to_numpy()]
    return cdnow.iloc[np.unique(picks)].copy()


def _fit(model, data, **kw):
    # Short chains: R-hat may exceed 1.01; the tests compare with the same draws.
    kw = {"method": "nuts", "chains": 2, "draws": 150, "tune": 200, "seed": 3, **kw}
    return model.set_params(on_failure="ignore").fit(data, **kw)


@pytest.fixture(scope="module")
def bgnbd(cdnow):
    return _fit(clvrs.BetaGeoModel(), cdnow)


@pytest.fixture(scope="module")
def spend(cdnow):
    return _fit(clvrs.GammaGammaModel(), cdnow, draws=100)


def _draws(model) -> pd.DataFrame:
    post = model._draws["posterior"]
    return pd.DataFrame({name: np.asarray(v).ravel() for name, v in post.items()})


def _per_draw(model, predict) -> np.ndarray:
    """draws x customers: the prediction at each draw, computed one draw at a time."""
    cls = type(model)
    return np.vstack(
        [
            np.asarray(predict(cls.from_params(**row.to_dict())), dtype=float)
            for _, row in _draws(model).iterrows()
        ]
    )


def _check_against_draws(
    band: pd.DataFrame, per_draw: np.ndarray, level: float, exact: bool = False
) -> None:
    """``exact``: BG/NBD and MBG/NBD intervals (expected purchases at one horizon, customer
    value, P(alive)) are numpy's quantiles of the draws, not histogram estimates."""
    mean = per_draw.mean(axis=0)
    np.testing.assert_allclose(band["estimate"], mean, rtol=1e-11, atol=1e-300)
    np.testing.assert_allclose(band["se"], per_draw.std(axis=0, ddof=1), rtol=1e-7, atol=1e-14)
    bound = (per_draw.max(axis=0) - per_draw.min(axis=0)) / BINS
    tail = (1 - level) / 2
    for column, prob in (("lower", tail), ("upper", 1 - tail)):
        quantile = np.quantile(per_draw, prob, axis=0)
        got = band[column].to_numpy()
        if exact:
            np.testing.assert_allclose(got, quantile, rtol=1e-11, atol=1e-300)
        err = np.abs(got - quantile)
        assert np.all(err <= bound * (1 + 1e-9) + 1e-15), (column, err.max(), bound.max())
    assert np.all(band["lower"] <= band["estimate"] + 1e-12)
    assert np.all(band["estimate"] <= band["upper"] + 1e-12)


def test_default_predictions_are_posterior_means_not_predictions_at_the_mean(bgnbd, small):
    got = bgnbd.expected_purchases(small, t=20)
    per_draw = _per_draw(bgnbd, lambda m: m.expected_purchases(small, t=20))
    np.testing.assert_allclose(got, per_draw.mean(axis=0), rtol=1e-11)
    assert isinstance(got, pd.Series) and got.index.equals(small.index)
    # The prediction at the posterior mean is another number (a nonlinear function).
    at_mean = clvrs.BetaGeoModel.from_params(**bgnbd.params_.to_dict()).expected_purchases(
        small, t=20
    )
    assert np.max(np.abs(at_mean.to_numpy() - got.to_numpy())) > 1e-6


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("expected_purchases", {"t": 39.0}),
        ("probability_alive", {}),
    ],
)
def test_credible_intervals_match_quantiles_of_the_draws(bgnbd, small, method, kwargs):
    band = clvrs.prediction_interval(bgnbd, method, small, level=0.9, **kwargs)
    assert list(band.columns) == ["estimate", "se", "lower", "upper"]
    assert band.index.equals(small.index)
    per_draw = _per_draw(bgnbd, lambda m: getattr(m, method)(small, **kwargs))
    _check_against_draws(band, per_draw, 0.9, exact=True)


def test_pareto_dert_and_probability_alive_ahead(cdnow, small):
    model = _fit(clvrs.ParetoNBDModel(), cdnow, draws=80)
    for method, kwargs in (
        ("expected_residual_transactions", {"discount_rate": 0.01}),
        ("probability_alive", {"t": 10.0}),
    ):
        band = clvrs.prediction_interval(model, method, small, level=0.8, **kwargs)
        per_draw = _per_draw(model, lambda m, f=method, k=kwargs: getattr(m, f)(small, **k))
        _check_against_draws(band, per_draw, 0.8)


def test_bgbb_predictions(small):
    donations = clvrs.datasets.load_donations()
    model = _fit(clvrs.BetaGeoBetaBinomModel(), donations, draws=80)
    rows = donations.iloc[:40]
    band = clvrs.prediction_interval(model, "expected_purchases", rows, level=0.9, m=5)
    per_draw = _per_draw(model, lambda m: m.expected_purchases(rows, m=5))
    _check_against_draws(band, per_draw, 0.9)


def test_spend_and_value_pair_the_draws_of_both_posteriors(bgnbd, spend, small):
    band = clvrs.prediction_interval(spend, "expected_average_spend", small, level=0.9)
    per_draw_spend = _per_draw(spend, lambda m: m.expected_average_spend(small))
    _check_against_draws(band, per_draw_spend, 0.9)

    options = {"time": 12, "discount_rate": 0.01, "margin": 0.3}
    value = clvrs.customer_lifetime_value(bgnbd, spend, small, level=0.9, **options)
    purchases = _draws(bgnbd)
    spends = _draws(spend)
    per_draw = []
    for s, (_, row) in enumerate(purchases.iterrows()):
        tm = clvrs.BetaGeoModel.from_params(**row.to_dict())
        sm = clvrs.GammaGammaModel.from_params(**spends.iloc[s % len(spends)].to_dict())
        per_draw.append(clvrs.customer_lifetime_value(tm, sm, small, **options).to_numpy())
    _check_against_draws(value, np.vstack(per_draw), 0.9, exact=True)
    # Without a level: the same posterior mean, as a Series named like the point value.
    mean = clvrs.customer_lifetime_value(bgnbd, spend, small, **options)
    assert mean.name == "clv"
    np.testing.assert_allclose(mean, value["estimate"], rtol=1e-14)
    # A fixed spend multiplies every draw.
    fixed = clvrs.customer_lifetime_value(bgnbd, 20.0, small, level=0.5, **options)
    purchases_only = clvrs.customer_lifetime_value(bgnbd, 1.0, small, level=0.5, **options)
    np.testing.assert_allclose(fixed["upper"], 20 * purchases_only["upper"], rtol=1e-12)


def test_results_do_not_depend_on_the_thread_count(bgnbd, cdnow):
    one = clvrs.prediction_interval(bgnbd.set_params(n_jobs=1), "probability_alive", cdnow)
    two = clvrs.prediction_interval(bgnbd.set_params(n_jobs=2), "probability_alive", cdnow)
    bgnbd.set_params(n_jobs=None)
    pd.testing.assert_frame_equal(one, two, check_exact=True)


def test_delta_method_on_a_bayesian_fit_moves_the_parameters_not_the_draws(bgnbd, small):
    # delta_interval shifts params_; the shifted copies predict at those parameters (a copy
    # averaging over the unchanged draws would give a zero gradient).
    band = clvrs.delta_interval(lambda m: m.expected_purchases(small, t=10), [bgnbd])
    assert np.all(band["se"] > 0)
    at_mean = clvrs.BetaGeoModel.from_params(**bgnbd.params_.to_dict())
    clone = bgnbd._with_params(bgnbd.params_)
    np.testing.assert_array_equal(
        clone.expected_purchases(small, t=10), at_mean.expected_purchases(small, t=10)
    )
    assert bgnbd._is_bayesian() and not clone._is_bayesian()


def test_intervals_of_maximum_likelihood_fits_stay_delta_method(cdnow, small):
    mle = clvrs.BetaGeoModel().fit(cdnow)
    band = clvrs.prediction_interval(mle, "expected_purchases", small, level=0.9, t=10)
    direct = clvrs.delta_interval(
        lambda m: m.expected_purchases(small, t=10), [mle], level=0.9, scale="log"
    )
    pd.testing.assert_frame_equal(band, direct)
    spend = clvrs.GammaGammaModel().fit(cdnow)
    value = clvrs.customer_lifetime_value(mle, spend, small, level=0.9)
    assert list(value.columns) == ["estimate", "se", "lower", "upper"]
    np.testing.assert_allclose(
        value["estimate"], clvrs.customer_lifetime_value(mle, spend, small), rtol=1e-12
    )


# --------------------------------------------------------------------------------------------
# MAP


def test_map_with_flat_priors_is_the_maximum_likelihood_fit(cdnow):
    mle = clvrs.BetaGeoModel().fit(cdnow)
    flat = {name: P.Flat() for name in ("r", "alpha", "a", "b")}
    m = clvrs.BetaGeoModel().fit(cdnow, method="map", priors=flat)
    np.testing.assert_allclose(m.params_, mle.params_, rtol=1e-4)
    np.testing.assert_allclose(m.standard_errors_, mle.standard_errors_, rtol=1e-3)
    assert m.log_likelihood_ == pytest.approx(mle.log_likelihood_, abs=1e-6)
    assert m.fit_info_["method"] == "map"


def test_map_is_the_mode_of_a_known_posterior():
    # sBG with a Beta-like pull: a strong Gamma prior on alpha moves the mode to where the
    # derivative of the log likelihood plus the log prior vanishes; checked by differences.
    survivors = [1000, 631, 468, 382, 326, 289, 262, 241]
    priors = {"alpha": P.Gamma(20.0, 10.0), "beta": P.Gamma(2.0, 1.0)}
    m = clvrs.ShiftedBetaGeoModel().fit(survivors=survivors, method="map", priors=priors)
    assert m.converged_

    def log_posterior(alpha: float, beta: float) -> float:
        fit = clvrs.ShiftedBetaGeoModel.from_params(alpha=alpha, beta=beta)
        s = np.asarray(survivors, dtype=float)
        churn = s[:-1] - s[1:]
        t = np.arange(1, len(s))
        p_churn = np.asarray(fit.churn_probability(t), dtype=float)
        ll = float(np.sum(churn * np.log(p_churn)) + s[-1] * np.log(fit.survival(len(s) - 1)))
        # Gamma(shape, rate) log densities up to constants.
        return ll + 19 * math.log(alpha) - 10 * alpha + math.log(beta) - beta

    a, b = m.params_["alpha"], m.params_["beta"]
    h = 1e-5
    da = (log_posterior(a * (1 + h), b) - log_posterior(a * (1 - h), b)) / (2 * a * h)
    db = (log_posterior(a, b * (1 + h)) - log_posterior(a, b * (1 - h))) / (2 * b * h)
    assert abs(da) < 1e-3 and abs(db) < 1e-3, (da, db)
    mle = clvrs.ShiftedBetaGeoModel().fit(survivors=survivors)
    # The prior (mean 2) pulls alpha up from the MLE's 0.70.
    assert a > mle.params_["alpha"] + 0.05


def test_map_summary_persistence_and_laplace_errors(cdnow):
    m = clvrs.BetaGeoModel().fit(cdnow, method="map")
    frame = m.summary
    assert "MAP" in repr(frame) and "posterior mode (MAP)" in repr(m)
    assert set(m.priors_) >= {"r", "alpha", "a", "b"}
    assert m.fit_info_["log_posterior"] < m.log_likelihood_ + 50
    back = load_document(m.to_dict())
    pd.testing.assert_series_equal(back.params_, m.params_)
    assert back.fit_info_["method"] == "map" and set(back.priors_) == set(m.priors_)
    # With 2,357 customers the posterior of r and alpha is close to normal: their Laplace
    # standard errors are near the NUTS posterior sds (a and b are skewed: b's posterior has a
    # long right tail that the curvature at the mode does not see).
    post = _fit(clvrs.BetaGeoModel(), cdnow, draws=500, chains=2)
    np.testing.assert_allclose(
        m.standard_errors_[["r", "alpha"]], post.standard_errors_[["r", "alpha"]], rtol=0.15
    )
    # Predictions of a MAP fit are at the mode (no draws).
    at_mode = clvrs.BetaGeoModel.from_params(**m.params_.to_dict())
    np.testing.assert_array_equal(m.expected_purchases(cdnow), at_mode.expected_purchases(cdnow))


def test_map_of_spend_with_covariates_and_the_argument_checks(cdnow):
    g = clvrs.GammaGammaModel().fit(cdnow, method="map")
    assert g.fit_info_["method"] == "map" and g.converged_
    covs = cdnow.assign(big=(cdnow["monetary_value"] > 40).astype(float))
    m = clvrs.BetaGeoModel().fit(covs, method="map", purchase_covariates=["big"])
    assert "big" in m.params_.index[-1] or any("big" in str(i) for i in m.params_.index)
    with pytest.raises(clvrs.exceptions.InvalidParameterError, match="penalizer"):
        clvrs.BetaGeoModel(penalizer=0.1).fit(cdnow, method="map")


def test_covariate_models_average_each_customers_own_model_over_the_draws(cdnow, small):
    covs = cdnow.assign(big=(cdnow["monetary_value"] > 40).astype(float))
    model = _fit(clvrs.BetaGeoModel(), covs, draws=60, purchase_covariates=["big"])
    rows = covs.loc[small.index]
    band = clvrs.prediction_interval(model, "probability_alive", rows, level=0.9)
    # Draw by draw: the model at each draw's parameters and coefficients (no draws attached).
    per_draw = np.vstack(
        [
            np.asarray(model._with_params(row).probability_alive(rows), dtype=float)
            for _, row in _draws(model).iterrows()
        ]
    )
    _check_against_draws(band, per_draw, 0.9)


def test_predictions_that_are_not_per_customer_are_means_over_the_draws():
    survivors = [1000, 631, 468, 382, 326, 289, 262, 241]
    model = clvrs.ShiftedBetaGeoModel(on_failure="ignore").fit(
        survivors=survivors, method="nuts", chains=2, draws=100, tune=200, seed=1
    )
    t = np.arange(1, 13)
    per_draw = np.vstack(
        [
            clvrs.ShiftedBetaGeoModel.from_params(**row.to_dict()).survival(t)
            for _, row in _draws(model).iterrows()
        ]
    )
    np.testing.assert_allclose(model.survival(t), per_draw.mean(axis=0), rtol=1e-12)
    donations = clvrs.datasets.load_donations()
    bgbb = _fit(clvrs.BetaGeoBetaBinomModel(), donations, draws=40)
    per_draw = [
        clvrs.BetaGeoBetaBinomModel.from_params(**row.to_dict()).expected_purchases_new_customer(
            [1, 2, 3]
        )
        for _, row in _draws(bgbb).iterrows()
    ]
    np.testing.assert_allclose(
        bgbb.expected_purchases_new_customer([1, 2, 3]), np.mean(per_draw, axis=0), rtol=1e-12
    )
