"""The continuous-time family beyond BG/NBD: ModifiedBetaGeoModel, ParetoNBDModel and
GammaGompertzNBDModel through the public API (input and output forms, persistence, errors,
determinism, the extra Pareto/NBD and GGompertz/NBD predictions). Accuracy against mpmath is in
test_continuous_reference.py."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs.exceptions import ConvergenceWarning, InvalidDataError, InvalidParameterError

RFM = ["frequency", "recency", "T"]

#: Published CDNOW estimates (Pareto/NBD: Fader & Hardie; MBG/NBD: Batislam et al. 2007).
PARAMS = {
    clvrs.ParetoNBDModel: {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669},
    clvrs.ModifiedBetaGeoModel: {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614},
    clvrs.GammaGompertzNBDModel: {"r": 0.553, "alpha": 10.578, "b": 0.05, "s": 0.606, "beta": 2.0},
}
MODELS = list(PARAMS)


@pytest.fixture(scope="module")
def fitted(cdnow):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return {cls: cls().fit(cdnow) for cls in MODELS}


def _arrays(data: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: data[c].to_numpy(dtype=float) for c in RFM}


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_fit_is_deterministic_and_thread_count_independent(cls, cdnow, fitted):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        serial = cls(n_jobs=1).fit(cdnow)
    pd.testing.assert_series_equal(serial.params_, fitted[cls].params_, check_exact=True)
    assert serial.log_likelihood_ == fitted[cls].log_likelihood_
    assert fitted[cls].converged_
    ll = fitted[cls].log_likelihood_per_customer(cdnow).sum()
    assert ll == pytest.approx(fitted[cls].log_likelihood_, rel=1e-12)


def test_published_log_likelihoods(fitted):
    assert fitted[clvrs.ParetoNBDModel].log_likelihood_ == pytest.approx(-9594.98, abs=0.01)
    assert fitted[clvrs.ModifiedBetaGeoModel].log_likelihood_ == pytest.approx(-9582.13, abs=0.01)
    assert fitted[clvrs.GammaGompertzNBDModel].log_likelihood_ == pytest.approx(-9594.98, abs=0.01)
    pnbd = fitted[clvrs.ParetoNBDModel]
    assert "best of 4 starting points" in pnbd.fit_info_["termination"]
    assert pnbd.fit_info_["n_starts"] == 4


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "method, kwargs",
    [
        ("expected_purchases", {"t": 52.0}),
        ("probability_alive", {}),
        ("log_likelihood_per_customer", {}),
    ],
)
def test_prediction_output_follows_input_kind(cls, method, kwargs, cdnow):
    model = cls.from_params(**PARAMS[cls])
    data = cdnow.copy()
    data.index = pd.Index([f"c{i}" for i in data.index], name="customer")
    data = data.iloc[::-1]
    predict = getattr(model, method)
    from_pandas = predict(data, **kwargs)
    assert isinstance(from_pandas, pd.Series) and from_pandas.index.equals(data.index)
    from_numpy = predict(**_arrays(data), **kwargs)
    assert isinstance(from_numpy, np.ndarray)
    np.testing.assert_array_equal(from_numpy, from_pandas.to_numpy())
    pl = pytest.importorskip("polars")
    from_polars = predict(pl.from_pandas(data.reset_index()), **kwargs)
    assert isinstance(from_polars, pl.Series)
    np.testing.assert_array_equal(from_polars.to_numpy(), from_pandas.to_numpy())
    assert np.all(np.isfinite(from_numpy))


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_predictions_are_in_range_and_monotone(cls, cdnow):
    model = cls.from_params(**PARAMS[cls])
    alive = model.probability_alive(cdnow)
    assert ((alive >= 0) & (alive <= 1)).all()
    previous = np.zeros(len(cdnow))
    for t in [0.0, 1.0, 10.0, 52.0, 520.0]:
        e = model.expected_purchases(cdnow, t=t).to_numpy()
        assert np.all(e >= previous)
        previous = e
    new = model.expected_purchases_new_customer(np.array([0.0, 1.0, 39.0, 78.0]))
    assert new[0] == 0.0 and np.all(np.diff(new) > 0)
    probs = model.purchase_count_probability(np.arange(200), 39.0)
    assert probs.sum() == pytest.approx(1.0, abs=1e-9)
    assert float((np.arange(200) * probs).sum()) == pytest.approx(
        model.expected_purchases_new_customer(39.0), rel=1e-8
    )


@pytest.mark.parametrize("cls", [clvrs.ParetoNBDModel, clvrs.GammaGompertzNBDModel])
def test_lifetime_model_predictions(cls, cdnow):
    model = cls.from_params(**PARAMS[cls])
    now = model.probability_alive(cdnow)
    pd.testing.assert_series_equal(model.probability_alive(cdnow, t=0.0), now)
    later = model.probability_alive(cdnow, t=26.0)
    assert (later <= now).all() and (later >= 0).all()
    # Per-customer horizons.
    t = np.linspace(0.0, 52.0, len(cdnow))
    per_row = model.probability_alive(cdnow, t=t)
    assert per_row.iloc[0] == now.iloc[0]
    # Conditional purchase counts form a distribution whose mean is the expectation.
    head = cdnow.head(20)
    total = sum(model.conditional_purchase_count_probability(head, n=n, t=39.0) for n in range(150))
    np.testing.assert_allclose(total, 1.0, atol=1e-9)
    mean = sum(
        n * model.conditional_purchase_count_probability(head, n=n, t=39.0) for n in range(150)
    )
    np.testing.assert_allclose(mean, model.expected_purchases(head, t=39.0), rtol=1e-8)
    # DERT grows as the discount rate falls.
    slow = model.expected_residual_transactions(head, discount_rate=0.001)
    fast = model.expected_residual_transactions(head, discount_rate=0.01)
    assert (slow > fast).all() and (fast > 0).all()


def test_dert_validates_the_rate(cdnow):
    model = clvrs.ParetoNBDModel.from_params(**PARAMS[clvrs.ParetoNBDModel])
    with pytest.raises(InvalidParameterError):
        model.expected_residual_transactions(cdnow)
    with pytest.raises(InvalidDataError) as info:
        model.expected_residual_transactions(cdnow, discount_rate=0.0)
    assert info.value.column == "discount_rate"
    with pytest.raises(InvalidDataError) as info:
        model.conditional_purchase_count_probability(cdnow, n=1.5, t=1.0)
    assert info.value.column == "n"


def test_bg_models_do_not_offer_lifetime_predictions():
    for cls in [clvrs.BetaGeoModel, clvrs.ModifiedBetaGeoModel]:
        assert not hasattr(cls, "expected_residual_transactions")
        assert not hasattr(cls, "conditional_purchase_count_probability")


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_invalid_data_names_column_and_row(cls, cdnow):
    bad = cdnow.copy()
    bad.loc[bad.index[5], "recency"] = bad["T"].iloc[5] + 1.0
    with pytest.raises(InvalidDataError) as info:
        cls().fit(bad)
    assert info.value.column == "recency" and info.value.row == 5


@pytest.mark.parametrize("cls", MODELS, ids=lambda c: c.__name__)
def test_persistence_round_trips(cls, cdnow, fitted, tmp_path):
    model = fitted[cls]
    path = tmp_path / "model.json"
    model.save(path)
    loaded = clvrs.load(path)
    assert type(loaded) is cls
    pd.testing.assert_series_equal(loaded.params_, model.params_, check_exact=True)
    pd.testing.assert_series_equal(
        loaded.expected_purchases(cdnow, t=10.0), model.expected_purchases(cdnow, t=10.0)
    )
    unpickled = pickle.loads(pickle.dumps(model))
    pd.testing.assert_series_equal(unpickled.params_, model.params_, check_exact=True)


def test_from_params_names_the_model_parameters():
    with pytest.raises(InvalidParameterError) as info:
        clvrs.ParetoNBDModel.from_params(r=1.0, alpha=1.0, s=1.0)
    assert info.value.parameter == "beta"
    with pytest.raises(InvalidParameterError):
        clvrs.GammaGompertzNBDModel.from_params(r=1.0, alpha=1.0, b=-1.0, s=1.0, beta=1.0)


def test_pareto_s_equal_to_one_is_continuous(cdnow):
    base = dict(PARAMS[clvrs.ParetoNBDModel])
    values = []
    for s in [1.0 - 1e-9, 1.0, 1.0 + 1e-9]:
        model = clvrs.ParetoNBDModel.from_params(**{**base, "s": s})
        values.append(model.expected_purchases(cdnow, t=52.0).to_numpy())
        assert np.isfinite(model.expected_purchases_new_customer(52.0))
    np.testing.assert_allclose(values[0], values[1], rtol=1e-8)
    np.testing.assert_allclose(values[2], values[1], rtol=1e-8)


def test_weakly_identified_parameters_are_reported(fitted):
    gg = fitted[clvrs.GammaGompertzNBDModel]
    summary = gg.summary
    assert "weakly_identified" in summary.columns
    assert summary.loc[["b", "beta"], "weakly_identified"].all()
    assert not summary.loc[["r", "alpha"], "weakly_identified"].any()
    pnbd = fitted[clvrs.ParetoNBDModel].summary
    assert not pnbd["weakly_identified"].any()
