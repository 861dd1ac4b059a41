"""Plots draw the model's numbers: bar heights and line values are checked, not just that a
figure appeared."""

from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import pytest

import clvrs
from clvrs import plotting

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def model(cdnow):
    return clvrs.BetaGeoModel().fit(cdnow)


def test_period_transactions(model, cdnow):
    ax = plotting.plot_period_transactions(model, cdnow, max_frequency=7)
    bars = ax.patches
    actual = [b.get_height() for b in bars[:8]]
    expected = [b.get_height() for b in bars[8:]]
    assert actual[:7] == [1411, 439, 214, 100, 62, 38, 29]
    assert sum(actual) == len(cdnow) and sum(expected) == pytest.approx(len(cdnow))
    by_hand = sum(model.purchase_count_probability(np.zeros(len(cdnow)), cdnow["T"].to_numpy()))
    assert expected[0] == pytest.approx(by_hand)
    assert abs(expected[0] - 1411) / 1411 < 0.05  # the model fits CDNOW's zero class


def test_matrices_and_heterogeneity(model):
    ax = plotting.plot_probability_alive_matrix(model, T=39, max_frequency=10)
    data = ax.images[0].get_array()
    assert data.shape == (11, 40)
    x, t_x = 4, 20
    assert data[x, t_x] == pytest.approx(
        model.probability_alive(
            frequency=np.array([4.0]), recency=np.array([20.0]), T=np.array([39.0])
        )[0]  # fmt: skip
    )
    ax = plotting.plot_frequency_recency_matrix(model, T=39, max_frequency=10, t=52)
    assert ax.images[0].get_array()[x, t_x] == pytest.approx(
        model.expected_purchases(
            frequency=np.array([4.0]), recency=np.array([20.0]), T=np.array([39.0]), t=52
        )[0]  # fmt: skip
    )
    ax = plotting.plot_dropout_rate_heterogeneity(model)
    x_line, y_line = ax.lines[0].get_data()
    assert np.trapezoid(y_line, x_line) == pytest.approx(1.0, abs=0.02)
    ax = plotting.plot_transaction_rate_heterogeneity(model)
    assert len(ax.lines[0].get_xdata()) > 100


def test_tracking_holdout_and_history(model):
    log = clvrs.datasets.load_cdnow_transactions()
    track = clvrs.tracking(
        model, log, "customer_id", "date", calibration_period_end="1997-09-30",
        freq="D", freq_multiplier=7,
    )  # fmt: skip
    ax = plotting.plot_cumulative_transactions(track)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), track["actual_cumulative"])
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), track["expected_cumulative"])
    ax = plotting.plot_incremental_transactions(track)
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), track["expected"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        split = clvrs.calibration_and_holdout(
            log, "customer_id", "date", "1997-09-30", freq="D", freq_multiplier=7
        )
    ax = plotting.plot_calibration_purchases_vs_holdout_purchases(model, split, n=7)
    x_actual, y_actual = ax.lines[0].get_data()
    first = split["frequency_cal"] == 0
    assert y_actual[0] == pytest.approx(split.loc[first, "frequency_holdout"].mean())
    ax = plotting.plot_history_alive(model, 70, log, 1, "customer_id", "date", freq="D",
                                     freq_multiplier=7)  # fmt: skip
    alive = ax.lines[0].get_ydata()
    assert alive[0] == 1.0 and np.all((alive >= 0) & (alive <= 1))


def test_spend_and_subscriptions(cdnow):
    spend = clvrs.GammaGammaModel().fit(cdnow)
    ax = plotting.plot_spend_distribution(spend, cdnow)
    x_line, y_line = ax.lines[0].get_data()
    assert np.all(y_line >= 0) and y_line.max() > 0
    survivors = [1000, 631, 468, 382, 326, 289, 262, 241]
    sbg = clvrs.ShiftedBetaGeoModel().fit(survivors=survivors)
    ax = plotting.plot_survival(sbg, survivors, periods=12)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), sbg.survival(np.arange(13)))
    np.testing.assert_allclose(ax.lines[1].get_ydata(), np.array(survivors) / 1000)
    ax = plotting.plot_retention(sbg, survivors, periods=12)
    np.testing.assert_allclose(ax.lines[0].get_ydata(), sbg.retention_rate(np.arange(1, 13)))
