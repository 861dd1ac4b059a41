"""The fast read of pandas columns (issue 18, small data): same arrays, same errors.

`clvrs._input._read_numpy_columns` reads a DataFrame's columns straight from its blocks when
every label is a distinct plain string and every column a numpy array of numbers; anything else
goes to the general path (`data[name]`, checks, conversions). Each case here is run twice, with
the fast path and with it switched off, and must give the same values bit for bit (same index,
same name) or the same typed error with the same message. `_float_series` (the output Series
built from a block manager) must equal the public constructor's Series.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs import _input
from clvrs.exceptions import InvalidDataError

RFM = ["frequency", "recency", "T"]


@pytest.fixture(scope="module")
def base(cdnow) -> pd.DataFrame:
    """300 CDNOW customers (int64 frequency, float64 recency and T, string column labels)."""
    return cdnow.iloc[:300][RFM].copy()


@pytest.fixture(scope="module")
def models(cdnow):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [
            clvrs.BetaGeoModel().fit(cdnow),
            clvrs.ParetoNBDModel().fit(cdnow),
        ]


def _general_only(monkeypatch):
    monkeypatch.setattr(_input, "_read_numpy_columns", lambda *args, **kwargs: None)


def _outcomes(model, data, monkeypatch, columns=None):
    """Each prediction (or the error it raises) with the fast path, then without it."""
    model = model.set_params(columns=columns) if columns is not None else model

    def run():
        results = []
        for predict in (
            lambda: model.probability_alive(data),
            lambda: model.expected_purchases(data, t=52),
            lambda: model.log_likelihood_per_customer(data),
        ):
            try:
                results.append(predict())
            except InvalidDataError as err:
                results.append((type(err), str(err), err.column, err.row, err.rule))
        return results

    try:
        fast = run()
        with monkeypatch.context() as patch:
            _general_only(patch)
            general = run()
    finally:
        if columns is not None:
            model.set_params(columns=None)
    return fast, general


def _assert_same(fast, general):
    assert len(fast) == len(general)
    for a, b in zip(fast, general):
        if isinstance(b, tuple):
            assert a == b
        else:
            pd.testing.assert_series_equal(a, b, check_exact=True)
            assert a.index is b.index or a.index.equals(b.index)


def _variants(base: pd.DataFrame) -> dict[str, pd.DataFrame]:
    n = len(base)
    shuffled = base.sample(frac=1.0, random_state=3)
    out = {
        "as loaded": base,
        "all float64": base.astype(float),
        "int32 frequency": base.astype({"frequency": np.int32}),
        "uint32 frequency": base.astype({"frequency": np.uint32}),
        "uint64 frequency": base.astype({"frequency": np.uint64}),
        "int16 frequency": base.astype({"frequency": np.int16}),
        "float32 columns": base.astype(np.float32),
        "big-endian T": base.assign(T=base["T"].to_numpy().astype(">f8")),
        "bool frequency": base.assign(frequency=base["frequency"] > 0, recency=0.0),
        "string index, shuffled": shuffled.set_axis([f"c{i}" for i in range(n)]),
        "duplicate index labels": base.set_axis([i % 7 for i in range(n)]),
        "one 2-d float block, Fortran order": pd.DataFrame(
            np.asfortranarray(base.to_numpy(dtype=float)), columns=RFM, index=base.index
        ),
        "one 2-d float block, C order": pd.DataFrame(
            np.ascontiguousarray(base.to_numpy(dtype=float)), columns=RFM, index=base.index
        ),
        "object column labels": base.set_axis(pd.Index(RFM, dtype=object), axis=1),
        "a non-string label too": base.assign(**{"extra": 1.0}).rename(columns={"extra": 0}),
        "nullable Int64 frequency": base.astype({"frequency": "Int64"}),
        "nullable Float64 columns": base.astype("Float64"),
        "extra columns": base.assign(monetary_value=1.5, name="x"),
        "weights column": base.assign(weights=2),
    }
    try:
        import pyarrow  # noqa: F401

        out["Arrow double T"] = base.astype({"T": "double[pyarrow]"})
    except ImportError:
        pass
    return out


GOOD = (
    "as loaded",
    "all float64",
    "int32 frequency",
    "uint32 frequency",
    "uint64 frequency",
    "int16 frequency",
    "float32 columns",
    "big-endian T",
    "bool frequency",
    "string index, shuffled",
    "duplicate index labels",
    "one 2-d float block, Fortran order",
    "one 2-d float block, C order",
    "object column labels",
    "a non-string label too",
    "nullable Int64 frequency",
    "nullable Float64 columns",
    "extra columns",
    "weights column",
    "Arrow double T",
)


@pytest.mark.parametrize("case", GOOD)
def test_fast_path_gives_the_general_paths_values(case, base, models, monkeypatch):
    variants = _variants(base)
    if case not in variants:
        pytest.skip("pyarrow is not installed")
    data = variants[case]
    for model in models:
        fast, general = _outcomes(model, data, monkeypatch)
        _assert_same(fast, general)
        # Valid data (every case here) give values, not errors.
        assert not any(isinstance(r, tuple) for r in fast), (case, fast)


def _bad(base: pd.DataFrame) -> dict[str, pd.DataFrame]:
    nan_frequency = base.astype({"frequency": float})
    nan_frequency.iloc[5, 0] = np.nan
    nan_t = base.copy()
    nan_t.iloc[7, 2] = np.nan
    negative = base.copy()
    negative.iloc[3, 0] = -1
    late = base.copy()
    late.iloc[4, 1] = late.iloc[4, 2] + 1.0
    fractional = base.astype({"frequency": float})
    fractional.iloc[9, 0] = 1.5
    nullable = base.astype({"frequency": "Int64"})
    nullable.iloc[2, 0] = pd.NA
    return {
        "NaN frequency": nan_frequency,
        "NaN T, string index": nan_t.set_axis([f"c{i}" for i in range(len(base))]),
        "negative frequency": negative,
        "recency after T": late,
        "fractional frequency": fractional,
        "missing column": base.drop(columns=["recency"]),
        "duplicate column": pd.concat([base, base[["T"]]], axis=1),
        "text column": base.assign(recency=base["recency"].astype(str)),
        "object numbers": base.assign(T=base["T"].astype(object)),
        "date column": base.assign(T=pd.Timestamp("2020-01-01")),
        "complex column": base.assign(T=base["T"] + 0j),
        "nullable with a missing value": nullable,
        "inf T": base.assign(T=np.inf),
        "categorical recency": base.assign(recency=base["recency"].astype("category")),
    }


BAD = (
    "NaN frequency",
    "NaN T, string index",
    "negative frequency",
    "recency after T",
    "fractional frequency",
    "missing column",
    "duplicate column",
    "text column",
    "object numbers",
    "date column",
    "complex column",
    "nullable with a missing value",
    "inf T",
    "categorical recency",
)


@pytest.mark.parametrize("case", BAD)
def test_fast_path_raises_the_general_paths_errors(case, base, models, monkeypatch):
    data = _bad(base)[case]
    for model in models:
        fast, general = _outcomes(model, data, monkeypatch)
        _assert_same(fast, general)
        assert all(isinstance(r, tuple) for r in fast), (case, fast)
        assert all(r[0] is InvalidDataError for r in fast)


def test_mapped_columns_take_the_same_path(base, models, monkeypatch):
    renamed = base.rename(columns={"T": "age", "frequency": "repeats"})
    for columns in ({"T": "age", "frequency": "repeats"}, {"T": "age", "recency": "age"}):
        for model in models:
            fast, general = _outcomes(model, renamed, monkeypatch, columns=columns)
            _assert_same(fast, general)


def test_fast_path_is_taken_and_hands_over_read_only_views(base):
    """The plain frame is read by the fast path (so the tests above compare two paths), its
    float64 and int64 columns without a copy, read-only, and the frame is left as it was."""
    before = base.copy()
    names = {"frequency": "frequency", "recency": "recency", "T": "T"}
    read = _input._read_numpy_columns(base, RFM, (), names, ("frequency",))
    assert read is not None
    arrays, used = read
    assert used == names
    for role, array in arrays.items():
        assert not array.flags.writeable
        assert np.shares_memory(array, base._get_column_array(RFM.index(role)))
    assert arrays["frequency"].dtype == np.int64
    assert arrays["T"].dtype == np.float64
    pd.testing.assert_frame_equal(base, before)
    # Extension dtypes, non-string labels and missing columns are left to the general path.
    assert _input._read_numpy_columns(base.astype("Float64"), RFM, (), names, ()) is None
    assert _input._read_numpy_columns(base.set_axis([0, 1, 2], axis=1), RFM, (), names, ()) is None
    assert _input._read_numpy_columns(base.drop(columns="T"), RFM, (), names, ()) is None

    class Frame(pd.DataFrame):
        @property
        def _constructor(self):
            return Frame

    assert _input._read_numpy_columns(Frame(base), RFM, (), names, ()) is None


def test_float_series_is_the_constructors_series():
    values = np.random.default_rng(1).random(50)
    for index in (pd.RangeIndex(1, 51, name="customer_id"), pd.Index([f"c{i}" for i in range(50)])):
        made = _input._float_series(values, index, "probability_alive")
        plain = pd.Series(values, index=index, name="probability_alive", copy=False)
        pd.testing.assert_series_equal(made, plain, check_exact=True)
        assert made.index is index and made.name == "probability_alive"
        assert made.flags.allows_duplicate_labels and made.attrs == {}
    # Anything but a fresh float64 array of the index's length takes the constructor.
    ints = _input._float_series(np.arange(3), pd.RangeIndex(3), "x")
    assert ints.dtype == np.int64
