"""Property-based tests (hypothesis) for the models that test_properties.py leaves out:
GGompertz/NBD, BG/BB, Gamma-Gamma and the subscription models (sBG, BdW). Finite likelihoods and
in-range predictions for random valid inputs and parameters over wide ranges, monotone
expectations, and invariances (row order, compression, thread count, time and currency unit,
data representation).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from scipy.special import gammaln

import clvrs

positive = st.floats(min_value=1e-2, max_value=1e2)


# --- GGompertz/NBD ------------------------------------------------------------------------------

GGNBD = clvrs.GammaGompertzNBDModel
GGNBD_PARAMS = ("r", "alpha", "b", "s", "beta")


@st.composite
def rfm_customers(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """A few (frequency, recency, T) summaries (few: GGompertz/NBD integrates numerically)."""
    n = draw(st.integers(min_value=1, max_value=3))
    x, t_x, T = [], [], []
    for _ in range(n):
        age = draw(st.floats(min_value=0.0, max_value=2000.0))
        frequency = draw(st.integers(min_value=0, max_value=300)) if age > 0 else 0
        last = draw(st.floats(min_value=0.0, max_value=1.0)) * age if frequency else 0.0
        x.append(float(frequency))
        t_x.append(last)
        T.append(age)
    return {"frequency": np.array(x), "recency": np.array(t_x), "T": np.array(T)}


def gg_ln_survival(b: float, s: float, beta: float, tau: np.ndarray) -> np.ndarray:
    """ln S(tau) = -s ln[(beta + e^(b tau) - 1) / beta] of the gamma-Gompertz lifetime, without
    overflow for large b tau."""
    bt = b * np.asarray(tau, dtype=float)
    small = np.log1p(np.expm1(np.minimum(bt, 700.0)) / beta)
    large = bt - math.log(beta) + np.log1p((beta - 1.0) * np.exp(-np.maximum(bt, 700.0)))
    return -s * np.where(bt > 700.0, large, small)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    params=st.tuples(positive, positive, positive, positive, positive),
    data=rfm_customers(),
    t=st.floats(min_value=0.0, max_value=500.0),
    dt=st.floats(min_value=0.0, max_value=500.0),
    rate=st.floats(min_value=1e-3, max_value=1.0),
    unit=st.floats(min_value=1e-2, max_value=1e2),
)
def test_ggnbd_finite_in_range_and_time_unit_consistent(params, data, t, dt, rate, unit):
    model = GGNBD.from_params(**dict(zip(GGNBD_PARAMS, params)))
    ll = model.log_likelihood_per_customer(**data)
    assert np.all(np.isfinite(ll))
    alive = model.probability_alive(**data)
    later = model.probability_alive(**data, t=t)
    latest = model.probability_alive(**data, t=t + dt)
    assert np.all((alive >= 0) & (alive <= 1))
    assert np.all(later <= alive * (1 + 1e-12)) and np.all(latest <= later * (1 + 1e-12))
    assert np.all(latest >= 0)
    expected = model.expected_purchases(**data, t=t)
    assert np.all(np.isfinite(expected)) and np.all(expected >= 0)
    dert = model.expected_residual_transactions(**data, discount_rate=rate)
    assert np.all(np.isfinite(dert)) and np.all(dert >= 0)
    # Purchase counts in (T, T + t]: probabilities, and a customer who has left buys nothing.
    counts = np.array(
        [model.conditional_purchase_count_probability(**data, n=n, t=t) for n in range(5)]
    )
    assert np.all((counts >= 0) & (counts <= 1))
    assert np.all(counts.sum(axis=0) <= 1 + 1e-9)
    assert np.all(counts[0] >= 1 - alive - 1e-9)
    new = model.purchase_count_probability(np.arange(10), t)
    assert np.all((new >= 0) & (new <= 1)) and new.sum() <= 1 + 1e-9
    # Another time unit (u per old unit): alpha * u, b / u; the likelihood of the x purchase
    # times is a density, so it shifts by -x ln u; probabilities and expectations are unchanged.
    r, alpha, b, s, beta = params
    rescaled = GGNBD.from_params(r=r, alpha=alpha * unit, b=b / unit, s=s, beta=beta)
    in_unit = {**data, "recency": data["recency"] * unit, "T": data["T"] * unit}
    np.testing.assert_allclose(
        rescaled.log_likelihood_per_customer(**in_unit),
        ll - data["frequency"] * math.log(unit),
        rtol=1e-9,
        atol=1e-9,
    )
    np.testing.assert_allclose(rescaled.probability_alive(**in_unit), alive, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(
        rescaled.expected_purchases(**in_unit, t=t * unit), expected, rtol=1e-8, atol=1e-300
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(
    params=(1.0, 1.0, 50.0, 5.0, 1.0),
    data={"frequency": np.array([0.0]), "recency": np.array([0.0]), "T": np.array([0.5])},
    t=100.0,
    dt=900.0,
)
@given(
    params=st.tuples(positive, positive, positive, positive, positive),
    data=rfm_customers(),
    t=st.floats(min_value=0.0, max_value=500.0),
    dt=st.floats(min_value=0.0, max_value=500.0),
)
def test_ggnbd_expected_purchases_non_decreasing(params, data, t, dt):
    model = GGNBD.from_params(**dict(zip(GGNBD_PARAMS, params)))
    new = model.expected_purchases_new_customer(np.array([t, t + dt]))
    assert new[0] >= 0 and new[1] >= new[0] * (1 - 1e-12)
    e1 = model.expected_purchases(**data, t=t)
    e2 = model.expected_purchases(**data, t=t + dt)
    assert np.all(e2 >= e1 * (1 - 1e-12))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(
    params=(1.0, 1.0, 50.0, 5.0, 1.0),
    data={"frequency": np.array([1.0]), "recency": np.array([1.0]), "T": np.array([1000.0])},
)
@given(params=st.tuples(positive, positive, positive, positive, positive), data=rfm_customers())
def test_ggnbd_likelihood_and_alive_within_bounds(params, data):
    """L = C [g(T) S(T) + int_{t_x}^T g f], C = Gamma(r+x) alpha^r / Gamma(r),
    g(tau) = (alpha + tau)^-(r+x) decreasing, f = -S'. The integral lies between
    g(T) (S(t_x) - S(T)) and g(t_x) (S(t_x) - S(T)), so ln L lies in
    [ln C + ln g(T) + ln S(t_x), ln C + ln g(t_x) + ln S(t_x)], and P(alive) = C g(T) S(T) / L
    lies between g(T) S(T) / (g(T) S(T) + g(t_x) (S(t_x) - S(T))) and S(T) / S(t_x)."""
    r, alpha, b, s, beta = params
    model = GGNBD.from_params(**dict(zip(GGNBD_PARAMS, params)))
    x, t_x, T = data["frequency"], data["recency"], data["T"]
    ll = model.log_likelihood_per_customer(**data)
    with np.errstate(divide="ignore"):
        ln_alive = np.log(model.probability_alive(**data))
    ln_c = gammaln(r + x) - gammaln(r) + r * math.log(alpha)
    ln_g_t, ln_g_tx = -(r + x) * np.log(alpha + T), -(r + x) * np.log(alpha + t_x)
    ln_s_t, ln_s_tx = gg_ln_survival(b, s, beta, T), gg_ln_survival(b, s, beta, t_x)
    slack = 1e-9 * np.maximum(1.0, np.abs(ll))
    assert np.all(ll >= ln_c + ln_g_t + ln_s_tx - slack)
    assert np.all(ll <= ln_c + ln_g_tx + ln_s_tx + slack)
    ratio = ln_s_t - ln_s_tx  # ln S(T) / S(t_x) <= 0
    with np.errstate(divide="ignore"):
        ln_lost = ln_g_tx + ln_s_tx + np.log(-np.expm1(ratio))  # ln g(t_x) (S(t_x) - S(T))
    ln_kept = ln_g_t + ln_s_t
    lower = ln_kept - np.logaddexp(ln_kept, ln_lost)
    assert np.all(ln_alive <= ratio + 1e-9 * np.maximum(1.0, np.abs(ratio)))
    # P(alive) may underflow to 0 where its lower bound is below the smallest double.
    underflow = (ln_alive == -np.inf) & (lower < -740.0)
    assert np.all(underflow | (ln_alive >= lower - 1e-9 * np.maximum(1.0, np.abs(lower))))


# --- BG/BB --------------------------------------------------------------------------------------

BGBB = clvrs.BetaGeoBetaBinomModel
BGBB_PARAMS = ("alpha", "beta", "gamma", "delta")


@st.composite
def histories(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """Discrete histories: whole numbers with frequency <= recency <= periods, recency 0 if and
    only if frequency 0."""
    x, t_x, n = [], [], []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        periods = draw(st.integers(min_value=0, max_value=300))
        last = draw(st.integers(min_value=0, max_value=periods))
        x.append(float(draw(st.integers(min_value=1, max_value=last)) if last else 0))
        t_x.append(float(last))
        n.append(float(periods))
    return {"frequency": np.array(x), "recency": np.array(t_x), "periods": np.array(n)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    params=st.tuples(positive, positive, positive, positive),
    data=histories(),
    m=st.integers(min_value=0, max_value=200),
    dm=st.integers(min_value=0, max_value=200),
    n=st.integers(min_value=0, max_value=100),
    rate=st.floats(min_value=1e-3, max_value=1.0),
)
def test_bgbb_finite_and_in_range(params, data, m, dm, n, rate):
    model = BGBB.from_params(**dict(zip(BGBB_PARAMS, params)))
    ll = model.log_likelihood_per_customer(**data)
    # The log-probability of a discrete history.
    assert np.all(np.isfinite(ll)) and np.all(ll <= 1e-12)
    alive = model.probability_alive(**data)
    later = model.probability_alive(**data, m=m)
    latest = model.probability_alive(**data, m=m + dm)
    assert np.all((alive >= 0) & (alive <= 1))
    assert np.all(later <= alive * (1 + 1e-12)) and np.all(latest <= later * (1 + 1e-12))
    assert np.all(latest >= 0)
    e1 = model.expected_purchases(**data, m=m)
    e2 = model.expected_purchases(**data, m=m + dm)
    # Non-decreasing in the horizon, and at most one transaction per opportunity.
    assert np.all(np.isfinite(e1)) and np.all(e1 >= 0) and np.all(e1 <= m * (1 + 1e-12))
    assert np.all(e2 >= e1 * (1 - 1e-12)) and np.all(e2 - e1 <= dm * (1 + 1e-12) + 1e-12)
    # Discounted: at most sum_j (1 + d)^-j = 1 / d.
    dert = model.expected_residual_transactions(**data, discount_rate=rate)
    assert np.all(np.isfinite(dert)) and np.all(dert >= 0) and np.all(dert <= (1 + 1e-9) / rate)
    # A new customer's transaction count in n opportunities is a distribution on 0..n.
    probs = model.purchase_count_probability(np.arange(n + 1), n)
    assert np.all((probs >= 0) & (probs <= 1))
    assert probs.sum() == pytest.approx(1.0, abs=1e-9)
    mean = model.expected_purchases_new_customer(n)
    assert float(np.arange(n + 1) @ probs) == pytest.approx(mean, rel=1e-9, abs=1e-12)
    assert model.expected_purchases_new_customer(n + dm) >= mean * (1 - 1e-12)


def bgbb_synth(
    n: int,
    seed: int,
    alpha: float = 1.2,
    beta: float = 0.75,
    gamma: float = 0.66,
    delta: float = 2.8,
    max_periods: int = 150,
) -> pd.DataFrame:
    """Histories drawn from the BG/BB process: transactions with probability p at each
    opportunity survived; death with probability theta before each opportunity."""
    rng = np.random.default_rng(seed)
    periods = rng.integers(1, max_periods + 1, size=n)
    p = rng.beta(alpha, beta, size=n)
    theta = np.clip(rng.beta(gamma, delta, size=n), 1e-12, 1.0)
    alive_for = rng.geometric(theta) - 1  # opportunities survived
    x, t_x = np.zeros(n), np.zeros(n)
    for t in range(1, max_periods + 1):
        buys = (t <= np.minimum(alive_for, periods)) & (rng.random(n) < p)
        x += buys
        t_x[buys] = t
    return pd.DataFrame({"frequency": x, "recency": t_x, "periods": periods.astype(float)})


@pytest.fixture(scope="module")
def bgbb_histories() -> pd.DataFrame:
    data = bgbb_synth(12_000, seed=8)
    # More distinct histories than one parallel chunk (4,096 rows), so the thread count matters.
    assert len(data.drop_duplicates()) > 4096
    return data


def test_bgbb_invariances(bgbb_histories):
    data = bgbb_histories
    base = BGBB(n_jobs=1).fit(data)
    assert base.converged_
    shuffled = data.sample(frac=1.0, random_state=3)
    by_two = BGBB(n_jobs=2).fit(shuffled)
    pd.testing.assert_series_equal(by_two.params_, base.params_, check_exact=True)
    assert by_two.log_likelihood_ == base.log_likelihood_
    counts = data.groupby(["frequency", "recency", "periods"]).size().rename("w").reset_index()
    compressed = BGBB(n_jobs=2, columns={"weights": "w"}).fit(counts.iloc[::-1])
    pd.testing.assert_series_equal(compressed.params_, base.params_, check_exact=True)
    assert compressed.log_likelihood_ == base.log_likelihood_
    # Per-customer predictions are the same, bit for bit, on one thread or two.
    one = BGBB.from_params(**base.params_).set_params(n_jobs=1)
    two = BGBB.from_params(**base.params_).set_params(n_jobs=2)
    for method, kwargs in [
        ("log_likelihood_per_customer", {}),
        ("probability_alive", {"m": 3}),
        ("expected_purchases", {"m": 5}),
        ("expected_residual_transactions", {"discount_rate": 0.1}),
    ]:
        np.testing.assert_array_equal(
            getattr(one, method)(data, **kwargs), getattr(two, method)(data, **kwargs)
        )


# --- Gamma-Gamma --------------------------------------------------------------------------------

GAMMA_GAMMA = clvrs.GammaGammaModel


@st.composite
def spend_summaries(draw: st.DrawFn) -> dict[str, np.ndarray]:
    """(frequency, mean spend) rows; customers without repeat transactions have spend 0."""
    x, m = [], []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        frequency = draw(st.integers(min_value=0, max_value=300))
        x.append(float(frequency))
        m.append(draw(st.floats(min_value=1e-2, max_value=1e5)) if frequency else 0.0)
    return {"frequency": np.array(x), "monetary_value": np.array(m)}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    p=positive,
    q=st.floats(min_value=1.0, max_value=100.0, exclude_min=True),
    gamma=st.floats(min_value=1e-2, max_value=1e4),
    data=spend_summaries(),
    unit=st.floats(min_value=1e-3, max_value=1e3),
)
def test_gamma_gamma_finite_in_range_and_currency_consistent(p, q, gamma, data, unit):
    model = GAMMA_GAMMA.from_params(p=p, q=q, gamma=gamma)
    repeat = data["frequency"] > 0
    ll = model.log_likelihood_per_customer(**data)
    assert np.all(np.isfinite(ll[repeat])) and np.all(np.isnan(ll[~repeat]))
    spend = model.expected_average_spend(**data)
    population = model.population_mean_spend()
    assert np.isfinite(population) and population > 0
    assert np.all(np.isfinite(spend)) and np.all(spend > 0)
    # A weighted average of the population mean and the customer's own mean.
    np.testing.assert_allclose(spend[~repeat], population, rtol=1e-12)
    own = data["monetary_value"][repeat]
    assert np.all(spend[repeat] >= np.minimum(own, population) * (1 - 1e-12))
    assert np.all(spend[repeat] <= np.maximum(own, population) * (1 + 1e-12))
    # Another currency (u per old unit): gamma * u; the likelihood is a density of the mean
    # spend, so it shifts by -ln u per repeat buyer; spends scale by u.
    rescaled = GAMMA_GAMMA.from_params(p=p, q=q, gamma=gamma * unit)
    in_unit = {**data, "monetary_value": data["monetary_value"] * unit}
    shifted = rescaled.log_likelihood_per_customer(**in_unit)
    np.testing.assert_allclose(shifted[repeat], ll[repeat] - math.log(unit), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(rescaled.expected_average_spend(**in_unit), spend * unit, rtol=1e-12)


def gamma_gamma_synth(
    n: int, seed: int, p: float = 6.25, q: float = 3.74, gamma: float = 15.44
) -> pd.DataFrame:
    """Repeat transactions and their mean spend (in cents, so that some rows repeat) drawn from
    the Gamma-Gamma model; customers without repeat transactions have spend 0."""
    rng = np.random.default_rng(seed)
    x = rng.poisson(2.0, size=n)
    nu = rng.gamma(q, 1.0 / gamma, size=n)
    k = np.maximum(x, 1)
    mean = rng.gamma(p * k, 1.0 / (k * nu))  # the mean of k Gamma(p, nu) values
    spend = np.where(x > 0, np.maximum(np.round(mean, 2), 0.01), 0.0)
    return pd.DataFrame({"frequency": x.astype(float), "monetary_value": spend})


def test_gamma_gamma_invariances():
    data = gamma_gamma_synth(12_000, seed=9)
    repeat_buyers = int((data["frequency"] > 0).sum())
    distinct = data[data["frequency"] > 0].drop_duplicates()
    assert 4096 < len(distinct) < repeat_buyers  # several parallel chunks, and repeated rows
    base = GAMMA_GAMMA(n_jobs=1).fit(data)
    assert base.converged_ and base.n_observations_ == repeat_buyers
    shuffled = data.sample(frac=1.0, random_state=3)
    by_two = GAMMA_GAMMA(n_jobs=2).fit(shuffled)
    pd.testing.assert_series_equal(by_two.params_, base.params_, check_exact=True)
    assert by_two.log_likelihood_ == base.log_likelihood_
    counts = data.groupby(["frequency", "monetary_value"]).size().rename("w").reset_index()
    compressed = GAMMA_GAMMA(n_jobs=2, columns={"weights": "w"}).fit(counts.iloc[::-1])
    pd.testing.assert_series_equal(compressed.params_, base.params_, check_exact=True)
    assert compressed.log_likelihood_ == base.log_likelihood_
    # Spend in another currency (cents; sevenths): gamma scales, p and q do not, and the
    # log-likelihood shifts by the Jacobian of the mean-spend density, -ln u per repeat buyer.
    for unit in (100.0, 1.0 / 7.0):
        scaled = GAMMA_GAMMA().fit(data.assign(monetary_value=data["monetary_value"] * unit))
        assert scaled.params_["p"] == pytest.approx(base.params_["p"], rel=1e-6)
        assert scaled.params_["q"] == pytest.approx(base.params_["q"], rel=1e-6)
        assert scaled.params_["gamma"] == pytest.approx(base.params_["gamma"] * unit, rel=1e-6)
        shift = repeat_buyers * math.log(unit)
        assert scaled.log_likelihood_ == pytest.approx(base.log_likelihood_ - shift, rel=1e-9)


# --- Subscription models: sBG and BdW -----------------------------------------------------------

CHURN = {
    clvrs.ShiftedBetaGeoModel: ("alpha", "beta"),
    clvrs.BetaDiscreteWeibullModel: ("alpha", "beta", "c"),
}


@pytest.mark.parametrize("cls", list(CHURN), ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    params=st.tuples(positive, positive, st.floats(min_value=0.05, max_value=20.0)),
    horizon=st.integers(min_value=1, max_value=300),
)
def test_churn_predictions_in_range(cls, params, horizon):
    model = cls.from_params(**dict(zip(CHURN[cls], params)))
    t = np.arange(horizon + 1, dtype=float)
    survival = model.survival(t)
    assert survival[0] == 1.0
    assert np.all((survival >= 0) & (survival <= 1)) and np.all(np.diff(survival) <= 0)
    churn = model.churn_probability(t[1:])
    assert np.all((churn >= 0) & (churn <= 1))
    # Those lost in periods 1..k are the cohort less its survivors after k.
    np.testing.assert_allclose(np.cumsum(churn), 1 - survival[1:], rtol=0, atol=1e-12)
    retention = model.retention_rate(t[1:])
    assert np.all((retention >= 0) & (retention <= 1))
    normal = survival[1:] > 1e-250  # S(t) / S(t - 1) still precise in floating point
    np.testing.assert_allclose(
        retention[normal], survival[1:][normal] / survival[:-1][normal], rtol=1e-9
    )
    # Still active one period on, given active after t - 1 periods: the retention rate at t.
    active = model.probability_active(t[:-1], 1)
    np.testing.assert_allclose(active[normal], retention[normal], rtol=1e-9)
    if cls is clvrs.ShiftedBetaGeoModel:
        assert np.all(np.diff(retention) >= -1e-15)  # (beta + t - 1) / (alpha + beta + t - 1)


@st.composite
def survivor_counts(draw: st.DrawFn) -> list[int]:
    """Any cohort: its size, then non-increasing counts of the customers still active."""
    counts = [draw(st.integers(min_value=1, max_value=2000))]
    for _ in range(draw(st.integers(min_value=1, max_value=10))):
        counts.append(math.floor(counts[-1] * draw(st.floats(min_value=0.0, max_value=1.0))))
    return counts


@st.composite
def heterogeneous_cohorts(draw: st.DrawFn) -> list[int]:
    """Survivor counts (expected values, rounded) of a heterogeneous sBG cohort, whose
    maximum-likelihood estimates are interior."""
    alpha = draw(st.floats(min_value=0.2, max_value=5.0))
    beta = draw(st.floats(min_value=0.2, max_value=5.0))
    size = draw(st.integers(min_value=200, max_value=5000))
    horizon = draw(st.integers(min_value=4, max_value=12))
    curve = clvrs.ShiftedBetaGeoModel.from_params(alpha=alpha, beta=beta).survival(
        np.arange(horizon + 1, dtype=float)
    )
    counts = np.round(size * curve).astype(int)
    assume(counts[-1] >= 20 and counts[1] < counts[0])
    return counts.tolist()


def churn_records(survivors: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The survivor counts as weighted (periods, churned, n) records, and one row per customer."""
    counts = np.asarray(survivors)
    lost = counts[:-1] - counts[1:]
    churned_in = np.flatnonzero(lost) + 1
    rows = [(int(t), True, int(lost[t - 1])) for t in churned_in]
    if counts[-1] > 0:
        rows.append((len(counts) - 1, False, int(counts[-1])))
    records = pd.DataFrame(rows, columns=["periods", "churned", "n"])
    customers = records.loc[records.index.repeat(records["n"])].drop(columns="n")
    return records, customers.reset_index(drop=True)


@pytest.mark.filterwarnings("ignore::clvrs.exceptions.ConvergenceWarning")  # flat likelihoods
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(survivors=survivor_counts())
def test_churn_fit_from_survivors_matches_customer_records(survivors):
    records, customers = churn_records(survivors)
    for cls in CHURN:
        cohort = cls().fit(survivors=survivors)
        weighted = cls(columns={"weights": "n"}).fit(records)
        pd.testing.assert_series_equal(weighted.params_, cohort.params_, check_exact=True)
        assert weighted.log_likelihood_ == cohort.log_likelihood_
        # One row per customer, in any order: the same maximum of the same likelihood, where
        # there is one (not where the estimates run off to a boundary, which the fit reports).
        if not cohort.converged_ or cohort.fit_info_["weakly_identified"]:
            continue
        for frame in (customers, customers.sample(frac=1.0, random_state=0)):
            assert cls().fit(frame).log_likelihood_ == pytest.approx(
                cohort.log_likelihood_, rel=1e-10
            )


@pytest.mark.filterwarnings("ignore::clvrs.exceptions.ConvergenceWarning")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(survivors=[200, 100, 67, 50, 40])
@example(survivors=[4452, 635, 407, 307, 249, 211, 183, 163, 147, 133, 123, 113])
@given(survivors=heterogeneous_cohorts())
def test_churn_fit_estimates_do_not_depend_on_representation(survivors):
    _, customers = churn_records(survivors)
    for cls in CHURN:
        cohort = cls().fit(survivors=survivors)
        for frame in (customers, customers.sample(frac=1.0, random_state=0)):
            np.testing.assert_allclose(cls().fit(frame).params_, cohort.params_, rtol=1e-8)
