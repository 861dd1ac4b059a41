"""Regularity of purchase timing: `litt` in summaries, NBD, BG/CNBD-k and MBG/CNBD-k (fits
against the published grocery figures, k = 1 against BG/NBD and MBG/NBD, the choice of k, the
predictions against mpmath references) and the regularity estimators."""

from __future__ import annotations

import json
import math
import os
import pathlib
import pickle

import mpmath
import numpy as np
import pandas as pd
import pytest
from mpmath import mp

import clvrs
from clvrs.exceptions import InvalidDataError, InvalidParameterError

GROCERY = pathlib.Path(__file__).parent / "data" / "grocery_elog.csv"


@pytest.fixture(scope="module")
def grocery_log() -> pd.DataFrame:
    log = pd.read_csv(GROCERY, parse_dates=["date"])
    assert len(log) == 10_483
    return log


@pytest.fixture(scope="module")
def grocery_cal(grocery_log: pd.DataFrame) -> pd.DataFrame:
    """The 2006 calibration in weeks, as BTYDplus' elog2cbs(groceryElog, T.cal = "2006-12-31")."""
    with pytest.warns(UserWarning, match="left out"):
        summary = clvrs.summarize_transactions(
            grocery_log,
            "cust",
            "date",
            observation_period_end="2006-12-31",
            freq="D",
            freq_multiplier=7,
            after_end="exclude",
            regularity=True,
        )
    assert len(summary) == 1525 and summary["frequency"].sum() == 5569
    return summary


def _litt_by_hand(log: pd.DataFrame, end: str, weeks: float = 7.0) -> pd.Series:
    """Sum of the logs of the gaps between distinct purchase days (in weeks), per customer."""
    days = log[log["date"] <= end].drop_duplicates().sort_values(["cust", "date"])
    gaps = days.groupby("cust")["date"].diff().dt.days / weeks
    return np.log(gaps).groupby(days["cust"]).sum()


def test_litt_is_the_sum_of_log_inter_purchase_times(grocery_log, grocery_cal):
    want = _litt_by_hand(grocery_log, "2006-12-31")
    got = grocery_cal["litt"]
    np.testing.assert_allclose(got.to_numpy(), want.reindex(got.index).to_numpy(), rtol=1e-13)
    assert (got[grocery_cal["frequency"] == 0] == 0).all()
    # Without regularity the column is not there; the other columns do not change.
    with pytest.warns(UserWarning, match="left out"):
        plain = clvrs.summarize_transactions(
            grocery_log,
            "cust",
            "date",
            observation_period_end="2006-12-31",
            freq="D",
            freq_multiplier=7,
            after_end="exclude",
        )
    assert "litt" not in plain
    pd.testing.assert_frame_equal(plain, grocery_cal.drop(columns="litt"))
    # Same-day purchases are merged (a duplicated row changes nothing).
    doubled = pd.concat([grocery_log, grocery_log.iloc[:500]])
    with pytest.warns(UserWarning, match="left out"):
        again = clvrs.summarize_transactions(
            doubled,
            "cust",
            "date",
            observation_period_end="2006-12-31",
            freq="D",
            freq_multiplier=7,
            after_end="exclude",
            regularity=True,
        )
    pd.testing.assert_series_equal(again["litt"], grocery_cal["litt"])


def test_calibration_and_holdout_carry_litt(grocery_log, grocery_cal):
    split = clvrs.calibration_and_holdout(
        grocery_log,
        "cust",
        "date",
        calibration_period_end="2006-12-31",
        observation_period_end="2007-12-30",
        freq="D",
        freq_multiplier=7,
        regularity=True,
    )
    np.testing.assert_array_equal(split["litt_cal"].to_numpy(), grocery_cal["litt"].to_numpy())
    assert split["frequency_holdout"].sum() == 3389  # BTYDplus vignette: actual 3,389


def test_summaries_refuse_a_non_boolean_regularity(grocery_log):
    with pytest.raises(InvalidParameterError, match="regularity"):
        clvrs.summarize_transactions(grocery_log, "cust", "date", regularity="yes")


def _nbd_published_point_is_short_of_the_maximum(whole: pd.DataFrame, model) -> None:
    """Why our NBD log-likelihood is ~2e-8 above the published point's, independently of
    clvrs: in 40-digit mpmath the log-likelihood's slope in r at the published (0.350372,
    5.821382) is about -0.014 (not an optimum), at our estimates it is zero to the fit's
    tolerance, and our estimates' log-likelihood is the higher by 2.07e-8."""
    rows = whole[["frequency", "T"]].value_counts().reset_index(name="n")

    def loglik(r, alpha):
        r, alpha = mpmath.mpf(r), mpmath.mpf(alpha)
        return mpmath.fsum(
            n
            * (
                mpmath.loggamma(r + int(x))
                - mpmath.loggamma(r)
                + r * mpmath.log(alpha)
                - (r + int(x)) * mpmath.log(alpha + mpmath.mpf(t))
            )
            for x, t, n in rows.itertuples(index=False)
        )

    def slope_in_r(r, alpha):
        return mpmath.diff(lambda v: loglik(v, alpha), mpmath.mpf(r))

    with mp.workdps(40):
        published = (mpmath.mpf("0.350372"), mpmath.mpf("5.821382"))
        ours = (float(model.params_["r"]), float(model.params_["alpha"]))
        gain = loglik(*ours) - loglik(*published)
        assert 1.9e-8 < gain < 2.2e-8, gain
        assert float(gain) == pytest.approx(
            model.log_likelihood_
            - float(
                clvrs.NBDModel.from_params(r=0.350372, alpha=5.821382)
                .log_likelihood_per_customer(whole)
                .sum()
            ),
            abs=2e-9,
        )
        assert abs(slope_in_r(*published)) > 1e-2
        assert abs(slope_in_r(*ours)) < 1e-4
        assert float(loglik(*ours)) == pytest.approx(model.log_likelihood_, abs=1e-8)


def test_nbd_reproduces_the_published_two_year_fit(grocery_log):
    whole = clvrs.summarize_transactions(grocery_log, "cust", "date", freq="D", freq_multiplier=7)
    model = clvrs.NBDModel().fit(whole)
    assert model.converged_
    # BTYDplus: nbd.EstimateParameters(elog2cbs(groceryElog)) = (0.350372, 5.821382). Its
    # L-BFGS-B stopped a little short of the optimum: the log-likelihood there is 2.07e-8 below
    # the maximum found here (0.3503690, 5.821335), checked in mpmath by
    # _nbd_published_point_is_short_of_the_maximum, so the two agree to 5 significant digits.
    assert model.params_["r"] == pytest.approx(0.350372, rel=1e-5)
    assert model.params_["alpha"] == pytest.approx(5.821382, rel=1e-5)
    published = clvrs.NBDModel.from_params(r=0.350372, alpha=5.821382)
    at_published = float(published.log_likelihood_per_customer(whole).sum())
    assert 0 <= model.log_likelihood_ - at_published < 1e-7
    assert model.log_likelihood_ == pytest.approx(-27242.449307, abs=1e-6)
    _nbd_published_point_is_short_of_the_maximum(whole, model)
    # Closed forms of its predictions.
    r, alpha = model.params_
    row = whole.iloc[:5]
    np.testing.assert_allclose(
        model.expected_purchases(row, t=52).to_numpy(),
        52 * (r + row["frequency"]) / (alpha + row["T"]),
        rtol=1e-14,
    )
    assert (model.probability_alive(row) == 1).all()
    assert model.purchase_count_probability(0, 10.0) == pytest.approx(
        (alpha / (alpha + 10)) ** r, rel=1e-13
    )


def test_nbd_has_the_standard_api(tmp_path):
    """Conditional counts (negative binomial with the posterior Gamma(r+x, alpha+T)) and DERT
    against mpmath, CLV through customer_lifetime_value, JSON, simulation that recovers the
    parameters."""
    model = clvrs.NBDModel.from_params(r=0.9, alpha=4.0)
    arrays = {"frequency": np.array([0.0, 3.0, 12.0]), "recency": np.array([0.0, 10.0, 30.0])}
    arrays["T"] = np.array([20.0, 30.0, 31.0])
    t = 13.0
    with mp.workdps(30):
        for i in range(3):
            shape = mpmath.mpf(0.9) + arrays["frequency"][i]
            rate = mpmath.mpf(4.0) + arrays["T"][i]
            for n in (0, 1, 4):
                want = mpmath.exp(
                    mpmath.loggamma(shape + n)
                    - mpmath.loggamma(shape)
                    - mpmath.loggamma(n + 1)
                    + shape * mpmath.log(rate / (rate + t))
                    + n * mpmath.log(t / (rate + t))
                )
                got = model.conditional_purchase_count_probability(n=n, t=t, **arrays)[i]
                assert got == pytest.approx(float(want), rel=1e-12)
            # DERT: E[lambda] / delta (no dropout), delta the continuous rate per week.
            delta = 0.01
            dert = model.expected_residual_transactions(discount_rate=delta, **arrays)[i]
            assert dert == pytest.approx(float(shape / rate / delta), rel=1e-12)
    # CLV (discrete): expected purchases grow linearly, E[lambda] per week.
    value = clvrs.customer_lifetime_value(model, 10.0, time=6, time_unit=4.345, **arrays)
    rate = (0.9 + arrays["frequency"]) / (4.0 + arrays["T"])
    by_hand = 10.0 * rate * 4.345 * sum(1.01**-i for i in range(1, 7))
    np.testing.assert_allclose(np.asarray(value), by_hand, rtol=1e-12)
    # JSON and simulation.
    path = tmp_path / "nbd.json"
    model.save(path)
    assert clvrs.load(path).params_.tolist() == model.params_.tolist()
    data = model.simulate(np.repeat([30.0, 52.0], 20_000), seed=3)
    fitted = clvrs.NBDModel().fit(data)
    assert (np.abs(fitted.params_.to_numpy() - [0.9, 4.0]) < 4 * fitted.standard_errors_).all()


# Published (Reutterer, Platzer & Schröder 2021, results files; BTYDplus 1.1.4) on the grocery
# 2006 calibration: (r, alpha, a, b) to 2 decimals and the log-likelihood to 3.
PUBLISHED = {
    clvrs.BetaGeoCNBDModel: ((0.36, 1.13, 0.52, 2.79), -15054.173),
    clvrs.ModifiedBetaGeoCNBDModel: ((1.33, 2.81, 0.42, 0.79), -14978.211),
}


@pytest.mark.parametrize("cls", list(PUBLISHED))
def test_k2_reproduces_the_published_grocery_fits(cls, grocery_cal):
    params, log_likelihood = PUBLISHED[cls]
    model = cls(k=2).fit(grocery_cal)
    assert model.converged_ and model.k_ == 2
    assert round(model.log_likelihood_, 3) == log_likelihood
    assert tuple(model.params_.round(2)) == params
    assert model.standard_errors_ is not None and (model.standard_errors_ > 0).all()
    # The timing term is in the log-likelihood: the per-customer values lack it.
    x, litt = grocery_cal["frequency"], grocery_cal["litt"]
    timing = float((litt - x * math.log(1)).sum())
    per_customer = model.log_likelihood_per_customer(grocery_cal).sum()
    assert model.log_likelihood_ == pytest.approx(per_customer + timing, abs=1e-6)


@pytest.mark.parametrize("cls", list(PUBLISHED))
def test_fits_are_bit_identical_for_any_thread_count(cls, grocery_cal):
    # Many chunks of the parallel sums (4,096 rows each).
    rng = np.random.default_rng(5)
    gen = cls.from_params(r=1.33, alpha=2.81, a=0.42, b=0.79, k=3)
    data = gen.simulate(rng.uniform(20, 80, 60_000), seed=4)
    fits = [cls(k=3, n_jobs=n).fit(data) for n in (1, 2, 4)]
    for other in fits[1:]:
        assert other.log_likelihood_ == fits[0].log_likelihood_
        assert other.params_.tolist() == fits[0].params_.tolist()
        assert other.standard_errors_.tolist() == fits[0].standard_errors_.tolist()


@pytest.mark.parametrize("cls", list(PUBLISHED))
def test_k_is_chosen_by_likelihood_with_the_profile_reported(cls, grocery_cal):
    model = cls().fit(grocery_cal)
    profile = model.regularity_profile_
    assert model.k_ == 2 == int(profile["log_likelihood"].idxmax())
    assert list(profile.index[:3]) == [1, 2, 3]
    # The search stops after the log-likelihood fell twice in a row.
    ll = profile["log_likelihood"].to_numpy()
    assert ll[-1] < ll[-2] < ll[-3]
    assert round(model.log_likelihood_, 3) == PUBLISHED[cls][1]
    # k = 1 is BG/NBD (MBG/NBD): published -15836.566 (-15781.939).
    plain = {clvrs.BetaGeoCNBDModel: -15836.566, clvrs.ModifiedBetaGeoCNBDModel: -15781.939}
    assert round(profile.loc[1, "log_likelihood"], 3) == plain[cls]
    # A chosen k counts as a parameter in the information criteria.
    assert model.aic_ == pytest.approx(10 - 2 * model.log_likelihood_)


def test_cdnow_chooses_k_1(tmp_path):
    log = clvrs.datasets.load_cdnow_transactions()
    with pytest.warns(UserWarning, match="left out"):
        cal = clvrs.summarize_transactions(
            log,
            "customer_id",
            "date",
            observation_period_end="1997-09-30",
            freq="D",
            freq_multiplier=7,
            after_end="exclude",
            regularity=True,
        )
    for cls, want in [
        (clvrs.BetaGeoCNBDModel, -9582.429),
        (clvrs.ModifiedBetaGeoCNBDModel, -9582.136),
    ]:
        model = cls().fit(cal)
        assert model.k_ == 1
        assert model.log_likelihood_ == pytest.approx(want, abs=0.05)


@pytest.mark.parametrize(
    ("cls", "plain"),
    [
        (clvrs.BetaGeoCNBDModel, clvrs.BetaGeoModel),
        (clvrs.ModifiedBetaGeoCNBDModel, clvrs.ModifiedBetaGeoModel),
    ],
)
def test_k1_is_bgnbd_and_mbgnbd_exactly(cls, plain, cdnow):
    model = cls(k=1).fit(cdnow)  # no litt needed for k = 1
    reference = plain().fit(cdnow)
    assert model.log_likelihood_ == pytest.approx(reference.log_likelihood_, abs=1e-7)
    np.testing.assert_allclose(model.params_, reference.params_, rtol=1e-5)
    same = cls.from_params(**reference.params_, k=1)
    for method, kwargs in [
        ("expected_purchases", {"t": 39.0}),
        ("probability_alive", {}),
        ("log_likelihood_per_customer", {}),
    ]:
        np.testing.assert_allclose(
            getattr(same, method)(cdnow, **kwargs),
            getattr(reference, method)(cdnow, **kwargs),
            rtol=1e-10,
        )
    np.testing.assert_allclose(
        same.purchase_count_probability(np.arange(6), 39.0),
        reference.purchase_count_probability(np.arange(6), 39.0),
        rtol=1e-10,
    )
    assert same.expected_purchases_new_customer(78.0) == pytest.approx(
        reference.expected_purchases_new_customer(78.0), rel=1e-10
    )


def test_fit_needs_litt_unless_k_is_1(cdnow):
    with pytest.raises(InvalidDataError, match="regularity=True"):
        clvrs.BetaGeoCNBDModel().fit(cdnow)
    with pytest.raises(InvalidDataError, match="litt"):
        clvrs.ModifiedBetaGeoCNBDModel(k=3).fit(cdnow)
    bad = cdnow.assign(litt=0.0)
    bad.loc[bad["frequency"] == 0, "litt"] = 0.0
    row = int(np.flatnonzero(bad["frequency"] == 0)[0])
    bad.iloc[row, bad.columns.get_loc("litt")] = 0.5
    with pytest.raises(InvalidDataError, match="must be 0 when frequency is 0") as info:
        clvrs.BetaGeoCNBDModel(k=2).fit(bad)
    assert info.value.row == row and info.value.column == "litt"
    # A litt in days with recency in weeks breaks the bound x ln(t_x / x).
    repeat = int(np.flatnonzero(cdnow["frequency"] > 0)[0])
    x, t_x = cdnow["frequency"].iloc[repeat], cdnow["recency"].iloc[repeat]
    wrong = cdnow.assign(litt=0.0)
    wrong.iloc[repeat, wrong.columns.get_loc("litt")] = x * math.log(7 * t_x / x)
    with pytest.raises(InvalidDataError, match="another time unit"):
        clvrs.BetaGeoCNBDModel(k=2).fit(wrong)
    for k in [0, 1.5, "2", True]:
        with pytest.raises(InvalidParameterError, match="k"):
            clvrs.BetaGeoCNBDModel(k=k).fit(cdnow)
    with pytest.raises(InvalidParameterError, match="needs k"):
        clvrs.BetaGeoCNBDModel.from_params(r=1, alpha=1, a=1, b=1)


def test_persistence_and_clone_keep_k_and_the_profile(grocery_cal, tmp_path):
    model = clvrs.ModifiedBetaGeoCNBDModel(max_k=4).fit(grocery_cal)
    path = tmp_path / "m.json"
    model.save(path)
    loaded = clvrs.load(path)
    assert loaded.k_ == model.k_ == 2
    pd.testing.assert_frame_equal(loaded.regularity_profile_, model.regularity_profile_)
    assert loaded.aic_ == pytest.approx(model.aic_)
    np.testing.assert_allclose(
        loaded.expected_purchases(grocery_cal, t=52), model.expected_purchases(grocery_cal, t=52)
    )
    json.loads(model.to_json())
    again = pickle.loads(pickle.dumps(model))
    assert again.k_ == 2
    given = clvrs.BetaGeoCNBDModel.from_params(r=0.36, alpha=1.13, a=0.52, b=2.79, k=2)
    path2 = tmp_path / "g.json"
    given.save(path2)
    assert clvrs.load(path2).k_ == 2
    assert "k=2" in repr(given)


@pytest.mark.parametrize("cls", list(PUBLISHED))
def test_simulation_recovers_k_and_the_parameters(cls):
    for k, truth in [
        (2, (0.9, 1.5, 0.8, 2.5)),
        (3, (1.2, 1.0, 0.6, 3.0)),
        (5, (2.0, 3.0, 0.5, 2.0)),
    ]:
        gen = cls.from_params(r=truth[0], alpha=truth[1], a=truth[2], b=truth[3], k=k)
        ages = np.repeat([40.0, 52.0, 65.0, 78.0], 6000)
        data = gen.simulate(ages, seed=k)
        fitted = cls(max_k=8).fit(data)
        assert fitted.k_ == k, fitted.regularity_profile_
        se = fitted.standard_errors_
        assert (np.abs(fitted.params_.to_numpy() - np.array(truth)) < 4 * se.to_numpy()).all(), (
            k,
            fitted.params_.tolist(),
            se.tolist(),
        )


def test_holdout_on_grocery_2007(grocery_log):
    split = clvrs.calibration_and_holdout(
        grocery_log,
        "cust",
        "date",
        calibration_period_end="2006-12-31",
        observation_period_end="2007-12-30",
        freq="D",
        freq_multiplier=7,
        regularity=True,
    )
    columns = {"frequency": "frequency_cal", "recency": "recency_cal", "T": "T_cal"}
    regular = {**columns, "litt": "litt_cal"}
    models = {
        "NBD": clvrs.NBDModel(columns=columns),
        "BG/NBD": clvrs.BetaGeoModel(columns=columns),
        "MBG/NBD": clvrs.ModifiedBetaGeoModel(columns=columns),
        "BG/CNBD-k": clvrs.BetaGeoCNBDModel(columns=regular),
        "MBG/CNBD-k": clvrs.ModifiedBetaGeoCNBDModel(columns=regular),
    }
    for model in models.values():
        model.fit(split)
    table = clvrs.compare_models(models, split)
    # Regularity helps the individual forecasts (the papers' point): a lower MAE per customer
    # than the Poisson models, and a log-likelihood about 800 better.
    for name in ("BG/CNBD-k", "MBG/CNBD-k"):
        assert table.loc[name, "mae"] < table.loc[["NBD", "BG/NBD", "MBG/NBD"], "mae"].min()
    gain = table.loc["MBG/CNBD-k", "log_likelihood"] - table.loc["MBG/NBD", "log_likelihood"]
    assert 700 < gain < 900
    # Actual holdout repeat purchases: 3,389 (BTYDplus vignette).
    assert split["frequency_holdout"].sum() == 3389
    # k chosen by likelihood is an estimated parameter: counted as the AIC counts it.
    assert table["n_params"].to_dict() == {
        "NBD": 2,
        "BG/NBD": 4,
        "MBG/NBD": 4,
        "BG/CNBD-k": 5,
        "MBG/CNBD-k": 5,
    }


# -- predictions against mpmath ------------------------------------------------------------

DPS = 40


COUNTS = (0, 1, 2, 5)


def _reference(params, k, modified, x, t_x, T, t):
    """mpmath references by integration over the stage rate lambda: the history's likelihood
    (alive with j stages of the current gap done, or dropped out after t_x) times, for the
    alive part, the future quantity given lambda from Poisson stage counts, with the dropout
    probability integrated out by beta moments. Returns the expected purchases in (T, T + t],
    P(alive at T + t) and P(n purchases in (T, T + t]) for n in COUNTS."""
    # Rare counts at large k (probabilities near 1e-21) lose digits at 40: more there.
    with mp.workdps(DPS if k < 10 else DPS + 20):
        r, alpha, a, b = (mpmath.mpf(v) for v in params)
        x, t_x, T, t = (mpmath.mpf(v) for v in (x, t_x, T, t))
        f = int(x) + (1 if modified else 0)
        s = T - t_x
        base = mpmath.beta(a, b)
        moments: list[mpmath.mpf] = []  # E[(1-p)^m], grown on demand

        def moment(m):
            while len(moments) <= m:
                moments.append(mpmath.beta(a, b + len(moments)) / base)
            return moments[m]

        def drop_moment(m):  # E[p (1-p)^m]
            return moment(m) - moment(m + 1)

        def gamma_density(lam):
            return lam ** (r - 1) * mpmath.exp(-alpha * lam)

        def alive_part(lam):
            return lam ** (k * x) * mpmath.exp(-lam * T) * gamma_density(lam)

        def dropped(lam):
            if f == 0:
                return mpmath.mpf(0)
            return drop_moment(f - 1) * lam ** (k * x) * mpmath.exp(-lam * t_x) * gamma_density(lam)

        cache: dict = {}

        def future(lam):
            """Per quantity: sum over j of (lam s)^j / j! times its value given alive, lam, j."""
            if lam in cache:
                return cache[lam]
            if lam > cutoff:  # the likelihood is below e^-60 of its peak there
                return dict.fromkeys(["expected", "alive_after", *COUNTS], mpmath.mpf(0))
            mu = lam * t
            upto = int(mu + 15 * mpmath.sqrt(mu + 1) + 30 + 2 * k)
            pmf = [mpmath.exp(-mu)]
            for m in range(1, upto + 1):
                pmf.append(pmf[-1] * mu / m)
            upper = [mpmath.mpf(0)] * (upto + 2)
            for m in range(upto, -1, -1):
                upper[m] = upper[m + 1] + pmf[m]  # P(N >= m)

            def between(lo, hi):  # P(lo <= N < hi)
                return upper[min(lo, upto + 1)] - upper[min(hi, upto + 1)]

            out = {"expected": mpmath.mpf(0), "alive_after": mpmath.mpf(0)}
            out.update({n: mpmath.mpf(0) for n in COUNTS})
            for j in range(k):
                weight = (lam * s) ** j / mpmath.factorial(j)
                if weight == 0:
                    continue
                expected = mpmath.mpf(0)
                alive = mpmath.mpf(0)
                q = 0
                while q * k - j <= upto:
                    lo = max(q * k - j, 0)
                    if q >= 1:
                        expected += moment(f + q - 1) * upper[lo]
                    alive += moment(f + q) * between(lo, (q + 1) * k - j)
                    q += 1
                out["expected"] += weight * expected
                out["alive_after"] += weight * alive
                for n in COUNTS:
                    lo = max(n * k - j, 0)
                    value = moment(f + n) * between(lo, (n + 1) * k - j)
                    if n >= 1:
                        value += drop_moment(f + n - 1) * upper[min(lo, upto + 1)]
                    out[n] += weight * value
            cache[lam] = out
            return out

        def denominator(lam):
            stages = sum((lam * s) ** j / mpmath.factorial(j) for j in range(k))
            return moment(f) * alive_part(lam) * stages + dropped(lam)

        shape = r + k * x
        points = [mpmath.mpf(0)]
        cutoff = mpmath.mpf(0)
        for rate in (alpha + T, alpha + t_x):
            mode = max(shape - 1, mpmath.mpf("1e-3")) / rate
            sd = mpmath.sqrt(shape) / rate
            points += [max(mode + c * sd, mode / 50) for c in (-10, -3, 0, 3, 10)]
            cutoff = max(cutoff, mode + 60 * sd + 60 / rate)
        if t > 0:
            # Where a rare count's integrand peaks: lambda t about the stages it needs.
            busy = (max(COUNTS) + 1) * k / t
            points += [busy / 2, busy, 2 * busy]
            cutoff = max(cutoff, 10 * busy)
        points = [*sorted(set(points)), mpmath.inf]
        den = mpmath.quad(denominator, points)
        result = {}
        for key in ["expected", "alive_after", *COUNTS]:

            def numerator(lam, key=key):
                value = alive_part(lam) * future(lam)[key]
                if key == 0:
                    value += dropped(lam)
                return value

            result[key] = mpmath.quad(numerator, points) / den
        return result


CASES = [
    # (params, k, modified, x, t_x, T, t)
    ((0.36, 1.13, 0.52, 2.79), 2, False, 3, 10.0, 52.0, 52.0),
    ((1.33, 2.81, 0.42, 0.79), 2, True, 0, 0.0, 40.0, 26.0),
    ((1.33, 2.81, 0.42, 0.79), 2, True, 12, 48.0, 50.0, 52.0),
    ((0.9, 1.5, 0.8, 2.5), 5, False, 7, 30.0, 45.0, 20.0),
    ((0.9, 1.5, 0.8, 2.5), 5, True, 1, 3.0, 40.0, 60.0),
    ((1.5, 9.0, 1.1, 4.0), 12, True, 5, 38.0, 40.0, 6.0),  # larger k
    ((0.5, 0.8, 0.7, 9.0), 2, False, 80, 49.0, 50.0, 3.0),  # long history
]

#: Larger k and longer histories: minutes each in mpmath (945 s for the file with them), so
#: run when CLVRS_MPMATH_FULL=1 is set.
HEAVY_CASES = [
    ((2.0, 30.0, 1.3, 6.0), 20, True, 30, 95.0, 104.0, 52.0),
    ((0.5, 0.8, 0.7, 9.0), 3, False, 200, 99.0, 100.0, 10.0),
    ((1.1, 4.0, 0.3, 0.6), 50, True, 4, 40.0, 41.0, 30.0),
]
_FULL = os.environ.get("CLVRS_MPMATH_FULL") == "1"


def _model(params, k, modified):
    cls = clvrs.ModifiedBetaGeoCNBDModel if modified else clvrs.BetaGeoCNBDModel
    r, alpha, a, b = params
    return cls.from_params(r=r, alpha=alpha, a=a, b=b, k=k)


@pytest.mark.parametrize(
    "case",
    CASES
    + [
        pytest.param(c, marks=pytest.mark.skipif(not _FULL, reason="set CLVRS_MPMATH_FULL=1"))
        for c in HEAVY_CASES
    ],
)
def test_predictions_match_mpmath(case):
    params, k, modified, x, t_x, T, t = case
    model = _model(params, k, modified)
    arrays = {"frequency": np.array([x]), "recency": np.array([t_x]), "T": np.array([T])}
    want = _reference(params, k, modified, x, t_x, T, t)

    def check(got, key):
        assert float(got) == pytest.approx(float(want[key]), rel=1e-10, abs=1e-300), key

    check(model.expected_purchases(t=t, **arrays)[0], "expected")
    check(model.probability_alive(t=t, **arrays)[0], "alive_after")
    for n in COUNTS:
        check(model.conditional_purchase_count_probability(n=n, t=t, **arrays)[0], n)
    # P(alive) at T is P(alive at T + 0).
    now = _reference(params, k, modified, x, t_x, T, 0.0)["alive_after"]
    assert float(model.probability_alive(**arrays)[0]) == pytest.approx(float(now), rel=1e-10)


def test_new_customer_predictions_match_mpmath():
    cases = CASES[:6] if _FULL else [CASES[0], CASES[4]]
    for params, k, modified, *_ in cases:
        model = _model(params, k, modified)
        for t in (1.0, 26.0, 104.0) if _FULL else (1.0, 52.0):
            want = _reference(params, k, modified, 0, 0.0, 0.0, t)
            got = model.expected_purchases_new_customer(t)
            assert got == pytest.approx(float(want["expected"]), rel=1e-10)
            for n in (0, 5):
                got = model.purchase_count_probability(n, t)
                assert got == pytest.approx(float(want[n]), rel=1e-10)


def _reference_log_likelihood(params, k, modified, x, t_x, T, dps=DPS):
    """One customer's log-likelihood without the timing term, by quadrature over lambda in
    mpmath: the x Erlang-k gaps up to t_x (lambda^(kx) e^(-lambda t_x), their shape factors being
    the timing term), then either the dropout coin after t_x (E[p (1-p)^(f-1)]) or no dropout
    (E[(1-p)^f]) and fewer than k stages in (t_x, T] (e^(-lambda s) sum_{j<k} (lambda s)^j / j!),
    integrated against lambda ~ Gamma(r, alpha)."""
    with mp.workdps(dps):
        r, alpha, a, b = (mpmath.mpf(v) for v in params)
        x, t_x, T = (mpmath.mpf(v) for v in (x, t_x, T))
        f = int(x) + (1 if modified else 0)
        s = T - t_x

        def moment(m):  # E[(1-p)^m]
            return mpmath.beta(a, b + m) / mpmath.beta(a, b)

        def integrand(lam):
            gaps = lam ** (k * x) * mpmath.exp(-lam * t_x)
            stages = mpmath.fsum((lam * s) ** j / mpmath.factorial(j) for j in range(k))
            value = moment(f) * mpmath.exp(-lam * s) * stages
            if f > 0:
                value += moment(f - 1) - moment(f)
            return gaps * value * lam ** (r - 1) * mpmath.exp(-alpha * lam)

        shape = r + k * x
        points = [mpmath.mpf(0)]
        for rate in (alpha + T, alpha + t_x):
            mode = max(shape - 1, mpmath.mpf("1e-3")) / rate
            sd = mpmath.sqrt(shape) / rate
            points += [max(mode + c * sd, mode / 50) for c in (-10, -3, 0, 3, 10, 40)]
        points = [*sorted(set(points)), mpmath.inf]
        total = mpmath.quad(integrand, points)
        return mpmath.log(total) + r * mpmath.log(alpha) - mpmath.loggamma(r)


@pytest.mark.parametrize("case", CASES + HEAVY_CASES)
def test_log_likelihood_matches_mpmath(case):
    """Per customer, and in the fit's kernel (the value at given parameters of a fit that
    starts and stops there has the same sum)."""
    params, k, modified, x, t_x, T, _ = case
    model = _model(params, k, modified)
    arrays = {"frequency": np.array([x]), "recency": np.array([t_x]), "T": np.array([T])}
    # The heavy cases' quadratures take 12-18 s each at 40 digits; 30 give the same double
    # for them (25 did too), at half the time. The light cases keep 40 (at 25, k = 12 moved
    # by 7.5e-11 relative: cancellation there).
    dps = 30 if case in HEAVY_CASES else DPS
    want = float(_reference_log_likelihood(params, k, modified, x, t_x, T, dps))
    got = float(model.log_likelihood_per_customer(**arrays)[0])
    assert got == pytest.approx(want, rel=1e-10), (got, want)


def test_customer_lifetime_value_takes_the_regularity_models(grocery_cal):
    model = clvrs.ModifiedBetaGeoCNBDModel.from_params(r=1.33, alpha=2.81, a=0.42, b=0.79, k=2)
    rows = grocery_cal.iloc[:40]
    # Discrete (lifetimes' convention): 12 monthly steps of 4.345 weeks at 1% a month, 20 per
    # purchase.
    value = clvrs.customer_lifetime_value(
        model, 20.0, rows, time=12, discount_rate=0.01, time_unit=4.345
    )
    months = [model.expected_purchases(rows, t=i * 4.345).to_numpy() for i in range(13)]
    by_hand = 20.0 * sum((months[i] - months[i - 1]) / 1.01**i for i in range(1, 13))
    np.testing.assert_allclose(np.asarray(value), by_hand, rtol=1e-12)
    # Continuous discounting over an infinite horizon: worth more than the first 12 months.
    forever = clvrs.customer_lifetime_value(
        model, 20.0, rows, time=None, method="continuous", discount_rate=0.01, time_unit=4.345
    )
    assert np.isfinite(forever).all() and (np.asarray(forever) > np.asarray(value)).all()


# -- regularity estimators -------------------------------------------------------------------


def _erlang_log(k: int, n_customers: int, gaps: int, seed: int) -> pd.DataFrame:
    """A log whose customers buy at Erlang-k gaps (a different rate each), in whole hours."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(3.0, 1.0, n_customers) / 24.0 / 7.0  # mean gap about k weeks
    times = np.cumsum(rng.gamma(k, 1.0, (n_customers, gaps)) / rates[:, None], axis=1)
    start = pd.Timestamp("2020-01-01")
    hours = np.concatenate([np.zeros((n_customers, 1)), np.round(times)], axis=1)
    return pd.DataFrame(
        {
            "cust": np.repeat(np.arange(n_customers), gaps + 1),
            "date": start + pd.to_timedelta(hours.ravel(), unit="h"),
        }
    )


@pytest.mark.parametrize("k", [1, 2, 4])
def test_estimators_recover_a_known_shape(k):
    log = _erlang_log(k, 3000, 30, seed=k)
    wheat = clvrs.estimate_regularity(log, "cust", "date", freq="H")
    mle = clvrs.estimate_regularity(log, "cust", "date", method="mle", freq="H")
    assert wheat.n_customers == mle.n_customers == 3000
    # Wheat: k from the variance of Beta(k, k) over 3000 customers' last two gaps.
    assert wheat.k == pytest.approx(k, rel=0.15)
    # The per-customer MLE from 30 gaps is biased up by about 10%; the median is near k.
    assert mle.k == pytest.approx(k, rel=0.2)
    assert float(wheat) == wheat.k
    assert set(wheat.per_customer.between(0, 1)) == {True}


def test_estimators_on_grocery(grocery_log):
    wheat = clvrs.estimate_regularity(grocery_log, "cust", "date")
    # BTYDplus vignette: "a regularity estimate of close to 2".
    assert 1.5 < wheat.k < 2.5
    mle = clvrs.estimate_regularity(grocery_log, "cust", "date", method="mle")
    assert mle.k > wheat.k  # the frequent buyers are more regular (the vignette's remark)
    # Each customer's shape solves ln k - psi(k) = ln(mean gap) - mean(ln gap) (days).
    days = grocery_log.drop_duplicates().sort_values(["cust", "date"])
    gaps = days.groupby("cust")["date"].diff().dt.days.dropna()
    by_customer = gaps.groupby(days.loc[gaps.index, "cust"])
    s = np.log(by_customer.mean()) - by_customer.apply(lambda g: np.log(g).mean())
    assert mle.n_customers == int((by_customer.size() >= 10).sum())
    with mp.workdps(30):
        for customer, value in mle.per_customer.iloc[:20].items():
            got = mpmath.log(value) - mpmath.digamma(value)
            assert float(got) == pytest.approx(s[customer], rel=1e-10)
    with pytest.raises(InvalidParameterError, match="method"):
        clvrs.estimate_regularity(grocery_log, "cust", "date", method="cv")
    with pytest.raises(InvalidParameterError, match="min_intervals"):
        clvrs.estimate_regularity(grocery_log, "cust", "date", min_intervals=10_000)


def test_the_model_plots_take_the_regularity_models_and_nbd(grocery_log, grocery_cal):
    import matplotlib

    matplotlib.use("Agg")
    from clvrs import plotting

    regular = clvrs.ModifiedBetaGeoCNBDModel.from_params(r=1.33, alpha=2.81, a=0.42, b=0.79, k=2)
    for model in (regular, clvrs.NBDModel.from_params(r=0.35, alpha=5.8)):
        ax = plotting.plot_period_transactions(model, grocery_cal)
        assert ax.patches
        assert plotting.plot_probability_alive_matrix(model, 52).images
        assert plotting.plot_frequency_recency_matrix(model, 52).images
        assert plotting.plot_transaction_rate_heterogeneity(model).lines
    assert plotting.plot_dropout_rate_heterogeneity(regular).lines
    ax = plotting.plot_history_alive(
        regular, 104, grocery_log, 3, "cust", "date", freq="D", freq_multiplier=7
    )
    alive = ax.lines[0].get_ydata()
    # P(alive) falls in each silence and jumps back at each purchase: not monotone.
    assert np.all((alive >= 0) & (alive <= 1)) and np.any(np.diff(alive) > 0)


def test_plots_of_timing_patterns_and_regularity(grocery_log):
    import matplotlib

    matplotlib.use("Agg")
    from clvrs import plotting

    ax = plotting.plot_timing_patterns(
        grocery_log, "cust", "date", n=25, seed=3, calibration_period_end="2006-12-31"
    )
    assert len(ax.collections) >= 25 and ax.get_title()
    ax = plotting.plot_regularity(clvrs.estimate_regularity(grocery_log, "cust", "date"))
    assert "wheat" in ax.get_title()
    ax = plotting.plot_regularity(
        clvrs.estimate_regularity(grocery_log, "cust", "date", method="mle")
    )
    assert "mle" in ax.get_title()
    with pytest.raises(InvalidParameterError, match="estimate"):
        plotting.plot_regularity(2.0)
    with pytest.raises(InvalidParameterError, match="n"):
        plotting.plot_timing_patterns(grocery_log, "cust", "date", n=0)


def test_segments_fit_the_regularity_models_as_separate_fits(grocery_cal, tmp_path):
    grouped = grocery_cal.assign(g=np.where(np.arange(len(grocery_cal)) % 3 == 0, "a", "b"))
    for template in (clvrs.ModifiedBetaGeoCNBDModel(max_k=4), clvrs.BetaGeoCNBDModel(k=2)):
        fits = clvrs.fit_segments(template, grouped, "g")
        assert set(fits.models_) == {"a", "b"} and not fits.failures_
        for key, model in fits.models_.items():
            part = grouped[grouped["g"] == key].drop(columns="g")
            alone = type(template)(**template.get_params()).fit(part)
            assert model.k_ == alone.k_
            assert model.log_likelihood_ == alone.log_likelihood_
            np.testing.assert_array_equal(model.params_.to_numpy(), alone.params_.to_numpy())
            assert model.time_unit_ == alone.time_unit_
            # A chosen k is each segment's own, with a profile of its own.
            pd.testing.assert_frame_equal(model.regularity_profile_, alone.regularity_profile_)
        routed = fits.expected_purchases(grouped, t=52)
        a_rows = grouped["g"] == "a"
        np.testing.assert_array_equal(
            routed[a_rows].to_numpy(),
            fits.models_["a"].expected_purchases(grouped[a_rows], t=52).to_numpy(),
        )
        path = tmp_path / "segments.json"
        fits.save(path)
        back = clvrs.load(path)
        assert back.models_["b"].k_ == fits.models_["b"].k_
        np.testing.assert_array_equal(
            back.probability_alive(grouped).to_numpy(), fits.probability_alive(grouped).to_numpy()
        )
    # Too small, and no repeat buyer: reported per segment, the others fitted.
    tiny = grouped.assign(g=np.where(np.arange(len(grouped)) < 10, "tiny", "rest"))
    fits = clvrs.fit_segments(clvrs.BetaGeoCNBDModel(k=2), tiny, "g")
    assert "fewer than the 50" in fits.failures_["tiny"] and set(fits.models_) == {"rest"}
    none_repeat = grouped.assign(g=np.where(grouped["frequency"] == 0, "none", "some"))
    fits = clvrs.fit_segments(clvrs.BetaGeoCNBDModel(k=2), none_repeat, "g")
    assert "is 0 for every customer" in fits.failures_["none"]
    # Data errors name the whole data's row (and its index label), before any fit.
    bad = grouped.copy()
    bad.iloc[700, bad.columns.get_loc("litt")] = 1e3
    with pytest.raises(InvalidDataError, match="row 700") as info:
        clvrs.fit_segments(clvrs.BetaGeoCNBDModel(k=2), bad, "g")
    assert info.value.column == "litt" and info.value.row == 700
    assert info.value.label == bad.index[700]
    with pytest.raises(InvalidDataError, match="litt"):
        clvrs.fit_segments(clvrs.BetaGeoCNBDModel(k=2), grouped.drop(columns="litt"), "g")
    # k = 1 needs no litt; NBD fits per segment like the other models.
    fits = clvrs.fit_segments(clvrs.BetaGeoCNBDModel(k=1), grouped.drop(columns="litt"), "g")
    assert len(fits.models_) == 2
    assert len(clvrs.fit_segments(clvrs.NBDModel(), grouped, "g").models_) == 2


def test_simulated_logs_of_a_regularity_model_summarise_back_and_are_regular():
    model = clvrs.ModifiedBetaGeoCNBDModel.from_params(r=2.0, alpha=6.0, a=0.4, b=3.0, k=4)
    log = clvrs.simulate_transactions(model, np.full(3000, 300.0), seed=2)
    # Days as the unit: the Erlang-4 gaps show in the estimates (exponential gaps give 1).
    wheat = clvrs.estimate_regularity(log, "customer_id", "date")
    assert wheat.k == pytest.approx(4, rel=0.2)
    summary = clvrs.summarize_transactions(log, "customer_id", "date", regularity=True)
    histories = model.simulate(np.full(3000, 300.0), seed=2)
    assert summary["frequency"].sum() == histories["frequency"].sum()
