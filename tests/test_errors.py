"""Typed errors: bad data, bad hyperparameters, non-convergence, unfitted use, panics."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import PUBLISHED_LOG_LIKELIHOOD

import clvrs
from clvrs import BetaGeoModel
from clvrs.exceptions import (
    ClvError,
    ConvergenceError,
    ConvergenceWarning,
    InvalidDataError,
    InvalidParameterError,
    ModelFileError,
    NotFittedError,
)


def test_exception_hierarchy():
    assert issubclass(InvalidDataError, ClvError) and issubclass(InvalidDataError, ValueError)
    assert issubclass(InvalidParameterError, ClvError)
    assert issubclass(InvalidParameterError, ValueError)
    assert issubclass(ConvergenceError, ClvError) and issubclass(ConvergenceError, RuntimeError)
    assert issubclass(NotFittedError, ClvError) and issubclass(NotFittedError, AttributeError)
    assert issubclass(ModelFileError, ClvError) and issubclass(ModelFileError, ValueError)
    assert issubclass(ConvergenceWarning, Warning)
    assert issubclass(ClvError, Exception)
    # The same classes are reachable from the package root.
    assert clvrs.ClvError is ClvError and clvrs.InvalidDataError is InvalidDataError
    assert clvrs.ConvergenceError is ConvergenceError
    assert clvrs.ConvergenceWarning is ConvergenceWarning
    assert clvrs.NotFittedError is NotFittedError


# --------------------------------------------------------------------------------------------
# bad data
# --------------------------------------------------------------------------------------------


def _good() -> dict[str, np.ndarray]:
    """Six valid customers."""
    return {
        "frequency": np.array([0.0, 1.0, 2.0, 0.0, 5.0, 3.0]),
        "recency": np.array([0.0, 1.5, 10.0, 0.0, 20.0, 7.0]),
        "T": np.array([30.0, 30.0, 30.0, 25.0, 40.0, 9.0]),
    }


def _with(column: str, row: int, value: float, *more: tuple[int, float]) -> dict:
    data = _good()
    data[column] = data[column].copy()
    data[column][row] = value
    for r, v in more:
        data[column][r] = v
    return data


# (case id, data, column blamed, first offending row, words of the rule in the message)
BAD_ROWS = [
    ("nan frequency", _with("frequency", 2, np.nan, (4, np.nan)), "frequency", 2, "whole number"),
    ("nan recency", _with("recency", 1, np.nan), "recency", 1, "finite"),
    ("nan T", _with("T", 5, np.nan), "T", 5, "finite"),
    ("inf T", _with("T", 3, np.inf), "T", 3, "finite"),
    ("-inf recency", _with("recency", 4, -np.inf), "recency", 4, "finite"),
    ("inf frequency", _with("frequency", 1, np.inf), "frequency", 1, "whole number"),
    ("negative frequency", _with("frequency", 4, -1.0), "frequency", 4, ">= 0"),
    ("negative recency", _with("recency", 2, -0.5, (4, -1.0)), "recency", 2, ">= 0"),
    ("negative T", _with("T", 1, -30.0), "T", 1, ">= 0"),
    ("recency > T", _with("recency", 5, 9.5), "recency", 5, "exceed"),
    ("non-integer frequency", _with("frequency", 2, 2.5), "frequency", 2, "whole number"),
    ("frequency 0, recency > 0", _with("recency", 3, 4.0), "recency", 3, "must be 0"),
]


@pytest.mark.parametrize(
    "data, column, row, rule", [case[1:] for case in BAD_ROWS], ids=[c[0] for c in BAD_ROWS]
)
def test_bad_values_name_column_row_and_rule(data, column, row, rule):
    with pytest.raises(InvalidDataError) as info:
        BetaGeoModel().fit(**data)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, ClvError)
    assert err.column == column
    assert err.row == row
    assert isinstance(err.rule, str) and rule in err.rule
    message = str(err)
    assert f"`{column}`" in message
    assert f"row {row}" in message
    assert rule in message


@pytest.mark.parametrize(
    "data, column, row, rule", [case[1:] for case in BAD_ROWS], ids=[c[0] for c in BAD_ROWS]
)
def test_bad_values_in_a_renamed_dataframe_use_the_callers_names(data, column, row, rule):
    names = {"frequency": "n_repeat", "recency": "last_buy_week", "T": "age_weeks"}
    frame = pd.DataFrame(data, index=[f"id{i}" for i in range(6)]).rename(columns=names)
    with pytest.raises(InvalidDataError) as info:
        BetaGeoModel(columns=names).fit(frame)
    err = info.value
    assert err.column == names[column]
    assert err.row == row  # 0-based position, whatever the index
    assert f"`{names[column]}`" in str(err) and f"row {row}" in str(err)
    assert rule in str(err)


@pytest.mark.parametrize(
    "method, kwargs",
    [("probability_alive", {}), ("expected_purchases", {"t": 10.0})],
)
def test_predictions_validate_their_input_too(cdnow_model, method, kwargs):
    with pytest.raises(InvalidDataError) as info:
        getattr(cdnow_model, method)(**_with("recency", 5, 9.5), **kwargs)
    assert info.value.column == "recency" and info.value.row == 5


def test_mismatched_lengths():
    data = _good()
    data["T"] = data["T"][:-1]
    with pytest.raises(InvalidDataError) as info:
        BetaGeoModel().fit(**data)
    err = info.value
    assert err.column == "T"
    assert "5" in str(err) and "6" in str(err) and "length" in str(err)

    with pytest.raises(InvalidDataError) as info:
        BetaGeoModel().fit(**_good(), weights=np.ones(3))
    assert info.value.column == "weights"


def test_empty_input():
    empty = {k: np.array([]) for k in ("frequency", "recency", "T")}
    with pytest.raises(InvalidDataError, match="empty"):
        BetaGeoModel().fit(**empty)
    with pytest.raises(InvalidDataError, match="empty"):
        BetaGeoModel().fit(pd.DataFrame(empty))


def test_missing_column():
    frame = pd.DataFrame(_good())
    with pytest.raises(InvalidDataError) as info:
        BetaGeoModel().fit(frame.drop(columns="T"))
    err = info.value
    assert err.column == "T"
    assert "`T`" in str(err) and "missing" in str(err)
    assert "columns=" in str(err)  # says how to fix it

    with pytest.raises(InvalidDataError) as info:
        BetaGeoModel(columns={"recency": "t_x"}).fit(frame)
    assert info.value.column == "t_x" and "missing" in str(info.value)

    with pytest.raises(InvalidDataError) as info:
        BetaGeoModel().fit(frequency=_good()["frequency"], recency=_good()["recency"])
    assert info.value.column == "T"


def test_missing_weights_column_that_was_asked_for(cdnow):
    with pytest.raises(InvalidDataError) as info:
        BetaGeoModel(columns={"weights": "count"}).fit(cdnow)
    assert info.value.column == "count"


@pytest.mark.parametrize(
    "weights, row, rule",
    [
        (np.array([1.0, 1.0, -1.0, 1.0, 1.0, 1.0]), 2, ">= 0"),
        (np.array([1.0, np.nan, 1.0, 1.0, 1.0, 1.0]), 1, "finite"),
        (np.array([1.0, 1.0, 1.0, 1.0, np.inf, 1.0]), 4, "finite"),
        (np.zeros(6), None, "positive total"),
    ],
)
def test_bad_weights(weights, row, rule):
    with pytest.raises(InvalidDataError) as info:
        BetaGeoModel().fit(**_good(), weights=weights)
    assert info.value.column == "weights"
    assert info.value.row == row
    assert rule in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        ["a", "b", "c", "d", "e", "f"],
        pd.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], dtype=object),
        pd.to_datetime(["2020-01-01"] * 6),
        pd.to_timedelta([30] * 6, unit="D"),
    ],
    ids=["strings", "object", "datetime", "timedelta"],
)
def test_non_numeric_pandas_column(value):
    frame = pd.DataFrame(_good())
    frame["T"] = value
    with pytest.raises(InvalidDataError) as info:
        BetaGeoModel().fit(frame)
    assert info.value.column == "T"
    assert "numeric" in str(info.value)


def test_non_numeric_array_keyword():
    with pytest.raises(InvalidDataError) as info:
        BetaGeoModel().fit(**{**_good(), "frequency": np.array(["0", "1", "2", "0", "5", "x"])})
    assert info.value.column == "frequency" and "numeric" in str(info.value)


def _polars_T(kind):
    pl = pytest.importorskip("polars")
    import datetime

    frame = pl.DataFrame(_good())
    values = {
        "strings": pl.Series("T", ["30", "30", "30", "25", "forty", "9"]),
        "categorical": pl.Series("T", ["30", "30", "30", "25", "40", "9"]).cast(pl.Categorical),
        "date": pl.Series("T", [datetime.date(2020, 1, 1)] * 6),
    }[kind]
    return frame.with_columns(values)


@pytest.mark.parametrize("kind", ["strings", "categorical", "date"])
def test_non_numeric_polars_column(kind):
    with pytest.raises(InvalidDataError) as info:
        BetaGeoModel().fit(_polars_T(kind))
    assert info.value.column == "T" and "numeric" in str(info.value)


def test_datetime_array_keyword_is_rejected():
    data = _good()
    data["T"] = np.array(["2020-01-01"] * 6, dtype="datetime64[D]")
    with pytest.raises(InvalidDataError):
        BetaGeoModel(on_failure="ignore").fit(**data)


def test_data_and_keywords_together_or_wrong_container():
    frame = pd.DataFrame(_good())
    with pytest.raises(InvalidDataError, match="not both"):
        BetaGeoModel().fit(frame, frequency=frame["frequency"])
    with pytest.raises(InvalidDataError, match="DataFrame"):
        BetaGeoModel().fit(frame.to_numpy())
    with pytest.raises(InvalidDataError):
        BetaGeoModel().fit(frequency=np.zeros((2, 3)), recency=np.zeros(2), T=np.ones(2))


def test_bad_horizons_and_counts(cdnow_model):
    data = _good()
    with pytest.raises(InvalidDataError) as info:
        cdnow_model.expected_purchases(**data, t=-1.0)
    assert info.value.column == "t"
    with pytest.raises(InvalidDataError) as info:
        cdnow_model.expected_purchases(**data, t=[1.0, 2.0])
    assert info.value.column == "t" and "one per customer" in str(info.value)
    with pytest.raises(InvalidDataError):
        cdnow_model.expected_purchases_new_customer(np.nan)
    with pytest.raises(InvalidDataError) as info:
        cdnow_model.purchase_count_probability([0, 1.5], 39.0)
    assert info.value.column == "n" and info.value.row == 1


# --------------------------------------------------------------------------------------------
# panics
# --------------------------------------------------------------------------------------------


def test_panic_in_the_core_becomes_clv_error(cdnow, capfd):
    with pytest.raises(ClvError, match="boom") as info:
        clvrs._core._panic_for_test("boom")
    assert type(info.value).__module__ == "clvrs.exceptions"
    assert isinstance(info.value, Exception)
    assert "PanicException" not in type(info.value).__name__
    capfd.readouterr()  # the panic hook's report on stderr
    # The process is still usable.
    model = BetaGeoModel(n_jobs=2).fit(cdnow)
    assert model.log_likelihood_ == pytest.approx(PUBLISHED_LOG_LIKELIHOOD, abs=0.01)


# --------------------------------------------------------------------------------------------
# non-convergence
# --------------------------------------------------------------------------------------------


def test_no_warning_when_converged(cdnow):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = BetaGeoModel().fit(cdnow)
    assert model.converged_ is True


def test_non_convergence_warns(cdnow):
    with pytest.warns(ConvergenceWarning, match="did not converge") as record:
        model = BetaGeoModel(max_iter=1).fit(cdnow)
    assert model.converged_ is False
    assert model.n_iter_ == 1
    message = str(record[0].message)
    assert "max_iter" in message  # says what to try
    assert record[0].filename == __file__  # points at the caller's line
    assert "NOT CONVERGED" in repr(model)


def test_non_convergence_raises_when_asked(cdnow):
    with pytest.raises(ConvergenceError, match="did not converge") as info:
        BetaGeoModel(max_iter=1, on_failure="raise").fit(cdnow)
    assert isinstance(info.value, RuntimeError)


def test_non_convergence_ignored_when_asked(cdnow):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = BetaGeoModel(max_iter=1, on_failure="ignore").fit(cdnow)
    assert model.converged_ is False


# --------------------------------------------------------------------------------------------
# unfitted use
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attribute",
    ["params_", "covariance_", "standard_errors_", "log_likelihood_", "converged_", "n_iter_"],
)
def test_fitted_attributes_before_fit(attribute):
    model = BetaGeoModel()
    with pytest.raises(NotFittedError, match="fit") as info:
        getattr(model, attribute)
    assert isinstance(info.value, AttributeError)
    assert not hasattr(model, attribute)


def test_summary_before_fit():
    model = BetaGeoModel()
    with pytest.raises(NotFittedError, match="not fitted"):
        model.summary  # noqa: B018


def test_summary_frame_and_predictions_before_fit():
    model = BetaGeoModel()
    with pytest.raises(NotFittedError, match="not fitted"):
        model.summary_frame()
    with pytest.raises(NotFittedError):
        model.probability_alive(**_good())
    with pytest.raises(NotFittedError):
        model.expected_purchases_new_customer(10.0)
    # A misspelt method is an ordinary AttributeError, not a NotFittedError.
    with pytest.raises(AttributeError) as info:
        model.predict  # noqa: B018
    assert not isinstance(info.value, NotFittedError)


def test_failed_fit_leaves_the_model_unfitted():
    model = BetaGeoModel()
    with pytest.raises(InvalidDataError):
        model.fit(**_with("T", 0, np.nan))
    assert not hasattr(model, "params_")


# --------------------------------------------------------------------------------------------
# hyperparameters
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hyper, word",
    [
        ({"penalizer": -1}, "penalizer"),
        ({"penalizer": float("nan")}, "penalizer"),
        ({"on_failure": "bogus"}, "on_failure"),
        ({"n_jobs": 0}, "n_jobs"),
        ({"max_iter": 0}, "max_iter"),
        ({"tol": 0.0}, "tol"),
        ({"columns": {"freq": "x"}}, "freq"),
    ],
)
def test_invalid_hyperparameters(hyper, word):
    model = BetaGeoModel(**hyper)  # stored unmodified, checked when used
    assert model.get_params()[next(iter(hyper))] is next(iter(hyper.values()))
    with pytest.raises(InvalidParameterError, match=word) as info:
        model.fit(**_good())
    assert isinstance(info.value, ValueError)
    assert not hasattr(model, "params_")


def test_invalid_n_jobs_in_predictions():
    # Refused when the model is built from parameters...
    with pytest.raises(InvalidParameterError, match="n_jobs") as info:
        BetaGeoModel.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426, n_jobs=0)
    assert info.value.parameter == "n_jobs"
    # ... and by the core when it is set afterwards.
    model = BetaGeoModel.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426).set_params(n_jobs=0)
    with pytest.raises(InvalidParameterError, match="n_jobs") as info:
        model.probability_alive(**_good())
    assert info.value.parameter == "n_jobs"


def test_from_params_rejects_unknown_names_and_bad_hyperparameters():
    with pytest.raises(InvalidParameterError, match="beta") as info:
        BetaGeoModel.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426, beta=2)
    assert info.value.parameter == "beta"
    with pytest.raises(InvalidParameterError, match="tol"):
        BetaGeoModel.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426, tol=float("nan"))


def test_data_errors_on_pandas_input_name_the_index_label():
    frame = clvrs.datasets.load_cdnow_summary().head(10).copy()
    frame.loc[6, "recency"] = 99.0  # the customer labelled 6 is at position 5
    with pytest.raises(InvalidDataError) as info:
        BetaGeoModel().fit(frame)
    err = info.value
    assert (err.column, err.row, err.label) == ("recency", 5, 6)
    assert "row 5" in str(err) and "index label 6" in str(err)


def test_invalid_thread_environment_variable(monkeypatch):
    monkeypatch.setenv("CLVRS_NUM_THREADS", "many")
    with pytest.raises(InvalidParameterError, match="CLVRS_NUM_THREADS"):
        BetaGeoModel().fit(**_good())
    # An explicit n_jobs does not consult the variable.
    BetaGeoModel(n_jobs=1, on_failure="ignore").fit(**_good())
