"""``python -m clvrs``: the demo on the bundled data, and ``python -m clvrs score``, the ETL main
job (transaction log in, one row of scores per customer out).

Every failure ends with exit status 2 and one line on stderr (``error: ...``), no traceback;
the arguments, the input's columns and the output path are checked before the work starts.
Warnings (rows left out after ``--end``, an end far past the data, convergence) are always
reported on stderr, one line each, also with ``--quiet``.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

import pandas as pd

from . import (
    BetaGeoModel,
    GammaGammaModel,
    ModifiedBetaGeoModel,
    ParetoNBDModel,
    __version__,
    _units,
    customer_lifetime_value,
    datasets,
    report,
    summarize_transactions,
)
from .exceptions import ClvError

MODELS = {"bgnbd": BetaGeoModel, "pnbd": ParetoNBDModel, "mbgnbd": ModifiedBetaGeoModel}

#: The longest horizon accepted (in days): 10 years. Longer ones are refused up front (the
#: monthly CLV sum grows with the square of its months, and no forecast reaches that far).
MAX_HORIZON_DAYS = 3652.5
#: An --end more than this share of the observed span past the last transaction is warned about.
FAR_END_SHARE = 0.10

_HORIZON = re.compile(
    r"^\s*([-+]?(?:[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?|nan|inf))\s*([A-Za-z]*)\s*$"
)
_DAYS = {"H": 1 / 24, "D": 1.0, "W": 7.0, "M": 365.2425 / 12}


class UsageError(Exception):
    """A command-line argument or input that cannot work (exit status 2, one line)."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``error: ...``) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see {self.prog} --help)")


def _horizon(text: str, unit: str | None) -> tuple[float, str]:
    """``--horizon`` in the data's time unit, and its label for column names (e.g. "52W").

    ``text`` is a number followed by a unit (``52W``, ``12M``, ``365D``, ``8760H``) or a bare
    number of the data's periods (``unit``, e.g. ``"7D"``: 52 of them is 364 days, "364D").
    ``unit`` None only checks the text (the demo's data are in weeks).
    """
    match = _HORIZON.match(text)
    letter = match.group(2).upper() if match else ""
    if match is None or letter not in ("", *_DAYS):
        raise UsageError(
            f"--horizon: expected a number and a unit (e.g. 52W, 12M, 365D, 8760H), got {text!r}"
        )
    value = float(match.group(1))
    freq, multiplier = _units.parse_unit(unit or "W")
    period = _DAYS[freq] * multiplier  # days per period of the data
    if letter:
        days, label = value * _DAYS[letter], f"{value:g}{letter}"
    else:
        days, label = value * period, f"{value * multiplier:g}{freq}"
    if not (math.isfinite(days) and 0 < days <= MAX_HORIZON_DAYS):
        raise UsageError(
            f"--horizon: must be more than 0 and at most 10 years (520W, 120M, 3652D), got {text!r}"
        )
    return (days / period if letter else value), label


def _clv_months(t: float, unit: str) -> int:
    """Whole months of CLV for a horizon of ``t`` periods (at least one)."""
    return max(1, round(t / _units.units_per_month(unit)))


def demo(argv: list[str]) -> int:
    parser = _Parser(
        prog="python -m clvrs",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Without a command: fit BG/NBD and Gamma-Gamma to the bundled CDNOW sample "
        "(weeks) and list the customers with the most expected purchases.",
        epilog="commands:\n"
        "  score    the ETL job: summarise your transaction log, fit a purchase model (and\n"
        "           Gamma-Gamma with amounts), score every customer, write .parquet or .csv;\n"
        "           see `python -m clvrs score --help`\n"
        "  (none)   the demo above",
    )
    parser.add_argument(
        "--horizon",
        default="52W",
        help="how far ahead: a number and a unit (52W, 12M, 365D; a bare number is weeks); "
        "at most 10 years (default 52W)",
    )
    parser.add_argument("--top", type=int, default=10, help="customers to list (default 10)")
    args = parser.parse_args(argv)
    if args.top < 1:
        raise UsageError(f"--top: must be at least 1, got {args.top}")
    t, label = _horizon(args.horizon, "W")

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
    months = _clv_months(t, "W")
    scores = pd.DataFrame(
        {
            "frequency": data["frequency"],
            "recency": data["recency"],
            "T": data["T"],
            f"expected_purchases_{label}": model.expected_purchases(data, t=t),
            "probability_alive": model.probability_alive(data),
            "expected_spend": spend.expected_average_spend(data),
            f"clv_{months}M": customer_lifetime_value(
                model, spend, data, time=months, time_unit="W"
            ),
        }
    )
    top = scores.sort_values(scores.columns[3], ascending=False).head(args.top)
    print(f"\nTop {args.top} customers by expected purchases in the next {label}:")
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


_CSV = (".csv", ".csv.gz", ".txt")
_PARQUET = (".parquet", ".pq")


def _parquet_engine() -> bool:
    """Whether pandas can read and write Parquet here (pyarrow or fastparquet importable)."""
    for name in ("pyarrow", "fastparquet"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        return True
    return False


def _no_parquet(what: str, path: str) -> UsageError:
    stem = path[: path.lower().rfind(".")]
    alternative = f"use --out {stem}.csv" if what == "--out" else "convert the log to .csv"
    return UsageError(
        f"{what} {path}: Parquet needs pyarrow, which is not installed: "
        f"pip install pyarrow, or {alternative}"
    )


def _check_input(path: str, roles: dict[str, str]) -> None:
    """The log exists, can be read here and has the columns named (``roles``: option -> name)."""
    if os.path.isdir(path):
        raise UsageError(f"transactions {path}: is a directory; give the log's file")
    if not os.path.isfile(path):
        raise UsageError(f"transactions: no such file: {path}")
    if os.path.getsize(path) == 0:
        raise UsageError(f"transactions {path}: the file is empty")
    lower = path.lower()
    if lower.endswith(_PARQUET):
        if not _parquet_engine():
            raise _no_parquet("transactions", path)
        if importlib.util.find_spec("pyarrow") is None:
            return  # fastparquet: the columns are checked when read
        import pyarrow.parquet as pq

        present = list(pq.read_schema(path).names)
    elif lower.endswith(_CSV):
        try:
            present = list(pd.read_csv(path, nrows=0).columns)
        except pd.errors.EmptyDataError:
            raise UsageError(f"transactions {path}: the file has no header row (empty)") from None
    else:
        raise UsageError(
            f"transactions {path}: expected a .csv (or .csv.gz, .txt) or .parquet file"
        )
    for option, name in roles.items():
        if name not in present:
            shown = ", ".join(map(str, present[:10])) + (", ..." if len(present) > 10 else "")
            raise UsageError(f"{option}: no column {name!r} in {path} (its columns: {shown})")


def _check_output(path: str) -> None:
    """The output can be written: a known extension, its engine, a writable directory."""
    lower = path.lower()
    if lower.endswith(_PARQUET):
        if not _parquet_engine():
            raise _no_parquet("--out", path)
    elif not lower.endswith((".csv", ".csv.gz")):
        raise UsageError(f"--out {path}: the output must end in .parquet or .csv")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"--out {path}: is a directory; give a file name")
    if not os.path.isdir(folder):
        raise UsageError(f"--out {path}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"--out {path}: not writable (permission denied)")


def _check_report(args: argparse.Namespace) -> None:
    """--report can be written: with --amount-col (value needs amounts), an .html name, a
    writable directory."""
    path = args.report
    if not args.amount_col:
        raise UsageError(f"--report {path}: the report values customers: give --amount-col too")
    if not path.lower().endswith((".html", ".htm")):
        raise UsageError(f"--report {path}: the report is an HTML file: end the name in .html")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise UsageError(f"--report {path}: is a directory; give a file name")
    if not os.path.isdir(folder):
        raise UsageError(f"--report {path}: the directory {folder} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise UsageError(f"--report {path}: not writable (permission denied)")


def _read(path: str, columns: list[str], text: list[str] | None = None) -> pd.DataFrame:
    """The log's ``columns``; those in ``text`` kept as text from a CSV (pyarrow's reader
    would parse ISO dates itself and so ignore --datetime-format)."""
    if path.lower().endswith(_PARQUET):
        return pd.read_parquet(path, columns=columns)
    dtype = {name: "string" for name in text or []} or None
    try:
        return pd.read_csv(path, usecols=columns, engine="pyarrow", dtype=dtype)
    except ImportError:
        return pd.read_csv(path, usecols=columns, dtype=dtype)


def _write(frame: pd.DataFrame, path: str) -> None:
    if path.lower().endswith(_PARQUET):
        frame.to_parquet(path)
    else:
        frame.to_csv(path)


def _check_arguments(args: argparse.Namespace) -> None:
    """The numeric and date options, before anything is read."""

    def finite(value: float) -> bool:
        return math.isfinite(value)

    if not (finite(args.freq_multiplier) and args.freq_multiplier > 0):
        raise UsageError(f"--freq-multiplier: must be a number > 0, got {args.freq_multiplier:g}")
    if not (finite(args.discount_rate) and args.discount_rate > -1):
        raise UsageError(
            f"--discount-rate: must be a monthly rate > -1, got {args.discount_rate:g}"
        )
    if not (finite(args.margin) and args.margin >= 0):
        raise UsageError(f"--margin: must be a profit share >= 0, got {args.margin:g}")
    if args.n_jobs is not None and not (args.n_jobs > 0 or args.n_jobs == -1):
        raise UsageError(f"--n-jobs: must be -1 (all cores) or a number > 0, got {args.n_jobs}")
    if args.end is not None:
        # As summarize_transactions reads it: in --datetime-format if given, else any date.
        attempts: list[dict[str, Any]] = [{}]
        if args.datetime_format:
            attempts.insert(0, {"format": args.datetime_format})
        for kwargs in attempts:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    end = pd.Timestamp(pd.to_datetime(args.end, **kwargs))
            except (ValueError, TypeError, OverflowError):
                continue
            if not pd.isna(end):
                return
        raise UsageError(
            f"--end: not a date: {args.end!r} (give e.g. 1997-09-30, between the years 1677 and "
            "2262)"
        )


@contextmanager
def _one_line_warnings() -> Iterator[None]:
    """Every warning as one line on stderr (``warning: ...``), as it happens."""

    def show(message: Any, category: Any, *args: Any, **kwargs: Any) -> None:
        text = " ".join(str(message).split())
        print(f"warning: {text}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show
        yield


def score(argv: list[str]) -> int:
    parser = _Parser(
        prog="python -m clvrs score",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Summarise a transaction log, fit a purchase model (and Gamma-Gamma when "
        "amounts are given), score every customer and write the table.",
        epilog="output columns (one row per customer, indexed by the customer id):\n"
        "  frequency, recency, T (, monetary_value)  the summary, recency and T in periods of\n"
        "                                  --freq times --freq-multiplier (e.g. 7D)\n"
        "  expected_purchases_<horizon>    expected purchases over --horizon, e.g. _52W\n"
        "  probability_alive               P(still a customer) at the end of observation\n"
        "  expected_spend, clv_<months>M   with --amount-col: mean spend per purchase, and\n"
        "                                  the discounted value over --horizon in whole months\n"
        "Warnings (rows after --end left out, an --end far past the last transaction, fits\n"
        "that did not converge) go to stderr, one line each, also with --quiet. Every error\n"
        "exits with status 2 and one line on stderr, checked before the work starts.",
    )
    parser.add_argument("transactions", help="transaction log (.csv, .csv.gz or .parquet)")
    parser.add_argument("--customer-col", required=True, help="customer id column")
    parser.add_argument("--date-col", required=True, help="transaction date/time column")
    parser.add_argument("--amount-col", help="transaction amount column (enables spend and CLV)")
    parser.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="bgnbd",
        help="purchase model: bgnbd (BG/NBD), mbgnbd (MBG/NBD), pnbd (Pareto/NBD) (default bgnbd)",
    )
    parser.add_argument(
        "--horizon",
        default="52W",
        help="how far ahead to predict: a number and a unit, H, D, W or M (52W, 12M, 365D); a "
        "bare number counts periods of --freq times --freq-multiplier; more than 0 and at "
        "most 10 years (default 52W)",
    )
    parser.add_argument(
        "--freq",
        default="W",
        type=str.upper,
        choices=["H", "D", "W", "M"],
        help="period the dates are floored to and recency/T are counted in: hours, days, "
        "weeks from Monday or calendar months (default W)",
    )
    parser.add_argument(
        "--freq-multiplier",
        type=float,
        default=1.0,
        help="recency and T are divided by it: --freq D --freq-multiplier 7 counts weeks of "
        "whole days (default 1)",
    )
    parser.add_argument(
        "--end",
        help="end of observation (default: the last transaction); later transactions are left "
        "out and counted on stderr",
    )
    parser.add_argument(
        "--datetime-format", help="strftime format of string dates (and of --end), e.g. %%Y%%m%%d"
    )
    parser.add_argument(
        "--discount-rate", type=float, default=0.01, help="monthly, for CLV (default 0.01)"
    )
    parser.add_argument("--margin", type=float, default=1.0, help="profit share (default 1)")
    parser.add_argument(
        "--out",
        default="scores.parquet",
        help="output file, .parquet (needs pyarrow) or .csv (default scores.parquet)",
    )
    parser.add_argument(
        "--n-jobs", type=int, default=None, help="threads (default: all cores; -1 also all)"
    )
    parser.add_argument(
        "--report",
        help="also write a customer-value report (one self-contained .html file: value, "
        "retention list, acquisition budget, model check); needs --amount-col",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress or summary output")
    args = parser.parse_args(argv)
    progress = _Progress(args.quiet)

    # Everything that can be checked before the work starts.
    _check_arguments(args)
    unit = _units.unit_name(args.freq, args.freq_multiplier)
    t, label = _horizon(args.horizon, unit)
    roles = {"--customer-col": args.customer_col, "--date-col": args.date_col}
    if args.amount_col:
        roles["--amount-col"] = args.amount_col
    for option, name in roles.items():
        others = [other for other, taken in roles.items() if taken == name and other != option]
        if others:
            raise UsageError(
                f"{option} and {others[0]} both name the column {name!r}: each must be its own "
                "column"
            )
    _check_input(args.transactions, roles)
    _check_output(args.out)
    if os.path.exists(args.out) and os.path.samefile(args.out, args.transactions):
        raise UsageError(
            f"--out {args.out}: is the transaction log itself (it would be overwritten with the "
            "scores); give another file name"
        )
    if args.report is not None:
        _check_report(args)

    columns = list(dict.fromkeys(roles.values()))
    progress(f"reading {args.transactions}")
    log = _read(args.transactions, columns, [args.date_col] if args.datetime_format else None)
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
    for caught_warning in caught:  # reported in the command's words
        text = str(caught_warning.message).replace("observation_period_end", "--end")
        warnings.warn(text, caught_warning.category, stacklevel=1)
    del log
    if args.end is not None and len(summary):
        # The time from the last transaction to the end, and the data's own span before it.
        gap = float((summary["T"] - summary["recency"]).min())
        span = float(summary["T"].max()) - gap
        if gap > 0 and gap > FAR_END_SHARE * span:
            warnings.warn(
                f"--end {args.end} is {gap:g} periods ({unit}) after the last transaction, "
                f"more than {FAR_END_SHARE:.0%} of the {span:g} periods the data span: every "
                "customer looks inactive since, which lowers probability_alive and the "
                "expectations; is --end right?",
                UserWarning,
                stacklevel=1,
            )
    progress(f"fitting {args.model} to {len(summary):,} customers")
    model = MODELS[args.model](n_jobs=args.n_jobs).fit(summary)
    table = summary.copy()
    table[f"expected_purchases_{label}"] = model.expected_purchases(summary, t=t)
    table["probability_alive"] = model.probability_alive(summary)
    spend = None
    if args.amount_col:
        progress("fitting Gamma-Gamma to the repeat buyers")
        spend = GammaGammaModel(n_jobs=args.n_jobs).fit(summary)
        table["expected_spend"] = spend.expected_average_spend(summary)
        months = _clv_months(t, unit)
        table[f"clv_{months}M"] = customer_lifetime_value(
            model,
            spend,
            summary,
            time=months,
            discount_rate=args.discount_rate,
            margin=args.margin,
        )  # in the model's time unit (recorded on the summary)
    progress(f"writing {len(table):,} rows to {args.out}")
    _write(table, args.out)
    if args.report is not None:
        progress(f"writing the report to {args.report}")
        report(
            model,
            spend,
            summary,
            args.report,
            time=_clv_months(t, unit),
            discount_rate=args.discount_rate,
            margin=args.margin,
        )
    if not args.quiet:
        print(
            f"{MODELS[args.model].__name__} on {len(summary):,} customers "
            f"(time unit {unit}: recency and T in periods of {args.freq}"
            + (f" x {args.freq_multiplier:g}" if args.freq_multiplier != 1 else "")
            + f"; horizon {label})"
        )
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


#: The library's argument names in a message, and the options that set them.
_OPTIONS = {
    "datetime_format=": "--datetime-format ",
    "datetime_format": "--datetime-format",
    "pass allow_negative=True to accept returns": "the command line takes no returns: leave "
    "them out of the log, or summarise it in Python with allow_negative=True",
    "observation_period_end": "--end",
    "freq_multiplier": "--freq-multiplier",
    "monetary_value_col": "--amount-col",
    "customer_id_col": "--customer-col",
    "datetime_col": "--date-col",
}


def _in_command_words(message: str) -> str:
    """A library message with its argument names replaced by the options that set them."""
    for name, option in _OPTIONS.items():
        message = message.replace(name, option)
    return message.replace('--datetime-format "%Y%m%d"', "--datetime-format %Y%m%d")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 2 after a one-line error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with _one_line_warnings():
            if argv and argv[0] == "score":
                return score(argv[1:])
            return demo(argv)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second error when Python flushes at exit
        return 0
    except (UsageError, ClvError, ValueError, OSError, KeyError, ImportError) as exc:
        text = str(exc).strip()
        message = text.splitlines()[0] if text else type(exc).__name__
        print(f"error: {_in_command_words(message)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback, for any failure
        print(
            f"error: {type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''} "
            "(unexpected: please report it with the command line)",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        sys.exit(0)
