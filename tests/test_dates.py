"""How dates reach the engine: numeric date columns refused (YYYYMMDD read with its format),
text formats inferred from a sample with one vectorised check, the right argument blamed,
years beyond 1677-2262 exact, period ends and options checked with typed errors, simulated
logs over long horizons. References are Python's ``datetime`` (proleptic Gregorian) and
hand-counted periods, not the code under test."""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs.exceptions import ClvError, InvalidDataError, InvalidParameterError

summarize = clvrs.summarize_transactions


@pytest.fixture(scope="module")
def log():
    return clvrs.datasets.load_cdnow_transactions()


@pytest.fixture(scope="module")
def model():
    return clvrs.BetaGeoModel().fit(clvrs.datasets.load_cdnow_summary())


def _small(dates, ids=None):
    ids = list(range(len(dates))) if ids is None else ids
    return pd.DataFrame({"id": ids, "date": dates})


def _quiet(fn, *args, **kwargs):
    """Call with every warning recorded; return the result and the warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args, **kwargs)
    return result, caught


# -- numeric date columns ------------------------------------------------------------------


def test_yyyymmdd_integers_are_refused_with_the_fix_and_read_with_it(log):
    ymd = log.assign(date=log["date"].dt.strftime("%Y%m%d").astype(np.int64))
    with pytest.raises(InvalidDataError) as info:
        summarize(ymd, "customer_id", "date")
    assert info.value.column == "date" and info.value.row == 0
    assert 'datetime_format="%Y%m%d"' in str(info.value) and "19970101" in str(info.value)
    expected = summarize(log, "customer_id", "date", monetary_value_col="amount")
    got = summarize(
        ymd, "customer_id", "date", monetary_value_col="amount", datetime_format="%Y%m%d"
    )
    pd.testing.assert_frame_equal(got, expected)
    # Nullable integers and whole floats (a CSV column with a gap) read the same way.
    for dtype in ("Int64", "float64"):
        again = summarize(
            ymd.astype({"date": dtype}), "customer_id", "date", datetime_format="%Y%m%d"
        )
        np.testing.assert_array_equal(again.to_numpy(), expected.iloc[:, :3].to_numpy())
    # The fitted model is CDNOW's, not "frequency is 0 for every customer".
    assert clvrs.BetaGeoModel().fit(got).params_["r"] > 0


def test_a_yyyymmdd_value_that_is_no_date_names_its_row():
    frame = _small([19970101, 19970230, 19970301], ids=[1, 1, 1])
    with pytest.raises(InvalidDataError) as info:
        summarize(frame, "id", "date", datetime_format="%Y%m%d")
    assert info.value.column == "date" and info.value.row == 1 and "19970230" in str(info.value)


def test_other_formats_read_whole_numbers_as_their_digits():
    frame = _small([1997010108, 1997010213], ids=[1, 1])
    got = summarize(frame, "id", "date", datetime_format="%Y%m%d%H", freq="H")
    assert got["recency"].iloc[0] == 24 + 5


@pytest.mark.parametrize(
    ("values", "hint"),
    [
        ([852076800, 854755200, 852422400], 'unit="s"'),  # Unix seconds
        ([12.5, 30.1, 7.0], "amount"),  # amounts passed as the date column
        ([True, False, True], "not dates"),
        (pd.Series([19970101, 19970102, 19970103], dtype=object), "%Y%m%d"),
    ],
)
def test_numbers_are_not_dates(values, hint):
    with pytest.raises(InvalidDataError, match="not dates") as info:
        summarize(_small(values, ids=[1, 1, 2]), "id", "date")
    assert info.value.column == "date" and info.value.row == 0
    assert hint in str(info.value)


def test_fractional_numbers_with_a_format_are_refused():
    with pytest.raises(InvalidDataError, match="whole numbers") as info:
        summarize(_small([19970101.5, 19970102.0]), "id", "date", datetime_format="%Y%m%d")
    assert info.value.column == "date"


# -- text dates ------------------------------------------------------------------------------


def test_text_that_does_not_parse_fails_by_a_sample_not_row_by_row(monkeypatch):
    """A 200k-row day-first log with one ISO date: the column is blamed (not datetime_format,
    which the user never passed), naming the row, the value and the inferred format, with
    pandas asked to parse a handful of times (it was once per row: 44 s at 207k rows)."""
    days = pd.Timestamp("1997-01-01") + pd.to_timedelta(np.arange(200_000) % 500, unit="D")
    text = pd.Series(days.strftime("%d/%m/%Y"))
    text.iloc[150_001] = "1997-02-13"
    calls = []
    original = pd.to_datetime

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(pd, "to_datetime", counting)
    with pytest.raises(InvalidDataError) as info:
        _quiet(summarize, _small(text), "id", "date")
    assert info.value.column == "date" and info.value.row == 150_001
    assert "'1997-02-13'" in str(info.value) and "%d/%m/%Y" in str(info.value)
    assert len(calls) < 20


def test_no_pandas_warning_leaks():
    frame = _small(["13/01/1997", "14/01/1997", "15/02/1997"], ids=[1, 1, 2])
    got, caught = _quiet(summarize, frame, "id", "date")
    assert caught == []
    assert got["recency"].tolist() == [1.0, 0.0]
    # A period end in the same style reads as a date too, silently.
    _, caught = _quiet(summarize, frame, "id", "date", observation_period_end="28/02/1997")
    assert caught == []


def test_the_users_format_is_blamed_only_when_it_does_not_read_the_column():
    frame = _small(["1997-01-01", "1997-01-05", "7 Jan 1997"], ids=[1, 1, 1])
    with pytest.raises(InvalidParameterError) as info:
        summarize(frame, "id", "date", datetime_format="%d/%m/%Y")
    assert info.value.parameter == "datetime_format" and "1997-01-01" in str(info.value)
    with pytest.raises(InvalidDataError) as info:
        summarize(frame, "id", "date", datetime_format="%Y-%m-%d")
    assert info.value.column == "date" and info.value.row == 2
    # Never passed: the column is blamed.
    with pytest.raises(InvalidDataError) as info:
        summarize(frame, "id", "date")
    assert info.value.column == "date" and info.value.row == 2
    with pytest.raises(InvalidDataError) as info:
        summarize(_small(["soon", "1997-01-01"]), "id", "date")
    assert info.value.column == "date" and info.value.row == 0


def test_day_month_ambiguity_is_refused_not_guessed():
    frame = _small(["01/02/1997", "03/02/1997", "05/04/1997"], ids=[1, 1, 1])
    with pytest.raises(InvalidDataError, match="datetime_format") as info:
        summarize(frame, "id", "date")
    assert info.value.column == "date"
    day_first = summarize(frame, "id", "date", datetime_format="%d/%m/%Y")
    assert day_first["recency"].iloc[0] == (dt.date(1997, 4, 5) - dt.date(1997, 2, 1)).days
    # One day after the 12th anywhere in the column settles it.
    many = ["01/02/1997"] * 5000 + ["13/02/1997"] + ["02/01/1997"] * 5000
    got = summarize(_small(many, ids=[1] * len(many)), "id", "date")
    assert got["recency"].iloc[0] == (dt.date(1997, 2, 13) - dt.date(1997, 1, 2)).days


def test_mixed_timezones_blame_the_column():
    frame = _small(["1997-01-01T00:00+01:00", "1997-01-02T00:00+02:00"], ids=[1, 1])
    for kwargs in ({}, {"datetime_format": "%Y-%m-%dT%H:%M%z"}):
        with pytest.raises(InvalidDataError, match="timezone") as info:
            summarize(frame, "id", "date", **kwargs)
        assert info.value.column == "date"


# -- every kind of date column -----------------------------------------------------------------

_DATES = [dt.datetime(1997, 1, 1, 10), dt.datetime(1997, 1, 8), dt.datetime(1997, 3, 2)]
_FAR = [dt.datetime(1600, 1, 1, 10), dt.datetime(1600, 1, 8), dt.datetime(2500, 3, 2)]


def _kinds(dates):
    pl = pytest.importorskip("polars")
    pa = pytest.importorskip("pyarrow")
    index = pd.DatetimeIndex(np.array(dates, dtype="datetime64[s]"))
    kinds = {
        "python datetime": dates,
        "python date": [d.date() for d in dates],
        "text": [d.isoformat() for d in dates],
        "numpy D": np.array([d.date() for d in dates], dtype="datetime64[D]"),
    }
    for unit in ("s", "ms", "us"):
        kinds[f"pandas {unit}"] = index.as_unit(unit)
        kinds[f"pandas {unit} aware"] = index.as_unit(unit).tz_localize("Europe/Paris")
    frames = {name: _small(values, ids=[1, 1, 2]) for name, values in kinds.items()}
    frames["polars Date"] = pl.DataFrame({"id": [1, 1, 2], "date": [d.date() for d in dates]})
    for unit in ("ms", "us"):
        frames[f"polars Datetime {unit}"] = pl.DataFrame(
            {"id": [1, 1, 2], "date": pl.Series(dates, dtype=pl.Datetime(unit))}
        )
    frames["pyarrow timestamp"] = pa.table(
        {"id": [1, 1, 2], "date": pa.array(dates, pa.timestamp("s"))}
    )
    frames["pyarrow date32"] = pa.table(
        {"id": [1, 1, 2], "date": pa.array([d.date() for d in dates], pa.date32())}
    )
    frames["pyarrow text"] = pa.table({"id": [1, 1, 2], "date": [d.isoformat() for d in dates]})
    return frames


@pytest.mark.parametrize("dates", [_DATES, _FAR], ids=["1997", "1600-2500"])
def test_every_kind_of_date_column_gives_the_calendar_answer(dates):
    """Days, weeks (from Monday) and months counted with Python's proleptic Gregorian calendar;
    years outside 1677-2262 exact, never wrapped."""
    end = dates[-1] + dt.timedelta(days=40)
    first = dates[0].date()
    days = [(d.date() - first).days for d in dates] + [(end.date() - first).days]
    monday = first - dt.timedelta(days=first.weekday())
    weeks = [(d.date() - monday).days // 7 for d in dates[1:2]] + [(end.date() - monday).days // 7]
    months = (end.year - first.year) * 12 + end.month - first.month
    for name, frame in _kinds(dates).items():
        for freq, recency, T in [
            ("D", days[1], days[3]),
            ("W", weeks[0], weeks[1]),
            ("M", 0, months),
        ]:
            got, caught = _quiet(
                summarize, frame, "id", "date", observation_period_end=end, freq=freq
            )
            if not isinstance(got, pd.DataFrame):
                got = got.to_pandas().set_index("id")
            assert caught == [], name
            assert (got.loc[1, "recency"], got.loc[1, "T"]) == (recency, T), (name, freq)


def test_two_purchases_in_1600_and_1500_to_3000():
    got = summarize(_small(["1600-01-01", "1600-03-01"], ids=[1, 1]), "id", "date")
    assert got["frequency"].iloc[0] == 1
    assert got["recency"].iloc[0] == (dt.date(1600, 3, 1) - dt.date(1600, 1, 1)).days
    far = _small(np.array(["1500-01-01", "3000-01-01"], dtype="datetime64[s]"), ids=[1, 1])
    got = summarize(far, "id", "date")
    assert got["recency"].iloc[0] == (dt.date(3000, 1, 1) - dt.date(1500, 1, 1)).days == 547_864


def test_an_end_beyond_the_nanosecond_range_against_nanosecond_times():
    frame = _small(pd.DatetimeIndex(["1997-01-01", "1997-02-01"]).as_unit("ns"), ids=[1, 1])
    got = summarize(frame, "id", "date", observation_period_end="3000-01-01")
    assert got["T"].iloc[0] == (dt.date(3000, 1, 1) - dt.date(1997, 1, 1)).days
    split = clvrs.calibration_and_holdout(
        frame, "id", "date", "1997-01-15", observation_period_end="2999-12-31"
    )
    assert split["duration_holdout"].iloc[0] == (dt.date(2999, 12, 31) - dt.date(1997, 1, 15)).days


def test_calibration_and_tracking_far_from_1970(model):
    dates = np.array(["1600-01-01", "1600-01-20", "1600-02-10", "1600-01-05"], dtype="M8[s]")
    frame = _small(dates, ids=[1, 1, 1, 2])
    split = clvrs.calibration_and_holdout(
        frame, "id", "date", "1600-01-31", observation_period_end="1600-02-29", freq="W"
    )
    assert split.loc[1, "frequency_cal"] == 1 and split.loc[1, "frequency_holdout"] == 1
    table = clvrs.tracking(
        model, frame, "id", "date", calibration_period_end="1600-01-31", freq="W"
    )
    first, cal_end = dt.date(1600, 1, 1), dt.date(1600, 1, 31)
    monday = first - dt.timedelta(days=first.weekday())
    assert table.index[0] == pd.Timestamp(monday)
    assert table["actual"].sum() == 2
    assert table["calibration"].sum() == (cal_end - monday).days // 7 + 1


# -- period ends and options ---------------------------------------------------------------


@pytest.mark.parametrize(
    "end", [pd.NaT, np.nan, float("nan"), np.datetime64("NaT"), "someday", 19970930, True, [1]]
)
def test_a_period_end_that_is_not_a_date_is_named(log, end):
    with pytest.raises(InvalidParameterError) as info:
        summarize(log, "customer_id", "date", observation_period_end=end)
    assert info.value.parameter == "observation_period_end"
    with pytest.raises(InvalidParameterError) as info:
        clvrs.calibration_and_holdout(log, "customer_id", "date", end)
    assert info.value.parameter == "calibration_period_end"


def test_a_yyyymmdd_number_end_reads_with_the_format(log):
    ymd = log.assign(date=log["date"].dt.strftime("%Y%m%d").astype(np.int64))
    a = summarize(
        ymd, "customer_id", "date", observation_period_end=19980630, datetime_format="%Y%m%d"
    )
    b = summarize(log, "customer_id", "date", observation_period_end="1998-06-30")
    pd.testing.assert_frame_equal(a, b)


def test_calibration_end_is_required(log):
    with pytest.raises(InvalidParameterError) as info:
        clvrs.calibration_and_holdout(log, "customer_id", "date", None)
    assert info.value.parameter == "calibration_period_end"


def test_an_end_before_every_purchase_is_named(log, model):
    with pytest.raises(InvalidParameterError, match="before every transaction") as info:
        clvrs.tracking(model, log, "customer_id", "date", observation_period_end="1990-01-01")
    assert info.value.parameter == "observation_period_end"
    with pytest.raises(InvalidParameterError) as info:
        _quiet(
            summarize,
            log,
            "customer_id",
            "date",
            observation_period_end="1990-01-01",
            after_end="exclude",
        )
    assert info.value.parameter == "observation_period_end"
    with pytest.raises(InvalidParameterError) as info:
        clvrs.calibration_and_holdout(log, "customer_id", "date", "1990-01-01")
    assert info.value.parameter == "calibration_period_end"


@pytest.mark.parametrize("value", ["abc", None, "2", True, 0, -1, np.nan, np.inf, [7]])
def test_freq_multiplier_must_be_a_positive_number(log, model, value):
    calls = [
        lambda: summarize(log, "customer_id", "date", freq_multiplier=value),
        lambda: clvrs.calibration_and_holdout(
            log, "customer_id", "date", "1997-06-30", freq_multiplier=value
        ),
        lambda: clvrs.tracking(model, log, "customer_id", "date", freq_multiplier=value),
    ]
    for call in calls:
        with pytest.raises(InvalidParameterError) as info:
            call()
        assert info.value.parameter == "freq_multiplier"


def test_numpy_numbers_are_accepted(log):
    a = summarize(log, "customer_id", "date", freq_multiplier=np.int64(7))
    b = summarize(log, "customer_id", "date", freq_multiplier=7)
    pd.testing.assert_frame_equal(a, b)


# -- wrong types everywhere ----------------------------------------------------------------


def _sweep_cases(log, model):
    cal = clvrs.calibration_and_holdout
    return [
        ("transactions", lambda: summarize([1, 2], "customer_id", "date")),
        ("transactions", lambda: summarize(None, "customer_id", "date")),
        ("customer_id_col", lambda: summarize(log, None, "date")),
        ("customer_id_col", lambda: summarize(log, ["customer_id"], "date")),
        ("datetime_col", lambda: summarize(log, "customer_id", ["date"])),
        ("datetime_col", lambda: summarize(log, "customer_id", 1.5)),
        ("date_", lambda: summarize(log, "customer_id", "date_")),
        ("monetary_value_col", lambda: summarize(log, "customer_id", "date", ["amount"])),
        ("freq", lambda: summarize(log, "customer_id", "date", freq=None)),
        ("freq", lambda: summarize(log, "customer_id", "date", freq=7)),
        ("freq", lambda: summarize(log, "customer_id", "date", freq="Q")),
        ("after_end", lambda: summarize(log, "customer_id", "date", after_end=None)),
        ("after_end", lambda: summarize(log, "customer_id", "date", after_end=["error"])),
        (
            "after_end",
            lambda: summarize(log, "customer_id", "date", after_end=np.array(["a", "b"])),
        ),
        (
            "include_first_transaction",
            lambda: summarize(log, "customer_id", "date", include_first_transaction="yes"),
        ),
        ("allow_negative", lambda: summarize(log, "customer_id", "date", allow_negative=1)),
        ("datetime_format", lambda: summarize(log, "customer_id", "date", datetime_format=5)),
        (
            "observation_period_end",
            lambda: summarize(log, "customer_id", "date", observation_period_end={}),
        ),
        (
            "observation_period_end",
            lambda: summarize(log, "customer_id", "date", observation_period_end=object()),
        ),
        ("calibration_period_end", lambda: cal(log, "customer_id", "date", [1997])),
        ("freq", lambda: cal(log, "customer_id", "date", "1997-06-30", freq=["W"])),
        (
            "include_first_transaction",
            lambda: cal(log, "customer_id", "date", "1997-06-30", include_first_transaction=None),
        ),
        (
            "observation_period_end",
            lambda: cal(
                log, "customer_id", "date", "1997-06-30", observation_period_end="1997-01-01"
            ),
        ),
        ("freq", lambda: clvrs.tracking(model, log, "customer_id", "date", freq=None)),
        (
            "calibration_period_end",
            lambda: clvrs.tracking(
                model, log, "customer_id", "date", calibration_period_end=pd.NaT
            ),
        ),
        (
            "freq",
            lambda: clvrs.tracking(
                model, log, "customer_id", "date", freq="H", observation_period_end="3000-01-01"
            ),
        ),
    ]


def test_hostile_columns_are_typed_errors_naming_them(log, model):
    from clvrs.simulate import simulate_transactions

    cases = [
        ("customer_id", lambda: summarize(log.assign(customer_id=None), "customer_id", "date")),
        (
            "date",
            lambda: summarize(pd.concat([log, log[["date"]]], axis=1), "customer_id", "date"),
        ),
        (
            "date",
            lambda: summarize(
                log.assign(date=pd.to_timedelta(np.arange(len(log)), unit="D")),
                "customer_id",
                "date",
            ),
        ),
        (
            "date",
            lambda: summarize(log.assign(date=[b"1997-01-01"] * len(log)), "customer_id", "date"),
        ),
        ("T", lambda: simulate_transactions(model, [])),
    ]
    for name, call in cases:
        with pytest.raises(InvalidDataError) as info:
            call()
        assert info.value.column == name, (name, info.value)


def test_every_wrong_argument_is_a_typed_error_naming_it(log, model):
    for name, call in _sweep_cases(log, model):
        with pytest.raises(ClvError) as info:
            call()
        err = info.value
        assert isinstance(err, (ValueError, TypeError)), name
        named = {getattr(err, "parameter", None), getattr(err, "column", None)}
        assert name in named or name in str(err), (name, err)


# -- simulated logs ------------------------------------------------------------------------


def test_simulated_logs_over_long_horizons_keep_their_dates(model):
    from clvrs.simulate import simulate_transactions

    ages = [30_000.0, 52.0]  # weeks: the first customer starts in 1445
    simulated = simulate_transactions(model, ages, end="2020-01-01", time_unit="W", seed=3)
    assert not simulated["date"].isna().any()
    summary = summarize(
        simulated, "customer_id", "date", observation_period_end="2020-01-01", freq="W"
    )
    np.testing.assert_array_equal(summary["T"], [30_000, 52])
    with pytest.raises(InvalidParameterError, match="at most") as info:
        simulate_transactions(model, [1e15], end="2020-01-01", time_unit="W")
    assert info.value.parameter == "T"
    for end in (pd.NaT, None, "x", 20200101):
        with pytest.raises(InvalidParameterError) as info:
            simulate_transactions(model, [10.0], end=end)
        assert info.value.parameter == "end"
