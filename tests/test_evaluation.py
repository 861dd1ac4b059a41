"""Holdout evaluation, model comparison and likelihood-ratio tests on CDNOW."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

import clvrs
from clvrs.evaluation import _chi2_sf


@pytest.fixture(scope="module")
def split():
    log = clvrs.datasets.load_cdnow_transactions()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return clvrs.calibration_and_holdout(
            log, "customer_id", "date", calibration_period_end="1997-09-30",
            observation_period_end="1998-06-30", freq="D", freq_multiplier=7,
        )  # fmt: skip


def _calibration(split):
    return split.rename(
        columns={"frequency_cal": "frequency", "recency_cal": "recency", "T_cal": "T"}
    )


def test_holdout_evaluation_by_definition(split):
    model = clvrs.BetaGeoModel().fit(_calibration(split))
    result = clvrs.holdout_evaluation(model, split)
    predicted = model.expected_purchases(_calibration(split), t=split["duration_holdout"])
    np.testing.assert_allclose(result.customers["predicted"], predicted)
    error = predicted.to_numpy() - split["frequency_holdout"].to_numpy()
    m = result.metrics
    assert m["mae"] == pytest.approx(np.abs(error).mean())
    assert m["rmse"] == pytest.approx(math.sqrt((error**2).mean()))
    assert m["bias"] == pytest.approx(error.mean())
    assert m["correlation"] == pytest.approx(
        np.corrcoef(predicted, split["frequency_holdout"])[0, 1]
    )
    assert m["predicted_total"] == pytest.approx(predicted.sum())
    assert m["actual_total"] == split["frequency_holdout"].sum()
    assert m["tracking_error"] == pytest.approx(m["predicted_total"] / m["actual_total"] - 1)


def test_compare_models_and_likelihood_ratio(split):
    cal = _calibration(split)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", clvrs.ConvergenceWarning)
        models = [
            clvrs.BetaGeoModel().fit(cal),
            clvrs.ModifiedBetaGeoModel().fit(cal),
            clvrs.ParetoNBDModel().fit(cal),
            clvrs.GammaGompertzNBDModel().fit(cal),
        ]
    table = clvrs.compare_models(models, split)
    assert list(table.index) == [
        "BetaGeoModel", "ModifiedBetaGeoModel", "ParetoNBDModel", "GammaGompertzNBDModel"
    ]  # fmt: skip
    assert table.loc["BetaGeoModel", "log_likelihood"] == pytest.approx(-9582.43, abs=0.01)
    assert table.loc["ParetoNBDModel", "aic"] == pytest.approx(2 * 4 + 2 * 9594.97, abs=0.05)
    assert table.loc["GammaGompertzNBDModel", "lr_vs"] == "ParetoNBDModel"
    assert table.loc["GammaGompertzNBDModel", "lr_p_value"] == pytest.approx(0.5, abs=0.01)
    assert {"mae", "rmse", "correlation", "bias", "tracking_error"} <= set(table.columns)
    sbg = clvrs.ShiftedBetaGeoModel().fit(survivors=[1000, 869, 743, 653, 593, 551, 517, 491])
    bdw = clvrs.BetaDiscreteWeibullModel().fit(survivors=[1000, 869, 743, 653, 593, 551, 517, 491])
    test = clvrs.likelihood_ratio_test(sbg, bdw)
    assert test["statistic"] == pytest.approx(2 * (bdw.log_likelihood_ - sbg.log_likelihood_))
    assert test["p_value"] == pytest.approx(stats.chi2.sf(test["statistic"], 1), rel=1e-10)
    with pytest.raises(clvrs.InvalidParameterError):
        clvrs.likelihood_ratio_test(models[0], models[1])


@pytest.mark.parametrize("df", [1, 2, 3, 4, 7])
def test_chi_squared_tail(df):
    for x in [0.1, 1.0, 3.84, 10.0, 40.0]:
        assert _chi2_sf(x, df) == pytest.approx(stats.chi2.sf(x, df), rel=1e-12)


def test_holdout_without_purchases_says_why_there_is_no_tracking_error(split):
    # it showed "tracking error +nan%" (a relative error of a zero total)
    model = clvrs.BetaGeoModel().fit(_calibration(split))
    quiet = split.assign(frequency_holdout=0)
    result = clvrs.holdout_evaluation(model, quiet)
    m = result.metrics
    assert m["actual_total"] == 0
    assert m["predicted_total"] == pytest.approx(result.customers["predicted"].sum())
    assert math.isnan(m["tracking_error"])  # documented: undefined for a zero total
    assert math.isnan(m["correlation"])  # the actual counts are constant
    for shown in (repr(result), result._repr_html_()):
        assert "nan" not in shown.lower(), shown
        assert "n/a: no holdout purchases" in shown
        assert "n/a: every customer has the same actual count" in shown
    # with purchases the display gives the number
    full = clvrs.holdout_evaluation(model, split)
    assert f"tracking error {full.metrics['tracking_error']:+.1%}" in repr(full)
    assert "n/a" not in repr(full) + full._repr_html_()
