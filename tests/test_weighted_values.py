"""Value functions on aggregated tables: rows that stand for several customers (a weights
column) are counted as customers, or refused, never counted as one customer each."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs.exceptions import InvalidDataError, InvalidParameterError


@pytest.fixture(scope="module")
def tables():
    full = clvrs.datasets.load_cdnow_summary()[["frequency", "recency", "T", "monetary_value"]]
    agg = (
        full.groupby(["frequency", "recency", "T", "monetary_value"])
        .size()
        .rename("weights")
        .reset_index()
    )
    model = clvrs.BetaGeoModel().fit(full)
    spend = clvrs.GammaGammaModel().fit(full[full["frequency"] > 0])
    clv_full = clvrs.customer_lifetime_value(model, spend, full)
    clv_agg = clvrs.customer_lifetime_value(clvrs.BetaGeoModel().fit(agg), spend, agg)
    return full, agg, clv_full, clv_agg


def test_an_aggregated_table_has_fewer_rows_than_customers(tables):
    full, agg, _, _ = tables
    assert len(agg) < len(full) == int(agg["weights"].sum()) == 2357


def test_segments_and_budget_refuse_values_of_weighted_rows_without_weights(tables):
    _, _, _, clv_agg = tables
    with pytest.raises(InvalidParameterError, match=r"weights=data\['weights'\]"):
        clvrs.clv_segments(clv_agg)
    with pytest.raises(InvalidParameterError, match="several customers"):
        clvrs.acquisition_budget(clv_agg)


def test_budget_with_weights_counts_customers(tables):
    _, agg, clv_full, clv_agg = tables
    plain = clvrs.acquisition_budget(clv_full, 5.0)
    weighted = clvrs.acquisition_budget(clv_agg, 5.0, weights=agg["weights"])
    assert int(weighted["customers"].iloc[0]) == 2357
    assert weighted["mean_clv"].iloc[0] == pytest.approx(plain["mean_clv"].iloc[0], rel=1e-6)
    assert weighted["customers"].dtype == np.int64


def test_segments_with_weights_count_customers(tables):
    _, agg, clv_full, clv_agg = tables
    plain = clvrs.clv_segments(clv_full)
    weighted = clvrs.clv_segments(clv_agg, weights=agg["weights"])
    table = weighted.table
    assert int(table["customers"].sum()) == 2357
    assert table["share_of_customers"].sum() == pytest.approx(1.0)
    assert table["share_of_value"].sum() == pytest.approx(1.0)
    # Total value is the customers' total; each tier is within one row's customers of a
    # quarter (rows go whole to one tier).
    total = float((clv_agg * agg["weights"]).sum())
    assert float(table["value"].sum()) == pytest.approx(total)
    assert total == pytest.approx(float(clv_full.sum()), rel=1e-6)
    largest_row = int(agg["weights"].max())
    assert np.all(np.abs(table["customers"] - 2357 / 4) <= largest_row)
    # The top tier (distinct, high values) is the same customers either way.
    assert int(table.loc["Q4", "customers"]) == int(plain.table.loc["Q4", "customers"])
    assert table.loc["Q4", "value"] == pytest.approx(plain.table.loc["Q4", "value"], rel=1e-6)


def test_unit_weights_give_the_unweighted_segments(tables):
    _, _, clv_full, _ = tables
    plain = clvrs.clv_segments(clv_full, [0, 0.5, 0.9, 1])
    ones = clvrs.clv_segments(clv_full, [0, 0.5, 0.9, 1], weights=np.ones(len(clv_full)))
    pd.testing.assert_frame_equal(plain.table, ones.table)
    assert (plain.labels == ones.labels).all()


def test_rfm_scores_are_quantiles_of_customers(tables):
    full, agg, _, _ = tables
    weighted = clvrs.rfm_segments(agg)
    # Every score takes a quarter of the customers (within the largest row), not of the rows.
    for column in ("r", "f", "m"):
        per_score = agg["weights"].groupby(weighted[column]).sum()
        assert np.all(np.abs(per_score - 2357 / 4) <= agg["weights"].max()), column
    unweighted = clvrs.rfm_segments(agg, weights=None)
    per_row = agg["weights"].groupby(unweighted["f"]).sum()
    assert not np.all(np.abs(per_row - 2357 / 4) <= agg["weights"].max())


@pytest.mark.parametrize("bad", [[1.5] * 3, [-1, 1, 1], [np.nan, 1, 1], [0, 0, 0]])
def test_weights_must_count_customers(bad):
    with pytest.raises((InvalidDataError, InvalidParameterError), match="weights"):
        clvrs.acquisition_budget([1.0, 2.0, 3.0], weights=bad)


def test_weights_of_the_wrong_length_or_labels_are_refused():
    clv = pd.Series([1.0, 2.0, 3.0], index=["a", "b", "c"])
    with pytest.raises(InvalidDataError, match="weights"):
        clvrs.clv_segments(clv, 2, weights=[1, 2])
    with pytest.raises(InvalidDataError, match="index labels"):
        clvrs.clv_segments(clv, 2, weights=pd.Series([1, 1, 1], index=["x", "b", "c"]))
