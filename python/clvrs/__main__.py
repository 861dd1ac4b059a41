"""``python -m clvrs``: the demo on the bundled data, and ``python -m clvrs score``, the ETL main
job (transaction log in, one row of scores per customer out)."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import pandas as pd

from . import (
    BetaGeoModel,
    GammaGammaModel,
    ModifiedBetaGeoModel,
    ParetoNBDModel,
    __version__,
    customer_lifetime_value,
    datasets,
    summarize_transactions,
)
from .exceptions import ClvError
from .value import TIME_UNITS_PER_MONTH

MODELS = {"bgnbd": BetaGeoModel, "pnbd": ParetoNBDModel, "mbgnbd": ModifiedBetaGeoModel}


def demo(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clvrs",
        description="Fit BG/NBD and Gamma-Gamma to the bundled CDNOW sample (weeks) and list the "
        "customers with the most expected purchases. `python -m clvrs score --help` for the "
        "ETL job on your own transactions.",
    )
    parser.add_argument("--horizon", type=float, default=52.0, help="weeks ahead (default 52)")
    parser.add_argument("--top", type=int, default=10, help="customers to list (default 10)")
    args = parser.parse_args(argv)

    data = datasets.load_cdnow_summary()
    model = BetaGeoModel().fit(data)
    spend = GammaGammaModel().fit(data)
    pd.set_option("display.width", 120)
    print(f"clvrs {__version__}: BG/NBD on CDNOW ({len(data):,} customers, weeks)\n")
    print(model.summary.to_string(float_format=lambda v: f"{v:.4f}"))
    info = model.fit_info_
    print(
        f"\nlog-likelihood {model.log_likelihood_:.2f}   "
        f"AIC {model.aic_:.2f}   BIC {model.bic_:.2f}"
    )
    print(f"converged: {model.converged_} after {model.n_iter_} iterations ({info['termination']})")
    months = max(1, round(args.horizon / TIME_UNITS_PER_MONTH["W"]))
    scores = pd.DataFrame(
        {
            "frequency": data["frequency"],
            "recency": data["recency"],
            "T": data["T"],
            f"expected_purchases_{args.horizon:g}w": model.expected_purchases(data, t=args.horizon),
            "probability_alive": model.probability_alive(data),
            "expected_spend": spend.expected_average_spend(data),
            f"clv_{months}m": customer_lifetime_value(model, spend, data, time=months),
        }
    )
    top = scores.sort_values(scores.columns[3], ascending=False).head(args.top)
    print(f"\nTop {args.top} customers by expected purchases in the next {args.horizon:g} weeks:")
    print(top.to_string(float_format=lambda v: f"{v:.3f}"))
    return 0


class _Progress:
    """Stage messages on stderr when it is a terminal (or forced); silent with --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.enabled = not quiet and (sys.stderr.isatty() or os.environ.get("CLVRS_PROGRESS"))
        self.start = time.perf_counter()

    def __call__(self, message: str) -> None:
        if self.enabled:
            elapsed = time.perf_counter() - self.start
            print(f"[{elapsed:6.2f}s] {message}", file=sys.stderr, flush=True)


def _read(path: str, columns: list[str]) -> pd.DataFrame:
    lower = path.lower()
    if lower.endswith((".parquet", ".pq")):
        return pd.read_parquet(path, columns=columns)
    if lower.endswith((".csv", ".csv.gz", ".txt")):
        try:
            return pd.read_csv(path, usecols=columns, engine="pyarrow")
        except ImportError:
            return pd.read_csv(path, usecols=columns)
    raise ValueError(f"{path}: expected a .csv or .parquet file")


def _write(frame: pd.DataFrame, path: str) -> None:
    lower = path.lower()
    if lower.endswith((".parquet", ".pq")):
        frame.to_parquet(path)
    elif lower.endswith(".csv"):
        frame.to_csv(path)
    else:
        raise ValueError(f"{path}: the output must end in .csv or .parquet")


def score(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clvrs score",
        description="Summarise a transaction log, fit a purchase model (and Gamma-Gamma when "
        "amounts are given), score every customer and write the table.",
    )
    parser.add_argument("transactions", help="transaction log (.csv or .parquet)")
    parser.add_argument("--customer-col", required=True, help="customer id column")
    parser.add_argument("--date-col", required=True, help="transaction date/time column")
    parser.add_argument("--amount-col", help="transaction amount column (enables spend and CLV)")
    parser.add_argument("--model", choices=sorted(MODELS), default="bgnbd")
    parser.add_argument("--horizon", type=float, default=52.0, help="periods ahead (default 52)")
    parser.add_argument(
        "--freq", default="W", choices=["H", "D", "W", "M"], help="period (default W)"
    )
    parser.add_argument("--freq-multiplier", type=float, default=1.0)
    parser.add_argument("--end", help="end of observation (default: the last transaction)")
    parser.add_argument("--datetime-format", help="strftime format of string dates")
    parser.add_argument(
        "--discount-rate", type=float, default=0.01, help="monthly, for CLV (default 0.01)"
    )
    parser.add_argument("--margin", type=float, default=1.0, help="profit share (default 1)")
    parser.add_argument("--out", default="scores.parquet", help=".parquet or .csv")
    parser.add_argument("--n-jobs", type=int, default=None)
    parser.add_argument("--quiet", action="store_true", help="no progress or summary output")
    args = parser.parse_args(argv)
    progress = _Progress(args.quiet)

    columns = [args.customer_col, args.date_col] + ([args.amount_col] if args.amount_col else [])
    progress(f"reading {args.transactions}")
    log = _read(args.transactions, columns)
    progress(f"summarising {len(log):,} transactions")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = summarize_transactions(
            log,
            args.customer_col,
            args.date_col,
            monetary_value_col=args.amount_col,
            observation_period_end=args.end,
            freq=args.freq,
            freq_multiplier=args.freq_multiplier,
            datetime_format=args.datetime_format,
            after_end="exclude" if args.end else "error",
            n_jobs=args.n_jobs,
        )
    for w in caught:
        progress(f"note: {w.message}")
    del log
    progress(f"fitting {args.model} to {len(summary):,} customers")
    model = MODELS[args.model](n_jobs=args.n_jobs).fit(summary)
    table = summary.copy()
    table["expected_purchases"] = model.expected_purchases(summary, t=args.horizon)
    table["probability_alive"] = model.probability_alive(summary)
    spend = None
    if args.amount_col:
        progress("fitting Gamma-Gamma to the repeat buyers")
        spend = GammaGammaModel(n_jobs=args.n_jobs).fit(summary)
        table["expected_spend"] = spend.expected_average_spend(summary)
        units = TIME_UNITS_PER_MONTH[args.freq] * args.freq_multiplier**-1
        months = max(1, round(args.horizon / units))
        table["clv"] = customer_lifetime_value(
            model,
            spend,
            summary,
            time=months,
            discount_rate=args.discount_rate,
            time_unit=units,
            margin=args.margin,
        )
    progress(f"writing {len(table):,} rows to {args.out}")
    _write(table, args.out)
    if not args.quiet:
        print(f"{MODELS[args.model].__name__} on {len(summary):,} customers ({args.freq} periods)")
        print(model.summary.to_string(float_format=lambda v: f"{v:.4f}"))
        print(
            f"log-likelihood {model.log_likelihood_:.2f}; converged: {model.converged_} "
            f"({model.fit_info_['termination']})"
        )
        if spend is not None:
            print(
                "Gamma-Gamma on "
                f"{int(spend.n_observations_ or 0):,} repeat buyers: "
                + ", ".join(f"{k} {v:.4g}" for k, v in spend.params_.items())
            )
        print(f"scores written to {args.out}")
    progress("done")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "score":
        try:
            return score(argv[1:])
        except (ClvError, ValueError, OSError, KeyError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            print(f"error: {message}", file=sys.stderr)
            return 2
    return demo(argv)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        sys.exit(0)
