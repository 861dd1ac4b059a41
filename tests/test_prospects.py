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
