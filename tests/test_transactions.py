"""Transaction logs to summaries: the shipped CDNOW summary from its log, lifetimes'
semantics, input forms (pandas, polars, pyarrow; any id type; string dates), errors naming the
column and row, calibration/holdout and tracking."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs.exceptions import InvalidDataError, InvalidParameterError


@pytest.fixture(scope="module")
def log():
    return clvrs.datasets.load_cdnow_transactions()


def _cdnow_summary(log, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return clvrs.summarize_transactions(
            log,
            "customer_id",
            "date",
            observation_period_end="1997-09-30",
            freq="D",
            freq_multiplier=7,
            after_end="exclude",
            **kwargs,
        )


def test_the_cdnow_log_gives_the_shipped_summary(log, cdnow):
    summary = _cdnow_summary(log, monetary_value_col="amount")
    assert len(summary) == 2357
    assert summary.index.equals(cdnow.index)
    histogram = summary["frequency"].value_counts().sort_index().head(7).tolist()
    assert histogram == [1411, 439, 214, 100, 62, 38, 29]
    # The shipped file rounds to two decimals.
    for column in ["frequency", "recency", "T"]:
        np.testing.assert_array_equal(summary[column].round(2), cdnow[column], err_msg=column)
    np.testing.assert_allclose(
        summary["monetary_value"], cdnow["monetary_value"], atol=0.005 + 1e-9
    )
    spend = summary.loc[summary["frequency"] > 0, "monetary_value"]
    assert len(spend) == 946
    assert round(spend.mean()) == 35 and round(spend.median()) == 27 and round(spend.max()) == 300


def _brute_force(log, end, freq_days, include_first=False):
    """The definition, directly in pandas (daily periods)."""
    rows = log[log["date"] <= end].copy()
    rows["period"] = rows["date"].dt.floor("D")
    per = rows.groupby(["customer_id", "period"])["amount"].sum().reset_index()
    out = {}
    for cid, group in per.groupby("customer_id"):
        group = group.sort_values("period")
        first, last = group["period"].iloc[0], group["period"].iloc[-1]
        repeats = group["amount"].iloc[1:]
        out[cid] = {
            "frequency": len(group) - (0 if include_first else 1),
            "recency": (last - first).days / freq_days,
            "T": (pd.Timestamp(end) - first).days / freq_days,
            "monetary_value": (
                group["amount"].mean()
                if include_first
                else (repeats.mean() if len(repeats) else 0.0)
            ),
        }
    return pd.DataFrame.from_dict(out, orient="index")


@pytest.mark.parametrize("include_first", [False, True])
def test_matches_the_definition(log, include_first):
    summary = _cdnow_summary(
        log, monetary_value_col="amount", include_first_transaction=include_first
    )
    expected = _brute_force(log.head(3000), "1997-09-30", 7.0, include_first)
    got = _cdnow_summary(
        log.head(3000), monetary_value_col="amount", include_first_transaction=include_first
    )
    pd.testing.assert_frame_equal(
        got, expected.rename_axis("customer_id"), check_dtype=False, atol=1e-12
    )
    assert len(summary) == 2357


def test_weeks_months_and_hours(log):
    weeks = clvrs.summarize_transactions(log, "customer_id", "date", freq="W")
    days = clvrs.summarize_transactions(log, "customer_id", "date", freq="D")
    assert (weeks["frequency"] <= days["frequency"]).all()
    # 1997-01-01 is a Wednesday, its week starts Monday 1996-12-30; the last date is 1998-06-30.
    first_week = pd.Timestamp("1996-12-30")
    last_week = pd.Timestamp("1998-06-29")
    assert weeks["T"].max() == (last_week - first_week).days / 7
    months = clvrs.summarize_transactions(log, "customer_id", "date", freq="M")
    assert months["T"].max() == 17  # January 1997 .. June 1998
    hours = clvrs.summarize_transactions(log, "customer_id", "date", freq="H", freq_multiplier=24)
    np.testing.assert_allclose(hours["T"], days["T"])


def test_input_forms_and_id_types(log):
    small = log.head(500)
    reference = clvrs.summarize_transactions(
        small, "customer_id", "date", monetary_value_col="amount"
    )
    strings = small.assign(
        customer_id="c" + small["customer_id"].astype(str),
        date=small["date"].dt.strftime("%Y%m%d"),
    )
    from_strings = clvrs.summarize_transactions(
        strings, "customer_id", "date", monetary_value_col="amount", datetime_format="%Y%m%d"
    )
    np.testing.assert_array_equal(
        from_strings.to_numpy(),
        reference.loc[sorted(reference.index, key=lambda i: "c" + str(i))].to_numpy(),
    )
    categorical = small.assign(customer_id=small["customer_id"].astype("category"))
    from_categorical = clvrs.summarize_transactions(
        categorical, "customer_id", "date", monetary_value_col="amount"
    )
    np.testing.assert_array_equal(from_categorical.to_numpy(), reference.to_numpy())
    pl = pytest.importorskip("polars")
    frame = pl.from_pandas(small)
    from_polars = clvrs.summarize_transactions(
        frame, "customer_id", "date", monetary_value_col="amount"
    )
    assert isinstance(from_polars, pl.DataFrame)
    assert from_polars.columns == ["customer_id", "frequency", "recency", "T", "monetary_value"]
    np.testing.assert_array_equal(from_polars.drop("customer_id").to_numpy(), reference.to_numpy())
    pa = pytest.importorskip("pyarrow")
    from_arrow = clvrs.summarize_transactions(
        pa.Table.from_pandas(small), "customer_id", "date", monetary_value_col="amount"
    )
    pd.testing.assert_frame_equal(from_arrow, reference)
    # The summary fits directly.
    model = clvrs.BetaGeoModel().fit(reference)
    assert np.isfinite(model.log_likelihood_)


def test_bad_input_names_column_and_row(log):
    small = log.head(50).copy()
    with pytest.raises(InvalidDataError) as info:
        clvrs.summarize_transactions(small, "customer", "date")
    assert info.value.column == "customer"
    bad = small.astype({"customer_id": "float64"})
    bad.loc[7, "customer_id"] = np.nan
    with pytest.raises(InvalidDataError) as info:
        clvrs.summarize_transactions(bad, "customer_id", "date")
    assert info.value.column == "customer_id" and info.value.row == 7
    bad = small.copy()
    bad.loc[4, "date"] = pd.NaT
    with pytest.raises(InvalidDataError) as info:
        clvrs.summarize_transactions(bad, "customer_id", "date")
    assert info.value.column == "date" and info.value.row == 4
    bad = small.assign(date=small["date"].dt.strftime("%Y-%m-%d"))
    bad.loc[9, "date"] = "not a date"
    with pytest.raises(InvalidDataError) as info:
        clvrs.summarize_transactions(bad, "customer_id", "date", datetime_format="%Y-%m-%d")
    assert info.value.column == "date" and info.value.row == 9
    for value, rule in [(np.nan, "finite"), (-3.0, "allow_negative")]:
        bad = small.copy()
        bad.loc[11, "amount"] = value
        with pytest.raises(InvalidDataError, match=rule) as info:
            clvrs.summarize_transactions(bad, "customer_id", "date", monetary_value_col="amount")
        assert info.value.column == "amount" and info.value.row == 11
    returns = small.copy()
    returns.loc[11, "amount"] = -3.0
    clvrs.summarize_transactions(
        returns, "customer_id", "date", monetary_value_col="amount", allow_negative=True
    )
    with pytest.raises(InvalidDataError, match="after observation_period_end") as info:
        clvrs.summarize_transactions(
            log, "customer_id", "date", observation_period_end="1997-09-30"
        )
    assert info.value.column == "date"
    later = int((log["date"] > "1997-09-30").sum())
    with pytest.warns(UserWarning, match=f"^{later} transactions"):
        clvrs.summarize_transactions(
            log, "customer_id", "date", observation_period_end="1997-09-30", after_end="exclude"
        )
    with pytest.raises(InvalidParameterError):
        clvrs.summarize_transactions(small, "customer_id", "date", freq="Q")


def test_calibration_and_holdout(log):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        split = clvrs.calibration_and_holdout(
            log,
            "customer_id",
            "date",
            calibration_period_end="1997-09-30",
            observation_period_end="1998-06-30",
            freq="D",
            freq_multiplier=7,
            monetary_value_col="amount",
        )
    cal = _cdnow_summary(log, monetary_value_col="amount")
    np.testing.assert_array_equal(split["frequency_cal"], cal["frequency"])
    np.testing.assert_array_equal(split["T_cal"], cal["T"])
    assert split["duration_holdout"].iloc[0] == pytest.approx(273 / 7)
    # Holdout counts by the definition: distinct purchase days after the cut-off.
    later = log[log["date"] > "1997-09-30"]
    days = later.groupby("customer_id")["date"].nunique()
    expected = days.reindex(split.index, fill_value=0)
    np.testing.assert_array_equal(split["frequency_holdout"], expected.to_numpy())
    per_day = later.groupby(["customer_id", "date"])["amount"].sum().groupby("customer_id").mean()
    np.testing.assert_allclose(
        split["monetary_value_holdout"], per_day.reindex(split.index, fill_value=0.0), rtol=1e-12
    )
    assert split["frequency_holdout"].sum() > 0


def test_tracking(log):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cal = _cdnow_summary(log)
    model = clvrs.BetaGeoModel().fit(cal)
    track = clvrs.tracking(
        model,
        log,
        "customer_id",
        "date",
        calibration_period_end="1997-09-30",
        freq="D",
        freq_multiplier=7,
    )
    # Actual repeat transactions: distinct purchase days after each customer's first.
    per_customer = log.groupby("customer_id")["date"].nunique() - 1
    assert track["actual"].sum() == per_customer.sum()
    assert track.index[0] == pd.Timestamp("1997-01-01")
    assert (
        track["calibration"].sum()
        == (pd.Timestamp("1997-09-30") - pd.Timestamp("1997-01-01")).days + 1
    )
    # The model tracks the calibration period closely (BG/NBD on CDNOW).
    end_cal = track[track["calibration"]].iloc[-1]
    assert end_cal["expected_cumulative"] == pytest.approx(end_cal["actual_cumulative"], rel=0.02)
    np.testing.assert_allclose(track["expected"].cumsum(), track["expected_cumulative"])


def test_polars_aware_dates_are_summarised_on_their_wall_clock() -> None:
    """Timezone-aware dates count on their own wall clock, from pandas and polars alike."""
    polars = pytest.importorskip("polars")
    log = pd.DataFrame(
        {
            "customer_id": [1, 1, 2],
            "date": pd.to_datetime(
                ["2024-01-02 23:30", "2024-01-09 12:00", "2024-01-03 10:00"]
            ).tz_localize("US/Eastern"),
        }
    )
    options = {"observation_period_end": "2024-01-10"}
    want = clvrs.summarize_transactions(log, "customer_id", "date", **options)
    got = clvrs.summarize_transactions(polars.from_pandas(log), "customer_id", "date", **options)
    # Customer 1's first purchase is late on the 2nd on its own clock (the 3rd in UTC).
    assert want["T"].tolist() == [8.0, 7.0]
    np.testing.assert_array_equal(got["T"].to_numpy(), want["T"].to_numpy())
    np.testing.assert_array_equal(got["recency"].to_numpy(), want["recency"].to_numpy())


def test_an_aware_period_end_is_read_on_the_transactions_clock() -> None:
    """An aware observation_period_end is converted to the transactions' timezone first: 01:00
    UTC on the 10th is still the 9th in US/Eastern."""
    log = pd.DataFrame(
        {
            "customer_id": [1, 1],
            "date": pd.to_datetime(["2024-01-02 12:00", "2024-01-05 12:00"]).tz_localize(
                "US/Eastern"
            ),
        }
    )
    end = pd.Timestamp("2024-01-10 01:00", tz="UTC")
    summary = clvrs.summarize_transactions(log, "customer_id", "date", observation_period_end=end)
    assert summary["T"].tolist() == [7.0]
    naive = log.assign(date=log["date"].dt.tz_localize(None))
    # A naive log reads the end on its own wall clock, as before.
    summary = clvrs.summarize_transactions(naive, "customer_id", "date", observation_period_end=end)
    assert summary["T"].tolist() == [8.0]
