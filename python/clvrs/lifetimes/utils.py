"""lifetimes' ``utils`` functions over clvrs' transaction summaries."""

from __future__ import annotations

from typing import Any

from ..data import calibration_and_holdout, summarize_transactions

__all__ = ["calibration_and_holdout_data", "summary_data_from_transaction_data"]


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
