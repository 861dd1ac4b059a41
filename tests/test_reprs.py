"""How result objects show themselves in a console and a notebook: a few lines of text, an HTML
block, no whole Series dumped, counts as whole numbers."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd
import pytest

import clvrs

#: A repr is a few lines; an HTML block a table of at most 20 rows.
MAX_TEXT_LINES = 12
MAX_HTML_CHARS = 8000


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return clvrs.datasets.load_cdnow_summary()


@pytest.fixture(scope="module")
def model(data: pd.DataFrame) -> clvrs.BetaGeoModel:
    return clvrs.BetaGeoModel().fit(data)


def _check_compact(obj: object, name: str) -> tuple[str, str]:
    text = repr(obj)
    page = obj._repr_html_()  # type: ignore[attr-defined]
    assert text.startswith(f"{name}(")
    assert len(text.splitlines()) <= MAX_TEXT_LINES, text
    assert "dtype:" not in text and "Length:" not in text, text  # no Series dumped
    assert page.startswith(f"<strong>{name}</strong>")
    assert len(page) <= MAX_HTML_CHARS
    assert "dtype:" not in page
    return text, page


def test_segmented_model(data: pd.DataFrame) -> None:
    frame = data.copy()
    frame["channel"] = ["web", "shop", "app"] * 785 + ["web", "shop"]
    fits = clvrs.fit_segments(clvrs.BetaGeoModel(), frame, "channel")
    table = fits.fit_table
    assert table["customers"].dtype == np.int64
    assert table["customers"].to_dict() == {"app": 785, "shop": 786, "web": 786}
    text, page = _check_compact(fits, "SegmentedModel")
    assert "BetaGeoModel by 'channel': 3 of 3 segments fitted (2357 customers)" in text
    assert re.search(r"\bapp\s+785\s+fitted\s+True\s+-3159\.7", text), text
    assert "785.0" not in text and "785.0" not in page
    assert "<td>785</td>" in page and "<th>log_likelihood</th>" in page


def test_segmented_model_with_many_segments_shows_the_first(data: pd.DataFrame) -> None:
    frame = data.copy()
    frame["segment"] = np.arange(len(frame)) % 40
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", clvrs.ConvergenceWarning)
        fits = clvrs.fit_segments(clvrs.BetaGeoModel(), frame, "segment", min_customers=59)
    text, page = _check_compact(fits, "SegmentedModel")
    assert "37 of 40 segments fitted (2357 customers; 3 not fitted" in text
    assert text.endswith("... 35 more segments")
    assert page.endswith("<p>... 20 more segments (see fit_table)</p>")
    assert page.count("<tr>") == 1 + 20  # the index-name row and 20 segments
    # Showing the first segments builds only their models.
    assert len(fits.models_._built) <= 20  # type: ignore[attr-defined]
    assert fits.fit_table["customers"].dtype == np.int64  # 58 and 59 customers


def test_segmented_model_counts_stay_whole_after_saving(data: pd.DataFrame, tmp_path) -> None:
    frame = data.copy()
    frame["channel"] = ["web", "shop", "app"] * 785 + ["web", "shop"]
    frame["weights"] = 2  # every row two customers
    fits = clvrs.fit_segments(clvrs.BetaGeoModel(), frame, "channel")
    path = tmp_path / "segments.json"
    fits.save(path)
    loaded = clvrs.load(path)
    for each in (fits, loaded):
        assert each.fit_table["customers"].to_dict() == {"app": 1570, "shop": 1572, "web": 1572}
        assert each.fit_table["customers"].dtype == np.int64
        assert "(4714 customers)" in repr(each)


def test_bootstrap_result(model: clvrs.BetaGeoModel, data: pd.DataFrame) -> None:
    boot = clvrs.bootstrap(
        model,
        data,
        n_boot=20,
        seed=1,
        level=0.9,
        progress=False,
        predict=lambda m: m.expected_purchases(data, t=52),
    )
    text, page = _check_compact(boot, "BootstrapResult")
    assert boot.level == 0.9 and boot.kind == "nonparametric"
    assert "20 nonparametric replicates (0 failed" in text
    assert "90% percentile intervals" in text
    assert "predictions of 2357 customers" in text
    for name in ("r", "alpha", "a", "b"):
        assert re.search(rf"^{name}\s+\d", text, flags=re.MULTILINE), text
        assert f"<th>{name}</th>" in page
    # neither the 20 replicates nor the 2357 customers' predictions are listed
    assert str(round(boot.params["alpha"].iloc[7], 6)) not in text


def test_segmentation(model: clvrs.BetaGeoModel, data: pd.DataFrame) -> None:
    spend = clvrs.GammaGammaModel().fit(data)
    clv = clvrs.customer_lifetime_value(model, spend, data, margin=0.3)
    tiers = clvrs.clv_segments(clv, [0, 0.5, 0.8, 0.95, 1], labels=["low", "mid", "high", "top"])
    text, page = _check_compact(tiers, "Segmentation")
    assert tiers.table["customers"].dtype == np.int64
    assert "2357 customers in 4 segments, highest value first" in text
    assert re.search(r"^top\s+118\s+0\.05", text, flags=re.MULTILINE), text
    assert "<td>118</td>" in page and "118.0" not in page
    assert "Categories" not in text  # the labels are not dumped


def test_holdout_evaluation() -> None:
    log = clvrs.datasets.load_cdnow_transactions()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        split = clvrs.calibration_and_holdout(
            log,
            "customer_id",
            "date",
            calibration_period_end="1997-09-30",
            observation_period_end="1998-06-30",
            freq="D",
            freq_multiplier=7,
        )
    calibration = split.rename(
        columns={"frequency_cal": "frequency", "recency_cal": "recency", "T_cal": "T"}
    )
    check = clvrs.holdout_evaluation(clvrs.BetaGeoModel().fit(calibration), split)
    text, page = _check_compact(check, "HoldoutEvaluation")
    assert "BetaGeoModel on 2357 customers' holdout: 1882 purchases, 1653.41 predicted" in text
    assert "tracking error -12.1%" in text and "correlation 0.6256" in text
    assert "<td>1882</td>" in page and "1882.0" not in page + text


def test_whole_counts_are_left_alone_when_they_are_not_whole() -> None:
    from clvrs import _display

    assert _display.whole(pd.Series([1.0, 2.0])).dtype == np.int64
    assert _display.whole(pd.Series([1.0, 2.5])).dtype == np.float64
    assert _display.whole(pd.Series([1.0, np.nan])).dtype == np.float64
    assert _display.number(2357.0) == "2357" and _display.number(2.5) == "2.5"


def test_model_display_counts_customers_in_full(data: pd.DataFrame) -> None:
    frame = data.copy()
    frame["weights"] = 500  # 1,178,500 customers: not "1.1785e+06"
    fitted = clvrs.BetaGeoModel().fit(frame)
    assert fitted.n_observations_ == 1178500
    assert "n = 1178500," in fitted._repr_html_()
