"""lifetimes' ``plotting`` functions over :mod:`clvrs.plotting` (same names and main
arguments)."""

from __future__ import annotations

from typing import Any

from .. import plotting as _plotting
from .utils import expected_cumulative_transactions

__all__ = [
    "plot_calibration_purchases_vs_holdout_purchases",
    "plot_cumulative_transactions",
    "plot_frequency_recency_matrix",
    "plot_incremental_transactions",
    "plot_period_transactions",
    "plot_probability_alive_matrix",
]


def _model(fitter: Any) -> Any:
    return getattr(fitter, "_model", fitter)


def plot_period_transactions(
    model: Any, max_frequency: int = 7, ax: Any = None, **kwargs: Any
) -> Any:
    """Actual vs expected customers by repeat purchases, on the data the fitter was fitted to."""
    return _plotting.plot_period_transactions(_model(model), model.data, max_frequency, ax=ax)


def plot_frequency_recency_matrix(model: Any, T: float = 1, max_frequency: int | None = None,
                                  max_recency: int | None = None, ax: Any = None,
                                  **kwargs: Any) -> Any:  # fmt: skip
    """Expected purchases in the next ``T`` by frequency and recency."""
    data = model.data
    frequency = int(max_frequency or data["frequency"].max())
    recency = int(max_recency or data["T"].max())
    return _plotting.plot_frequency_recency_matrix(
        _model(model), T=float(data["T"].max()), max_frequency=frequency, max_recency=recency,
        t=T, ax=ax,
    )  # fmt: skip


def plot_probability_alive_matrix(model: Any, max_frequency: int | None = None,
                                  max_recency: int | None = None, ax: Any = None,
                                  **kwargs: Any) -> Any:  # fmt: skip
    """P(alive) by frequency and recency."""
    data = model.data
    frequency = int(max_frequency or data["frequency"].max())
    recency = int(max_recency or data["T"].max())
    return _plotting.plot_probability_alive_matrix(
        _model(model), T=float(data["T"].max()), max_frequency=frequency, max_recency=recency,
        ax=ax,
    )  # fmt: skip


def plot_calibration_purchases_vs_holdout_purchases(
    model: Any,
    calibration_holdout_matrix: Any,
    kind: str = "frequency_cal",
    n: int = 7,
    ax: Any = None,
    **kwargs: Any,
) -> Any:
    """Mean holdout purchases, actual and predicted, by calibration frequency."""
    return _plotting.plot_calibration_purchases_vs_holdout_purchases(
        _model(model), calibration_holdout_matrix, n=n, ax=ax
    )


def plot_cumulative_transactions(model: Any, transactions: Any, datetime_col: str,
                                 customer_id_col: str, t: int, t_cal: int,
                                 datetime_format: str | None = None, freq: str = "D",
                                 freq_multiplier: float = 1, ax: Any = None,
                                 **kwargs: Any) -> Any:  # fmt: skip
    """Cumulative repeat transactions, actual vs model, over ``t`` periods (calibration:
    ``t_cal``)."""
    track = _track(model, transactions, datetime_col, customer_id_col, t, t_cal,
                   datetime_format, freq, freq_multiplier)  # fmt: skip
    return _plotting.plot_cumulative_transactions(track, ax=ax)


def plot_incremental_transactions(model: Any, transactions: Any, datetime_col: str,
                                  customer_id_col: str, t: int, t_cal: int,
                                  datetime_format: str | None = None, freq: str = "D",
                                  freq_multiplier: float = 1, ax: Any = None,
                                  **kwargs: Any) -> Any:  # fmt: skip
    """Repeat transactions per period, actual vs model."""
    track = _track(model, transactions, datetime_col, customer_id_col, t, t_cal,
                   datetime_format, freq, freq_multiplier)  # fmt: skip
    return _plotting.plot_incremental_transactions(track, ax=ax)


def _track(model: Any, transactions: Any, datetime_col: str, customer_id_col: str, t: int,
           t_cal: int, datetime_format: str | None, freq: str,
           freq_multiplier: float) -> Any:  # fmt: skip
    table = expected_cumulative_transactions(
        model, transactions, datetime_col, customer_id_col, t,
        datetime_format=datetime_format, freq=freq, freq_multiplier=freq_multiplier,
        set_index_date=True,
    )  # fmt: skip
    track = table.rename(
        columns={"actual": "actual_cumulative", "predicted": "expected_cumulative"}
    )
    track["actual"] = track["actual_cumulative"].diff().fillna(track["actual_cumulative"])
    track["expected"] = track["expected_cumulative"].diff().fillna(track["expected_cumulative"])
    track["calibration"] = [i < t_cal for i in range(len(track))]
    return track
