"""The command line: the demo and the ETL main job (`python -m clvrs score`)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import clvrs
import clvrs.__main__ as cli


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clvrs", *args], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def log_files(tmp_path_factory):
    log = clvrs.datasets.load_cdnow_transactions()
    directory = tmp_path_factory.mktemp("logs")
    csv, parquet = directory / "log.csv", directory / "log.parquet"
    log.to_csv(csv, index=False)
    pytest.importorskip("pyarrow")
    log.to_parquet(parquet)
    return log, csv, parquet


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_score_writes_the_scores_of_the_library(log_files, tmp_path, kind):
    log, csv, parquet = log_files
    source = csv if kind == "csv" else parquet
    out = tmp_path / f"scores.{kind}"
    done = _run(
        "score", str(source), "--customer-col", "customer_id", "--date-col", "date",
        "--amount-col", "amount", "--freq", "D", "--freq-multiplier", "7",
        "--end", "1997-09-30", "--horizon", "52", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "BetaGeoModel on 2,357 customers" in done.stdout and "Gamma-Gamma" in done.stdout
    scores = pd.read_parquet(out) if kind == "parquet" else pd.read_csv(out, index_col=0)
    assert len(scores) == 2357
    with pytest.warns(UserWarning, match="left out"):
        summary = clvrs.summarize_transactions(
            log, "customer_id", "date", monetary_value_col="amount",
            observation_period_end="1997-09-30", freq="D", freq_multiplier=7, after_end="exclude",
        )  # fmt: skip
    model = clvrs.BetaGeoModel().fit(summary)
    spend = clvrs.GammaGammaModel().fit(summary)
    # A bare --horizon counts periods of the data (7 days): 52 of them, 364 days, named so.
    np.testing.assert_allclose(
        scores["expected_purchases_364D"], model.expected_purchases(summary, t=52)
    )
    np.testing.assert_allclose(scores["probability_alive"], model.probability_alive(summary))
    np.testing.assert_allclose(scores["expected_spend"], spend.expected_average_spend(summary))
    clv = clvrs.customer_lifetime_value(
        model, spend, summary, time=12, time_unit=4.345, discount_rate=0.01
    )
    np.testing.assert_allclose(scores["clv_12M"], clv)


def test_score_quiet_and_errors(log_files, tmp_path):
    _, csv, _ = log_files
    out = tmp_path / "s.csv"
    done = _run(
        "score", str(csv), "--customer-col", "customer_id", "--date-col", "date", "--quiet",
        "--model", "pnbd", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
    assert list(pd.read_csv(out, index_col=0).columns) == [
        "frequency", "recency", "T", "expected_purchases_52W", "probability_alive",
    ]  # fmt: skip
    for args, words in [
        (["--customer-col", "nope", "--date-col", "date"], "nope"),
        (["--customer-col", "customer_id", "--date-col", "date", "--end", "1997-01-01x"], "end"),
    ]:
        done = _run("score", str(csv), *args, "--out", str(out))
        assert done.returncode == 2
        assert done.stderr.startswith("error: ") and words in done.stderr
        assert done.stderr.count("\n") == 1  # one line
    missing = _run("score", str(tmp_path / "missing.csv"), "--customer-col", "a", "--date-col", "b")
    assert missing.returncode == 2 and missing.stderr.startswith("error: ")


def test_demo_still_runs_without_arguments():
    done = _run()
    assert done.returncode == 0, done.stderr
    assert "BG/NBD on CDNOW" in done.stdout and "clv_12M" in done.stdout
    assert "expected_purchases_52W" in done.stdout


# -- issue 17 item 5 and issue 25: failures checked before the work, units, reports ----------


def _score_argv(csv, out, *extra):
    return ["score", str(csv), "--customer-col", "customer_id", "--date-col", "date",
            "--out", str(out), *extra]  # fmt: skip


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the job starts its work (summarising the log)."""

    def refuse(*args, **kwargs):
        raise AssertionError("the work started before the arguments were checked")

    monkeypatch.setattr(cli, "summarize_transactions", refuse)


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
    return err


def test_parquet_without_pyarrow_is_refused_before_the_work(
    log_files, tmp_path, monkeypatch, capsys, no_work
):
    _, csv, _ = log_files
    # No Parquet engine importable (as after `pip install .`, which does not bring pyarrow).
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "fastparquet", None)
    out = tmp_path / "scores.parquet"
    assert cli.main(_score_argv(csv, out)) == 2
    _one_line_error(capsys, "pyarrow", "pip install pyarrow", f"{tmp_path / 'scores'}.csv")
    assert not out.exists()


@pytest.mark.parametrize(
    "out, words",
    [
        ("missing-folder/s.csv", ["does not exist"]),
        ("s.xlsx", [".parquet or .csv"]),
        ("taken.csv", ["is a directory"]),
    ],
)
def test_unwritable_output_is_refused_before_the_work(
    log_files, tmp_path, capsys, no_work, out, words
):
    _, csv, _ = log_files
    (tmp_path / "taken.csv").mkdir()
    assert cli.main(_score_argv(csv, tmp_path / out)) == 2
    _one_line_error(capsys, "--out", *words)


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--horizon", "1e6"], ["--horizon", "10 years"]),  # issue 25: never finished
        (["--horizon", "nan"], ["--horizon", "10 years"]),
        (["--horizon", "inf"], ["--horizon", "10 years"]),
        (["--horizon=-4W"], ["--horizon", "more than 0"]),
        (["--horizon", "0"], ["--horizon", "more than 0"]),
        (["--horizon", "11Y"], ["--horizon", "52W"]),
        (["--freq-multiplier", "0"], ["--freq-multiplier"]),
        (["--freq-multiplier", "nan"], ["--freq-multiplier"]),
        (["--discount-rate", "-2"], ["--discount-rate"]),
        (["--margin", "-1"], ["--margin"]),
        (["--n-jobs", "0"], ["--n-jobs"]),
        (["--end", "1997-13-45"], ["--end", "not a date"]),
        (["--model", "nope"], ["--model", "see python -m clvrs score --help"]),
        (["--customer-col", "nope"], ["--customer-col", "'nope'", "customer_id, date"]),
        (["--amount-col", "spend"], ["--amount-col", "'spend'"]),
    ],
)
def test_bad_arguments_fail_in_one_line_before_the_work(
    log_files, tmp_path, capsys, no_work, extra, words
):
    _, csv, _ = log_files
    assert cli.main(_score_argv(csv, tmp_path / "s.csv", *extra)) == 2
    _one_line_error(capsys, *words)


def test_huge_horizon_fails_at_once_in_a_subprocess(log_files, tmp_path):
    # Issue 25: `--horizon 1e6` never finished (a monthly CLV sum over 230,000 months).
    _, csv, _ = log_files
    done = _run(*_score_argv(csv, tmp_path / "s.csv", "--amount-col", "amount", "--horizon", "1e6"))
    assert done.returncode == 2
    assert done.stderr.startswith("error: --horizon") and done.stderr.count("\n") == 1


def test_usage_errors_are_one_line(log_files, capsys):
    _, csv, _ = log_files
    assert cli.main(["score", str(csv), "--customer-col", "customer_id"]) == 2  # no --date-col
    _one_line_error(capsys, "--date-col", "--help")


def test_an_unexpected_failure_is_one_line_without_traceback(
    log_files, tmp_path, monkeypatch, capsys
):
    _, csv, _ = log_files

    def broken(*args, **kwargs):
        raise RuntimeError("something broke\nsecond line")

    monkeypatch.setattr(cli, "summarize_transactions", broken)
    assert cli.main(_score_argv(csv, tmp_path / "s.csv")) == 2
    _one_line_error(capsys, "RuntimeError", "something broke")


@pytest.mark.parametrize(
    "freq, horizon, label, t",
    [
        ("M", None, "52W", 52 * 7 / (365.2425 / 12)),  # the default no longer means 52 months
        ("M", "12M", "12M", 12.0),
        ("D", "52W", "52W", 364.0),
        ("W", "365D", "365D", 365 / 7),
        ("D", "30", "30D", 30.0),
    ],
)
def test_horizons_carry_their_unit_into_the_column_names(
    log_files, tmp_path, freq, horizon, label, t
):
    log, csv, _ = log_files
    out = tmp_path / "s.csv"
    extra = ["--freq", freq, "--amount-col", "amount", "--quiet"]
    if horizon is not None:
        extra += ["--horizon", horizon]
    assert cli.main(_score_argv(csv, out, *extra)) == 0
    scores = pd.read_csv(out, index_col=0)
    summary = clvrs.summarize_transactions(
        log, "customer_id", "date", monetary_value_col="amount", freq=freq
    )
    model = clvrs.BetaGeoModel().fit(summary)
    expected = model.expected_purchases(summary, t=t)
    np.testing.assert_allclose(scores[f"expected_purchases_{label}"], expected, rtol=1e-12)
    months = max(1, round(t / clvrs.value.TIME_UNITS_PER_MONTH[freq]))
    assert f"clv_{months}M" in scores.columns


def test_end_far_past_the_data_warns_and_left_out_rows_are_always_reported(log_files, tmp_path):
    _, csv, _ = log_files
    # Not a terminal (as in a scheduled job), and --quiet: warnings are still reported.
    far = _run(*_score_argv(csv, tmp_path / "a.csv", "--end", "2030-01-01", "--quiet"))
    assert far.returncode == 0, far.stderr
    assert far.stderr.startswith("warning: --end 2030-01-01 is ")
    assert "after the last transaction" in far.stderr and far.stderr.count("\n") == 1
    early = _run(*_score_argv(csv, tmp_path / "b.csv", "--end", "1997-09-30", "--freq", "D"))
    assert early.returncode == 0, early.stderr
    assert "warning: 1959 transactions after --end were left out" in early.stderr
    assert "after the last transaction" not in early.stderr
    # A month past the data (a daily job a little behind) is no cause for a warning.
    near = _run(*_score_argv(csv, tmp_path / "c.csv", "--end", "1998-07-20", "--quiet"))
    assert near.returncode == 0 and near.stderr == ""


def test_help_lists_score_and_every_option_has_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    top = capsys.readouterr().out
    assert "commands:" in top and "\n  score " in top
    with pytest.raises(SystemExit):
        cli.main(["score", "--help"])
    text = capsys.readouterr().out
    options = text[text.index("options:") :]
    for option, words in {
        "--model": "Pareto/NBD",
        "--freq-multiplier": "divided by",
        "--n-jobs": "threads",
        "--horizon": "52W",
        "--out": "pyarrow",
    }.items():
        block = options[options.index(f"  {option} ") :].split("\n  --")[0]
        assert words in block, block


def test_cdnow_own_format_errors_speak_in_options(tmp_path, capsys):
    # CDNOW's own file: dates as YYYYMMDD integers. The fix is named as the option to pass.
    raw = pd.read_csv(
        clvrs.datasets.__path__[0] + "/data/CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["id", "customer", "date", "quantity", "amount"],
    )
    csv = tmp_path / "cdnow.csv"
    raw.to_csv(csv, index=False)
    argv = ["score", str(csv), "--customer-col", "customer", "--date-col", "date",
            "--out", str(tmp_path / "s.csv"), "--quiet"]  # fmt: skip
    assert cli.main(argv) == 2
    _one_line_error(capsys, "--datetime-format %Y%m%d")
    assert cli.main([*argv, "--datetime-format", "%Y%m%d"]) == 0
    assert len(pd.read_csv(tmp_path / "s.csv")) == 2357
    assert cli.main([*argv, "--date-col", "amount"]) == 2
    _one_line_error(capsys, "not dates")
