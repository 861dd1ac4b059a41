"""Every rule in docs/validation_rules.md is enforced as documented.

The tables of the page are parsed: each row's id must have a trigger here (and each trigger a
row), the trigger must raise the documented error class, the error must name what the row's
*names* cell says (column, first offending row, pandas index label, or parameter) and its message
must contain the row's quoted phrase. Rows marked "known gap" are expected failures (strict: the
test reports when the gap is closed, so the marker and the page can be updated).
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pytest

import clvrs
from clvrs.exceptions import InvalidDataError, InvalidParameterError

DOC = Path(__file__).resolve().parents[1] / "docs" / "validation_rules.md"
COLUMNS = ["id", "input", "used by", "rule", "error", "names", "message contains"]
ERRORS = {"InvalidDataError": InvalidDataError, "InvalidParameterError": InvalidParameterError}
NAMES = {"none", "column", "row", "label", "parameter"}


@dataclass(frozen=True)
class Rule:
    id: str
    error: str
    names: frozenset[str]
    phrase: str
    known_gap: bool


def _parse(text: str) -> dict[str, Rule]:
    rules: dict[str, Rule] = {}
    header: list[str] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            assert header == COLUMNS, f"unexpected table header {header}"
            continue
        if set(line) <= set("|- "):
            continue
        assert len(cells) == len(COLUMNS), f"malformed row: {line}"
        row = dict(zip(COLUMNS, cells))
        rule_id = row["id"].strip("`")
        assert rule_id not in rules, f"duplicate id {rule_id}"
        phrases = re.findall(r"`([^`]+)`", row["message contains"])
        assert len(phrases) == 1, f"{rule_id}: one `phrase` expected, got {phrases}"
        names = frozenset(n.strip() for n in row["names"].split(","))
        assert names <= NAMES, f"{rule_id}: unknown names {names - NAMES}"
        assert row["error"] in ERRORS, f"{rule_id}: unknown error {row['error']}"
        rules[rule_id] = Rule(
            rule_id, row["error"], names, phrases[0], "known gap" in row["rule"].lower()
        )
    return rules


RULES = _parse(DOC.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------------------------
# valid inputs, broken one value at a time
# --------------------------------------------------------------------------------------------

INDEX = [f"c{i}" for i in range(6)]
RFM = {
    "frequency": [0.0, 1.0, 2.0, 0.0, 5.0, 3.0],
    "recency": [0.0, 1.5, 10.0, 0.0, 20.0, 7.0],
    "T": [30.0, 30.0, 30.0, 25.0, 40.0, 9.0],
}
BGBB = {
    "frequency": [0.0, 1.0, 2.0, 0.0, 3.0, 1.0],
    "recency": [0.0, 1.0, 3.0, 0.0, 5.0, 6.0],
    "periods": [6.0] * 6,
}
SPEND = {
    "frequency": [0.0, 1.0, 2.0, 0.0, 5.0, 3.0],
    "monetary_value": [0.0, 10.0, 20.0, 0.0, 15.0, 30.0],
}
# A valid litt for RFM: 0 without repeat purchases, below frequency * ln(recency / frequency).
RFM_LITT = {**RFM, "litt": [0.0, 0.0, 1.0, 0.0, 2.0, 1.0]}
CHURN = {
    "periods": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
    "churned": [1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
}


def _frame(base: dict[str, list], **changes: dict[int, Any]) -> pd.DataFrame:
    """``base`` as a DataFrame indexed by customer labels, with ``changes[column][row] = value``."""
    frame = pd.DataFrame(base, index=INDEX)
    for column, values in changes.items():
        if column not in frame:
            frame[column] = 1.0
        frame[column] = frame[column].astype(float)
        for row, value in values.items():
            frame.iloc[row, frame.columns.get_loc(column)] = value
    return frame


def _arrays(base: dict[str, list]) -> dict[str, np.ndarray]:
    return {k: np.asarray(v, dtype=float) for k, v in base.items()}


def _panel(**columns: list) -> pd.DataFrame:
    """A covariate panel for the customers of :func:`_log`: weekly rows from before each first
    purchase (customer 1 has a second row a week later)."""
    panel = pd.DataFrame(
        {
            "id": [1, 1, 2, 3],
            "date": pd.to_datetime(["2019-12-30", "2020-01-06", "2019-12-30", "2019-12-30"]),
            "x": [0.0, 1.0, 1.0, 2.0],
            "level": ["a", "b", "a", "b"],
        }
    )
    for name, values in columns.items():
        panel[name] = values
    return panel


def _dynamic(log: Any = None, panel: Any = None, **options: Any) -> clvrs.DynamicCovariateData:
    return clvrs.DynamicCovariateData(
        _log() if log is None else log,
        _panel() if panel is None else panel,
        customer_id_col="id",
        datetime_col="date",
        **options,
    )


def _log(**columns: list) -> pd.DataFrame:
    log = pd.DataFrame(
        {
            "id": [1, 1, 2, 2, 3],
            "date": pd.to_datetime(
                ["2020-01-01", "2020-01-05", "2020-01-02", "2020-01-09", "2020-01-03"]
            ),
            "amount": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    for name, values in columns.items():
        log[name] = values
    return log


def _dynamic_model() -> clvrs.ParetoNBDDynamicModel:
    """A model fitted with a categorical covariate (levels a and b) on the tiny log."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return clvrs.ParetoNBDDynamicModel(on_failure="ignore").fit(
            _dynamic(), purchase_covariates="level"
        )


def _covariate_model() -> clvrs.BetaGeoModel:
    """BG/NBD with a numeric purchase covariate, fitted on the first 20 CDNOW customers."""
    data = CDNOW.assign(size=np.linspace(0.0, 1.0, len(CDNOW)))
    return clvrs.BetaGeoModel(on_failure="ignore").fit(data, purchase_covariates="size")


BG = clvrs.BetaGeoModel.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426)
PNBD = clvrs.ParetoNBDModel.from_params(r=0.553, alpha=10.578, s=0.606, beta=11.669)
BB = clvrs.BetaGeoBetaBinomModel.from_params(alpha=1.204, beta=0.75, gamma=0.657, delta=2.783)
GG = clvrs.GammaGammaModel.from_params(p=6.25, q=3.74, gamma=15.44)
SBG = clvrs.ShiftedBetaGeoModel.from_params(alpha=0.704, beta=1.182)
CDNOW = clvrs.datasets.load_cdnow_summary().head(20)


def _with_env(name: str, value: str, call: Callable[[], Any]) -> Callable[[], Any]:
    def run() -> Any:
        old = os.environ.get(name)
        os.environ[name] = value
        try:
            return call()
        finally:
            if old is None:
                del os.environ[name]
            else:
                os.environ[name] = old

    return run


def _distributed(name: str) -> Callable[..., Any]:
    pytest.importorskip("dask.dataframe")
    import clvrs.distributed

    return getattr(clvrs.distributed, name)


def _dask(frame: pd.DataFrame) -> Any:
    dd = pytest.importorskip("dask.dataframe")
    return dd.from_pandas(frame, npartitions=2)


@dataclass(frozen=True)
class Case:
    call: Callable[[], Any]
    name: str  # the column or parameter the error must blame
    row: int | None = None
    label: Any = None


def _cases() -> dict[str, Case]:
    DYNAMIC = _dynamic_model()  # noqa: N806 - a model, named like the other fixtures
    fit_bg = clvrs.BetaGeoModel().fit
    fit_bb = clvrs.BetaGeoBetaBinomModel().fit
    fit_gg = clvrs.GammaGammaModel().fit
    fit_sbg = clvrs.ShiftedBetaGeoModel().fit
    rfm, spend = _arrays(RFM), _arrays(SPEND)
    summarize = clvrs.summarize_transactions
    clv = clvrs.customer_lifetime_value
    return {
        # customer summaries
        "rfm.container": Case(lambda: fit_bg(_frame(RFM).to_numpy()), ""),
        "rfm.not-both": Case(lambda: fit_bg(_frame(RFM), frequency=rfm["frequency"]), ""),
        "rfm.column-present": Case(lambda: fit_bg(_frame(RFM).drop(columns="T")), "T"),
        "rfm.numeric": Case(lambda: fit_bg(_frame(RFM).assign(T=["30"] * 6)), "T"),
        "rfm.one-dimensional": Case(
            lambda: BG.probability_alive(**{**rfm, "frequency": np.zeros((2, 3))}), "frequency"
        ),
        "rfm.same-length": Case(lambda: fit_bg(**{**rfm, "T": rfm["T"][:-1]}), "T"),
        "rfm.non-empty": Case(lambda: fit_bg(_frame(RFM).iloc[:0]), "frequency"),
        "rfm.frequency": Case(
            lambda: fit_bg(_frame(RFM, frequency={2: 2.5, 4: np.nan})), "frequency", 2, "c2"
        ),
        "rfm.recency": Case(
            lambda: BG.probability_alive(_frame(RFM, recency={1: np.nan})), "recency", 1, "c1"
        ),
        "rfm.T": Case(lambda: fit_bg(_frame(RFM, T={3: -1.0, 5: np.inf})), "T", 3, "c3"),
        "rfm.recency-le-T": Case(
            lambda: BG.expected_purchases(_frame(RFM, recency={5: 9.5}), t=10.0),
            "recency",
            5,
            "c5",
        ),
        "rfm.recency-zero": Case(lambda: fit_bg(_frame(RFM, recency={3: 4.0})), "recency", 3, "c3"),
        "rfm.weights": Case(
            lambda: clvrs.BetaGeoModel(columns={"weights": "count"}).fit(
                _frame(RFM, count={4: -1.0})
            ),
            "count",
            4,
            "c4",
        ),
        "rfm.weights-total": Case(lambda: fit_bg(**rfm, weights=np.zeros(6)), "weights"),
        "intake.weights-whole": Case(
            lambda: fit_bg(_frame(RFM, weights={3: 2.5})), "weights", 3, "c3"
        ),
        "intake.complex": Case(lambda: fit_bg(_frame(RFM).assign(T=lambda f: f["T"] + 0j)), "T"),
        "intake.object": Case(
            lambda: fit_bg(_frame(RFM).assign(recency=["0", 1.5, 10, 0, 20, 7])), "recency", 0
        ),
        "intake.duplicate-column": Case(
            lambda: fit_bg(pd.concat([_frame(RFM), _frame(RFM)[["T"]]], axis=1)), "T"
        ),
        "intake.one-role": Case(
            lambda: clvrs.BetaGeoModel(columns={"recency": "T"}).fit(_frame(RFM)), "T"
        ),
        "intake.unmapped": Case(
            lambda: clvrs.BetaGeoModel(columns={"recency": None}).fit(_frame(RFM)), "recency"
        ),
        "intake.align-labels": Case(
            lambda: BG.expected_purchases(_frame(RFM), t=pd.Series(np.ones(6))), "t"
        ),
        "intake.align-length": Case(lambda: fit_bg(_frame(RFM), weights=[1, 2]), "weights"),
        "rfm.repeat-buyers": Case(
            lambda: fit_bg(frequency=np.zeros(4), recency=np.zeros(4), T=np.arange(4.0)),
            "frequency",
        ),
        "bgbb.recency-whole": Case(
            lambda: fit_bb(_frame(BGBB, recency={2: 2.5})), "recency", 2, "c2"
        ),
        "bgbb.periods-whole": Case(
            lambda: BB.probability_alive(_frame(BGBB, periods={4: 6.5})), "periods", 4, "c4"
        ),
        "bgbb.frequency-le-recency": Case(
            lambda: fit_bb(_frame(BGBB, frequency={5: 7.0})), "frequency", 5, "c5"
        ),
        "bgbb.periods-keyword": Case(
            lambda: fit_bb(**{**_arrays(BGBB), "periods": np.array([6, 6, 6, 6, 6.5, 6])}),
            "periods",
            4,
        ),
        # spend
        "spend.column-present": Case(
            lambda: fit_gg(_frame(SPEND).drop(columns="monetary_value")), "monetary_value"
        ),
        "spend.same-length": Case(
            lambda: GG.expected_average_spend(frequency=spend["frequency"], monetary_value=[1.0]),
            "monetary_value",
        ),
        "spend.non-empty": Case(lambda: fit_gg(frequency=[], monetary_value=[]), "frequency"),
        "spend.frequency": Case(
            lambda: fit_gg(_frame(SPEND, frequency={1: -1.0})), "frequency", 1, "c1"
        ),
        "spend.monetary": Case(
            lambda: GG.expected_average_spend(_frame(SPEND, monetary_value={3: 5.0, 4: 0.0})),
            "monetary_value",
            4,
            "c4",
        ),
        "spend.weights": Case(
            lambda: clvrs.GammaGammaModel(columns={"weights": "n"}).fit(
                _frame(SPEND, n={2: np.nan})
            ),
            "n",
            2,
            "c2",
        ),
        "spend.repeat-buyers": Case(
            lambda: fit_gg(frequency=np.zeros(3), monetary_value=np.ones(3)), "frequency"
        ),
        "spend.finite-mean": Case(
            lambda: clvrs.GammaGammaModel.from_params(
                p=1.0, q=0.9, gamma=1.0
            ).population_mean_spend(),
            "q",
        ),
        # transactions
        "tx.container": Case(lambda: summarize([1, 2], "id", "date"), "transactions"),
        "tx.column-present": Case(lambda: summarize(_log(), "customer", "date"), "customer"),
        "tx.column-unique": Case(
            lambda: summarize(pd.concat([_log(), _log()[["date"]]], axis=1), "id", "date"), "date"
        ),
        "tx.amount-column-present": Case(
            lambda: summarize(_log(), "id", "date", monetary_value_col="value"), "value"
        ),
        "tx.non-empty": Case(lambda: summarize(_log().iloc[:0], "id", "date"), "id"),
        "tx.customer-id": Case(
            lambda: summarize(_log(id=[1, 1, 2, None, 3]), "id", "date"), "id", 3
        ),
        "tx.datetime-missing": Case(
            lambda: summarize(
                _log(date=pd.to_datetime(["2020-01-01", None, "2020-01-02", None, "2020-01-03"])),
                "id",
                "date",
            ),
            "date",
            1,
        ),
        "tx.datetime-parsable": Case(
            lambda: summarize(
                _log(date=["2020-01-01", "2020-01-05", "2020-01-02", "soon", "2020-01-03"]),
                "id",
                "date",
            ),
            "date",
            3,
        ),
        "tx.datetime-number": Case(
            lambda: summarize(
                _log(date=[20200101, 20200105, 20200102, 20200109, 20200103]), "id", "date"
            ),
            "date",
            0,
        ),
        "tx.datetime-format": Case(
            lambda: summarize(
                _log(date=["2020-01-01", "2020-01-05", "2020-01-02", "2020-01-09", "2020-01-03"]),
                "id",
                "date",
                datetime_format="%d/%m/%Y",
            ),
            "datetime_format",
        ),
        "tx.datetime-ambiguous": Case(
            lambda: summarize(
                _log(date=["01/02/2020", "05/02/2020", "02/02/2020", "09/02/2020", "03/02/2020"]),
                "id",
                "date",
            ),
            "date",
        ),
        "tx.datetime-timezone": Case(
            lambda: summarize(
                _log(date=["2020-01-01T00:00+01:00"] * 4 + ["2020-01-03T00:00+02:00"]), "id", "date"
            ),
            "date",
        ),
        "tx.amount-number": Case(
            lambda: summarize(_log(amount=["1", "2", "3", "4", "five"]), "id", "date", "amount"),
            "amount",
            4,
        ),
        "tx.amount-finite": Case(
            lambda: summarize(_log(amount=[1, np.inf, 3, np.nan, 5]), "id", "date", "amount"),
            "amount",
            1,
        ),
        "tx.amount-non-negative": Case(
            lambda: summarize(_log(amount=[1, 2, -3, 4, 5]), "id", "date", "amount"), "amount", 2
        ),
        "tx.after-end": Case(
            lambda: summarize(_log(), "id", "date", observation_period_end="2020-01-04"),
            "date",
            1,
        ),
        "tx.freq": Case(lambda: summarize(_log(), "id", "date", freq="Q"), "freq"),
        "tx.freq-multiplier": Case(
            lambda: summarize(_log(), "id", "date", freq_multiplier=0), "freq_multiplier"
        ),
        "tx.after-end-option": Case(
            lambda: summarize(_log(), "id", "date", after_end="drop"), "after_end"
        ),
        "tx.end-date": Case(
            lambda: summarize(_log(), "id", "date", observation_period_end="someday"),
            "observation_period_end",
        ),
        "tx.end-before-first": Case(
            lambda: clvrs.calibration_and_holdout(_log(), "id", "date", "2019-12-01"),
            "calibration_period_end",
        ),
        "tx.column-name": Case(lambda: summarize(_log(), ["id"], "date"), "customer_id_col"),
        # regularity models
        "litt.required": Case(lambda: clvrs.BetaGeoCNBDModel(k=2).fit(_frame(RFM)), "litt"),
        "litt.finite": Case(
            lambda: clvrs.BetaGeoCNBDModel(k=2).fit(_frame(RFM_LITT, litt={4: np.nan})),
            "litt",
            4,
            "c4",
        ),
        "litt.zero": Case(
            lambda: clvrs.BetaGeoCNBDModel(k=2).fit(_frame(RFM_LITT, litt={3: 1.0})),
            "litt",
            3,
            "c3",
        ),
        "litt.bound": Case(
            lambda: clvrs.ModifiedBetaGeoCNBDModel(k=2).fit(_frame(RFM_LITT, litt={2: 5.0})),
            "litt",
            2,
            "c2",
        ),
        "regularity.k": Case(lambda: clvrs.BetaGeoCNBDModel(k=2.5).fit(_frame(RFM)), "k"),
        "regularity.max-k": Case(
            lambda: clvrs.ModifiedBetaGeoCNBDModel(max_k=0).fit(_frame(RFM)), "max_k"
        ),
        "tx.flag": Case(
            lambda: summarize(_log(), "id", "date", allow_negative="no"), "allow_negative"
        ),
        "tx.tracking-span": Case(
            lambda: clvrs.tracking(
                clvrs.BetaGeoModel.from_params(r=1.0, alpha=1.0, a=1.0, b=1.0),
                _log(),
                "id",
                "date",
                freq="H",
                observation_period_end="3000-01-01",
            ),
            "freq",
        ),
        "tx.simulate-end": Case(
            lambda: clvrs.simulate_transactions(
                clvrs.BetaGeoModel.from_params(r=1.0, alpha=1.0, a=1.0, b=1.0), [1.0], end=pd.NaT
            ),
            "end",
        ),
        "tx.simulate-customers": Case(
            lambda: clvrs.simulate_transactions(
                clvrs.BetaGeoModel.from_params(r=1.0, alpha=1.0, a=1.0, b=1.0), []
            ),
            "T",
        ),
        "tx.simulate-horizon": Case(
            lambda: clvrs.simulate_transactions(
                clvrs.BetaGeoModel.from_params(r=1.0, alpha=1.0, a=1.0, b=1.0), [1e16]
            ),
            "T",
        ),
        "tx.holdout-order": Case(
            lambda: clvrs.calibration_and_holdout(
                _log(), "id", "date", "2020-01-05", observation_period_end="2020-01-02"
            ),
            "observation_period_end",
        ),
        # contractual inputs
        "churn.survivors-or-records": Case(
            lambda: fit_sbg(survivors=[10, 5], periods=[1.0], churned=[1.0]), "survivors"
        ),
        "churn.survivors-length": Case(lambda: fit_sbg(survivors=[1000]), "survivors"),
        "churn.survivors-count": Case(
            lambda: fit_sbg(survivors=[1000, 600, np.nan, 300]), "survivors", 2
        ),
        "churn.survivors-non-increasing": Case(
            lambda: fit_sbg(survivors=[1000, 600, 700, 300]), "survivors", 2
        ),
        "churn.cohort-size": Case(lambda: fit_sbg(survivors=[0, 0, 0]), "survivors", 0),
        "churn.non-empty": Case(lambda: fit_sbg(periods=[], churned=[]), "periods"),
        "churn.same-length": Case(lambda: fit_sbg(periods=[1, 2], churned=[1]), "churned"),
        "churn.periods": Case(lambda: fit_sbg(_frame(CHURN, periods={2: 2.5})), "periods", 2, "c2"),
        "churn.churned": Case(lambda: fit_sbg(_frame(CHURN, churned={3: 2})), "churned", 3, "c3"),
        "churn.churned-period": Case(
            lambda: fit_sbg(_frame(CHURN, periods={4: 0.0})), "periods", 4, "c4"
        ),
        "churn.weights": Case(
            lambda: clvrs.ShiftedBetaGeoModel(columns={"weights": "weights"}).fit(
                _frame(CHURN, weights={1: -1.0})
            ),
            "weights",
            1,
            "c1",
        ),
        "churn.weights-total": Case(
            lambda: fit_sbg(periods=[1, 2], churned=[1, 0], weights=[0, 0]), "weights"
        ),
        "churn.mapped-names": Case(
            lambda: clvrs.ShiftedBetaGeoModel(columns={"periods": "tenure"}).fit(
                _frame(CHURN, periods={2: 2.5}).rename(columns={"periods": "tenure"})
            ),
            "tenure",
            2,
            "c2",
        ),
        # model parameters and hyperparameters
        "params.domain": Case(
            lambda: clvrs.ParetoNBDModel.from_params(r=0.5, alpha=10.0, s=-0.6, beta=11.0), "s"
        ),
        "params.missing": Case(
            lambda: clvrs.BetaGeoModel.from_params(r=0.2, alpha=4.0, a=0.8), "b"
        ),
        "params.unknown": Case(
            lambda: clvrs.BetaGeoModel.from_params(r=0.2, alpha=4.0, a=0.8, b=2.4, beta=1.0),
            "beta",
        ),
        "params.type": Case(
            lambda: clvrs.BetaGeoModel.from_params(r="0.2", alpha=4.0, a=0.8, b=2.4), "r"
        ),
        "hyper.unknown": Case(lambda: clvrs.BetaGeoModel().set_params(alpha=1.0), "alpha"),
        "hyper.penalizer": Case(lambda: clvrs.BetaGeoModel(penalizer=-0.1).fit(**rfm), "penalizer"),
        "hyper.n_jobs": Case(lambda: clvrs.BetaGeoModel(n_jobs=0).fit(**rfm), "n_jobs"),
        "hyper.n_jobs-negative": Case(
            lambda: clvrs.BetaGeoModel.from_params(r=0.2, alpha=4.0, a=0.8, b=2.4, n_jobs=-2),
            "n_jobs",
        ),
        "hyper.n_jobs-range": Case(lambda: clvrs.BetaGeoModel(n_jobs=10**30).fit(**rfm), "n_jobs"),
        "hyper.env-threads": Case(
            _with_env("CLVRS_NUM_THREADS", "many", lambda: BG.probability_alive(**rfm)),
            "CLVRS_NUM_THREADS",
        ),
        "hyper.n_jobs-limit": Case(
            lambda: clvrs.summarize_transactions(
                clvrs.datasets.load_cdnow_transactions().iloc[:50],
                "customer_id",
                "date",
                n_jobs=1025,
            ),
            "n_jobs",
        ),
        "hyper.env-threads-range": Case(
            _with_env("CLVRS_NUM_THREADS", "0", lambda: BG.probability_alive(**rfm)),
            "CLVRS_NUM_THREADS",
        ),
        "hyper.max_iter": Case(lambda: clvrs.BetaGeoModel(max_iter=0).fit(**rfm), "max_iter"),
        "hyper.tol": Case(lambda: clvrs.ParetoNBDModel(tol=float("nan")).fit(**rfm), "tol"),
        "hyper.on_failure": Case(
            lambda: clvrs.ShiftedBetaGeoModel(on_failure="stop").fit(survivors=[10, 5]),
            "on_failure",
        ),
        "hyper.columns": Case(
            lambda: clvrs.BetaGeoModel(columns={"age": "T"}).fit(_frame(RFM)), "columns"
        ),
        # prediction arguments
        "predict.t": Case(
            lambda: BG.expected_purchases(_frame(RFM), t=[1.0, 2.0, 3.0, np.nan, 5.0, 6.0]),
            "t",
            3,
            "c3",
        ),
        "predict.representable": Case(
            lambda: clvrs.BetaGeoModel.from_params(
                r=1e30, alpha=1e-300, a=1.0, b=1e-300
            ).expected_purchases(frequency=2, recency=30.0, T=40.0, t=10.0),
            "params_",
        ),
        "predict.t-length": Case(lambda: BG.expected_purchases(**rfm, t=[1.0, 2.0]), "t"),
        "predict.t-scalar": Case(lambda: BG.expected_purchases(_frame(RFM), t=-1.0), "t"),
        "predict.new-customer-t": Case(
            lambda: BG.expected_purchases_new_customer([1.0, 2.0, -3.0]), "t", 2
        ),
        "predict.n": Case(lambda: BG.purchase_count_probability([0, 1.5], 39.0), "n", 1),
        "predict.horizons": Case(
            lambda: BG.weighted_expected_purchases(
                _frame(RFM), horizons=[1.0, -2.0], weights=[1, 1]
            ),
            "horizons",
            1,
        ),
        "predict.discount-rate-required": Case(
            lambda: PNBD.expected_residual_transactions(**rfm), "discount_rate"
        ),
        "predict.discount-rate": Case(
            lambda: PNBD.expected_residual_transactions(
                _frame(RFM), discount_rate=[0.1, 0.1, 0.0, 0.1, 0.1, 0.1]
            ),
            "discount_rate",
            2,
            "c2",
        ),
        "predict.discount-rate-scalar": Case(
            lambda: PNBD.expected_residual_transactions(_frame(RFM), discount_rate=-0.1),
            "discount_rate",
        ),
        "bgbb.opportunities": Case(lambda: BB.expected_purchases(_frame(BGBB), m=1.5), "m"),
        "bgbb.count-x": Case(lambda: BB.purchase_count_probability([1, 2.5], 6), "x", 1),
        "churn.t": Case(lambda: SBG.retention_rate([1, 2, 0]), "t", 2),
        "churn.periods-argument": Case(lambda: SBG.expected_renewals(3, [1, 2.5]), "periods", 1),
        "churn.discount-rate": Case(
            lambda: SBG.expected_residual_lifetime([3, 3], [0.1, -0.1]), "discount_rate", 1
        ),
        "churn.residual-lifetime-finite": Case(
            lambda: SBG.expected_residual_lifetime(3, 0.0), "discount_rate"
        ),
        "churn.margin": Case(lambda: SBG.subscription_value(3, -50.0), "margin_per_period"),
        "summary.level": Case(lambda: GG.summary_frame(level=1.0), "level"),
        # customer value
        "clv.margin": Case(lambda: clv(BG, GG, CDNOW, margin=float("nan")), "margin"),
        "clv.discount-rate": Case(lambda: clv(BG, GG, CDNOW, discount_rate=-1.0), "discount_rate"),
        "clv.time": Case(lambda: clv(BG, GG, CDNOW, time=0), "time"),
        "clv.time-limit": Case(lambda: clv(BG, GG, CDNOW, time=601), "time"),
        "clv.time-unit": Case(lambda: clv(BG, GG, CDNOW, time_unit="Y"), "time_unit"),
        "clv.method": Case(lambda: clv(BG, GG, CDNOW, method="monthly"), "method"),
        "clv.spend": Case(lambda: clv(BG, -5.0, CDNOW), "spend_model"),
        "clv.spend-kind": Case(lambda: clv(BG, BG, CDNOW), "spend_model"),
        "clv.spend-text": Case(
            lambda: clv(BG, np.array(["10"] * len(CDNOW)), CDNOW), "spend_model"
        ),
        "clv.spend-length": Case(lambda: clv(BG, [1.0, 2.0], CDNOW), "spend_model"),
        # uncertainty, value tables and evaluation
        "boot.data": Case(lambda: clvrs.bootstrap(BG, None, 2), ""),
        "boot.checked-up-front": Case(
            lambda: clvrs.bootstrap(
                BG, CDNOW.assign(T=CDNOW["T"].where(CDNOW.index != 6, -1.0)), 50
            ),
            "T",
            5,
            6,
        ),
        "boot.parametric": Case(lambda: clvrs.bootstrap(GG, CDNOW, 2, kind="parametric"), "kind"),
        "boot.n-jobs-type": Case(lambda: clvrs.bootstrap(BG, CDNOW, 2, n_jobs="4"), "n_jobs"),
        "boot.n-boot": Case(lambda: clvrs.bootstrap(BG, CDNOW, 10**12), "n_boot"),
        "interval.predict": Case(
            lambda: clvrs.delta_interval(
                lambda m: "x", [clvrs.BetaGeoModel(on_failure="ignore").fit(CDNOW)]
            ),
            "predict",
        ),
        "random.seed": Case(lambda: BG.simulate([10.0], seed=-1), "seed"),
        "interval.level": Case(
            lambda: clvrs.prediction_interval(BG, "probability_alive", CDNOW, level="0.9"),
            "level",
        ),
        "table.column-present": Case(
            lambda: clvrs.historical_clv(CDNOW.drop(columns="T"), 10.0), "T"
        ),
        "table.finite": Case(
            lambda: clvrs.rfm_segments(CDNOW.assign(monetary_value=np.nan)), "monetary_value", 0, 1
        ),
        "tiers.segments": Case(lambda: clvrs.clv_segments([1.0, 2.0], [0, np.nan, 1]), "segments"),
        "budget.cost": Case(
            lambda: clvrs.acquisition_budget([1.0, 2.0], np.inf), "acquisition_cost"
        ),
        "budget.cost-type": Case(
            lambda: clvrs.acquisition_budget([1.0, 2.0], {"a": "5"}, by=["a", "a"]),
            "acquisition_cost",
        ),
        "budget.group": Case(lambda: clvrs.acquisition_budget([1.0, 2.0], by=["a", None]), "by"),
        "eval.same-data": Case(
            lambda: clvrs.compare_models(
                [clvrs.BetaGeoModel().fit(CDNOW), clvrs.BetaGeoModel().fit(CDNOW.iloc[:10])]
            ),
            "models",
        ),
        "purchase-model": Case(lambda: clvrs.tracking(GG, _log(), "id", "date"), "model"),
        "segments.key-missing": Case(
            lambda: clvrs.fit_segments(
                clvrs.BetaGeoModel(), CDNOW.assign(g=["a", "b"] * 9 + [None, "a"]), "g"
            ),
            "g",
            18,
            19,
        ),
        "segments.key-unknown": Case(
            lambda: clvrs.fit_segments(
                clvrs.BetaGeoModel(), CDNOW.assign(g=["a", "b"] * 10), "g"
            ).probability_alive(CDNOW.assign(g=["a", "b", "c"] + ["a"] * 17)),
            "g",
            2,
            3,
        ),
        "dist.frame": Case(
            lambda: _distributed("fit_dask")(clvrs.BetaGeoModel(), CDNOW), "summaries"
        ),
        "dist.column-present": Case(
            lambda: _distributed("fit_dask")(clvrs.BetaGeoModel(), _dask(CDNOW.drop(columns="T"))),
            "T",
        ),
        "dist.missing": Case(
            lambda: _distributed("fit_dask")(
                clvrs.BetaGeoModel(), _dask(CDNOW.assign(T=CDNOW["T"].where(CDNOW.index != 5)))
            ),
            "T",
            None,
            5,
        ),
        "dist.weights": Case(
            lambda: _distributed("fit_dask")(
                clvrs.BetaGeoModel(), _dask(CDNOW.assign(weights=np.where(CDNOW.index == 4, -1, 2)))
            ),
            "weights",
            None,
            4,
        ),
        "dist.score-file": Case(
            lambda: _distributed("score_file")(BG, "in.parquet", "out.parquet", chunk_rows=0),
            "chunk_rows",
        ),
        "dist.horizon": Case(
            lambda: _distributed("score_dask")(BG, _dask(CDNOW), horizon=float("nan")), "horizon"
        ),
        "covariates.tied-once": Case(
            lambda: clvrs.BetaGeoModel().fit(
                CDNOW.assign(size=np.linspace(0.0, 1.0, len(CDNOW))),
                purchase_covariates=["size"],
                tied_covariates=["size"],
            ),
            "tied_covariates",
        ),
        "covariates.domain": Case(
            lambda: _covariate_model().probability_alive(
                CDNOW.assign(size=np.where(CDNOW.index == 3, 1e300, 0.5))
            ),
            "size",
            2,
            3,
        ),
        # time-varying covariates
        "dyn.customer-id": Case(lambda: _dynamic(log=_log(id=[1, 1, 2, None, 3])), "id", 3),
        "dyn.datetime-missing": Case(
            lambda: _dynamic(
                log=_log(
                    date=pd.to_datetime(["2020-01-01", None, "2020-01-02", "2020-01-03", None])
                )
            ),
            "date",
            1,
        ),
        "dyn.non-empty": Case(lambda: _dynamic(log=_log().iloc[:0]), "id"),
        "dyn.after-end": Case(lambda: _dynamic(observation_period_end="2020-01-04"), "date", 1),
        "dyn.panel-container": Case(lambda: _dynamic(panel=[1, 2, 3]), "covariates"),
        "dyn.panel-timezone": Case(
            lambda: _dynamic(panel=_panel(date=_panel()["date"].dt.tz_localize("UTC"))), "date"
        ),
        "dyn.panel-column-present": Case(
            lambda: _dynamic(panel=_panel().drop(columns="date")), "date"
        ),
        "dyn.panel-customer-id": Case(
            lambda: _dynamic(panel=_panel(id=[1.0, None, 2.0, 3.0])), "id", 1
        ),
        "dyn.panel-datetime-missing": Case(
            lambda: _dynamic(
                panel=_panel(date=pd.to_datetime(["2019-12-30", "2020-01-06", None, "2019-12-30"]))
            ),
            "date",
            2,
        ),
        "dyn.one-row-per-period": Case(
            lambda: _dynamic(
                panel=_panel(
                    date=pd.to_datetime(["2019-12-30", "2019-12-31", "2019-12-30", "2019-12-30"])
                ),
                freq="W",
            ),
            "date",
            1,
        ),
        "dyn.first-purchase-covered": Case(
            lambda: _dynamic(
                panel=_panel(
                    date=pd.to_datetime(["2019-12-30", "2020-01-06", "2020-01-06", "2019-12-30"])
                )
            ),
            "date",
        ),
        "dyn.data": Case(lambda: clvrs.ParetoNBDDynamicModel().fit(_log()), "data"),
        "dyn.covariate-missing": Case(
            lambda: clvrs.ParetoNBDDynamicModel().fit(
                _dynamic(panel=_panel(x=[1.0, np.nan, 0.0, 2.0])), purchase_covariates="x"
            ),
            "x",
            1,
        ),
        "dyn.covariate-level": Case(
            lambda: DYNAMIC.probability_alive(_dynamic(panel=_panel(level=["a", "b", "z", "a"]))),
            "level",
            2,
        ),
        "dyn.horizon": Case(
            lambda: DYNAMIC.expected_purchases(_dynamic(), t=[1.0, -1.0, 1.0]), "t", 1
        ),
        "dyn.dropout-static": Case(
            lambda: clvrs.BetaGeoDynamicModel(on_failure="ignore").fit(
                _dynamic(), dropout_covariates="x"
            ),
            "x",
            1,
        ),
        "dyn.subscription-periods": Case(
            lambda: clvrs.ShiftedBetaGeoDynamicModel().fit(_dynamic(freq="D", freq_multiplier=7)),
            "data",
        ),
        "dyn.subscription-payments": Case(
            lambda: clvrs.ShiftedBetaGeoDynamicModel().fit(_dynamic(freq="D")), "id"
        ),
        "dyn.panel-horizon": Case(
            lambda: (
                clvrs.ShiftedBetaGeoDynamicModel(on_failure="ignore")
                .fit(_dynamic(freq="W"))
                .survival(_dynamic(freq="W"), 2)
            ),
            "t",
            1,
        ),
        "dyn.discount-rate": Case(
            lambda: DYNAMIC.expected_residual_transactions(_dynamic(), [0.1, 0.1, 0.0]),
            "discount_rate",
            2,
        ),
    }


CASES = _cases()


def test_every_documented_rule_has_a_trigger_and_vice_versa():
    documented, triggered = set(RULES), set(CASES)
    assert not documented - triggered, f"rules without a trigger: {sorted(documented - triggered)}"
    assert not triggered - documented, f"triggers without a rule: {sorted(triggered - documented)}"
    assert len(RULES) >= 80  # the parser found the tables


def test_known_gaps_are_expected_failures():
    # A row marked as a known gap describes behaviour the code lacks; every other row must hold.
    gaps = {rule.id for rule in RULES.values() if rule.known_gap}
    assert gaps == set()


def _params() -> list:
    gap = pytest.mark.xfail(strict=True, reason="known gap, see docs/validation_rules.md")
    return [
        pytest.param(rule, id=rule.id, marks=[gap] if rule.known_gap else [])
        for rule in RULES.values()
    ]


@pytest.mark.parametrize("rule", _params())
def test_rule_is_enforced_as_documented(rule: Rule):
    case = CASES[rule.id]
    with pytest.raises(ERRORS[rule.error]) as info:
        case.call()
    err = info.value
    assert type(err) is ERRORS[rule.error]
    assert isinstance(err, clvrs.ClvError) and isinstance(err, ValueError)
    message = str(err)
    assert rule.phrase in message, message
    if "parameter" in rule.names:
        assert err.parameter == case.name, err.parameter
        assert case.name in message
        return
    assert isinstance(err, InvalidDataError)
    if "column" in rule.names:
        assert err.column == case.name, (err.column, message)
        assert f"`{case.name}`" in message
        assert isinstance(err.rule, str) and err.rule, "the rule attribute is set"
    if "row" in rule.names:
        assert case.row is not None
        assert err.row == case.row, (err.row, message)
        assert f"row {case.row}" in message
    else:
        assert err.row is None, (err.row, message)
    if "label" in rule.names:
        assert case.label is not None
        assert err.label == case.label, (err.label, message)
        assert f"[index label {case.label!r}]" in message
    else:
        assert err.label is None, (err.label, message)
