"""CorrelatedParetoNBDModel: the Pareto/NBD with Sarmanov-correlated purchase and dropout rates.

References: an mpmath double integral of the Poisson/exponential likelihood over the Sarmanov
density itself (not the four-component identity the code uses), the plain Pareto/NBD at zero
correlation, simulation with a known correlation, and the CDNOW fit.
"""

from __future__ import annotations

import math
import os

import mpmath
import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs.exceptions import InvalidParameterError
from clvrs.models.pnbd_correlated import correlation_bounds

MARGINS = {"r": 1.6, "alpha": 2.5, "s": 1.3, "beta": 4.0}
HISTORIES = [(0, 0.0, 12.0), (2, 5.5, 12.0), (7, 11.9, 12.0), (1, 0.4, 30.0)]


def _model(fraction: float, **margins: float) -> clvrs.CorrelatedParetoNBDModel:
    m = {**MARGINS, **margins}
    lo, hi = correlation_bounds(m["r"], m["alpha"], m["s"], m["beta"])
    rho = fraction * (hi if fraction > 0 else -lo)
    return clvrs.CorrelatedParetoNBDModel.from_params(**m, correlation=rho)


def _sarmanov_likelihood(m: dict[str, float], rho: float, x: int, t_x: float, T: float) -> float:
    """The likelihood as a double integral over (lambda, mu) of the Sarmanov density."""
    mpmath.mp.dps = 20
    r, alpha, s, beta = (mpmath.mpf(m[k]) for k in ("r", "alpha", "s", "beta"))
    la = (alpha / (alpha + 1)) ** r
    lb = (beta / (beta + 1)) ** s
    omega = mpmath.mpf(rho) * (1 + alpha) * (1 + beta) / (mpmath.sqrt(r * s) * la * lb)

    def integrand(lam: mpmath.mpf, mu: mpmath.mpf) -> mpmath.mpf:
        g1 = alpha**r * lam ** (r - 1) * mpmath.exp(-alpha * lam) / mpmath.gamma(r)
        g2 = beta**s * mu ** (s - 1) * mpmath.exp(-beta * mu) / mpmath.gamma(s)
        density = g1 * g2 * (1 + omega * (mpmath.exp(-lam) - la) * (mpmath.exp(-mu) - lb))
        total = lam + mu
        alive = lam**x * mpmath.exp(-total * T)
        gone = lam**x * mu / total * (mpmath.exp(-total * t_x) - mpmath.exp(-total * T))
        return (alive + gone) * density

    return float(mpmath.quad(integrand, [0, mpmath.inf], [0, mpmath.inf]))


@pytest.mark.parametrize("fraction", [0.8, -0.9])
def test_likelihood_matches_a_double_integral_over_the_sarmanov_density(fraction):
    """Two histories by default (about 3 s each); all four with ``CLVRS_MPMATH_FULL=1``."""
    model = _model(fraction)
    m = {k: float(model.params_[k]) for k in MARGINS}
    rho = float(model.params_["correlation"])
    assert rho != 0
    histories = HISTORIES if os.environ.get("CLVRS_MPMATH_FULL") else HISTORIES[1:3]
    x = np.array([h[0] for h in histories], dtype=float)
    t_x = np.array([h[1] for h in histories])
    T = np.array([h[2] for h in histories])
    got = model.log_likelihood_per_customer(frequency=x, recency=t_x, T=T)
    for (xi, ti, Ti), value in zip(histories, got):
        want = _sarmanov_likelihood(m, rho, xi, ti, Ti)
        assert math.exp(value) == pytest.approx(want, rel=1e-10)


def test_zero_correlation_is_the_plain_pareto_nbd_exactly():
    cor = clvrs.CorrelatedParetoNBDModel.from_params(**MARGINS, correlation=0.0)
    plain = clvrs.ParetoNBDModel.from_params(**MARGINS)
    data = pd.DataFrame(HISTORIES, columns=["frequency", "recency", "T"])
    for method, kwargs in [
        ("log_likelihood_per_customer", {}),
        ("probability_alive", {}),
        ("expected_purchases", {"t": 10.0}),
        ("expected_residual_transactions", {"discount_rate": 0.01}),
    ]:
        a = np.asarray(getattr(cor, method)(data, **kwargs))
        b = np.asarray(getattr(plain, method)(data, **kwargs))
        np.testing.assert_array_equal(a, b, err_msg=method)
    assert cor.expected_purchases_new_customer(20.0) == plain.expected_purchases_new_customer(20.0)


def test_predictions_are_probabilities_and_match_simulated_new_customers():
    model = _model(0.9)
    data = pd.DataFrame(HISTORIES, columns=["frequency", "recency", "T"])
    alive = np.asarray(model.probability_alive(data))
    assert np.all((alive > 0) & (alive <= 1))
    # A new customer's expected purchases against the mean of simulated customers, and
    # against the independent model (a positive correlation of purchase and dropout rates
    # means heavy buyers leave sooner: fewer purchases).
    sim = model.simulate(np.full(200_000, 10.0), seed=3)
    mean = sim["frequency"].mean()
    se = sim["frequency"].std() / math.sqrt(len(sim))
    want = model.expected_purchases_new_customer(10.0)
    assert abs(mean - want) < 4 * se
    independent = clvrs.ParetoNBDModel.from_params(**MARGINS)
    assert want < independent.expected_purchases_new_customer(10.0)


def test_recovers_a_known_correlation():
    truth = _model(0.8)
    rho = float(truth.params_["correlation"])
    sim = truth.simulate(np.tile(np.arange(20.0, 40.0), 1500), seed=11)
    fit = clvrs.CorrelatedParetoNBDModel().fit(sim)
    se = fit.standard_errors_["correlation"]
    assert abs(fit.params_["correlation"] - rho) < 3 * se
    test = fit.fit_info_["independence_test"]
    assert test["statistic"] > 0 and test["df"] == 1
    summary = fit.summary
    assert summary.loc["correlation", "lower"] < rho < summary.loc["correlation", "upper"]
    assert "LR test of independence" in summary.attrs["independence_test"]


def test_cdnow_fit_ends_on_the_edge_of_the_family():
    """On CDNOW (weeks) the likelihood rises up to the highest correlation the family reaches
    with the fitted margins (about 0.088): a boundary optimum, said so, with the LR test."""
    data = clvrs.datasets.load_cdnow_summary()
    with pytest.warns(clvrs.ConvergenceWarning, match="Sarmanov family"):
        fit = clvrs.CorrelatedParetoNBDModel().fit(data)
    plain = clvrs.ParetoNBDModel().fit(data)
    test = fit.fit_info_["independence_test"]
    assert test["log_likelihood"] == pytest.approx(plain.log_likelihood_)
    assert fit.log_likelihood_ > plain.log_likelihood_ + 2.0
    lo, hi = correlation_bounds(*(fit.params_[k] for k in MARGINS))
    assert fit.params_["correlation"] == pytest.approx(hi, rel=1e-5)
    assert 0 < test["p"] < 0.05


def test_save_and_load_round_trip(tmp_path):
    model = _model(0.5)
    path = tmp_path / "cor.json"
    model.save(path)
    back = clvrs.load(path)
    assert isinstance(back, clvrs.CorrelatedParetoNBDModel)
    pd.testing.assert_series_equal(back.params_, model.params_)


def test_refuses_what_it_cannot_do():
    lo, hi = correlation_bounds(*MARGINS.values())
    with pytest.raises(InvalidParameterError, match="correlation"):
        clvrs.CorrelatedParetoNBDModel.from_params(**MARGINS, correlation=1.5 * hi)
    with pytest.raises(InvalidParameterError, match="correlation"):
        clvrs.CorrelatedParetoNBDModel.from_params(**MARGINS, correlation=float("nan"))
    data = clvrs.datasets.load_cdnow_summary().assign(group=lambda d: d.index % 2)
    with pytest.raises(InvalidParameterError, match="covariates"):
        clvrs.CorrelatedParetoNBDModel().fit(data, purchase_covariates=["group"])
    with pytest.raises(InvalidParameterError, match="correlation's position"):
        # The correlation's prior is on its position in the admissible range: Beta only.
        clvrs.CorrelatedParetoNBDModel().fit(
            data, method="map", priors={"correlation": clvrs.priors.Normal(0, 1)}
        )


def _simulated(fraction: float, n: int, seed: int) -> pd.DataFrame:
    return _model(fraction).simulate(np.tile(np.arange(20.0, 40.0), n // 20), seed=seed)


def test_flat_prior_mode_is_the_maximum_likelihood_fit():
    """The mode moves the correlation by its position in the range: a reparameterisation, so
    with flat priors the mode and (by the delta method) its standard errors are the MLE's."""
    data = _simulated(0.5, 6000, 5)
    mle = clvrs.CorrelatedParetoNBDModel(tol=1e-11).fit(data)
    flat = {name: clvrs.priors.Flat() for name in mle.params_.index}
    mode = clvrs.CorrelatedParetoNBDModel(tol=1e-11).fit(data, method="map", priors=flat)
    se = mle.standard_errors_
    assert np.all(np.abs(mode.params_ - mle.params_) < 1e-4 * se), (mode.params_, mle.params_)
    np.testing.assert_allclose(mode.standard_errors_, se, rtol=1e-3)


def test_posterior_draws_stay_in_the_range_and_cover_the_truth(tmp_path):
    truth = _model(0.6)
    rho = float(truth.params_["correlation"])
    data = _simulated(0.6, 1500, 9)
    model = clvrs.CorrelatedParetoNBDModel(on_failure="ignore").fit(
        data, method="nuts", chains=2, draws=200, tune=200, seed=4
    )
    assert model.fit_info_["r_hat_max"] < 1.05, model.fit_info_
    post = model._draws["posterior"]
    draws = np.column_stack([np.ravel(post[k]) for k in (*MARGINS, "correlation")])
    for r, alpha, s, beta, c in draws:
        lo, hi = correlation_bounds(r, alpha, s, beta)
        assert lo <= c <= hi
    mean, sd = float(model.params_["correlation"]), float(model.standard_errors_["correlation"])
    assert abs(mean - rho) < 4 * sd, (mean, sd, rho)
    assert str(model.priors_["correlation"]) == "Beta(a=1.0, b=1.0)"
    # Predictions are posterior means over the draws; the draws survive a save and load.
    alive = np.asarray(model.probability_alive(data.head(50)))
    assert np.all((alive > 0) & (alive <= 1))
    path = tmp_path / "cor_nuts.json"
    model.save(path)
    back = clvrs.load(path)
    np.testing.assert_array_equal(
        np.asarray(back._draws["posterior"]["correlation"]), np.asarray(post["correlation"])
    )
