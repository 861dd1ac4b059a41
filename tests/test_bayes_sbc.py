"""Simulation-based calibration (Talts, Betancourt, Simpson, Vehtari & Gelman 2018) of the NUTS
fits of every model with a likelihood (sBG's is in test_bayes.py), and of BG/NBD with a purchase
covariate (the covariate versions' likelihood pass and coefficient).

For each model: parameters drawn from a prior, data simulated from the model at those
parameters, a posterior sample under the same prior, and the rank of each true parameter among
thinned draws. Under a correct likelihood, prior and sampler the ranks are uniform; a
chi-squared test on 5 equal bins of the ranks (4 degrees of freedom) at level 0.001 per
parameter fails a correct model with probability about 0.004 over seeds (four parameters) and
passes at these fixed seeds. It can fail: the same test with a prior in the fit that differs
from the simulating one fails (the last test).

60 data sets per model (12 expected per bin), small data sets and short single chains keep
it cheap enough for CI (about 15-30 s on 2 cores for all of them, depending on load);
``CLVRS_SBC_SETS=200`` runs 200 data sets per model, and GGompertz/NBD (about 3 minutes at 100
sets) runs with ``CLVRS_SBC_SLOW=1``. At 100 sets every model's statistics were below 8 (and
GGompertz/NBD's below 7), against the limit of 18.5.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs import priors as P

SETS = int(os.environ.get("CLVRS_SBC_SETS", "60"))
KEPT, THIN, BINS = 49, 2, 5
#: 0.999 quantile of chi-squared with 4 degrees of freedom.
CHI2_4_999 = 18.467


def _rfm_data(cls, params: dict[str, float], rng: np.random.Generator, n: int) -> pd.DataFrame:
    ages = rng.uniform(20.0, 60.0, size=n)
    model = cls.from_params(**params)
    return model.simulate(ages, seed=int(rng.integers(2**31)))


def _covariate_data(params: dict[str, float], rng: np.random.Generator, n: int) -> pd.DataFrame:
    # A binary purchase covariate z: alpha_i = alpha exp(-gamma z_i) (CLVTools' link).
    z = (rng.uniform(size=n) < 0.5).astype(float)
    ages = rng.uniform(20.0, 60.0, size=n)
    out = np.zeros((n, 2))
    for level in (0.0, 1.0):
        rows = z == level
        alpha = params["alpha"] * np.exp(-params["purchase:z"] * level)
        model = clvrs.BetaGeoModel.from_params(
            r=params["r"], alpha=alpha, a=params["a"], b=params["b"]
        )
        simulated = model.simulate(ages[rows], seed=int(rng.integers(2**31)))
        out[rows] = simulated[["frequency", "recency"]].to_numpy()
    return pd.DataFrame({"frequency": out[:, 0], "recency": out[:, 1], "T": ages, "z": z})


def _bgbb_data(params: dict[str, float], rng: np.random.Generator, n: int) -> pd.DataFrame:
    # FHS (2010): a living customer transacts with probability p at each opportunity and dies at
    # the beginning of each opportunity with probability theta.
    opportunities = 6
    p = rng.beta(params["alpha"], params["beta"], size=n)
    theta = rng.beta(params["gamma"], params["delta"], size=n)
    alive = np.ones(n, dtype=bool)
    frequency = np.zeros(n)
    recency = np.zeros(n)
    for t in range(1, opportunities + 1):
        alive &= rng.uniform(size=n) >= theta
        buy = alive & (rng.uniform(size=n) < p)
        frequency += buy
        recency[buy] = t
    return pd.DataFrame(
        {"frequency": frequency, "recency": recency, "periods": float(opportunities)}
    )


def _spend_data(params: dict[str, float], rng: np.random.Generator, n: int) -> pd.DataFrame:
    # nu ~ Gamma(q, rate gamma); each transaction's value ~ Gamma(p, rate nu).
    nu = rng.gamma(params["q"], 1.0 / params["gamma"], size=n)
    x = 1 + rng.poisson(2.0, size=n)
    total = rng.gamma(params["p"] * x, 1.0 / nu)  # the sum of x values
    return pd.DataFrame({"frequency": x.astype(float), "monetary_value": total / x})


def _bdw_data(params: dict[str, float], rng: np.random.Generator, n: int) -> pd.DataFrame:
    # S(t | theta) = (1 - theta)^(t^c): churn period = smallest t with S(t) < u.
    theta = rng.beta(params["alpha"], params["beta"], size=n)
    u = rng.uniform(size=n)
    c = params["c"]
    horizon = 8
    periods = np.full(n, float(horizon))
    churned = np.zeros(n, dtype=bool)
    for t in range(horizon, 0, -1):
        gone = (1 - theta) ** (t**c) < u
        periods[gone] = t
        churned |= gone
    return pd.DataFrame({"periods": periods, "churned": churned})


#: model, prior (also the simulating distribution), data maker, customers, fit keywords.
CASES = {
    "bgnbd": (
        clvrs.BetaGeoModel,
        {
            "r": P.LogNormal(-0.5, 0.3),
            "alpha": P.LogNormal(1.5, 0.3),
            "a": P.LogNormal(-0.5, 0.3),
            "b": P.LogNormal(1.0, 0.3),
        },
        lambda p, rng: _rfm_data(clvrs.BetaGeoModel, p, rng, 150),
    ),
    # The covariate version (one binary purchase covariate, its coefficient sampled with the
    # model's parameters, customer by customer).
    "bgnbd_covariate": (
        clvrs.BetaGeoModel,
        {
            "r": P.LogNormal(-0.5, 0.3),
            "alpha": P.LogNormal(1.5, 0.3),
            "a": P.LogNormal(-0.5, 0.3),
            "b": P.LogNormal(1.0, 0.3),
            "purchase:z": P.Normal(0.0, 0.5),
        },
        lambda p, rng: _covariate_data(p, rng, 150),
    ),
    "mbgnbd": (
        clvrs.ModifiedBetaGeoModel,
        {
            "r": P.LogNormal(-0.5, 0.3),
            "alpha": P.LogNormal(1.5, 0.3),
            "a": P.LogNormal(-0.5, 0.3),
            "b": P.LogNormal(1.0, 0.3),
        },
        lambda p, rng: _rfm_data(clvrs.ModifiedBetaGeoModel, p, rng, 150),
    ),
    "pnbd": (
        clvrs.ParetoNBDModel,
        {
            "r": P.LogNormal(-0.5, 0.3),
            "alpha": P.LogNormal(1.5, 0.3),
            "s": P.LogNormal(-0.5, 0.3),
            "beta": P.LogNormal(2.0, 0.3),
        },
        lambda p, rng: _rfm_data(clvrs.ParetoNBDModel, p, rng, 100),
    ),
    # GGompertz/NBD's likelihood pass is the slowest (series per row): behind CLVRS_SBC_SLOW=1.
    "ggnbd": (
        clvrs.GammaGompertzNBDModel,
        {
            "r": P.LogNormal(-0.5, 0.3),
            "alpha": P.LogNormal(1.5, 0.3),
            "b": P.LogNormal(-3.0, 0.3),
            "s": P.LogNormal(0.0, 0.3),
            "beta": P.LogNormal(0.0, 0.3),
        },
        lambda p, rng: _rfm_data(clvrs.GammaGompertzNBDModel, p, rng, 60),
    ),
    "bgbb": (
        clvrs.BetaGeoBetaBinomModel,
        {
            "alpha": P.LogNormal(0.0, 0.3),
            "beta": P.LogNormal(0.0, 0.3),
            "gamma": P.LogNormal(-0.5, 0.3),
            "delta": P.LogNormal(1.0, 0.3),
        },
        lambda p, rng: _bgbb_data(p, rng, 200),
    ),
    "gamma_gamma": (
        clvrs.GammaGammaModel,
        {"p": P.LogNormal(1.5, 0.3), "q": P.LogNormal(1.3, 0.3), "gamma": P.LogNormal(2.5, 0.3)},
        lambda p, rng: _spend_data(p, rng, 150),
    ),
    "bdw": (
        clvrs.BetaDiscreteWeibullModel,
        {"alpha": P.LogNormal(0.0, 0.4), "beta": P.LogNormal(1.0, 0.4), "c": P.LogNormal(0.0, 0.3)},
        lambda p, rng: _bdw_data(p, rng, 200),
    ),
}


def _draw(prior: P.LogNormal | P.Normal, rng: np.random.Generator) -> float:
    if isinstance(prior, P.Normal):
        return float(rng.normal(prior.mu, prior.sigma))
    return float(rng.lognormal(prior.mu, prior.sigma))


def _chi2(name: str, fit_priors: dict | None = None, sets: int = SETS) -> dict[str, float]:
    cls, prior, make = CASES[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    ranks: dict[str, list[int]] = {k: [] for k in prior}
    for i in range(sets):
        truth = {k: _draw(v, rng) for k, v in prior.items()}
        data = make(truth, rng)
        model = cls(on_failure="ignore").fit(
            data,
            **({"purchase_covariates": ["z"]} if "z" in data.columns else {}),
            method="nuts",
            chains=1,
            draws=KEPT * THIN,
            tune=150,
            seed=i,
            priors=fit_priors or prior,
        )
        for k, true in truth.items():
            thinned = np.asarray(model._draws["posterior"][k])[0, THIN - 1 :: THIN]
            ranks[k].append(int(np.sum(thinned < true)))
    out = {}
    for k, r in ranks.items():
        counts = np.bincount(np.asarray(r) * BINS // (KEPT + 1), minlength=BINS)
        expected = sets / BINS
        out[k] = float(np.sum((counts - expected) ** 2 / expected))
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_simulation_based_calibration(name):
    if name == "ggnbd" and os.environ.get("CLVRS_SBC_SLOW") != "1":
        pytest.skip("GGompertz/NBD's SBC takes minutes: set CLVRS_SBC_SLOW=1")
    stats = _chi2(name)
    assert all(v < CHI2_4_999 for v in stats.values()), stats


def test_calibration_detects_a_prior_that_differs_from_the_simulating_one():
    wrong = {
        "r": P.LogNormal(0.5, 0.2),
        "alpha": P.LogNormal(1.5, 0.3),
        "a": P.LogNormal(-0.5, 0.3),
        "b": P.LogNormal(1.0, 0.3),
    }
    stats = _chi2("bgnbd", fit_priors=wrong)
    assert stats["r"] > CHI2_4_999, stats
