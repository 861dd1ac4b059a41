"""Many models at once, prediction intervals (delta method, bootstrap) and simulation:
segment fits equal separate fits, intervals cover the truth at their nominal rate on data
simulated with known parameters, and everything is reproducible for any thread count."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs.exceptions import NotFittedError

TRUTH = {"r": 0.5, "alpha": 6.0, "a": 0.8, "b": 2.5}


@pytest.fixture(scope="module")
def segmented_data(cdnow):
    data = cdnow.copy()
    data["channel"] = np.where(
        data.index % 3 == 0, "web", np.where(data.index % 3 == 1, "shop", "app")
    )
    data.loc[data.index[:7], "channel"] = "partner"  # too small to fit
    return data


def test_segment_fits_equal_separate_fits(segmented_data):
    fits = clvrs.fit_segments(clvrs.BetaGeoModel(), segmented_data, "channel", min_customers=50)
    assert set(fits.models_) == {"web", "shop", "app"}
    assert "fewer than the 50" in fits.failures_["partner"]
    assert fits.sizes_["partner"] == 7
    for key, model in fits.models_.items():
        alone = clvrs.BetaGeoModel(n_jobs=1).fit(segmented_data[segmented_data["channel"] == key])
        # The same optimum, reached from the pooled estimate instead of the default starts.
        pd.testing.assert_series_equal(model.params_, alone.params_, rtol=1e-5)
        assert model.log_likelihood_ == pytest.approx(alone.log_likelihood_, rel=1e-12)
    table = fits.fit_table
    assert (
        table.loc["partner", "status"].startswith("column `segment`")
        or "fewer" in table.loc["partner", "status"]
    )
    assert table.loc["web", "converged"]
    summary = fits.summary
    assert summary.index.names == ["segment", "parameter"]
    assert summary.loc[("web", "r"), "coef"] == fits.models_["web"].params_["r"]
    # Predictions are routed by each row's segment; segments without a model give NaN.
    expected = fits.expected_purchases(segmented_data, t=52)
    web = segmented_data["channel"] == "web"
    np.testing.assert_array_equal(
        expected[web], fits.models_["web"].expected_purchases(segmented_data[web], t=52)
    )
    assert expected[segmented_data["channel"] == "partner"].isna().all()


def test_segments_are_thread_count_independent_and_persist(segmented_data, tmp_path):
    one = clvrs.fit_segments(clvrs.BetaGeoModel(n_jobs=1), segmented_data, "channel")
    two = clvrs.fit_segments(clvrs.BetaGeoModel(n_jobs=2), segmented_data, "channel")
    pd.testing.assert_frame_equal(one.summary, two.summary, check_exact=True)
    path = tmp_path / "segments.json"
    one.save(path)
    loaded = clvrs.load(path)
    assert isinstance(loaded, clvrs.SegmentedModel)
    pd.testing.assert_frame_equal(loaded.summary, one.summary, check_exact=True)
    assert loaded.failures_ == one.failures_
    pd.testing.assert_series_equal(
        loaded.probability_alive(segmented_data), one.probability_alive(segmented_data)
    )
    unpickled = pickle.loads(pickle.dumps(one))
    pd.testing.assert_frame_equal(unpickled.summary, one.summary)
    # Segments given as an array, and a cohort-style integer key.
    by_array = clvrs.fit_segments(
        clvrs.ParetoNBDModel(), segmented_data, segmented_data["channel"].to_numpy()
    )
    assert set(by_array.models_) == {"web", "shop", "app"}


@pytest.mark.parametrize(
    "keys",
    [
        np.array([-3, 0, 7], dtype=np.int64),  # compact: numbered through a table
        np.array([5, 200, 77], dtype=np.uint8),
        np.array([-(2**62), 10**15, 2**62], dtype=np.int64),  # sparse: through a hash
        np.array([-100, 28, 100], dtype=np.int8),  # a span the type itself cannot hold
        np.array([-30000, 0, 30000], dtype=np.int16),
        np.array([0, 2**63, 2**64 - 1], dtype=np.uint64),  # beyond int64
    ],
)
def test_integer_segment_keys_number_like_pandas(segmented_data, keys):
    """Integer segments (cohort numbers) keep their values and sorted order whichever way
    they are numbered, and fit the same models as the same segments named by strings."""
    from clvrs.segments import _factorize_sorted

    labels = {"web": keys[0], "shop": keys[1], "app": keys[2], "partner": keys[0]}
    by = segmented_data["channel"].map(labels).to_numpy().astype(keys.dtype)
    codes, uniques = _factorize_sorted(by)
    want_codes, want_uniques = pd.factorize(by, sort=True)
    np.testing.assert_array_equal(codes, want_codes)
    np.testing.assert_array_equal(uniques, want_uniques)
    assert uniques.dtype == keys.dtype
    by_int = clvrs.fit_segments(clvrs.BetaGeoModel(), segmented_data, by)
    by_name = clvrs.fit_segments(
        clvrs.BetaGeoModel(),
        segmented_data.assign(channel=segmented_data["channel"].replace("partner", "web")),
        "channel",
    )
    assert sorted(by_int.models_) == sorted(int(k) for k in keys)
    for name, key in [("web", keys[0]), ("shop", keys[1]), ("app", keys[2])]:
        pd.testing.assert_series_equal(
            by_int.models_[int(key)].params_, by_name.models_[name].params_, check_exact=True
        )


def test_a_pooled_estimate_on_a_plateau_does_not_hold_segments_there():
    """BG/NBD on segments drawn from very different Pareto/NBD processes: the pooled fit runs
    off (a and b towards infinity), and segment fits started there had converged on that
    plateau, up to 63 log-likelihood units below separate fits."""
    rng = np.random.default_rng(0)
    processes = [
        dict(r=0.55, alpha=10.6, s=0.61, beta=11.7),
        dict(r=0.55, alpha=10.6, s=0.01, beta=1e4),
        dict(r=5, alpha=50, s=3, beta=3000),
        dict(r=0.05, alpha=1.0, s=2.0, beta=2.0),
    ]
    parts = []
    for i, params in enumerate(processes):
        part = clvrs.ParetoNBDModel.from_params(**params).simulate(
            26 + 52 * rng.random(3000), seed=10 + i
        )
        parts.append(part.assign(segment=i))
    data = pd.concat(parts, ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pooled = clvrs.BetaGeoModel().fit(data)
        assert pooled.params_["b"] > 1e8  # the premise: the pooled estimate runs off
        fits = clvrs.fit_segments(clvrs.BetaGeoModel(), data, "segment")
        for key, model in fits.models_.items():
            alone = clvrs.BetaGeoModel().fit(data[data["segment"] == key])
            assert model.log_likelihood_ >= alone.log_likelihood_ - 1e-6 * abs(
                alone.log_likelihood_
            ), key


def test_a_segment_on_a_nested_plateau_is_the_models_own_optimum():
    """Pareto/NBD segments, one drawn with a single dropout rate for everyone (s and beta
    huge): its fit runs off along the exponential-dropout plateau (s and beta to infinity
    together), where ``fit_segments`` keeps the warm fit without refitting from the model's own
    starts. Its log-likelihood is that of the model's own fit from all its starts."""
    rng = np.random.default_rng(0)
    processes = [
        (dict(r=0.55, alpha=10.6, s=0.61, beta=11.7), 2000),
        (dict(r=0.55, alpha=10.6, s=1e6, beta=5e7), 1000),
    ]
    parts = []
    for i, (params, n) in enumerate(processes):
        part = clvrs.ParetoNBDModel.from_params(**params).simulate(26 + 52 * rng.random(n), seed=i)
        parts.append(part.assign(segment=i))
    data = pd.concat(parts, ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = clvrs.fit_segments(clvrs.ParetoNBDModel(), data, "segment")
        for key, model in fits.models_.items():
            alone = clvrs.ParetoNBDModel().fit(data[data["segment"] == key])
            assert model.converged_
            assert model.log_likelihood_ == pytest.approx(alone.log_likelihood_, rel=1e-9), key
    plateau = fits.models_[1].params_
    # The premise: the second segment's fit is on the plateau (s / beta the dropout rate).
    assert plateau["s"] > 1e4 and plateau["beta"] > 1e4
    assert plateau["s"] / plateau["beta"] == pytest.approx(0.02, rel=0.2)


def test_simulation_follows_the_model():
    model = clvrs.BetaGeoModel.from_params(**TRUTH)
    ages = np.full(100_000, 39.0)
    sim = model.simulate(ages, seed=4)
    assert sim["frequency"].mean() == pytest.approx(
        model.expected_purchases_new_customer(39.0), rel=0.02
    )
    pd.testing.assert_frame_equal(model.simulate(ages[:50], seed=4), sim.head(50))
    pareto = clvrs.ParetoNBDModel.from_params(r=0.55, alpha=10.6, s=0.6, beta=11.7)
    sim = pareto.simulate(ages, seed=5)
    assert sim["frequency"].mean() == pytest.approx(
        pareto.expected_purchases_new_customer(39.0), rel=0.02
    )
    assert (sim["recency"] <= sim["T"]).all()


def test_wald_and_delta_intervals_cover_at_the_nominal_rate():
    """200 datasets of 3,000 customers drawn with known parameters: 95% Wald intervals of each
    parameter and 90% delta-method intervals of E[X(52)] cover the truth at their rates."""
    truth = clvrs.BetaGeoModel.from_params(**TRUTH)
    true_e52 = truth.expected_purchases_new_customer(52.0)
    rng = np.random.default_rng(0)
    n_sets = 200
    covered = np.zeros(4)
    covered_e52 = 0
    for k in range(n_sets):
        ages = rng.uniform(26, 78, size=3000)
        data = truth.simulate(ages, seed=1000 + k)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model = clvrs.BetaGeoModel(n_jobs=1).fit(data)
        s = model.summary
        covered += ((s["lower"] <= pd.Series(TRUTH)) & (pd.Series(TRUTH) <= s["upper"])).to_numpy()
        band = clvrs.delta_interval(
            lambda m: np.array([m.expected_purchases_new_customer(52.0)]), [model], level=0.9
        )
        covered_e52 += int(band["lower"].iloc[0] <= true_e52 <= band["upper"].iloc[0])
    rate = covered / n_sets
    # Binomial(200, 0.95): 3 standard deviations is 0.046.
    assert np.all((rate > 0.95 - 0.046) & (rate < 1.0)), rate
    assert abs(covered_e52 / n_sets - 0.90) < 0.064, covered_e52


def test_delta_interval_of_a_parameter_is_its_standard_error(cdnow):
    model = clvrs.BetaGeoModel().fit(cdnow)
    band = clvrs.delta_interval(lambda m: np.array([m.params_["alpha"]]), [model])
    assert band["se"].iloc[0] == pytest.approx(model.standard_errors_["alpha"], rel=1e-6)
    alive = clvrs.prediction_interval(model, "probability_alive", cdnow)
    assert ((alive["lower"] <= alive["estimate"]) & (alive["estimate"] <= alive["upper"])).all()
    assert ((alive["lower"] >= 0) & (alive["upper"] <= 1)).all()
    spend = clvrs.GammaGammaModel().fit(cdnow)
    clv = clvrs.delta_interval(
        lambda m, g: clvrs.customer_lifetime_value(m, g, cdnow.head(20)), [model, spend]
    )
    assert (clv["se"] > 0).all() and (clv["lower"] < clv["estimate"]).all()
    with pytest.raises(NotFittedError):
        clvrs.prediction_interval(
            clvrs.BetaGeoModel.from_params(**TRUTH), "expected_purchases", cdnow, t=1.0
        )


def test_bootstrap_is_reproducible_for_any_thread_count(cdnow):
    model = clvrs.BetaGeoModel().fit(cdnow)
    head = cdnow.head(5)

    def predict(m):
        return m.expected_purchases(head, t=52)

    one = clvrs.bootstrap(model, cdnow, 24, seed=3, n_jobs=1, predict=predict, progress=False)
    two = clvrs.bootstrap(model, cdnow, 24, seed=3, n_jobs=2, predict=predict, progress=False)
    pd.testing.assert_frame_equal(one.params, two.params, check_exact=True)
    pd.testing.assert_frame_equal(one.predictions, two.predictions, check_exact=True)
    assert one.failed == 0
    assert (one.param_intervals["lower"] < model.params_).all()
    assert (one.param_intervals["upper"] > model.params_).all()
    other = clvrs.bootstrap(model, cdnow, 24, seed=4, progress=False)
    assert not other.params.equals(one.params)
    parametric = clvrs.bootstrap(model, cdnow, 24, seed=3, kind="parametric", progress=False)
    assert parametric.params.shape == (24, 4)
    bgbb = clvrs.BetaGeoBetaBinomModel(columns={"weights": "weights"}).fit(
        clvrs.datasets.load_donations()
    )
    nonparametric = clvrs.bootstrap(bgbb, clvrs.datasets.load_donations(), 8, progress=False)
    assert nonparametric.failed == 0
    with pytest.raises(clvrs.InvalidParameterError, match="simulate"):
        clvrs.bootstrap(bgbb, clvrs.datasets.load_donations(), 4, kind="parametric")


def test_simulated_transaction_logs_summarise_back_to_their_histories():
    model = clvrs.ParetoNBDModel.from_params(r=0.55, alpha=10.6, s=0.6, beta=11.7)
    spend = clvrs.GammaGammaModel.from_params(p=6.0, q=4.0, gamma=15.0)
    ages = np.random.default_rng(1).uniform(26, 78, size=3000)
    log = clvrs.simulate_transactions(
        model, ages, end="2020-01-01", time_unit="D", spend_model=spend, seed=9
    )
    histories = model.simulate(ages, seed=9)
    summary = clvrs.summarize_transactions(
        log, "customer_id", "date", monetary_value_col="amount", freq="H", freq_multiplier=24
    )
    assert len(summary) == len(ages)
    # Times floored to hours: purchases in the same hour merge (rarely), recency and T are
    # within an hour or two.
    merged = histories["frequency"].to_numpy() - summary["frequency"].to_numpy()
    assert (merged >= 0).all() and (merged > 0).mean() < 0.02
    np.testing.assert_allclose(summary["T"], histories["T"], atol=1 / 24 + 1e-9)
    np.testing.assert_allclose(summary["recency"], histories["recency"], atol=2 / 24 + 1e-9)
    assert (log["amount"] > 0).all()
    refit = clvrs.ParetoNBDModel().fit(summary)
    assert np.isfinite(refit.log_likelihood_)
