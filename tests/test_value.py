"""Gamma-Gamma spend model and customer value: published CDNOW figures, the refusal of undefined
means, lifetimes-compatible discrete CLV, continuous CLV, segments, RFM scores and budgets."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs.exceptions import InvalidDataError, InvalidParameterError, ModelWarning


@pytest.fixture(scope="module")
def spend(cdnow):
    return clvrs.GammaGammaModel().fit(cdnow)


@pytest.fixture(scope="module")
def bgnbd(cdnow):
    return clvrs.BetaGeoModel().fit(cdnow)


def test_gamma_gamma_reproduces_the_cdnow_fit(spend, cdnow):
    # Published (6.25, 3.74, 15.44) from unrounded spends; the bundled mean spends are rounded
    # to cents. Achieved: (6.2488, 3.7446, 15.4477), LL -4055.92.
    assert spend.params_.to_numpy() == pytest.approx([6.25, 3.74, 15.44], rel=1.5e-3)
    assert spend.log_likelihood_ == pytest.approx(-4055.9, abs=0.05)
    assert spend.fit_info_["n_excluded"] == 1411
    assert spend.n_observations_ == 946
    assert spend.converged_
    expected = spend.expected_average_spend(cdnow).head(10).to_numpy()
    published = [24.65, 18.91, 35.17, 35.17, 35.17, 71.46, 18.91, 35.17, 27.28, 35.17]
    np.testing.assert_allclose(expected, published, atol=0.01)
    assert spend.population_mean_spend() == pytest.approx(35.17, abs=0.01)


def test_gamma_gamma_likelihood_per_customer(spend, cdnow):
    ll = spend.log_likelihood_per_customer(cdnow)
    assert ll[cdnow["frequency"] == 0].isna().all()
    assert ll.sum() == pytest.approx(spend.log_likelihood_, rel=1e-12)
    # The density of the mean spend: x = 1 is the Gamma-Gamma (Lomax-like) density of one value.
    p, q, g = spend.params_
    m = 20.0
    from math import lgamma, log

    direct = lgamma(p + q) - lgamma(p) - lgamma(q) + q * log(g) + (p - 1) * log(m)
    direct -= (p + q) * log(g + m)
    one = spend.log_likelihood_per_customer(frequency=np.array([1.0]), monetary_value=np.array([m]))
    assert one[0] == pytest.approx(direct, rel=1e-13)


def test_undefined_mean_is_refused_not_returned(cdnow):
    model = clvrs.GammaGammaModel.from_params(p=2.0, q=0.9, gamma=10.0)
    with pytest.raises(InvalidParameterError, match="no finite mean"):
        model.population_mean_spend()
    with pytest.raises(InvalidParameterError) as info:
        model.expected_average_spend(cdnow)
    assert info.value.parameter == "q"
    # A fit that lands at q <= 1 warns: heavy-tailed spends (a few huge transactions).
    rng = np.random.default_rng(0)
    x = rng.integers(1, 5, size=3000).astype(float)
    values = 1.0 / rng.beta(0.4, 1.0, size=3000)  # heavy tail
    with pytest.warns(ModelWarning, match="no finite mean"):
        clvrs.GammaGammaModel(on_failure="ignore").fit(frequency=x, monetary_value=values)


def test_gamma_gamma_rejects_bad_spend(cdnow):
    bad = cdnow.copy()
    row = int(np.flatnonzero(bad["frequency"].to_numpy() > 0)[3])  # a repeat buyer
    bad.iloc[row, bad.columns.get_loc("monetary_value")] = -5.0
    with pytest.raises(InvalidDataError) as info:
        clvrs.GammaGammaModel().fit(bad)
    assert info.value.column == "monetary_value" and info.value.row == row
    nobody = pd.DataFrame({"frequency": [0, 0], "monetary_value": [0.0, 0.0]})
    with pytest.raises(InvalidDataError, match="no customer has a repeat"):
        clvrs.GammaGammaModel().fit(nobody)


def test_gamma_gamma_weights_and_persistence(spend, cdnow, tmp_path):
    counts = cdnow.groupby(["frequency", "monetary_value"]).size().rename("n").reset_index()
    weighted = clvrs.GammaGammaModel(columns={"weights": "n"}).fit(counts)
    pd.testing.assert_series_equal(weighted.params_, spend.params_, check_exact=True)
    path = tmp_path / "gg.json"
    spend.save(path)
    loaded = clvrs.load(path)
    pd.testing.assert_series_equal(loaded.params_, spend.params_, check_exact=True)
    assert loaded.fit_info_["n_excluded"] == 1411


def _lifetimes_discrete_clv(model, spend_values, data, months, rate, factor):
    """lifetimes' algorithm, written out: monthly differences of cumulative expectations."""
    total = np.zeros(len(data))
    for i in range(1, months + 1):
        now = model.expected_purchases(data, t=i * factor).to_numpy()
        before = model.expected_purchases(data, t=(i - 1) * factor).to_numpy()
        total += spend_values * (now - before) / (1 + rate) ** i
    return total


@pytest.mark.parametrize(
    "cls", [clvrs.BetaGeoModel, clvrs.ModifiedBetaGeoModel, clvrs.ParetoNBDModel]
)
def test_discrete_clv_follows_the_lifetimes_algorithm(cls, cdnow, spend):
    model = cls().fit(cdnow)
    clv = clvrs.customer_lifetime_value(model, spend, cdnow, time=12, discount_rate=0.01)
    assert isinstance(clv, pd.Series) and clv.index.equals(cdnow.index) and clv.name == "clv"
    reference = _lifetimes_discrete_clv(
        model, spend.expected_average_spend(cdnow).to_numpy(), cdnow, 12, 0.01, 4.345
    )
    np.testing.assert_allclose(clv.to_numpy(), reference, rtol=1e-10)
    half = clvrs.customer_lifetime_value(model, spend, cdnow, margin=0.5)
    np.testing.assert_allclose(half.to_numpy(), 0.5 * clv.to_numpy(), rtol=1e-15)


def test_continuous_clv_numerical_integration_matches_the_exact_dert(cdnow, spend):
    pareto = clvrs.ParetoNBDModel.from_params(r=0.553, alpha=10.578, s=0.606, beta=11.669)
    spends = spend.expected_average_spend(cdnow).to_numpy()
    for rate in [0.001, 0.01, 0.1]:
        exact = clvrs.customer_lifetime_value(
            pareto, spend, cdnow, time=None, discount_rate=rate, method="continuous"
        )
        delta = np.log1p(rate) / 4.345
        from clvrs.value import _dert_rule

        horizons, weights = _dert_rule(delta)
        numeric = pareto.weighted_expected_purchases(cdnow, horizons, weights) * spends
        np.testing.assert_allclose(numeric.to_numpy(), exact.to_numpy(), rtol=1e-10)
    # BG/NBD goes through the numerical rule; more value when discounting less.
    low = clvrs.BetaGeoModel().fit(cdnow)
    a = clvrs.customer_lifetime_value(low, spend, cdnow, time=None, method="continuous")
    b = clvrs.customer_lifetime_value(
        low, spend, cdnow, time=None, method="continuous", discount_rate=0.02
    )
    assert (a > b).all() and (b > 0).all()


def test_clv_input_forms_and_errors(cdnow, bgnbd, spend):
    arrays = {c: cdnow[c].to_numpy(dtype=float) for c in ["frequency", "recency", "T"]}
    arrays["monetary_value"] = cdnow["monetary_value"].to_numpy(dtype=float)
    from_arrays = clvrs.customer_lifetime_value(bgnbd, spend, **arrays)
    from_frame = clvrs.customer_lifetime_value(bgnbd, spend, cdnow)
    np.testing.assert_array_equal(from_arrays, from_frame.to_numpy())
    constant = clvrs.customer_lifetime_value(bgnbd, 30.0, cdnow)
    np.testing.assert_allclose(
        constant.to_numpy(), from_frame.to_numpy() / spend.expected_average_spend(cdnow) * 30.0
    )
    for kwargs, parameter in [
        ({"time": 0}, "time"),
        ({"discount_rate": -1.5}, "discount_rate"),
        ({"margin": -0.1}, "margin"),
        ({"time_unit": "fortnight"}, "time_unit"),
        ({"method": "magic"}, "method"),
        ({"method": "continuous"}, "time"),
        ({"method": "continuous", "time": None, "discount_rate": 0.0}, "discount_rate"),
    ]:
        with pytest.raises(InvalidParameterError) as info:
            clvrs.customer_lifetime_value(bgnbd, spend, cdnow, **kwargs)
        assert info.value.parameter == parameter
    pl = pytest.importorskip("polars")
    frame = pl.from_pandas(cdnow.reset_index())
    polars_clv = clvrs.customer_lifetime_value(bgnbd, spend, frame)
    assert isinstance(polars_clv, pl.Series)
    np.testing.assert_allclose(polars_clv.to_numpy(), from_frame.to_numpy(), rtol=1e-15)


def test_segments_budget_and_rfm(cdnow, bgnbd, spend):
    clv = clvrs.customer_lifetime_value(bgnbd, spend, cdnow)
    tiers = clvrs.clv_segments(clv)
    table = tiers.table
    assert list(table.index) == ["Q4", "Q3", "Q2", "Q1"]
    assert table["customers"].sum() == len(cdnow)
    assert table["share_of_value"].sum() == pytest.approx(1.0)
    assert table["share_of_customers"].sum() == pytest.approx(1.0)
    assert table["value"].sum() == pytest.approx(clv.sum())
    # The top quarter holds most of the value, and tiers do not overlap.
    assert table.loc["Q4", "share_of_value"] > 0.5
    assert table.loc["Q4", "min_value"] >= table.loc["Q3", "max_value"]
    assert tiers.labels.index.equals(clv.index)
    deciles = clvrs.clv_segments(clv, 10)
    assert list(deciles.table.index)[0] == "D10"
    custom = clvrs.clv_segments(clv, [0, 0.8, 0.95, 1], labels=["rest", "high", "top"])
    assert custom.table.loc["top", "customers"] == pytest.approx(0.05 * len(cdnow), abs=1)

    budget = clvrs.acquisition_budget(
        clv, {"Q1": 5.0, "Q2": 5.0, "Q3": 5.0, "Q4": 5.0}, by=tiers.labels, target_ratio=3.0
    )
    assert budget.loc["Q4", "max_affordable_cac"] == pytest.approx(
        clv[tiers.labels == "Q4"].mean() / 3.0
    )
    assert budget.loc["Q4", "clv_to_cac"] == pytest.approx(clv[tiers.labels == "Q4"].mean() / 5)
    with pytest.raises(InvalidParameterError):
        clvrs.acquisition_budget(clv, {"Q1": 5.0}, by=tiers.labels)
    overall = clvrs.acquisition_budget(clv, 10.0)
    assert overall.loc["all", "customers"] == len(cdnow)

    rfm = clvrs.rfm_segments(cdnow)
    assert set(rfm["r"]) == {1, 2, 3, 4} and set(rfm["f"]) == {1, 2, 3, 4}
    assert rfm["score"].equals(rfm["r"] + rfm["f"] + rfm["m"])
    # The most frequent buyer is in the top frequency quartile.
    assert rfm.loc[cdnow["frequency"].idxmax(), "f"] == 4

    history = clvrs.historical_clv(cdnow, lifespan=52.0, margin=0.3)
    x, age, m = cdnow["frequency"], cdnow["T"], cdnow["monetary_value"]
    np.testing.assert_allclose(history.to_numpy(), (m * x / age * 0.3 * 52.0).to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clvrs.historical_clv(cdnow.assign(T=0.0), lifespan=1.0)


def test_continuous_clv_with_the_discrete_time_model():
    """BG/BB counts opportunities: continuous discounting at delta per unit is the rate
    expm1(delta) per opportunity of its DERT."""
    data = clvrs.datasets.load_donations()
    model = clvrs.BetaGeoBetaBinomModel().fit(data)
    spend = clvrs.GammaGammaModel.from_params(p=6.0, q=4.0, gamma=15.0)
    rows = data.assign(monetary_value=30.0).head(20)
    # Yearly opportunities (1/12 per month) at 1% a month: (1.01^12 - 1) per opportunity.
    clv = clvrs.customer_lifetime_value(
        model, spend, rows, time=None, discount_rate=0.01, method="continuous", time_unit=1 / 12
    )
    dert = model.expected_residual_transactions(rows, discount_rate=1.01**12 - 1)
    expected = dert * spend.expected_average_spend(rows)
    np.testing.assert_allclose(clv.to_numpy(), expected.to_numpy(), rtol=1e-12)
