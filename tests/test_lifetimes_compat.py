"""The lifetimes compatibility layer: lifetimes' names and signatures, clvrs' numbers."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import reference_value_models as ref

import clvrs
from clvrs.lifetimes import (
    BetaGeoBetaBinomFitter,
    BetaGeoFitter,
    GammaGammaFitter,
    ModifiedBetaGeoFitter,
    ParetoNBDFitter,
)
from clvrs.lifetimes.utils import (
    calibration_and_holdout_data,
    summary_data_from_transaction_data,
)


def test_fitters_match_the_models(cdnow, tmp_path):
    f, r, t = cdnow["frequency"], cdnow["recency"], cdnow["T"]
    for fitter, model in [
        (BetaGeoFitter(), clvrs.BetaGeoModel()),
        (ModifiedBetaGeoFitter(), clvrs.ModifiedBetaGeoModel()),
        (ParetoNBDFitter(), clvrs.ParetoNBDModel()),
    ]:
        fitter.fit(f, r, t)
        model.fit(cdnow)
        np.testing.assert_array_equal(fitter.params_.to_numpy(), model.params_.to_numpy())
        assert list(fitter.summary.columns) == [
            "coef", "se(coef)", "lower 95% bound", "upper 95% bound"
        ]  # fmt: skip
        np.testing.assert_array_equal(
            fitter.conditional_expected_number_of_purchases_up_to_time(10, f, r, t),
            model.expected_purchases(cdnow, t=10),
        )
        np.testing.assert_array_equal(
            fitter.predict(10, f, r, t), model.expected_purchases(cdnow, t=10)
        )
        np.testing.assert_array_equal(
            fitter.conditional_probability_alive(f, r, t), model.probability_alive(cdnow)
        )
        assert fitter.expected_number_of_purchases_up_to_time(
            39
        ) == model.expected_purchases_new_customer(39)
        assert fitter.probability_of_n_purchases_up_to_time(39, 2) == pytest.approx(
            model.purchase_count_probability(2, 39)
        )
        path = tmp_path / f"{type(fitter).__name__}.json"
        fitter.save_model(str(path))
        loaded = type(fitter)()
        loaded.load_model(str(path))
        pd.testing.assert_series_equal(loaded.params_, fitter.params_)
    assert "fitted with 2357 subjects" in repr(fitter)


def test_lifetimes_clv_numbers(cdnow):
    call = ref.LIFETIMES_CLV_CALL
    bgf = BetaGeoFitter()
    bgf.params_ = pd.Series({k: call[k] for k in ("r", "alpha", "a", "b")})
    ggf = GammaGammaFitter()
    ggf.params_ = pd.Series({"p": call["p"], "q": call["q"], "v": call["gamma"]})
    head = cdnow.head(50)
    clv = ggf.customer_lifetime_value(
        bgf, head["frequency"], head["recency"], head["T"], head["monetary_value"],
        time=12, discount_rate=0.01, freq="W",
    )  # fmt: skip
    np.testing.assert_allclose(clv, ref.LIFETIMES_CLV_CDNOW_FIRST50, rtol=1e-9)
    fitted = GammaGammaFitter().fit(cdnow["frequency"], cdnow["monetary_value"])
    assert list(fitted.params_.index) == ["p", "q", "v"]
    # lifetimes: without arguments, the expected spend of each fitted customer
    np.testing.assert_allclose(
        fitted.conditional_expected_average_profit(),
        fitted._model.expected_average_spend(
            frequency=cdnow["frequency"], monetary_value=cdnow["monetary_value"]
        ),
    )


def test_bgbb_and_utils():
    donations = clvrs.datasets.load_donations()
    bb = BetaGeoBetaBinomFitter().fit(
        donations["frequency"], donations["recency"], donations["periods"], donations["weights"]
    )
    np.testing.assert_allclose(bb.params_, [1.204, 0.750, 0.657, 2.783], rtol=1e-3)
    table = bb.expected_number_of_transactions_in_first_n_periods(6)
    # lifetimes' table: expected customers by frequency (Hardie's In-Sample Fit sheet)
    assert table["model"].sum() == pytest.approx(donations["weights"].sum())
    np.testing.assert_allclose(table["model"].loc[[0, 6]], [3454.9, 1253.1], atol=0.5)
    log = clvrs.datasets.load_cdnow_transactions()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # lifetimes drops rows after the end without a word
        summary = summary_data_from_transaction_data(
            log, "customer_id", "date", observation_period_end="1997-09-30", freq="D",
            freq_multiplier=7,
        )  # fmt: skip
    assert len(summary) == 2357
    split = calibration_and_holdout_data(
        log, "customer_id", "date", "1997-09-30", freq="D", freq_multiplier=7
    )
    assert {"frequency_cal", "frequency_holdout", "duration_holdout"} <= set(split.columns)


def test_lifetimes_plotting_datasets_and_tracking():
    import matplotlib

    matplotlib.use("Agg")
    from clvrs.lifetimes import datasets, plotting, utils

    summary = datasets.load_cdnow_summary()
    assert list(summary.columns) == ["ID", "frequency", "recency", "T"]  # as lifetimes reads it
    assert list(datasets.load_donations().columns) == ["frequency", "recency", "periods", "weights"]
    bgf = BetaGeoFitter().fit(summary["frequency"], summary["recency"], summary["T"])
    ax = plotting.plot_period_transactions(bgf)
    assert [b.get_height() for b in ax.patches[:7]] == [1411, 439, 214, 100, 62, 38, 29]
    plotting.plot_probability_alive_matrix(bgf)
    plotting.plot_frequency_recency_matrix(bgf)
    log = clvrs.datasets.load_cdnow_transactions()
    table = utils.expected_cumulative_transactions(
        bgf, log, "date", "customer_id", 700, freq="D", freq_multiplier=7
    )
    assert list(table.columns) == ["actual", "predicted"] and len(table) == 100  # weeks
    assert table["actual"].is_monotonic_increasing
    ax = plotting.plot_cumulative_transactions(bgf, log, "date", "customer_id", 700, 39,
                                               freq="D", freq_multiplier=7)  # fmt: skip
    np.testing.assert_allclose(ax.lines[0].get_ydata(), table["actual"])
