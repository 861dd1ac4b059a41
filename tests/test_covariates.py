"""Covariates in the purchase and dropout processes (BG/NBD, MBG/NBD, Pareto/NBD)."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs._base import load_document
from clvrs.exceptions import InvalidDataError, InvalidParameterError

MODELS = {
    "bg": (clvrs.BetaGeoModel, {"r": 0.8, "alpha": 4.0, "a": 0.7, "b": 2.5}),
    "mbg": (clvrs.ModifiedBetaGeoModel, {"r": 0.8, "alpha": 4.0, "a": 0.7, "b": 2.5}),
    "pnbd": (clvrs.ParetoNBDModel, {"r": 0.8, "alpha": 4.0, "s": 0.6, "beta": 10.0}),
}


def shifted(kind: str, base: dict[str, float], purchase: float, dropout: float) -> dict[str, float]:
    """A customer's parameters under the documented links (linear predictors given)."""
    p = dict(base)
    p["alpha"] = base["alpha"] * math.exp(-purchase)
    if kind == "pnbd":
        p["beta"] = base["beta"] * math.exp(-dropout)
    else:
        p["a"] = base["a"] * math.exp(dropout)
        p["b"] = base["b"] * math.exp(dropout)
    return p


def simulate(kind: str, n: int, g_purchase: float, g_dropout: float, seed: int) -> pd.DataFrame:
    """Customers with a 0/1 covariate `flag` acting on both processes, drawn exactly."""
    cls, base = MODELS[kind]
    rng = np.random.default_rng(seed)
    flag = rng.random(n) < 0.4
    ages = rng.uniform(20, 60, n)
    frame = pd.DataFrame({"T": ages, "flag": flag.astype(float)})
    frame["frequency"] = 0.0
    frame["recency"] = 0.0
    for value in (0, 1):
        rows = np.flatnonzero(flag == value)
        params = shifted(kind, base, g_purchase * value, g_dropout * value)
        sim = cls.from_params(**params).simulate(ages[rows], seed=seed * 2 + value)
        frame.loc[rows, "frequency"] = sim["frequency"].to_numpy()
        frame.loc[rows, "recency"] = sim["recency"].to_numpy()
    return frame


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    data = clvrs.datasets.load_cdnow_summary()
    rng = np.random.default_rng(3)
    data["size"] = rng.normal(size=len(data))
    data["channel"] = rng.choice(["email", "store", "web"], size=len(data))
    return data


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_zero_coefficients_give_the_base_likelihood_and_predictions(kind, cdnow):
    cls, _ = MODELS[kind]
    base = cls().fit(cdnow)
    model = cls().fit(cdnow, purchase_covariates=["size"], dropout_covariates=["channel"])
    params = model.params_.copy()
    params[:] = 0.0
    params[list(base.params_.index)] = base.params_.to_numpy()
    at_zero = model._with_params(params)
    ll = at_zero.log_likelihood_per_customer(cdnow).sum()
    assert ll == pytest.approx(base.log_likelihood_, rel=1e-12)
    np.testing.assert_allclose(
        at_zero.expected_purchases(cdnow, t=10), base.expected_purchases(cdnow, t=10), rtol=1e-12
    )
    np.testing.assert_allclose(
        at_zero.probability_alive(cdnow), base.probability_alive(cdnow), rtol=1e-12
    )
    # More parameters can only raise the maximum.
    assert model.log_likelihood_ >= base.log_likelihood_ - 1e-6


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_predictions_use_each_customers_parameters(kind, cdnow):
    cls, _ = MODELS[kind]
    model = cls().fit(cdnow, purchase_covariates=["size", "channel"], dropout_covariates=["size"])
    p = model.params_
    base = {name: p[name] for name in cls._param_names}
    for row in (0, 7, 123):
        customer = cdnow.iloc[[row]]
        channel = customer["channel"].iloc[0]
        size = customer["size"].iloc[0]
        eta_purchase = p["purchase:size"] * size + (
            p[f"purchase:channel[{channel}]"] if channel != "email" else 0.0
        )
        eta_dropout = p["dropout:size"] * size
        own = cls.from_params(**shifted(kind, base, eta_purchase, eta_dropout))
        assert model.expected_purchases(customer, t=20).iloc[0] == pytest.approx(
            own.expected_purchases(customer, t=20).iloc[0], rel=1e-12
        )
        assert model.probability_alive(customer).iloc[0] == pytest.approx(
            own.probability_alive(customer).iloc[0], rel=1e-12
        )
        assert model.log_likelihood_per_customer(customer).iloc[0] == pytest.approx(
            own.log_likelihood_per_customer(customer).iloc[0], rel=1e-12
        )


def test_summary_has_coefficients_with_z_p_and_reference_levels(cdnow):
    model = clvrs.ParetoNBDModel().fit(
        cdnow, purchase_covariates=["channel"], dropout_covariates=["size"], tied_covariates=[]
    )
    s = model.summary
    assert list(s.index) == [
        "r",
        "alpha",
        "s",
        "beta",
        "purchase:channel[store]",
        "purchase:channel[web]",
        "dropout:size",
    ]
    row = s.loc["dropout:size"]
    assert row["z"] == pytest.approx(row["coef"] / row["se"])
    assert row["p"] == pytest.approx(math.erfc(abs(row["z"]) / math.sqrt(2)))
    assert row["lower"] == pytest.approx(row["coef"] - 1.959964 * row["se"], rel=1e-6)
    assert s.loc["purchase:channel[web]", "reference"] == "channel=email"
    assert pd.isna(s.loc["dropout:size", "reference"])
    assert math.isnan(s.loc["r", "z"])
    # Coefficients are never flagged by the log-scale rule meant for positive parameters.
    assert not any(name.startswith("dropout:") for name in model.fit_info_["weakly_identified"])


def test_tied_covariates_share_one_coefficient(cdnow):
    tied = clvrs.BetaGeoModel().fit(cdnow, tied_covariates=["size"])
    assert [n for n in tied.params_.index if ":" in n] == ["tied:size"]
    free = clvrs.BetaGeoModel().fit(
        cdnow, purchase_covariates=["size"], dropout_covariates=["size"]
    )
    # The constrained model is nested in the free one.
    assert free.log_likelihood_ >= tied.log_likelihood_ - 1e-6
    g = tied.params_["tied:size"]
    customer = cdnow.iloc[[3]]
    z = customer["size"].iloc[0]
    base = {k: tied.params_[k] for k in ("r", "alpha", "a", "b")}
    own = clvrs.BetaGeoModel.from_params(**shifted("bg", base, g * z, g * z))
    assert tied.probability_alive(customer).iloc[0] == pytest.approx(
        own.probability_alive(customer).iloc[0], rel=1e-12
    )


def test_penalizer_shrinks_the_coefficients():
    data = simulate("bg", 3000, 0.6, 0.5, seed=5)
    free = clvrs.BetaGeoModel().fit(data, purchase_covariates="flag", dropout_covariates="flag")
    shrunk = clvrs.BetaGeoModel().fit(
        data, purchase_covariates="flag", dropout_covariates="flag", covariate_penalizer=0.5
    )
    coefficients = ["purchase:flag", "dropout:flag"]
    assert (shrunk.params_[coefficients].abs() < free.params_[coefficients].abs()).all()
    assert shrunk.fit_info_["covariate_penalizer"] == 0.5
    assert clvrs.BetaGeoModel().fit(data, purchase_covariates="flag")._fit_keywords() == {
        "purchase_covariates": ["flag"],
        "dropout_covariates": [],
        "tied_covariates": [],
        "covariate_penalizer": 0.0,
    }
    with pytest.raises(InvalidParameterError, match="covariate_penalizer"):
        clvrs.BetaGeoModel().fit(data, purchase_covariates="flag", covariate_penalizer=-1)


@pytest.mark.parametrize("kind", ["bg", "pnbd"])
def test_wald_intervals_cover_the_true_coefficients(kind):
    """Parameter recovery: 95% Wald intervals of the coefficients (and of the shared
    parameters) cover the truth at the nominal rate over many simulated datasets (3-sigma
    binomial band)."""
    cls, base = MODELS[kind]
    truth = {**base, "purchase:flag": 0.5, "dropout:flag": 0.4}
    n_sets = 300 if kind == "bg" else 80
    hits = {name: 0 for name in truth}
    for seed in range(n_sets):
        data = simulate(kind, 1500, 0.5, 0.4, seed=100 + seed)
        model = cls().fit(data, purchase_covariates="flag", dropout_covariates="flag")
        frame = model.summary_frame(0.95)
        for name, value in truth.items():
            hits[name] += bool(frame.loc[name, "lower"] <= value <= frame.loc[name, "upper"])
    band = 3 * math.sqrt(0.95 * 0.05 / n_sets)
    for name, count in hits.items():
        assert 0.95 - band <= count / n_sets <= 1.0, (name, count / n_sets)


def test_persistence_and_pickle_keep_the_covariates(cdnow, tmp_path):
    model = clvrs.ModifiedBetaGeoModel().fit(
        cdnow, purchase_covariates=["channel"], dropout_covariates=["size"]
    )
    path = tmp_path / "model.json"
    model.save(path)
    loaded = clvrs.load(path)
    np.testing.assert_array_equal(
        loaded.expected_purchases(cdnow, t=5), model.expected_purchases(cdnow, t=5)
    )
    pd.testing.assert_frame_equal(loaded.summary, model.summary)
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.probability_alive(cdnow), model.probability_alive(cdnow))
    doc = json.loads(model.to_json())
    assert doc["covariates"]["levels"] == {"channel": ["email", "store", "web"]}
    # A base model document has no covariates.
    assert "covariates" not in clvrs.BetaGeoModel().fit(cdnow).to_dict()
    assert load_document(clvrs.BetaGeoModel().fit(cdnow).to_dict()).covariates_ is None


def test_polars_input_and_categoricals(cdnow):
    pl = pytest.importorskip("polars")
    frame = cdnow.reset_index(drop=True)
    pandas_fit = clvrs.BetaGeoModel().fit(frame, purchase_covariates=["channel", "size"])
    polars_fit = clvrs.BetaGeoModel().fit(
        pl.from_pandas(frame), purchase_covariates=["channel", "size"]
    )
    np.testing.assert_allclose(polars_fit.params_, pandas_fit.params_, rtol=1e-10)
    out = polars_fit.expected_purchases(pl.from_pandas(frame), t=4)
    assert isinstance(out, pl.Series)
    # A pandas categorical's first category is the reference level.
    ordered = frame.assign(
        channel=pd.Categorical(frame["channel"], categories=["web", "email", "store"])
    )
    model = clvrs.BetaGeoModel().fit(ordered, purchase_covariates="channel")
    assert list(model.params_.index[4:]) == ["purchase:channel[email]", "purchase:channel[store]"]


def test_bad_covariates_are_refused_with_column_and_row(cdnow):
    model = clvrs.BetaGeoModel().fit(cdnow, purchase_covariates=["channel", "size"])
    unseen = cdnow.iloc[:5].copy()
    unseen.iloc[2, unseen.columns.get_loc("channel")] = "phone"
    with pytest.raises(InvalidDataError, match="phone") as info:
        model.expected_purchases(unseen, t=1)
    assert (info.value.column, info.value.row) == ("channel", 2)
    missing = cdnow.iloc[:5].copy()
    missing.iloc[3, missing.columns.get_loc("size")] = np.nan
    with pytest.raises(InvalidDataError) as info:
        model.probability_alive(missing)
    assert (info.value.column, info.value.row) == ("size", 3)
    with pytest.raises(InvalidDataError, match="missing"):
        model.probability_alive(cdnow.drop(columns="size"))
    with pytest.raises(InvalidDataError, match="DataFrame"):
        model.probability_alive(frequency=[1.0], recency=[1.0], T=[2.0])
    with pytest.raises(InvalidDataError, match="constant"):
        clvrs.BetaGeoModel().fit(cdnow.assign(one=1.0), purchase_covariates="one")
    with pytest.raises(InvalidDataError, match="single level"):
        clvrs.BetaGeoModel().fit(cdnow.assign(c="x"), purchase_covariates="c")
    with pytest.raises(InvalidParameterError, match="not a covariate"):
        clvrs.BetaGeoModel().fit(cdnow, purchase_covariates="T")
    with pytest.raises(InvalidParameterError, match="does not take covariates"):
        clvrs.NBDModel().fit(cdnow, purchase_covariates="size")
    with pytest.raises(InvalidParameterError, match="covariates"):
        model.expected_purchases_new_customer(10)
    with pytest.raises(InvalidParameterError, match="only used by models fitted with"):
        clvrs.BetaGeoModel().fit(cdnow).expected_purchases_new_customer(10, cdnow)
    with pytest.raises(InvalidParameterError, match="covariates"):
        model.simulate([10.0])


def test_value_and_intervals_work_with_covariates(cdnow):
    model = clvrs.BetaGeoModel().fit(
        cdnow, purchase_covariates=["size"], dropout_covariates=["size"]
    )
    spend = clvrs.GammaGammaModel().fit(cdnow)
    clv = clvrs.customer_lifetime_value(model, spend, cdnow, time=12, discount_rate=0.01)
    assert np.isfinite(clv).all() and (clv >= 0).all()
    band = clvrs.prediction_interval(model, "probability_alive", cdnow.iloc[:50])
    assert ((band["lower"] <= band["estimate"]) & (band["estimate"] <= band["upper"])).all()
    boot = clvrs.bootstrap(model, cdnow, n_boot=4, seed=1, progress=False)
    assert list(boot.params.columns) == list(model.params_.index)
    with pytest.raises(InvalidParameterError, match="nonparametric"):
        clvrs.bootstrap(model, cdnow, n_boot=4, kind="parametric", progress=False)


def test_likelihood_ratio_and_holdout_with_covariates(cdnow):
    base = clvrs.BetaGeoModel().fit(cdnow)
    richer = clvrs.BetaGeoModel().fit(cdnow, purchase_covariates=["size", "channel"])
    test = clvrs.likelihood_ratio_test(base, richer)
    assert test["df"] == 3
    assert test["statistic"] == pytest.approx(2 * (richer.log_likelihood_ - base.log_likelihood_))
    with pytest.raises(InvalidParameterError):
        clvrs.likelihood_ratio_test(richer, base)
    split = cdnow.rename(columns={"frequency": "frequency_cal", "recency": "recency_cal"})
    split = split.rename(columns={"T": "T_cal"}).assign(
        frequency_holdout=cdnow["frequency"] / 2, duration_holdout=20.0
    )
    check = clvrs.holdout_evaluation(richer, split)
    expected = richer.expected_purchases(cdnow, t=20.0)
    np.testing.assert_allclose(check.customers["predicted"], expected.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_new_customers_use_their_covariates(kind, cdnow):
    cls, _ = MODELS[kind]
    model = cls().fit(cdnow, purchase_covariates=["size"], dropout_covariates=["channel"])
    p = model.params_
    base = {name: p[name] for name in cls._param_names}
    new = cdnow.iloc[:6]
    expected = model.expected_purchases_new_customer(26, new)
    probability = model.purchase_count_probability(1, 26, new)
    assert list(expected.index) == list(new.index)
    for row in range(6):
        channel = new["channel"].iloc[row]
        dropout = p[f"dropout:channel[{channel}]"] if channel != "email" else 0.0
        own = cls.from_params(
            **shifted(kind, base, p["purchase:size"] * new["size"].iloc[row], dropout)
        )
        assert expected.iloc[row] == pytest.approx(
            own.expected_purchases_new_customer(26), rel=1e-12
        )
        assert probability.iloc[row] == pytest.approx(
            own.purchase_count_probability(1, 26), rel=1e-12
        )
    per_row = model.expected_purchases_new_customer(np.arange(1.0, 7.0), new)
    assert per_row.iloc[5] == pytest.approx(
        model.expected_purchases_new_customer(6.0, new.iloc[[5]]).iloc[0]
    )
    with pytest.raises(InvalidParameterError, match="one per row"):
        model.expected_purchases_new_customer([1.0, 2.0], new)
