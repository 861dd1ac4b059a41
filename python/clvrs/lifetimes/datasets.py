"""lifetimes' ``datasets`` loaders for the data clvrs bundles."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .. import datasets as _datasets

__all__ = ["load_cdnow_summary", "load_cdnow_summary_data_with_monetary_value", "load_donations"]


def load_cdnow_summary(**kwargs: Any) -> pd.DataFrame:
    """CDNOW summaries (frequency, recency, T; weeks), indexed by customer id."""
    return _datasets.load_cdnow_summary()[["frequency", "recency", "T"]]


def load_cdnow_summary_data_with_monetary_value(**kwargs: Any) -> pd.DataFrame:
    """CDNOW summaries with ``monetary_value`` (mean spend of repeat purchases)."""
    return _datasets.load_cdnow_summary()


def load_donations(**kwargs: Any) -> pd.DataFrame:
    """The donations data (frequency, recency, periods, weights) -- lifetimes names the
    opportunities column ``n_periods`` and the counts ``weights``."""
    return _datasets.load_donations().rename(columns={"periods": "n_periods"})
