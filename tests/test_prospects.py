"""prospect_value: purchases, spend and value of customers not yet acquired.

References: the plain model's closed-form new-customer expectation when every coefficient is
0, and the mean purchases of simulated new customers with the prospects' covariates (each
prospect's own parameters, simulated by the plain model).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs.exceptions import InvalidParameterError

CHANNELS = ["web", "shop", "app"]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    frame = clvrs.datasets.load_cdnow_summary()
    frame["channel"] = (CHANNELS * (len(frame) // 3 + 1))[: len(frame)]
    # A channel effect the fit can find: app customers' records thinned to fewer purchases.
    app = frame["channel"] == "app"
    frame.loc[app, "frequency"] = frame.loc[app, "frequency"] // 2
    frame.loc[app & (frame["frequency"] == 0), "recency"] = 0.0
    return frame


@pytest.fixture(scope="module")
def prospects() -> pd.DataFrame:
    return pd.DataFrame({"channel": CHANNELS}, index=["p1", "p2", "p3"])


def _per_customer(model, names, channel):
    """The plain model's parameters for a customer of ``channel``."""
    p = model.params_
    coef = {k: v for k, v in p.items() if ":" in k}
    z_purchase = sum(v for k, v in coef.items() if k == f"purchase:channel[{channel}]")
    z_dropout = sum(v for k, v in coef.items() if k == f"dropout:channel[{channel}]")
    values = {n: float(p[n]) for n in names}
    values["alpha"] *= math.exp(-z_purchase)
    if "beta" in values:  # Pareto/NBD: beta_i = beta exp(-z gamma)
        values["beta"] *= math.exp(-z_dropout)
    else:  # BG/NBD: a and b scaled by exp(z gamma)
        values["a"] *= math.exp(z_dropout)
        values["b"] *= math.exp(z_dropout)
    return values


@pytest.mark.parametrize(
    "cls, names",
    [
        (clvrs.ParetoNBDModel, ("r", "alpha", "s", "beta")),
        (clvrs.BetaGeoModel, ("r", "alpha", "a", "b")),
    ],
)
@pytest.mark.filterwarnings("ignore::clvrs.ConvergenceWarning")
def test_prospects_match_simulated_new_customers(data, prospects, cls, names):
    # (BG/NBD with the channel on dropout too runs a and b of the reference channel to about
    # 1e-6, where the simulator's Beta draws and the closed form part: purchase only there.)
    dropout = "channel" if cls is clvrs.ParetoNBDModel else None
    model = cls().fit(data, purchase_covariates="channel", dropout_covariates=dropout)
    out = clvrs.prospect_value(model, 30.0, prospects, time=6, discount_rate=0.0)
    horizon = 6 * 4.348  # weeks in six months (the model's unit defaults to weeks)
    for label, channel in zip(prospects.index, CHANNELS):
        plain = cls.from_params(**_per_customer(model, names, channel))
        closed = plain.expected_purchases_new_customer(horizon)
        # The first purchase plus the repeat purchases of a new customer.
        assert out.loc[label, "expected_purchases"] == pytest.approx(1 + closed, rel=1e-3)
        sim = plain.simulate(np.full(100_000, horizon), seed=5)["frequency"]
        se = sim.std() / math.sqrt(len(sim))
        assert abs(1 + sim.mean() - out.loc[label, "expected_purchases"]) < 4 * se
        # Undiscounted: the value is the spend.
        assert out.loc[label, "value"] == pytest.approx(out.loc[label, "expected_spend"])


def test_zero_coefficients_give_the_plain_model(data, prospects):
    model = clvrs.BetaGeoModel().fit(data, purchase_covariates="channel")
    for name in model.params_.index:
        if ":" in name:
            model.params_[name] = 0.0
    plain = clvrs.BetaGeoModel.from_params(
        **{k: model.params_[k] for k in ("r", "alpha", "a", "b")}
    )
    with_covariates = clvrs.prospect_value(model, 20.0, prospects, time=12)
    without = clvrs.prospect_value(plain, 20.0, time=12)
    for label in prospects.index:
        for column in without.columns:
            assert with_covariates.loc[label, column] == pytest.approx(
                without[column].iloc[0], rel=1e-12
            )


def test_acquisition_budget_takes_prospect_values(data, prospects):
    model = clvrs.ParetoNBDModel().fit(data, purchase_covariates="channel")
    spend = clvrs.GammaGammaModel().fit(data[data["frequency"] > 0])
    out = clvrs.prospect_value(model, spend, prospects)
    assert np.allclose(
        out["expected_spend"] / out["expected_purchases"], spend.population_mean_spend()
    )
    budget = clvrs.acquisition_budget(out["value"], acquisition_cost=5.0, by=prospects["channel"])
    assert list(budget.index) == sorted(CHANNELS)
    assert budget.loc["web", "mean_clv"] == pytest.approx(out.loc["p1", "value"])
    # The correlated Pareto/NBD has new-customer predictions too.
    cor = clvrs.CorrelatedParetoNBDModel.from_params(
        r=0.55, alpha=10.6, s=0.61, beta=11.7, correlation=0.05
    )
    assert clvrs.prospect_value(cor, 10.0)["value"].iloc[0] > 10.0


def test_refuses_bad_input(data, prospects):
    model = clvrs.BetaGeoModel().fit(data, purchase_covariates="channel")
    with pytest.raises(InvalidParameterError, match="prospects"):
        clvrs.prospect_value(model, 10.0)
    with pytest.raises(InvalidParameterError, match="time"):
        clvrs.prospect_value(model, 10.0, prospects, time=0)
    with pytest.raises(InvalidParameterError, match="spend"):
        clvrs.prospect_value(model, "ten", prospects)
    with pytest.raises(InvalidParameterError, match="spend"):
        clvrs.prospect_value(model, [1.0, 2.0], prospects)
    with pytest.raises(InvalidParameterError, match="discount_rate"):
        clvrs.prospect_value(model, 1.0, prospects, discount_rate=-2.0)


def test_delta_intervals_agree_with_the_bootstrap_and_cover_the_estimate(data, prospects):
    """The delta-method standard errors of a prospect's value against an independent
    nonparametric bootstrap of the same prediction (200 refits: its sd is within about 10% of
    the true sd, so 25% separates agreement from a wrong gradient or covariance)."""
    plain = clvrs.BetaGeoModel().fit(data)
    spend = clvrs.GammaGammaModel().fit(data[data["frequency"] > 0])
    table = clvrs.prospect_value(plain, 35.0, time=12, level=0.9)
    assert list(table.columns[:4]) == [
        "expected_purchases",
        "expected_purchases_se",
        "expected_purchases_lower",
        "expected_purchases_upper",
    ]
    point = clvrs.prospect_value(plain, 35.0, time=12)
    for column in ("expected_purchases", "expected_spend", "value"):
        assert table[column].iloc[0] == pytest.approx(point[column].iloc[0], rel=1e-15)
        assert table[f"{column}_lower"].iloc[0] < point[column].iloc[0]
        assert table[f"{column}_upper"].iloc[0] > point[column].iloc[0]
    boot = clvrs.bootstrap(
        plain,
        data,
        200,
        seed=3,
        predict=lambda m: clvrs.prospect_value(m, 35.0, time=12)["value"].to_numpy(),
    )
    boot_sd = float(boot.predictions.iloc[:, 0].std())
    assert table["value_se"].iloc[0] == pytest.approx(boot_sd, rel=0.25)
    # With a fitted spend model its uncertainty adds to the value's (independent fits).
    both = clvrs.prospect_value(plain, spend, time=12, level=0.9)
    assert both["value_se"].iloc[0] > table["value_se"].iloc[0] * (
        both["value"].iloc[0] / table["value"].iloc[0]
    )
    # Per prospect with covariates.
    with_channels = clvrs.BetaGeoModel().fit(data, purchase_covariates=["channel"])
    per = clvrs.prospect_value(with_channels, 35.0, prospects, level=0.8)
    assert list(per.index) == ["p1", "p2", "p3"]
    assert (per["value_lower"] < per["value"]).all() and (per["value"] < per["value_upper"]).all()


def test_intervals_need_a_level_and_a_covariance(data):
    plain = clvrs.BetaGeoModel().fit(data)
    for level in (0.0, 1.0, "0.9", True):
        with pytest.raises(InvalidParameterError, match="level"):
            clvrs.prospect_value(plain, 35.0, level=level)
    known = clvrs.BetaGeoModel.from_params(r=0.24, alpha=4.4, a=0.79, b=2.4)
    assert len(clvrs.prospect_value(known, 35.0)) == 1
    with pytest.raises(clvrs.ClvError, match="covariance"):
        clvrs.prospect_value(known, 35.0, level=0.9)
