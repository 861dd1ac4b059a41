"""Scaling out on Dask (a LocalCluster with several worker processes) and Spark (local mode,
when pyspark and Java are available): the same summaries, estimates and scores as in one
process."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs import distributed

SUMMARY_ARGS = {"freq": "D", "freq_multiplier": 7, "observation_period_end": "1998-06-30"}


@pytest.fixture(scope="module")
def log():
    return clvrs.datasets.load_cdnow_transactions()


@pytest.fixture(scope="module")
def local(log):
    summary = clvrs.summarize_transactions(
        log, "customer_id", "date", monetary_value_col="amount", **SUMMARY_ARGS
    )
    return summary


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("dask.dataframe")
    distributed_mod = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed_mod.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = distributed_mod.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_dask_summary_fit_and_scores_equal_local(client, log, local):
    import dask.dataframe as dd

    # Partitioned by date: most repeat customers span several partitions.
    transactions = dd.from_pandas(log.sort_values("date"), npartitions=6, sort=False)
    summaries = distributed.summarize_transactions_dask(
        transactions, "customer_id", "date", monetary_value_col="amount", **SUMMARY_ARGS
    )
    gathered = summaries.compute().sort_index()
    # Amounts are summed in row order, which the shuffle changes: equal to the last bits.
    pd.testing.assert_frame_equal(gathered, local, check_exact=False, rtol=1e-13)
    pd.testing.assert_frame_equal(
        gathered[["frequency", "recency", "T"]],
        local[["frequency", "recency", "T"]],
        check_exact=True,
    )

    model = distributed.fit_dask(clvrs.BetaGeoModel(), summaries)
    direct = clvrs.BetaGeoModel().fit(local)
    pd.testing.assert_series_equal(model.params_, direct.params_, check_exact=True)
    assert model.log_likelihood_ == direct.log_likelihood_

    spend = clvrs.GammaGammaModel().fit(local)
    scores = distributed.score_dask(model, summaries, horizon=52, spend_model=spend).compute()
    scores = scores.sort_index()
    np.testing.assert_array_equal(
        scores["expected_purchases"], direct.expected_purchases(local, t=52)
    )
    np.testing.assert_array_equal(scores["probability_alive"], direct.probability_alive(local))
    np.testing.assert_array_equal(scores["expected_spend"], spend.expected_average_spend(gathered))


def test_models_ship_to_workers_by_pickle_and_json(client, local):
    model = clvrs.ParetoNBDModel().fit(local)
    document = model.to_json()

    def score_from_json(text, frame):
        from clvrs._base import load_document

        return load_document(json.loads(text)).expected_purchases(frame, t=26).to_numpy()

    def score_from_pickle(fitted, frame):
        return fitted.expected_purchases(frame, t=26).to_numpy()

    remote_json = client.submit(score_from_json, document, local).result()
    remote_pickle = client.submit(score_from_pickle, model, local).result()
    here = model.expected_purchases(local, t=26).to_numpy()
    np.testing.assert_array_equal(remote_json, here)
    np.testing.assert_array_equal(remote_pickle, here)


def test_spark_local_mode(log, local):
    pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java, which is not installed")
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("clvrs-test")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    try:
        frame = spark.createDataFrame(log[["customer_id", "date", "amount"]])
        summaries = distributed.summarize_transactions_spark(
            frame, "customer_id", "date", monetary_value_col="amount", buckets=8, **SUMMARY_ARGS
        )
        gathered = summaries.toPandas().set_index("customer_id").sort_index()
        pd.testing.assert_frame_equal(
            gathered, local, check_exact=False, rtol=1e-13, check_index_type=False
        )
        model = distributed.fit_spark(clvrs.BetaGeoModel(), summaries)
        direct = clvrs.BetaGeoModel().fit(local)
        pd.testing.assert_series_equal(model.params_, direct.params_, check_exact=True)
        scores = distributed.score_spark(model, summaries, "customer_id", horizon=52).toPandas()
        scores = scores.set_index("customer_id").sort_index()
        np.testing.assert_array_equal(
            scores["expected_purchases"], direct.expected_purchases(local, t=52)
        )
    finally:
        spark.stop()
    assert pyspark is not None


def test_score_file_streams_in_chunks(tmp_path, local):
    pytest.importorskip("pyarrow")
    source, destination = tmp_path / "summaries.parquet", tmp_path / "scores.parquet"
    local.reset_index().to_parquet(source)
    model = clvrs.BetaGeoModel().fit(local)
    spend = clvrs.GammaGammaModel().fit(local)
    n = distributed.score_file(
        model,
        str(source),
        str(destination),
        horizon=52,
        spend_model=spend,
        clv={"time": 12, "discount_rate": 0.01},
        chunk_rows=500,
        keep=["customer_id"],
    )
    assert n == len(local)
    scores = pd.read_parquet(destination).set_index("customer_id")
    np.testing.assert_allclose(scores["expected_purchases"], model.expected_purchases(local, t=52))
    np.testing.assert_allclose(
        scores["clv"], clvrs.customer_lifetime_value(model, spend, local, time=12), rtol=1e-12
    )
