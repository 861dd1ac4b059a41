"""Public behaviour of clvrs.BetaGeoModel: fitting, fitted attributes, predictions, sklearn manners.

Reference figures: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way",
Marketing Science 24(2) -- BG/NBD on the CDNOW 1/10 sample (2,357 customers, weeks):
r = 0.24259, alpha = 4.41353, a = 0.79289, b = 2.42575, log-likelihood -9582.43.
"""

from __future__ import annotations

import math
import pickle
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import CDNOW_CUSTOMERS, PUBLISHED_LOG_LIKELIHOOD, PUBLISHED_PARAMS

import clvrs
from clvrs import BetaGeoModel
from clvrs.exceptions import InvalidParameterError

PARAM_NAMES = ["r", "alpha", "a", "b"]
RFM = ["frequency", "recency", "T"]


def _arrays(data: pd.DataFrame) -> dict[str, np.ndarray]:
    return {c: data[c].to_numpy(dtype=float) for c in RFM}


def _same_fit(m1: BetaGeoModel, m2: BetaGeoModel) -> None:
    """Bit-identical estimates and log-likelihood."""
    np.testing.assert_array_equal(m1.params_.to_numpy(), m2.params_.to_numpy())
    assert m1.log_likelihood_ == m2.log_likelihood_


# --------------------------------------------------------------------------------------------
# fit and fitted attributes
# --------------------------------------------------------------------------------------------


def test_fit_returns_self_and_reproduces_published_estimates(cdnow):
    model = BetaGeoModel()
    assert model.fit(cdnow) is model
    assert isinstance(model.params_, pd.Series)
    assert list(model.params_.index) == PARAM_NAMES
    for name, published in PUBLISHED_PARAMS.items():
        assert model.params_[name] == pytest.approx(published, rel=1e-3), name
    assert abs(model.log_likelihood_ - PUBLISHED_LOG_LIKELIHOOD) < 0.01
    assert model.converged_ is True
    assert isinstance(model.n_iter_, int) and model.n_iter_ > 0
    assert model.n_observations_ == CDNOW_CUSTOMERS


def test_log_likelihood_is_the_sum_over_customers(cdnow_model, cdnow):
    per_customer = cdnow_model.log_likelihood_per_customer(cdnow)
    assert np.all(per_customer < 0)
    assert float(per_customer.sum()) == pytest.approx(cdnow_model.log_likelihood_, abs=1e-6)


def _polars(data):
    pl = pytest.importorskip("polars")
    return pl.from_pandas(data.reset_index())


RENAMED = {"frequency": "x", "recency": "t_x", "T": "age"}


@pytest.mark.parametrize(
    "how",
    [
        "numpy keywords",
        "pandas Series keywords",
        "list keywords",
        "polars DataFrame",
        "polars Series keywords",
        "renamed pandas columns",
        "renamed polars columns",
        "extra columns, other order",
    ],
)
def test_every_input_form_gives_the_same_fit(cdnow, cdnow_model, how):
    if how == "numpy keywords":
        model = BetaGeoModel().fit(**_arrays(cdnow))
    elif how == "pandas Series keywords":
        model = BetaGeoModel().fit(**{c: cdnow[c] for c in RFM})
    elif how == "list keywords":
        model = BetaGeoModel().fit(**{k: v.tolist() for k, v in _arrays(cdnow).items()})
    elif how == "polars DataFrame":
        model = BetaGeoModel().fit(_polars(cdnow))
    elif how == "polars Series keywords":
        frame = _polars(cdnow)
        model = BetaGeoModel().fit(**{c: frame[c] for c in RFM})
    elif how == "renamed pandas columns":
        model = BetaGeoModel(columns=RENAMED).fit(cdnow.rename(columns=RENAMED))
    elif how == "renamed polars columns":
        model = BetaGeoModel(columns=RENAMED).fit(_polars(cdnow).rename(RENAMED))
    else:
        model = BetaGeoModel().fit(cdnow[["T", "monetary_value", "recency", "frequency"]])
    _same_fit(model, cdnow_model)


def test_covariance_is_symmetric_positive_definite(cdnow_model):
    cov = cdnow_model.covariance_
    assert isinstance(cov, pd.DataFrame)
    assert list(cov.index) == PARAM_NAMES and list(cov.columns) == PARAM_NAMES
    c = cov.to_numpy()
    assert np.all(np.isfinite(c))
    np.testing.assert_array_equal(c, c.T)
    assert np.all(np.linalg.eigvalsh(c) > 0)
    np.linalg.cholesky(c)


def test_standard_errors_are_sqrt_of_covariance_diagonal(cdnow_model):
    se = cdnow_model.standard_errors_
    assert isinstance(se, pd.Series) and list(se.index) == PARAM_NAMES
    np.testing.assert_allclose(
        se.to_numpy(), np.sqrt(np.diag(cdnow_model.covariance_.to_numpy())), rtol=1e-12
    )
    # Published standard errors (e.g. lifetimes' CDNOW example): 0.0126, 0.378, 0.186, 0.706.
    np.testing.assert_allclose(se.to_numpy(), [0.0126, 0.378, 0.186, 0.706], rtol=0.02)


def test_summary_table(cdnow_model):
    summary = cdnow_model.summary
    assert isinstance(summary, pd.DataFrame)
    assert list(summary.columns) == ["coef", "se", "lower", "upper", "weakly_identified"]
    assert not summary["weakly_identified"].any()
    assert list(summary.index) == PARAM_NAMES
    np.testing.assert_array_equal(summary["coef"].to_numpy(), cdnow_model.params_.to_numpy())
    np.testing.assert_array_equal(summary["se"].to_numpy(), cdnow_model.standard_errors_.to_numpy())
    assert np.all(summary["lower"] < summary["coef"])
    assert np.all(summary["coef"] < summary["upper"])
    assert np.all(summary["lower"] > 0)  # the parameters are positive
    # Documented: 95% Wald intervals on the log scale, coef * exp(+-z se / coef).
    spread = np.exp(1.959963984540054 * summary["se"] / summary["coef"]).to_numpy()
    coef = summary["coef"].to_numpy()
    np.testing.assert_allclose(summary["lower"].to_numpy(), coef / spread, rtol=1e-12)
    np.testing.assert_allclose(summary["upper"].to_numpy(), coef * spread, rtol=1e-12)


def test_information_criteria(cdnow_model):
    ll = cdnow_model.log_likelihood_
    assert cdnow_model.aic_ == pytest.approx(8 - 2 * ll, rel=1e-12)
    assert cdnow_model.bic_ == pytest.approx(4 * math.log(CDNOW_CUSTOMERS) - 2 * ll, rel=1e-12)
    assert cdnow_model.aic_ == pytest.approx(19172.86, abs=0.03)


def test_repr_and_html(cdnow_model):
    text = repr(cdnow_model)
    assert text.startswith("BetaGeoModel(")
    for name in PARAM_NAMES:
        assert f"{name}=" in text
    assert "0.2426" in text and "-9582.43" in text
    html = cdnow_model._repr_html_()
    assert isinstance(html, str) and "<table" in html and "BetaGeoModel" in html
    assert "-9582.43" in html
    for name in PARAM_NAMES:
        assert f"<th>{name}</th>" in html

    unfitted = BetaGeoModel(penalizer=0.5, n_jobs=2)
    assert repr(unfitted) == "BetaGeoModel(penalizer=0.5, n_jobs=2)"
    assert "not fitted" in unfitted._repr_html_()


# --------------------------------------------------------------------------------------------
# weights, compression, row order
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdnow_compressed(cdnow):
    grouped = cdnow.groupby(RFM).size().rename("count").reset_index()
    assert len(grouped) < len(cdnow)  # there is something to compress
    assert grouped["count"].sum() == CDNOW_CUSTOMERS
    return grouped


def test_user_compressed_rows_with_weights_give_bit_identical_fit(cdnow_compressed, cdnow_model):
    via_frame = BetaGeoModel(columns={"weights": "count"}).fit(cdnow_compressed)
    _same_fit(via_frame, cdnow_model)
    np.testing.assert_array_equal(
        via_frame.covariance_.to_numpy(), cdnow_model.covariance_.to_numpy()
    )
    assert via_frame.n_observations_ == CDNOW_CUSTOMERS
    assert via_frame.bic_ == cdnow_model.bic_

    via_keywords = BetaGeoModel().fit(
        **_arrays(cdnow_compressed), weights=cdnow_compressed["count"].to_numpy()
    )
    _same_fit(via_keywords, cdnow_model)


def test_weights_are_counts(cdnow):
    arrays = _arrays(cdnow)
    doubled = BetaGeoModel().fit(**{k: np.concatenate([v, v]) for k, v in arrays.items()})
    weighted = BetaGeoModel().fit(**arrays, weights=np.full(len(cdnow), 2.0))
    _same_fit(doubled, weighted)
    assert weighted.n_observations_ == 2 * CDNOW_CUSTOMERS
    assert weighted.log_likelihood_ == pytest.approx(2 * PUBLISHED_LOG_LIKELIHOOD, abs=0.02)
    # Weights matter: changing the buyers' weight changes the estimates.
    w = np.where(arrays["frequency"] > 0, 1.0, 2.0)
    assert not np.allclose(
        BetaGeoModel().fit(**arrays, weights=w).params_.to_numpy(),
        weighted.params_.to_numpy(),
        rtol=1e-3,
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_row_order_does_not_matter(cdnow, cdnow_model, seed):
    shuffled = cdnow.sample(frac=1.0, random_state=seed)
    assert not shuffled.index.equals(cdnow.index)
    _same_fit(BetaGeoModel().fit(shuffled), cdnow_model)


# --------------------------------------------------------------------------------------------
# covariance off the diagonal: independent numerical Hessian
# --------------------------------------------------------------------------------------------


def test_covariance_matches_numerical_hessian(cdnow, cdnow_model):
    theta = cdnow_model.params_.to_numpy()
    arrays = _arrays(cdnow)

    def total_ll(values: np.ndarray) -> float:
        model = BetaGeoModel.from_params(**dict(zip(PARAM_NAMES, values)))
        return float(np.sum(model.log_likelihood_per_customer(**arrays)))

    h = 3e-4 * theta
    k = len(theta)
    hessian = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):

            def f(si: int, sj: int, i: int = i, j: int = j) -> float:
                t = theta.copy()
                t[i] += si * h[i]
                t[j] += sj * h[j]
                return total_ll(t)

            hessian[i, j] = hessian[j, i] = (f(1, 1) - f(1, -1) - f(-1, 1) + f(-1, -1)) / (
                4 * h[i] * h[j]
            )
    expected = np.linalg.inv(-hessian)
    actual = cdnow_model.covariance_.to_numpy()
    # Element-wise, off-diagonal entries included (and on the correlation scale).
    np.testing.assert_allclose(actual, expected, rtol=1e-3)
    scale = np.sqrt(np.outer(np.diag(expected), np.diag(expected)))
    assert np.max(np.abs(actual - expected) / scale) < 1e-3
    # The off-diagonal structure is not negligible: a and b are strongly correlated.
    corr = expected[2, 3] / scale[2, 3]
    assert corr > 0.9


# --------------------------------------------------------------------------------------------
# from_params
# --------------------------------------------------------------------------------------------


def test_from_params_predicts_like_the_fitted_model(cdnow, cdnow_model):
    built = BetaGeoModel.from_params(**cdnow_model.params_.to_dict())
    assert isinstance(built, BetaGeoModel)
    np.testing.assert_array_equal(built.params_.to_numpy(), cdnow_model.params_.to_numpy())
    assert list(built.params_.index) == PARAM_NAMES
    assert built.covariance_ is None
    assert built.standard_errors_ is None
    assert built.log_likelihood_ is None
    for method, kwargs in [
        ("expected_purchases", {"t": 39.0}),
        ("probability_alive", {}),
        ("log_likelihood_per_customer", {}),
    ]:
        pd.testing.assert_series_equal(
            getattr(built, method)(cdnow, **kwargs), getattr(cdnow_model, method)(cdnow, **kwargs)
        )
    t = np.array([1.0, 39.0, 78.0])
    np.testing.assert_array_equal(
        built.expected_purchases_new_customer(t), cdnow_model.expected_purchases_new_customer(t)
    )
    np.testing.assert_array_equal(
        built.purchase_count_probability(np.arange(5), 39.0),
        cdnow_model.purchase_count_probability(np.arange(5), 39.0),
    )
    summary = built.summary
    assert list(summary.columns) == ["coef", "se", "lower", "upper"]
    assert summary["se"].isna().all()
    assert "BetaGeoModel" in repr(built) and "<table" in built._repr_html_()


def test_from_params_accepts_hyperparameters_and_rejects_bad_parameters():
    built = BetaGeoModel.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426, n_jobs=1)
    assert built.n_jobs == 1
    with pytest.raises(InvalidParameterError, match="b"):
        BetaGeoModel.from_params(r=0.243, alpha=4.414, a=0.793)
    with pytest.raises(InvalidParameterError, match="alpha") as info:
        BetaGeoModel.from_params(r=0.243, alpha=-1.0, a=0.793, b=2.426)
    assert info.value.parameter == "alpha"
    with pytest.raises(ValueError):
        BetaGeoModel.from_params(r=float("nan"), alpha=4.414, a=0.793, b=2.426)


def test_published_prediction_figures():
    # Docstring figures of FHL (2005) at the rounded published parameters.
    model = BetaGeoModel.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426)
    assert model.purchase_count_probability(0, 39) == pytest.approx(0.5737864, abs=1e-7)
    cond = model.expected_purchases(frequency=[2.0], recency=[30.43], T=[38.86], t=39)
    assert cond[0] == pytest.approx(1.226, abs=5e-4)
    # E[X(t)] at the full-precision estimates (FHL 2005, fig. 2 / eq. 9).
    precise = BetaGeoModel.from_params(**PUBLISHED_PARAMS)
    np.testing.assert_allclose(
        precise.expected_purchases_new_customer([1.0, 3.0, 32.0]),
        [0.0532, 0.1506, 1.0437],
        atol=5e-5,
    )


# --------------------------------------------------------------------------------------------
# predictions: output types and properties
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cdnow_string_ids(cdnow):
    data = cdnow.copy()
    data.index = pd.Index([f"cust-{i:05d}" for i in cdnow.index], name="customer")
    return data.iloc[::-1]  # also not sorted


@pytest.mark.parametrize(
    "method, kwargs",
    [
        ("expected_purchases", {"t": 52.0}),
        ("probability_alive", {}),
        ("log_likelihood_per_customer", {}),
    ],
)
def test_prediction_output_follows_input_kind(cdnow_model, cdnow_string_ids, method, kwargs):
    predict = getattr(cdnow_model, method)
    data = cdnow_string_ids

    from_pandas = predict(data, **kwargs)
    assert isinstance(from_pandas, pd.Series)
    assert from_pandas.index.equals(data.index)
    assert from_pandas.dtype == np.float64

    from_numpy = predict(**_arrays(data), **kwargs)
    assert isinstance(from_numpy, np.ndarray) and from_numpy.shape == (len(data),)
    np.testing.assert_array_equal(from_numpy, from_pandas.to_numpy())

    from_series = predict(**{c: data[c] for c in RFM}, **kwargs)
    assert isinstance(from_series, pd.Series)
    assert from_series.index.equals(data.index)

    pl = pytest.importorskip("polars")
    frame = pl.from_pandas(data.reset_index())
    from_polars = predict(frame, **kwargs)
    assert isinstance(from_polars, pl.Series)
    assert len(from_polars) == len(data)
    np.testing.assert_array_equal(from_polars.to_numpy(), from_pandas.to_numpy())

    renamed_model = BetaGeoModel.from_params(**cdnow_model.params_.to_dict(), columns=RENAMED)
    renamed = getattr(renamed_model, method)(data.rename(columns=RENAMED), **kwargs)
    np.testing.assert_array_equal(renamed.to_numpy(), from_pandas.to_numpy())


def test_probability_alive_properties(cdnow_model, cdnow):
    p = cdnow_model.probability_alive(cdnow)
    assert np.all((p >= 0) & (p <= 1))
    # No repeat purchase: the BG/NBD customer cannot have dropped out yet.
    np.testing.assert_array_equal(p[cdnow["frequency"] == 0].to_numpy(), 1.0)
    # Same x and T: a more recent last purchase means more likely alive.
    x = np.full(5, 3.0)
    recency = np.array([5.0, 10.0, 20.0, 30.0, 38.0])
    alive = cdnow_model.probability_alive(frequency=x, recency=recency, T=np.full(5, 38.86))
    assert np.all(np.diff(alive) > 0)
    # FHL (2005) eq. 11 evaluated directly.
    r, alpha, a, b = cdnow_model.params_.to_numpy()
    direct = 1 / (1 + a / (b + x - 1) * ((alpha + 38.86) / (alpha + recency)) ** (r + x))
    np.testing.assert_allclose(alive, direct, rtol=1e-12)


def test_expected_purchases_properties(cdnow_model, cdnow):
    e0 = cdnow_model.expected_purchases(cdnow, t=0.0)
    np.testing.assert_array_equal(e0.to_numpy(), 0.0)
    e10 = cdnow_model.expected_purchases(cdnow, t=10.0)
    e39 = cdnow_model.expected_purchases(cdnow, t=39.0)
    assert np.all(e10 >= 0) and np.all(e39 > e10)
    assert np.all(np.isfinite(e39))
    # One horizon per customer: each row's series directly, where one horizon for all shares
    # each frequency's tables (or, from 10,000 customers, interpolants): equal to rounding.
    horizons = np.where(np.arange(len(cdnow)) % 2 == 0, 10.0, 39.0)
    mixed = cdnow_model.expected_purchases(cdnow, t=horizons)
    np.testing.assert_allclose(
        mixed.to_numpy(),
        np.where(horizons == 10.0, e10.to_numpy(), e39.to_numpy()),
        rtol=1e-13,
        atol=0,
    )
    # A customer just acquired (x = t_x = T = 0) is a new customer.
    t = np.array([1.0, 3.0, 32.0, 78.0])
    just_acquired = cdnow_model.expected_purchases(
        frequency=np.zeros(4), recency=np.zeros(4), T=np.zeros(4), t=t
    )
    np.testing.assert_allclose(
        just_acquired, cdnow_model.expected_purchases_new_customer(t), rtol=1e-10
    )


def test_expected_purchases_new_customer_shapes_and_monotonicity(cdnow_model):
    scalar = cdnow_model.expected_purchases_new_customer(39)
    assert type(scalar) is float and scalar > 0
    t = np.linspace(0, 100, 51)
    values = cdnow_model.expected_purchases_new_customer(t)
    assert isinstance(values, np.ndarray) and values.shape == t.shape
    assert values[0] == 0.0 and np.all(np.diff(values) > 0)
    from_list = cdnow_model.expected_purchases_new_customer([1.0, 39.0])
    assert isinstance(from_list, np.ndarray)
    assert from_list[1] == scalar


def test_purchase_count_probability(cdnow_model):
    single = cdnow_model.purchase_count_probability(0, 39)
    assert type(single) is float and 0 < single < 1
    n = np.arange(501)
    probs = cdnow_model.purchase_count_probability(n, 39)
    assert isinstance(probs, np.ndarray) and probs.shape == n.shape
    assert np.all(probs >= 0)
    assert probs.sum() == pytest.approx(1.0, abs=1e-9)
    assert probs[0] == single
    # Its mean is E[X(39)].
    assert np.sum(n * probs) == pytest.approx(
        cdnow_model.expected_purchases_new_customer(39.0), rel=1e-9
    )
    # Broadcasting n against t.
    both = cdnow_model.purchase_count_probability([0, 0], [1.0, 39.0])
    assert both[1] == single and both[0] > single


# --------------------------------------------------------------------------------------------
# scikit-learn manners
# --------------------------------------------------------------------------------------------


def test_get_params_and_set_params():
    columns = {"frequency": "x"}
    model = BetaGeoModel(0.1, n_jobs=2, max_iter=50, tol=1e-6, on_failure="raise", columns=columns)
    params = model.get_params()
    assert params == {
        "penalizer": 0.1,
        "n_jobs": 2,
        "max_iter": 50,
        "tol": 1e-6,
        "on_failure": "raise",
        "columns": columns,
    }
    assert params["columns"] is columns  # stored unmodified
    assert BetaGeoModel().get_params() == {
        "penalizer": 0.0,
        "n_jobs": None,
        "max_iter": 1000,
        "tol": 1e-8,
        "on_failure": "warn",
        "columns": None,
    }
    assert model.set_params(penalizer=0.0, max_iter=7) is model
    assert model.penalizer == 0.0 and model.max_iter == 7
    assert model.get_params()["max_iter"] == 7
    with pytest.raises(InvalidParameterError, match="bogus"):
        model.set_params(bogus=1)
    with pytest.raises(ValueError):
        model.set_params(bogus=1)


def test_set_params_takes_effect(cdnow, cdnow_model):
    model = BetaGeoModel(penalizer=0.1).set_params(penalizer=0.0).fit(cdnow)
    _same_fit(model, cdnow_model)
    penalized = BetaGeoModel().set_params(penalizer=0.1).fit(cdnow)
    assert not np.allclose(penalized.params_, cdnow_model.params_, rtol=1e-3)


def test_numpy_integer_hyperparameters_are_accepted(cdnow, cdnow_model):
    model = BetaGeoModel(max_iter=np.int64(1000)).fit(cdnow)
    _same_fit(model, cdnow_model)


def test_sklearn_clone(cdnow, cdnow_model):
    base = pytest.importorskip("sklearn.base")
    columns = {"frequency": "frequency"}
    original = BetaGeoModel(penalizer=0.0, n_jobs=1, max_iter=500, columns=columns).fit(cdnow)
    copy = base.clone(original)
    assert type(copy) is BetaGeoModel and copy is not original
    assert copy.get_params() == original.get_params()
    assert "params_" not in vars(copy)
    assert not hasattr(copy, "params_")
    _same_fit(copy.fit(cdnow), cdnow_model)
    unfitted = base.clone(BetaGeoModel(tol=1e-6))
    assert unfitted.tol == 1e-6


def test_estimator_does_not_keep_training_data(cdnow):
    model = BetaGeoModel().fit(cdnow)
    n = len(cdnow)

    def sizes(value):
        if isinstance(value, dict):
            for v in value.values():
                yield from sizes(v)
        elif isinstance(value, (pd.DataFrame, pd.Series, np.ndarray, list, tuple)):
            yield len(value)
            if isinstance(value, (list, tuple)):
                for v in value:
                    yield from sizes(v)

    for name, value in vars(model).items():
        assert all(size < n for size in sizes(value)), name
    assert len(pickle.dumps(model)) < 10_000


# --------------------------------------------------------------------------------------------
# python -m clvrs
# --------------------------------------------------------------------------------------------


def test_command_line_demo(cdnow, cdnow_model):
    proc = subprocess.run(
        [sys.executable, "-m", "clvrs"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for name, published in PUBLISHED_PARAMS.items():
        match = re.search(rf"^{name}\s+([0-9.]+)\s", out, flags=re.M)
        assert match, f"no {name} row in\n{out}"
        assert float(match.group(1)) == pytest.approx(published, abs=1e-4)
    assert "-9582.43" in out

    lines = out.splitlines()
    header_at = next(i for i, line in enumerate(lines) if "probability_alive" in line)
    assert "expected_purchases" in lines[header_at]
    rows = [line for line in lines[header_at + 1 :] if re.match(r"^\d+\s", line)]
    assert len(rows) == 10, out
    ids = [int(row.split()[0]) for row in rows]
    column = lines[header_at].split().index("probability_alive") + 1  # + the index column
    alive = [float(row.split()[column]) for row in rows]
    assert all(0 <= p <= 1 for p in alive)
    # The customers listed are the top 10 by 52-week expected purchases.
    expected = cdnow_model.expected_purchases(cdnow, t=52.0)
    assert ids == list(expected.sort_values(ascending=False).index[:10])
    np.testing.assert_allclose(
        alive, cdnow_model.probability_alive(cdnow).loc[ids].to_numpy(), atol=5e-4
    )


def test_package_exports():
    for name in [
        "BetaGeoModel",
        "ClvError",
        "ConvergenceError",
        "ConvergenceWarning",
        "InvalidDataError",
        "InvalidParameterError",
        "ModelFileError",
        "NotFittedError",
        "load",
        "datasets",
        "exceptions",
    ]:
        assert name in clvrs.__all__ and hasattr(clvrs, name)
    assert isinstance(clvrs.__version__, str) and clvrs.__version__
