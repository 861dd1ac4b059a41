"""BG/BB on the donations data and the subscription models (sBG, BdW) through the public API:
published figures, input forms, exactness for long histories, errors and persistence."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import special

import clvrs
from clvrs.exceptions import InvalidDataError, InvalidParameterError

REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241]
HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491]


@pytest.fixture(scope="module")
def donations():
    return clvrs.datasets.load_donations()


@pytest.fixture(scope="module")
def bgbb(donations):
    return clvrs.BetaGeoBetaBinomModel(columns={"weights": "weights"}).fit(donations)


def test_bgbb_reproduces_the_donations_fit(bgbb, donations):
    assert bgbb.params_.to_numpy() == pytest.approx([1.204, 0.750, 0.657, 2.783], rel=1e-3)
    assert bgbb.log_likelihood_ == pytest.approx(-33225.58, abs=0.01)
    assert bgbb.n_observations_ == 11104 and bgbb.converged_
    published = [0.4985, 0.9233, 1.2969, 1.6323, 1.9381]
    got = bgbb.expected_purchases_new_customer(np.arange(1, 6))
    np.testing.assert_allclose(got, published, atol=5e-5)
    ll = bgbb.log_likelihood_per_customer(donations)
    assert float((ll * donations["weights"]).sum()) == pytest.approx(bgbb.log_likelihood_)


def _bgbb_reference(params, x, t_x, n, m):
    """Closed forms of FHS (2010) eqs. 5, 11 and 13 (scipy; gamma != 1)."""
    a, b, g, d = params
    lb = special.betaln
    alive = lb(a + x, b + n - x) - lb(a, b) + lb(g, d + n) - lb(g, d)
    terms = [
        lb(a + x, b + t_x - x + i) - lb(a, b) + lb(g + 1, d + t_x + i) - lb(g, d)
        for i in range(int(n - t_x))
    ]
    ll = special.logsumexp([alive, *terms])
    p_alive = math.exp(alive - ll)
    expected = (
        math.exp(lb(a + x + 1, b + n - x) - lb(a, b) - ll)
        * d
        / (g - 1)
        * math.exp(special.gammaln(g + d) - special.gammaln(1 + d))
        * (
            math.exp(special.gammaln(1 + d + n) - special.gammaln(g + d + n))
            - math.exp(special.gammaln(1 + d + n + m) - special.gammaln(g + d + n + m))
        )
    )
    return ll, p_alive, expected


def test_bgbb_predictions_match_the_closed_forms(bgbb, donations):
    params = tuple(bgbb.params_)
    m = 5
    ll = bgbb.log_likelihood_per_customer(donations).to_numpy()
    alive = bgbb.probability_alive(donations).to_numpy()
    expected = bgbb.expected_purchases(donations, m=m).to_numpy()
    for i, row in enumerate(donations.itertuples()):
        ref = _bgbb_reference(params, row.frequency, row.recency, row.periods, m)
        assert ll[i] == pytest.approx(ref[0], rel=1e-12)
        assert alive[i] == pytest.approx(ref[1], rel=1e-12)
        assert expected[i] == pytest.approx(ref[2], rel=1e-10)
    # Count probabilities over n = 6 sum to one.
    probs = bgbb.purchase_count_probability(np.arange(7), 6)
    assert probs.sum() == pytest.approx(1.0, abs=1e-13)
    # Alive later is less likely; DERT falls as the discount rate rises.
    later = bgbb.probability_alive(donations, m=3)
    assert (later <= bgbb.probability_alive(donations)).all()
    low = bgbb.expected_residual_transactions(donations, discount_rate=0.05)
    high = bgbb.expected_residual_transactions(donations, discount_rate=0.2)
    assert (low > high).all() and (high > 0).all()


def test_bgbb_long_histories_are_exact(bgbb):
    # n = 300 opportunities, m = 200 ahead: lifetimes floors its terms here.
    history = {
        "frequency": np.array([150.0, 0.0, 290.0]),
        "recency": np.array([290.0, 0.0, 299.0]),
        "periods": np.array([300.0, 300.0, 300.0]),
    }
    params = tuple(bgbb.params_)
    alive = bgbb.probability_alive(**history)
    expected = bgbb.expected_purchases(**history, m=200)
    for i in range(3):
        ref = _bgbb_reference(params, history["frequency"][i], history["recency"][i], 300.0, 200.0)
        assert alive[i] == pytest.approx(ref[1], rel=1e-10)
        assert expected[i] == pytest.approx(ref[2], rel=1e-9)
    assert np.all((alive > 0) & (alive <= 1))


def test_bgbb_rejects_impossible_histories(donations):
    bad = donations.copy()
    bad.loc[3, "frequency"] = 5  # more transactions than opportunities up to recency 3
    with pytest.raises(InvalidDataError) as info:
        clvrs.BetaGeoBetaBinomModel().fit(bad)
    assert info.value.column == "frequency" and info.value.row == 3
    fractional = donations.copy()
    fractional["periods"] = 6.5
    with pytest.raises(InvalidDataError) as info:
        clvrs.BetaGeoBetaBinomModel().fit(fractional)
    assert info.value.column == "periods"
    model = clvrs.BetaGeoBetaBinomModel.from_params(alpha=1.2, beta=0.75, gamma=0.66, delta=2.8)
    with pytest.raises(InvalidParameterError):
        model.expected_purchases(donations, m=1.5)


@pytest.mark.parametrize(
    "survivors, params, ll",
    [(REGULAR, [0.704, 1.182], -1680.27), (HIGH_END, [0.668, 3.806], -1611.16)],
)
def test_sbg_reproduces_the_published_cohorts(survivors, params, ll):
    model = clvrs.ShiftedBetaGeoModel().fit(survivors=survivors)
    assert model.params_.to_numpy() == pytest.approx(params, rel=1e-3)
    assert model.log_likelihood_ == pytest.approx(ll, abs=0.01)
    a, b = model.params_
    t = np.arange(1, 13)
    np.testing.assert_allclose(model.retention_rate(t), (b + t - 1) / (a + b + t - 1), rtol=1e-12)
    np.testing.assert_allclose(
        model.survival(t), np.exp(special.betaln(a, b + t) - special.betaln(a, b)), rtol=1e-12
    )


def test_sbg_from_customer_records_equals_the_cohort_fit():
    counts = np.array(REGULAR, dtype=float)
    lost = counts[:-1] - counts[1:]
    records = pd.DataFrame(
        {
            "periods": [*range(1, len(counts)), len(counts) - 1],
            "churned": [True] * (len(counts) - 1) + [False],
            "n": [*lost, counts[-1]],
        }
    )
    by_records = clvrs.ShiftedBetaGeoModel(columns={"weights": "n"}).fit(records)
    by_cohort = clvrs.ShiftedBetaGeoModel().fit(survivors=REGULAR)
    np.testing.assert_allclose(by_records.params_, by_cohort.params_, rtol=1e-9)
    expanded = records.loc[records.index.repeat(records["n"].astype(int))].drop(columns="n")
    one_per_customer = clvrs.ShiftedBetaGeoModel().fit(expanded)
    np.testing.assert_allclose(one_per_customer.params_, by_cohort.params_, rtol=1e-9)


def test_subscription_predictions(tmp_path):
    model = clvrs.ShiftedBetaGeoModel().fit(survivors=REGULAR)
    a, b = model.params_
    # DERL by its definition (next payment undiscounted, the one just made excluded), and
    # value = DERL x margin.
    d, n = 0.1, 4
    direct = sum(
        math.exp(special.betaln(a, b + n + 1 + k) - special.betaln(a, b + n)) / (1 + d) ** k
        for k in range(5000)
    )
    assert model.expected_residual_lifetime(n, d) == pytest.approx(direct, rel=1e-10)
    assert model.subscription_value(n, 50.0, d) == pytest.approx(50.0 * direct, rel=1e-10)
    assert model.probability_active(n, 2) == pytest.approx(
        math.exp(special.betaln(a, b + n + 2) - special.betaln(a, b + n)), rel=1e-12
    )
    assert model.expected_renewals(n, 3) == pytest.approx(
        sum(model.probability_active(n, j) for j in (1, 2, 3)), rel=1e-12
    )
    values = model.subscription_value(np.array([0, 1, 2]), 10.0, 0.1)
    assert np.all(np.diff(values) > 0)  # survivors are the loyal ones: value grows with tenure
    path = tmp_path / "sbg.json"
    model.save(path)
    assert clvrs.load(path).params_.equals(model.params_)
    with pytest.raises(InvalidDataError):
        clvrs.ShiftedBetaGeoModel().fit(survivors=[1000, 700, 800])
    with pytest.raises(InvalidDataError):
        model.retention_rate(0)


def test_bdw_nests_sbg_and_fits_duration_dependence():
    bdw = clvrs.BetaDiscreteWeibullModel().fit(survivors=HIGH_END)
    sbg = clvrs.ShiftedBetaGeoModel().fit(survivors=HIGH_END)
    assert bdw.log_likelihood_ >= sbg.log_likelihood_ - 1e-6
    at_one = clvrs.BetaDiscreteWeibullModel.from_params(
        alpha=sbg.params_["alpha"], beta=sbg.params_["beta"], c=1.0
    )
    t = np.arange(0, 20)
    np.testing.assert_allclose(at_one.survival(t), sbg.survival(t), rtol=1e-12)
    a, b, c = bdw.params_
    np.testing.assert_allclose(
        bdw.survival(t),
        np.exp(special.betaln(a, b + t.astype(float) ** c) - special.betaln(a, b)),
        rtol=1e-11,
    )
