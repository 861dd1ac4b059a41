"""Plots of fitted models against data (matplotlib, imported only when a plot is drawn).

Every function returns the matplotlib ``Axes`` it drew on and accepts ``ax=`` to draw on an
existing one; the plotted numbers are computed by the models (expected values, not
simulations), so they are exact and reproducible.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._base import _bad_parameter

__all__ = [
    "plot_calibration_purchases_vs_holdout_purchases",
    "plot_cumulative_transactions",
    "plot_dropout_rate_heterogeneity",
    "plot_frequency_recency_matrix",
    "plot_history_alive",
    "plot_incremental_transactions",
    "plot_period_transactions",
    "plot_probability_alive_matrix",
    "plot_regularity",
    "plot_retention",
    "plot_spend_distribution",
    "plot_survival",
    "plot_timing_patterns",
    "plot_transaction_rate_heterogeneity",
]


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.figure().add_subplot(111)


def plot_period_transactions(
    model: Any, data: pd.DataFrame, max_frequency: int = 7, ax: Any = None
) -> Any:
    """Customers by number of repeat purchases: actual vs expected by the model.

    The expected count for ``n`` is the sum over customers of the model's P(X(T) = n) at each
    customer's age (the last bar collects ``n >= max_frequency``).
    """
    ax = _axes(ax)
    frequency = data["frequency"].to_numpy(dtype=float)
    ages = data["T"].to_numpy(dtype=float)
    counts = np.arange(max_frequency)
    actual = [(frequency == n).sum() for n in counts] + [(frequency >= max_frequency).sum()]
    expected = []
    for n in counts:
        expected.append(
            float(np.sum(model.purchase_count_probability(np.full(len(ages), n), ages)))
        )
    expected.append(len(ages) - sum(expected))
    positions = np.arange(max_frequency + 1)
    ax.bar(positions - 0.2, actual, width=0.4, label="actual")
    ax.bar(positions + 0.2, expected, width=0.4, label="model")
    ax.set_xticks(positions, [str(n) for n in counts] + [f"{max_frequency}+"])
    ax.set_xlabel("repeat purchases")
    ax.set_ylabel("customers")
    ax.set_title("Frequency of repeat purchases")
    ax.legend()
    return ax


def _matrix(model: Any, method: str, T: float, max_frequency: int, max_recency: int,
            **kwargs: Any) -> np.ndarray:  # fmt: skip
    grid_x, grid_t = np.meshgrid(
        np.arange(max_frequency + 1), np.arange(max_recency + 1), indexing="ij"
    )
    x = grid_x.ravel().astype(float)
    t_x = np.minimum(grid_t.ravel().astype(float), T)
    t_x[x == 0] = 0.0
    values = getattr(model, method)(frequency=x, recency=t_x, T=np.full(len(x), float(T)), **kwargs)
    return np.asarray(values, dtype=float).reshape(max_frequency + 1, max_recency + 1)


def plot_frequency_recency_matrix(
    model: Any, T: float, max_frequency: int = 30, max_recency: int | None = None,
    t: float = 1.0, ax: Any = None,
) -> Any:  # fmt: skip
    """Expected purchases in the next ``t`` by frequency (rows) and recency (columns) for
    customers of age ``T``."""
    ax = _axes(ax)
    recency = int(T) if max_recency is None else max_recency
    z = _matrix(model, "expected_purchases", T, max_frequency, recency, t=t)
    image = ax.imshow(z, origin="lower", aspect="auto", cmap="viridis")
    ax.figure.colorbar(image, ax=ax)
    ax.set_xlabel("recency")
    ax.set_ylabel("frequency")
    ax.set_title(f"Expected purchases in the next {t:g}")
    return ax


def plot_probability_alive_matrix(
    model: Any, T: float, max_frequency: int = 30, max_recency: int | None = None, ax: Any = None
) -> Any:
    """P(alive) by frequency (rows) and recency (columns) for customers of age ``T``."""
    ax = _axes(ax)
    recency = int(T) if max_recency is None else max_recency
    z = _matrix(model, "probability_alive", T, max_frequency, recency)
    image = ax.imshow(z, origin="lower", aspect="auto", cmap="viridis", vmin=0, vmax=1)
    ax.figure.colorbar(image, ax=ax)
    ax.set_xlabel("recency")
    ax.set_ylabel("frequency")
    ax.set_title("Probability alive")
    return ax


def plot_calibration_purchases_vs_holdout_purchases(
    model: Any, split: pd.DataFrame, n: int = 7, ax: Any = None
) -> Any:
    """Mean holdout purchases, actual and predicted, by calibration frequency (``n`` and more
    pooled)."""
    from .evaluation import holdout_evaluation

    ax = _axes(ax)
    result = holdout_evaluation(model, split).customers
    group = np.minimum(split["frequency_cal"].to_numpy(dtype=float), n)
    means = result.groupby(group).mean()
    ax.plot(means.index, means["actual"], marker="o", label="actual")
    ax.plot(means.index, means["predicted"], marker="s", label="model")
    ax.set_xlabel("purchases in calibration")
    ax.set_ylabel("mean purchases in holdout")
    ax.set_title("Calibration vs holdout purchases")
    ax.legend()
    return ax


def plot_history_alive(
    model: Any, times: Any, transactions: Any, customer_id: Any, customer_id_col: str,
    datetime_col: str, freq: str = "D", freq_multiplier: float = 1, ax: Any = None,
) -> Any:  # fmt: skip
    """One customer's P(alive) over time: at each period from the first purchase on, the
    history so far (repeat purchases, time of the last, age) gives P(alive) then."""
    ax = _axes(ax)
    rows = transactions[transactions[customer_id_col] == customer_id]
    if len(rows) == 0:
        raise _bad_parameter("customer_id", f"{customer_id!r} has no transactions")
    dates = pd.to_datetime(rows[datetime_col]).sort_values()
    unit = {"D": "1D", "W": "7D", "H": "1h", "M": "30D"}[freq.upper()]
    step = pd.Timedelta(unit) * freq_multiplier
    first = dates.iloc[0].floor("D")
    grid = first + step * np.arange(int(times) + 1)
    purchase_periods = np.unique(((dates - first) / step).astype(int).to_numpy())
    x, t_x, T = [], [], []
    for k in range(len(grid)):
        seen = purchase_periods[purchase_periods <= k]
        x.append(len(seen) - 1)
        t_x.append(float(seen.max()) if len(seen) > 1 else 0.0)
        T.append(float(k))
    alive = model.probability_alive(
        frequency=np.array(x, float), recency=np.array(t_x), T=np.array(T)
    )
    ax.plot(grid, alive, label="P(alive)")
    for date in dates:
        ax.axvline(date, color="grey", alpha=0.3, linestyle="--")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("P(alive)")
    ax.set_title(f"History of P(alive), customer {customer_id}")
    return ax


def plot_cumulative_transactions(track: pd.DataFrame, ax: Any = None) -> Any:
    """Cumulative repeat transactions, actual vs expected (from :func:`clvrs.tracking`), with
    the calibration end marked."""
    ax = _axes(ax)
    ax.plot(track.index, track["actual_cumulative"], label="actual")
    ax.plot(track.index, track["expected_cumulative"], linestyle="--", label="model")
    _mark_calibration(ax, track)
    ax.set_ylabel("cumulative repeat transactions")
    ax.set_title("Tracking cumulative transactions")
    ax.legend()
    return ax


def plot_incremental_transactions(track: pd.DataFrame, ax: Any = None) -> Any:
    """Repeat transactions per period, actual vs expected (from :func:`clvrs.tracking`)."""
    ax = _axes(ax)
    ax.plot(track.index, track["actual"], label="actual")
    ax.plot(track.index, track["expected"], linestyle="--", label="model")
    _mark_calibration(ax, track)
    ax.set_ylabel("repeat transactions")
    ax.set_title("Tracking transactions per period")
    ax.legend()
    return ax


def _mark_calibration(ax: Any, track: pd.DataFrame) -> None:
    if "calibration" in track and track["calibration"].any() and not track["calibration"].all():
        ax.axvline(track.index[track["calibration"]][-1], color="grey", linestyle=":")


def _gamma_density(shape: float, rate: float, x: np.ndarray) -> np.ndarray:
    from math import lgamma

    return np.exp(shape * np.log(rate) + (shape - 1) * np.log(x) - rate * x - lgamma(shape))


def plot_transaction_rate_heterogeneity(model: Any, ax: Any = None) -> Any:
    """Density of the purchase rate across customers, Gamma(r, alpha)."""
    ax = _axes(ax)
    r, alpha = float(model.params_["r"]), float(model.params_["alpha"])
    x = np.linspace(1e-6, max(5 * r / alpha, 1e-3), 400)[1:]
    ax.plot(x, _gamma_density(r, alpha, x))
    ax.set_xlabel("purchase rate")
    ax.set_ylabel("density")
    ax.set_title(f"Heterogeneity of the purchase rate (mean {r / alpha:.3g})")
    return ax


def plot_dropout_rate_heterogeneity(model: Any, ax: Any = None) -> Any:
    """Density of the dropout propensity across customers: Beta(a, b) of the dropout
    probability (BG/NBD, MBG/NBD) or Gamma(s, beta) of the dropout rate (Pareto/NBD)."""
    ax = _axes(ax)
    params = model.params_
    if "a" in params and "b" in params:
        from math import lgamma

        a, b = float(params["a"]), float(params["b"])
        x = np.linspace(0, 1, 402)[1:-1]
        log_beta = lgamma(a) + lgamma(b) - lgamma(a + b)
        ax.plot(x, np.exp((a - 1) * np.log(x) + (b - 1) * np.log1p(-x) - log_beta))
        ax.set_xlabel("dropout probability after a purchase")
        ax.set_title(f"Heterogeneity of dropout (mean {a / (a + b):.3g})")
    elif "s" in params and "beta" in params:
        s, beta = float(params["s"]), float(params["beta"])
        x = np.linspace(1e-6, max(5 * s / beta, 1e-3), 400)[1:]
        ax.plot(x, _gamma_density(s, beta, x))
        ax.set_xlabel("dropout rate")
        ax.set_title(f"Heterogeneity of dropout (mean {s / beta:.3g})")
    else:
        raise _bad_parameter("model", "needs dropout parameters (a, b) or (s, beta)")
    ax.set_ylabel("density")
    return ax


def plot_spend_distribution(
    spend_model: Any, data: pd.DataFrame, bins: int = 50, ax: Any = None
) -> Any:
    """Repeat buyers' mean spend: histogram vs the Gamma-Gamma model's density of the mean
    spend (averaged over the customers' numbers of transactions)."""
    ax = _axes(ax)
    repeat = data[data["frequency"] > 0]
    spend = repeat["monetary_value"].to_numpy(dtype=float)
    ax.hist(spend, bins=bins, density=True, alpha=0.5, label="actual")
    grid = np.linspace(spend.min(), np.quantile(spend, 0.99), 200)
    x = repeat["frequency"].to_numpy(dtype=float)
    density = np.zeros_like(grid)
    for k, value in enumerate(grid):
        ll = spend_model.log_likelihood_per_customer(
            frequency=x, monetary_value=np.full(len(x), value)
        )
        density[k] = float(np.mean(np.exp(ll)))
    ax.plot(grid, density, label="model")
    ax.set_xlabel("mean spend per transaction")
    ax.set_ylabel("density")
    ax.set_title("Spend per transaction")
    ax.legend()
    return ax


def plot_survival(model: Any, survivors: Any = None, periods: int = 12, ax: Any = None) -> Any:
    """A subscription model's survival curve S(t), with the cohort's actual share of survivors
    where given (counts at the end of periods 0, 1, ...)."""
    ax = _axes(ax)
    t = np.arange(periods + 1)
    ax.plot(t, model.survival(t), label="model")
    if survivors is not None:
        counts = np.asarray(survivors, dtype=float)
        ax.plot(
            np.arange(len(counts)), counts / counts[0], marker="o", linestyle="", label="actual"
        )
    ax.set_xlabel("period")
    ax.set_ylabel("share still active")
    ax.set_title("Survival")
    ax.legend()
    return ax


def plot_retention(model: Any, survivors: Any = None, periods: int = 12, ax: Any = None) -> Any:
    """A subscription model's retention rate by period, with the cohort's actual rates."""
    ax = _axes(ax)
    t = np.arange(1, periods + 1)
    ax.plot(t, model.retention_rate(t), label="model")
    if survivors is not None:
        counts = np.asarray(survivors, dtype=float)
        ax.plot(np.arange(1, len(counts)), counts[1:] / counts[:-1], marker="o", linestyle="",
                label="actual")  # fmt: skip
    ax.set_xlabel("period")
    ax.set_ylabel("retention rate")
    ax.set_title("Retention")
    ax.legend()
    return ax


def plot_timing_patterns(
    transactions: Any,
    customer_id_col: str,
    datetime_col: str,
    n: int = 40,
    seed: int = 0,
    calibration_period_end: Any = None,
    ax: Any = None,
) -> Any:
    """The purchase times of ``n`` customers drawn at random (seed ``seed``), one line each.

    Each line runs from the customer's first purchase (a large dot) to the end of the log,
    with a dot per purchase day; purchases after ``calibration_period_end`` (marked by a
    vertical line) are grey. Evenly spaced dots show regular buyers (the regularity models'
    case), clumps and long gaps Poisson-like ones (Platzer & Reutterer 2016, Figure 1).

    Parameters
    ----------
    transactions : pandas.DataFrame or polars.DataFrame
        One row per transaction, with ``customer_id_col`` and ``datetime_col`` (datetimes).
    n : int, default 40
        Customers drawn (all of them when there are fewer).
    seed : int, default 0
        Seed of the draw.
    calibration_period_end : date-like, optional
        Marks the end of calibration.
    """
    from ._base import _check_seed

    seed = _check_seed(seed)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise _bad_parameter("n", f"must be a whole number >= 1, got {n!r}")
    frame = transactions.to_pandas() if hasattr(transactions, "to_pandas") else transactions
    if not isinstance(frame, pd.DataFrame):
        raise _bad_parameter(
            "transactions", f"must be a pandas or polars DataFrame, got {type(frame).__name__}"
        )
    for column in (customer_id_col, datetime_col):
        if column not in frame.columns:
            raise _bad_parameter(column, "is not a column of transactions")
    log = pd.DataFrame(
        {"id": frame[customer_id_col].to_numpy(), "date": pd.to_datetime(frame[datetime_col])}
    )
    ids = log["id"].drop_duplicates().to_numpy()
    rng = np.random.default_rng(seed)
    chosen = rng.choice(ids, size=min(int(n), len(ids)), replace=False)
    log = log[log["id"].isin(chosen)].drop_duplicates()
    first = log.groupby("id")["date"].min().sort_values()
    end = log["date"].max()
    cut = None if calibration_period_end is None else pd.Timestamp(calibration_period_end)
    ax = _axes(ax)
    for row, customer in enumerate(first.index):
        dates = log.loc[log["id"] == customer, "date"].sort_values()
        ax.plot([first[customer], end], [row, row], color="#e5e5e5", linewidth=1, zorder=1)
        ax.scatter([first[customer]], [row], s=18, color="#333333", zorder=3)
        repeat = dates[dates > first[customer]]
        later = repeat > cut if cut is not None else np.zeros(len(repeat), dtype=bool)
        ax.scatter(repeat[~later], np.full((~later).sum(), row), s=8, color="#333333", zorder=2)
        ax.scatter(repeat[later], np.full(later.sum(), row), s=8, color="#999999", zorder=2)
    if cut is not None:
        ax.axvline(cut, color="#333333", linewidth=1)
    ax.set_yticks([])
    ax.set_ylabel(f"{len(first)} customers (by first purchase)")
    ax.set_title("Purchase timing of sampled customers")
    return ax


def plot_regularity(estimate: Any, ax: Any = None) -> Any:
    """The per-customer statistics behind :func:`clvrs.estimate_regularity`.

    For ``method="wheat"``: the histogram of Wheat & Morrison's
    :math:`M = g_1 / (g_1 + g_2)` with the Beta(k, k) densities it would follow for
    exponential (k = 1), Erlang-2 and the estimated k. For ``method="mle"``: the histogram of
    the per-customer shapes with the median marked.
    """
    from .regularity import RegularityEstimate

    if not isinstance(estimate, RegularityEstimate):
        raise _bad_parameter(
            "estimate",
            f"must be the result of estimate_regularity, got {type(estimate).__name__}",
        )
    ax = _axes(ax)
    values = estimate.per_customer.to_numpy(dtype=float)
    if estimate.method == "wheat":
        from math import lgamma

        ax.hist(values, bins=30, range=(0, 1), density=True, color="#cccccc", label="customers")
        grid = np.linspace(0.001, 0.999, 400)
        for k, style in [(1.0, ":"), (2.0, "--"), (estimate.k, "-")]:
            if not np.isfinite(k) or k <= 0:
                continue
            log_norm = lgamma(2 * k) - 2 * lgamma(k)
            density = np.exp(log_norm + (k - 1) * np.log(grid * (1 - grid)))
            ax.plot(grid, density, style, color="#333333", label=f"Beta({k:.3g}, {k:.3g})")
        ax.set_xlabel("M = g1 / (g1 + g2)")
        ax.set_ylabel("density")
    else:
        finite = values[np.isfinite(values)]
        ax.hist(finite, bins=30, color="#cccccc")
        ax.axvline(estimate.k, color="#333333", label=f"median k = {estimate.k:.3g}")
        ax.set_xlabel("maximum-likelihood gamma shape per customer")
        ax.set_ylabel("customers")
    ax.set_title(f"Regularity ({estimate.method}): k = {estimate.k:.3g}")
    ax.legend()
    return ax
