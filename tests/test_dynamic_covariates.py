"""Pareto/NBD with time-varying covariates (Bachmann, Meierer & Näf 2021): data preparation,
the likelihood against an independent numerical integration, reductions to the time-invariant
and plain models, parameter recovery and coverage on data simulated from the model, and
predictions against simulated holdout purchases."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pandas as pd
import pytest
from scipy import special

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
    covariate ``price`` is a customer level plus a seasonal wave. Customers are born on the
    hour within the first ``born_within`` weeks; purchases are recorded to the hour. Returns the
    transaction log, the weekly covariate panel, each customer's purchases after the end of
    observation, and that end.
    """
    rng = np.random.default_rng(seed)
    r, alpha, s, beta = params
    g_purchase, g_dropout = coefficients
    weeks = weeks_observed + weeks_ahead
    promo = (rng.random((n, weeks)) < 0.3).astype(float)
    price = rng.normal(0, 0.5, (n, 1)) + np.sin(2 * np.pi * np.arange(weeks) / 26)[None, :]
    birth = np.floor(rng.random(n) * born_within * 168) / 168
    lam = rng.gamma(r, 1 / alpha, n)
    mu = rng.gamma(s, 1 / beta, n)
    target = rng.exponential(1.0, n)  # dropout when mu * B(t) reaches it
    cumulative = np.zeros(n)
    death = np.full(n, np.inf)
    customers, times = [np.arange(n)], [birth.copy()]
    for k in range(weeks):
        lo = np.maximum(k, birth)
        length = np.clip(k + 1 - lo, 0, None)
        alive = (length > 0) & ~np.isfinite(death)
        hazard = mu * np.exp(g_dropout * price[:, k])
        step = hazard * length
        dies = alive & (cumulative + step >= target)
        death[dies] = lo[dies] + (target[dies] - cumulative[dies]) / hazard[dies]
        cumulative = cumulative + np.where(alive, step, 0.0)
        exposure = np.where(alive, np.where(dies, death - lo, length), 0.0)
        counts = rng.poisson(lam * np.exp(g_purchase * promo[:, k]) * exposure)
        who = np.repeat(np.arange(n), counts)
        customers.append(who)
        times.append(lo[who] + rng.random(who.size) * exposure[who])
    when = np.floor(np.concatenate(times) * 168)
    log = pd.DataFrame(
        {
            "customer_id": np.concatenate(customers),
            "date": START + pd.to_timedelta(when, unit="h"),
        }
    )
    end = START + pd.Timedelta(weeks=weeks_observed)
    ahead = log[log["date"] > end].groupby("customer_id").size().reindex(range(n), fill_value=0)
    panel = pd.DataFrame(
        {
            "customer_id": np.repeat(np.arange(n), weeks),
            "date": np.tile(START + pd.to_timedelta(np.arange(weeks) * 7, unit="D"), n),
            "promo": promo.ravel(),
            "price": price.ravel(),
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


TRUTH = (0.8, 6.0, 0.9, 12.0)
COEFFICIENTS = (0.7, 0.5)


@pytest.fixture(scope="module")
def simulated() -> tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.ParetoNBDDynamicModel]:
    log, panel, ahead, end = simulate(4000, TRUTH, COEFFICIENTS, seed=1)
    data = prepared(log, panel, end)
    model = clvrs.ParetoNBDDynamicModel().fit(
        data, purchase_covariates="promo", dropout_covariates="price"
    )
    return data, ahead, model


# -- data preparation ---------------------------------------------------------------------------


@pytest.mark.parametrize("freq", ["D", "W", "M"])
def test_summaries_match_summarize_transactions(freq: str) -> None:
    log = clvrs.datasets.load_cdnow_transactions()
    ids = log["customer_id"].unique()
    panel = pd.DataFrame(
        {"customer_id": ids, "date": pd.Timestamp("1996-12-01"), "flag": np.arange(len(ids)) % 2}
    )
    data = clvrs.DynamicCovariateData(
        log, panel, freq=freq, observation_period_end="1998-06-30", customer_id_col="customer_id"
    )
    expected = clvrs.summarize_transactions(
        log, "customer_id", "date", observation_period_end="1998-06-30", freq=freq
    )
    pd.testing.assert_frame_equal(data.summary, expected[["frequency", "recency", "T"]])
    assert len(data.pieces) == len(ids)
    assert (data.pieces["start"] == 0).all()


@pytest.mark.parametrize("freq", ["H", "D", "W", "M"])
def test_periods_of_arrays(freq: str) -> None:
    """The core's period index of an array of times (shared by the summaries and the panel),
    against numpy's own flooring: hours, days, weeks from Monday, calendar months."""
    from clvrs import _core

    rng = np.random.default_rng(0)
    ns = rng.integers(-(10**18), 2 * 10**18, 2000, dtype=np.int64)
    days = ns // (86_400 * 10**9)
    expected = {
        "H": ns // (3_600 * 10**9),
        "D": days,
        "W": (days + 3) // 7,  # 1970-01-01 was a Thursday
        "M": ns.astype("datetime64[ns]").astype("datetime64[M]").view(np.int64),
    }[freq]
    np.testing.assert_array_equal(_core.period_index(ns, freq), expected)


def test_pieces_start_at_the_first_purchase_and_purchases_find_their_piece() -> None:
    log = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b"],
            "date": ["2024-01-03", "2024-01-10", "2024-01-24", "2024-01-16"],
        }
    )
    panel = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b", "b", "z"],
            "date": [
                "2023-12-01",  # superseded before a's first purchase
                "2024-01-01",  # in effect at a's first purchase: start 0
                "2024-01-15",  # week 2 of a
                "2024-03-04",  # after the end: for predictions
                "2024-01-08",
                "2024-01-29",
                "2024-01-01",  # not a customer: ignored
            ],
            "promo": [9.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    data = clvrs.DynamicCovariateData(log, panel, freq="W", observation_period_end="2024-02-04")
    assert data.summary.to_dict("index") == {
        "a": {"frequency": 2.0, "recency": 3.0, "T": 4.0},
        "b": {"frequency": 0.0, "recency": 0.0, "T": 2.0},
    }
    assert data.pieces["customer_id"].tolist() == ["a", "a", "a", "b", "b"]
    assert data.pieces["start"].tolist() == [0.0, 2.0, 9.0, 0.0, 2.0]
    assert data.pieces["promo"].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    # a's repeat purchases in weeks 1 and 3: pieces 0 and 1.
    assert data._purchase_pieces.tolist() == [0, 1]
    assert "2 customers" in repr(data)


def test_preparation_errors_name_the_problem() -> None:
    log = pd.DataFrame(
        {"customer_id": [1, 1, 2], "date": ["2024-01-03", "2024-01-10", "2024-01-05"]}
    )
    panel = pd.DataFrame(
        {
            "customer_id": [1, 2, 2],
            "date": ["2024-01-01", "2024-01-01", "2024-01-02"],
            "x": [1, 2, 3],
        }
    )
    with pytest.raises(
        InvalidDataError, match=r"customer 2 has two rows in one period \(rows 1 and 2\)"
    ):
        clvrs.DynamicCovariateData(log, panel, freq="W")
    late = panel.iloc[[0, 2]].assign(date=["2024-01-01", "2024-01-08"])
    with pytest.raises(InvalidDataError, match="customer 2 has no covariate row on or before"):
        clvrs.DynamicCovariateData(log, late, freq="W")
    with pytest.raises(InvalidDataError, match="`when`: not found in the covariates"):
        clvrs.DynamicCovariateData(log, panel, freq="D", covariate_datetime_col="when")
    with pytest.raises(InvalidDataError, match="row 1: falls after observation_period_end"):
        clvrs.DynamicCovariateData(log, panel, freq="D", observation_period_end="2024-01-06")
    with pytest.warns(UserWarning, match="1 transactions after"):
        data = clvrs.DynamicCovariateData(
            log, panel, freq="D", observation_period_end="2024-01-06", after_end="exclude"
        )
    assert data.summary["frequency"].tolist() == [0.0, 0.0]
    with pytest.raises(InvalidParameterError, match="freq"):
        clvrs.DynamicCovariateData(log, panel, freq="Q")
    with pytest.raises(InvalidParameterError, match="DynamicCovariateData"):
        clvrs.ParetoNBDDynamicModel().fit(log)


def test_covariate_errors_name_the_panel_row(
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.ParetoNBDDynamicModel],
) -> None:
    data, _, model = simulated
    log = pd.DataFrame({"customer_id": [1, 1], "date": ["2024-01-03", "2024-01-20"]})
    panel = pd.DataFrame(
        {
            "customer_id": [0, 1, 1],
            "date": ["2024-01-01", "2024-01-01", "2024-01-15"],
            "promo": [0.0, 1.0, np.nan],
            "price": [0.0, 0.0, 0.5],
        }
    )
    bad = clvrs.DynamicCovariateData(log, panel, freq="D")
    with pytest.raises(InvalidDataError, match=r"column `promo`, row 2 of the covariates") as info:
        model.log_likelihood_per_customer(bad)
    assert info.value.row == 2
    with pytest.raises(InvalidDataError, match="`promo`, row 2 of the covariates"):
        clvrs.ParetoNBDDynamicModel().fit(bad, purchase_covariates="promo")


# -- the likelihood -----------------------------------------------------------------------------


def reference_log_likelihood(
    params: tuple[float, ...],
    starts: list[float],
    e: list[float],
    f: list[float],
    purchases: list[float],
    age: float,
) -> float:
    """Integrate the likelihood given (lambda, mu) over their gamma distributions numerically.

    Given the rates, the purchases are a Poisson process with intensity lambda e(t) while alive
    and the lifetime has hazard mu f(t): the density of the history is
    prod_j lambda e(t_j) [exp(-lambda A(T) - mu B(T)) + int_{t_x}^T mu f exp(-lambda A - mu B)],
    whose inner integral is elementary piece by piece. (The model's own route integrates lambda
    and mu out first; this one integrates them last.)
    """
    r, alpha, s, beta = params
    step = 0.05
    x = len(purchases)
    t_x = purchases[-1] if purchases else 0.0
    bounds = [*starts[1:], math.inf]

    def cumulative(t: float, rate: list[float]) -> float:
        return sum(v * max(0.0, min(t, hi) - lo) for v, lo, hi in zip(rate, starts, bounds))

    def piece(t: float) -> int:
        return max(k for k, lo in enumerate(starts) if lo <= t)

    a_t, b_t = cumulative(age, e), cumulative(age, f)
    log_e = sum(math.log(e[piece(t)]) for t in purchases)

    # Trapezoid rule in (log lambda, log mu): the integrand is smooth and decays at least
    # exponentially at both ends there, where the rule converges exponentially in 1 / step.
    def grid(shape: float, rate: float) -> tuple[np.ndarray, np.ndarray]:
        mode = math.log(shape / rate)
        logs = np.arange(mode - 80.0 / shape, mode + 6.0, step)
        log_density = (
            shape * math.log(rate) + shape * logs - rate * np.exp(logs) - special.gammaln(shape)
        )
        return logs, log_density

    lam_logs, lam_density = grid(r, alpha)
    mu_logs, mu_density = grid(s, beta)
    lam, mu = np.exp(lam_logs)[:, None], np.exp(mu_logs)[None, :]
    total = np.exp(-lam * a_t - mu * b_t)
    for k, (lo, hi) in enumerate(zip(starts, bounds)):
        lo, hi = max(lo, t_x), min(hi, age)
        if hi <= lo:
            continue
        rate = lam * e[k] + mu * f[k]
        total = (
            total
            + mu
            * f[k]
            * np.exp(-lam * cumulative(lo, e) - mu * cumulative(lo, f))
            * -np.expm1(-rate * (hi - lo))
            / rate
        )
    with np.errstate(divide="ignore"):  # far tails underflow to 0: log 0 = -inf drops out
        log_terms = (
            lam_density[:, None] + mu_density[None, :] + x * lam_logs[:, None] + np.log(total)
        )
    peak = log_terms.max()
    return float(peak + np.log(np.exp(log_terms - peak).sum() * step * step)) + log_e


def test_log_likelihood_matches_independent_integration(
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.ParetoNBDDynamicModel],
) -> None:
    _, _, fitted = simulated
    params = pd.Series([0.9, 5.0, 1.3, 8.0, 0.6, -0.4], index=fitted.params_.index)
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
            "price": [1.0, -1.0, 2.0, 0.0, 1.5, -0.5],
        }
    )
    data = clvrs.DynamicCovariateData(
        log, panel, freq="D", freq_multiplier=7, observation_period_end="2024-03-01"
    )
    got = model.log_likelihood_per_customer(data)
    g1, g2 = 0.6, -0.4
    for customer, starts_days, promo, price, purchase_days in [
        (1, [0, 14, 35], [0.0, 1.0, 0.5], [1.0, -1.0, 2.0], [3, 19, 40]),
        (2, [0, 27], [1.0, 0.0], [0.0, 1.5], []),
        (3, [0], [2.0], [-0.5], [1]),
    ]:
        first = log.loc[log["customer_id"] == customer, "date"].min()
        age = (pd.Timestamp("2024-03-01") - first).days / 7
        expected = reference_log_likelihood(
            (0.9, 5.0, 1.3, 8.0),
            [d / 7 for d in starts_days],
            [math.exp(g1 * v) for v in promo],
            [math.exp(g2 * v) for v in price],
            [d / 7 for d in purchase_days],
            age,
        )
        assert got[customer] == pytest.approx(expected, rel=1e-8), customer


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
    dynamic = clvrs.ParetoNBDDynamicModel().fit(
        data, purchase_covariates=["flag", "size"], dropout_covariates="flag"
    )
    table = data.summary.join(level.set_index("customer_id")[["flag", "size"]])
    static = clvrs.ParetoNBDModel().fit(
        table, purchase_covariates=["flag", "size"], dropout_covariates="flag"
    )
    assert list(dynamic.params_.index) == list(static.params_.index)
    assert dynamic.log_likelihood_ == pytest.approx(static.log_likelihood_, abs=1e-6)
    np.testing.assert_allclose(dynamic.params_, static.params_, rtol=1e-4)
    at_static = dynamic._with_params(static.params_)
    np.testing.assert_allclose(
        at_static.expected_purchases(data, t=13).to_numpy(),
        static.expected_purchases(table, t=13).to_numpy(),
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        at_static.log_likelihood_per_customer(data).to_numpy(),
        static.log_likelihood_per_customer(table).to_numpy(),
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        at_static.expected_residual_transactions(data, 0.01).to_numpy(),
        static.expected_residual_transactions(table, discount_rate=0.01).to_numpy(),
        rtol=1e-8,
    )


def test_zero_coefficients_give_the_pareto_nbd(
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.ParetoNBDDynamicModel],
) -> None:
    data, _, fitted = simulated
    zero = fitted.params_.copy()
    zero.iloc[4:] = 0.0
    model = fitted._with_params(zero)
    base = clvrs.ParetoNBDModel.from_params(**zero.iloc[:4].to_dict())
    summary = data.summary
    np.testing.assert_allclose(
        model.log_likelihood_per_customer(data).to_numpy(),
        base.log_likelihood_per_customer(summary).to_numpy(),
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        model.expected_purchases(data, t=20).to_numpy(),
        base.expected_purchases(summary, t=20).to_numpy(),
        rtol=1e-9,
    )
    np.testing.assert_allclose(
        model.probability_alive(data, t=20).to_numpy(),
        base.probability_alive(summary, t=20).to_numpy(),
        rtol=1e-9,
    )
    rate = math.log(1.1) / 52  # 10% a year, in weeks
    np.testing.assert_allclose(
        model.expected_residual_transactions(data, rate).to_numpy(),
        base.expected_residual_transactions(summary, discount_rate=rate).to_numpy(),
        rtol=1e-8,
    )


# -- estimation and prediction on simulated data -------------------------------------------------


def test_fit_recovers_the_simulated_parameters(
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.ParetoNBDDynamicModel],
) -> None:
    _, _, model = simulated
    assert model.converged_
    truth = [*TRUTH, *COEFFICIENTS]
    assert list(model.params_.index) == [
        "r",
        "alpha",
        "s",
        "beta",
        "purchase:promo",
        "dropout:price",
    ]
    z = (model.params_.to_numpy() - truth) / model.standard_errors_.to_numpy()
    assert np.all(np.abs(z) < 3.5), z
    summary = model.summary
    assert summary.loc["purchase:promo", "p"] < 1e-10
    assert {"z", "p", "reference"} <= set(summary.columns)


def test_predictions_match_simulated_future_purchases(
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.ParetoNBDDynamicModel],
) -> None:
    data, ahead, model = simulated
    predicted = model.expected_purchases(data, t=26)
    actual = ahead.reindex(predicted.index)
    # In aggregate, and for customers with and without the coming promotions alike.
    assert predicted.sum() == pytest.approx(actual.sum(), rel=0.08)
    alive = model.probability_alive(data)
    later = model.probability_alive(data, t=26)
    assert ((alive >= later) & (later >= 0) & (alive <= 1)).all()
    # Customers who buy again later were predicted more likely alive.
    assert alive[actual > 0].mean() > alive[actual == 0].mean() + 0.2
    # Per customer horizons.
    both = model.expected_purchases(data, t=np.r_[np.zeros(2), np.full(len(data) - 2, 26.0)])
    assert both.iloc[:2].tolist() == [0.0, 0.0]
    np.testing.assert_allclose(both.iloc[2:], predicted.iloc[2:], rtol=1e-12)


def test_ninety_five_percent_intervals_cover_the_truth() -> None:
    """Wald intervals from the analytic-gradient fit cover each true value at the nominal
    rate: 60 datasets x 6 parameters, within the 3-sigma binomial band."""
    truth = np.array([*TRUTH, *COEFFICIENTS])
    covered = []
    for seed in range(60):
        log, panel, _, end = simulate(800, TRUTH, COEFFICIENTS, seed=100 + seed)
        model = clvrs.ParetoNBDDynamicModel(on_failure="ignore").fit(
            prepared(log, panel, end), purchase_covariates="promo", dropout_covariates="price"
        )
        assert model.standard_errors_ is not None
        covered.append(
            np.abs(model.params_.to_numpy() - truth) < 1.96 * model.standard_errors_.to_numpy()
        )
    rate = np.mean(covered)
    band = 3 * math.sqrt(0.95 * 0.05 / np.size(covered))
    assert abs(rate - 0.95) < band, (rate, np.mean(covered, axis=0))


# -- the estimator ------------------------------------------------------------------------------


def test_save_load_and_pickle_round_trip(
    tmp_path: object,
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.ParetoNBDDynamicModel],
) -> None:
    data, _, model = simulated
    path = f"{tmp_path}/model.json"
    model.save(path)
    loaded = clvrs.load(path)
    assert isinstance(loaded, clvrs.ParetoNBDDynamicModel)
    pd.testing.assert_series_equal(loaded.params_, model.params_)
    pd.testing.assert_series_equal(
        loaded.expected_purchases(data, t=10), model.expected_purchases(data, t=10)
    )
    again = pickle.loads(pickle.dumps(model))
    pd.testing.assert_frame_equal(again.summary, model.summary)


def test_panel_dates_are_read_on_the_transactions_wall_clock() -> None:
    """A log in one timezone and a panel in another: the panel's dates are converted to the
    log's timezone before both are cut into periods, whether the frames are pandas or polars.
    Mixing aware and naive dates is refused."""
    log = pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "date": pd.to_datetime(["2024-01-02 09:00", "2024-01-09 12:00", "2024-01-03 10:00"]),
        }
    )
    # Changes at 23:30 US/Eastern on the 4th are on the 5th in UTC.
    panel_utc = pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 2],
            "date": pd.to_datetime(
                ["2024-01-01 00:00", "2024-01-05 04:30", "2024-01-01 00:00", "2024-01-05 04:30"]
            ),
            "promo": [0.0, 1.0, 0.0, 1.0],
        }
    )
    log["date"] = log["date"].dt.tz_localize("UTC")
    panel_utc["date"] = panel_utc["date"].dt.tz_localize("UTC")
    panel_eastern = panel_utc.assign(date=panel_utc["date"].dt.tz_convert("US/Eastern"))
    options = {"freq": "D", "observation_period_end": "2024-01-20"}
    want = clvrs.DynamicCovariateData(log, panel_utc, **options).pieces
    assert want["start"].tolist() == [0.0, 3.0, 0.0, 2.0]
    got = clvrs.DynamicCovariateData(log, panel_eastern, **options).pieces
    pd.testing.assert_frame_equal(got, want)
    polars = pytest.importorskip("polars")
    from_polars = clvrs.DynamicCovariateData(
        polars.from_pandas(log), polars.from_pandas(panel_eastern), **options
    )
    pd.testing.assert_frame_equal(from_polars.pieces, want)
    # Read on its own wall clock, the panel would change a day earlier.
    naive_eastern = panel_eastern.assign(date=panel_eastern["date"].dt.tz_localize(None))
    naive_log = log.assign(date=log["date"].dt.tz_localize(None))
    shifted = clvrs.DynamicCovariateData(naive_log, naive_eastern, **options).pieces
    assert shifted["start"].tolist() == [0.0, 2.0, 0.0, 1.0]
    with pytest.raises(InvalidDataError, match="has timezone UTC but the transactions"):
        clvrs.DynamicCovariateData(naive_log, panel_utc, **options)
    with pytest.raises(InvalidDataError, match="has no timezone but the transactions"):
        clvrs.DynamicCovariateData(log, naive_eastern, **options)


def test_categorical_and_polars_panels() -> None:
    polars = pytest.importorskip("polars")
    log, panel, _, end = simulate(1500, TRUTH, (0.0, 0.0), seed=9)
    panel["channel"] = np.where(
        panel["price"] > 0.3, "high", np.where(panel["price"] < -0.3, "low", "mid")
    )
    data = clvrs.DynamicCovariateData(
        polars.from_pandas(log[log["date"] <= end]),
        polars.from_pandas(panel),
        freq="H",
        freq_multiplier=168,
        observation_period_end=end,
    )
    model = clvrs.ParetoNBDDynamicModel().fit(data, tied_covariates="channel")
    assert list(model.params_.index[4:]) == ["tied:channel[low]", "tied:channel[mid]"]
    assert model.summary.loc["tied:channel[low]", "reference"] == "channel=high"
    # The simulated channel has no effect: the coefficients are not significant.
    assert (model.summary["p"].iloc[4:] > 0.001).all()
    panel["channel"] = panel["channel"].replace("mid", "other")
    unseen = clvrs.DynamicCovariateData(
        log[log["date"] <= end], panel, freq="H", freq_multiplier=168, observation_period_end=end
    )
    with pytest.raises(InvalidDataError, match="level 'other', not seen"):
        model.probability_alive(unseen)


def test_penalizer_shrinks_coefficients_and_from_params_is_refused(
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.ParetoNBDDynamicModel],
) -> None:
    data, _, model = simulated
    shrunk = clvrs.ParetoNBDDynamicModel().fit(
        data, purchase_covariates="promo", dropout_covariates="price", covariate_penalizer=0.05
    )
    assert np.all(np.abs(shrunk.params_.iloc[4:]) < np.abs(model.params_.iloc[4:]))
    with pytest.raises(InvalidParameterError, match="covariate_penalizer"):
        clvrs.ParetoNBDDynamicModel().fit(data, purchase_covariates="promo", covariate_penalizer=-1)
    with pytest.raises(InvalidParameterError, match="from_params"):
        clvrs.ParetoNBDDynamicModel.from_params(r=1, alpha=1, s=1, beta=1)


def test_likelihood_ratio_test_against_the_plain_pareto_nbd(
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.ParetoNBDDynamicModel],
) -> None:
    data, _, model = simulated
    plain = clvrs.ParetoNBDModel().fit(data.summary)
    test = clvrs.likelihood_ratio_test(plain, model)
    assert test["df"] == 2
    assert test["statistic"] == pytest.approx(2 * (model.log_likelihood_ - plain.log_likelihood_))
    assert test["p_value"] < 1e-10  # the simulated effects are strong
    with pytest.raises(InvalidParameterError, match="not nested"):
        clvrs.likelihood_ratio_test(model, plain)


def test_dert_is_the_discounted_sum_of_expected_purchases(
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.ParetoNBDDynamicModel],
) -> None:
    """DERT (adaptive quadrature) against the Stieltjes sum of the closed-form expected
    purchases over a fine grid of horizons, for customers whose covariates change ahead."""
    _, _, model = simulated
    log, panel, _, end = simulate(150, TRUTH, COEFFICIENTS, seed=21)
    data = prepared(log, panel, end)
    rate = 0.05
    grid = np.arange(0.0, 700.0, 0.25)  # e^(-0.05 * 700) ~ 6e-16
    cumulative = np.array([model.expected_purchases(data, t=u).to_numpy() for u in grid])
    middle = 0.5 * (grid[1:] + grid[:-1])
    stieltjes = (np.exp(-rate * middle)[:, None] * np.diff(cumulative, axis=0)).sum(axis=0)
    dert = model.expected_residual_transactions(data, rate).to_numpy()
    np.testing.assert_allclose(dert, stieltjes, rtol=2e-5)
    with pytest.raises(InvalidDataError, match="discount_rate"):
        model.expected_residual_transactions(data, 0.0)


def test_delta_method_intervals_and_no_bootstrap(
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.ParetoNBDDynamicModel],
) -> None:
    data, _, model = simulated
    interval = clvrs.delta_interval(lambda m: m.expected_purchases(data, t=26), [model])
    assert list(interval.index) == list(data.summary.index)
    assert (interval["lower"] < interval["estimate"]).all()
    assert (interval["estimate"] < interval["upper"]).all()
    assert (interval["se"] > 0).all()
    alive = clvrs.delta_interval(lambda m: m.probability_alive(data), [model], scale="logit")
    assert ((alive["lower"] >= 0) & (alive["upper"] <= 1)).all()
    with pytest.raises(InvalidParameterError, match="delta_interval"):
        clvrs.bootstrap(model, data, n_boot=5)


def test_review_edge_cases(
    simulated: tuple[clvrs.DynamicCovariateData, pd.Series, clvrs.ParetoNBDDynamicModel],
) -> None:
    """Purchases late on the last day count as observed; future panel rows neither teach nor
    block the fit; errors about a covariate value name the panel row; dates outside the
    nanosecond range, panels with ids that match no customer, and numpy multipliers."""
    _, _, fitted = simulated
    log = pd.DataFrame(
        {
            "customer_id": [1, 1, 1, 2, 2],
            "date": pd.to_datetime(
                [
                    "2024-01-01",
                    "2024-01-10",
                    "2024-01-31 15:00",
                    "2024-01-02",
                    "2024-01-20",
                ],
                format="ISO8601",
            ),
        }
    )
    panel = pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 2, 9],
            "date": pd.to_datetime(["2024-01-01", "2024-02-05", "2024-01-01", "2024-02-05", None]),
            "promo": [0.0, np.nan, 1.0, 2.0, 0.0],
            "price": [0.0, 0.5, 1.0, 1.0, 0.0],
            "channel": ["web", "new", "shop", "shop", "web"],
        }
    )
    data = clvrs.DynamicCovariateData(
        log, panel, freq="D", freq_multiplier=np.int64(7), observation_period_end="2024-01-31"
    )
    expected = clvrs.summarize_transactions(
        log, "customer_id", "date", observation_period_end="2024-01-31", freq_multiplier=7
    )
    pd.testing.assert_frame_equal(data.summary, expected[["frequency", "recency", "T"]])
    # Row 1 (NaN promo, level "new") starts after T: the fit neither learns nor needs it.
    model = clvrs.ParetoNBDDynamicModel(on_failure="ignore").fit(
        data, purchase_covariates=["promo", "channel"]
    )
    assert list(model.params_.index[4:]) == ["purchase:promo", "purchase:channel[web]"]
    with pytest.raises(InvalidDataError, match=r"`promo`, row 1 of the covariates") as info:
        model.expected_purchases(data, t=4)
    assert info.value.row == 1
    # A value the core refuses (infinite) is also located in the panel.
    broken = panel.assign(promo=0.0, price=[0.0, 0.5, np.inf, 1.0, 0.0])
    with pytest.raises(InvalidDataError, match=r"`price`, row 2 of the covariates") as info:
        fitted.probability_alive(clvrs.DynamicCovariateData(log, broken, freq="D"))
    assert info.value.row == 2
    far = panel.assign(date=panel["date"].astype("datetime64[us]"))
    far.loc[0, "date"] = np.datetime64("9999-12-31", "us")
    with pytest.raises(InvalidDataError, match="row 0: is outside the years 1677-2262"):
        clvrs.DynamicCovariateData(log, far, freq="D")
    with pytest.raises(InvalidDataError, match="rename this covariate"):
        clvrs.DynamicCovariateData(log, panel.assign(start=1.0), freq="D")
    with pytest.raises(InvalidDataError, match="no row of the covariates belongs"):
        clvrs.DynamicCovariateData(log, panel.assign(customer_id=["a", "b", "c", "d", "e"]))
    # Without covariates: the Pareto/NBD, with no coefficient columns in the summary.
    plain = clvrs.ParetoNBDDynamicModel(on_failure="ignore").fit(data)
    assert plain.covariates_ is None and "p" not in plain.summary.columns
    with pytest.raises(InvalidParameterError, match="expected_residual_transactions"):
        clvrs.customer_lifetime_value(model, 10.0, data)
