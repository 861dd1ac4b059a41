"""Gamma-Gamma, BG/BB, sBG, BdW and customer value against the independent high-precision
references of reference_value_models.py (mpmath, derived from the papers; lifetimes' CLV output
recorded there)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import reference_value_models as ref

import clvrs

RTOL = 1e-10


def _f(values):
    return [float(v) for v in values]


@pytest.mark.parametrize(
    "check",
    [
        ref.check_gamma_gamma_cdnow,
        ref.check_bgbb_long_histories,
        ref.check_sbg_cohorts,
    ],
    ids=lambda f: f.__name__,
)
def test_the_references_reproduce_the_published_figures(check):
    check()


def test_gamma_gamma_fit_and_predictions(cdnow):
    model = clvrs.GammaGammaModel().fit(cdnow)
    np.testing.assert_allclose(model.params_, _f(ref.GG_MLE), rtol=1e-7)
    assert model.log_likelihood_ == pytest.approx(float(ref.GG_MLE_LL), rel=1e-12)
    p, q, g = model.params_
    head = cdnow.head(40)
    spends = model.expected_average_spend(head).to_numpy()
    lls = model.log_likelihood_per_customer(head).to_numpy()
    for i, row in enumerate(head.itertuples()):
        x, m = int(row.frequency), float(row.monetary_value)
        want = (
            ref.gg_conditional_expected_spend(p, q, g, x, m)
            if x
            else ref.gg_population_mean(p, q, g)
        )
        assert spends[i] == pytest.approx(float(want), rel=RTOL)
        if x:
            assert lls[i] == pytest.approx(float(ref.gg_log_likelihood(p, q, g, x, m)), rel=RTOL)


def test_bgbb_fit_and_predictions():
    donations = clvrs.datasets.load_donations()
    model = clvrs.BetaGeoBetaBinomModel(columns={"weights": "weights"}).fit(donations)
    np.testing.assert_allclose(model.params_, _f(ref.BGBB_MLE), rtol=1e-7)
    assert model.log_likelihood_ == pytest.approx(float(ref.BGBB_MLE_LL), rel=1e-12)
    a, b, g, d = _f(ref.BGBB_MLE)
    exact = clvrs.BetaGeoBetaBinomModel.from_params(alpha=a, beta=b, gamma=g, delta=d)
    for n in [1, 6, 40]:
        assert exact.expected_purchases_new_customer(n) == pytest.approx(
            float(ref.bgbb_expected_new(a, b, g, d, n)), rel=RTOL
        )
        for x in [0, 1, min(n, 5)]:
            assert exact.purchase_count_probability(x, n) == pytest.approx(
                float(ref.bgbb_pmf_new(a, b, g, d, x, n)), rel=1e-9
            )


@pytest.mark.parametrize("history", list(ref.BGBB_LONG_HISTORY), ids=str)
def test_bgbb_long_histories(history):
    x, t_x, n, m, discount = history
    want = {k: float(v) for k, v in ref.BGBB_LONG_HISTORY[history].items()}
    a, b, g, d = _f(ref.BGBB_MLE)
    model = clvrs.BetaGeoBetaBinomModel.from_params(alpha=a, beta=b, gamma=g, delta=d)
    cols = {
        "frequency": np.array([float(x)]),
        "recency": np.array([float(t_x)]),
        "periods": np.array([float(n)]),
    }
    assert model.log_likelihood_per_customer(**cols)[0] == pytest.approx(
        want["log_likelihood"], rel=RTOL
    )
    # The reference's P(alive at n + 1 + m) is ours m + 1 opportunities ahead.
    assert model.probability_alive(**cols, m=m + 1)[0] == pytest.approx(
        want["probability_alive_m"], rel=RTOL
    )
    assert model.probability_alive(**cols, m=1)[0] == pytest.approx(
        want["probability_alive"], rel=RTOL
    )
    assert model.expected_purchases(**cols, m=m)[0] == pytest.approx(
        want["conditional_expected"], rel=RTOL
    )
    assert model.expected_residual_transactions(**cols, discount_rate=discount)[0] == pytest.approx(
        want["dert"], rel=1e-9
    )


@pytest.mark.parametrize("name", ["regular", "high_end"])
def test_subscription_models(name):
    survivors = ref.REGULAR if name == "regular" else ref.HIGH_END
    sbg = clvrs.ShiftedBetaGeoModel().fit(survivors=list(survivors))
    (a, b), ll = ref.SBG_MLE[name]
    # Estimates to the precision the gradient tolerance gives (the LL to 1e-12).
    np.testing.assert_allclose(sbg.params_, _f((a, b)), rtol=1e-6)
    assert sbg.log_likelihood_ == pytest.approx(float(ll), rel=1e-12)
    a, b = _f((a, b))
    exact = clvrs.ShiftedBetaGeoModel.from_params(alpha=a, beta=b)
    for t in [1, 5, 50]:
        assert exact.survival(t) == pytest.approx(float(ref.sbg_survival(a, b, t)), rel=RTOL)
        assert exact.churn_probability(t) == pytest.approx(
            float(ref.sbg_churn_pmf(a, b, t)), rel=RTOL
        )
        assert exact.retention_rate(t) == pytest.approx(float(ref.sbg_retention(a, b, t)), rel=RTOL)
    for n, discount in [(0, 0.1), (4, 0.1), (10, 0.02)]:
        assert exact.expected_residual_lifetime(n, discount) == pytest.approx(
            float(ref.sbg_derl(a, b, discount, n)), rel=1e-9
        )
    bdw = clvrs.BetaDiscreteWeibullModel().fit(survivors=list(survivors))
    params, ll = ref.BDW_MLE[name]
    np.testing.assert_allclose(bdw.params_, _f(params), rtol=2e-5)
    assert bdw.log_likelihood_ == pytest.approx(float(ll), rel=1e-12)
    a, b, c = _f(params)
    exact_bdw = clvrs.BetaDiscreteWeibullModel.from_params(alpha=a, beta=b, c=c)
    for t in [1, 5, 50]:
        assert exact_bdw.survival(t) == pytest.approx(float(ref.bdw_survival(a, b, c, t)), rel=1e-9)
    assert exact_bdw.expected_residual_lifetime(3, 0.1) == pytest.approx(
        float(ref.bdw_derl(a, b, c, 0.1, 3)), rel=1e-9
    )


def test_discrete_clv_gives_the_numbers_of_lifetimes(cdnow):
    call = ref.LIFETIMES_CLV_CALL
    bg = clvrs.BetaGeoModel.from_params(r=call["r"], alpha=call["alpha"], a=call["a"], b=call["b"])
    gg = clvrs.GammaGammaModel.from_params(p=call["p"], q=call["q"], gamma=call["gamma"])
    head = cdnow.head(50)
    clv = clvrs.customer_lifetime_value(
        bg,
        gg,
        head,
        time=call["time_months"],
        discount_rate=call["discount_rate"],
        time_unit=call["freq"],
    )
    np.testing.assert_allclose(clv.to_numpy(), ref.LIFETIMES_CLV_CDNOW_FIRST50, rtol=1e-9)
    assert isinstance(clv, pd.Series)
