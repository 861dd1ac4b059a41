"""Property-based tests (hypothesis) across the purchase models: finite likelihoods and in-range
predictions for random valid inputs and parameters over wide ranges, monotone expectations, and
invariances (row order, compression, thread count, time unit)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clvrs

MODELS = {
    clvrs.BetaGeoModel: ("r", "alpha", "a", "b"),
    clvrs.ModifiedBetaGeoModel: ("r", "alpha", "a", "b"),
    clvrs.ParetoNBDModel: ("r", "alpha", "s", "beta"),
}

positive = st.floats(min_value=1e-2, max_value=1e2)


@st.composite
def customers(draw: st.DrawFn) -> dict[str, np.ndarray]:
    n = draw(st.integers(min_value=1, max_value=6))
    x, t_x, T = [], [], []
    for _ in range(n):
        age = draw(st.floats(min_value=0.0, max_value=2000.0))
        frequency = draw(st.integers(min_value=0, max_value=300)) if age > 0 else 0
        last = draw(st.floats(min_value=0.0, max_value=1.0)) * age if frequency else 0.0
        x.append(float(frequency))
        t_x.append(last)
        T.append(age)
    return {"frequency": np.array(x), "recency": np.array(t_x), "T": np.array(T)}


@pytest.mark.parametrize("cls", list(MODELS), ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    params=st.tuples(positive, positive, positive, positive),
    data=customers(),
    t=st.floats(min_value=0.0, max_value=500.0),
    dt=st.floats(min_value=0.0, max_value=500.0),
)
def test_finite_and_in_range(cls, params, data, t, dt):
    model = cls.from_params(**dict(zip(MODELS[cls], params)))
    ll = model.log_likelihood_per_customer(**data)
    assert np.all(np.isfinite(ll))
    alive = model.probability_alive(**data)
    assert np.all((alive >= 0) & (alive <= 1))
    e1 = model.expected_purchases(**data, t=t)
    e2 = model.expected_purchases(**data, t=t + dt)
    assert np.all(np.isfinite(e1)) and np.all(e1 >= 0)
    assert np.all(e2 >= e1 * (1 - 1e-12))
    new = model.expected_purchases_new_customer(np.array([t, t + dt]))
    assert new[1] >= new[0] * (1 - 1e-12) and new[0] >= 0


@pytest.mark.parametrize("cls", list(MODELS), ids=lambda c: c.__name__)
def test_invariances(cls, cdnow):
    base = cls(n_jobs=1).fit(cdnow)
    shuffled = cdnow.sample(frac=1.0, random_state=3)
    pd.testing.assert_series_equal(
        cls(n_jobs=2).fit(shuffled).params_, base.params_, check_exact=True
    )
    counts = cdnow.groupby(["frequency", "recency", "T"]).size().rename("w").reset_index()
    compressed = cls(columns={"weights": "w"}).fit(counts)
    pd.testing.assert_series_equal(compressed.params_, base.params_, check_exact=True)
    # Days instead of weeks: rate scales times 7, the log-likelihood shifts by the Jacobian of
    # the x purchase-time densities, ln 7 per repeat purchase.
    days = cdnow.assign(recency=cdnow["recency"] * 7, T=cdnow["T"] * 7)
    in_days = cls(n_jobs=1).fit(days)
    scale_params = {"alpha", "beta"}
    for name, value in base.params_.items():
        expected = value * 7 if name in scale_params else value
        assert in_days.params_[name] == pytest.approx(expected, rel=2e-4), name
    shift = math.log(7) * cdnow["frequency"].sum()
    assert in_days.log_likelihood_ == pytest.approx(base.log_likelihood_ - shift, abs=1e-4)


def test_degenerate_data_is_refused_clearly():
    zeros = {"frequency": np.zeros(50), "recency": np.zeros(50), "T": np.full(50, 30.0)}
    for cls in MODELS:
        with pytest.raises(clvrs.InvalidDataError, match="0 for every customer"):
            cls().fit(**zeros)
    # A single customer, identical rows, T = 0 rows, huge T and frequencies give finite output.
    model = clvrs.BetaGeoModel.from_params(r=0.24, alpha=4.4, a=0.79, b=2.4)
    extreme = {
        "frequency": np.array([0.0, 5000.0, 3.0, 0.0]),
        "recency": np.array([0.0, 36000.0, 1.0, 0.0]),
        "T": np.array([0.0, 36500.0, 36500.0 * 100, 0.0]),
    }
    for method in ("probability_alive", "log_likelihood_per_customer"):
        assert np.all(np.isfinite(getattr(model, method)(**extreme)))
    assert np.all(np.isfinite(model.expected_purchases(**extreme, t=52)))
