"""lifetimes' ``utils`` functions over clvrs' transaction summaries."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ..data import calibration_and_holdout, summarize_transactions, tracking

__all__ = [
    "calibration_and_holdout_data",
    "expected_cumulative_transactions",
    "summary_data_from_transaction_data",
]


def summary_data_from_transaction_data(
    transactions: Any,
    customer_id_col: str,
    datetime_col: str,
    monetary_value_col: str | None = None,
    datetime_format: str | None = None,
    observation_period_end: Any = None,
    freq: str = "D",
    freq_multiplier: float = 1,
    include_first_transaction: bool = False,
) -> Any:
    """lifetimes' summary (transactions after ``observation_period_end`` are left out, as
    lifetimes does, and counted in a warning)."""
    return summarize_transactions(
        transactions, customer_id_col, datetime_col, monetary_value_col=monetary_value_col,
        observation_period_end=observation_period_end, freq=freq,
        freq_multiplier=freq_multiplier, include_first_transaction=include_first_transaction,
        datetime_format=datetime_format, after_end="exclude",
    )  # fmt: skip


def calibration_and_holdout_data(
    transactions: Any,
    customer_id_col: str,
    datetime_col: str,
    calibration_period_end: Any,
    observation_period_end: Any = None,
    freq: str = "D",
    freq_multiplier: float = 1,
    datetime_format: str | None = None,
    monetary_value_col: str | None = None,
    include_first_transaction: bool = False,
) -> Any:
    """lifetimes' calibration/holdout table (holdout spend: mean of per-period sums)."""
    return calibration_and_holdout(
        transactions, customer_id_col, datetime_col, calibration_period_end,
        observation_period_end=observation_period_end, freq=freq,
        freq_multiplier=freq_multiplier, datetime_format=datetime_format,
        monetary_value_col=monetary_value_col,
        include_first_transaction=include_first_transaction,
    )  # fmt: skip


def expected_cumulative_transactions(
    model: Any,
    transactions: Any,
    datetime_col: str,
    customer_id_col: str,
    t: int,
    datetime_format: str | None = None,
    freq: str = "D",
    set_index_date: bool = False,
    freq_multiplier: float = 1,
) -> pd.DataFrame:
    """Actual and model-predicted cumulative repeat transactions for the first ``t`` periods
    (lifetimes' columns ``actual`` and ``predicted``; indexed by period number, or by date with
    ``set_index_date``)."""
    fitted = getattr(model, "_model", model)
    track = tracking(
        fitted, transactions, customer_id_col, datetime_col, freq=freq,
        freq_multiplier=freq_multiplier, datetime_format=datetime_format,
    ).head(int(t))  # fmt: skip
    table = pd.DataFrame(
        {
            "actual": track["actual_cumulative"].to_numpy(),
            "predicted": track["expected_cumulative"].to_numpy(),
        },
        index=track.index if set_index_date else pd.RangeIndex(len(track)),
    )
    return table
