"""Text columns read by the core from their Arrow buffers (issue 18): string customer ids
factorised in Rust, ISO date strings parsed in Rust, and integer frequency columns fitted
without a float64 copy. Every result is checked against an independent route: object-dtype
columns (which still take pandas' path), Python's own sort of the ids, ``pd.to_datetime``,
and float64 columns."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import clvrs
from clvrs import _core
from clvrs.exceptions import InvalidDataError


def _summary(frame, **kwargs):
    return clvrs.summarize_transactions(
        frame, "id", "date", monetary_value_col="amount", freq="D", **kwargs
    )


def _log(n=5000, seed=0, ids=None):
    rng = np.random.default_rng(seed)
    customers = np.array(ids) if ids is not None else np.arange(400)
    return pd.DataFrame(
        {
            "id": customers[rng.integers(0, len(customers), n)],
            "date": pd.Timestamp("2020-01-01")
            + pd.to_timedelta(rng.integers(0, 400 * 24, n), unit="h"),
            "amount": rng.gamma(2.0, 10.0, n).round(2),
        }
    )


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.index) == list(b.index)
    assert list(a.columns) == list(b.columns)
    for column in a.columns:
        np.testing.assert_array_equal(a[column].to_numpy(), b[column].to_numpy(), column)


# -- string ids ------------------------------------------------------------------------------


def test_core_factorises_arrow_text_in_sorted_order_for_any_thread_count():
    values = pa.array(["b", "a", "", "b", None, "ab", "é", "a", "Z"])
    validity, offsets, data = values.buffers()
    chunk = (
        np.frombuffer(offsets, dtype=np.int32)[: len(values) + 1],
        np.frombuffer(data, dtype=np.uint8),
        values.is_valid().to_numpy(zero_copy_only=False),
    )
    for n_jobs in (1, 2, 3):
        codes, first = _core.factorize_text([chunk], "id", n_jobs=n_jobs)
        # Sorted by code point (Python's order of str): "", "Z", "a", "ab", "b", "é".
        assert codes.tolist() == [4, 2, 0, 4, -1, 3, 5, 2, 1]
        assert first.tolist() == [2, 8, 1, 5, 0, 6]


@pytest.mark.parametrize("threads", [1, 2])
def test_string_ids_give_the_summary_of_the_pandas_path(threads):
    log = _log(ids=[f"c{i}" for i in range(400)] + ["ü-7", "日本", "Zed", ""])
    arrow = log.assign(id=log["id"].astype(pd.StringDtype("pyarrow")))
    objects = log.assign(id=log["id"].astype(object))  # factorised by pandas, as before
    fast = _summary(arrow, n_jobs=threads)
    _same(fast, _summary(objects))
    assert list(fast.index) == sorted(set(log["id"]))  # code-point order, as numpy sorts
    assert fast.index.dtype == arrow["id"].dtype and fast.index.name == "id"


def test_string_ids_in_several_chunks_and_32_bit_offsets():
    log = _log(ids=[f"k{i:03d}" for i in range(300)])
    reference = _summary(log.assign(id=log["id"].astype(object)))
    halves = np.array_split(log["id"].to_numpy(dtype=object), 3)
    chunked = pa.chunked_array([pa.array(h, pa.string()) for h in halves])
    small = pd.Series(pd.arrays.ArrowExtensionArray(chunked), index=log.index)
    assert str(small.dtype) == "string[pyarrow]"
    _same(_summary(log.assign(id=small)), reference)
    sliced = pa.array(np.concatenate([["zz"], log["id"].to_numpy(dtype=object)]), pa.large_string())
    offset = pd.Series(pd.arrays.ArrowExtensionArray(pa.chunked_array([sliced[1:]])))
    assert offset.array.__arrow_array__().chunk(0).offset == 1
    _same(_summary(log.assign(id=offset)), reference)


def test_string_ids_from_polars_and_pyarrow_match_pandas():
    pl = pytest.importorskip("polars")
    log = _log(ids=[f"c{i}" for i in range(50)])
    reference = _summary(log.assign(id=log["id"].astype(object)))
    from_polars = _summary(pl.from_pandas(log)).to_pandas().set_index("id")
    _same(from_polars, reference)
    _same(_summary(pa.Table.from_pandas(log, preserve_index=False)), reference)


def test_missing_string_id_is_named_as_before():
    log = _log(ids=["a", "b", "c"])
    ids = log["id"].astype(object)
    ids.iloc[[7, 9]] = None
    with pytest.raises(InvalidDataError) as fast:
        _summary(log.assign(id=ids.astype(pd.StringDtype("pyarrow"))))
    with pytest.raises(InvalidDataError) as slow:
        _summary(log.assign(id=ids))
    assert str(fast.value) == str(slow.value)
    assert fast.value.row == 7 and fast.value.column == "id"


# -- ISO date strings ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "freq"),
    [("%Y-%m-%d", "D"), ("%Y-%m-%d %H:%M:%S", "H"), ("%Y-%m-%dT%H:%M:%S", "H")],
)
def test_iso_dates_read_by_the_core_match_pandas(fmt, freq):
    log = _log(ids=list(range(300)))
    text = log["date"].dt.strftime(fmt).astype(pd.StringDtype("pyarrow"))
    parsed = pd.to_datetime(text.astype(object), format=fmt)
    chunks = [
        (
            np.frombuffer(c.buffers()[1], np.int64)[c.offset : c.offset + len(c) + 1],
            np.frombuffer(c.buffers()[2], np.uint8),
            None,
        )
        for c in text.array.__arrow_array__().chunks
    ]
    micros = _core.parse_text_times(chunks, "date", fmt)
    np.testing.assert_array_equal(micros, parsed.to_numpy().astype("datetime64[us]").view(np.int64))
    kwargs = dict(monetary_value_col="amount", freq=freq)
    fast = clvrs.summarize_transactions(log.assign(date=text), "id", "date", **kwargs)
    _same(fast, clvrs.summarize_transactions(log.assign(date=parsed), "id", "date", **kwargs))
    explicit = clvrs.summarize_transactions(
        log.assign(date=text), "id", "date", datetime_format=fmt, **kwargs
    )
    _same(explicit, fast)


def test_text_dates_the_core_does_not_read_go_to_pandas_with_the_same_errors():
    log = _log(n=300, ids=["a", "b"])
    dates = log["date"].dt.strftime("%Y-%m-%d").astype(object)
    for bad, row in (("2021-02-30", 123), ("2021-3-04", 45), (None, 77)):
        broken = dates.copy()
        broken.iloc[row] = bad
        outcomes = []
        for column in (broken, broken.astype(pd.StringDtype("pyarrow"))):
            try:
                outcomes.append(_summary(log.assign(date=column)))
            except InvalidDataError as err:
                outcomes.append((str(err), err.row, err.column))
        if isinstance(outcomes[0], pd.DataFrame):  # pandas reads "2021-3-04"
            _same(outcomes[1], outcomes[0])
        else:
            assert outcomes[0] == outcomes[1]
            assert outcomes[0][1] == row


def test_core_date_parser_refuses_what_is_not_exactly_iso():
    values = pa.array(["2021-01-01", "2021-01-01 "], pa.large_string())
    chunk = (
        np.frombuffer(values.buffers()[1], np.int64)[:3],
        np.frombuffer(values.buffers()[2], np.uint8),
        None,
    )
    assert _core.parse_text_times([chunk], "date", "%Y-%m-%d") is None
    assert _core.parse_text_times([chunk], "date", "%d/%m/%Y") is None


# -- integer frequency columns ---------------------------------------------------------------


@pytest.fixture(scope="module")
def cdnow():
    return clvrs.datasets.load_cdnow_summary()


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint64, np.uint32, ">i8"])
@pytest.mark.parametrize("model", [clvrs.BetaGeoModel, clvrs.ParetoNBDModel])
def test_integer_frequency_fits_bit_for_bit_like_float(cdnow, dtype, model):
    floats = cdnow.assign(frequency=cdnow["frequency"].astype(float))
    # (pandas keeps native byte order; the big-endian array goes in as a keyword)
    ints = cdnow.assign(frequency=cdnow["frequency"].astype(np.dtype(dtype).newbyteorder("=")))
    a, b = model().fit(floats), model().fit(ints)
    assert a.params_.to_numpy().tobytes() == b.params_.to_numpy().tobytes()
    assert a.log_likelihood_ == b.log_likelihood_
    keywords = model().fit(
        frequency=np.asarray(cdnow["frequency"], dtype=dtype),
        recency=cdnow["recency"],
        T=cdnow["T"],
    )
    assert keywords.params_.to_numpy().tobytes() == a.params_.to_numpy().tobytes()


def test_integer_frequency_is_read_in_place():
    from clvrs._input import coerce_columns

    frame = pd.DataFrame({"frequency": np.arange(5, dtype=np.int64), "recency": 1.0, "T": 2.0})
    names = {"frequency": "frequency", "recency": "recency", "T": "T"}
    roles = ("frequency", "recency", "T")
    kept = coerce_columns(frame, roles, names, {}, integers=("frequency",))
    assert kept.arrays["frequency"].dtype == np.int64
    assert np.shares_memory(kept.arrays["frequency"], frame["frequency"].to_numpy())
    converted = coerce_columns(frame, roles, names, {})
    assert converted.arrays["frequency"].dtype == np.float64
    nullable = frame.assign(frequency=frame["frequency"].astype("Int64"))
    assert (
        coerce_columns(nullable, roles, names, {}, integers=("frequency",))
        .arrays["frequency"]
        .dtype
        == np.float64
    )


def test_core_fit_takes_integer_columns():
    x = np.array([0, 1, 2, 3], dtype=np.int64)
    t_x = np.array([0.0, 1.0, 2.0, 3.0])
    age = np.array([4.0, 4.0, 5.0, 6.0])
    names = ("frequency", "recency", "T", "weights")
    a = _core.rfm_fit("bgnbd", x, t_x, age, None, names, n_jobs=1)
    b = _core.rfm_fit("bgnbd", x.astype(float), t_x, age, None, names, n_jobs=1)
    assert a["params"] == b["params"] and a["log_likelihood"] == b["log_likelihood"]


@pytest.mark.parametrize(
    ("changes", "dtype"),
    [
        ({"frequency": -1}, np.int64),
        ({"frequency": 2, "recency": 3.0, "T": 1.0}, np.int32),  # recency after T
        ({"frequency": 0, "recency": 2.0}, np.uint32),  # recency without a repeat purchase
        ({"frequency": 2**40}, np.uint64),  # beyond 2^32
    ],
)
def test_integer_frequency_errors_are_the_float_errors(cdnow, changes, dtype):
    row = 1500
    bad = cdnow.assign(frequency=cdnow["frequency"].astype(np.int64))
    for column, value in changes.items():
        bad.iloc[row, bad.columns.get_loc(column)] = value
    errors = []
    for frequency in (bad["frequency"].astype(dtype), bad["frequency"].astype(float)):
        with pytest.raises(InvalidDataError) as err:
            clvrs.BetaGeoModel().fit(bad.assign(frequency=frequency))
        errors.append((str(err.value), err.value.row, err.value.column))
    assert errors[0] == errors[1]
    assert errors[0][1] == row


def test_bgbb_rules_on_integer_frequency_name_the_input_row():
    n = 10_000  # several of the core's blocks of rows
    rng = np.random.default_rng(3)
    periods = np.full(n, 6)
    frequency = rng.integers(0, 7, n)
    recency = np.where(frequency > 0, np.minimum(frequency + rng.integers(0, 3, n), 6), 0)
    frequency[9_001], recency[9_001] = 5, 4  # more transactions than opportunities used
    errors = []
    for x in (frequency.astype(np.int64), frequency.astype(float)):
        with pytest.raises(InvalidDataError) as err:
            clvrs.BetaGeoBetaBinomModel().fit(frequency=x, recency=recency, periods=periods)
        errors.append((str(err.value), err.value.row))
    assert errors[0] == errors[1]
    assert errors[0][1] == 9_001
    frequency[9_001] = 4
    fits = [
        clvrs.BetaGeoBetaBinomModel(on_failure="ignore").fit(
            frequency=x, recency=recency, periods=periods
        )
        for x in (frequency.astype(np.int64), frequency.astype(float))
    ]
    assert fits[0].params_.to_numpy().tobytes() == fits[1].params_.to_numpy().tobytes()


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (clvrs.BetaGeoModel, {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}),
        (clvrs.ModifiedBetaGeoModel, {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}),
        (clvrs.ParetoNBDModel, {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669}),
    ],
    ids=lambda v: getattr(v, "__name__", ""),
)
def test_predictions_read_integer_frequency_in_place(cls, params):
    # Several of the core's blocks of rows, as int64, int32 and uint32: the bits of the
    # float64 column for every prediction (P(alive) converts block by block, the others once).
    model = cls.from_params(**params, n_jobs=2)
    ages = np.linspace(1.0, 80.0, 9_001)
    frequency, recency = model.simulate(ages, seed=5)[["frequency", "recency"]].T.to_numpy()
    frame = pd.DataFrame({"frequency": frequency, "recency": recency, "T": ages})
    predictions = {
        "probability_alive": lambda d: model.probability_alive(d),
        "expected_purchases": lambda d: model.expected_purchases(d, t=52.0),
        "log_likelihood": lambda d: model.log_likelihood_per_customer(d),
    }
    if cls is clvrs.ParetoNBDModel:
        predictions["probability_alive_later"] = lambda d: model.probability_alive(d, t=10.0)
    for name, predict in predictions.items():
        want = predict(frame).to_numpy().tobytes()
        for dtype in (np.int64, np.int32, np.uint32):
            given = frame.assign(frequency=frame["frequency"].astype(dtype))
            assert predict(given).to_numpy().tobytes() == want, (name, dtype)


def test_prediction_errors_on_integer_frequency_are_the_float_errors(cdnow):
    model = clvrs.BetaGeoModel.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426)
    bad = cdnow.assign(frequency=cdnow["frequency"].astype(np.int64))
    bad.iloc[1500, bad.columns.get_loc("frequency")] = -1
    for predict in (model.probability_alive, model.expected_purchases):
        errors = []
        for frequency in (bad["frequency"], bad["frequency"].astype(float)):
            with pytest.raises(InvalidDataError) as err:
                predict(bad.assign(frequency=frequency))
            errors.append((str(err.value), err.value.row, err.value.column))
        assert errors[0] == errors[1]
        assert errors[0][1] == 1500


def test_sample_rows_of_a_chunked_text_column_are_ilocs():
    from clvrs.data import _rows_of

    values = [f"2001-01-0{k % 9 + 1}" if k % 5 else None for k in range(40)]
    chunked = pa.chunked_array(
        [pa.array(values[a:b], pa.string()) for a, b in ((0, 7), (7, 7), (7, 40))]
    )
    column = pd.Series(pd.arrays.ArrowExtensionArray(chunked), name="date")
    rows = np.array([39, 0, 5, 6, 7, 8, 20, 6])
    got = _rows_of(column, rows)
    want = pd.Series([column.iloc[int(r)] for r in rows], index=rows, dtype=column.dtype)
    assert got.name == "date" and got.index.tolist() == rows.tolist()
    assert got.astype(object).where(got.notna(), None).tolist() == [values[r] for r in rows]
    assert got.dtype == want.dtype and got.isna().tolist() == want.isna().tolist()
