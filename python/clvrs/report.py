"""A customer-value report: one self-contained HTML file for the people who decide budgets.

:func:`report` turns fitted models into the answers marketing and finance ask for -- what the
customer base is worth, who the most valuable customers are, how much may be spent to win a
customer per channel, who is slipping away, whether the model can be trusted, and (for
subscriptions) how long customers stay. Every number is computed by the library's own
functions (:func:`customer_lifetime_value`, :func:`clv_segments`, :func:`acquisition_budget`,
:func:`holdout_evaluation`, :func:`tracking`, the models' ``probability_alive``,
``survival``, ``retention_rate`` and ``expected_residual_lifetime``) and stated with its unit
and horizon.

The file needs no network access to view: figures are embedded PNG images (``data:`` URIs),
the retention list is an embedded CSV download (a ``data:`` link), there are no scripts. The
figures need matplotlib, which is optional: without it the report is written without figures
and says so at the top (every table and number is still there).

Each stated number carries its exact value for machines: ``<span class="num"
data-key="..." data-value="...">`` (the tests check them against the library).
"""

from __future__ import annotations

import base64
import html
import importlib.util
import io
import math
import numbers
import os
import urllib.parse
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from . import _units
from ._base import BaseModel, _bad_parameter
from ._input import align_to
from .data import summarize_transactions, tracking
from .evaluation import holdout_evaluation
from .exceptions import InvalidParameterError
from .prospects import prospect_value
from .value import _clv_units_per_month, acquisition_budget, clv_segments, customer_lifetime_value

__all__ = ["report"]

#: Customers shown in the top-customers table; rows of the retention table shown on the page
#: (the CSV holds up to ``retention_rows``).
TOP_CUSTOMERS = 20
SHOWN_RETENTION = 25
#: Customers drawn for the P(alive)-vs-value scatter (a fixed-seed sample).
SCATTER_SAMPLE = 3000

#: The model's assumptions in plain language, by class name.
_ASSUMPTIONS = {
    "BetaGeoModel": [
        "While a customer is active, purchases arrive at random at their own steady rate; "
        "rates differ from customer to customer.",
        "After each repeat purchase a customer may leave for good, with their own probability; "
        "a customer who has left never comes back, and leaving is never observed directly.",
        "Purchase rates and the chance of leaving are unrelated.",
    ],
    "ModifiedBetaGeoModel": [
        "As BG/NBD (steady random purchasing while active, unobserved permanent leaving after "
        "a purchase), except that a customer may also leave right after the first purchase.",
        "Purchase rates and the chance of leaving are unrelated.",
    ],
    "ParetoNBDModel": [
        "While a customer is active, purchases arrive at random at their own steady rate.",
        "Each customer has an unobserved lifetime of random length (exponential, at their own "
        "rate) after which they never buy again.",
        "Purchase rates and lifetimes are unrelated.",
    ],
    "GammaGompertzNBDModel": [
        "While a customer is active, purchases arrive at random at their own steady rate.",
        "Each customer's unobserved lifetime follows a Gompertz law: the chance of leaving "
        "can rise or fall with time as a customer.",
        "Purchase rates and lifetimes are unrelated.",
    ],
    "BetaGeoBetaBinomModel": [
        "Customers have a fixed set of purchase occasions; at each, an active customer buys "
        "with their own probability.",
        "Before each occasion an active customer may leave for good, with their own probability.",
    ],
    "GammaGammaModel": [
        "A customer's spend per purchase varies around their own mean; means differ between "
        "customers.",
        "How much a customer spends per purchase is unrelated to how often they buy (check: "
        "the correlation stated above should be near 0).",
    ],
    "ShiftedBetaGeoModel": [
        "Each period an active subscriber renews or cancels, with their own constant "
        "cancellation probability; probabilities differ between subscribers.",
        "The cohort's retention rate rises over time only because the subscribers most likely "
        "to cancel leave first.",
    ],
    "BetaDiscreteWeibullModel": [
        "Each period an active subscriber renews or cancels; their chance of cancelling may "
        "rise or fall with tenure (the same way for everyone), and its level differs between "
        "subscribers.",
    ],
}

_STYLE = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
  color: #1a1a1a; background: #fff; line-height: 1.45; margin: 0 auto; max-width: 62rem;
  padding: 1.5rem; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { font-size: 1.3rem; border-bottom: 2px solid #1f4e79; padding-bottom: .2rem;
  margin-top: 2.2rem; color: #1f4e79; }
h3 { font-size: 1.05rem; margin-bottom: .3rem; }
p.lead { color: #444; margin-top: 0; }
.note { background: #fff7e0; border-left: 4px solid #c98a00; padding: .5rem .8rem; }
.kpis { display: flex; flex-wrap: wrap; gap: .8rem; margin: 1rem 0; }
.kpi { border: 1px solid #c8d3de; border-radius: 6px; padding: .6rem .9rem; flex: 1 1 12rem; }
.kpi .label { font-size: .85rem; color: #444; }
.kpi .big { font-size: 1.35rem; font-weight: 600; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: .6rem 0 1rem; font-size: .9rem; }
caption { text-align: left; font-weight: 600; padding-bottom: .3rem; }
th, td { border: 1px solid #c8d3de; padding: .25rem .55rem; text-align: right; }
thead th { max-width: 9rem; vertical-align: bottom; }
th { background: #eef3f8; }
td.text, th.text { text-align: left; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e2e8ee; }
figcaption { font-size: .9rem; color: #333; }
a { color: #1f4e79; }
footer { margin-top: 2.5rem; font-size: .8rem; color: #555; }
@media print {
  body { max-width: none; padding: 0; font-size: 10.5pt; }
  h2 { break-after: avoid; }
  figure, table, .kpis { break-inside: avoid; }
  a[download] { text-decoration: none; }
}
"""


#: Column headers in words (the data keys keep the library's column names).
_HEADERS = {
    "customers": "customers",
    "share_of_customers": "share of customers",
    "value": "total CLV",
    "share_of_value": "share of value",
    "mean_value": "mean CLV",
    "clv": "CLV",
    "probability_alive": "P(alive) now",
    "purchases": "repeat purchases",
    "value_at_risk": "value at risk",
    "probability_alive_next_month": "P(alive) in a month without a purchase",
    "periods_since_last_purchase": "time since last purchase",
    "mean_clv": "mean CLV",
    "max_affordable_cac": "affordable acquisition cost",
    "acquisition_cost": "acquisition cost",
    "clv_to_cac": "CLV : CAC",
    "headroom": "headroom",
    "expected_active": "expected active",
    "repeat_purchases": "expected repeat purchases",
    "prospect_value": "value of a new customer",
    "prospect_to_cac": "value : CAC",
    "equity": "customer equity",
    "retention_rate": "renewal rate",
    "derl": "DERL (payments)",
    "subscribers": "active subscribers",
    "total_value": "residual value, all",
    "subscriber_value": "residual value",
    "actual_survival": "actual survival",
    "coef": "estimate",
    "se": "std. error",
    "lower": "95% lower",
    "upper": "95% upper",
}


def _num(key: str, value: float, text: str) -> str:
    """A stated number: its text, with the exact value for machines."""
    return (
        f'<span class="num" data-key="{html.escape(key)}" data-value="{float(value)!r}">'
        f"{html.escape(text)}</span>"
    )


def _money(value: float, currency: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    digits = 0 if abs(value) >= 1000 else 2
    return f"{currency}{value:,.{digits}f}"


def _probability(value: float) -> str:
    """A probability to two decimals, without rounding a small one to 0 or a large one to 1."""
    if 0 < value < 0.005:
        return "<0.01"
    if 0.995 <= value < 1:
        return ">0.99"
    return f"{value:.2f}"


def _share(value: float) -> str:
    return f"{100 * value:.1f}%" if math.isfinite(value) else "n/a"


def _kpi(label: str, number: str, detail: str = "") -> str:
    extra = f'<div class="label">{detail}</div>' if detail else ""
    return (
        f'<div class="kpi"><div class="label">{label}</div><div class="big">{number}</div>'
        f"{extra}</div>"
    )


def _table(
    frame: pd.DataFrame,
    caption: str,
    formats: dict[str, Callable[[Any], str]],
    key: str,
    *,
    index: str | None = None,
) -> str:
    """An HTML table; every cell of a formatted column carries its exact value
    (``data-key="<key>.<row>.<column>"``)."""
    heads = ([f'<th scope="col" class="text">{html.escape(index)}</th>'] if index else []) + [
        f'<th scope="col">{html.escape(_HEADERS.get(str(c), str(c)))}</th>' for c in formats
    ]
    rows = []
    for label, row in frame.iterrows():
        cells = [f'<th scope="row" class="text">{html.escape(str(label))}</th>'] if index else []
        for column, fmt in formats.items():
            value = row[column]
            name = f"{key}.{label}.{column}"
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                cells.append(f"<td>{_num(name, float(value), fmt(value))}</td>")
            else:
                cells.append(f'<td class="text">{html.escape(fmt(value))}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<div class="table-wrap"><table data-table="{html.escape(key)}">'
        f"<caption>{caption}</caption><thead><tr>{''.join(heads)}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


class _Figures:
    """Matplotlib figures as embedded PNGs, or nothing when matplotlib is not installed."""

    def __init__(self, wanted: bool) -> None:
        self.available = wanted and importlib.util.find_spec("matplotlib") is not None
        self.figure: Any = None
        self.dates: Any = None
        self.ticker: Any = None
        if self.available:
            # Figures without pyplot: no global state, the user's backend is left alone.
            import matplotlib.dates
            import matplotlib.ticker
            from matplotlib.figure import Figure

            self.figure = Figure
            self.dates = matplotlib.dates
            self.ticker = matplotlib.ticker

    def new(self, width: float = 7.0, height: float = 3.4, ncols: int = 1) -> tuple[Any, Any]:
        fig = self.figure(figsize=(width, height), dpi=100)
        return fig, fig.subplots(1, ncols)

    def embed(self, fig: Any, alt: str, caption: str) -> str:
        buffer = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buffer, format="png", dpi=100)
        data = base64.b64encode(buffer.getvalue()).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )


def _unit_of(model: Any, data: Any) -> tuple[str | None, str]:
    """The model's time unit (or the data's) and how to say it."""
    unit = getattr(model, "__dict__", {}).get("time_unit_")
    if unit is None and isinstance(data, pd.DataFrame):
        unit = _units.data_unit(data)
    if unit is None:
        return None, ""
    return unit, _unit_word(unit)


def _unit_word(unit: str) -> str:
    """A time unit in words, singular: "week", "7 days"."""
    freq, multiplier = _units.parse_unit(unit)
    word = {"H": "hour", "D": "day", "W": "week", "M": "month"}[freq]
    return word if multiplier == 1 else f"{multiplier:g}-{word}"


def _check_int(value: Any, name: str, lowest: int) -> int:
    if not (
        isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= lowest
    ):
        raise _bad_parameter(name, f"must be a whole number >= {lowest}, got {value!r}")
    return int(value)


def report(
    model: Any,
    spend_model: Any = None,
    data: Any = None,
    path: str | os.PathLike[str] | None = None,
    *,
    time: int = 12,
    discount_rate: float = 0.01,
    margin: float = 1.0,
    currency: str = "$",
    title: str = "Customer value report",
    holdout: pd.DataFrame | None = None,
    holdout_model: Any = None,
    channel: Any = None,
    acquisition_cost: Any = None,
    target_ratio: float = 3.0,
    tiers: Any = (0.0, 0.5, 0.8, 0.95, 1.0),
    tier_labels: Any = ("Bottom 50%", "Next 30%", "Next 15%", "Top 5%"),
    alive_threshold: float = 0.5,
    retention_rows: int = 500,
    transactions: Any = None,
    customer_id_col: str = "customer_id",
    datetime_col: str = "date",
    monetary_value_col: str | None = None,
    freq: str | None = None,
    monitor_every: str = "QE",
    calibration_period_end: Any = None,
    survivors: Any = None,
    periods: int = 12,
    margin_per_period: float | None = None,
    figures: bool = True,
) -> str:
    """Write a customer-value report: one self-contained HTML file a manager can read.

    For a purchase model (BG/NBD, MBG/NBD, Pareto/NBD, GGompertz/NBD) with a spend model: the
    value of the customer base (total and per customer over ``time`` months, its distribution,
    value tiers as share of customers vs share of value, the top customers); the retention list
    (customers whose P(alive) is below ``alive_threshold``, ranked by the value at risk,
    exported as an embedded CSV); acquisition (the affordable acquisition cost per channel from
    :func:`acquisition_budget`, and CLV:CAC when ``acquisition_cost`` is given); monitoring over
    time when ``transactions`` are given (actual vs expected repeat purchases from
    :func:`tracking`, and the customer equity and expected active customers re-scored at each
    period end); and one model-check panel (the fit's diagnostics, holdout accuracy from
    :func:`holdout_evaluation` when ``holdout`` is given, the assumptions in plain language).

    For a subscription model (:class:`ShiftedBetaGeoModel`, :class:`BetaDiscreteWeibullModel`):
    survival and retention curves (with the cohort's actual ``survivors`` when given), the
    expected residual lifetime (DERL) and, with ``margin_per_period``, the value of a subscriber
    per tenure; with customer records as ``data``, the active subscribers by tenure and the
    residual value of the active base; and the model check.

    Every number is the library's, stated with its unit and horizon. Figures need matplotlib
    (optional): without it, or with ``figures=False``, the report has no figures and says so.
    The file holds aggregates and samples (the top customers, the retention list), not every
    customer, so it stays small for millions of customers.

    Parameters
    ----------
    model : fitted model
        A purchase model fitted on ``data``'s customers, or a subscription model.
    spend_model : GammaGammaModel, float or array-like
        Expected spend per purchase (as for :func:`customer_lifetime_value`); required with a
        purchase model.
    data : pandas.DataFrame
        Customer summaries (``frequency``, ``recency``, ``T``, ``monetary_value``, or the
        model's ``columns``), indexed by customer; required with a purchase model. For a
        subscription model, optional customer records (``periods``, ``churned``, and
        ``weights`` when rows stand for several customers): the active subscribers are counted
        by tenure and valued (DERL, and with ``margin_per_period`` their residual value).
    path : str or path-like, optional
        Where to write the HTML file; the HTML is returned either way.
    time : int, default 12
        Months of value (the CLV horizon).
    discount_rate : float, default 0.01
        Monthly discount rate for CLV; for a subscription model, the rate per period of the
        model for DERL and subscriber value.
    margin : float, default 1.0
        Profit share of revenue (1: the values are revenue).
    currency : str, default "$"
        Written before money amounts.
    title : str, default "Customer value report"
    holdout : pandas.DataFrame, optional
        A calibration/holdout table (:func:`calibration_and_holdout`) for the holdout check.
    holdout_model : fitted model, optional
        The model fitted on ``holdout``'s calibration columns (default ``model``).
    channel : pandas.Series or array-like, optional
        Each customer's acquisition channel (or segment), aligned to ``data``.
    acquisition_cost : float, dict or pandas.Series, optional
        Cost of acquiring one customer, overall or per channel.
    target_ratio : float, default 3.0
        CLV:CAC ratio to plan for.
    tiers, tier_labels : sequence
        Quantile edges of the value tiers and their names (lowest first).
    alive_threshold : float, default 0.5
        Customers below this P(alive) are on the retention list.
    retention_rows : int, default 500
        Most customers in the retention CSV.
    transactions : DataFrame, optional
        The transaction log, for monitoring over time; with ``customer_id_col``,
        ``datetime_col``, ``monetary_value_col`` and ``freq`` (the model's time unit, e.g. "W").
    monitor_every : str, default "QE"
        pandas frequency of the period ends at which the customer base is re-scored.
    calibration_period_end : date-like, optional
        The end of the period the model was fitted on, marked on the tracking chart.
    survivors : array-like, optional
        A subscription cohort's actual survivor counts at the end of periods 0, 1, 2, ...
    periods : int, default 12
        Periods shown in the subscription curves.
    margin_per_period : float, optional
        A subscriber's margin per period (for value per tenure).
    figures : bool, default True
        Draw figures (needs matplotlib).

    Returns
    -------
    str
        The HTML document.

    Raises
    ------
    InvalidParameterError
        A missing spend model or data for a purchase model, a model of another kind, or an
        option out of range (named).

    Examples
    --------
    >>> import clvrs
    >>> data = clvrs.datasets.load_cdnow_summary()
    >>> bgnbd = clvrs.BetaGeoModel().fit(data)
    >>> spend = clvrs.GammaGammaModel().fit(data)
    >>> page = clvrs.report(bgnbd, spend, data, figures=False)
    >>> page.startswith("<!DOCTYPE html>")
    True
    """
    if not isinstance(model, BaseModel) or "params_" not in vars(model):
        raise _bad_parameter(
            "model",
            "must be a fitted model (a purchase model such as BetaGeoModel, or a subscription "
            f"model such as ShiftedBetaGeoModel), got {type(model).__name__}",
        )
    if not isinstance(title, str):
        raise _bad_parameter("title", f"must be a string, got {title!r}")
    if not isinstance(currency, str) or any(c in currency for c in "<>&\"'"):
        raise _bad_parameter(
            "currency", f"must be a currency sign or code such as '$' or 'EUR ', got {currency!r}"
        )
    if not (isinstance(figures, bool)):
        raise _bad_parameter("figures", f"must be True or False, got {figures!r}")
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise _bad_parameter("path", f"must be a file path, got {path!r}")
    # Checked before any work (the value functions check them again, after scoring).
    for name, value, lowest in (("discount_rate", discount_rate, -1.0), ("margin", margin, 0.0)):
        if not (
            isinstance(value, numbers.Real)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (value > lowest if name == "discount_rate" else value >= lowest)
        ):
            bound = "> -1" if name == "discount_rate" else ">= 0"
            raise _bad_parameter(name, f"must be a finite number {bound}, got {value!r}")
    for name, value in (("tiers", tiers), ("tier_labels", tier_labels)):
        if isinstance(value, (str, bytes, dict)) or not np.iterable(value):
            raise _bad_parameter(name, f"must be a list, got {value!r}")
    pictures = _Figures(figures)
    contractual = hasattr(model, "survival") and hasattr(model, "expected_residual_lifetime")
    if contractual:
        body, toc = _subscription_report(
            model, pictures, discount_rate, currency, survivors, periods, margin_per_period, data
        )
        subject = f"{type(model).__name__} subscription cohort"
    else:
        body, toc, subject = _purchase_report(
            model,
            spend_model,
            data,
            pictures=pictures,
            time=time,
            discount_rate=discount_rate,
            margin=margin,
            currency=currency,
            holdout=holdout,
            holdout_model=holdout_model,
            channel=channel,
            acquisition_cost=acquisition_cost,
            target_ratio=target_ratio,
            tiers=tiers,
            tier_labels=tier_labels,
            alive_threshold=alive_threshold,
            retention_rows=retention_rows,
            transactions=transactions,
            customer_id_col=customer_id_col,
            datetime_col=datetime_col,
            monetary_value_col=monetary_value_col,
            freq=freq,
            monitor_every=monitor_every,
            calibration_period_end=calibration_period_end,
        )
    notes = ""
    if not pictures.available:
        why = (
            "figures=False was given"
            if not figures
            else "matplotlib is not installed (pip install matplotlib to add them)"
        )
        notes = (
            f'<p class="note" id="no-figures">This report has no figures: {why}. Every number '
            "and table is included.</p>"
        )
    from . import __version__

    contents = "".join(f'<li><a href="#{a}">{html.escape(t)}</a></li>' for a, t in toc)
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1>"
        f'<p class="lead">{html.escape(subject)}. Generated by clvrs {__version__}.</p>'
        f'{notes}<nav aria-label="Contents"><ul>{contents}</ul></nav></header>'
        f"<main>{body}</main>"
        "<footer>All figures are model expectations computed by clvrs, not guarantees; "
        "amounts are in the currency of the data. The file is self-contained: it needs no "
        "network access.</footer></body></html>\n"
    )
    if path is not None:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(page)
    return page


def _purchase_report(
    model: Any,
    spend_model: Any,
    data: Any,
    *,
    pictures: _Figures,
    time: int,
    discount_rate: float,
    margin: float,
    currency: str,
    holdout: Any,
    holdout_model: Any,
    channel: Any,
    acquisition_cost: Any,
    target_ratio: float,
    tiers: Any,
    tier_labels: Any,
    alive_threshold: float,
    retention_rows: int,
    transactions: Any,
    customer_id_col: str,
    datetime_col: str,
    monetary_value_col: str | None,
    freq: str | None,
    monitor_every: str,
    calibration_period_end: Any,
) -> tuple[str, list[tuple[str, str]], str]:
    if not hasattr(model, "weighted_expected_purchases"):
        raise _bad_parameter(
            "model",
            f"{type(model).__name__} is not supported by the report: give a purchase model "
            "(BetaGeoModel, ModifiedBetaGeoModel, ParetoNBDModel, GammaGompertzNBDModel) or a "
            "subscription model (ShiftedBetaGeoModel, BetaDiscreteWeibullModel)",
        )
    if spend_model is None:
        raise _bad_parameter(
            "spend_model",
            "is required with a purchase model: a fitted GammaGammaModel, or a spend per "
            "purchase (one number or one per customer)",
        )
    if not isinstance(data, pd.DataFrame):
        raise _bad_parameter(
            "data", f"must be a pandas DataFrame of customer summaries, got {type(data).__name__}"
        )
    if type(model).__name__ == "BetaGeoBetaBinomModel":
        raise _bad_parameter(
            "model",
            "BetaGeoBetaBinomModel counts discrete transaction opportunities, not time: the "
            "report's monthly value does not apply; use customer_lifetime_value(..., "
            "method='continuous') for its value",
        )
    weights = model._column_names(data).get("weights")
    if weights is not None and weights in data.columns:
        err = InvalidParameterError(
            f"data: its column `{weights}` (the model's weights) makes each row stand for "
            "several customers; the report counts rows as customers: give one row per customer"
        )
        err.parameter = "data"
        raise err
    time = _check_int(time, "time", 1)
    retention_rows = _check_int(retention_rows, "retention_rows", 1)
    if transactions is not None and vars(model).get("covariates_") is not None:
        raise _bad_parameter(
            "transactions",
            "monitoring over time re-scores summaries of the log, which carry no covariates; "
            f"{type(model).__name__} was fitted with covariates: leave transactions out, or "
            "give a model without covariates",
        )
    if not (isinstance(alive_threshold, numbers.Real) and 0 < float(alive_threshold) <= 1):
        raise _bad_parameter(
            "alive_threshold", f"must be a probability in (0, 1], got {alive_threshold!r}"
        )
    unit, unit_word = _unit_of(model, data)
    per_month = _clv_units_per_month(model, data, {}, None)
    if unit is None:
        unit_text = "weeks (assumed: neither the model nor the data records a time unit)"
        unit_word = "week"
    else:
        unit_text = f"{unit_word}s (time unit {unit})"
    horizon = f"next {time} months, discounted at {discount_rate:.2%} a month"
    money = currency.strip() or "currency units"
    money_unit = (
        f"profit ({money}, {margin:.0%} of revenue)" if margin != 1 else f"revenue ({money})"
    )

    clv = customer_lifetime_value(
        model, spend_model, data, time=time, discount_rate=discount_rate, margin=margin
    )
    clv = pd.Series(np.asarray(clv, dtype=float), index=data.index, name="clv")
    alive = pd.Series(
        np.asarray(model.probability_alive(data), dtype=float), index=data.index, name="alive"
    )
    names = model._column_names()
    columns = {role: names.get(role) or role for role in ("frequency", "recency", "T")}
    toc: list[tuple[str, str]] = []
    sections = []

    # (1) value
    toc.append(("value", "What the customer base is worth"))
    total = float(clv.sum())
    mean = float(clv.mean())
    median = float(clv.median())
    segmentation = clv_segments(clv, list(tiers), list(tier_labels))
    table = segmentation.table
    top_tier = table.iloc[0]
    parts = [
        '<section id="value"><h2>What the customer base is worth</h2>',
        f"<p>Customer lifetime value (CLV): the expected {money_unit} from each existing "
        f"customer's future purchases over the {horizon}, from {type(model).__name__} "
        f"(purchases) and "
        f"{type(spend_model).__name__ if isinstance(spend_model, BaseModel) else 'the given spend'}"
        f" (spend per purchase). Recency and customer age are in {unit_text}.</p>",
        '<div class="kpis">',
        _kpi(
            "Customer equity (total CLV)",
            _num("total_clv", total, _money(total, currency)),
            f"{time} months, {len(clv):,} customers",
        ),
        _kpi(
            "Mean CLV per customer",
            _num("mean_clv", mean, _money(mean, currency)),
            f"{time} months",
        ),
        _kpi(
            "Median CLV per customer",
            _num("median_clv", median, _money(median, currency)),
            f"{time} months",
        ),
        _kpi(
            f"Share of value from the {html.escape(str(table.index[0]))}",
            _num(
                "top_tier_share",
                float(top_tier["share_of_value"]),
                _share(float(top_tier["share_of_value"])),
            ),
            f"{_share(float(top_tier['share_of_customers']))} of customers",
        ),
        "</div>",
    ]
    if pictures.available:
        fig, ax = pictures.new()
        positive = clv[clv > 0].to_numpy()
        if positive.size:
            edges = np.logspace(
                math.log10(max(positive.min(), 1e-2)), math.log10(positive.max() * 1.01), 40
            )
            ax.hist(positive, bins=edges, color="#1f4e79")
            ax.set_xscale("log")
        ax.set_xlabel(f"CLV over {time} months ({currency.strip() or 'currency'}; log scale)")
        ax.set_ylabel("customers")
        parts.append(
            pictures.embed(
                fig,
                "Histogram of customer lifetime value",
                "How CLV is spread over customers: most customers are worth little, a few are "
                f"worth a lot ({int((clv <= 0).sum()):,} customers with no expected value are "
                "not shown on the log scale).",
            )
        )
    tier_frame = table.copy()
    parts.append(
        _table(
            tier_frame,
            f"Value tiers: share of customers vs share of value (CLV over {time} months, "
            f"{html.escape(currency.strip() or 'currency')})",
            {
                "customers": lambda v: f"{int(v):,}",
                "share_of_customers": _share,
                "value": lambda v: _money(v, currency),
                "share_of_value": _share,
                "mean_value": lambda v: _money(v, currency),
            },
            "tiers",
            index="tier",
        )
    )
    if pictures.available:
        fig, ax = pictures.new(height=2.8)
        labels = [str(i) for i in tier_frame.index][::-1]
        y = np.arange(len(labels))
        ax.barh(
            y + 0.2,
            tier_frame["share_of_customers"].to_numpy()[::-1] * 100,
            0.4,
            label="share of customers",
            color="#9bb7d4",
        )
        ax.barh(
            y - 0.2,
            tier_frame["share_of_value"].to_numpy()[::-1] * 100,
            0.4,
            label="share of value",
            color="#1f4e79",
        )
        ax.set_yticks(y, labels)
        ax.set_xlabel("% of all customers / of total CLV")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, frameon=False)
        parts.append(
            pictures.embed(
                fig,
                "Bar chart of each tier's share of customers and share of value",
                "Each value tier's share of the customers (light) against its share of the "
                "total value (dark): the gap shows how concentrated value is.",
            )
        )
    parts.append(
        "<p>The most valuable customers. P(alive) is the probability that the customer is "
        "still active (has not silently left); repeat purchases are those after the first.</p>"
    )
    top = clv.nlargest(TOP_CUSTOMERS).index
    top_frame = pd.DataFrame(
        {
            "clv": clv[top],
            "probability_alive": alive[top],
            "purchases": data.loc[top, columns["frequency"]].astype(float),
        }
    )
    parts.append(
        _table(
            top_frame,
            f"Top {len(top_frame)} customers by CLV ({time} months, "
            f"{html.escape(currency.strip() or 'currency')})",
            {
                "clv": lambda v: _money(v, currency),
                "probability_alive": _probability,
                "purchases": lambda v: f"{int(v):,}",
            },
            "top",
            index="customer",
        )
    )
    parts.append("</section>")
    sections.append("".join(parts))

    # (2) risk: the retention list
    toc.append(("risk", "Customers slipping away"))
    month = per_month
    # The same customers a month later without a purchase (covariates, if any, unchanged).
    later = model.probability_alive(data.assign(**{columns["T"]: data[columns["T"]] + month}))
    later = pd.Series(np.asarray(later, dtype=float), index=data.index)
    # Expected purchases are P(alive) times the purchases of a customer known to be active, so
    # the value if still active is CLV / P(alive); the value at risk is the difference.
    safe = alive.clip(lower=1e-12)
    at_risk = (clv / safe - clv).where(alive > 0, 0.0)
    candidates = alive < alive_threshold
    n_candidates = int(candidates.sum())
    listed = at_risk[candidates].nlargest(retention_rows).index
    risk = pd.DataFrame(
        {
            "clv": clv[listed],
            "value_at_risk": at_risk[listed],
            "probability_alive": alive[listed],
            "probability_alive_next_month": later[listed],
            "purchases": data.loc[listed, columns["frequency"]].astype(float),
            "periods_since_last_purchase": (
                data.loc[listed, columns["T"]] - data.loc[listed, columns["recency"]]
            ).astype(float),
        }
    )
    risk.index.name = "customer"
    csv = risk.to_csv(float_format="%.6g")
    link = "data:text/csv;charset=utf-8," + urllib.parse.quote(csv)
    total_at_risk = float(at_risk[candidates].sum())
    parts = [
        '<section id="risk"><h2>Customers slipping away (the retention list)</h2>',
        f"<p>{_num('n_at_risk', n_candidates, f'{n_candidates:,}')} customers have a "
        "probability of still being active (P(alive)) below "
        f"{100 * float(alive_threshold):g}%. If they are in fact still active they would bring "
        f"{_num('total_value_at_risk', total_at_risk, _money(total_at_risk, currency))} more "
        f"over the {horizon} than expected now: the value at risk, the value if still active "
        "(CLV / P(alive)) minus the CLV. The list ranks them by value at risk; P(alive) next "
        "month is where it falls if they do not buy within a month. These are the customers "
        "worth a win-back offer.</p>",
        f'<p><a href="{link}" download="retention_list.csv">Download the retention list '
        f"(CSV, {len(risk):,} customers)</a></p>",
        _table(
            risk.head(SHOWN_RETENTION),
            f"The {min(SHOWN_RETENTION, len(risk))} customers with the most value at risk "
            f"({time} months, {html.escape(currency.strip() or 'currency')}; time since last "
            f"purchase in {unit_word}s)",
            {
                "clv": lambda v: _money(v, currency),
                "value_at_risk": lambda v: _money(v, currency),
                "probability_alive": _probability,
                "probability_alive_next_month": _probability,
                "purchases": lambda v: f"{int(v):,}",
                "periods_since_last_purchase": lambda v: f"{v:.1f}",
            },
            "risk",
            index="customer",
        ),
    ]
    if pictures.available:
        fig, ax = pictures.new()
        sample = clv.index
        if len(sample) > SCATTER_SAMPLE:
            rng = np.random.default_rng(0)
            sample = clv.index[np.sort(rng.choice(len(clv), SCATTER_SAMPLE, replace=False))]
        ax.scatter(alive[sample], clv[sample], s=6, alpha=0.5, color="#1f4e79")
        ax.axvline(alive_threshold, color="#c0392b", linestyle="--", label="retention threshold")
        ax.set_xlabel("P(alive): probability still active")
        ax.set_ylabel(f"CLV, {time} months ({currency.strip() or 'currency'})")
        ax.legend()
        parts.append(
            pictures.embed(
                fig,
                "Scatter plot of CLV against probability of being active",
                "Each dot is a customer"
                + (f" (a sample of {len(sample):,})" if len(sample) < len(clv) else "")
                + ": those left of the dashed line are on the retention list.",
            )
        )
    parts.append("</section>")
    sections.append("".join(parts))

    # (3) acquisition
    toc.append(("acquisition", "What a new customer may cost"))
    if channel is not None:
        if isinstance(channel, (str, bytes, dict)) or not np.iterable(channel):
            raise _bad_parameter("channel", f"must give each customer's channel, got {channel!r}")
        # Matched to the customers by the library's rule (positions, or the same labels).
        name = getattr(channel, "name", None) or "channel"
        aligned = align_to(channel, data.index, len(data), "channel", "data")
        channel = pd.Series(np.asarray(aligned), index=data.index, name=name)
    budget = acquisition_budget(clv, acquisition_cost, by=channel, target_ratio=target_ratio)
    formats: dict[str, Callable[[Any], str]] = {
        "customers": lambda v: f"{int(v):,}",
        "mean_clv": lambda v: _money(v, currency),
        "max_affordable_cac": lambda v: _money(v, currency),
    }
    if "clv_to_cac" in budget.columns:
        formats["acquisition_cost"] = lambda v: _money(v, currency)
        formats["clv_to_cac"] = lambda v: f"{v:.2f} : 1"
        formats["headroom"] = lambda v: _money(v, currency)
    parts = [
        '<section id="acquisition"><h2>What a new customer may cost</h2>',
        f"<p>The most worth paying to acquire a customer is the mean CLV ({time} months) "
        f"divided by the target CLV:CAC ratio of {target_ratio:g} : 1 "
        "(the affordable acquisition cost). The mean CLV of existing customers stands in for a new "
        "customer's value."
        + (
            " With acquisition costs given, CLV : CAC compares them, and headroom is the "
            "affordable cost minus the actual cost per customer (negative: over budget)."
            if "clv_to_cac" in budget.columns
            else " Give acquisition_cost (per channel) to compare with actual costs."
        )
        + "</p>",
        _table(
            budget,
            f"Acquisition budget per {html.escape(str(budget.index.name))} "
            f"({html.escape(currency.strip() or 'currency')} per customer; CLV over {time} months)",
            formats,
            "acquisition",
            index=str(budget.index.name),
        ),
    ]
    if pictures.available and "clv_to_cac" in budget.columns and len(budget) > 1:
        fig, ax = pictures.new(height=2.6)
        ax.barh([str(i) for i in budget.index], budget["clv_to_cac"], color="#1f4e79")
        ax.axvline(target_ratio, color="#c0392b", linestyle="--", label="target ratio")
        ax.set_xlabel("CLV : CAC")
        ax.legend()
        parts.append(
            pictures.embed(
                fig,
                "Bar chart of CLV to acquisition cost per channel",
                "CLV:CAC per channel: bars short of the dashed target line cost more than "
                "their customers are worth at the target ratio.",
            )
        )
    if channel is not None:
        parts.append(
            _prospects(
                model,
                spend_model,
                data,
                channel,
                acquisition_cost=acquisition_cost,
                target_ratio=target_ratio,
                time=time,
                discount_rate=discount_rate,
                margin=margin,
                per_month=per_month,
                currency=currency,
            )
        )
    parts.append("</section>")
    sections.append("".join(parts))

    # (6) monitoring over time
    if transactions is not None:
        toc.append(("monitoring", "Value over time"))
        sections.append(
            _monitoring(
                model,
                spend_model,
                transactions,
                pictures,
                customer_id_col=customer_id_col,
                datetime_col=datetime_col,
                monetary_value_col=monetary_value_col,
                freq=freq,
                unit=unit,
                every=monitor_every,
                calibration_period_end=calibration_period_end,
                time=time,
                discount_rate=discount_rate,
                margin=margin,
                currency=currency,
            )
        )

    # (4) model check
    toc.append(("model-check", "Can the model be trusted?"))
    sections.append(
        _model_check(
            model,
            spend_model,
            data,
            holdout,
            holdout_model,
            unit_word,
            columns,
        )
    )
    subject = (
        f"{len(data):,} customers, {type(model).__name__}; values over the {horizon} ({money_unit})"
    )
    return "".join(sections), toc, subject


def _new_customer_spend(spend_model: Any) -> float:
    """A new customer's expected spend per purchase: the spend model's population mean, or the
    given spend (the mean of per-customer spends)."""
    if hasattr(spend_model, "population_mean_spend"):
        return float(spend_model.population_mean_spend())
    return float(np.mean(np.asarray(spend_model, dtype=float)))


def _prospects(
    model: Any,
    spend_model: Any,
    data: pd.DataFrame,
    channel: pd.Series,
    *,
    acquisition_cost: Any,
    target_ratio: float,
    time: int,
    discount_rate: float,
    margin: float,
    per_month: float,
    currency: str,
) -> str:
    """The value of a newly acquired customer per channel, for a model with covariates."""
    spec = vars(model).get("covariates_")
    if spec is None:
        return (
            "<p>Prospects' value per channel needs a purchase model fitted with covariates "
            "(e.g. the channel as a purchase or dropout covariate); this one has none, so the "
            "table above uses the value of existing customers.</p>"
        )
    # Each existing customer stands for a prospect of its channel, with its covariates.
    spend = _new_customer_spend(spend_model)
    prospects = prospect_value(
        model,
        spend,
        data,
        time=time,
        discount_rate=discount_rate,
        time_unit=per_month,
        margin=margin,
    )
    value = prospects["value"]
    previous = prospects["expected_purchases"].to_numpy() - 1.0  # repeat purchases only
    groups = pd.Series(channel.to_numpy(), index=data.index)
    table = pd.DataFrame(
        {
            "repeat_purchases": pd.Series(previous, index=data.index).groupby(groups).mean(),
            "prospect_value": value.groupby(groups).mean(),
        }
    )
    table.index.name = channel.name or "channel"
    table["max_affordable_cac"] = table["prospect_value"] / target_ratio
    formats: dict[str, Callable[[Any], str]] = {
        "repeat_purchases": lambda v: f"{v:.2f}",
        "prospect_value": lambda v: _money(v, currency),
        "max_affordable_cac": lambda v: _money(v, currency),
    }
    if acquisition_cost is not None:
        budget = acquisition_budget(value, acquisition_cost, by=groups, target_ratio=target_ratio)
        table["acquisition_cost"] = budget["acquisition_cost"].reindex(table.index)
        table["prospect_to_cac"] = table["prospect_value"] / table["acquisition_cost"]
        formats["acquisition_cost"] = lambda v: _money(v, currency)
        formats["prospect_to_cac"] = lambda v: f"{v:.2f} : 1"
    return (
        "<h3>A new customer's value per channel</h3>"
        f"<p>What a customer newly acquired through each channel is expected to bring over "
        f"their first {time} months ({html.escape(currency.strip() or 'currency')}, discounted at "
        f"{discount_rate:.2%} a month): the first purchase plus the discounted expected repeat "
        f"purchases of {type(model).__name__} with the channel's covariates (averaged over the "
        "channel's existing customers), times the mean spend per purchase of "
        f"{_money(spend, currency)}"
        + (f" and the margin of {margin:.0%}" if margin != 1 else "")
        + ".</p>"
        + _table(
            table,
            f"Prospects' value per {html.escape(str(table.index.name))} (first {time} months)",
            formats,
            "prospects",
            index=str(table.index.name),
        )
    )


def _monitoring(
    model: Any,
    spend_model: Any,
    transactions: Any,
    pictures: _Figures,
    *,
    customer_id_col: str,
    datetime_col: str,
    monetary_value_col: str | None,
    freq: str | None,
    unit: str | None,
    every: str,
    calibration_period_end: Any,
    time: int,
    discount_rate: float,
    margin: float,
    currency: str,
) -> str:
    """Tracking (actual vs expected repeat purchases) and the equity re-scored per period."""
    if freq is None:
        freq = unit or "W"
    code, multiplier = _units.parse_unit(freq, "freq")
    track = tracking(
        model,
        transactions,
        customer_id_col,
        datetime_col,
        calibration_period_end,
        freq=code,
        freq_multiplier=multiplier,
    )
    dates = pd.to_datetime(transactions[datetime_col])
    first, last = dates.min(), dates.max()
    try:
        ends = list(pd.date_range(first, last, freq=every))
    except (ValueError, TypeError):
        raise _bad_parameter(
            "monitor_every", f"must be a pandas frequency such as 'QE' or 'ME', got {every!r}"
        ) from None
    if not ends or ends[-1] < last:
        ends.append(last)
    rows = []
    for end in ends:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            summary = summarize_transactions(
                transactions,
                customer_id_col,
                datetime_col,
                monetary_value_col,
                observation_period_end=end,
                freq=code,
                freq_multiplier=multiplier,
                after_end="exclude",
            )
        spend = spend_model
        if not isinstance(spend_model, BaseModel) and np.ndim(spend_model) == 1:
            spend = float(np.mean(spend_model))  # per-customer spends do not match a past base
        value = customer_lifetime_value(
            model, spend, summary, time=time, discount_rate=discount_rate, margin=margin
        )
        active = model.probability_alive(summary)
        rows.append(
            {
                "period_end": pd.Timestamp(end).date().isoformat(),
                "customers": float(len(summary)),
                "expected_active": float(np.sum(active)),
                "equity": float(np.sum(value)),
            }
        )
    equity = pd.DataFrame(rows).set_index("period_end")
    parts = [
        '<section id="monitoring"><h2>Value over time</h2>',
        "<p>The customer base re-scored at the end of each period with the same fitted "
        f"models: customers acquired so far, the expected number still active (the sum of "
        f"P(alive)), and the customer equity (total CLV over the following {time} months, "
        f"{html.escape(currency.strip() or 'currency')}).</p>",
        _table(
            equity,
            f"Customer equity by period end ({time}-month CLV)",
            {
                "customers": lambda v: f"{int(v):,}",
                "expected_active": lambda v: f"{v:,.0f}",
                "equity": lambda v: _money(v, currency),
            },
            "equity",
            index="period end",
        ),
    ]
    if pictures.available and len(equity) > 1:
        fig, ax = pictures.new(height=2.8)
        ax.plot(pd.to_datetime(equity.index), equity["equity"], marker="o", color="#1f4e79")
        ax.set_ylabel(f"customer equity ({currency.strip() or 'currency'})")
        ax.yaxis.set_major_formatter(pictures.ticker.StrMethodFormatter("{x:,.0f}"))
        ax.set_ylim(bottom=0)
        locator = pictures.dates.AutoDateLocator(maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(pictures.dates.ConciseDateFormatter(locator))
        parts.append(
            pictures.embed(
                fig,
                "Line chart of customer equity at each period end",
                f"Customer equity (total {time}-month CLV) at each period end: a falling line "
                "means the base is losing value faster than it gains it.",
            )
        )
    actual, expected = float(track["actual"].sum()), float(track["expected"].sum())
    period = _unit_word(_units.unit_name(code, multiplier))
    parts.append(
        f"<p>Repeat purchases over the whole log: "
        f"{_num('tracking_actual', actual, f'{actual:,.0f}')} actual against "
        f"{_num('tracking_expected', expected, f'{expected:,.0f}')} expected by the model "
        f"({len(track)} {html.escape(period)}s, from the first purchase in the log to the "
        "last).</p>"
    )
    if pictures.available:
        fig, ax = pictures.new()
        ax.plot(track.index, track["actual"], label="actual", color="#1a1a1a")
        ax.plot(
            track.index,
            track["expected"],
            label="expected (model)",
            color="#1f4e79",
            linestyle="--",
        )
        ax.set_ylabel(f"repeat purchases per {period}")
        if calibration_period_end is not None:
            ax.axvline(
                pd.Timestamp(calibration_period_end),
                color="#c0392b",
                linestyle=":",
                label="end of calibration",
            )
        ax.legend()
        locator = pictures.dates.AutoDateLocator(maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(pictures.dates.ConciseDateFormatter(locator))
        parts.append(
            pictures.embed(
                fig,
                "Line chart of actual and expected repeat purchases per period",
                "Repeat purchases per period, actual against the model's expectation: the "
                "lines should run together; a gap that widens means the model drifts.",
            )
        )
    parts.append("</section>")
    return "".join(parts)


def _diagnostics(model: Any) -> str:
    info = getattr(model, "fit_info_", {}) or {}
    weak = info.get("weakly_identified") or []
    name, ll = type(model).__name__, model.log_likelihood_
    items = [
        _num(f"{name}.log_likelihood", ll, f"log-likelihood {ll:,.2f}") if ll is not None else "",
        f"AIC {model.aic_:,.2f}, BIC {model.bic_:,.2f}" if model.aic_ is not None else "",
        f"converged: {'yes' if model.converged_ else 'NO'} "
        f"({html.escape(str(info.get('termination', '')))})",
        (
            "weakly identified parameters: " + html.escape(", ".join(weak))
            if weak
            else "no weakly identified parameters"
        ),
    ]
    lis = "".join(f"<li>{i}</li>" for i in items if i)
    params = model.summary
    formats = {c: (lambda v: f"{v:.4g}") for c in ("coef", "se", "lower", "upper") if c in params}
    return f"<ul>{lis}</ul>" + _table(
        params,
        f"{type(model).__name__} parameters with 95% intervals",
        formats,
        f"params.{type(model).__name__}",
        index="parameter",
    )


def _assumptions(model: Any) -> str:
    items = _ASSUMPTIONS.get(type(model).__name__)
    if not items:
        return ""
    lis = "".join(f"<li>{html.escape(i)}</li>" for i in items)
    return f"<h3>What {type(model).__name__} assumes</h3><ul>{lis}</ul>"


def _model_check(
    model: Any,
    spend_model: Any,
    data: pd.DataFrame,
    holdout: Any,
    holdout_model: Any,
    unit_word: str,
    columns: dict[str, str],
) -> str:
    parts = [
        '<section id="model-check"><h2>Can the model be trusted?</h2>',
        f"<h3>Fit of {type(model).__name__}</h3>",
        _diagnostics(model),
    ]
    if holdout is not None:
        evaluation = holdout_evaluation(
            holdout_model if holdout_model is not None else model, holdout
        )
        m = evaluation.metrics
        duration = (
            float(np.max(holdout["duration_holdout"]))
            if "duration_holdout" in holdout
            else float("nan")
        )
        actual, predicted = float(m["actual_total"]), float(m["predicted_total"])
        off, mae, rho = float(m["tracking_error"]), float(m["mae"]), float(m["correlation"])
        parts.append(
            "<h3>Holdout check</h3><p>Fitted on the calibration period and asked to predict "
            f"the following {duration:g} {unit_word}s for {len(evaluation.customers):,} "
            f"customers: {_num('holdout_actual', actual, f'{actual:,.0f}')} repeat purchases "
            f"happened, {_num('holdout_predicted', predicted, f'{predicted:,.1f}')} were "
            f"predicted (total off by {_num('holdout_tracking_error', off, f'{off:+.1%}')}). "
            "Per customer, the prediction is off by "
            f"{_num('holdout_mae', mae, f'{mae:.3f}')} purchases on average (mean absolute "
            "error) and the correlation of predicted with actual purchases is "
            f"{_num('holdout_correlation', rho, f'{rho:.3f}')}.</p>"
        )
    else:
        parts.append(
            '<p class="note">No holdout check: give holdout= (a calibration/holdout table from '
            "calibration_and_holdout) to see how well the model predicts a period it has not "
            "seen.</p>"
        )
    parts.append(_assumptions(model))
    if isinstance(spend_model, BaseModel):
        parts.append(f"<h3>Fit of {type(spend_model).__name__}</h3>")
        parts.append(_diagnostics(spend_model))
        mv = spend_model._column_names().get("monetary_value") or "monetary_value"
        if mv in data.columns and columns["frequency"] in data.columns:
            repeat = data[data[columns["frequency"]] > 0]
            if len(repeat) > 2:
                rho = float(np.corrcoef(repeat[columns["frequency"]], repeat[mv])[0, 1])
                parts.append(
                    "<p>Correlation of purchases and spend per purchase among repeat buyers: "
                    f"{_num('spend_frequency_correlation', rho, f'{rho:.3f}')} (near 0 supports "
                    "the spend model's independence assumption).</p>"
                )
        parts.append(_assumptions(spend_model))
    parts.append("</section>")
    return "".join(parts)


def _subscriber_base(
    model: Any,
    data: Any,
    discount_rate: float,
    currency: str,
    margin_per_period: float | None,
    period_word: str,
) -> str:
    """The active subscribers of customer records, by tenure, and their residual value."""
    if not isinstance(data, pd.DataFrame):
        raise _bad_parameter(
            "data",
            "for a subscription model: customer records as a pandas DataFrame (periods, "
            f"churned), got {type(data).__name__}",
        )
    names = model._column_names(data)
    periods_col, churned_col = names.get("periods") or "periods", names.get("churned") or "churned"
    weights_col = names.get("weights")
    for column in (periods_col, churned_col):
        if column not in data.columns:
            raise _bad_parameter(
                "data",
                f"has no column `{column}`; the data has columns {[str(c) for c in data.columns]}",
            )
    churned = data[churned_col].astype(bool).to_numpy()
    counts = (
        data[weights_col].to_numpy(dtype=float)
        if weights_col is not None and weights_col in data.columns
        else np.ones(len(data))
    )
    tenure = data[periods_col].to_numpy(dtype=float)[~churned]
    by_tenure = pd.Series(counts[~churned]).groupby(tenure).sum()
    by_tenure.index = by_tenure.index.astype(int)
    table = pd.DataFrame({"subscribers": by_tenure.astype(float)})
    table.index.name = "tenure"
    derl = np.asarray(
        model.expected_residual_lifetime(table.index.to_numpy(dtype=float), discount_rate),
        dtype=float,
    )
    table["derl"] = derl
    formats: dict[str, Callable[[Any], str]] = {
        "subscribers": lambda v: f"{v:,.0f}",
        "derl": lambda v: f"{v:.2f}",
    }
    active = float(table["subscribers"].sum())
    payments = float((table["subscribers"] * table["derl"]).sum())
    kpis = [
        _kpi("Active subscribers", _num("active_subscribers", active, f"{active:,.0f}")),
        _kpi(
            "Expected future payments of the active base",
            _num("base_payments", payments, f"{payments:,.0f}"),
            f"DERL summed over subscribers; discounted at {discount_rate:.2%} per {period_word}",
        ),
    ]
    if margin_per_period is not None:
        table["subscriber_value"] = np.asarray(
            model.subscription_value(table.index.to_numpy(dtype=float), margin_per_period,
                                     discount_rate),
            dtype=float,
        )  # fmt: skip
        table["total_value"] = table["subscribers"] * table["subscriber_value"]
        formats["subscriber_value"] = lambda v: _money(v, currency)
        formats["total_value"] = lambda v: _money(v, currency)
        base = float(table["total_value"].sum())
        kpis.append(
            _kpi(
                "Residual value of the active base",
                _num("base_value", base, _money(base, currency)),
                f"margin {_money(float(margin_per_period), currency)} per {period_word}",
            )
        )
    return (
        "<h3>The active subscribers</h3>"
        f"<p>The subscribers still active in the records, by tenure ({period_word}s "
        "completed), with their expected future payments (DERL) and, with a margin, their "
        "residual value. Churned subscribers are not counted.</p>"
        + '<div class="kpis">'
        + "".join(kpis)
        + "</div>"
        + _table(
            table,
            f"Active subscribers by tenure ({html.escape(currency.strip() or 'currency')})",
            formats,
            "base",
            index="tenure",
        )
    )


def _subscription_report(
    model: Any,
    pictures: _Figures,
    discount_rate: float,
    currency: str,
    survivors: Any,
    periods: int,
    margin_per_period: float | None,
    data: Any = None,
) -> tuple[str, list[tuple[str, str]]]:
    periods = _check_int(periods, "periods", 1)
    if not (isinstance(discount_rate, numbers.Real) and 0 <= float(discount_rate) < 10):
        raise _bad_parameter(
            "discount_rate",
            f"must be a rate per period >= 0 for a subscription model, got {discount_rate!r}",
        )
    unit, unit_word = _unit_of(model, None)
    period_word = unit_word or "period"
    t = np.arange(periods + 1, dtype=float)
    survival = np.asarray(model.survival(t), dtype=float)
    retention = np.asarray(model.retention_rate(t[1:]), dtype=float)
    derl = np.asarray(model.expected_residual_lifetime(t, discount_rate), dtype=float)
    frame = pd.DataFrame(
        {"survival": survival, "retention_rate": np.append(np.nan, retention), "derl": derl},
        index=pd.Index(t.astype(int), name="tenure"),
    )
    formats: dict[str, Callable[[Any], str]] = {
        "survival": _share,
        "retention_rate": lambda v: "" if not math.isfinite(v) else _share(v),
        "derl": lambda v: f"{v:.2f}",
    }
    if margin_per_period is not None:
        frame["subscriber_value"] = np.asarray(
            model.subscription_value(t, margin_per_period, discount_rate), dtype=float
        )
        formats["subscriber_value"] = lambda v: _money(v, currency)
    actual = None
    if survivors is not None:
        counts = np.asarray(survivors, dtype=float)
        actual = counts / counts[0]
        frame["actual_survival"] = pd.Series(actual, index=np.arange(len(actual))).reindex(
            frame.index
        )
        formats["actual_survival"] = lambda v: "" if not math.isfinite(v) else _share(v)
    s12 = float(survival[-1])
    parts = [
        '<section id="subscriptions"><h2>How long subscribers stay</h2>',
        '<div class="kpis">',
        _kpi(
            f"Still subscribed after {periods} {period_word}s",
            _num("survival_end", s12, _share(s12)),
            "share of a new cohort",
        ),
        _kpi(
            f"Renewal rate in {period_word} {periods}",
            _num("retention_end", float(retention[-1]), _share(float(retention[-1]))),
            "of those still subscribed",
        ),
        _kpi(
            "Expected future payments of a new subscriber",
            _num("derl_0", float(derl[0]), f"{derl[0]:.2f}"),
            f"after the first payment; discounted at {discount_rate:.2%} per {period_word}",
        ),
        "</div>",
        f"<p>Survival: the share of a new cohort still subscribed after each {period_word}. "
        "Retention rate: the share of those subscribed at the start of a period who renew; it "
        "rises with tenure because the subscribers most likely to cancel leave first. DERL: "
        f"the discounted expected number of future payments of a subscriber at that tenure "
        f"({discount_rate:.2%} per {period_word})"
        + (
            f"; value: DERL times the margin of {_money(float(margin_per_period), currency)} "
            f"per {period_word}"
            if margin_per_period is not None
            else ""
        )
        + ".</p>",
    ]
    if pictures.available:
        fig, (left, right) = pictures.new(8.0, 3.2, ncols=2)
        left.plot(t, survival, color="#1f4e79", label="model")
        right.plot(t[1:], retention, color="#1f4e79", label="model")
        if actual is not None:
            n = np.arange(len(actual))
            left.plot(n, actual, "o", color="#1a1a1a", label="actual")
            if len(actual) > 1:
                right.plot(n[1:], actual[1:] / actual[:-1], "o", color="#1a1a1a", label="actual")
        left.set_xlabel(f"tenure ({period_word}s)")
        left.set_ylabel("share still subscribed")
        right.set_xlabel(f"{period_word}")
        right.set_ylabel("renewal rate")
        left.legend()
        right.legend()
        parts.append(
            pictures.embed(
                fig,
                "Survival and retention curves of the subscription cohort",
                "Left: the share of a new cohort still subscribed; right: the renewal rate "
                "per period"
                + (", with the cohort's actual figures as dots." if actual is not None else "."),
            )
        )
    parts.append(
        _table(
            frame,
            f"Per tenure ({period_word}s completed): survival, renewal rate, expected residual "
            "lifetime (DERL, in payments)"
            + (
                f" and value ({html.escape(currency.strip() or 'currency')})"
                if "subscriber_value" in frame
                else ""
            ),
            formats,
            "subscription",
            index="tenure",
        )
    )
    if data is not None:
        parts.append(
            _subscriber_base(model, data, discount_rate, currency, margin_per_period, period_word)
        )
    parts.append("</section>")
    check = (
        '<section id="model-check"><h2>Can the model be trusted?</h2>'
        + _diagnostics(model)
        + _assumptions(model)
        + "</section>"
    )
    toc = [
        ("subscriptions", "How long subscribers stay"),
        ("model-check", "Can the model be trusted?"),
    ]
    return "".join(parts) + check, toc
