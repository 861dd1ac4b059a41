"""Issue 17, reviewed as a new user would meet it: the command line on a CSV of one's own,
lifetimes tutorial code and model summaries; each test failed on the code before its fix."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import clvrs
import clvrs.__main__ as cli
from clvrs.exceptions import InvalidDataError, InvalidParameterError


@pytest.fixture
def log_csv(tmp_path):
    csv = tmp_path / "log.csv"
    pd.DataFrame(
        {
            "customer_id": [1, 1, 2, 3, 3],
            "date": ["1997-01-01", "1997-02-01", "1997-01-05", "1997-01-02", "1997-03-01"],
            "amount": [10.0, -3.0, 5.0, 7.0, 8.0],
        }
    ).to_csv(csv, index=False)
    return csv


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the job starts its work (summarising the log)."""

    def refuse(*args, **kwargs):
        raise AssertionError("the work started before the arguments were checked")

    monkeypatch.setattr(cli, "summarize_transactions", refuse)


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, err
    return err


def _argv(path, out, *extra):
    return ["score", str(path), "--customer-col", "customer_id", "--date-col", "date",
            "--out", str(out), "--quiet", *extra]  # fmt: skip


def test_cli_an_empty_file_or_a_directory_is_named_as_such(tmp_path, capsys, no_work):
    # Was "error: No columns to parse from file" (no path) and "no such file" for a directory.
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert cli.main(_argv(empty, tmp_path / "s.csv")) == 2
    _one_line_error(capsys, str(empty), "empty")
    blank = tmp_path / "blank.csv"
    blank.write_text("\n\n")
    assert cli.main(_argv(blank, tmp_path / "s.csv")) == 2
    _one_line_error(capsys, str(blank), "no header row")
    assert cli.main(_argv(tmp_path, tmp_path / "s.csv")) == 2
    _one_line_error(capsys, str(tmp_path), "is a directory")


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--customer-col", "date"], ["--customer-col and --date-col", "'date'"]),
        (["--amount-col", "date"], ["--date-col and --amount-col", "'date'"]),
        (["--amount-col", "customer_id"], ["--customer-col and --amount-col"]),
    ],
)
def test_cli_one_column_for_two_options_is_refused_before_the_work(
    log_csv, tmp_path, capsys, no_work, extra, words
):
    # --customer-col date --date-col date ended in "frequency is 0 for every customer".
    assert cli.main(_argv(log_csv, tmp_path / "s.csv", *extra)) == 2
    _one_line_error(capsys, *words)


def test_cli_date_errors_name_the_option_not_the_python_argument(tmp_path, capsys):
    # The library's "pass datetime_format" and "datetime_format: ... does not read" reached the
    # command line as they were: it has no datetime_format, only --datetime-format.
    csv = tmp_path / "text.csv"
    pd.DataFrame({"customer_id": [1, 2], "date": ["hello", "1997-01-01"]}).to_csv(csv, index=False)
    assert cli.main(_argv(csv, tmp_path / "s.csv")) == 2
    err = _one_line_error(capsys, "--datetime-format")
    assert "datetime_format" not in err
    iso = tmp_path / "iso.csv"
    pd.DataFrame(
        {"customer_id": [1, 1, 2], "date": ["1997-01-01", "1997-02-01", "1997-01-03"]}
    ).to_csv(iso, index=False)
    # pandas' own CSV reader keeps the dates as text (pyarrow's would parse ISO dates itself).
    real_read_csv = pd.read_csv
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cli.pd, "read_csv", lambda *a, **k: real_read_csv(*a, **{**k, "engine": "c"}))
        assert cli.main(_argv(iso, tmp_path / "s.csv", "--datetime-format", "%Y%m%d")) == 2
    err = _one_line_error(capsys, "--datetime-format", "'%Y%m%d' does not read")
    assert "datetime_format" not in err


def test_cli_datetime_format_is_honoured_with_pyarrow_reading_the_csv(tmp_path, capsys):
    # pyarrow's CSV reader parsed ISO dates itself, so a --datetime-format that does not read
    # them was ignored (exit 0) where pandas' reader gave the error: two installs, two answers.
    pytest.importorskip("pyarrow")
    csv = tmp_path / "iso.csv"
    pd.DataFrame(
        {"customer_id": [1, 1, 2], "date": ["1997-01-01", "1997-02-01", "1997-01-03"]}
    ).to_csv(csv, index=False)
    assert cli.main(_argv(csv, tmp_path / "s.csv", "--datetime-format", "%Y%m%d")) == 2
    _one_line_error(capsys, "--datetime-format", "'%Y%m%d' does not read column `date`")
    out = tmp_path / "s.csv"
    assert cli.main(_argv(csv, out, "--datetime-format", "%Y-%m-%d")) == 0
    with_format = pd.read_csv(out)
    assert cli.main(_argv(csv, out)) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), with_format)


def test_cli_refuses_to_overwrite_the_log_with_the_scores(log_csv, tmp_path, capsys, no_work):
    # `--out log.csv` for the log itself replaced the user's transactions with the scores.
    before = log_csv.read_bytes()
    for out in (log_csv, tmp_path / "." / log_csv.name):
        assert cli.main(_argv(log_csv, out)) == 2
        _one_line_error(capsys, "--out", "is the transaction log itself")
    assert log_csv.read_bytes() == before


def test_cli_negative_amounts_do_not_advise_a_python_argument(log_csv, tmp_path, capsys):
    # Was "pass allow_negative=True to accept returns": the command has no such option.
    assert cli.main(_argv(log_csv, tmp_path / "s.csv", "--amount-col", "amount")) == 2
    err = _one_line_error(capsys, "`amount`", "must be >= 0", "leave them out of the log")
    assert "pass allow_negative" not in err


def test_summary_of_an_unidentified_parameter_leaks_no_overflow_warning():
    # The donations fitted as 22 customers (weights kept out): gamma and delta run off to
    # 1e10-1e12 with standard errors 5e5 times larger. summary's interval coef * exp(z se/coef)
    # overflowed and numpy's "overflow encountered in exp" leaked (also in the README's
    # covariate example); the interval is (0, inf).
    donations = clvrs.datasets.load_donations()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", clvrs.exceptions.ConvergenceWarning)
        model = clvrs.BetaGeoBetaBinomModel(columns={"weights": None}).fit(donations)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        summary = model.summary
    assert summary.loc["gamma", "lower"] == 0.0 and np.isinf(summary.loc["gamma", "upper"])
    assert summary.loc["alpha", "lower"] < model.params_["alpha"] < summary.loc["alpha", "upper"]


@pytest.fixture(scope="module")
def bgf():
    from clvrs.lifetimes import BetaGeoFitter
    from clvrs.lifetimes.datasets import load_cdnow_summary

    data = load_cdnow_summary()
    return BetaGeoFitter().fit(data["frequency"], data["recency"], data["T"])


def test_lifetimes_alive_matrix_takes_zero_and_refuses_bad_sizes(bgf):
    # max_frequency=0 is a grid of one column, as in lifetimes (0 was read as "not given");
    # a negative size emptied the grid and blamed "column `frequency`: at least one customer".
    matrix = bgf.conditional_probability_alive_matrix(0, 5)
    assert matrix.shape == (6, 1)
    np.testing.assert_allclose(
        matrix[:, 0], bgf.conditional_probability_alive(np.zeros(6), np.arange(6.0), 5.0)
    )
    for kwargs in ({"max_frequency": -1}, {"max_recency": -1}, {"max_frequency": 2.5},
                   {"max_recency": "a"}):  # fmt: skip
        name = next(iter(kwargs))
        with pytest.raises(InvalidParameterError, match=f"^{name}: must be a whole number"):
            bgf.conditional_probability_alive_matrix(**kwargs)


def test_lifetimes_alive_matrix_without_data_asks_for_both_sizes(bgf, tmp_path):
    from clvrs.lifetimes import BetaGeoFitter

    bgf.save_model(str(tmp_path / "bgf.json"), save_data=False)
    loaded = BetaGeoFitter()
    loaded.load_model(str(tmp_path / "bgf.json"))
    with pytest.raises(InvalidParameterError, match="no data"):  # was a TypeError on None
        loaded.conditional_probability_alive_matrix()
    assert loaded.conditional_probability_alive_matrix(3, 4).shape == (5, 4)


def test_lifetimes_use_before_fit_names_no_private_helper():
    # Every prediction before fit said "BetaGeoFitter._model needs a fitted model".
    from clvrs.lifetimes import BetaGeoFitter, GammaGammaFitter, NotFittedError

    for call in (
        lambda: BetaGeoFitter().conditional_probability_alive(1, 2, 3),
        lambda: BetaGeoFitter().conditional_expected_number_of_purchases_up_to_time(1, 1, 2, 3),
        lambda: GammaGammaFitter().conditional_expected_average_profit(2, 10.0),
    ):
        with pytest.raises(NotFittedError, match=r"^(BetaGeo|GammaGamma)Fitter needs a fitted"):
            call()
    with pytest.raises(NotFittedError, match=r"^BetaGeoFitter\.summary needs a fitted model"):
        BetaGeoFitter().summary  # noqa: B018 - a public attribute is still named


def test_lifetimes_date_helpers_refuse_numbers_as_dates(bgf):
    # CDNOW's YYYYMMDD integers were read by pd.to_datetime as nanoseconds since 1970: every
    # purchase fell on 1970-01-01 and calculate_alive_path gave P(alive) 1 throughout.
    from clvrs.lifetimes.utils import calculate_alive_path, expected_cumulative_transactions

    log = pd.DataFrame({"id": [7, 7, 7], "date": [19970101, 19970301, 19970501]})
    with pytest.raises(InvalidDataError, match=r'column `date`: holds numbers .*"%Y%m%d"'):
        calculate_alive_path(bgf, log, "date", 30)
    with pytest.raises(InvalidDataError, match="column `date`: holds numbers"):
        expected_cumulative_transactions(bgf, log, "date", "id", 10, freq="W")
    # With the format (where lifetimes takes one) or converted dates, the same numbers work.
    with_format = expected_cumulative_transactions(
        bgf, log, "date", "id", 10, freq="W", datetime_format="%Y%m%d"
    )
    converted = log.assign(date=pd.to_datetime(log["date"].astype(str), format="%Y%m%d"))
    pd.testing.assert_frame_equal(
        with_format, expected_cumulative_transactions(bgf, converted, "date", "id", 10, freq="W")
    )
    path = calculate_alive_path(bgf, converted, "date", 130)
    # Purchases 59 and 120 days after the first: BG/NBD's P(alive) is 1 until the first repeat
    # purchase, then decays, and jumps at the next one (not 1 throughout).
    assert path.iloc[58] == 1.0 and path.iloc[60] < path.iloc[59] < 1.0
    assert path.iloc[120] > path.iloc[119]


def test_lifetimes_plot_sizes_and_horizons_are_checked_and_named(bgf):
    # max_frequency=-2 gave numpy's "negative dimensions are not allowed"; T=-5 blamed
    # "column `t`"; calculate_alive_path took t=-1 and t=2.5 (truncated) without a word.
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from clvrs.lifetimes import plotting
    from clvrs.lifetimes.utils import calculate_alive_path

    log = pd.DataFrame({"date": pd.to_datetime(["1997-01-01", "1997-03-01"])})
    cases = [
        (lambda: plotting.plot_period_transactions(bgf, max_frequency=-2), "max_frequency"),
        (lambda: plotting.plot_period_transactions(bgf, max_frequency=0), "max_frequency"),
        (lambda: plotting.plot_frequency_recency_matrix(bgf, T=-5), "T"),
        (lambda: plotting.plot_frequency_recency_matrix(bgf, T="1"), "T"),
        (lambda: plotting.plot_frequency_recency_matrix(bgf, max_recency=-1), "max_recency"),
        (lambda: plotting.plot_history_alive(bgf, -1, log, "date"), "t"),
        (lambda: calculate_alive_path(bgf, log, "date", 2.5), "t"),
        (lambda: calculate_alive_path(bgf, log, "date", "10"), "t"),
    ]
    for call, name in cases:
        with pytest.raises(InvalidParameterError, match=f"^`{name}`"):
            call()
    assert len(calculate_alive_path(bgf, log, "date", 80.0)) == 81  # a whole float is fine
    plotting.plot_frequency_recency_matrix(bgf, T=2, max_frequency=3, max_recency=4)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_lifetimes_clv_of_single_numbers_is_a_number(bgf):
    # Scalars gave a one-element Series: f"{clv:.2f}" raised and float() is an error in pandas 3.
    from clvrs.lifetimes import GammaGammaFitter
    from clvrs.lifetimes.datasets import load_cdnow_summary_data_with_monetary_value

    data = load_cdnow_summary_data_with_monetary_value()
    buyers = data[data["frequency"] > 0]
    ggf = GammaGammaFitter().fit(buyers["frequency"], buyers["monetary_value"])
    clv = ggf.customer_lifetime_value(bgf, 2, 30.43, 38.86, 22.35, time=12, discount_rate=0.01)
    assert isinstance(clv, np.floating) and f"{clv:.2f}"
    whole = ggf.customer_lifetime_value(
        bgf, data["frequency"], data["recency"], data["T"], data["monetary_value"], time=12.0
    )  # lifetimes takes time=12.0 (np.arange(1, time + 1)); it was refused
    assert isinstance(whole, pd.Series) and whole.index.equals(data.index)
    assert clv == pytest.approx(whole.iloc[0], rel=1e-12)  # customer 1: (2, 30.43, 38.86, 22.35)


def test_cli_output_into_a_closed_pipe_stops_quietly():
    # `python -m clvrs | head -1` printed "error: [Errno 32] Broken pipe" and exited 2: main
    # took the BrokenPipeError for a failure of the job.
    with subprocess.Popen(
        [sys.executable, "-m", "clvrs"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        process.stdout.close()  # the reader has gone before the first line is printed
        err = process.stderr.read()
        code = process.wait(timeout=300)
    assert code == 0 and err == "", (code, err)
