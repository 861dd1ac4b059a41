"""The command line: the demo and the ETL main job (`python -m clvrs score`)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import clvrs


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
    np.testing.assert_allclose(
        scores["expected_purchases"], model.expected_purchases(summary, t=52)
    )
    np.testing.assert_allclose(scores["probability_alive"], model.probability_alive(summary))
    np.testing.assert_allclose(scores["expected_spend"], spend.expected_average_spend(summary))
    clv = clvrs.customer_lifetime_value(
        model, spend, summary, time=12, time_unit=30 / 7, discount_rate=0.01
    )
    np.testing.assert_allclose(scores["clv"], clv)


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
        "frequency", "recency", "T", "expected_purchases", "probability_alive",
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
    assert "BG/NBD on CDNOW" in done.stdout and "clv_12m" in done.stdout
