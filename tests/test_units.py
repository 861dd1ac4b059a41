"""Time units travel with the data (issue 17 item 6): summaries record their period, models
remember it, predictions and CLV refuse another unit; plain arrays stay unit-free."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs import InvalidDataError, InvalidParameterError, ModelFileError, TimeUnitError

END = "1997-09-30"


def _summary(freq: str = "W", freq_multiplier: float = 1, end: str = END, **kwargs):
    log = clvrs.datasets.load_cdnow_transactions()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rows after the end are left out
        return clvrs.summarize_transactions(
            log,
            "customer_id",
            "date",
            monetary_value_col="amount",
            observation_period_end=end,
            freq=freq,
            freq_multiplier=freq_multiplier,
            after_end="exclude",
            **kwargs,
        )


@pytest.fixture(scope="module")
def weeks():
    return _summary("W")


@pytest.fixture(scope="module")
def days():
    return _summary("D")


@pytest.fixture(scope="module")
def weekly_model(weeks):
    return clvrs.BetaGeoModel().fit(weeks)


def test_summaries_record_their_period():
    assert _summary("W").attrs["time_unit"] == "W"
    assert _summary("d").attrs["time_unit"] == "D"
    assert _summary("D", 7).attrs["time_unit"] == "7D"
    assert _summary("H", 24).attrs["time_unit"] == "24H"
    log = clvrs.datasets.load_cdnow_transactions()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        split = clvrs.calibration_and_holdout(
            log, "customer_id", "date", END, "1998-06-30", freq="D", freq_multiplier=7
        )
    assert split.attrs["time_unit"] == "7D"


def test_polars_summaries_are_unit_free():
    pl = pytest.importorskip("polars")
    log = pl.from_pandas(clvrs.datasets.load_cdnow_transactions())
    summary = clvrs.summarize_transactions(log, "customer_id", "date", freq="W")
    model = clvrs.BetaGeoModel().fit(summary)
    assert model.time_unit_ is None
    # Said explicitly, the unit is kept and checked against pandas data.
    model = clvrs.BetaGeoModel().fit(summary, time_unit="W")
    assert model.time_unit_ == "W"
    with pytest.raises(TimeUnitError):
        model.expected_purchases(_summary("D"), t=1)


def test_a_model_remembers_the_unit_and_shows_it(weekly_model, weeks):
    assert weekly_model.time_unit_ == "W"
    assert "time unit W" in repr(weekly_model)
    assert "time unit W" in weekly_model._repr_html_()
    summary = weekly_model.summary
    assert summary.attrs["time_unit"] == "W" and "time unit W" in summary.to_string()
    # Unit-free: fitted on arrays.
    arrays = {k: weeks[k].to_numpy() for k in ("frequency", "recency", "T")}
    free = clvrs.BetaGeoModel().fit(**arrays)
    assert free.time_unit_ is None and "time unit" not in repr(free)
    np.testing.assert_allclose(free.params_, weekly_model.params_, rtol=1e-6)


def test_predictions_on_another_unit_are_refused(weekly_model, days):
    with pytest.raises(TimeUnitError) as info:
        weekly_model.expected_purchases(days, t=10)
    err = info.value
    message = str(err)
    assert '"W"' in message and '"D"' in message and 'freq="W"' in message
    assert isinstance(err, InvalidDataError) and isinstance(err, ValueError)
    assert (err.expected, err.found) == ("W", "D")
    for method in ("probability_alive", "expected_purchases", "expected_purchases_probability"):
        if hasattr(weekly_model, method):
            with pytest.raises(TimeUnitError):
                getattr(weekly_model, method)(days)
    # Columns of a days summary passed as keywords carry the unit too.
    with pytest.raises(TimeUnitError):
        weekly_model.probability_alive(
            frequency=days["frequency"], recency=days["recency"], T=days["T"]
        )
    # Plain arrays are unit-free: the user's responsibility, as before.
    out = weekly_model.probability_alive(
        frequency=days["frequency"].to_numpy(),
        recency=days["recency"].to_numpy(),
        T=days["T"].to_numpy(),
    )
    assert out.shape == (len(days),)


def test_same_length_units_agree(weekly_model, weeks):
    # Weeks counted from whole days ("7D") are weeks.
    seven_days = _summary("D", 7)
    assert seven_days.attrs["time_unit"] == "7D"
    out = weekly_model.expected_purchases(seven_days, t=4)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize(
    ("unit", "same_as", "per_month"),
    [("7D", "W", 4.345), ("168H", "W", 4.345), ("14D", "2W", 4.345 / 2), ("24H", "D", 30.0)],
)
def test_units_of_one_length_get_one_month(unit, same_as, per_month):
    # A unit counts months in the coarsest base period dividing it (weeks counted in days are
    # valued as weeks, 4.345 a month, not as 7 of lifetimes' 30-day months' days).
    from clvrs import _units

    assert _units.units_per_month(unit) == pytest.approx(per_month, rel=1e-12)
    assert _units.units_per_month(unit) == _units.units_per_month(same_as)
    assert _units.units_per_month("3D") == pytest.approx(10.0)
    assert _units.units_per_month("36H") == pytest.approx(20.0)


def test_typical_workflow_summarize_filter_fit_predict_on_another_summary(weeks):
    # Filtering rows (and selecting columns, copying, assigning) keeps the unit.
    repeat = weeks[weeks["frequency"] > 0]
    assert repeat.attrs["time_unit"] == "W"
    model = clvrs.BetaGeoModel().fit(repeat[["frequency", "recency", "T"]].copy())
    assert model.time_unit_ == "W"
    spend = clvrs.GammaGammaModel().fit(repeat)
    later = _summary("W", end="1998-06-30")  # the same customers, scored later
    assert np.all(np.isfinite(model.expected_purchases(later, t=52)))
    clv = clvrs.customer_lifetime_value(model, spend, later, time=12)
    assert clv.notna().all()
    with pytest.raises(TimeUnitError):
        model.expected_purchases(_summary("M", end="1998-06-30"), t=12)


def test_merge_drops_the_unit_and_fit_time_unit_restores_it(weeks):
    # pandas drops attrs in merge/join: the result is unit-free (documented) ...
    extra = pd.DataFrame({"segment": 1}, index=weeks.index)
    joined = weeks.join(extra)
    assert "time_unit" not in joined.attrs
    assert clvrs.BetaGeoModel().fit(joined).time_unit_ is None
    # ... and fit(time_unit=...) says it.
    model = clvrs.BetaGeoModel().fit(joined, time_unit="W")
    assert model.time_unit_ == "W"


def test_fit_time_unit_must_agree_with_the_data(days):
    with pytest.raises(TimeUnitError, match='"W" contradicts') as info:
        clvrs.BetaGeoModel().fit(days, time_unit="W")
    assert info.value.parameter == "time_unit"
    assert clvrs.BetaGeoModel().fit(days, time_unit="d").time_unit_ == "D"
    with pytest.raises(InvalidParameterError, match="time_unit"):
        clvrs.BetaGeoModel().fit(days, time_unit="fortnight")


def test_a_garbage_recorded_unit_is_refused(days):
    frame = days.copy()
    frame.attrs["time_unit"] = "weeks?"
    with pytest.raises(TimeUnitError, match="time_unit"):
        clvrs.BetaGeoModel().fit(frame)


def test_clv_uses_the_model_unit_and_refuses_a_contradicting_one(days):
    model = clvrs.BetaGeoModel().fit(days)
    spend = clvrs.GammaGammaModel().fit(days)
    default = clvrs.customer_lifetime_value(model, spend, days, time=12)
    explicit = clvrs.customer_lifetime_value(model, spend, days, time=12, time_unit="D")
    np.testing.assert_array_equal(default, explicit)
    # (The old default, "W", valued 12 months of 4.345 days each: a third of the value.)
    arrays = {k: days[k].to_numpy() for k in ("frequency", "recency", "T", "monetary_value")}
    unit_free = clvrs.BetaGeoModel.from_params(**model.params_)
    old = clvrs.customer_lifetime_value(unit_free, spend, time=12, time_unit="W", **arrays)
    assert float(default.sum()) > 2 * float(old.sum())
    with pytest.raises(TimeUnitError, match='"D"') as info:
        clvrs.customer_lifetime_value(model, spend, days, time=12, time_unit="W")
    assert isinstance(info.value, InvalidParameterError) and info.value.parameter == "time_unit"
    with pytest.raises(TimeUnitError):
        clvrs.customer_lifetime_value(
            model, spend, days, time=None, method="continuous", time_unit="M"
        )
    # A number of units per month within 2% of the model's (30 days) is the same unit.
    np.testing.assert_allclose(
        clvrs.customer_lifetime_value(model, spend, days, time=12, time_unit=30.0), default
    )


def test_clv_unit_free_model_keeps_weeks_by_default(weeks):
    arrays = {k: weeks[k].to_numpy() for k in ("frequency", "recency", "T")}
    model = clvrs.BetaGeoModel().fit(**arrays)
    spend = clvrs.GammaGammaModel().fit(
        frequency=arrays["frequency"], monetary_value=weeks["monetary_value"].to_numpy()
    )
    money = weeks["monetary_value"].to_numpy()
    a = clvrs.customer_lifetime_value(model, spend, time=12, monetary_value=money, **arrays)
    b = clvrs.customer_lifetime_value(
        model, spend, time=12, monetary_value=money, time_unit="W", **arrays
    )
    np.testing.assert_array_equal(a, b)
    # Any unit goes with a unit-free model.
    clvrs.customer_lifetime_value(
        model, spend, time=12, monetary_value=money, time_unit="D", **arrays
    )


def test_from_params_takes_a_time_unit(days):
    model = clvrs.BetaGeoModel.from_params(r=0.24, alpha=4.4, a=0.79, b=2.4, time_unit="W")
    assert model.time_unit_ == "W"
    with pytest.raises(TimeUnitError):
        model.probability_alive(days)
    assert clvrs.BetaGeoModel.from_params(r=0.24, alpha=4.4, a=0.79, b=2.4).time_unit_ is None
    with pytest.raises(InvalidParameterError, match="time_unit"):
        clvrs.BetaGeoModel.from_params(r=0.24, alpha=4.4, a=0.79, b=2.4, time_unit="year")


def test_the_unit_is_saved_and_loaded(weekly_model, tmp_path, days):
    path = tmp_path / "m.json"
    weekly_model.save(path)
    doc = json.loads(path.read_text())
    assert doc["time_unit"] == "W" and doc["format_version"] == 2
    loaded = clvrs.load(path)
    assert loaded.time_unit_ == "W"
    with pytest.raises(TimeUnitError):
        loaded.expected_purchases(days, t=1)
    again = pickle.loads(pickle.dumps(weekly_model))
    assert again.time_unit_ == "W"


def test_unit_free_models_still_write_format_version_1(weeks, tmp_path):
    arrays = {k: weeks[k].to_numpy() for k in ("frequency", "recency", "T")}
    doc = clvrs.BetaGeoModel().fit(**arrays).to_dict()
    assert doc["format_version"] == 1 and "time_unit" not in doc


def test_older_documents_without_a_unit_load_unit_free(weekly_model, days):
    doc = weekly_model.to_dict()
    doc.pop("time_unit")
    doc["format_version"] = 1  # as written before units were saved
    loaded = clvrs._base.load_document(doc)
    assert loaded.time_unit_ is None
    assert np.all(np.isfinite(loaded.expected_purchases(days, t=1)))


def test_a_document_with_a_bad_unit_is_refused(weekly_model):
    doc = weekly_model.to_dict()
    doc["time_unit"] = "fortnights"
    with pytest.raises(ModelFileError, match="time_unit"):
        clvrs._base.load_document(doc)


def test_segments_keep_the_unit(weeks, tmp_path, days):
    data = weeks.assign(half=np.arange(len(weeks)) % 2)
    assert data.attrs["time_unit"] == "W"
    segmented = clvrs.fit_segments(clvrs.BetaGeoModel(), data, "half")
    assert {m.time_unit_ for m in segmented.models_.values()} == {"W"}
    path = tmp_path / "s.json"
    segmented.save(path)
    assert json.loads(path.read_text())["format_version"] == 2
    loaded = clvrs.load(path)
    assert {m.time_unit_ for m in loaded.models_.values()} == {"W"}
    with pytest.raises(TimeUnitError):
        segmented.models_[0].expected_purchases(days, t=1)


def test_tracking_counts_periods_in_the_model_unit(weekly_model):
    log = clvrs.datasets.load_cdnow_transactions()
    # tracking's default freq is days: with a weekly model its expectations were 7x too few.
    with pytest.raises(TimeUnitError, match='freq="W"') as info:
        clvrs.tracking(weekly_model, log, "customer_id", "date", END)
    assert info.value.parameter == "freq"
    track = clvrs.tracking(
        weekly_model, log, "customer_id", "date", END, freq="D", freq_multiplier=7
    )
    assert track["expected"].sum() > 0


def test_holdout_evaluation_refuses_a_split_in_another_unit(weekly_model):
    log = clvrs.datasets.load_cdnow_transactions()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        days = clvrs.calibration_and_holdout(log, "customer_id", "date", END, "1998-06-30")
        weeks = clvrs.calibration_and_holdout(
            log, "customer_id", "date", END, "1998-06-30", freq="W"
        )
    with pytest.raises(TimeUnitError, match='"D"'):
        clvrs.holdout_evaluation(weekly_model, days)
    assert clvrs.holdout_evaluation(weekly_model, weeks).customers["predicted"].notna().all()
