"""lifetimes' ``plotting`` functions: same names, arguments, titles and labels, drawn where
lifetimes draws them.

The matrix, repeat-purchase, history and tracking plots draw on the current axes
(``plt.subplot(111)``, so ``plt.figure(figsize=...)`` before the call is honoured) unless
``ax=`` is given; the bar and calibration plots are pandas plots (a new figure, or ``ax=`` in
``**kwargs``); the heterogeneity plots make their own figure. Extra keyword arguments go to the
underlying matplotlib / pandas call, as in lifetimes.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ..exceptions import InvalidParameterError
from .utils import (
    _require,
    _to_dates,
    _whole,
    calculate_alive_path,
    expected_cumulative_transactions,
)

__all__ = [
    "plot_calibration_purchases_vs_holdout_purchases",
    "plot_cumulative_transactions",
    "plot_dropout_rate_heterogeneity",
    "plot_expected_repeat_purchases",
    "plot_frequency_recency_matrix",
    "plot_history_alive",
    "plot_incremental_transactions",
    "plot_period_transactions",
    "plot_probability_alive_matrix",
    "plot_transaction_rate_heterogeneity",
]


def _plt() -> Any:
    try:
        from matplotlib import pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "clvrs.lifetimes.plotting needs matplotlib: pip install matplotlib"
        ) from err
    return plt


def _axes(ax: Any) -> Any:
    return _plt().subplot(111) if ax is None else ax


def _expected_frequency_counts(model: Any, max_frequency: int) -> np.ndarray:
    """Expected number of the fitted customers with 0..max_frequency - 1 repeat purchases."""
    data = model.data
    discrete = "n_periods" in data  # BG/BB: ages are numbers of transaction opportunities
    ages = data["n_periods" if discrete else "T"].to_numpy(dtype=float)
    weights = data["weights"].to_numpy(dtype=float) if "weights" in data else np.ones(ages.size)
    unique, inverse = np.unique(ages, return_inverse=True)
    per_age = np.bincount(inverse, weights=weights)
    out = np.zeros(max_frequency)
    for n in range(max_frequency):
        if discrete:
            counts = np.full(unique.size, float(n))
            probs = np.asarray(model._model.purchase_count_probability(counts, unique))
        else:
            probs = np.asarray(model.probability_of_n_purchases_up_to_time(unique, n))
        out[n] = float(np.sum(probs.astype(float) * per_age))
    return out


def plot_period_transactions(model: Any, max_frequency: int = 7,
                             title: str = "Frequency of Repeat Transactions",
                             xlabel: str = "Number of Calibration Period Transactions",
                             ylabel: str = "Customers", **kwargs: Any) -> Any:  # fmt: skip
    """Customers by number of repeat purchases: the fitted data ("Actual") next to the
    model's expected counts ("Model"); ``label=[actual, model]`` renames them."""
    max_frequency = _whole("max_frequency", max_frequency, 1)
    plt = _plt()
    labels = kwargs.pop("label", ["Actual", "Model"])
    data = model.data
    weights = data["weights"] if "weights" in data else pd.Series(1, index=data.index)
    actual = weights.groupby(data["frequency"].to_numpy()).sum().sort_index()
    actual = actual.iloc[:max_frequency]
    counts = pd.DataFrame(
        {
            labels[0]: actual.reindex(range(max_frequency), fill_value=0).to_numpy(),
            labels[1]: _expected_frequency_counts(model, max_frequency),
        }
    )
    ax = counts.plot(kind="bar", **kwargs)
    ax.legend()
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.set_xlabel(xlabel)
    plt.sca(ax)
    return ax


_CALIBRATION_LABELS = {
    "frequency_cal": "Purchases in calibration period",
    "recency_cal": "Age of customer at last purchase",
    "T_cal": "Age of customer at the end of calibration period",
    "time_since_last_purchase": "Time since user made last purchase",
}


def plot_calibration_purchases_vs_holdout_purchases(
    model: Any, calibration_holdout_matrix: pd.DataFrame, kind: str = "frequency_cal",
    n: int = 7, **kwargs: Any,
) -> Any:  # fmt: skip
    """Mean holdout purchases, actual and predicted, grouped by ``kind`` (a calibration column
    or ``"time_since_last_purchase"``), for its first ``n`` values."""
    plt = _plt()
    if kind not in _CALIBRATION_LABELS:
        raise InvalidParameterError(
            f"`kind` must be one of {sorted(_CALIBRATION_LABELS)}, got {kind!r}"
        )
    summary = calibration_holdout_matrix.copy()
    duration = summary.iloc[0]["duration_holdout"]
    summary["model_predictions"] = model.conditional_expected_number_of_purchases_up_to_time(
        duration, summary["frequency_cal"], summary["recency_cal"], summary["T_cal"]
    )
    if kind == "time_since_last_purchase":
        summary[kind] = summary["T_cal"] - summary["recency_cal"]
    means = summary.groupby(kind)[["frequency_holdout", "model_predictions"]].mean().iloc[:n]
    ax = means.plot(**kwargs)
    ax.set_title("Actual Purchases in Holdout Period vs Predicted Purchases")
    ax.set_xlabel(_CALIBRATION_LABELS[kind])
    ax.set_ylabel("Average of Purchases in Holdout Period")
    ax.legend()
    plt.sca(ax)
    return ax


def _force_aspect(ax: Any, aspect: float = 1.0) -> None:
    extent = ax.get_images()[0].get_extent()
    ax.set_aspect(abs((extent[1] - extent[0]) / (extent[3] - extent[2])) / aspect)


def _matrix_plot(z: np.ndarray, title: str, xlabel: str, ylabel: str, kwargs: dict) -> Any:
    plt = _plt()
    ax = _axes(kwargs.pop("ax", None))
    interpolation = kwargs.pop("interpolation", "none")
    image = ax.imshow(z, interpolation=interpolation, **kwargs)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _force_aspect(ax)
    plt.colorbar(image, ax=ax)
    return ax


def plot_frequency_recency_matrix(model: Any, T: float = 1, max_frequency: int | None = None,
                                  max_recency: int | None = None, title: str | None = None,
                                  xlabel: str = "Customer's Historical Frequency",
                                  ylabel: str = "Customer's Recency",
                                  **kwargs: Any) -> Any:  # fmt: skip
    """Expected purchases in the next ``T`` by recency (rows) and frequency (columns), for
    customers of age ``max_recency`` (default: the data's largest age and frequency)."""
    if (
        isinstance(T, bool)
        or not isinstance(T, (int, np.integer, float, np.floating))
        or not (np.isfinite(T) and T > 0)
    ):
        raise InvalidParameterError(f"`T` (the horizon) must be a number > 0, got {T!r}")
    if max_frequency is None:
        max_frequency = int(model.data["frequency"].max())
    if max_recency is None:
        max_recency = int(model.data["T"].max())
    max_frequency = _whole("max_frequency", max_frequency)
    max_recency = _whole("max_recency", max_recency)
    recency, frequency = np.mgrid[0 : max_recency + 1, 0 : max_frequency + 1].astype(float)
    z = np.asarray(
        model.conditional_expected_number_of_purchases_up_to_time(
            T, frequency, recency, max_recency
        )
    )
    if title is None:
        title = (
            f"Expected Number of Future Purchases for {T} Unit{'' if T == 1 else 's'} of Time,"
            "\nby Frequency and Recency of a Customer"
        )
    return _matrix_plot(z, title, xlabel, ylabel, kwargs)


def plot_probability_alive_matrix(
    model: Any, max_frequency: int | None = None, max_recency: int | None = None,
    title: str = "Probability Customer is Alive,\nby Frequency and Recency of a Customer",
    xlabel: str = "Customer's Historical Frequency", ylabel: str = "Customer's Recency",
    **kwargs: Any,
) -> Any:  # fmt: skip
    """P(alive) by recency (rows) and frequency (columns), for customers of age
    ``max_recency``."""
    z = model.conditional_probability_alive_matrix(max_frequency, max_recency)
    return _matrix_plot(z, title, xlabel, ylabel, kwargs)


def plot_expected_repeat_purchases(model: Any,
                                   title: str = "Expected Number of Repeat Purchases per Customer",
                                   xlabel: str = "Time Since First Purchase", ax: Any = None,
                                   label: str | None = None, **kwargs: Any) -> Any:  # fmt: skip
    """Expected repeat purchases of a new customer over time: solid up to the data's largest
    age, dashed to 1.5 times it."""
    ax = _axes(ax)
    color = kwargs.pop("c", None) or kwargs.pop("color", None)
    if color is None:
        color = ax._get_lines.get_next_color()
    max_age = float(model.data["T"].max())
    times = np.linspace(0, max_age, 100)
    ax.plot(times, model.expected_number_of_purchases_up_to_time(times), color=color,
            label=label, **kwargs)  # fmt: skip
    times = np.linspace(max_age, 1.5 * max_age, 100)
    ax.plot(times, model.expected_number_of_purchases_up_to_time(times), color=color, ls="--",
            **kwargs)  # fmt: skip
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    if label is not None:
        ax.legend(loc="lower right")
    return ax


def plot_history_alive(model: Any, t: int, transactions: pd.DataFrame, datetime_col: str,
                       freq: str = "D", start_date: Any = None, ax: Any = None,
                       **kwargs: Any) -> Any:  # fmt: skip
    """One customer's P(alive) over ``t`` periods since their first purchase, with their
    purchases as dashed red lines (``transactions`` holds that customer's rows)."""
    ax = _axes(ax)
    _require(transactions, datetime_col)
    dates = _to_dates(transactions[datetime_col], None, datetime_col)
    if start_date is None:
        start_date = dates.min()
    path = calculate_alive_path(model, transactions, datetime_col, t, freq)
    path_dates = pd.date_range(start=dates.min(), periods=len(path), freq=freq)
    ax.plot(path_dates, path, "-", label="P_alive", **kwargs)
    bought = pd.Series(1, index=pd.DatetimeIndex(dates)).resample(freq).sum()
    purchase_dates = bought[bought >= 1].index
    ax.vlines(purchase_dates.values, ymin=0, ymax=1, colors="r", linestyles="dashed",
              label="purchases")  # fmt: skip
    ax.set_ylim(0, 1.0)
    ax.set_yticks(np.arange(0, 1.1, 0.1))
    ax.set_xlim(pd.Timestamp(start_date), path_dates[-1])
    ax.legend(loc=3)
    ax.set_ylabel("P_alive")
    ax.set_title("History of P_alive")
    return ax


def _tracking_plot(table: pd.DataFrame, t_cal: Any, set_index_date: bool, title: str,
                   xlabel: str, ylabel: str, ax: Any, kwargs: dict) -> Any:  # fmt: skip
    ax = table.plot(ax=_axes(ax), title=title, **kwargs)
    if set_index_date:
        x_vline = table.index[int(t_cal)]
        xlabel = "date"
    else:
        x_vline = t_cal
    ax.axvline(x=x_vline, color="r", linestyle="--")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax


def plot_cumulative_transactions(model: Any, transactions: pd.DataFrame, datetime_col: str,
                                 customer_id_col: str, t: int, t_cal: Any,
                                 datetime_format: str | None = None, freq: str = "D",
                                 set_index_date: bool = False,
                                 title: str = "Tracking Cumulative Transactions",
                                 xlabel: str = "day", ylabel: str = "Cumulative Transactions",
                                 ax: Any = None, **kwargs: Any) -> Any:  # fmt: skip
    """Cumulative repeat transactions, actual and expected, with the end of calibration
    (``t_cal``) marked; ``freq_multiplier=`` groups periods as in
    :func:`~clvrs.lifetimes.utils.expected_cumulative_transactions`."""
    table = expected_cumulative_transactions(
        model, transactions, datetime_col, customer_id_col, t, datetime_format=datetime_format,
        freq=freq, set_index_date=set_index_date,
        freq_multiplier=kwargs.pop("freq_multiplier", 1),
    )  # fmt: skip
    return _tracking_plot(table, t_cal, set_index_date, title, xlabel, ylabel, ax, kwargs)


def plot_incremental_transactions(model: Any, transactions: pd.DataFrame, datetime_col: str,
                                  customer_id_col: str, t: int, t_cal: Any,
                                  datetime_format: str | None = None, freq: str = "D",
                                  set_index_date: bool = False,
                                  title: str = "Tracking Daily Transactions",
                                  xlabel: str = "day", ylabel: str = "Transactions",
                                  ax: Any = None, **kwargs: Any) -> Any:  # fmt: skip
    """Repeat transactions per step, actual and expected, with the end of calibration
    marked."""
    table = expected_cumulative_transactions(
        model, transactions, datetime_col, customer_id_col, t, datetime_format=datetime_format,
        freq=freq, set_index_date=set_index_date,
        freq_multiplier=kwargs.pop("freq_multiplier", 1),
    )  # fmt: skip
    table = table - table.shift(1)
    return _tracking_plot(table, t_cal, set_index_date, title, xlabel, ylabel, ax, kwargs)


def _gamma_pdf_and_limit(shape: float, rate: float) -> tuple[Any, float]:
    """Gamma(shape, rate) density and its 99th percentile (by bisection on the CDF)."""
    log_norm = shape * math.log(rate) - math.lgamma(shape)

    def pdf(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore"):
            return np.exp(log_norm + (shape - 1) * np.log(x) - rate * x)

    def cdf(x: float) -> float:  # regularised lower incomplete gamma, series
        z = rate * x
        if z <= 0:
            return 0.0
        term = math.exp(shape * math.log(z) - z - math.lgamma(shape + 1))
        total, k = term, 0
        while term > 1e-16 * total and k < 100000:
            k += 1
            term *= z / (shape + k)
            total += term
        return min(total, 1.0)

    return pdf, _bisect(cdf, 0.0, max(1.0, 100 * (shape + 10) / rate))


def _beta_pdf_and_limit(a: float, b: float) -> tuple[Any, float]:
    """Beta(a, b) density and its 99th percentile (CDF by Simpson's rule in u = x^a)."""
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)

    def pdf(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.exp(log_norm + (a - 1) * np.log(x) + (b - 1) * np.log1p(-x))

    def cdf(x: float) -> float:
        if x <= 0:
            return 0.0
        if x >= 1:
            return 1.0
        # int_0^x t^(a-1) (1-t)^(b-1) dt = (1/a) int_0^(x^a) (1 - u^(1/a))^(b-1) du
        u = np.linspace(0.0, x**a, 20001)
        f = np.power(1.0 - np.power(u, 1.0 / a), b - 1)
        h = u[1] - u[0]
        integral = h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum() + 2 * f[2:-1:2].sum())
        return float(math.exp(log_norm) * integral / a)

    return pdf, _bisect(cdf, 0.0, 1.0)


def _bisect(cdf: Any, low: float, high: float, level: float = 0.99) -> float:
    for _ in range(100):
        mid = 0.5 * (low + high)
        if cdf(mid) < level:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def _heterogeneity(suptitle: str, subtitle: str, xlabel: str, ylabel: str, size: float,
                   x: np.ndarray, y: np.ndarray, kwargs: dict) -> Any:  # fmt: skip
    plt = _plt()
    fig, ax = plt.subplots(1)
    fig.suptitle(suptitle, fontsize=size, fontweight="bold")
    ax.set_title(subtitle)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout(rect=[0, 0.03, 1, 0.95])
    ax.plot(x, y, **kwargs)
    return ax


def plot_transaction_rate_heterogeneity(model: Any,
                                        suptitle: str = "Heterogeneity in Transaction Rate",
                                        xlabel: str = "Transaction Rate", ylabel: str = "Density",
                                        suptitle_fontsize: float = 14,
                                        **kwargs: Any) -> Any:  # fmt: skip
    """Density of the customers' purchase rates, Gamma(r, alpha), to its 99th percentile."""
    r, alpha = model._unload_params("r", "alpha")
    pdf, limit = _gamma_pdf_and_limit(r, alpha)
    x = np.linspace(0, limit, 100)
    subtitle = f"mean: {r / alpha:.3f}, var: {r / alpha**2:.3f}"
    return _heterogeneity(suptitle, subtitle, xlabel, ylabel, suptitle_fontsize, x, pdf(x), kwargs)


def plot_dropout_rate_heterogeneity(model: Any,
                                    suptitle: str = "Heterogeneity in Dropout Probability",
                                    xlabel: str = "Dropout Probability p", ylabel: str = "Density",
                                    suptitle_fontsize: float = 14,
                                    **kwargs: Any) -> Any:  # fmt: skip
    """Density of the customers' dropout probabilities, Beta(a, b), to its 99th percentile."""
    a, b = model._unload_params("a", "b")
    pdf, limit = _beta_pdf_and_limit(a, b)
    x = np.linspace(0, limit, 100)
    mean, var = a / (a + b), a * b / (a + b) ** 2 / (a + b + 1)
    subtitle = f"mean: {mean:.3f}, var: {var:.3f}"
    return _heterogeneity(suptitle, subtitle, xlabel, ylabel, suptitle_fontsize, x, pdf(x), kwargs)
