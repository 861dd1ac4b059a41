"""The hierarchical Pareto/NBD (Abe 2009): published posterior, recovery, calibration, API.

Published figures: BTYDplus' vignette (2.5% / 50% / 97.5% posterior quantiles on the CDNOW
sample, 39-week calibration). BTYDplus' defaults keep 2 chains x 50 draws (2,500 iterations
thinned by 50), so its quantiles carry Monte Carlo error of their own. A figure is matched when
our quantile is within 4 combined Monte Carlo standard errors of the published one: for a
posterior of standard deviation ``sd`` (ours) the standard error of the ``p`` quantile of
``ess`` effectively independent draws is ``sd sqrt(p (1 - p) / ess) / phi(z_p)`` (the normal
approximation to the sampling distribution of a quantile), with ``ess`` our bulk ESS for ours
and 50 for theirs: BTYDplus keeps 100 draws (2 chains x 2,500 iterations thinned by 50), and a
sampler of this structure has autocorrelation times of about 100 iterations for the
population's spreads here, so about half an effective draw per kept draw.

The CDNOW fit with the covariate runs with ``CLVRS_HB_FULL=1`` (it takes about 10 s).

Simulation-based calibration (Talts et al. 2018) uses tighter priors than the defaults (so that
the simulated data sets are plausible customer bases) and passes the same priors to the fit;
``CLVRS_SBC_SLOW=1`` runs 200 data sets instead of 40.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import warnings
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs.exceptions import InvalidDataError, InvalidParameterError, NotFittedError


def _cdnow() -> pd.DataFrame:
    return clvrs.datasets.load_cdnow_summary()


def _first_purchase_amount(summary: pd.DataFrame) -> np.ndarray:
    """Each CDNOW sample customer's first transaction's dollar value x 1e-3 (BTYDplus'
    ``first`` covariate), in the order of the summary's customers (ids 1 .. 2357)."""
    log = clvrs.datasets.load_cdnow_transactions()
    first = log.sort_values(["customer_id", "date"], kind="stable").groupby("customer_id")
    amounts = first["amount"].first()
    return (
        amounts.loc[np.asarray(summary["ID"] if "ID" in summary else summary.index)].to_numpy()
        * 1e-3
    )


def _quantile_se(sd: float, p: float, ess: float) -> float:
    z = NormalDist().inv_cdf(p)
    return sd * math.sqrt(p * (1 - p) / ess) / NormalDist().pdf(z)


def _check_published(model, published: dict[str, tuple[float, float, float]]) -> None:
    """Every published quantile within 4 combined Monte Carlo standard errors."""
    post = model._draws["posterior"]
    summary = model.summary
    for name, figures in published.items():
        draws = np.asarray(post[name]).ravel()
        sd = float(draws.std())
        ess = float(summary.loc[name, "ess_bulk"])
        for p, want in zip((0.025, 0.5, 0.975), figures):
            got = float(np.quantile(draws, p))
            tolerance = 4 * math.hypot(_quantile_se(sd, p, ess), _quantile_se(sd, p, 50))
            assert abs(got - want) < tolerance, (name, p, got, want, tolerance)


def test_cdnow_posterior_matches_btydplus_without_covariates() -> None:
    model = clvrs.ParetoNBDHierarchicalModel(on_failure="ignore").fit(
        _cdnow(), chains=4, draws=500, tune=500, seed=21
    )
    # The tolerances below scale with the bulk ESS, which these short chains keep small (the
    # population's dropout spread mixes slowly: R-hat 1.37 at this seed, 4 x 500 draws after a
    # burn-in of 500, which adapts the population steps less than the default 1,000).
    assert model.fit_info_["r_hat_max"] < 1.5, model.fit_info_
    _check_published(
        model,
        {
            "log_lambda": (-3.70, -3.54, -3.32),
            "log_mu": (-3.96, -3.59, -3.26),
            "var_log_lambda": (1.10, 1.34, 1.65),
            "cov_log_lambda_log_mu": (-0.20, 0.13, 0.74),
            "var_log_mu": (1.44, 2.62, 5.05),
        },
    )


@pytest.mark.skipif(
    os.environ.get("CLVRS_HB_FULL") != "1", reason="about 10 s: set CLVRS_HB_FULL=1"
)
@pytest.mark.xfail(
    strict=True,
    reason="open (issue 21): at seed 22, 4 x 1,000 draws, with the partially non-centred "
    "population steps the upper tails of the intercepts are shorter than BTYDplus' (97.5%: "
    "log_lambda -3.47 vs -3.19, 4.4 combined SEs; log_mu -3.28 vs -2.69, 3.8 SEs) and the "
    "first purchase's lower tails are higher (2.5%: log_lambda 3.26 vs 0.04, 4.9 SEs; log_mu "
    "-4.39 vs -9.02, 3.1 SEs) while the other eight figures match within 1.2 SEs; the sampler "
    "still mixes slowly at this length (R-hat 1.27, smallest bulk ESS 12 of 4,000), so which "
    "side is off is not settled",
)
def test_cdnow_posterior_matches_btydplus_with_first_purchase_covariate() -> None:
    data = _cdnow()
    data["first"] = _first_purchase_amount(data)
    model = clvrs.ParetoNBDHierarchicalModel(on_failure="ignore").fit(
        data, covariates=["first"], chains=4, draws=1000, tune=1000, seed=22
    )
    assert list(model.params_.index[:4]) == [
        "log_lambda:intercept",
        "log_lambda:first",
        "log_mu:intercept",
        "log_mu:first",
    ]
    _check_published(
        model,
        {
            "log_lambda:intercept": (-4.02, -3.77, -3.19),
            "log_mu:intercept": (-4.37, -3.73, -2.69),
            "log_lambda:first": (0.04, 6.04, 9.39),
            "log_mu:first": (-9.02, 1.73, 7.90),
        },
    )


def _simulate(
    rng: np.random.Generator,
    n: int,
    b: np.ndarray,
    sigma: np.ndarray,
    z: np.ndarray | None,
    ages: tuple[float, float] = (20.0, 40.0),
) -> pd.DataFrame:
    """Customers of the model: log-rates from the population, dropout, purchases, recency."""
    design = np.column_stack([np.ones(n), z]) if z is not None else np.ones((n, 1))
    mean = design @ b
    rates = np.exp(mean + rng.multivariate_normal(np.zeros(2), sigma, size=n))
    lam, mu = rates[:, 0], rates[:, 1]
    T = rng.uniform(*ages, size=n)
    active = np.minimum(rng.exponential(1.0 / mu), T)
    x = rng.poisson(lam * active)
    # Given x purchases in (0, active], the last is active times the largest of x uniforms.
    t_x = np.where(x > 0, active * rng.beta(np.maximum(x, 1), 1.0), 0.0)
    return pd.DataFrame({"frequency": x.astype(float), "recency": t_x, "T": T})


def test_recovers_known_population_parameters() -> None:
    rng = np.random.default_rng(5)
    b = np.array([[-2.5, -3.5], [0.8, -0.5]])
    sigma = np.array([[0.6, 0.15], [0.15, 0.5]])
    z = rng.normal(size=6000)
    data = _simulate(rng, 6000, b, sigma, z)
    model = clvrs.ParetoNBDHierarchicalModel(on_failure="ignore").fit(
        data, covariates=z, chains=2, draws=300, tune=300, seed=3
    )
    truth = {
        "log_lambda:intercept": -2.5,
        "log_lambda:x0": 0.8,
        "log_mu:intercept": -3.5,
        "log_mu:x0": -0.5,
        "var_log_lambda": 0.6,
        "cov_log_lambda_log_mu": 0.15,
        "var_log_mu": 0.5,
    }
    s = model.summary_frame(level=0.999)
    for name, value in truth.items():
        assert s.loc[name, "lower"] < value < s.loc[name, "upper"], (name, s.loc[name])
    # Purchase-side parameters are pinned down tightly by 6,000 customers.
    assert abs(s.loc["log_lambda:intercept", "mean"] + 2.5) < 0.1
    assert abs(s.loc["var_log_lambda", "mean"] - 0.6) < 0.1


def test_simulation_based_calibration() -> None:
    """Ranks of the true population parameters among posterior draws are uniform.

    Population parameters are drawn from the fit's own prior (tighter than the default, so
    that rates of about one per time unit make plausible customer bases over T in [2, 6]),
    customers simulated from them, and the rank of each truth among 39 thinned draws binned
    into 4 bins: a chi-squared statistic above the 0.999 quantile (3 degrees of freedom) fails.
    """
    sets = 200 if os.environ.get("CLVRS_SBC_SLOW") == "1" else 40
    bins, kept, thin = 4, 39, 4
    a, nu, v = 1.0, 12.0, 4.0
    rng = np.random.default_rng(2021)
    names = ["log_lambda", "log_mu", "var_log_lambda", "cov_log_lambda_log_mu", "var_log_mu"]
    ranks: dict[str, list[int]] = {name: [] for name in names}
    for _ in range(sets):
        # Sigma ~ InverseWishart(nu, v I): the inverse of a Wishart(nu, I / v) draw.
        w = rng.standard_normal((int(nu), 2)) / math.sqrt(v)
        sigma = np.linalg.inv(w.T @ w)
        b = rng.multivariate_normal(np.zeros(2), sigma / a).reshape(1, 2)
        data = _simulate(rng, 150, b, sigma, None, ages=(2.0, 6.0))
        model = clvrs.ParetoNBDHierarchicalModel(
            coefficient_precision=a, prior_dof=nu, prior_scale=v, on_failure="ignore"
        ).fit(data, chains=1, draws=kept * thin, tune=200, seed=int(rng.integers(2**31)))
        truth = [b[0, 0], b[0, 1], sigma[0, 0], sigma[0, 1], sigma[1, 1]]
        post = model._draws["posterior"]
        for name, value in zip(names, truth):
            draws = np.asarray(post[name]).ravel()[thin - 1 :: thin]
            ranks[name].append(int(np.sum(draws < value)))
    for name in names:
        counts = np.bincount(np.asarray(ranks[name]) * bins // (kept + 1), minlength=bins)
        expected = sets / bins
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < 16.27, (name, counts)


def test_predictions_intervals_persistence_and_thread_independence(tmp_path) -> None:
    data = _cdnow().iloc[:400]
    kwargs = dict(chains=2, draws=60, tune=60, seed=7)
    hyper = dict(customer_draws=50, on_failure="ignore")  # short chains
    model = clvrs.ParetoNBDHierarchicalModel(n_jobs=1, **hyper).fit(data, **kwargs)
    other = clvrs.ParetoNBDHierarchicalModel(n_jobs=2, **hyper).fit(data, **kwargs)
    pd.testing.assert_series_equal(model.params_, other.params_)
    np.testing.assert_array_equal(model._customer, other._customer)
    # Every third of the 120 draws: at most the 50 asked for.
    assert model.fit_info_["customer_draws"] == 40
    alive = model.probability_alive()
    assert isinstance(alive, pd.Series) and alive.index.equals(data.index)
    assert ((alive >= 0) & (alive <= 1)).all()
    band = model.expected_purchases(data, t=39, level=0.9)
    assert list(band.columns) == ["estimate", "se", "lower", "upper"]
    # (The mean of a skewed posterior can lie outside an equal-tailed interval.)
    assert (band["lower"] <= band["upper"]).all()
    # More purchases expected over a longer horizon.
    assert (model.expected_purchases(t=78) >= model.expected_purchases(t=39)).all()
    # One horizon per customer, in any of the column types a prediction takes.
    pl = pytest.importorskip("polars")
    per_customer = np.where(np.arange(len(data)) % 2 == 0, 39.0, 78.0)
    expected = model.expected_purchases(t=per_customer)
    pd.testing.assert_series_equal(model.expected_purchases(t=pl.Series(per_customer)), expected)
    pd.testing.assert_series_equal(model.expected_purchases(t=list(per_customer)), expected)
    summary = model.customer_summary()
    assert {"lambda", "mu_lower", "probability_alive_upper"} <= set(summary.columns)
    subset = model.customer_draws_([0, 5])
    assert subset["lambda"].shape == (40, 2)
    with pytest.raises(InvalidDataError):
        model.expected_purchases(_cdnow().iloc[:300], t=10)
    path = tmp_path / "hb.json"
    model.save(path)
    json.loads(path.read_text())
    loaded = clvrs.load(path)
    pd.testing.assert_series_equal(loaded.params_, model.params_)
    pd.testing.assert_series_equal(loaded.expected_purchases(t=39), model.expected_purchases(t=39))
    again = pickle.loads(pickle.dumps(model))
    pd.testing.assert_series_equal(again.probability_alive(), alive)
    assert "Gibbs" in repr(model)
    assert "r_hat" in model.summary.columns


def test_holdout_evaluation_and_comparison_with_the_mle() -> None:
    log = clvrs.datasets.load_cdnow_transactions()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        split = clvrs.calibration_and_holdout(
            log, "customer_id", "date", calibration_period_end="1997-09-30",
            observation_period_end="1998-06-30", freq="D", freq_multiplier=7,
        )  # fmt: skip
    calibration = split.rename(
        columns={"frequency_cal": "frequency", "recency_cal": "recency", "T_cal": "T"}
    )
    hb = clvrs.ParetoNBDHierarchicalModel(on_failure="ignore").fit(
        calibration, chains=2, draws=200, tune=200, seed=4
    )
    mle = clvrs.ParetoNBDModel().fit(calibration)
    hb_eval = clvrs.holdout_evaluation(hb, split)
    mle_eval = clvrs.holdout_evaluation(mle, split)
    # Per customer the hierarchical model is about as accurate as the MLE Pareto/NBD (mean
    # absolute error within 5%); both under-predict this holdout's total (actual 1,882).
    assert hb_eval.metrics["mae"] < 1.05 * mle_eval.metrics["mae"]
    assert -0.35 < hb_eval.metrics["tracking_error"] < 0.0
    table = clvrs.compare_models({"hb": hb, "mle": mle}, split)
    assert {"mae", "tracking_error"} <= set(table.columns)


def test_errors() -> None:
    with pytest.raises(NotFittedError):
        clvrs.ParetoNBDHierarchicalModel().probability_alive()
    with pytest.raises(InvalidParameterError):
        clvrs.ParetoNBDHierarchicalModel(prior_dof=0.5).fit(_cdnow())
    with pytest.raises(InvalidParameterError):
        clvrs.ParetoNBDHierarchicalModel().fit(_cdnow(), chains=0)
    bad = _cdnow().iloc[:10].copy()
    bad.loc[bad.index[0], "recency"] = 100.0
    with pytest.raises(InvalidDataError):
        clvrs.ParetoNBDHierarchicalModel().fit(bad, chains=1, draws=5, tune=0)
    with pytest.raises(InvalidDataError):
        clvrs.ParetoNBDHierarchicalModel().fit(
            _cdnow(), covariates=np.ones(len(_cdnow())), chains=1, draws=5, tune=0
        )
    from sklearn.base import clone  # noqa: F401  (available in the test extra)

    model = clvrs.ParetoNBDHierarchicalModel(prior_scale=2.0)
    assert clone(model).get_params()["prior_scale"] == 2.0


class _RecordingBar:
    """Stands in for tqdm's bar: records what the sampler reports."""

    made: list[_RecordingBar] = []

    def __init__(self, total: Any = None, desc: str = "") -> None:
        self.total, self.desc, self.n, self.closed = total, desc, 0, False
        self.updates: list[int] = []
        _RecordingBar.made.append(self)

    def update(self, step: int) -> None:
        self.n += step
        self.updates.append(step)

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("model_name", ["ParetoNBDHierarchicalModel", "ParetoGGGModel"])
def test_progress_bar_counts_every_iteration_of_every_chain(model_name, monkeypatch) -> None:
    import sys
    import types

    fake = types.ModuleType("tqdm.auto")
    fake.tqdm = _RecordingBar  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tqdm.auto", fake)
    _RecordingBar.made.clear()
    if model_name == "ParetoGGGModel":
        data = pd.DataFrame(
            {
                "frequency": [0.0, 2.0, 5.0],
                "recency": [0.0, 10.0, 30.0],
                "T": [40.0, 40.0, 40.0],
                "litt": [0.0, 2.5, 8.0],
            }
        )
    else:
        data = clvrs.datasets.load_cdnow_summary().iloc[:30]
    model = getattr(clvrs, model_name)()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data, chains=3, draws=7, tune=5, thin=2, seed=1, progress=True)
    (bar,) = _RecordingBar.made
    assert bar.total == 3 * (5 + 7 * 2)
    assert bar.n == bar.total and bar.closed
    assert all(step >= 0 for step in bar.updates)
    # Off: no bar; and the same draws either way.
    _RecordingBar.made.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quiet = getattr(clvrs, model_name)().fit(
            data, chains=3, draws=7, tune=5, thin=2, seed=1, progress=False
        )
    assert _RecordingBar.made == []
    pd.testing.assert_series_equal(quiet.params_, model.params_)
    with pytest.raises(InvalidParameterError, match="progress"):
        getattr(clvrs, model_name)().fit(data, progress="yes")
