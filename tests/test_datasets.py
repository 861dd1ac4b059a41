"""The bundled data sets load with the documented shapes and the published summary figures."""

from __future__ import annotations

import numpy as np

import clvrs


def test_cdnow_summary_matches_the_paper() -> None:
    data = clvrs.datasets.load_cdnow_summary()
    assert list(data.columns) == ["frequency", "recency", "T", "monetary_value"]
    assert data.index.name == "customer_id" and len(data) == 2357
    # Calibration frequency histogram x = 0..6 (Fader, Hardie & Lee 2005).
    counts = data["frequency"].value_counts().sort_index()
    assert counts.loc[0:6].tolist() == [1411, 439, 214, 100, 62, 38, 29]
    assert data["frequency"].sum() == 2457
    assert data["T"].between(27.0, 38.86).all()
    repeat = data.loc[data["frequency"] > 0, "monetary_value"]
    assert len(repeat) == 946 and (repeat > 0).all()
    assert (data.loc[data["frequency"] == 0, ["recency", "monetary_value"]] == 0).all().all()


def test_cdnow_transactions_sample_and_master() -> None:
    sample = clvrs.datasets.load_cdnow_transactions()
    assert list(sample.columns) == ["customer_id", "date", "quantity", "amount"]
    assert len(sample) == 6919 and sample["customer_id"].nunique() == 2357
    assert np.issubdtype(sample["date"].dtype, np.datetime64)
    assert str(sample["date"].min().date()) == "1997-01-01"
    assert str(sample["date"].max().date()) == "1998-06-30"
    master = clvrs.datasets.load_cdnow_transactions(sample=False)
    assert len(master) == 69659 and master["customer_id"].nunique() == 23570
    assert (master["amount"] >= 0).all() and (master["quantity"] >= 1).all()


def test_donations() -> None:
    data = clvrs.datasets.load_donations()
    assert list(data.columns) == ["frequency", "recency", "periods", "weights"]
    assert len(data) == 22 and data["weights"].sum() == 11104
    assert (data["periods"] == 6).all()
    assert data.loc[data["frequency"] == 0, "weights"].sum() == 3464


def test_bgnbd_fits_from_the_transaction_log_summary() -> None:
    # The summary shipped with the paper is derived from the sample log: each customer's
    # first purchase falls in the first quarter of 1997, as the file documents.
    sample = clvrs.datasets.load_cdnow_transactions()
    first = sample.groupby("customer_id")["date"].min()
    assert first.max() < np.datetime64("1997-04-01")
