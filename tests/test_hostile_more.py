"""A second, independent battery of hostile and extreme inputs (issue 25).

``tests/test_hostile_api.py`` sweeps every public function with wrong types one argument at a
time and checks that nothing untyped escapes. This file covers combinations it does not: pandas
frames with odd indexes and extension dtypes, polars frames, hand-edited model files, value
functions given inputs of mixed kinds, one-customer segments, bootstraps of tiny data, the
``clvrs.lifetimes`` fitters, the Dask/Spark entry points, ``n_jobs`` and ``CLVRS_NUM_THREADS``.

The contract checked: every input gives the exact answer (compared with the same computation on
plain float arrays) or a typed :class:`clvrs.ClvError` naming the caller's own argument or
column, within a budget of 30 s per call.
"""

from __future__ import annotations

import json
import math
import signal
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

import clvrs
import clvrs.distributed
from clvrs.exceptions import (
    ClvError,
    InvalidDataError,
    InvalidParameterError,
    ModelFileError,
)

BUDGET = 30


class _Timeout(Exception):
    pass


def _bounded(call: Callable[[], Any]) -> Any:
    """``call()`` with a budget of :data:`BUDGET` seconds (warnings silenced)."""

    def alarm(signum: int, frame: Any) -> None:
        raise _Timeout

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(BUDGET)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return call()
    except _Timeout:
        pytest.fail(f"no answer within {BUDGET} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _refused(call: Callable[[], Any], name: str, kind: type = ClvError) -> ClvError:
    """``call`` raises a typed error of ``kind`` naming ``name`` (its column or parameter)."""
    try:
        _bounded(call)
    except ClvError as exc:
        assert isinstance(exc, kind), f"{type(exc).__name__}: {exc}"
        assert isinstance(exc, (ValueError, TypeError, RuntimeError, AttributeError))
        blamed = {getattr(exc, "column", None), getattr(exc, "parameter", None)}
        assert name in blamed or isinstance(exc, ModelFileError), (
            f"blames {blamed}, not {name!r}: {exc}"
        )
        assert name in str(exc), str(exc)
        return exc
    except Exception as exc:  # noqa: BLE001 - the point of the battery
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")
    pytest.fail(f"accepted; expected an error naming {name!r}")


def _answer(call: Callable[[], Any]) -> Any:
    """``call()``, failing on any exception (with its type) instead of erroring."""
    try:
        return _bounded(call)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"refused a valid input: {type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    return clvrs.datasets.load_cdnow_summary().iloc[:200].copy()


@pytest.fixture(scope="module")
def bg(small: pd.DataFrame) -> clvrs.BetaGeoModel:
    return clvrs.BetaGeoModel().fit(small)


@pytest.fixture(scope="module")
def gg(small: pd.DataFrame) -> clvrs.GammaGammaModel:
    return clvrs.GammaGammaModel().fit(small[small["frequency"] > 0])


@pytest.fixture(scope="module")
def reference(small: pd.DataFrame, bg: clvrs.BetaGeoModel) -> np.ndarray:
    """P(alive) of ``small`` computed from plain float arrays."""
    arrays = {c: small[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")}
    return np.asarray(bg.probability_alive(**arrays))


# --------------------------------------------------------------------------------------------
# pandas: odd indexes and extension dtypes
# --------------------------------------------------------------------------------------------


def _indexed(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    n = len(frame)
    out = frame.reset_index(drop=True)
    if kind == "duplicated":
        out.index = pd.Index([7] * n)
    elif kind == "multi":
        out.index = pd.MultiIndex.from_arrays([np.arange(n) % 3, np.arange(n)], names=["g", "id"])
    elif kind == "strings":
        out.index = pd.Index([f"id{i}" for i in range(n)])
    elif kind == "dates":
        out.index = pd.date_range("2000-01-01", periods=n, freq="D")
    elif kind == "descending":
        out.index = pd.RangeIndex(n, 0, -1)
    elif kind == "float":
        out.index = pd.Index(np.arange(n) + 0.5)
    elif kind == "nan-label":
        out.index = pd.Index([np.nan] + list(range(1, n)), dtype=float)
    return out


@pytest.mark.parametrize(
    "kind", ["duplicated", "multi", "strings", "dates", "descending", "float", "nan-label"]
)
def test_predictions_keep_an_odd_index_and_the_exact_values(small, bg, reference, kind):
    frame = _indexed(small, kind)
    result = _answer(lambda: bg.probability_alive(frame))
    assert isinstance(result, pd.Series)
    assert result.index.equals(frame.index)
    np.testing.assert_allclose(result.to_numpy(), reference, rtol=1e-12)


@pytest.mark.parametrize("kind", ["duplicated", "multi", "strings"])
def test_fit_ignores_the_index(small, bg, kind):
    model = _answer(lambda: clvrs.BetaGeoModel().fit(_indexed(small, kind)))
    for name, value in bg.params_.items():
        assert model.params_[name] == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize(
    "dtype", ["Int64", "Float64", "int32", "uint8", "float32", "UInt16", "int64[pyarrow]"]
)
def test_extension_and_narrow_dtypes_give_the_exact_answer(small, bg, reference, dtype):
    if "pyarrow" in dtype:
        pytest.importorskip("pyarrow")
    frame = small.copy()
    frame["frequency"] = frame["frequency"].astype(dtype)
    result = _answer(lambda: bg.probability_alive(frame))
    np.testing.assert_allclose(np.asarray(result, dtype=float), reference, rtol=1e-12)


def test_a_categorical_column_is_refused_or_read_as_its_values(small, bg, reference):
    frame = small.copy()
    frame["frequency"] = frame["frequency"].astype("category")
    try:
        result = _bounded(lambda: bg.probability_alive(frame))
    except InvalidDataError as exc:
        assert exc.column == "frequency"
    else:
        np.testing.assert_allclose(np.asarray(result, dtype=float), reference, rtol=1e-12)


@pytest.mark.parametrize("dtype", ["Int64", "Float64", "boolean"])
@pytest.mark.parametrize("column", ["frequency", "recency", "T"])
def test_pd_na_in_a_nullable_column_names_column_and_row(small, bg, dtype, column):
    frame = small.iloc[:10].copy()
    values = frame[column].astype(float)
    if dtype == "boolean":
        values = (values > 0).astype("boolean")
        frame["frequency"] = (frame["frequency"] > 0).astype(float)
        frame["recency"] = np.where(frame["frequency"] > 0, frame["recency"], 0.0)
    else:
        values = values.round().astype(dtype) if dtype == "Int64" else values.astype(dtype)
        if column != "frequency":
            frame["recency"] = frame["recency"].round()
            frame["T"] = frame["T"].round()
    values.iloc[3] = pd.NA
    frame[column] = values
    err = _refused(lambda: bg.probability_alive(frame), column, InvalidDataError)
    assert err.row == 3


def test_a_boolean_frequency_is_read_as_0_and_1(small, bg):
    frame = small.iloc[:10].copy()
    frame["frequency"] = frame["frequency"] > 0
    frame["recency"] = np.where(frame["frequency"], frame["recency"], 0.0)
    as_float = frame.assign(frequency=frame["frequency"].astype(float))
    np.testing.assert_allclose(
        _answer(lambda: bg.probability_alive(frame)), bg.probability_alive(as_float), rtol=1e-14
    )


def test_non_unique_columns_are_named(small, bg):
    frame = pd.concat([small, small[["T"]]], axis=1)
    _refused(lambda: bg.probability_alive(frame), "T", InvalidDataError)
    _refused(lambda: clvrs.BetaGeoModel().fit(frame), "T", InvalidDataError)


def test_a_multiindex_on_the_columns(small, bg, reference):
    frame = small.copy()
    frame.columns = pd.MultiIndex.from_product([["x"], frame.columns])
    try:
        _bounded(lambda: bg.probability_alive(frame))
    except InvalidDataError as exc:
        assert exc.column == "frequency"
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")
    else:
        pytest.fail("a frame without a `frequency` column was accepted")


@pytest.mark.parametrize(
    "model",
    [clvrs.BetaGeoModel, clvrs.ParetoNBDModel, clvrs.ModifiedBetaGeoModel, clvrs.GammaGammaModel],
)
def test_an_empty_frame(small, model):
    frame = small.iloc[:0]
    _refused(lambda: model().fit(frame), "frequency", InvalidDataError)


def test_an_empty_frame_at_prediction(small, bg, gg):
    frame = small.iloc[:0]
    _refused(lambda: bg.probability_alive(frame), "frequency", InvalidDataError)
    _refused(lambda: gg.expected_average_spend(frame), "frequency", InvalidDataError)


@pytest.mark.parametrize(
    "model", [clvrs.BetaGeoModel, clvrs.ParetoNBDModel, clvrs.BetaGeoBetaBinomModel]
)
def test_all_zero_frequency(model):
    frame = pd.DataFrame({"frequency": [0, 0, 0], "recency": [0.0] * 3, "T": [5.0, 6.0, 7.0]})
    if model is clvrs.BetaGeoBetaBinomModel:
        frame = frame.rename(columns={"T": "periods"})
    _refused(lambda: model().fit(frame), "frequency", InvalidDataError)


@pytest.mark.parametrize(
    "model",
    [
        clvrs.BetaGeoModel,
        clvrs.ParetoNBDModel,
        clvrs.ModifiedBetaGeoModel,
        clvrs.GammaGompertzNBDModel,
    ],
)
def test_one_customer_fits_and_predicts_in_range(model):
    frame = pd.DataFrame({"frequency": [3], "recency": [20.0], "T": [30.0]}, index=["solo"])
    fitted = _answer(lambda: model().fit(frame))
    alive = _answer(lambda: fitted.probability_alive(frame))
    assert list(alive.index) == ["solo"]
    assert 0.0 <= float(alive.iloc[0]) <= 1.0
    assert math.isfinite(fitted.log_likelihood_)
    purchases = _answer(lambda: fitted.expected_purchases(frame, t=10))
    assert math.isfinite(float(purchases.iloc[0])) and float(purchases.iloc[0]) >= 0


# --------------------------------------------------------------------------------------------
# polars
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pl() -> Any:
    return pytest.importorskip("polars")


def test_polars_gives_polars_with_the_exact_values(pl, small, bg, reference):
    frame = pl.from_pandas(small.reset_index())
    result = _answer(lambda: bg.probability_alive(frame))
    assert isinstance(result, pl.Series)
    np.testing.assert_allclose(result.to_numpy(), reference, rtol=1e-12)


@pytest.mark.parametrize("column", ["frequency", "recency", "T"])
def test_polars_null_names_column_and_row(pl, small, bg, column):
    frame = pl.from_pandas(small.iloc[:10].reset_index())
    values = frame[column].to_list()
    values[4] = None
    frame = frame.with_columns(pl.Series(column, values))
    err = _refused(lambda: bg.probability_alive(frame), column, InvalidDataError)
    assert err.row == 4


def test_polars_nan_names_column_and_row(pl, small, bg):
    frame = pl.from_pandas(small.iloc[:10].reset_index())
    values = frame["T"].cast(pl.Float64).to_list()
    values[6] = float("nan")
    frame = frame.with_columns(pl.Series("T", values))
    err = _refused(lambda: bg.probability_alive(frame), "T", InvalidDataError)
    assert err.row == 6


@pytest.mark.parametrize("dtype", ["Int8", "UInt32", "Float32", "Boolean"])
def test_polars_dtypes(pl, small, bg, dtype):
    frame = small.iloc[:20].copy()
    if dtype == "Boolean":
        frame["frequency"] = (frame["frequency"] > 0).astype(float)
        frame["recency"] = np.where(frame["frequency"] > 0, frame["recency"], 0.0)
    expected = bg.probability_alive(frame).to_numpy()
    pframe = pl.from_pandas(frame.reset_index())
    pframe = pframe.with_columns(pframe["frequency"].cast(getattr(pl, dtype)))
    result = _answer(lambda: bg.probability_alive(pframe))
    np.testing.assert_allclose(result.to_numpy(), expected, rtol=1e-12)


def test_polars_text_column_and_missing_column(pl, small, bg):
    frame = pl.from_pandas(small.iloc[:5].reset_index())
    text = frame.with_columns(frame["T"].cast(pl.Utf8))
    _refused(lambda: bg.probability_alive(text), "T", InvalidDataError)
    _refused(lambda: bg.probability_alive(frame.drop("recency")), "recency", InvalidDataError)
    _refused(lambda: bg.probability_alive(frame.head(0)), "frequency", InvalidDataError)


def test_polars_lazy_frame(pl, small, bg):
    lazy = pl.from_pandas(small.iloc[:5].reset_index()).lazy()
    try:
        result = _bounded(lambda: bg.probability_alive(lazy))
    except InvalidDataError as exc:
        assert "data" in str(exc) or "DataFrame" in str(exc)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")
    else:
        np.testing.assert_allclose(
            np.asarray(result), bg.probability_alive(small.iloc[:5]).to_numpy()
        )


def test_polars_fit_equals_pandas_fit(pl, small, bg):
    model = _answer(lambda: clvrs.BetaGeoModel().fit(pl.from_pandas(small.reset_index())))
    for name, value in bg.params_.items():
        assert model.params_[name] == pytest.approx(value, rel=1e-9)


# --------------------------------------------------------------------------------------------
# model files edited by hand
# --------------------------------------------------------------------------------------------


def _saved(model: Any, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "model.json"
    model.save(path)
    return json.loads(path.read_text(encoding="utf-8"))


def _load(doc: Any, tmp_path: Path, text: str | None = None) -> Any:
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(doc) if text is None else text, encoding="utf-8")
    return clvrs.load(path)


def _edit(doc: dict[str, Any], keys: tuple[str, ...], value: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(doc))
    target = doc
    for key in keys[:-1]:
        target = target[key]
    if value is _DELETE:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return doc


_DELETE = object()

FILE_EDITS = {
    "param-string": (("params", "r"), "0.2"),
    "param-null": (("params", "r"), None),
    "param-negative": (("params", "alpha"), -3.0),
    "param-zero": (("params", "a"), 0.0),
    "param-list": (("params", "b"), [0.5]),
    "param-bool": (("params", "b"), True),
    "param-object": (("params", "b"), {"value": 0.5}),
    "param-missing": (("params", "r"), _DELETE),
    "param-extra": (("params", "s"), 1.0),
    "params-list": (("params",), [0.2, 3.6, 0.3, 0.7]),
    "params-null": (("params",), None),
    "params-missing": (("params",), _DELETE),
    "model-missing": (("model",), _DELETE),
    "model-number": (("model",), 3),
    "model-lowercase": (("model",), "betageomodel"),
    "format-missing": (("format",), _DELETE),
    "format-version-future": (("format_version",), 99),
    "format-version-string": (("format_version",), "1"),
    "format-version-float": (("format_version",), 1.5),
    "hyper-string": (("hyperparameters",), "none"),
    "hyper-penalizer-negative": (("hyperparameters", "penalizer"), -1.0),
    "hyper-penalizer-string": (("hyperparameters", "penalizer"), "0"),
    "hyper-max-iter-float": (("hyperparameters", "max_iter"), 10.5),
    "hyper-n-jobs-zero": (("hyperparameters", "n_jobs"), 0),
    "hyper-n-jobs-bool": (("hyperparameters", "n_jobs"), True),
    "hyper-n-jobs-string": (("hyperparameters", "n_jobs"), "4"),
    "hyper-on-failure": (("hyperparameters", "on_failure"), "ignore"),
    "hyper-columns-list": (("hyperparameters", "columns"), ["frequency"]),
    "hyper-columns-bad-role": (("hyperparameters", "columns"), {"nonsense": "x"}),
    "hyper-extra": (("hyperparameters", "learning_rate"), 0.1),
    "hyper-missing": (("hyperparameters",), _DELETE),
    "covariance-wrong-size": (("covariance",), [[1.0]]),
    "covariance-nan-string": (("covariance",), [["NaN"] * 4] * 4),
    "covariance-string": (("covariance",), "identity"),
    "fit-string": (("fit",), "yes"),
    "fit-loglik-string": (("fit", "log_likelihood"), "-1383"),
    "fit-n-obs-negative": (("fit", "n_observations"), -5.0),
    "fit-n-iter-string": (("fit", "n_iter"), "14"),
    "fit-converged-string": (("fit", "converged"), "true"),
    "fit-termination-number": (("fit", "termination"), 3),
    "fit-weakly-identified-string": (("fit", "weakly_identified"), "r"),
}


def _usable_or_refused(
    doc: dict[str, Any], tmp_path: Path, data: pd.DataFrame, typed_ok: bool = False
) -> None:
    """The edited file loads as a model whose predictions and repr work, or is refused
    (with ``typed_ok``, predictions may also refuse ``data`` with a typed error)."""
    try:
        model = _bounded(lambda: _load(doc, tmp_path))
    except ModelFileError:
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")
    try:
        _bounded(lambda: (repr(model), model.summary, model.probability_alive(data)))
    except ClvError as exc:
        if not typed_ok:
            pytest.fail(f"loaded, then failed: {type(exc).__name__}: {exc}")
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"loaded, then untyped {type(exc).__name__}: {exc}")


#: Edits that load as a usable model: a valid value, or an extra entry (ignored).
LOADABLE_EDITS = {"hyper-on-failure", "param-extra", "hyper-extra", "hyper-missing"}


@pytest.mark.parametrize("edit", sorted(FILE_EDITS))
def test_hand_edited_model_file(bg, small, tmp_path, edit):
    keys, value = FILE_EDITS[edit]
    doc = _edit(_saved(bg, tmp_path), keys, value)
    _usable_or_refused(doc, tmp_path, small.iloc[:20])
    if edit not in LOADABLE_EDITS:
        # text for numbers, wrong types and bad values are refused, not converted
        _refused(lambda: _load(doc, tmp_path), "edited.json", ModelFileError)


@pytest.mark.parametrize(
    "text",
    [
        "NaN",
        "[]",
        '"clvrs.model"',
        "null",
        "1e999",
        '{"format": "clvrs.model"}',
        '{"format": "clvrs.model", "format_version": 1}',
        '{"format": "clvrs.model", "format_version": 1, "model": "BetaGeoModel"}',
    ],
)
def test_model_file_that_is_barely_a_document(tmp_path, text):
    _refused(lambda: _load(None, tmp_path, text=text), "edited.json", ModelFileError)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e999", "1e-320"])
@pytest.mark.parametrize("param", ["r", "alpha", "a", "b"])
def test_model_file_with_non_finite_or_subnormal_params(bg, small, tmp_path, value, param):
    text = json.dumps(_edit(_saved(bg, tmp_path), ("params", param), 12345.678))
    text = text.replace("12345.678", value)
    if value == "1e-320":
        # a positive finite number: the model loads and predicts in range, or is refused
        try:
            model = _bounded(lambda: _load(None, tmp_path, text=text))
        except ModelFileError:
            return
        alive = _answer(lambda: model.probability_alive(small.iloc[:20]))
        assert np.all((alive >= 0) & (alive <= 1))
        return
    err = _refused(lambda: _load(None, tmp_path, text=text), "edited.json", ModelFileError)
    assert param in str(err)


@pytest.mark.parametrize("value", [1e-300, 1e300, 1e308])
def test_model_file_with_extreme_gamma_gamma_params(gg, small, tmp_path, value):
    doc = _edit(_saved(gg, tmp_path), ("params", "gamma"), value)
    doc = _edit(doc, ("covariance",), None)
    try:
        model = _bounded(lambda: _load(doc, tmp_path))
    except ModelFileError:
        return
    spend = _answer(lambda: model.expected_average_spend(small[small["frequency"] > 0].iloc[:5]))
    p, q = model.params_["p"], model.params_["q"]
    frame = small[small["frequency"] > 0].iloc[:5]
    x, mx = frame["frequency"].to_numpy(float), frame["monetary_value"].to_numpy(float)
    # E[M | x, mx] = (p (gamma + x mx)) / (p x + q - 1), written without overflow
    expected = value * (p / (p * x + q - 1)) + p * x * mx / (p * x + q - 1)
    np.testing.assert_allclose(np.asarray(spend), expected, rtol=1e-9)


def test_model_file_of_every_model_round_trips_after_a_null_covariance(tmp_path, small, bg):
    doc = _edit(_saved(bg, tmp_path), ("covariance",), None)
    model = _answer(lambda: _load(doc, tmp_path))
    np.testing.assert_allclose(model.probability_alive(small), bg.probability_alive(small))


@pytest.mark.parametrize(
    "columns",
    [{"frequency": 3}, {"frequency": ["a"]}, {"T": "x", "recency": "x"}, {"weights": 1.5}],
)
def test_model_file_with_odd_column_names(bg, small, tmp_path, columns):
    # names the data lacks: the prediction names the column (typed), nothing untyped escapes
    doc = _edit(_saved(bg, tmp_path), ("hyperparameters", "columns"), columns)
    _usable_or_refused(doc, tmp_path, small.iloc[:20], typed_ok=True)


# --------------------------------------------------------------------------------------------
# value functions with inputs of mixed kinds
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clv_reference(small, bg) -> np.ndarray:
    """CLV of ``small`` at a spend of 10 per transaction, from plain arrays."""
    arrays = {c: small[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T")}
    return np.asarray(
        clvrs.customer_lifetime_value(bg, np.full(len(small), 10.0), time=6, **arrays)
    )


def _spends(kind: str, small: pd.DataFrame, pl: Any = None) -> Any:
    n = len(small)
    return {
        "scalar": 10.0,
        "numpy-scalar": np.float32(10.0),
        "int": 10,
        "list": [10.0] * n,
        "array": np.full(n, 10.0),
        "series-same-index": pd.Series(10.0, index=small.index),
        "series-shuffled-index": pd.Series(10.0, index=small.index[::-1]),
        "Float64-series": pd.Series([10.0] * n, index=small.index, dtype="Float64"),
        "Int64-series": pd.Series([10] * n, index=small.index, dtype="Int64"),
        "polars-series": None if pl is None else pl.Series("spend", [10.0] * n),
        "0-d array": np.array(10.0),
    }[kind]


SPEND_KINDS = [
    "scalar",
    "numpy-scalar",
    "int",
    "list",
    "array",
    "series-same-index",
    "series-shuffled-index",
    "Float64-series",
    "Int64-series",
    "0-d array",
]


@pytest.mark.parametrize("kind", SPEND_KINDS)
def test_clv_spend_of_any_kind_gives_the_exact_values(small, bg, clv_reference, kind):
    spend = _spends(kind, small)
    result = _answer(lambda: clvrs.customer_lifetime_value(bg, spend, small, time=6))
    assert isinstance(result, pd.Series) and result.index.equals(small.index)
    np.testing.assert_allclose(result.to_numpy(dtype=float), clv_reference, rtol=1e-12)


def test_clv_polars_data_and_spends(pl, small, bg, clv_reference):
    frame = pl.from_pandas(small.reset_index())
    for spend in (pl.Series("s", [10.0] * len(small)), np.full(len(small), 10.0), 10.0):
        result = _answer(
            lambda spend=spend: clvrs.customer_lifetime_value(bg, spend, frame, time=6)
        )
        np.testing.assert_allclose(np.asarray(result, dtype=float), clv_reference, rtol=1e-12)


@pytest.mark.parametrize(
    "spend",
    [
        pd.Series(10.0, index=range(200)),  # positions, not customer ids: refused (shifted)
        pd.Series(10.0, index=[1] * 200),  # duplicated labels
        pd.Series([10.0] * 199 + [pd.NA], dtype="Float64"),
        np.full(199, 10.0),
        np.full((200, 1), 10.0),
        np.array(["10"] * 200),
        np.full(200, np.nan),
        np.full(200, -1.0),
        np.full(200, np.inf),
        float("nan"),
        -5.0,
        "10",
        None,
        complex(10, 1),
        [10.0, None] * 100,
    ],
    ids=lambda v: type(v).__name__ + str(np.shape(v)),
)
def test_clv_bad_spend_is_named(small, bg, spend):
    if isinstance(spend, pd.Series) and spend.dtype == "Float64":
        spend.index = small.index
    _refused(lambda: clvrs.customer_lifetime_value(bg, spend, small, time=6), "spend_model")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("time", 0),
        ("time", -1),
        ("time", 1.5),
        ("time", True),
        ("time", float("nan")),
        ("time", "12"),
        ("time", 10**12),
        ("time", 601),
        ("discount_rate", float("nan")),
        ("discount_rate", -1.0),
        ("discount_rate", float("inf")),
        ("discount_rate", "0.01"),
        ("discount_rate", True),
        ("margin", float("nan")),
        ("margin", float("inf")),
        ("margin", "1"),
        ("margin", None),
        ("margin", True),
        ("method", "continuous-ish"),
        ("method", None),
    ],
)
def test_clv_bad_options_are_named(small, bg, name, value):
    options = {"time": 6, "discount_rate": 0.01, "margin": 1.0, "method": "discrete", name: value}
    _refused(
        lambda: clvrs.customer_lifetime_value(bg, 10.0, small.iloc[:20], **options),
        name,
        InvalidParameterError,
    )


def test_clv_spend_model_predicts_on_an_odd_index(small, bg, gg):
    frame = _indexed(small, "duplicated")
    plain = clvrs.customer_lifetime_value(bg, gg, small, time=6).to_numpy()
    result = _answer(lambda: clvrs.customer_lifetime_value(bg, gg, frame, time=6))
    assert result.index.equals(frame.index)
    np.testing.assert_allclose(result.to_numpy(), plain, rtol=1e-12)


def test_clv_of_one_customer(small, bg, clv_reference):
    one = small.iloc[[0]]
    result = _answer(lambda: clvrs.customer_lifetime_value(bg, 10.0, one, time=6))
    assert float(result.iloc[0]) == pytest.approx(clv_reference[0], rel=1e-12)


@pytest.mark.parametrize(
    "values",
    [
        pd.Series([1.0] * 10),
        pd.Series([5.0]),
        pd.Series(np.arange(10.0), index=[0] * 10),
        pd.Series(np.arange(10.0), dtype="Float64"),
        np.arange(10.0),
        [3.0, 1.0, 2.0],
    ],
    ids=["constant", "one", "duplicated-index", "Float64", "array", "list"],
)
def test_clv_segments_degenerate_values(values):
    try:
        result = _bounded(lambda: clvrs.clv_segments(values, 4))
    except ClvError as exc:
        # too few distinct customers for 4 tiers: the count is refused, naming it
        assert getattr(exc, "parameter", None) == "segments" or exc.column == "values", str(exc)
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")
    assert len(result.labels) == len(np.asarray(values))
    assert not pd.isna(result.labels).any()


@pytest.mark.parametrize(
    "values",
    [
        pd.Series([1.0, np.nan, 2.0]),
        pd.Series([1.0, pd.NA, 2.0], dtype="Float64"),
        pd.Series([1.0, np.inf, 2.0]),
        pd.Series(["a", "b"]),
        pd.Series([], dtype=float),
        pd.Series([1.0, 2.0], index=pd.MultiIndex.from_tuples([(1, 1), (1, 1)])),
    ],
    ids=["nan", "NA", "inf", "text", "empty", "multi-duplicated"],
)
def test_clv_segments_bad_values(values):
    name = "values"
    try:
        result = _bounded(lambda: clvrs.clv_segments(values, 2))
    except ClvError as exc:
        assert name in str(exc), str(exc)
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")
    assert not pd.isna(result.labels).any(), "silently unsegmented customers"


@pytest.mark.parametrize(
    ("costs", "name"),
    [
        (pd.Series([10.0, 0.0]), "acquisition_cost"),
        (pd.Series([10.0, -1.0]), "acquisition_cost"),
        (pd.Series([10.0, pd.NA], dtype="Float64"), "acquisition_cost"),
        ("10", "acquisition_cost"),
    ],
)
def test_acquisition_budget_costs(costs, name):
    clv = pd.Series([100.0, 50.0])
    try:
        result = _bounded(lambda: clvrs.acquisition_budget(clv, costs))
    except ClvError as exc:
        assert name in str(exc), str(exc)
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")
    assert np.isfinite(result.select_dtypes("number").to_numpy(dtype=float)).all(), result


@pytest.mark.parametrize(
    ("target", "name"),
    [(0.0, "target_ratio"), (float("nan"), "target_ratio"), ("3", "target_ratio")],
)
def test_acquisition_budget_target(target, name):
    _refused(lambda: clvrs.acquisition_budget(pd.Series([1.0, 2.0]), target_ratio=target), name)


def test_acquisition_budget_with_polars_and_mixed_by(pl):
    clv = pd.Series([100.0, 50.0, 20.0], index=["a", "b", "c"])
    by = pl.Series("g", ["x", "y", "x"])
    result = _answer(lambda: clvrs.acquisition_budget(clv, by=by))
    expected = clvrs.acquisition_budget(clv, by=np.array(["x", "y", "x"]))
    pd.testing.assert_frame_equal(result, expected, check_names=False)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"lifespan": float("nan")}, "lifespan"),
        ({"lifespan": -1.0}, "lifespan"),
        ({"lifespan": "12"}, "lifespan"),
        ({"lifespan": 12, "margin": float("inf")}, "margin"),
    ],
)
def test_historical_clv_options(small, kwargs, name):
    _refused(lambda: clvrs.historical_clv(small, **kwargs), name)


@pytest.mark.parametrize("quantiles", [0, 1, -3, 2.5, True, "4", 10**6])
def test_rfm_segments_quantiles(small, quantiles):
    try:
        result = _bounded(lambda: clvrs.rfm_segments(small, quantiles))
    except ClvError as exc:
        assert "quantiles" in str(exc), str(exc)
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")
    assert len(result) == len(small)


@pytest.mark.parametrize("kind", ["duplicated", "multi", "one", "Int64-NA"])
def test_rfm_and_historical_on_odd_frames(small, kind):
    if kind == "one":
        frame = small.iloc[[0]]
    elif kind == "Int64-NA":
        frame = small.iloc[:10].copy()
        frame["frequency"] = frame["frequency"].astype("Int64")
        frame.iloc[2, 0] = pd.NA
        _refused(lambda: clvrs.rfm_segments(frame), "frequency")
        _refused(lambda: clvrs.historical_clv(frame, 12), "frequency")
        return
    else:
        frame = _indexed(small, kind)
    rfm = _answer(lambda: clvrs.rfm_segments(frame))
    assert rfm.index.equals(frame.index)
    hist = _answer(lambda: clvrs.historical_clv(frame, 12))
    assert hist.index.equals(frame.index)
    plain = clvrs.historical_clv(small.iloc[: len(frame)], 12).to_numpy()
    np.testing.assert_allclose(hist.to_numpy(), plain, rtol=1e-12)


# --------------------------------------------------------------------------------------------
# segments: one-customer segments, odd keys
# --------------------------------------------------------------------------------------------


def _grouped(small: pd.DataFrame) -> pd.DataFrame:
    frame = small.copy()
    frame["region"] = np.where(np.arange(len(frame)) % 2 == 0, "north", "south")
    frame.iloc[0, frame.columns.get_loc("region")] = "solo"  # a segment of one customer
    return frame


def test_a_one_customer_segment_below_min_customers_is_reported_and_nan(small):
    frame = _grouped(small)
    segmented = _answer(lambda: clvrs.fit_segments(clvrs.BetaGeoModel(), frame, "region"))
    assert segmented.fit_table.loc["solo", "status"] != "fitted"
    alive = _answer(lambda: segmented.probability_alive(frame))
    assert alive.index.equals(frame.index)
    solo = (frame["region"] == "solo").to_numpy()
    assert alive[solo].isna().all()  # documented: rows of segments without a model are NaN
    assert np.all((alive[~solo] >= 0) & (alive[~solo] <= 1)) and not alive[~solo].isna().any()


def test_min_customers_of_one_fits_the_one_customer_segment(small):
    frame = _grouped(small)
    segmented = _answer(
        lambda: clvrs.fit_segments(clvrs.BetaGeoModel(), frame, "region", min_customers=1)
    )
    alive = _answer(lambda: segmented.probability_alive(frame))
    assert np.all((alive >= 0) & (alive <= 1)) and not alive.isna().any()
    purchases = _answer(lambda: segmented.expected_purchases(frame, t=np.arange(len(frame)) + 1))
    assert np.isfinite(purchases).all()


@pytest.mark.parametrize("value", [0, -1, 0.5, float("nan"), "50", True, 10**9])
def test_fit_segments_min_customers(small, value):
    frame = _grouped(small)
    try:
        result = _bounded(
            lambda: clvrs.fit_segments(clvrs.BetaGeoModel(), frame, "region", min_customers=value)
        )
    except ClvError as exc:
        assert "min_customers" in str(exc), str(exc)
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")
    if value == 10**9:  # every segment too small: none fitted, every row NaN (documented)
        assert (result.fit_table["status"] != "fitted").all()
    else:  # 0 and 0.5: every segment fitted, the one-customer segment too
        assert not _bounded(lambda: result.probability_alive(frame)).isna().any()


@pytest.mark.parametrize(
    "by",
    ["categorical-unused", "Int64-NA", "polars", "all-one", "numpy-mixed", "tuple-keys"],
)
def test_fit_segments_odd_keys(small, pl, by):
    frame = small.iloc[:120].copy()
    n = len(frame)
    if by == "categorical-unused":
        key: Any = pd.Categorical(["a", "b"] * (n // 2), categories=["a", "b", "never"])
    elif by == "Int64-NA":
        key = pd.array([1, 2] * (n // 2), dtype="Int64")
        key[5] = pd.NA
    elif by == "polars":
        key = pl.Series("g", ["a", "b"] * (n // 2))
    elif by == "all-one":
        key = np.array(["x"] * n)
    elif by == "numpy-mixed":
        key = np.array(["a", 1] * (n // 2), dtype=object)
    else:
        key = pd.Series([("a", 1), ("b", 2)] * (n // 2), index=frame.index)
    try:
        segmented = _bounded(lambda: clvrs.fit_segments(clvrs.BetaGeoModel(), frame, key))
    except ClvError as exc:
        assert "by" in str(exc) or "segment" in str(exc), str(exc)
        assert by == "Int64-NA", f"refused a usable key: {exc}"
        assert getattr(exc, "row", None) == 5, str(exc)
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")
    assert by != "Int64-NA", "a missing key was accepted"
    alive = _answer(lambda: segmented.probability_alive(frame, by=key))
    assert len(alive) == n and not alive.isna().any()


def test_segmented_prediction_with_a_key_never_fitted(small):
    frame = _grouped(small)
    segmented = clvrs.fit_segments(clvrs.BetaGeoModel(), frame, "region")
    other = frame.iloc[:5].assign(region=["north", "south", "east", "north", "north"])
    err = _refused(lambda: segmented.probability_alive(other), "region", InvalidDataError)
    assert err.row == 2 and err.label == other.index[2]
    keys = np.array(["north", None, "south", "north", "north"], dtype=object)
    err = _refused(lambda: segmented.probability_alive(other, by=keys), "by", InvalidDataError)
    assert err.row == 1


# --------------------------------------------------------------------------------------------
# bootstrap with tiny data
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rows", [1, 2, 3])
def test_bootstrap_of_tiny_data(small, bg, rows):
    frame = small[small["frequency"] > 0].iloc[:rows]
    try:
        result = _bounded(lambda: clvrs.bootstrap(bg, frame, n_boot=5, seed=1))
    except ClvError as exc:
        assert isinstance(exc, (InvalidDataError, InvalidParameterError, clvrs.ConvergenceError))
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")
    assert np.isfinite(result.param_intervals.to_numpy(dtype=float)).all() or result.failed


def test_bootstrap_resamples_without_a_repeat_buyer(small, bg):
    # one repeat buyer among 9: most resamples have frequency 0 everywhere
    frame = small[small["frequency"] == 0].iloc[:9]
    frame = pd.concat([frame, small[small["frequency"] > 0].iloc[:1]])
    try:
        _bounded(lambda: clvrs.bootstrap(bg, frame, n_boot=20, seed=3))
    except ClvError:
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("n_boot", 0),
        ("n_boot", 1),
        ("n_boot", -5),
        ("n_boot", 2.5),
        ("n_boot", True),
        ("n_boot", 10**12),
        ("level", 0.0),
        ("level", 1.0),
        ("n_jobs", 0),
        ("n_jobs", True),
        ("n_jobs", 10**30),
        ("seed", 2**64),
        ("seed", 1.5),
    ],
)
def test_bootstrap_counts(small, bg, name, value):
    options = {"n_boot": 3, "seed": 0, name: value}
    try:
        _bounded(lambda: clvrs.bootstrap(bg, small.iloc[:40], **options))
    except ClvError as exc:
        assert getattr(exc, "parameter", None) == name, str(exc)
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")
    assert name == "n_boot" and value == 1 or name == "n_boot" and value == 0, "accepted"


def test_bootstrap_on_an_odd_index_equals_the_plain_one(small, bg):
    plain = clvrs.bootstrap(bg, small.iloc[:60], n_boot=4, seed=2)
    odd = _answer(
        lambda: clvrs.bootstrap(bg, _indexed(small.iloc[:60], "duplicated"), n_boot=4, seed=2)
    )
    pd.testing.assert_frame_equal(plain.param_intervals, odd.param_intervals)


# --------------------------------------------------------------------------------------------
# n_jobs and CLVRS_NUM_THREADS
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_jobs", [0, -2, True, False, 1.0, "2", 10**30, -(10**30), np.float64(2), 1025, 10**6]
)
def test_n_jobs_refused_at_construction_use(small, n_jobs):
    # 10**6 took over 30 s (the core started a pool of 4,096 threads); the limit is 1024
    err = _refused(
        lambda: clvrs.BetaGeoModel(n_jobs=n_jobs).fit(small), "n_jobs", InvalidParameterError
    )
    assert "1024" in str(err), str(err)


@pytest.mark.parametrize(
    "n_jobs",
    [
        1,
        2,
        -1,
        np.int64(2),
    ],
)
def test_n_jobs_accepted_gives_the_same_fit(small, bg, n_jobs):
    model = _answer(lambda: clvrs.BetaGeoModel(n_jobs=n_jobs).fit(small))
    for name, value in bg.params_.items():
        assert model.params_[name] == value  # bit-identical for any thread count


@pytest.mark.parametrize("n_jobs", [0, True, 10**30, 2.0, 10**6])
def test_n_jobs_set_after_fitting_is_refused_at_prediction(small, bg, n_jobs):
    model = clvrs.BetaGeoModel().fit(small)
    model.n_jobs = n_jobs
    _refused(lambda: model.probability_alive(small), "n_jobs", InvalidParameterError)


@pytest.mark.parametrize(
    "text",
    [
        "abc",
        "2.5",
        "1e3",
        "",
        "  ",
        "0",
        "1025",
        "-3",
        "99999999999999999999",
        "4 threads",
    ],
)
def test_the_pool_size_variable(small, bg, monkeypatch, text):
    monkeypatch.setenv("CLVRS_NUM_THREADS", text)
    try:
        model = _bounded(lambda: clvrs.BetaGeoModel().fit(small))
    except ClvError as exc:
        # junk in the variable is blamed on the variable, not on an n_jobs the caller never gave
        assert "CLVRS_NUM_THREADS" in str(exc), str(exc)
        assert text.strip() not in ("", "-3"), f"refused a usable value {text!r}"
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")
    assert text.strip() in ("", "-3"), f"junk {text!r} accepted"
    assert model.params_["r"] == bg.params_["r"]


def _thread_users(small: pd.DataFrame, bg: Any, n_jobs: Any) -> dict[str, Callable[[], Any]]:
    """Every way to hand clvrs a thread count, with ``n_jobs``."""
    log = clvrs.datasets.load_cdnow_transactions().iloc[:300]
    bgbb = clvrs.BetaGeoBetaBinomModel.from_params(alpha=1.2, beta=0.75, gamma=0.66, delta=2.8)
    bgbb.n_jobs = n_jobs
    halves = np.arange(len(small)) % 2
    return {
        "fit": lambda: clvrs.BetaGeoModel(n_jobs=n_jobs).fit(small),
        "spend-fit": lambda: clvrs.GammaGammaModel(n_jobs=n_jobs).fit(
            small[small["frequency"] > 0]
        ),
        "summarize_transactions": lambda: clvrs.summarize_transactions(
            log, "customer_id", "date", n_jobs=n_jobs
        ),
        "bootstrap": lambda: clvrs.bootstrap(bg, small, n_boot=2, seed=1, n_jobs=n_jobs),
        "fit_segments": lambda: clvrs.fit_segments(
            clvrs.BetaGeoModel(n_jobs=n_jobs), small, halves, min_customers=1
        ),
        "bgbb-new-customer": lambda: bgbb.expected_purchases_new_customer(3),
        "new-customer": lambda: clvrs.BetaGeoModel.from_params(
            **bg.params_, n_jobs=n_jobs
        ).expected_purchases_new_customer(3.0),
    }


@pytest.mark.parametrize(
    "use",
    [
        "fit",
        "spend-fit",
        "summarize_transactions",
        "bootstrap",
        "fit_segments",
        "bgbb-new-customer",
        "new-customer",
    ],
)
def test_one_thread_limit_everywhere(small, bg, monkeypatch, use):
    # n_jobs above 1024 is refused up front wherever it is taken (it built pools of up to 4,096
    # threads, 9 s for 2,048)...
    err = _refused(_thread_users(small, bg, 10**6)[use], "n_jobs", InvalidParameterError)
    assert "1024" in str(err), str(err)
    # ... and so is CLVRS_NUM_THREADS=0 or above 1024 when n_jobs is None, naming the variable
    # (0 was blamed on an `n_jobs` the caller never gave)
    for text in ("0", "5000"):
        monkeypatch.setenv("CLVRS_NUM_THREADS", text)
        err = _refused(
            _thread_users(small, bg, None)[use], "CLVRS_NUM_THREADS", InvalidParameterError
        )
        assert repr(text) in str(err), str(err)


def test_the_pool_size_variable_does_not_override_n_jobs(small, bg, monkeypatch):
    monkeypatch.setenv("CLVRS_NUM_THREADS", "junk")
    model = _answer(lambda: clvrs.BetaGeoModel(n_jobs=1).fit(small))
    assert model.params_["r"] == bg.params_["r"]


# --------------------------------------------------------------------------------------------
# clvrs.lifetimes fitters
# --------------------------------------------------------------------------------------------


def _lifetimes_fit(small: pd.DataFrame, **changes: Any) -> Any:
    from clvrs.lifetimes import BetaGeoFitter

    arguments = {c: small[c] for c in ("frequency", "recency", "T")}
    arguments.update(changes)
    return BetaGeoFitter().fit(**arguments)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("frequency", pd.Series([1, pd.NA, 2], dtype="Int64")),
        ("recency", pd.Series([1.0, None, 2.0], dtype="Float64")),
        ("T", "forty"),
        # a 2-D T of shape (1, 3) was flattened silently (the error then blamed recency)
        ("T", np.array([[30.0, 30.0, 30.0]])),
        ("frequency", pd.Series([1.5, 1.0, 2.0])),
        ("T", pd.Series([np.inf, 30.0, 30.0])),
        # a recency of another length was blamed on frequency
        ("recency", [1.0, 2.0]),
        ("frequency", pd.Series(["1", "2", "3"])),
    ],
)
def test_lifetimes_fit_bad_columns(small, column, value):
    three = small[small["frequency"] > 0].iloc[:3]
    arguments = {c: three[c].reset_index(drop=True) for c in ("frequency", "recency", "T")}
    arguments[column] = value
    from clvrs.lifetimes import BetaGeoFitter

    _refused(lambda: BetaGeoFitter().fit(**arguments), column)


def test_lifetimes_fit_with_odd_indexes_equals_clvrs(small, bg):
    from clvrs.lifetimes import BetaGeoFitter

    frame = _indexed(small, "duplicated")
    fitter = _answer(lambda: BetaGeoFitter().fit(frame["frequency"], frame["recency"], frame["T"]))
    for name in ("r", "alpha", "a", "b"):
        assert fitter.params_[name] == pytest.approx(bg.params_[name], rel=1e-6)
    alive = _answer(
        lambda: fitter.conditional_probability_alive(
            frame["frequency"], frame["recency"], frame["T"]
        )
    )
    np.testing.assert_allclose(
        np.asarray(alive, dtype=float), bg.probability_alive(small), rtol=1e-6
    )


@pytest.mark.parametrize(
    "t",
    [
        float("nan"),
        -1.0,
        "5",
        None,  # raised with parameter None
        np.inf,
    ],
)
def test_lifetimes_prediction_horizon(small, t):
    fitter = _lifetimes_fit(small)
    three = small.iloc[:3]
    _refused(
        lambda: fitter.conditional_expected_number_of_purchases_up_to_time(
            t, three["frequency"], three["recency"], three["T"]
        ),
        "t",
    )


# a bad penalizer_coef was reported as clvrs' `penalizer`, which lifetimes' fitters do not have
@pytest.mark.parametrize(
    ("name", "value"),
    [("penalizer_coef", -1.0), ("penalizer_coef", float("nan")), ("penalizer_coef", "0")],
)
def test_lifetimes_hyperparameters(small, name, value):
    from clvrs.lifetimes import BetaGeoFitter

    three = small[small["frequency"] > 0].iloc[:30]
    _refused(
        lambda: BetaGeoFitter(**{name: value}).fit(
            three["frequency"], three["recency"], three["T"]
        ),
        name,
    )


def test_lifetimes_gamma_gamma_with_a_zero_spend_repeat_buyer(small):
    from clvrs.lifetimes import GammaGammaFitter

    buyers = small[small["frequency"] > 0].iloc[:30].copy()
    buyers.iloc[4, buyers.columns.get_loc("monetary_value")] = 0.0
    err = _refused(
        lambda: GammaGammaFitter().fit(buyers["frequency"], buyers["monetary_value"]),
        "monetary_value",
    )
    assert err.row == 4


def test_lifetimes_bgbb_with_periods_below_recency():
    # said 'must not exceed periods', clvrs' name; lifetimes' argument is n_periods
    from clvrs.lifetimes import BetaGeoBetaBinomFitter

    err = _refused(
        lambda: BetaGeoBetaBinomFitter().fit([1, 2, 0], [3, 4, 0], [6, 3, 6]),
        "recency",
    )
    assert err.row == 1
    assert "n_periods" in str(err), str(err)


@pytest.mark.parametrize("method", ["conditional_expected_number_of_purchases_up_to_time",
                                    "conditional_probability_alive"])  # fmt: skip
def test_lifetimes_bgbb_predictions_name_n_periods(method):
    from clvrs.lifetimes import BetaGeoBetaBinomFitter
    from clvrs.lifetimes.datasets import load_donations

    donations = load_donations()
    fitter = BetaGeoBetaBinomFitter().fit(
        donations["frequency"], donations["recency"], donations["periods"], donations["weights"]
    )
    err = _refused(lambda: getattr(fitter, method)(2, [1, 2, 0], [3, 4, 0], [6, 3, 6]), "recency")
    assert err.row == 1
    assert "n_periods" in str(err) and "must not exceed periods" not in str(err), str(err)
    # valid histories give what the clvrs model gives
    model = clvrs.BetaGeoBetaBinomModel.from_params(**dict(zip(
        ("alpha", "beta", "gamma", "delta"), fitter.params_.to_numpy())))  # fmt: skip
    clvrs_method = {"conditional_expected_number_of_purchases_up_to_time": "expected_purchases",
                    "conditional_probability_alive": "probability_alive"}[method]  # fmt: skip
    expected = getattr(model, clvrs_method)(
        frequency=[1, 2, 0], recency=[3, 3, 0], periods=[6, 3, 6], m=2
    )
    np.testing.assert_allclose(
        getattr(fitter, method)(2, [1, 2, 0], [3, 3, 0], [6, 3, 6]), expected, rtol=1e-12
    )


def test_lifetimes_unfitted_prediction():
    from clvrs.lifetimes import BetaGeoFitter

    try:
        BetaGeoFitter().conditional_probability_alive(1, 2.0, 3.0)
    except ClvError:
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")
    pytest.fail("an unfitted fitter predicted")


# --------------------------------------------------------------------------------------------
# Dask and Spark entry points
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dd() -> Any:
    pytest.importorskip("dask")
    import dask

    dask.config.set(scheduler="synchronous")
    return pytest.importorskip("dask.dataframe")


def test_fit_dask_equals_the_plain_fit(dd, small, bg):
    model = _answer(
        lambda: clvrs.distributed.fit_dask(
            clvrs.BetaGeoModel(), dd.from_pandas(small, npartitions=3)
        )
    )
    for name, value in bg.params_.items():
        assert model.params_[name] == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize("summaries", ["pandas", "numpy", None, "path"])
def test_fit_dask_of_something_else(small, dd, summaries):
    value = {"pandas": small, "numpy": small.to_numpy(), None: None, "path": "summaries.csv"}[
        summaries
    ]
    _refused(lambda: clvrs.distributed.fit_dask(clvrs.BetaGeoModel(), value), "summaries")


@pytest.mark.parametrize("model", ["BetaGeoModel", None, 3])
def test_fit_dask_of_a_model_that_is_not_one(small, dd, model):
    frame = dd.from_pandas(small, npartitions=2)
    _refused(lambda: clvrs.distributed.fit_dask(model, frame), "model", InvalidParameterError)


def test_fit_dask_missing_column(small, dd):
    frame = dd.from_pandas(small.drop(columns="recency"), npartitions=2)
    _refused(
        lambda: clvrs.distributed.fit_dask(clvrs.BetaGeoModel(), frame), "recency", InvalidDataError
    )


@pytest.mark.parametrize("column", ["frequency", "recency", "T"])
def test_fit_dask_refuses_a_missing_value_instead_of_dropping_its_row(small, dd, column):
    frame = small.copy()
    frame[column] = frame[column].astype(float)
    frame.iloc[7, frame.columns.get_loc(column)] = np.nan
    _refused(
        lambda: clvrs.distributed.fit_dask(
            clvrs.BetaGeoModel(), dd.from_pandas(frame, npartitions=3)
        ),
        column,
        InvalidDataError,
    )


def test_fit_dask_weights_column(small, dd, bg):
    frame = small.assign(weights=2.0)
    model = _answer(
        lambda: clvrs.distributed.fit_dask(
            clvrs.BetaGeoModel(), dd.from_pandas(frame, npartitions=3)
        )
    )
    for name, value in bg.params_.items():
        assert model.params_[name] == pytest.approx(value, rel=1e-6)
    bad = small.assign(weights=1.0)
    bad.iloc[3, bad.columns.get_loc("weights")] = -1.0
    _refused(
        lambda: clvrs.distributed.fit_dask(
            clvrs.BetaGeoModel(), dd.from_pandas(bad, npartitions=3)
        ),
        "weights",
        InvalidDataError,
    )


@pytest.mark.parametrize("horizon", [float("nan"), -1.0, "1", None])
def test_score_dask_checks_its_horizon_up_front(small, dd, bg, horizon):
    frame = dd.from_pandas(small, npartitions=2)
    _refused(lambda: clvrs.distributed.score_dask(bg, frame, horizon=horizon), "horizon")


def test_score_dask_of_an_unfitted_model_or_wrong_spend(small, dd, bg):
    frame = dd.from_pandas(small, npartitions=2)
    with pytest.raises(clvrs.NotFittedError):
        _bounded(lambda: clvrs.distributed.score_dask(clvrs.BetaGeoModel(), frame))
    _refused(lambda: clvrs.distributed.score_dask(bg, frame, spend_model=bg), "spend_model")


def test_score_dask_equals_the_plain_scores(small, dd, bg):
    scored = _answer(
        lambda: clvrs.distributed.score_dask(
            bg, dd.from_pandas(small, npartitions=3), horizon=5
        ).compute()
    )
    np.testing.assert_allclose(
        scored["probability_alive"].sort_index().to_numpy(), bg.probability_alive(small).to_numpy()
    )


def test_summarize_transactions_dask_missing_column(dd):
    log = pd.DataFrame(
        {"id": [1, 1, 2], "date": pd.to_datetime(["2020-01-01", "2020-02-01", "2020-01-05"])}
    )
    frame = dd.from_pandas(log, npartitions=1)
    _refused(
        lambda: clvrs.distributed.summarize_transactions_dask(frame, "id", "when"),
        "when",
        InvalidDataError,
    )
    _refused(
        lambda: clvrs.distributed.summarize_transactions_dask(frame, "customer", "date"),
        "customer",
        InvalidDataError,
    )


@pytest.fixture(scope="module")
def spark() -> Any:
    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    try:
        session = (
            SparkSession.builder.master("local[1]")
            .appName("clvrs-hostile")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .getOrCreate()
        )
    except Exception as exc:  # noqa: BLE001 - no Java, no Spark
        pytest.skip(f"no local Spark session: {exc}")
    yield session


def test_spark_entry_points_with_bad_input(spark, small, bg):
    frame = spark.createDataFrame(small.reset_index())
    _refused(lambda: clvrs.distributed.fit_spark(clvrs.BetaGeoModel(), small), "summaries")
    _refused(
        lambda: clvrs.distributed.fit_spark(clvrs.BetaGeoModel(), frame.drop("T")),
        "T",
        InvalidDataError,
    )
    _refused(
        lambda: clvrs.distributed.score_spark(bg, frame, "customer"), "customer", InvalidDataError
    )
    _refused(
        lambda: clvrs.distributed.score_spark(bg, frame, "customer_id", horizon=-1.0), "horizon"
    )
    with_null = small.reset_index().astype({"T": float})
    with_null.loc[4, "T"] = None
    nulls = spark.createDataFrame(with_null)
    _refused(
        lambda: clvrs.distributed.fit_spark(clvrs.BetaGeoModel(), nulls), "T", InvalidDataError
    )


# --------------------------------------------------------------------------------------------
# covariates, intervals, holdout and subscriptions with odd frames
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_size(small: pd.DataFrame) -> pd.DataFrame:
    return small.assign(size=np.linspace(-1.0, 1.0, len(small)))


@pytest.fixture(scope="module")
def bg_cov(with_size: pd.DataFrame) -> clvrs.BetaGeoModel:
    return clvrs.BetaGeoModel().fit(with_size, purchase_covariates=["size"])


@pytest.mark.parametrize("dtype", ["Float64", "float32", "category", "boolean-NA", "Int64-NA"])
def test_covariate_column_dtypes(with_size, bg_cov, dtype):
    frame = with_size.copy()
    expected = bg_cov.probability_alive(frame).to_numpy()
    if dtype == "Float64":
        frame["size"] = frame["size"].astype("Float64")
    elif dtype == "float32":
        frame["size"] = frame["size"].astype("float32")
        expected = bg_cov.probability_alive(frame.assign(size=frame["size"].astype(float)))
    elif dtype == "category":
        frame["size"] = frame["size"].astype("category")
    elif dtype == "boolean-NA":
        frame["size"] = (frame["size"] > 0).astype("boolean")
        frame.iloc[3, frame.columns.get_loc("size")] = pd.NA
    else:
        frame["size"] = frame["size"].round().astype("Int64")
        frame.iloc[3, frame.columns.get_loc("size")] = pd.NA
    try:
        result = _bounded(lambda: bg_cov.probability_alive(frame))
    except InvalidDataError as exc:
        assert exc.column == "size", str(exc)
        if dtype.endswith("-NA"):
            assert exc.row == 3, str(exc)
        else:
            assert dtype == "category", f"refused a numeric covariate: {exc}"
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")
    assert not dtype.endswith("-NA"), "a missing covariate was accepted"
    np.testing.assert_allclose(np.asarray(result, dtype=float), np.asarray(expected), rtol=1e-6)


def test_covariate_missing_at_prediction_and_duplicated_index(with_size, bg_cov):
    _refused(
        lambda: bg_cov.probability_alive(with_size.drop(columns="size")), "size", InvalidDataError
    )
    frame = _indexed(with_size, "duplicated")
    result = _answer(lambda: bg_cov.probability_alive(frame))
    np.testing.assert_allclose(result.to_numpy(), bg_cov.probability_alive(with_size).to_numpy())


@pytest.mark.parametrize("kind", ["duplicated", "multi", "strings"])
def test_prediction_interval_on_an_odd_index(small, bg, kind):
    frame = _indexed(small.iloc[:30], kind)
    plain = clvrs.prediction_interval(bg, "probability_alive", small.iloc[:30])
    result = _answer(lambda: clvrs.prediction_interval(bg, "probability_alive", frame))
    assert result.index.equals(frame.index)
    np.testing.assert_allclose(result.to_numpy(dtype=float), plain.to_numpy(dtype=float))


def test_prediction_interval_with_polars(pl, small, bg):
    frame = pl.from_pandas(small.iloc[:30].reset_index())
    plain = clvrs.prediction_interval(bg, "probability_alive", small.iloc[:30])
    result = _answer(lambda: clvrs.prediction_interval(bg, "probability_alive", frame))
    np.testing.assert_allclose(
        np.asarray(result.to_numpy(), dtype=float), plain.to_numpy(dtype=float)
    )


@pytest.fixture(scope="module")
def split() -> pd.DataFrame:
    log = clvrs.datasets.load_cdnow_transactions()
    log = log[log["customer_id"] <= 300]
    return clvrs.calibration_and_holdout(
        log, "customer_id", "date", "1997-09-30", "1998-06-30", datetime_format="%Y%m%d"
    )


@pytest.mark.parametrize("kind", ["duplicated", "strings", "Int64"])
def test_holdout_evaluation_on_odd_frames(split, kind):
    model = clvrs.BetaGeoModel().fit(
        frequency=split["frequency_cal"], recency=split["recency_cal"], T=split["T_cal"]
    )
    model.time_unit_ = getattr(split, "attrs", {}).get("time_unit", model.time_unit_)
    plain = _answer(lambda: clvrs.holdout_evaluation(model, split))
    if kind == "Int64":
        frame = split.astype({"frequency_cal": "Int64", "frequency_holdout": "Int64"})
    else:
        frame = split.copy()
        frame.index = _indexed(split, kind).index
    frame.attrs = dict(split.attrs)
    result = _answer(lambda: clvrs.holdout_evaluation(model, frame))
    pd.testing.assert_series_equal(result.metrics, plain.metrics)


@pytest.mark.parametrize(
    ("records", "name"),
    [
        (
            pd.DataFrame({"periods": pd.array([1, pd.NA, 3], dtype="Int64"), "churned": [1, 0, 1]}),
            "periods",
        ),
        (
            pd.DataFrame(
                {"periods": [1, 2, 3], "churned": pd.array([True, pd.NA, False], dtype="boolean")}
            ),
            "churned",
        ),
        (pd.DataFrame({"periods": [1, 2, 3], "churned": [1, 2, 0]}), "churned"),
        (pd.DataFrame({"periods": [1.5, 2, 3], "churned": [1, 0, 0]}), "periods"),
        (pd.DataFrame({"periods": [], "churned": []}), "periods"),
    ],
    ids=["periods-NA", "churned-NA", "churned-2", "periods-fraction", "empty"],
)
def test_subscription_records(records, name):
    _refused(lambda: clvrs.ShiftedBetaGeoModel().fit(records), name, InvalidDataError)


@pytest.mark.parametrize("survivors", [[1000, 1200], [1000, -1], [1000, np.nan], [], [1000]])
def test_subscription_survivors(survivors):
    _refused(
        lambda: clvrs.ShiftedBetaGeoModel().fit(survivors=survivors), "survivors", InvalidDataError
    )


@pytest.mark.parametrize(
    "amount",
    # Scale-equivariant: amounts times a give gamma times a, the same p and q and spends times
    # a (amounts near 1e299 once fitted p = 3.6e167 and reported convergence).
    [1e-300, 1e299, 1e-5, 1e5],
)
def test_gamma_gamma_extreme_amounts_scale(small, gg, amount):
    buyers = small[small["frequency"] > 0].iloc[:50]
    scaled = buyers.assign(monetary_value=buyers["monetary_value"] * amount)
    fitted = _answer(lambda: clvrs.GammaGammaModel().fit(scaled))
    plain = clvrs.GammaGammaModel().fit(buyers)
    spend = _answer(lambda: fitted.expected_average_spend(scaled))
    assert np.isfinite(spend).all()
    np.testing.assert_allclose(
        spend.to_numpy() / amount, plain.expected_average_spend(buyers).to_numpy(), rtol=1e-4
    )


# --------------------------------------------------------------------------------------------
# more model files and mixed pairs
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sbg() -> clvrs.ShiftedBetaGeoModel:
    return clvrs.ShiftedBetaGeoModel().fit(survivors=[1000, 631, 468, 382, 326, 289, 262, 241])


@pytest.mark.parametrize(
    ("keys", "value"),
    [
        (("params", "alpha"), -1.0),
        (("params", "beta"), "1"),
        (("params", "gamma"), 1.0),
        (("hyperparameters", "n_jobs"), 4),
        (("hyperparameters", "columns"), {"survivors": "x"}),
        (("model",), "BetaDiscreteWeibullModel"),
        (("fit", "n_observations"), "1000"),
    ],
)
def test_hand_edited_subscription_model_file(sbg, tmp_path, keys, value):
    doc = _edit(_saved(sbg, tmp_path), keys, value)
    try:
        model = _bounded(lambda: _load(doc, tmp_path))
    except ModelFileError:
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")
    try:
        _bounded(lambda: (repr(model), model.summary, model.survival(np.arange(5))))
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"loaded, then {type(exc).__name__}: {exc}")


@pytest.mark.parametrize(
    ("keys", "value"),
    [
        (("params", "q"), 0.5),  # no finite mean: loads, and the spend is refused (typed)
        (("params", "p"), None),
        (("params", "gamma"), "16"),
        (("fit", "n_excluded"), "none"),
    ],
)
def test_hand_edited_spend_model_file(gg, small, tmp_path, keys, value):
    doc = _edit(_saved(gg, tmp_path), keys, value)
    doc["covariance"] = None
    try:
        model = _bounded(lambda: _load(doc, tmp_path))
    except ModelFileError:
        return
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"untyped {type(exc).__name__}: {exc}")
    buyers = small[small["frequency"] > 0]
    try:
        _bounded(lambda: (repr(model), model.expected_average_spend(buyers)))
    except InvalidParameterError as exc:
        assert exc.parameter == "q" and keys == ("params", "q"), str(exc)
    except Exception as exc:  # noqa: BLE001
        pytest.fail(f"loaded, then {type(exc).__name__}: {exc}")


def test_segmented_model_file_edited(small, tmp_path):
    frame = _grouped(small)
    segmented = clvrs.fit_segments(clvrs.BetaGeoModel(), frame, "region")
    path = tmp_path / "segments.json"
    segmented.save(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    text = json.dumps(doc)
    for broken in (text.replace('"r":', '"rr":', 1), text[: len(text) // 2], "{}", "[]"):
        path.write_text(broken, encoding="utf-8")
        try:
            _bounded(lambda: clvrs.load(path))
        except ModelFileError:
            continue
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"untyped {type(exc).__name__}: {exc}")
        pytest.fail("a broken SegmentedModel file loaded")


def test_clv_polars_spend_with_pandas_data_and_pandas_spend_with_polars_data(
    pl, small, bg, clv_reference
):
    spend = pl.Series("s", [10.0] * len(small))
    result = _answer(lambda: clvrs.customer_lifetime_value(bg, spend, small, time=6))
    np.testing.assert_allclose(result.to_numpy(), clv_reference, rtol=1e-12)
    frame = pl.from_pandas(small.reset_index())
    shuffled = pd.Series(10.0, index=small.index[::-1])
    result = _answer(lambda: clvrs.customer_lifetime_value(bg, shuffled, frame, time=6))
    np.testing.assert_allclose(np.asarray(result, dtype=float), clv_reference, rtol=1e-12)


def test_acquisition_budget_costs_by_group():
    clv = pd.Series([100.0, 50.0, 20.0], index=["a", "b", "c"])
    by = pd.Series(["x", "y", "x"], index=clv.index)
    costs = pd.Series({"x": 10.0, "y": 5.0})
    expected = clvrs.acquisition_budget(clv, costs, by=by)
    result = _answer(lambda: clvrs.acquisition_budget(clv, costs.iloc[::-1], by=by.iloc[::-1]))
    pd.testing.assert_frame_equal(result, expected)
    _refused(lambda: clvrs.acquisition_budget(clv, {"x": 10.0}, by=by), "acquisition_cost")
    _refused(
        lambda: clvrs.acquisition_budget(clv, {"x": 10.0, "y": "5"}, by=by), "acquisition_cost"
    )


# --------------------------------------------------------------------------------------------
# transaction logs in odd frames
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [1, 1, 2, 3, 3, 3],
            "date": pd.to_datetime(
                ["2020-01-01", "2020-02-01", "2020-01-05", "2020-01-02", "2020-01-20", "2020-03-01"]
            ),
            "amount": [10.0, 20.0, 5.0, 7.0, 8.0, 9.0],
        }
    )


@pytest.fixture(scope="module")
def log_summary(log: pd.DataFrame) -> pd.DataFrame:
    return clvrs.summarize_transactions(
        log, "id", "date", "amount", observation_period_end="2020-03-31"
    )


@pytest.mark.parametrize(
    "kind",
    ["duplicated-index", "categorical-id", "string-id", "Int64-amount", "Float64-amount", "polars"],
)
def test_summaries_of_odd_logs_are_exact(pl, log, log_summary, kind):
    frame: Any = log.copy()
    if kind == "duplicated-index":
        frame.index = [0] * len(frame)
    elif kind == "categorical-id":
        frame["id"] = frame["id"].astype("category")
    elif kind == "string-id":
        frame["id"] = frame["id"].astype(str)
    elif kind == "Int64-amount":
        frame["amount"] = frame["amount"].astype("Int64")
    elif kind == "Float64-amount":
        frame["amount"] = frame["amount"].astype("Float64")
    else:
        frame = pl.from_pandas(log)
    result = _answer(
        lambda: clvrs.summarize_transactions(
            frame, "id", "date", "amount", observation_period_end="2020-03-31"
        )
    )
    if kind == "polars":
        result = (
            result.to_pandas().set_index("id") if "id" in result.columns else result.to_pandas()
        )
    for column in ("frequency", "recency", "T", "monetary_value"):
        np.testing.assert_allclose(
            np.asarray(result[column], dtype=float), log_summary[column].to_numpy(), rtol=1e-12
        )


@pytest.mark.parametrize(
    ("column", "value", "name"),
    [
        ("amount", pd.NA, "amount"),
        ("id", None, "id"),
        ("amount", "ten", "amount"),
        ("amount", np.inf, "amount"),
    ],
)
def test_bad_values_in_a_log_are_named(log, column, value, name):
    frame = log.astype({"amount": object, "id": object})
    frame.iloc[2, frame.columns.get_loc(column)] = value
    err = _refused(
        lambda: clvrs.summarize_transactions(frame, "id", "date", "amount"), name, InvalidDataError
    )
    assert err.row in (None, 2), str(err)


def test_an_empty_log_and_a_one_row_log(log):
    _refused(
        lambda: clvrs.summarize_transactions(log.iloc[:0], "id", "date"), "id", InvalidDataError
    )
    one = _answer(lambda: clvrs.summarize_transactions(log.iloc[:1], "id", "date"))
    assert one["frequency"].tolist() == [0.0] and one["T"].tolist() == [0.0]


@pytest.mark.parametrize("customers", [np.array([np.nan, 5.0]), np.array([-1.0]), "10", None])
def test_simulate_ages(bg, customers):
    _refused(lambda: bg.simulate(customers, seed=1), "T")


def test_simulate_no_customers_is_an_empty_table(bg):
    result = _answer(lambda: bg.simulate(np.array([]), seed=1))
    assert len(result) == 0 and list(result.columns) == ["frequency", "recency", "T"]


# --------------------------------------------------------------------------------------------
# clvrs.lifetimes with mixed inputs; from_params with numpy numbers
# --------------------------------------------------------------------------------------------


def test_lifetimes_clv_with_mixed_inputs(small):
    from clvrs.lifetimes import BetaGeoFitter, GammaGammaFitter

    buyers = small[small["frequency"] > 0]
    bgf = BetaGeoFitter().fit(small["frequency"], small["recency"], small["T"])
    ggf = GammaGammaFitter().fit(buyers["frequency"], buyers["monetary_value"])
    plain = ggf.customer_lifetime_value(
        bgf, small["frequency"], small["recency"], small["T"], small["monetary_value"], time=3
    )
    arrays = _answer(
        lambda: ggf.customer_lifetime_value(
            bgf,
            small["frequency"].to_numpy(),
            small["recency"].to_numpy(),
            small["T"].to_numpy(),
            small["monetary_value"].to_numpy(),
            time=3,
        )
    )
    np.testing.assert_allclose(np.asarray(arrays, dtype=float), np.asarray(plain, dtype=float))
    shifted = small["monetary_value"].reset_index(drop=True)  # positions, not customer ids
    _refused(
        lambda: ggf.customer_lifetime_value(
            bgf, small["frequency"], small["recency"], small["T"], shifted, time=3
        ),
        "monetary_value",
    )


@pytest.mark.parametrize(
    "params",
    [
        {"r": np.float32(0.2), "alpha": np.int64(4), "a": np.float64(0.8), "b": 2},
        {"r": np.array(0.2), "alpha": 4.0, "a": 0.8, "b": 2.4},
    ],
)
def test_from_params_with_numpy_numbers(small, params):
    model = _answer(lambda: clvrs.BetaGeoModel.from_params(**params))
    plain = clvrs.BetaGeoModel.from_params(
        **{
            k: float(np.asarray(v, dtype=np.float32 if k == "r" else float))
            for k, v in params.items()
        }
    )
    np.testing.assert_allclose(model.probability_alive(small), plain.probability_alive(small))


@pytest.mark.parametrize(
    "params",
    [
        {"r": np.array([0.2]), "alpha": 4.0, "a": 0.8, "b": 2.4},
        {"r": True, "alpha": 4.0, "a": 0.8, "b": 2.4},
        {"r": "0.2", "alpha": 4.0, "a": 0.8, "b": 2.4},
        {"r": complex(0.2, 0), "alpha": 4.0, "a": 0.8, "b": 2.4},
        {"r": pd.NA, "alpha": 4.0, "a": 0.8, "b": 2.4},
    ],
    ids=["array", "bool", "text", "complex", "NA"],
)
def test_from_params_of_the_wrong_kind(params):
    _refused(lambda: clvrs.BetaGeoModel.from_params(**params), "r", InvalidParameterError)


def test_compare_models_fitted_to_different_data(small, bg):
    other = clvrs.BetaGeoModel().fit(small.iloc[:100])
    pnbd = clvrs.ParetoNBDModel().fit(small)
    _refused(lambda: clvrs.compare_models([bg, other]), "models", InvalidParameterError)
    table = _answer(
        lambda: clvrs.compare_models([bg, pnbd, clvrs.BetaGeoModel.from_params(**bg.params_)])
    )
    assert len(table) == 3


def test_clv_horizon_is_bounded_and_the_longest_one_is_valued(bg, small):
    # The discrete CLV costs time^2 (a series per month whose length grows with the month):
    # horizons past 50 years are refused with the limit and the continuous method named ...
    err = _refused(
        lambda: clvrs.customer_lifetime_value(bg, 10.0, small.iloc[:1], time=100_000), "time"
    )
    assert "600" in str(err) and "continuous" in str(err)
    # ... and the longest one allowed is valued: finite, and no less than at 300 months.
    rows = small.iloc[:3]
    longest = clvrs.customer_lifetime_value(bg, 10.0, rows, time=clvrs.value.MAX_DISCRETE_MONTHS)
    shorter = clvrs.customer_lifetime_value(bg, 10.0, rows, time=300)
    assert np.all(np.isfinite(longest)) and np.all(longest >= shorter)


# --------------------------------------------------------------------------------------------
# polars through the higher-level functions
# --------------------------------------------------------------------------------------------


def test_polars_weights_null_and_categorical(pl, small, bg):
    frame = pl.from_pandas(small.reset_index())
    weights = pl.Series("weights", [1] * (len(small) - 1) + [None])
    err = _refused(
        lambda: clvrs.BetaGeoModel().fit(frame.with_columns(weights)), "weights", InvalidDataError
    )
    assert err.row == len(small) - 1
    categorical = frame.with_columns(pl.col("frequency").cast(pl.Utf8).cast(pl.Categorical))
    _refused(lambda: bg.probability_alive(categorical), "frequency", InvalidDataError)


def test_polars_segments_and_bootstrap(pl, small, bg):
    frame = small.assign(g=np.where(np.arange(len(small)) % 2 == 0, "a", "b"))
    plain = clvrs.fit_segments(clvrs.BetaGeoModel(), frame, "g")
    polars_frame = pl.from_pandas(frame.reset_index())
    segmented = _answer(lambda: clvrs.fit_segments(clvrs.BetaGeoModel(), polars_frame, "g"))
    np.testing.assert_allclose(
        np.asarray(segmented.probability_alive(polars_frame), dtype=float),
        plain.probability_alive(frame).to_numpy(),
    )
    boot = _answer(lambda: clvrs.bootstrap(bg, pl.from_pandas(small.iloc[:60]), n_boot=3, seed=4))
    expected = clvrs.bootstrap(bg, small.iloc[:60], n_boot=3, seed=4)
    pd.testing.assert_frame_equal(boot.param_intervals, expected.param_intervals)


@pytest.mark.parametrize("other", ["purchase_covariates", "dropout_covariates"])
def test_a_covariate_both_tied_and_per_process_is_refused(with_size, other):
    # it was dropped from `other` silently (one tied coefficient remained)
    _refused(
        lambda: clvrs.BetaGeoModel().fit(with_size, tied_covariates=["size"], **{other: ["size"]}),
        "tied_covariates",
        InvalidParameterError,
    )


# --------------------------------------------------------------------------------------------
# score_file
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def parquet(small: pd.DataFrame, tmp_path_factory: Any) -> Path:
    pytest.importorskip("pyarrow")
    path = tmp_path_factory.mktemp("score") / "summaries.parquet"
    small.reset_index().to_parquet(path)
    return path


def test_score_file_scores_exactly(parquet, small, bg, tmp_path):
    out = tmp_path / "scores.parquet"
    n = _answer(
        lambda: clvrs.distributed.score_file(
            bg, str(parquet), str(out), chunk_rows=64, keep=["customer_id"]
        )
    )
    assert n == len(small)
    scores = pd.read_parquet(out)
    np.testing.assert_allclose(scores["probability_alive"], bg.probability_alive(small).to_numpy())


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"chunk_rows": 0}, "chunk_rows"),
        ({"chunk_rows": 1.5}, "chunk_rows"),
        ({"chunk_rows": True}, "chunk_rows"),
        ({"horizon": float("nan")}, "horizon"),
        ({"keep": "customer_id"}, "keep"),
        ({"keep": ["nope"]}, "nope"),
        ({"clv": {"nonsense": 1}}, "clv"),
        ({"clv": [1]}, "clv"),
        ({"spend_model": "gg"}, "spend_model"),
    ],
)
def test_score_file_checks_its_options_before_reading(parquet, bg, tmp_path, options, name):
    out = tmp_path / "scores.parquet"
    _refused(lambda: clvrs.distributed.score_file(bg, str(parquet), str(out), **options), name)
    assert not out.exists()


def test_score_file_of_a_csv_or_with_a_model_that_is_not_one(small, bg, tmp_path, parquet):
    csv = tmp_path / "summaries.csv"
    small.to_csv(csv)
    _refused(
        lambda: clvrs.distributed.score_file(bg, str(csv), str(tmp_path / "o.parquet")), "source"
    )
    _refused(
        lambda: clvrs.distributed.score_file("bg", str(parquet), str(tmp_path / "o.parquet")),
        "model",
        InvalidParameterError,
    )
    with pytest.raises(clvrs.NotFittedError):
        clvrs.distributed.score_file(
            clvrs.BetaGeoModel(), str(parquet), str(tmp_path / "o.parquet")
        )


# --------------------------------------------------------------------------------------------
# intervals with hostile prediction functions
# --------------------------------------------------------------------------------------------


def test_prediction_interval_names_an_argument_the_method_does_not_take(small, bg):
    _refused(
        lambda: clvrs.prediction_interval(bg, "probability_alive", small, horizon=5),
        "horizon",
        InvalidParameterError,
    )


def test_delta_interval_of_no_models_or_a_predict_returning_text(small, bg):
    _refused(
        lambda: clvrs.delta_interval(lambda *m: np.ones(3), []), "models", InvalidParameterError
    )
    _refused(lambda: clvrs.delta_interval(lambda m: "x", [bg]), "predict", InvalidParameterError)
    _refused(
        lambda: clvrs.delta_interval(lambda m: np.ones((2, 2)), [bg]),
        "predict",
        InvalidParameterError,
    )


def test_bootstrap_predict_of_varying_length_is_refused(small, bg):
    calls = iter(range(1, 100))

    def ragged(model: Any) -> np.ndarray:
        return np.arange(float(next(calls) % 3 + 1))

    _refused(
        lambda: clvrs.bootstrap(bg, small.iloc[:50], n_boot=4, seed=1, predict=ragged, n_jobs=1),
        "predict",
        InvalidParameterError,
    )
