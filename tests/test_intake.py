"""How user data reaches the models: weights, scalars, column types, alignment of inputs.

Issue 17 (items 1 and 3) and issue 25 (intake and alignment): a `weights` column counts the
customers of each row by default, single numbers give single numbers, complex and text columns
are refused, numpy scalars are numbers, and two per-customer inputs are matched by one rule
(`clvrs._input.align_to`): positions for arrays, labels only when both carry the same labels.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import CDNOW_CUSTOMERS, PUBLISHED_LOG_LIKELIHOOD, PUBLISHED_PARAMS

import clvrs
from clvrs.exceptions import InvalidDataError, InvalidParameterError

RFM = ["frequency", "recency", "T"]
RFM_MODELS = [
    clvrs.BetaGeoModel,
    clvrs.ModifiedBetaGeoModel,
    clvrs.ParetoNBDModel,
    clvrs.GammaGompertzNBDModel,
]
CHURN_MODELS = [clvrs.ShiftedBetaGeoModel, clvrs.BetaDiscreteWeibullModel]


def _quiet(fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fit()


def _same_fit(a, b, rel=1e-6):
    np.testing.assert_allclose(a.params_.to_numpy(), b.params_.to_numpy(), rtol=rel)
    assert a.log_likelihood_ == pytest.approx(b.log_likelihood_, rel=1e-9)
    assert a.n_observations_ == b.n_observations_


@pytest.fixture(scope="module")
def cdnow_grouped(cdnow):
    """CDNOW with identical (frequency, recency, T) rows given once, counted in `weights`."""
    grouped = cdnow.groupby(RFM).size().rename("weights").reset_index()
    assert len(grouped) < len(cdnow) and grouped["weights"].sum() == CDNOW_CUSTOMERS
    return grouped


@pytest.fixture(scope="module")
def donations():
    return clvrs.datasets.load_donations()


@pytest.fixture(scope="module")
def churn_records():
    """sBG-style records: a cohort of 1000 with the 'regular' survivor counts."""
    survivors = [1000, 631, 468, 382, 326, 289, 262, 241]
    lost = -np.diff(survivors)
    return pd.DataFrame(
        {
            "periods": list(range(1, 8)) + [7],
            "churned": [True] * 7 + [False],
            "weights": list(lost) + [survivors[-1]],
        }
    )


# --------------------------------------------------------------------------------------------
# 1. weights: a `weights` column counts customers by default
# --------------------------------------------------------------------------------------------


def test_donations_fitted_as_loaded_give_the_published_estimates(donations):
    """FHS (2010): alpha 1.204, beta 0.750, gamma 0.657, delta 2.783, LL -33225.6 on the 22
    patterns of 11,104 donors (the old code fitted 22 customers: gamma = 7e10)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either
        model = clvrs.BetaGeoBetaBinomModel().fit(donations)
    assert model.params_.round(3).tolist() == [1.204, 0.750, 0.657, 2.783]
    assert model.log_likelihood_ == pytest.approx(-33225.58, abs=0.005)
    assert model.n_observations_ == 11104


def test_aggregated_cdnow_fits_to_the_published_bgnbd(cdnow_grouped):
    """A pre-aggregated table (the lifetimes workaround) fits like the customers it counts
    (the old code ignored the counts and gave r = 1.71)."""
    model = clvrs.BetaGeoModel().fit(cdnow_grouped)
    for name, value in PUBLISHED_PARAMS.items():
        assert model.params_[name] == pytest.approx(value, abs=6e-4)
    assert model.log_likelihood_ == pytest.approx(PUBLISHED_LOG_LIKELIHOOD, abs=0.005)
    assert model.n_observations_ == CDNOW_CUSTOMERS


@pytest.mark.parametrize("cls", RFM_MODELS, ids=lambda c: c.__name__)
def test_every_summary_model_reads_the_weights_column(cls, cdnow, cdnow_grouped):
    full = _quiet(lambda: cls().fit(cdnow))
    grouped = _quiet(lambda: cls().fit(cdnow_grouped))
    _same_fit(grouped, full, rel=1e-5)


@pytest.mark.parametrize(
    "cls", [clvrs.BetaGeoModel, clvrs.ParetoNBDModel], ids=lambda c: c.__name__
)
def test_covariate_fits_read_the_weights_column(cls, cdnow):
    data = cdnow.assign(group=(np.arange(len(cdnow)) % 3 == 0).astype(float))
    grouped = data.groupby(RFM + ["group"]).size().rename("weights").reset_index()
    kwargs = {"purchase_covariates": ["group"], "dropout_covariates": ["group"]}
    full = _quiet(lambda: cls().fit(data, **kwargs))
    compressed = _quiet(lambda: cls().fit(grouped, **kwargs))
    _same_fit(compressed, full, rel=1e-4)


def test_gamma_gamma_reads_the_weights_column(cdnow):
    grouped = cdnow.groupby(["frequency", "monetary_value"]).size().rename("weights")
    grouped = grouped.reset_index()
    assert len(grouped) < len(cdnow)
    _same_fit(clvrs.GammaGammaModel().fit(grouped), clvrs.GammaGammaModel().fit(cdnow))


@pytest.mark.parametrize("cls", CHURN_MODELS, ids=lambda c: c.__name__)
def test_churn_models_read_the_weights_column(cls, churn_records):
    survivors = [1000, 631, 468, 382, 326, 289, 262, 241]
    _same_fit(cls().fit(churn_records), cls().fit(survivors=survivors), rel=1e-5)


def test_weights_column_can_be_turned_off_or_renamed(cdnow_grouped):
    rows = cdnow_grouped.drop(columns="weights")
    off = clvrs.BetaGeoModel(columns={"weights": None}).fit(cdnow_grouped)
    _same_fit(off, clvrs.BetaGeoModel().fit(rows))
    renamed = cdnow_grouped.rename(columns={"weights": "count"})
    mapped = clvrs.BetaGeoModel(columns={"weights": "count"}).fit(renamed)
    _same_fit(mapped, clvrs.BetaGeoModel().fit(cdnow_grouped))


def test_weights_argument_wins_over_the_column_and_says_so(cdnow_grouped):
    doubled = cdnow_grouped["weights"].to_numpy() * 2
    with pytest.warns(
        UserWarning, match=r"`weights=` argument and the data's `weights` column"
    ) as record:
        model = clvrs.BetaGeoModel().fit(cdnow_grouped, weights=doubled)
    assert model.n_observations_ == 2 * CDNOW_CUSTOMERS
    assert record[0].filename == __file__  # the warning points at the caller's line
    donations = clvrs.datasets.load_donations()
    with pytest.warns(UserWarning, match="using the argument") as record:
        clvrs.BetaGeoBetaBinomModel().fit(donations, weights=donations["weights"])
    assert record[0].filename == __file__
    # With no such column the argument is simply used (no warning).
    rows = cdnow_grouped.drop(columns="weights")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = clvrs.BetaGeoModel().fit(rows, weights=cdnow_grouped["weights"])
    _same_fit(plain, clvrs.BetaGeoModel().fit(cdnow_grouped))


def test_weights_argument_is_matched_to_the_data_rows(cdnow_grouped):
    data = cdnow_grouped.drop(columns="weights").set_axis(
        [f"c{i}" for i in range(len(cdnow_grouped))]
    )
    counts = pd.Series(cdnow_grouped["weights"].to_numpy(), index=data.index)
    reference = clvrs.BetaGeoModel().fit(cdnow_grouped)
    # The same labels in another order: aligned by label.
    _same_fit(clvrs.BetaGeoModel().fit(data, weights=counts.iloc[::-1]), reference)
    # Other labels: refused, naming both.
    with pytest.raises(InvalidDataError, match="`weights` and `data`"):
        clvrs.BetaGeoModel().fit(data, weights=counts.reset_index(drop=True))
    with pytest.raises(InvalidDataError, match="`weights` has 3 values"):
        clvrs.BetaGeoModel().fit(data, weights=[1, 2, 3])


@pytest.mark.parametrize(
    "fit",
    [
        lambda w: clvrs.BetaGeoModel().fit(
            pd.DataFrame({"frequency": [1, 0, 2], "recency": [3.0, 0, 5], "T": [9.0, 9, 9]}),
            weights=w,
        ),
        lambda w: clvrs.ParetoNBDModel().fit(
            frequency=[1, 0, 2], recency=[3.0, 0, 5], T=[9.0, 9, 9], weights=w
        ),
        lambda w: clvrs.BetaGeoBetaBinomModel().fit(
            frequency=[1, 0, 2], recency=[3, 0, 5], periods=[6, 6, 6], weights=w
        ),
        lambda w: clvrs.GammaGammaModel().fit(
            frequency=[1, 0, 2], monetary_value=[3.0, 0, 5], weights=w
        ),
        lambda w: clvrs.ShiftedBetaGeoModel().fit(
            periods=[1, 2, 3], churned=[True, True, False], weights=w
        ),
        lambda w: clvrs.fit_segments(
            clvrs.BetaGeoModel(),
            pd.DataFrame(
                {"frequency": [1, 0, 2], "recency": [3.0, 0, 5], "T": [9.0, 9, 9], "weights": w}
            ),
            by=np.array([0, 0, 0]),
        ),
    ],
    ids=["bgnbd", "pnbd", "bgbb", "gamma-gamma", "sbg", "segments"],
)
def test_fractional_weights_are_refused_everywhere(fit):
    with pytest.raises(InvalidDataError, match="must be a whole number") as info:
        fit(np.array([3.0, 2.5, 1.0]))
    assert info.value.column == "weights" and info.value.row == 1
    assert "sampling weights are not supported" in str(info.value)


def test_a_weights_column_that_is_not_counts_says_how_to_turn_it_off():
    """A `weights` column meaning something else (a parcel's kilograms) is refused, and the
    error says how to keep it out of the fit."""
    data = _frame().assign(weights=[0.4, 1.2, 2.0])
    with pytest.raises(InvalidDataError, match=r"columns=\{'weights': None\}"):
        clvrs.BetaGeoModel().fit(data)
    off = _quiet(lambda: clvrs.BetaGeoModel(columns={"weights": None}).fit(data))
    _same_fit(off, _quiet(lambda: clvrs.BetaGeoModel().fit(_frame())))


def test_fractional_weight_error_gives_the_index_label():
    data = pd.DataFrame(
        {"frequency": [1, 0], "recency": [3.0, 0], "T": [9.0, 9], "n": [1, 0.5]},
        index=["ann", "bob"],
    )
    with pytest.raises(InvalidDataError) as info:
        clvrs.BetaGeoModel(columns={"weights": "n"}).fit(data)
    assert info.value.column == "n" and info.value.label == "bob"


def test_bootstrap_counts_the_weights_column(donations):
    """The resamples draw donors, not the 22 patterns: the same replicates as with the
    column mapped explicitly (the old code resampled the 22 rows: gamma in the 1e10s)."""
    default = clvrs.bootstrap(
        clvrs.BetaGeoBetaBinomModel().fit(donations), donations, n_boot=4, seed=1
    )
    mapped_model = clvrs.BetaGeoBetaBinomModel(columns={"weights": "weights"}).fit(donations)
    mapped = clvrs.bootstrap(mapped_model, donations, n_boot=4, seed=1)
    pd.testing.assert_frame_equal(default.params, mapped.params)
    assert default.params["gamma"].between(0.3, 1.5).all()


# --------------------------------------------------------------------------------------------
# 2. scalars in, scalars out
# --------------------------------------------------------------------------------------------

CUSTOMER = {"frequency": 2, "recency": 30.4, "T": 38.9}


@pytest.fixture(scope="module")
def fitted(cdnow, donations):
    models = {cls.__name__: _quiet(lambda c=cls: c().fit(cdnow)) for cls in RFM_MODELS}
    models["GammaGammaModel"] = clvrs.GammaGammaModel().fit(cdnow)
    models["BetaGeoBetaBinomModel"] = clvrs.BetaGeoBetaBinomModel().fit(donations)
    return models


def _scalar_calls(models):
    calls = []
    for name in (c.__name__ for c in RFM_MODELS):
        m = models[name]
        calls += [
            (f"{name}.expected_purchases", lambda m=m: m.expected_purchases(t=4, **CUSTOMER)),
            (f"{name}.probability_alive", lambda m=m: m.probability_alive(**CUSTOMER)),
            (
                f"{name}.log_likelihood_per_customer",
                lambda m=m: m.log_likelihood_per_customer(**CUSTOMER),
            ),
            (
                f"{name}.weighted_expected_purchases",
                lambda m=m: m.weighted_expected_purchases(None, [1, 2], [0.5, 0.5], **CUSTOMER),
            ),
            (
                f"{name}.customer_lifetime_value",
                lambda m=m: clvrs.customer_lifetime_value(m, 20.0, **CUSTOMER),
            ),
            (
                f"{name}.customer_lifetime_value(gamma-gamma)",
                lambda m=m: clvrs.customer_lifetime_value(
                    m, models["GammaGammaModel"], monetary_value=30.0, **CUSTOMER
                ),
            ),
            (
                f"{name}.customer_lifetime_value(continuous)",
                lambda m=m: clvrs.customer_lifetime_value(
                    m, 20.0, time=None, method="continuous", **CUSTOMER
                ),
            ),
        ]
        if hasattr(m, "expected_residual_transactions"):
            calls += [
                (
                    f"{name}.probability_alive(t)",
                    lambda m=m: m.probability_alive(t=3, **CUSTOMER),
                ),
                (
                    f"{name}.conditional_purchase_count_probability",
                    lambda m=m: m.conditional_purchase_count_probability(n=1, t=4, **CUSTOMER),
                ),
                (
                    f"{name}.expected_residual_transactions",
                    lambda m=m: m.expected_residual_transactions(discount_rate=0.01, **CUSTOMER),
                ),
            ]
    gg = models["GammaGammaModel"]
    spend = {"frequency": 2, "monetary_value": 30.0}
    calls += [
        ("GammaGamma.expected_average_spend", lambda: gg.expected_average_spend(**spend)),
        ("GammaGamma.log_likelihood_per_customer", lambda: gg.log_likelihood_per_customer(**spend)),
    ]
    for name in (c.__name__ for c in RFM_MODELS):
        m = models[name]
        calls += [
            (
                f"{name}.expected_purchases_new_customer",
                lambda m=m: m.expected_purchases_new_customer(4),
            ),
            (f"{name}.purchase_count_probability", lambda m=m: m.purchase_count_probability(1, 4)),
        ]
    for cls in CHURN_MODELS:
        m = cls().fit(survivors=[1000, 631, 468, 382, 326, 289, 262, 241])
        calls += [
            (f"{cls.__name__}.survival", lambda m=m: m.survival(3)),
            (f"{cls.__name__}.churn_probability", lambda m=m: m.churn_probability(3)),
            (f"{cls.__name__}.retention_rate", lambda m=m: m.retention_rate(3)),
            (f"{cls.__name__}.probability_active", lambda m=m: m.probability_active(3, 2)),
            (f"{cls.__name__}.expected_renewals", lambda m=m: m.expected_renewals(3, 2)),
            (
                f"{cls.__name__}.expected_residual_lifetime",
                lambda m=m: m.expected_residual_lifetime(3, 0.1),
            ),
            (
                f"{cls.__name__}.subscription_value",
                lambda m=m: m.subscription_value(np.int64(3), np.float64(10.0), 0.1),
            ),
        ]
    bb = models["BetaGeoBetaBinomModel"]
    history = {"frequency": 2, "recency": 4, "periods": 6}
    calls += [
        ("BGBB.expected_purchases_new_customer", lambda: bb.expected_purchases_new_customer(3)),
        ("BGBB.purchase_count_probability", lambda: bb.purchase_count_probability(1, 3)),
        ("BGBB.expected_purchases", lambda: bb.expected_purchases(m=3, **history)),
        ("BGBB.probability_alive", lambda: bb.probability_alive(**history)),
        ("BGBB.probability_alive(m)", lambda: bb.probability_alive(m=2, **history)),
        ("BGBB.log_likelihood_per_customer", lambda: bb.log_likelihood_per_customer(**history)),
        (
            "BGBB.expected_residual_transactions",
            lambda: bb.expected_residual_transactions(discount_rate=0.1, **history),
        ),
        (
            "BGBB.weighted_expected_purchases",
            lambda: bb.weighted_expected_purchases(
                None, [1, 2], [0.5, 0.5], frequency=2, recency=4, T=6
            ),
        ),
    ]
    return calls


def test_every_prediction_of_single_numbers_is_a_number(fitted):
    for label, call in _scalar_calls(fitted):
        value = call()
        assert np.ndim(value) == 0, label
        assert isinstance(value, float), label  # a Python float or numpy float64
        assert math.isfinite(float(value)), label
        f"{value:.2%}"  # noqa: B018 (formatting a 1-element array raises on numpy 2)


def test_scalar_results_equal_the_array_results(fitted):
    m = fitted["BetaGeoModel"]
    arrays = {k: np.array([v]) for k, v in CUSTOMER.items()}
    one = m.probability_alive(**arrays)
    assert isinstance(one, np.ndarray) and one.shape == (1,)
    assert m.probability_alive(**CUSTOMER) == one[0]
    # numpy scalars and 0-d arrays are single numbers too.
    numpy_scalars = {k: np.float64(v) for k, v in CUSTOMER.items()}
    assert m.probability_alive(**numpy_scalars) == one[0]
    assert np.ndim(m.probability_alive(**{k: np.array(v) for k, v in CUSTOMER.items()})) == 0


def test_series_inputs_keep_their_index(fitted, cdnow):
    m = fitted["BetaGeoModel"]
    data = cdnow.iloc[:5].set_axis(list("abcde"))
    out = m.probability_alive(frequency=data["frequency"], recency=data["recency"], T=data["T"])
    assert isinstance(out, pd.Series) and list(out.index) == list("abcde")


# --------------------------------------------------------------------------------------------
# 3. column types and numpy scalars
# --------------------------------------------------------------------------------------------


def _frame():
    return pd.DataFrame({"frequency": [1.0, 0.0, 2.0], "recency": [3.0, 0.0, 5.0], "T": [9.0] * 3})


@pytest.mark.parametrize(
    "fit",
    [
        lambda d: clvrs.BetaGeoModel().fit(d),
        lambda d: clvrs.BetaGeoModel().fit(
            frequency=d["frequency"], recency=d["recency"], T=d["T"]
        ),
        lambda d: clvrs.BetaGeoModel().fit(
            frequency=d["frequency"].to_numpy(),
            recency=d["recency"].to_numpy(),
            T=d["T"].to_numpy(),
        ),
    ],
    ids=["frame", "series", "numpy"],
)
def test_complex_columns_are_refused_consistently(fit):
    data = _frame()
    data["recency"] = data["recency"] + 1j
    with pytest.raises(InvalidDataError, match="must be numeric") as info:
        fit(data)
    assert info.value.column == "recency"


def test_object_columns_are_refused_naming_the_column_and_value():
    data = _frame()
    data["T"] = pd.Series(["9", "9", "9,5"], dtype=object)
    with pytest.raises(InvalidDataError, match="must be numeric") as info:
        clvrs.BetaGeoModel().fit(data)
    assert info.value.column == "T" and info.value.row == 0 and "'9'" in str(info.value)
    numbers_as_objects = _frame().astype({"T": object})
    with pytest.raises(InvalidDataError, match="dtype object") as info:
        clvrs.BetaGeoModel().fit(numbers_as_objects)
    assert info.value.column == "T"
    with pytest.raises(InvalidDataError, match="must be numeric") as info:
        clvrs.GammaGammaModel().fit(
            frequency=[1, 2], monetary_value=np.array([3.0, "x"], dtype=object)
        )
    assert info.value.column == "monetary_value" and info.value.row == 1


def test_numpy_scalars_are_numbers(cdnow):
    data = cdnow.assign(group=(np.arange(len(cdnow)) % 2).astype(float))
    for penalty in (np.int64(0), np.float64(0.0)):
        model = _quiet(
            lambda p=penalty: clvrs.BetaGeoModel().fit(
                data, purchase_covariates=["group"], covariate_penalizer=p
            )
        )
        assert model.fit_info_["covariate_penalizer"] == 0.0
    with pytest.raises(InvalidParameterError):
        clvrs.BetaGeoModel().fit(data, purchase_covariates=["group"], covariate_penalizer=True)
    with pytest.raises(InvalidParameterError):
        clvrs.BetaGeoModel().fit(
            data, purchase_covariates=["group"], covariate_penalizer=np.bool_(True)
        )


# --------------------------------------------------------------------------------------------
# 4. two per-customer inputs: one alignment rule
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def by_id(cdnow):
    return cdnow.set_axis([f"id{i:04d}" for i in range(len(cdnow))])


def test_clv_refuses_a_spend_series_with_other_labels(fitted, by_id):
    """The old code aligned by label: every value NaN (or shifted by one customer)."""
    spend = pd.Series(np.linspace(10, 20, len(by_id)))
    with pytest.raises(InvalidDataError, match="`spend_model` and `data`") as info:
        clvrs.customer_lifetime_value(fitted["BetaGeoModel"], spend, by_id)
    assert "to_numpy()" in str(info.value) and "reindex" in str(info.value)


def test_clv_matches_spends_by_position_or_by_the_same_labels(fitted, by_id):
    model = fitted["BetaGeoModel"]
    spend = np.linspace(10, 20, len(by_id))
    positional = clvrs.customer_lifetime_value(model, spend, by_id)
    assert positional.index.equals(by_id.index)
    per_unit = clvrs.customer_lifetime_value(model, 1.0, by_id)
    np.testing.assert_allclose(positional.to_numpy(), per_unit.to_numpy() * spend, rtol=1e-12)
    shuffled = pd.Series(spend, index=by_id.index).sample(frac=1.0, random_state=3)
    by_label = clvrs.customer_lifetime_value(model, shuffled, by_id)
    pd.testing.assert_series_equal(by_label, positional)
    same = clvrs.customer_lifetime_value(model, pd.Series(spend, index=by_id.index), by_id)
    pd.testing.assert_series_equal(same, positional)


def test_keyword_series_with_other_labels_are_refused(fitted, by_id):
    model = fitted["BetaGeoModel"]
    with pytest.raises(InvalidDataError, match="`recency` and `frequency`"):
        model.probability_alive(
            frequency=by_id["frequency"],
            recency=by_id["recency"].reset_index(drop=True),
            T=by_id["T"],
        )
    # The same labels in another order are matched by label.
    out = model.probability_alive(
        frequency=by_id["frequency"], recency=by_id["recency"].iloc[::-1], T=by_id["T"]
    )
    pd.testing.assert_series_equal(out, model.probability_alive(by_id))


def test_gamma_gamma_series_are_matched_by_label(fitted, by_id):
    gg = fitted["GammaGammaModel"]
    with pytest.raises(InvalidDataError, match="`monetary_value` and `frequency`"):
        gg.expected_average_spend(
            frequency=by_id["frequency"],
            monetary_value=by_id["monetary_value"].reset_index(drop=True),
        )
    out = gg.expected_average_spend(
        frequency=by_id["frequency"], monetary_value=by_id["monetary_value"].iloc[::-1]
    )
    pd.testing.assert_series_equal(out, gg.expected_average_spend(by_id))


def test_per_customer_horizons_are_matched_to_the_data(fitted, by_id):
    model = fitted["ParetoNBDModel"]
    horizon = pd.Series(np.arange(len(by_id), dtype=float) % 7 + 1, index=by_id.index)
    expected = model.expected_purchases(by_id, t=horizon.to_numpy())
    pd.testing.assert_series_equal(model.expected_purchases(by_id, t=horizon[::-1]), expected)
    with pytest.raises(InvalidDataError, match="`t` and `data`"):
        model.expected_purchases(by_id, t=horizon.reset_index(drop=True))
    with pytest.raises(InvalidDataError, match="`discount_rate` and `data`"):
        model.expected_residual_transactions(
            by_id, discount_rate=pd.Series(0.01, index=range(len(by_id)))
        )


def test_acquisition_budget_groups_are_matched_by_the_rule(fitted, by_id):
    clv = clvrs.customer_lifetime_value(fitted["BetaGeoModel"], 10.0, by_id)
    groups = pd.Series(np.where(np.arange(len(by_id)) % 2 == 0, "a", "b"), index=by_id.index)
    expected = clvrs.acquisition_budget(clv, by=groups.to_numpy())
    pd.testing.assert_frame_equal(
        clvrs.acquisition_budget(clv, by=groups.sample(frac=1.0, random_state=0)),
        expected,
        check_names=False,
    )
    with pytest.raises(InvalidDataError, match="`by` and `clv`"):
        clvrs.acquisition_budget(clv, by=groups.reset_index(drop=True))
    # Values without labels: the groups are matched by position.
    by_position = clvrs.acquisition_budget(clv.to_numpy(), by=groups)
    np.testing.assert_allclose(by_position["mean_clv"], expected["mean_clv"])


def test_segments_by_series_is_matched_to_the_data(by_id):
    by = pd.Series(np.arange(len(by_id)) % 2, index=by_id.index)
    with pytest.raises(InvalidDataError, match="`by` and `data`"):
        clvrs.fit_segments(clvrs.BetaGeoModel(), by_id, by=by.reset_index(drop=True))


# --------------------------------------------------------------------------------------------
# 5. sweep: columns that would be misread
# --------------------------------------------------------------------------------------------


def test_duplicate_column_names_are_refused():
    data = pd.concat([_frame(), _frame()[["T"]] * 2], axis=1)
    with pytest.raises(InvalidDataError, match="appears 2 times") as info:
        clvrs.BetaGeoModel().fit(data)
    assert info.value.column == "T"


def test_one_column_for_two_roles_is_refused():
    with pytest.raises(InvalidDataError, match="mapped to two roles") as info:
        clvrs.BetaGeoModel(columns={"recency": "T"}).fit(_frame())
    assert info.value.column == "T"


def test_a_required_role_mapped_to_none_is_refused():
    with pytest.raises(InvalidDataError, match="maps it to None") as info:
        clvrs.BetaGeoModel(columns={"recency": None}).fit(_frame())
    assert info.value.column == "recency"


def test_columns_must_be_a_mapping():
    """The old code read a string as a set of letters ("unknown roles ['c', 'e', ...]")."""
    with pytest.raises(InvalidParameterError, match="must be a dict of role to column name"):
        clvrs.BetaGeoModel(columns="frequency").fit(_frame())


def test_columns_with_non_text_labels_are_found(cdnow):
    """A frame with integer column labels: the old code raised a bare KeyError for
    columns={'frequency': '0'} and called column 0 missing for columns={'frequency': 0}."""
    numbered = pd.DataFrame({0: cdnow["frequency"], 1: cdnow["recency"], 2: cdnow["T"]})
    reference = clvrs.BetaGeoModel().fit(cdnow)
    for mapping in ({"frequency": 0, "recency": 1, "T": 2}, {"frequency": "0", "recency": "1"}):
        mapping = {"T": 2, **mapping}
        _same_fit(clvrs.BetaGeoModel(columns=mapping).fit(numbered), reference)


def test_intervals_of_single_numbers_are_one_row(fitted):
    model = fitted["BetaGeoModel"]
    table = clvrs.prediction_interval(model, "probability_alive", **CUSTOMER)
    assert len(table) == 1
    assert table["estimate"].iloc[0] == pytest.approx(float(model.probability_alive(**CUSTOMER)))
    assert table["lower"].iloc[0] < table["estimate"].iloc[0] < table["upper"].iloc[0]


def test_a_weights_column_mapped_to_another_role_is_not_also_the_weights(cdnow):
    data = cdnow[RFM].rename(columns={"frequency": "weights"})
    model = clvrs.BetaGeoModel(columns={"frequency": "weights"}).fit(data)
    _same_fit(model, clvrs.BetaGeoModel().fit(cdnow))


def test_bgbb_horizon_errors_name_m(donations):
    """Issue 25: BG/BB's expected_purchases(x, m=10**8) blamed `t`, an argument it has not.
    Long horizons are now computed at bounded cost; the errors that remain name `m`."""
    model = clvrs.BetaGeoBetaBinomModel().fit(donations)
    data = donations.set_axis([f"p{i}" for i in range(len(donations))])
    far, near = model.expected_purchases(data, m=10**8), model.expected_purchases(data, m=10**4)
    assert np.all(np.isfinite(far)) and np.all(far >= near)
    for bad in (-1, 2.5, float("nan")):
        with pytest.raises(InvalidParameterError, match="^m: ") as info:
            model.expected_purchases(data, m=bad)
        assert info.value.parameter == "m"
    with pytest.raises(InvalidDataError, match="column `m`: must be one value or one per"):
        model.expected_purchases(data, m=[1, 2, 3])


def test_covariate_columns_are_read_as_they_are_or_refused(cdnow):
    """A complex covariate was fitted on its real part; a duplicated one gave a pandas error."""
    data = cdnow.assign(x=(np.arange(len(cdnow)) % 2).astype(float))
    with pytest.raises(InvalidDataError, match="must be real") as info:
        clvrs.BetaGeoModel().fit(data.assign(x=data["x"] + 0j), purchase_covariates=["x"])
    assert info.value.column == "x"
    model = _quiet(lambda: clvrs.BetaGeoModel().fit(data, purchase_covariates=["x"]))
    with pytest.raises(InvalidDataError, match="must be real"):
        model.probability_alive(data.assign(x=data["x"] + 0j))
    twice = pd.concat([data, data[["x"]]], axis=1)
    with pytest.raises(InvalidDataError, match="appears 2 times") as info:
        clvrs.BetaGeoModel().fit(twice, purchase_covariates=["x"])
    assert info.value.column == "x"


@pytest.mark.parametrize("value", [None, "duration"])
def test_a_horizon_that_is_not_a_number_says_so(fitted, cdnow, value):
    """A column name or None as `t` was reported as 'dtype <U8' or 'dtype object'."""
    with pytest.raises(InvalidDataError, match=r"must be numeric \(a number, or one per") as info:
        fitted["BetaGeoModel"].expected_purchases(cdnow, t=value)
    assert info.value.column == "t" and repr(value) in str(info.value)
    if isinstance(value, str):
        assert "data['duration']" in str(info.value)


def test_distributed_fits_count_a_weights_column(cdnow_grouped):
    """fit_dask / fit_spark gather distinct rows with their total weight; a `weights` column
    of the summaries is summed (it was ignored, each row counting once). Dask and Spark are
    optional, so the gathering step is checked on a pandas partition."""
    from clvrs import distributed

    model = clvrs.BetaGeoModel()
    columns, weights = distributed._model_columns(model, cdnow_grouped)
    assert columns == RFM and weights == "weights"
    assert distributed._model_columns(model, cdnow_grouped.drop(columns="weights"))[1] is None
    halves = [cdnow_grouped.iloc[::2], cdnow_grouped.iloc[1::2]]
    counts = pd.concat([distributed._distinct_rows(h, columns, weights) for h in halves])
    fitted = distributed._fit_on_counts(model, counts, columns)
    _same_fit(fitted, clvrs.BetaGeoModel().fit(cdnow_grouped))
    assert fitted.n_observations_ == CDNOW_CUSTOMERS


def test_segment_predictions_take_one_horizon_per_customer(cdnow):
    """A horizon per customer went whole to every segment's model: 'one value or one per
    customer (1179), got 2357'."""
    data = cdnow.assign(s=np.arange(len(cdnow)) % 2)
    segmented = _quiet(lambda: clvrs.fit_segments(clvrs.BetaGeoModel(), data, "s"))
    t = np.arange(len(data)) % 5 + 1.0
    expected = pd.concat(
        [
            segmented.models_[k].expected_purchases(data[data["s"] == k], t=t[data["s"] == k])
            for k in (0, 1)
        ]
    ).reindex(data.index)
    np.testing.assert_allclose(segmented.expected_purchases(data, t=t), expected, rtol=1e-12)
    shuffled = pd.Series(t, index=data.index).sample(frac=1.0, random_state=2)
    by_label = segmented.predict("expected_purchases", data, t=shuffled)
    np.testing.assert_allclose(by_label, expected, rtol=1e-12)
    with pytest.raises(InvalidDataError, match="`t` and `data` have different index labels"):
        segmented.predict("expected_purchases", data, t=pd.Series(t))


def test_subscription_inputs_follow_the_alignment_rule():
    """tenure and margin_per_period (or periods) per subscriber: a Series pair was matched by
    position whatever its labels, and arrays of different lengths gave numpy's broadcast
    ValueError."""
    model = clvrs.ShiftedBetaGeoModel().fit(survivors=[1000, 631, 468, 382, 326, 289, 262, 241])
    tenure = pd.Series([1, 2, 3], index=["a", "b", "c"])
    margin = pd.Series([30.0, 10.0, 20.0], index=["c", "a", "b"])
    expected = model.subscription_value([1, 2, 3], [10.0, 20.0, 30.0], 0.1)
    np.testing.assert_allclose(model.subscription_value(tenure, margin, 0.1), expected)
    with pytest.raises(InvalidDataError, match="`margin_per_period` and `tenure`"):
        model.subscription_value(tenure, margin.reset_index(drop=True), 0.1)
    with pytest.raises(InvalidDataError, match="`margin_per_period` has 2 values"):
        model.subscription_value([1, 2, 3], [10.0, 20.0], 0.1)
    np.testing.assert_allclose(
        model.probability_active(tenure, pd.Series([2, 1, 1], index=["c", "b", "a"])),
        model.probability_active([1, 2, 3], [1, 1, 2]),
    )
    with pytest.raises(InvalidDataError, match="`periods` and `tenure`"):
        model.probability_active(tenure, pd.Series([1, 2, 3]))
