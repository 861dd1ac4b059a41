"""Scaling out: summaries, fits and scores of data spread over a Dask cluster or a Spark
session. Nothing here is imported unless called; dask and pyspark are optional.

The pattern is the same for both engines:

- summaries: rows are redistributed so that every customer's transactions are in one partition
  (customers may span the input partitions), then each partition is summarised by
  :func:`clvrs.summarize_transactions` on its worker;
- fitting: each partition reduces its summaries to distinct (frequency, recency, T) rows with
  counts, those few rows are gathered to the client and the model is fitted on them with
  weights -- the same estimate as fitting all customers in one place, bit for bit (the core
  compresses identical rows anyway);
- scoring: the fitted model (small, picklable) is shipped to the workers and applied to each
  partition.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import pandas as pd

from ._base import BaseModel, _bad_parameter
from ._input import _without_row, data_error
from .data import summarize_transactions as _summarize
from .exceptions import InvalidDataError, NotFittedError

__all__ = [
    "score_file",
    "fit_dask",
    "fit_spark",
    "score_dask",
    "score_spark",
    "summarize_transactions_dask",
    "summarize_transactions_spark",
]

_SUMMARY = ["frequency", "recency", "T"]


def _check_model(model: Any, fitted: bool = False) -> None:
    if not isinstance(model, BaseModel):
        raise _bad_parameter(
            "model", f"must be a clvrs model such as BetaGeoModel(), got {type(model).__name__}"
        )
    if fitted and "params_" not in vars(model):
        raise NotFittedError(f"{type(model).__name__} is not fitted yet: fit it before scoring")


def _check_frame(frame: Any, engine: str, name: str = "summaries") -> None:
    """``frame`` is a DataFrame of ``engine`` (dask or Spark), not pandas or a path."""
    if engine == "dask":
        ok = hasattr(frame, "map_partitions") and hasattr(frame, "columns")
    else:
        ok = hasattr(frame, "groupBy") and hasattr(frame, "schema")
    if not ok:
        err = InvalidDataError(
            f"`{name}` must be a {engine} DataFrame, got {type(frame).__name__} (for pandas or "
            "polars data use the model's own fit and predictions)"
        )
        err.column, err.rule = name, f"must be a {engine} DataFrame"
        raise err


def _check_present(frame: Any, columns: list[str]) -> None:
    present = [str(c) for c in frame.columns]
    for column in columns:
        if str(column) not in present:
            raise data_error(column, None, None, f"is missing; the data has columns {present}")


def _check_horizon(horizon: Any) -> None:
    if not (
        isinstance(horizon, numbers.Real)
        and not isinstance(horizon, bool)
        and math.isfinite(horizon)
        and float(horizon) >= 0
    ):
        raise _bad_parameter("horizon", f"must be a finite number >= 0, got {horizon!r}")


def _check_spend(spend_model: Any) -> None:
    if spend_model is not None and not callable(
        getattr(spend_model, "expected_average_spend", None)
    ):
        raise _bad_parameter(
            "spend_model",
            f"must be a fitted spend model (GammaGammaModel) or None, got "
            f"{type(spend_model).__name__}",
        )


def _summary_meta(customer_id_col: str, id_dtype: Any, with_amount: bool) -> pd.DataFrame:
    columns = _SUMMARY + (["monetary_value"] if with_amount else [])
    index = pd.Index([], name=customer_id_col, dtype=id_dtype)
    return pd.DataFrame({c: pd.Series([], dtype=float) for c in columns}, index=index)


def summarize_transactions_dask(
    transactions: Any,
    customer_id_col: str,
    datetime_col: str,
    monetary_value_col: str | None = None,
    observation_period_end: Any = None,
    freq: str = "D",
    freq_multiplier: float = 1,
    include_first_transaction: bool = False,
    **kwargs: Any,
) -> Any:
    """:func:`clvrs.summarize_transactions` for a dask DataFrame of transactions.

    Rows are shuffled on the customer id (so customers spanning partitions are summarised
    whole); without ``observation_period_end`` the latest transaction overall is used (one
    extra pass). Other keywords go to :func:`clvrs.summarize_transactions`.

    Returns
    -------
    dask.dataframe.DataFrame
        One row per customer, indexed by customer id (not globally sorted).
    """
    _check_frame(transactions, "dask", "transactions")
    _check_present(
        transactions, [customer_id_col, datetime_col] + [c for c in [monetary_value_col] if c]
    )
    end = observation_period_end
    if end is None:
        end = transactions[datetime_col].max().compute()
    shuffled = transactions.shuffle(on=customer_id_col)
    meta = _summary_meta(
        customer_id_col, transactions[customer_id_col].dtype, monetary_value_col is not None
    )

    def part(frame: pd.DataFrame) -> pd.DataFrame:
        if len(frame) == 0:
            return meta
        return _summarize(
            frame,
            customer_id_col,
            datetime_col,
            monetary_value_col=monetary_value_col,
            observation_period_end=end,
            freq=freq,
            freq_multiplier=freq_multiplier,
            include_first_transaction=include_first_transaction,
            n_jobs=1,
            **kwargs,
        )

    return shuffled.map_partitions(part, meta=meta)


def _distinct_rows(frame: pd.DataFrame, columns: list[str], weights: str | None) -> pd.DataFrame:
    """Distinct rows of ``columns`` with their total weight."""
    if len(frame) == 0:
        return pd.DataFrame({**{c: [] for c in columns}, "weights": []})
    # Grouping drops rows with missing values and sums hide negative or fractional weights:
    # both are refused here, on the caller's rows (their index label is named).
    for column in columns + ([weights] if weights else []):
        missing = np.flatnonzero(frame[column].isna().to_numpy())
        if missing.size:
            err = data_error(column, None, None, "must not be missing (NaN or null)")
            err.label = frame.index[missing[0]]
            err.args = (f"{err} [index label {err.label!r}]",)
            raise err
    if weights is not None:
        values = pd.to_numeric(frame[weights], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~(np.isfinite(values) & (values >= 0) & (values == np.round(values))))
        if bad.size:
            err = data_error(
                weights,
                None,
                values[bad[0]],
                "must be a whole number >= 0: weights count customers",
            )
            err.label = frame.index[bad[0]]
            err.args = (f"{err} [index label {err.label!r}]",)
            raise err
    if weights is None:
        counts = frame.groupby(columns, sort=False, dropna=False).size()
    else:
        counts = frame.groupby(columns, sort=False, dropna=False)[weights].sum()
    return counts.rename("weights").reset_index()


def _model_columns(model: BaseModel, summaries: Any) -> tuple[list[str], str | None]:
    _check_model(model)
    names = model._column_names(summaries)  # a `weights` column counts by default
    roles = list(model._roles)
    columns = [str(names[r]) for r in roles]
    weights = names.get("weights")
    _check_present(summaries, columns + ([str(weights)] if weights else []))
    return columns, weights


def _fit_on_counts(model: BaseModel, counts: pd.DataFrame, columns: list[str]) -> BaseModel:
    merged = counts.groupby(columns, sort=False, dropna=False)["weights"].sum().reset_index()
    hyper = model.get_params()
    fitted = type(model)(
        **{**hyper, "columns": {**(hyper.get("columns") or {}), "weights": "weights"}}
    )
    try:
        fitted.fit(merged)
    except InvalidDataError as err:
        # Rows of the gathered table of distinct rows are not the caller's rows.
        if err.row is None or err.column == "weights":
            raise
        raise _without_row(err) from None
    fitted.columns = model.columns  # predictions read the caller's columns
    return fitted


def fit_dask(model: BaseModel, summaries: Any) -> BaseModel:
    """Fit ``model`` (unfitted; its hyperparameters are used) to a dask DataFrame of customer
    summaries by gathering distinct rows with counts to the client.

    Returns
    -------
    A fitted copy of ``model``; the estimate equals a fit of all rows in one place.
    """
    _check_frame(summaries, "dask")
    columns, weights = _model_columns(model, summaries)
    meta = pd.DataFrame({**{c: pd.Series([], dtype=float) for c in columns}, "weights": []})
    counts = summaries.map_partitions(_distinct_rows, columns, weights, meta=meta).compute()
    return _fit_on_counts(model, counts, columns)


def _score_frame(frame: pd.DataFrame, model: BaseModel, horizon: float, spend: Any) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    if len(frame) == 0:
        out["expected_purchases"] = pd.Series([], dtype=float)
        out["probability_alive"] = pd.Series([], dtype=float)
        if spend is not None:
            out["expected_spend"] = pd.Series([], dtype=float)
        return out
    out["expected_purchases"] = model.expected_purchases(frame, t=horizon)  # type: ignore[attr-defined]
    out["probability_alive"] = model.probability_alive(frame)  # type: ignore[attr-defined]
    if spend is not None:
        out["expected_spend"] = spend.expected_average_spend(frame)
    return out


def score_dask(
    model: BaseModel, summaries: Any, horizon: float = 1.0, spend_model: Any = None
) -> Any:
    """Expected purchases in ``horizon``, P(alive) (and expected spend with a spend model) for
    every customer of a dask DataFrame, computed on the workers (``map_partitions``)."""
    _check_model(model, fitted=True)
    _check_frame(summaries, "dask")
    _check_horizon(horizon)
    _check_spend(spend_model)
    meta = _score_frame(summaries._meta, model, horizon, spend_model)
    return summaries.map_partitions(_score_frame, model, horizon, spend_model, meta=meta)


def summarize_transactions_spark(
    transactions: Any,
    customer_id_col: str,
    datetime_col: str,
    monetary_value_col: str | None = None,
    observation_period_end: Any = None,
    freq: str = "D",
    freq_multiplier: float = 1,
    include_first_transaction: bool = False,
    buckets: int = 64,
) -> Any:
    """:func:`clvrs.summarize_transactions` for a Spark DataFrame of transactions.

    Customers are hashed into ``buckets`` groups (every customer's rows in one group) and each
    group is summarised with ``groupBy(...).applyInPandas``. The result is a Spark DataFrame
    with the customer id column and the summary columns.
    """
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql import types as T  # noqa: N812

    _check_frame(transactions, "Spark", "transactions")
    _check_present(
        transactions, [customer_id_col, datetime_col] + [c for c in [monetary_value_col] if c]
    )
    end = observation_period_end
    if end is None:
        end = transactions.agg(F.max(datetime_col)).collect()[0][0]
    id_type = transactions.schema[customer_id_col].dataType
    fields = [T.StructField(customer_id_col, id_type)] + [
        T.StructField(c, T.DoubleType()) for c in _SUMMARY
    ]
    if monetary_value_col is not None:
        fields.append(T.StructField("monetary_value", T.DoubleType()))

    def group(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.drop(columns="_clvrs_bucket")
        summary = _summarize(
            frame,
            customer_id_col,
            datetime_col,
            monetary_value_col=monetary_value_col,
            observation_period_end=end,
            freq=freq,
            freq_multiplier=freq_multiplier,
            include_first_transaction=include_first_transaction,
            n_jobs=1,
        )
        return summary.reset_index()

    bucketed = transactions.withColumn(
        "_clvrs_bucket", F.pmod(F.hash(F.col(customer_id_col)), F.lit(int(buckets)))
    )
    return bucketed.groupBy("_clvrs_bucket").applyInPandas(group, schema=T.StructType(fields))


def fit_spark(model: BaseModel, summaries: Any) -> BaseModel:
    """Fit ``model`` to a Spark DataFrame of customer summaries by gathering distinct rows with
    counts (``groupBy(...).count()``) to the driver."""
    from pyspark.sql import functions as F  # noqa: N812

    _check_frame(summaries, "Spark")
    columns, weights = _model_columns(model, summaries)
    if weights is None:
        grouped = summaries.groupBy(*columns).count().withColumnRenamed("count", "weights")
    else:
        w = F.col(weights).cast("double")
        grouped = summaries.groupBy(*columns).agg(
            F.sum(w).alias("weights"),
            F.min(w).alias("_clvrs_min"),
            F.max(w - F.floor(w)).alias("_clvrs_fraction"),
            F.sum(F.isnull(w).cast("int")).alias("_clvrs_null"),
        )
    counts = grouped.toPandas()
    if weights is not None:
        # Sums hide negative, fractional and missing weights: refused here.
        if (counts["_clvrs_null"] > 0).any():
            raise data_error(weights, None, None, "must not be missing (NaN or null)")
        low, fraction = counts["_clvrs_min"].min(), counts["_clvrs_fraction"].max()
        if not (low >= 0 and fraction == 0):
            raise data_error(
                weights, None, None, "must be a whole number >= 0: weights count customers"
            )
        counts = counts.drop(columns=["_clvrs_min", "_clvrs_fraction", "_clvrs_null"])
    counts["weights"] = counts["weights"].astype(float)
    return _fit_on_counts(model, counts, columns)


def score_spark(
    model: BaseModel,
    summaries: Any,
    customer_id_col: str,
    horizon: float = 1.0,
    spend_model: Any = None,
) -> Any:
    """Scores for every customer of a Spark DataFrame of summaries (``mapInPandas``); the
    models travel to the executors by pickle."""
    from pyspark.sql import types as T  # noqa: N812

    _check_model(model, fitted=True)
    _check_frame(summaries, "Spark")
    _check_present(summaries, [customer_id_col])
    _check_horizon(horizon)
    _check_spend(spend_model)
    id_type = summaries.schema[customer_id_col].dataType
    fields = [
        T.StructField(customer_id_col, id_type),
        T.StructField("expected_purchases", T.DoubleType()),
        T.StructField("probability_alive", T.DoubleType()),
    ]
    if spend_model is not None:
        fields.append(T.StructField("expected_spend", T.DoubleType()))

    def batches(frames: Any) -> Any:
        for frame in frames:
            scored = _score_frame(frame, model, horizon, spend_model)
            scored.insert(0, customer_id_col, frame[customer_id_col].to_numpy())
            yield scored.reset_index(drop=True)

    return summaries.mapInPandas(batches, schema=T.StructType(fields))


def score_file(
    model: BaseModel,
    source: str,
    destination: str,
    *,
    horizon: float = 1.0,
    spend_model: Any = None,
    clv: dict[str, Any] | None = None,
    chunk_rows: int = 1_000_000,
    keep: list[str] | None = None,
) -> int:
    """Score a Parquet file of customer summaries chunk by chunk into another Parquet file.

    Memory stays bounded by ``chunk_rows`` whatever the file's size: each chunk is read, scored
    (expected purchases in ``horizon``, P(alive), and with ``spend_model`` expected spend and
    CLV, computed by :func:`clvrs.customer_lifetime_value` with the keywords in ``clv``) and
    appended to ``destination``. Columns in ``keep`` (e.g. the customer id) are copied over.

    Returns
    -------
    int
        The number of customers scored.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .value import customer_lifetime_value

    _check_model(model, fitted=True)
    _check_horizon(horizon)
    _check_spend(spend_model)
    if not (
        isinstance(chunk_rows, numbers.Integral)
        and not isinstance(chunk_rows, bool)
        and 1 <= chunk_rows <= 2**31 - 1
    ):
        raise _bad_parameter("chunk_rows", f"must be a positive whole number, got {chunk_rows!r}")
    if clv is not None:
        allowed = {"time", "discount_rate", "time_unit", "margin", "method"}
        if not isinstance(clv, dict) or not set(clv) <= allowed:
            raise _bad_parameter(
                "clv", f"must be a dict with keys among {sorted(allowed)}, got {clv!r}"
            )
    if keep is not None and (isinstance(keep, str) or not all(isinstance(c, str) for c in keep)):
        raise _bad_parameter("keep", f"must be a list of column names, got {keep!r}")
    try:
        reader = pq.ParquetFile(source)
    except pa.ArrowInvalid as exc:
        err = InvalidDataError(f"`source` {source!r} is not a Parquet file ({exc})")
        err.column, err.rule = "source", "must be a Parquet file"
        raise err from None
    _check_present(pd.DataFrame(columns=reader.schema_arrow.names), list(keep or []))
    writer = None
    total = 0
    try:
        for batch in reader.iter_batches(batch_size=int(chunk_rows)):
            frame = batch.to_pandas()
            scores = _score_frame(frame, model, horizon, spend_model)
            if spend_model is not None:
                scores["clv"] = customer_lifetime_value(
                    model, spend_model, frame, **(clv or {})
                ).to_numpy()
            for column in keep or []:
                scores.insert(0, column, frame[column].to_numpy())
            table = pa.Table.from_pandas(scores, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(destination, table.schema)
            writer.write_table(table)
            total += len(frame)
    finally:
        if writer is not None:
            writer.close()
    return total
