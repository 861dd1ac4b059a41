"""BG/NBD with time-varying purchase covariates (``BetaGeoDynamicModel``): the likelihood
against an independent mpmath integration over lambda and p, reductions to the time-invariant
covariate BG/NBD and to the plain BG/NBD, parameter recovery and predictions on data simulated
from the model, the refusal of dropout covariates that change, and persistence."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs.exceptions import InvalidDataError, InvalidParameterError

START = pd.Timestamp("2024-01-01")  # a Monday


def simulate(
    n: int,
    params: tuple[float, float, float, float],
    coefficients: tuple[float, float],
    seed: int,
    weeks_observed: int = 52,
    weeks_ahead: int = 26,
    born_within: int = 26,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Timestamp]:
    """Draw customers from the model in continuous time (weeks).

    The purchase covariate ``promo`` is 0/1 per customer and calendar week; the dropout
    covariate ``channel`` is 0/1 per customer and never changes. Each customer's first purchase
    is at its birth (on the hour within the first ``born_within`` weeks); while alive it buys at
    rate ``lambda exp(g1 promo(t))`` and drops out after each repeat purchase with probability
    ``p ~ Beta(a exp(g2 channel), b exp(g2 channel))``: the number of repeat purchases it makes
    before dropping out (the last included) is geometric in ``p``. Returns the transaction log,
    the weekly panel, each customer's purchases after the end of observation, and that end.
    """
    rng = np.random.default_rng(seed)
    r, alpha, a, b = params
    g_purchase, g_dropout = coefficients
    weeks = weeks_observed + weeks_ahead
    promo = (rng.random((n, weeks)) < 0.3).astype(float)
    channel = (rng.random(n) < 0.5).astype(float)
    birth = np.floor(rng.random(n) * born_within * 168) / 168
    lam = rng.gamma(r, 1 / alpha, n)
    shift = np.exp(g_dropout * channel)
    p = rng.beta(a * shift, b * shift)
    remaining = rng.geometric(np.clip(p, 1e-300, 1.0))  # repeat purchases left, the last fatal
    customers, times = [np.arange(n)], [birth.copy()]
    for k in range(weeks):
        lo = np.maximum(k, birth)
        exposure = np.where(remaining > 0, np.clip(k + 1 - lo, 0, None), 0.0)
        counts = rng.poisson(lam * np.exp(g_purchase * promo[:, k]) * exposure)
        who = np.repeat(np.arange(n), counts)
        when = lo[who] + rng.random(who.size) * exposure[who]
        order = np.lexsort((when, who))
        who, when = who[order], when[order]
        rank = np.arange(who.size) - np.repeat(np.cumsum(counts) - counts, counts)
        kept = rank < remaining[who]
        customers.append(who[kept])
        times.append(when[kept])
        remaining = remaining - np.minimum(counts, remaining)
    hours = np.floor(np.concatenate(times) * 168)
    log = pd.DataFrame(
        {
            "customer_id": np.concatenate(customers),
            "date": START + pd.to_timedelta(hours, unit="h"),
        }
    )
    end = START + pd.Timedelta(weeks=weeks_observed)
    ahead = log[log["date"] > end].groupby("customer_id").size().reindex(range(n), fill_value=0)
    panel = pd.DataFrame(
        {
            "customer_id": np.repeat(np.arange(n), weeks),
            "date": np.tile(START + pd.to_timedelta(np.arange(weeks) * 7, unit="D"), n),
            "promo": promo.ravel(),
            "channel": np.repeat(channel, weeks),
        }
    )
    return log, panel, ahead, end


def prepared(
    log: pd.DataFrame, panel: pd.DataFrame, end: pd.Timestamp
) -> clvrs.DynamicCovariateData:
    """Hourly resolution in weeks (purchases in the same hour are rare)."""
    return clvrs.DynamicCovariateData(
        log[log["date"] <= end],
        panel,
        freq="H",
        freq_multiplier=168,
        observation_period_end=end,
    )


TRUTH = (0.8, 4.0, 0.9, 3.0)
COEFFICIENTS = (0.7, 0.6)


@pytest.fixture(scope="module")
def simulated() -> tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.BetaGeoDynamicModel]:
    log, panel, ahead, end = simulate(4000, TRUTH, COEFFICIENTS, seed=1)
    data = prepared(log, panel, end)
    model = clvrs.BetaGeoDynamicModel().fit(
        data, purchase_covariates="promo", dropout_covariates="channel"
    )
    return data, ahead, model


# -- the likelihood -----------------------------------------------------------------------------


def reference_log_likelihood(
    params: tuple[float, float, float, float],
    starts: list[float],
    e: list[float],
    shift: float,
    purchases: list[float],
    age: float,
) -> float:
    """The likelihood given (lambda, p), integrated over lambda's gamma and p's beta
    distribution numerically with mpmath (40 digits).

    Given lambda and p the history's density is prod_j lambda e(t_j) [(1 - p)^x exp(-lambda
    A(T)) + [x > 0] p (1 - p)^(x - 1) exp(-lambda A(t_x))], with A(t) the integral of the
    step function e; each term is a product of a lambda part and a p part, each integrated by
    tanh-sinh quadrature (the model's own route uses the gamma and beta integrals in closed
    form instead).
    """
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    r, alpha, a, b = (mpmath.mpf(v) for v in params)
    a, b = a * shift, b * shift
    x = len(purchases)
    t_x = purchases[-1] if purchases else 0.0
    bounds = [*starts[1:], math.inf]

    def cumulative(t: float) -> mpmath.mpf:
        return mpmath.fsum(
            mpmath.mpf(v) * max(0.0, min(t, hi) - lo) for v, lo, hi in zip(e, starts, bounds)
        )

    def piece(t: float) -> int:
        return max(k for k, lo in enumerate(starts) if lo <= t)

    def over_lambda(clock: mpmath.mpf) -> mpmath.mpf:
        density = lambda lam: (  # noqa: E731
            alpha**r * lam ** (r - 1) * mpmath.exp(-alpha * lam) / mpmath.gamma(r)
        )
        return mpmath.quad(
            lambda lam: lam**x * mpmath.exp(-lam * clock) * density(lam), [0, 1, mpmath.inf]
        )

    def over_p(weight: object) -> mpmath.mpf:
        density = lambda q: q ** (a - 1) * (1 - q) ** (b - 1) / mpmath.beta(a, b)  # noqa: E731
        return mpmath.quad(lambda q: weight(q) * density(q), [0, 0.5, 1])

    total = over_lambda(cumulative(age)) * over_p(lambda q: (1 - q) ** x)
    if x > 0:
        total += over_lambda(cumulative(t_x)) * over_p(lambda q: q * (1 - q) ** (x - 1))
    log_e = sum(math.log(e[piece(t)]) for t in purchases)
    return float(mpmath.log(total)) + log_e


def test_log_likelihood_matches_independent_integration(
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.BetaGeoDynamicModel],
) -> None:
    _, _, fitted = simulated
    params = pd.Series([0.9, 5.0, 1.3, 2.5, 0.6, -0.4], index=fitted.params_.index)
    model = fitted._with_params(params)
    log = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 1, 2, 3, 3],
            "date": pd.to_datetime(
                [
                    "2024-01-01",
                    "2024-01-04",
                    "2024-01-20",
                    "2024-02-10",
                    "2024-01-02",
                    "2024-01-01",
                    "2024-01-02",
                ]
            ),
        }
    )
    panel = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 2, 3],
            "date": pd.to_datetime(
                ["2024-01-01", "2024-01-15", "2024-02-05", "2024-01-01", "2024-01-29", "2023-12-01"]
            ),
            "promo": [0.0, 1.0, 0.5, 1.0, 0.0, 2.0],
            "channel": [1.0, 1.0, 1.0, 0.0, 0.0, -0.5],
        }
    )
    data = clvrs.DynamicCovariateData(
        log, panel, freq="D", freq_multiplier=7, observation_period_end="2024-03-01"
    )
    got = model.log_likelihood_per_customer(data)
    g1, g2 = 0.6, -0.4
    for customer, starts_days, promo, channel, purchase_days in [
        (1, [0, 14, 35], [0.0, 1.0, 0.5], 1.0, [3, 19, 40]),
        (2, [0, 27], [1.0, 0.0], 0.0, []),
        (3, [0], [2.0], -0.5, [1]),
    ]:
        first = log.loc[log["customer_id"] == customer, "date"].min()
        age = (pd.Timestamp("2024-03-01") - first).days / 7
        expected = reference_log_likelihood(
            (0.9, 5.0, 1.3, 2.5),
            [d / 7 for d in starts_days],
            [math.exp(g1 * v) for v in promo],
            math.exp(g2 * channel),
            [d / 7 for d in purchase_days],
            age,
        )
        assert got[customer] == pytest.approx(expected, abs=1e-10, rel=1e-10), customer


def reference_probability_alive(
    params: tuple[float, float, float, float], x: int, a_x: float, a_t: float, ahead: float
) -> float:
    """P(alive at T + t) as mpmath's double integral over (lambda, p) of the chance of the
    history, of being alive at T and of surviving the purchases of the operational time
    ``ahead`` (each followed by a dropout coin: exp(-lambda p ahead) given the rates), over
    the likelihood (the same double integral without the last factor, plus the dropped-out
    branch). ``a`` and ``b`` are the customer's, after its dropout covariates."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 20
    r, alpha, a, b = params

    def alive(lam: object, q: object, until: float) -> object:
        return (
            lam ** (r + x - 1)
            * (1 - q) ** (b + x - 1)
            * q ** (a - 1)
            * mpmath.exp(-lam * (alpha + a_t + q * until))
        )

    def dropped(lam: object, q: object) -> object:
        return lam ** (r + x - 1) * q**a * (1 - q) ** (b + x - 2) * mpmath.exp(-lam * (alpha + a_x))

    def integral(f: object) -> object:
        return mpmath.quad(lambda q, lam: f(lam, q), [0, 1], [0, 1, mpmath.inf])

    total = integral(lambda lam, q: alive(lam, q, 0.0))
    if x > 0:
        total += integral(dropped)
    return float(integral(lambda lam, q: alive(lam, q, ahead)) / total)


def test_probability_alive_ahead_matches_a_double_integral(
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.BetaGeoDynamicModel],
) -> None:
    """P(alive at T + t) against mpmath's double integral (reference_probability_alive), for
    customers whose covariates changed before T and hold after it."""
    _, _, fitted = simulated
    r, alpha, a, b, g1, g2 = 0.9, 5.0, 1.3, 2.5, 0.6, -0.4
    model = fitted._with_params(pd.Series([r, alpha, a, b, g1, g2], index=fitted.params_.index))
    log = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 3, 3],
            "date": pd.to_datetime(
                ["2024-01-01", "2024-01-04", "2024-01-20", "2024-01-02", "2024-01-01", "2024-01-02"]
            ),
        }
    )
    panel = pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 3],
            "date": pd.to_datetime(["2024-01-01", "2024-01-15", "2024-01-01", "2023-12-01"]),
            "promo": [0.0, 1.0, 1.0, 2.0],
            "channel": [1.0, 1.0, 0.0, -0.5],
        }
    )
    data = clvrs.DynamicCovariateData(
        log, panel, freq="D", freq_multiplier=7, observation_period_end="2024-02-01"
    )
    got = model.probability_alive(data, t=9.0)
    now = model.probability_alive(data)
    for customer, a_x, a_t, x, e_ahead, channel in [
        # A(t_x), A(T) in weeks; x; the purchase multiplier after T; the dropout covariate.
        (
            1,
            19 / 7 - 5 / 7 + 5 / 7 * math.exp(g1),
            14 / 7 + 17 / 7 * math.exp(g1),
            2,
            math.exp(g1),
            1.0,
        ),
        (2, 0.0, 30 / 7 * math.exp(g1), 0, math.exp(g1), 0.0),
        (3, 1 / 7 * math.exp(2 * g1), 31 / 7 * math.exp(2 * g1), 1, math.exp(2 * g1), -0.5),
    ]:
        shift = math.exp(g2 * channel)
        expected = reference_probability_alive(
            (r, alpha, a * shift, b * shift), x, a_x, a_t, 9.0 * e_ahead
        )
        assert got[customer] == pytest.approx(expected, abs=1e-10), customer
        assert got[customer] < now[customer]


def test_constant_covariates_give_the_time_invariant_model() -> None:
    log, panel, _, end = simulate(1500, TRUTH, (0.0, 0.0), seed=5)
    rng = np.random.default_rng(5)
    level = pd.DataFrame(
        {
            "customer_id": np.arange(1500),
            "date": START,
            "flag": (rng.random(1500) < 0.5).astype(float),
            "size": rng.normal(0, 1, 1500),
        }
    )
    data = prepared(log, level, end)
    dynamic = clvrs.BetaGeoDynamicModel().fit(
        data, purchase_covariates=["flag", "size"], dropout_covariates="flag"
    )
    table = data.summary.join(level.set_index("customer_id")[["flag", "size"]])
    static = clvrs.BetaGeoModel().fit(
        table, purchase_covariates=["flag", "size"], dropout_covariates="flag"
    )
    assert list(dynamic.params_.index) == list(static.params_.index)
    assert dynamic.log_likelihood_ == pytest.approx(static.log_likelihood_, abs=1e-6)
    np.testing.assert_allclose(dynamic.params_, static.params_, rtol=1e-4)
    at_static = dynamic._with_params(static.params_)
    np.testing.assert_allclose(
        at_static.log_likelihood_per_customer(data).to_numpy(),
        static.log_likelihood_per_customer(table).to_numpy(),
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        at_static.expected_purchases(data, t=13).to_numpy(),
        static.expected_purchases(table, t=13).to_numpy(),
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        at_static.probability_alive(data).to_numpy(),
        static.probability_alive(table).to_numpy(),
        rtol=1e-10,
    )


def test_zero_coefficients_give_the_bg_nbd(
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.BetaGeoDynamicModel],
) -> None:
    data, _, fitted = simulated
    zero = fitted.params_.copy()
    zero.iloc[4:] = 0.0
    model = fitted._with_params(zero)
    base = clvrs.BetaGeoModel.from_params(**zero.iloc[:4].to_dict())
    summary = data.summary
    for ours, theirs in [
        (model.log_likelihood_per_customer(data), base.log_likelihood_per_customer(summary)),
        (model.expected_purchases(data, t=20), base.expected_purchases(summary, t=20)),
        (model.probability_alive(data), base.probability_alive(summary)),
    ]:
        np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-12, atol=1e-300)


# -- estimation and prediction on simulated data -------------------------------------------------


def test_fit_recovers_the_simulated_parameters(
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.BetaGeoDynamicModel],
) -> None:
    _, _, model = simulated
    assert model.converged_
    assert list(model.params_.index) == [
        "r",
        "alpha",
        "a",
        "b",
        "purchase:promo",
        "dropout:channel",
    ]
    z = (model.params_.to_numpy() - [*TRUTH, *COEFFICIENTS]) / model.standard_errors_.to_numpy()
    assert np.all(np.abs(z) < 3.5), z
    assert model.summary.loc["purchase:promo", "p"] < 1e-10


def test_predictions_match_simulated_future_purchases(
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.BetaGeoDynamicModel],
) -> None:
    data, ahead, model = simulated
    predicted = model.expected_purchases(data, t=26)
    actual = ahead.reindex(predicted.index)
    assert predicted.sum() == pytest.approx(actual.sum(), rel=0.08)
    alive = model.probability_alive(data)
    later = model.probability_alive(data, t=26)
    assert ((alive >= later) & (later >= 0) & (alive <= 1)).all()
    assert alive[actual > 0].mean() > alive[actual == 0].mean() + 0.2
    # The coming promotions count: the same customers without them expect fewer purchases.
    plain = model._with_params(model.params_.where(model.params_.index != "purchase:promo", 0.0))
    assert plain.expected_purchases(data, t=26).sum() < predicted.sum()


def test_ninety_five_percent_intervals_cover_the_truth() -> None:
    """Wald intervals from the analytic-gradient fit cover each true value at the nominal
    rate: 80 datasets x 6 parameters, within the 3-sigma binomial band (which excludes 90%)."""
    truth = np.array([*TRUTH, *COEFFICIENTS])
    covered = []
    for seed in range(80):
        log, panel, _, end = simulate(800, TRUTH, COEFFICIENTS, seed=100 + seed)
        model = clvrs.BetaGeoDynamicModel(on_failure="ignore").fit(
            prepared(log, panel, end), purchase_covariates="promo", dropout_covariates="channel"
        )
        assert model.standard_errors_ is not None
        covered.append(
            np.abs(model.params_.to_numpy() - truth) < 1.96 * model.standard_errors_.to_numpy()
        )
    rate = np.mean(covered)
    band = 3 * math.sqrt(0.95 * 0.05 / np.size(covered))
    assert abs(rate - 0.95) < band, (rate, np.mean(covered, axis=0))


def test_changing_dropout_covariates_are_refused_naming_the_panel_row() -> None:
    log, panel, _, end = simulate(30, TRUTH, COEFFICIENTS, seed=3)
    panel.loc[100, "channel"] = 5.0  # customer 1's 23rd week
    with pytest.raises(InvalidDataError, match="changes over the customer's time") as info:
        clvrs.BetaGeoDynamicModel(on_failure="ignore").fit(
            prepared(log, panel, end), purchase_covariates="promo", dropout_covariates="channel"
        )
    assert info.value.column == "channel"
    # A time-varying column is fine as a purchase covariate.
    clvrs.BetaGeoDynamicModel(on_failure="ignore").fit(
        prepared(log, panel, end), purchase_covariates=["promo", "channel"]
    )


def test_save_load_pickle_and_from_params(
    tmp_path: object,
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.BetaGeoDynamicModel],
) -> None:
    data, _, model = simulated
    path = f"{tmp_path}/model.json"
    model.save(path)
    loaded = clvrs.load(path)
    assert isinstance(loaded, clvrs.BetaGeoDynamicModel)
    pd.testing.assert_series_equal(loaded.params_, model.params_)
    pd.testing.assert_series_equal(
        loaded.expected_purchases(data, t=10), model.expected_purchases(data, t=10)
    )
    again = pickle.loads(pickle.dumps(model))
    pd.testing.assert_frame_equal(again.summary, model.summary)
    with pytest.raises(InvalidParameterError, match="BetaGeoModel.from_params"):
        clvrs.BetaGeoDynamicModel.from_params(r=1, alpha=1, a=1, b=1)
    with pytest.raises(InvalidParameterError, match="DynamicCovariateData"):
        model.expected_purchases(data.summary, t=1)
    with pytest.raises(InvalidDataError, match="finite and >= 0"):
        model.expected_purchases(data, t=-1.0)


def test_likelihood_ratio_test_delta_intervals_and_no_bootstrap(
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.BetaGeoDynamicModel],
) -> None:
    data, _, model = simulated
    plain = clvrs.BetaGeoModel().fit(data.summary)
    test = clvrs.likelihood_ratio_test(plain, model)
    assert test["df"] == 2
    assert test["statistic"] == pytest.approx(2 * (model.log_likelihood_ - plain.log_likelihood_))
    assert test["p_value"] < 1e-10  # the simulated promotion effect is strong
    interval = clvrs.delta_interval(lambda m: m.expected_purchases(data, t=26), [model])
    assert (interval["lower"] < interval["estimate"]).all()
    assert (interval["estimate"] < interval["upper"]).all()
    with pytest.raises(InvalidParameterError, match="delta_interval"):
        clvrs.bootstrap(model, data, n_boot=5)
