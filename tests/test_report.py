"""The customer-value report (issue 24): the stated numbers are the library's."""

from __future__ import annotations

import importlib.util
import io
import math
import sys
import urllib.parse
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from scipy.special import betaln

import clvrs
import clvrs.__main__ as cli
from clvrs.exceptions import InvalidParameterError

report_module = sys.modules["clvrs.report"]


class _Page(HTMLParser):
    """The stated numbers (data-key -> exact value and shown text), links, images, scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.numbers: dict[str, float] = {}
        self.texts: dict[str, str] = {}
        self.links: list[dict[str, str]] = []
        self.images: list[dict[str, str]] = []
        self.scripts = 0
        self.ids: set[str] = set()
        self._key: str | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "span" and "data-key" in a:
            self._key = a["data-key"]
            self.numbers[self._key] = float(a["data-value"])
            self.texts[self._key] = ""
        elif tag == "a":
            self.links.append(a)
        elif tag == "img":
            self.images.append(a)
        elif tag == "script":
            self.scripts += 1

    def handle_endtag(self, tag):
        if tag == "span":
            self._key = None

    def handle_data(self, data):
        if self._key is not None:
            self.texts[self._key] += data


def _parse(page: str) -> _Page:
    parsed = _Page()
    parsed.feed(page)
    return parsed


@pytest.fixture(scope="module")
def cdnow_split():
    log = clvrs.datasets.load_cdnow_transactions()
    split = clvrs.calibration_and_holdout(
        log, "customer_id", "date", "1997-09-30", "1998-06-30", freq="W",
        monetary_value_col="amount",
    )  # fmt: skip
    names = {"frequency_cal": "frequency", "recency_cal": "recency", "T_cal": "T"}
    names["monetary_value_cal"] = "monetary_value"
    summary = split.rename(columns=names)[list(names.values())]
    model = clvrs.BetaGeoModel().fit(summary)
    spend = clvrs.GammaGammaModel().fit(summary)
    return log, split, summary, model, spend


@pytest.fixture(scope="module")
def plain(cdnow_split):
    _, _, summary, model, spend = cdnow_split
    return _parse(clvrs.report(model, spend, summary))


def test_value_section_states_the_library_numbers(cdnow_split, plain):
    _, _, summary, model, spend = cdnow_split
    clv = clvrs.customer_lifetime_value(model, spend, summary, time=12, discount_rate=0.01)
    n = plain.numbers
    assert n["total_clv"] == pytest.approx(float(clv.sum()), rel=1e-12)
    assert plain.texts["total_clv"] == f"${clv.sum():,.0f}"
    assert n["mean_clv"] == pytest.approx(float(clv.mean()), rel=1e-12)
    assert n["median_clv"] == pytest.approx(float(clv.median()), rel=1e-12)
    tiers = clvrs.clv_segments(clv, [0, 0.5, 0.8, 0.95, 1]).table
    labels = ["Bottom 50%", "Next 30%", "Next 15%", "Top 5%"]
    for label, row in zip(labels[::-1], tiers.itertuples()):
        assert n[f"tiers.{label}.customers"] == row.customers
        assert n[f"tiers.{label}.share_of_value"] == pytest.approx(row.share_of_value, rel=1e-12)
        assert n[f"tiers.{label}.value"] == pytest.approx(row.value, rel=1e-12)
    assert sum(n[f"tiers.{label}.share_of_value"] for label in labels) == pytest.approx(1.0)
    top = clv.nlargest(20)
    alive = model.probability_alive(summary)
    for customer, value in top.items():
        assert n[f"top.{customer}.clv"] == pytest.approx(value, rel=1e-12)
        assert n[f"top.{customer}.probability_alive"] == pytest.approx(alive[customer])
    # Units and horizon are stated.
    assert "next 12 months, discounted at 1.00% a month" in clvrs.report(
        model, spend, summary, figures=False
    )


def test_retention_list_and_its_csv(cdnow_split, plain):
    _, _, summary, model, spend = cdnow_split
    clv = clvrs.customer_lifetime_value(model, spend, summary, time=12, discount_rate=0.01)
    alive = model.probability_alive(summary)
    low = alive < 0.5
    assert plain.numbers["n_at_risk"] == int(low.sum()) > 0
    # Value at risk: the value if still active (CLV / P(alive)) minus the CLV.
    at_risk = clv / alive - clv
    assert plain.numbers["total_value_at_risk"] == pytest.approx(float(at_risk[low].sum()))
    links = [a for a in plain.links if a.get("download") == "retention_list.csv"]
    assert len(links) == 1 and links[0]["href"].startswith("data:text/csv")
    csv = urllib.parse.unquote(links[0]["href"].split(",", 1)[1])
    table = pd.read_csv(io.StringIO(csv), index_col="customer")
    assert len(table) == int(low.sum())  # fewer than retention_rows: all of them
    expected = at_risk[low].sort_values(ascending=False)
    assert list(table.index[:10]) == list(expected.index[:10])
    np.testing.assert_allclose(table["probability_alive"], alive[table.index], rtol=1e-5)
    np.testing.assert_allclose(table["clv"], clv[table.index], rtol=1e-5)
    later = model.probability_alive(
        frequency=summary.loc[table.index, "frequency"],
        recency=summary.loc[table.index, "recency"],
        T=summary.loc[table.index, "T"] + 4.345,  # a month in weeks
    )
    np.testing.assert_allclose(table["probability_alive_next_month"], later, rtol=1e-5)
    assert (table["probability_alive_next_month"] <= table["probability_alive"] + 1e-12).all()


def test_report_is_self_contained(plain, cdnow_split):
    _, _, summary, model, spend = cdnow_split
    page = clvrs.report(model, spend, summary)
    assert plain.scripts == 0
    assert "http://" not in page.replace("http://www.w3.org", "")
    assert "https://" not in page
    assert plain.images and all(i["src"].startswith("data:image/png;base64,") for i in plain.images)
    assert all(i.get("alt") for i in plain.images)
    assert {"value", "risk", "acquisition", "model-check"} <= plain.ids
    assert "no-figures" not in plain.ids


def test_acquisition_without_and_with_channel_costs(cdnow_split, plain):
    _, _, summary, model, spend = cdnow_split
    clv = clvrs.customer_lifetime_value(model, spend, summary, time=12, discount_rate=0.01)
    overall = clvrs.acquisition_budget(clv)
    assert plain.numbers["acquisition.all.max_affordable_cac"] == pytest.approx(
        float(overall["max_affordable_cac"].iloc[0])
    )
    assert not any(k.endswith("clv_to_cac") for k in plain.numbers)
    channel = pd.Series(
        np.array(["search", "social", "email"])[summary.index.to_numpy() % 3],
        index=summary.index,
        name="channel",
    )
    costs = {"search": 8.0, "social": 12.0, "email": 3.0}
    page = _parse(
        clvrs.report(model, spend, summary, channel=channel, acquisition_cost=costs,
                     target_ratio=2.5, figures=False)
    )  # fmt: skip
    budget = clvrs.acquisition_budget(clv, costs, by=channel, target_ratio=2.5)
    for group, row in budget.iterrows():
        assert page.numbers[f"acquisition.{group}.clv_to_cac"] == pytest.approx(row.clv_to_cac)
        assert page.numbers[f"acquisition.{group}.headroom"] == pytest.approx(row.headroom)
        assert page.texts[f"acquisition.{group}.clv_to_cac"] == f"{row.clv_to_cac:.2f} : 1"


def test_model_check_with_and_without_holdout(cdnow_split, plain):
    _, split, summary, model, spend = cdnow_split
    assert plain.numbers["BetaGeoModel.log_likelihood"] == pytest.approx(model.log_likelihood_)
    for name, value in model.params_.items():
        assert plain.numbers[f"params.BetaGeoModel.{name}.coef"] == pytest.approx(value)
    assert "holdout_mae" not in plain.numbers
    page = clvrs.report(model, spend, summary, holdout=split, figures=False)
    parsed = _parse(page)
    metrics = clvrs.holdout_evaluation(model, split).metrics
    assert parsed.numbers["holdout_actual"] == metrics["actual_total"]
    assert parsed.numbers["holdout_predicted"] == pytest.approx(metrics["predicted_total"])
    assert parsed.numbers["holdout_mae"] == pytest.approx(metrics["mae"])
    assert parsed.numbers["holdout_correlation"] == pytest.approx(metrics["correlation"])
    assert "the following 39 weeks" in page
    # The spend model's independence assumption, checked among the repeat buyers.
    repeat = summary[summary["frequency"] > 0]
    rho = np.corrcoef(repeat["frequency"], repeat["monetary_value"])[0, 1]
    assert parsed.numbers["spend_frequency_correlation"] == pytest.approx(rho)
    assert "What BetaGeoModel assumes" in page


def test_monitoring_over_time(cdnow_split):
    log, _, summary, model, spend = cdnow_split
    page = _parse(
        clvrs.report(model, spend, summary, transactions=log, monetary_value_col="amount",
                     calibration_period_end="1997-09-30", figures=False)
    )  # fmt: skip
    track = clvrs.tracking(model, log, "customer_id", "date", "1997-09-30", freq="W")
    assert page.numbers["tracking_actual"] == track["actual"].sum()
    assert page.numbers["tracking_expected"] == pytest.approx(track["expected"].sum())
    # The last period end is the end of the log: re-scored there with the same models.
    end = clvrs.summarize_transactions(log, "customer_id", "date", "amount", freq="W")
    equity = clvrs.customer_lifetime_value(model, spend, end, time=12).sum()
    assert page.numbers["equity.1998-06-30.equity"] == pytest.approx(equity)
    assert page.numbers["equity.1998-06-30.customers"] == len(end)
    # CDNOW is one cohort, acquired in the first quarter of 1997.
    assert page.numbers["equity.1997-03-31.customers"] == len(end)
    with pytest.warns(UserWarning, match="left out"):
        early = clvrs.summarize_transactions(
            log, "customer_id", "date", "amount", observation_period_end="1997-03-31",
            freq="W", after_end="exclude",
        )  # fmt: skip
    assert page.numbers["equity.1997-03-31.expected_active"] == pytest.approx(
        model.probability_alive(early).sum()
    )


def test_subscription_cohort_report():
    survivors = [1000, 631, 468, 382, 326, 289, 262, 241]
    model = clvrs.ShiftedBetaGeoModel().fit(survivors=survivors)
    page = clvrs.report(model, survivors=survivors, periods=12, discount_rate=0.1,
                        margin_per_period=20.0, figures=False)  # fmt: skip
    parsed = _parse(page)
    a, b = model.params_["alpha"], model.params_["beta"]
    for t in range(13):
        # sBG survival in closed form (Fader & Hardie 2007): B(a, b + t) / B(a, b).
        closed = math.exp(betaln(a, b + t) - betaln(a, b))
        assert parsed.numbers[f"subscription.{t}.survival"] == pytest.approx(closed, rel=1e-9)
        assert parsed.numbers[f"subscription.{t}.derl"] == pytest.approx(
            model.expected_residual_lifetime(t, 0.1)
        )
        assert parsed.numbers[f"subscription.{t}.subscriber_value"] == pytest.approx(
            20.0 * model.expected_residual_lifetime(t, 0.1)
        )
    for t in range(1, 13):
        assert parsed.numbers[f"subscription.{t}.retention_rate"] == pytest.approx(
            model.retention_rate(t)
        )
    for t, count in enumerate(survivors):
        assert parsed.numbers[f"subscription.{t}.actual_survival"] == count / 1000
    assert parsed.numbers["derl_0"] == pytest.approx(model.expected_residual_lifetime(0, 0.1))
    assert {"subscriptions", "model-check"} <= parsed.ids
    assert "What ShiftedBetaGeoModel assumes" in page


def test_without_matplotlib_the_report_says_so(cdnow_split, monkeypatch):
    _, _, summary, model, spend = cdnow_split
    find_spec = importlib.util.find_spec

    def hide(name, *args):
        return None if name == "matplotlib" else find_spec(name, *args)

    monkeypatch.setattr(report_module.importlib.util, "find_spec", hide)
    page = clvrs.report(model, spend, summary)
    parsed = _parse(page)
    assert not parsed.images and "no-figures" in parsed.ids
    assert "matplotlib is not installed" in page
    assert "total_clv" in parsed.numbers


def test_writes_the_file_and_refuses_what_cannot_work(cdnow_split, tmp_path):
    _, _, summary, model, spend = cdnow_split
    out = tmp_path / "report.html"
    page = clvrs.report(model, spend, summary, out, figures=False)
    assert out.read_text(encoding="utf-8") == page
    with pytest.raises(InvalidParameterError, match="spend_model"):
        clvrs.report(model, None, summary)
    with pytest.raises(InvalidParameterError, match="data"):
        clvrs.report(model, spend, None)
    with pytest.raises(InvalidParameterError, match="model"):
        clvrs.report(clvrs.BetaGeoModel(), spend, summary)
    with pytest.raises(InvalidParameterError, match="alive_threshold"):
        clvrs.report(model, spend, summary, alive_threshold=2)


def test_cli_score_writes_the_report(tmp_path):
    log = clvrs.datasets.load_cdnow_transactions()
    csv = tmp_path / "log.csv"
    log.to_csv(csv, index=False)
    out, html_path = tmp_path / "scores.csv", tmp_path / "report.html"
    base = ["score", str(csv), "--customer-col", "customer_id", "--date-col", "date",
            "--out", str(out), "--quiet"]  # fmt: skip
    # Checked before the work: needs amounts, an .html name.
    assert cli.main([*base, "--report", str(html_path)]) == 2
    assert cli.main([*base, "--amount-col", "amount", "--report", str(tmp_path / "r.pdf")]) == 2
    assert not out.exists()
    assert cli.main([*base, "--amount-col", "amount", "--report", str(html_path)]) == 0
    scores = pd.read_csv(out, index_col=0)
    parsed = _parse(html_path.read_text(encoding="utf-8"))
    assert parsed.numbers["total_clv"] == pytest.approx(scores["clv_12M"].sum(), rel=1e-9)


def test_the_docs_page_runs(tmp_path, monkeypatch):
    """Every Python block of docs/report.md runs, in order, and writes the files it names."""
    import re
    from pathlib import Path

    text = (Path(__file__).parent.parent / "docs" / "report.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for index, block in enumerate(blocks):
        exec(compile(block, f"docs/report.md[python {index}]", "exec"), namespace)
    for name in ("report.html", "report_full.html", "subscriptions.html"):
        assert (tmp_path / name).stat().st_size > 10_000
    parsed = _parse(namespace["page"])
    assert {"value", "risk", "acquisition", "monitoring", "model-check"} <= parsed.ids


def test_prospects_value_per_channel_with_covariates():
    data = clvrs.datasets.load_cdnow_summary()
    data.attrs["time_unit"] = "W"
    rng = np.random.default_rng(3)
    data["channel"] = rng.choice(["email", "store", "web"], size=len(data))
    model = clvrs.BetaGeoModel().fit(
        data, purchase_covariates=["channel"], dropout_covariates=["channel"]
    )
    spend = clvrs.GammaGammaModel().fit(data)
    costs = {"email": 5.0, "store": 20.0, "web": 9.0}
    # The channels given in another order are matched by label.
    shuffled = data["channel"].sample(frac=1.0, random_state=1)
    page = _parse(
        clvrs.report(model, spend, data, channel=shuffled, acquisition_cost=costs, time=6,
                     discount_rate=0.02, figures=False)
    )  # fmt: skip
    clv = clvrs.customer_lifetime_value(model, spend, data, time=6, discount_rate=0.02)
    budget = clvrs.acquisition_budget(clv, costs, by=data["channel"])
    mean_spend = spend.params_["p"] * spend.params_["gamma"] / (spend.params_["q"] - 1)
    for channel in costs:
        assert page.numbers[f"acquisition.{channel}.clv_to_cac"] == pytest.approx(
            budget.loc[channel, "clv_to_cac"]
        )
        # A new customer of the channel: the first purchase plus the discounted monthly
        # increments of E[X(t)] (4.345 weeks a month), each purchase worth the mean spend.
        one = data[data["channel"] == channel].iloc[[0]]
        expected = [model.expected_purchases_new_customer(4.345 * m, one).iloc[0]
                    for m in range(7)]  # fmt: skip
        repeat = sum((expected[m] - expected[m - 1]) / 1.02**m for m in range(1, 7))
        value = mean_spend * (1 + repeat)
        assert page.numbers[f"prospects.{channel}.prospect_value"] == pytest.approx(value)
        assert page.numbers[f"prospects.{channel}.repeat_purchases"] == pytest.approx(expected[6])
        assert page.numbers[f"prospects.{channel}.prospect_to_cac"] == pytest.approx(
            value / costs[channel]
        )
    log = clvrs.datasets.load_cdnow_transactions()
    with pytest.raises(InvalidParameterError, match="transactions.*covariates"):
        clvrs.report(model, spend, data, transactions=log)


def test_user_text_is_escaped(cdnow_split):
    _, _, summary, model, spend = cdnow_split
    channel = np.where(summary.index.to_numpy() % 2, "<script>alert(1)</script>", "a&b")
    page = clvrs.report(model, spend, summary, channel=channel, title="<b>Q3</b>", figures=False)
    parsed = _parse(page)
    assert parsed.scripts == 0 and "&lt;script&gt;" in page and "&lt;b&gt;Q3" in page
    with pytest.raises(InvalidParameterError, match="currency"):
        clvrs.report(model, spend, summary, currency="<i>")
    with pytest.raises(clvrs.InvalidDataError, match="`channel` has 10 values"):
        clvrs.report(model, spend, summary, channel=channel[:10])


def test_small_and_empty_cases_read_plainly():
    data = clvrs.datasets.load_cdnow_summary()
    model = clvrs.BetaGeoModel().fit(data)
    spend = clvrs.GammaGammaModel().fit(data)
    # Three customers: a tier without customers has no mean value, said so (not "$nan").
    page = clvrs.report(model, spend, data.iloc[:3], figures=False)
    parsed = _parse(page)
    assert parsed.numbers["tiers.Next 15%.customers"] == 0
    assert parsed.texts["tiers.Next 15%.mean_value"] == "n/a" and "$nan" not in page
    # A tiny threshold is stated as given; probabilities near 0 are not shown as 0.00.
    page = clvrs.report(model, spend, data, alive_threshold=0.001, figures=False)
    parsed = _parse(page)
    assert "below 0.1%" in page
    alive = model.probability_alive(data)
    assert parsed.numbers["n_at_risk"] == int((alive < 0.001).sum())
    shown = {
        k: v for k, v in parsed.texts.items() if k.startswith("risk.") and k.endswith("_alive")
    }
    assert shown and set(shown.values()) == {"<0.01"}


def test_refuses_weighted_rows_and_discrete_opportunities():
    data = clvrs.datasets.load_cdnow_summary()
    spend = clvrs.GammaGammaModel().fit(data)
    weighted = data.assign(count=1)
    model = clvrs.BetaGeoModel(columns={"weights": "count"}).fit(weighted)
    with pytest.raises(InvalidParameterError, match="`count`.*one row per customer"):
        clvrs.report(model, spend, weighted)
    donations = clvrs.datasets.load_donations()
    bgbb = clvrs.BetaGeoBetaBinomModel().fit(donations)
    with pytest.raises(InvalidParameterError, match="discrete transaction opportunities"):
        clvrs.report(bgbb, 10.0, donations)


def test_subscription_records_give_the_active_base_and_its_value():
    survivors = [1000, 631, 468, 382, 326, 289, 262, 241]
    # Customer records with counts: those lost in each period, and 241 still active after 7.
    lost = -np.diff(survivors)
    records = pd.DataFrame(
        {
            "periods": [*range(1, 8), 7],
            "churned": [True] * 7 + [False],
            "weights": [*lost, survivors[-1]],
        }
    )
    model = clvrs.ShiftedBetaGeoModel().fit(records)
    page = _parse(
        clvrs.report(model, data=records, discount_rate=0.1, margin_per_period=20.0,
                     figures=False)
    )  # fmt: skip
    derl = model.expected_residual_lifetime(7, 0.1)
    assert page.numbers["active_subscribers"] == 241
    assert page.numbers["base.7.derl"] == pytest.approx(derl)
    assert page.numbers["base_payments"] == pytest.approx(241 * derl)
    assert page.numbers["base_value"] == pytest.approx(241 * 20.0 * derl)
    assert page.numbers["base_value"] == pytest.approx(241 * model.subscription_value(7, 20.0, 0.1))
    assert len([k for k in page.numbers if k.startswith("base.")]) == 4  # one tenure, 4 columns
