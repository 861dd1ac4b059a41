#!/usr/bin/env python3
"""Benchmark clvrs' transaction-log summary and the ETL main job, in one run, on the same data.

For each transaction log (synthetic, drawn from the BG/NBD + Gamma-Gamma process by
/work/shared/bench/gen_synth.py: 1M and 10M rows by default) this times, with
time.perf_counter, the median of the runs of

  clvrs pandas   ``clvrs.summarize_transactions(df, "customer_id", "date",
                 monetary_value_col="amount", freq="W")`` on the pandas DataFrame
  clvrs polars   the same call on a polars DataFrame of the same file
  clvrs str ids  the same call with string customer ids
                 (``df.assign(customer_id=df.customer_id.astype(str))``, conversion not timed)
  polars         a lazy ``group_by`` pipeline computing the same columns (dates floored to weeks
                 from Monday, amounts summed per (customer, week), then per customer: distinct
                 weeks - 1, first and last week, mean of the weekly sums after the first, T to
                 the last week overall), in two forms: grouping on (customer, week), which works
                 for any id type, and on one packed int64 key (integer ids only; the fastest
                 form found)
  lifetimes      ``lifetimes.utils.summary_data_from_transaction_data(df, "customer_id", "date",
                 monetary_value_col="amount", freq="W")``

clvrs and polars run in this process (system python), round-robin (each repeat runs every
variant once). lifetimes 0.11.3 runs in its own virtual environment, one fresh process per run
(PEER_SUMMARY below, with the peer venv's python), timing only the call (data loading excluded);
a run that does not finish within --peer-timeout is stopped and reported as a lower bound.

Checked, on every size: clvrs' polars and string-id results against its pandas result (same
customers, same numbers), both polars pipelines against clvrs, and lifetimes' first run against
clvrs (same customers; frequency, recency and T equal; monetary value to 1e-9 relative).

Also measured, on the largest size: clvrs' peak memory in fresh processes (peak RSS over the
loaded input, as a multiple of the 24 bytes/row of customer_id + date + amount), where clvrs'
summary time goes (input conversion / Rust core / result frame), and the whole main job
``python -m clvrs score LOG --customer-col customer_id --date-col date --amount-col amount
--freq W --quiet --out scores.parquet`` (wall time of a fresh process, median of --job-repeats),
plus one run with CLVRS_PROGRESS=1 (and without --quiet, which silences the progress) for its
stage timings.

Data: bench/data/tx_1m.parquet and tx_10m.parquet (gitignored), written when missing by
  python /work/shared/bench/gen_synth.py transactions -n 1200000 --rows 10000000 \\
      --alpha 2.0 --a 0.3 --b 6 --r 0.5 -o bench/data/tx_10m.parquet
(customers = 12% of the rows, of whom the first ~81% are kept; gen_synth's default seed 42).

Examples
  python bench/bench_transactions.py --sizes 100k --repeats 3 --skip-peer --skip-job
  python bench/bench_transactions.py --quiet-wait 300 --json bench/data/transactions_results.json \\
      --update-doc BENCHMARKS.md                          # the full run, rewriting its section
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import polars as pl
import pyarrow.parquet as pq

import clvrs
from clvrs import _core

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_bgnbd as bg  # noqa: E402  (machine description, timing, waiting for quiet)
import bench_value as bv  # noqa: E402  (quiet-wait bookkeeping, relative differences)
from _report import replace_block  # noqa: E402

DATA_DIR = bg.DATA_DIR
SHARED = bg.SHARED
REPO = bg.REPO
DEFAULT_PEER_PYTHON = bg.DEFAULT_PEER_PYTHON
COLS = ("customer_id", "date", "amount")
OUT_COLS = ("frequency", "recency", "T", "monetary_value")
INPUT_BYTES_PER_ROW = 24  # int64 customer_id + datetime64 date + float64 amount
FREQ = "W"
GEN_ARGS = ("--alpha", "2.0", "--a", "0.3", "--b", "6", "--r", "0.5")
CUSTOMERS_PER_ROW = 0.12  # gen_synth -n: 1,200,000 customers drawn for 10M rows
BIG_ROWS = 5_000_000  # sizes from here on use --peer-repeats-big
MONETARY_RTOL = 1e-9
# Targets from the issue.
SPEED_TARGET = 50.0  # lifetimes / clvrs (pandas) on the largest size
MEMORY_TARGET = 3.0  # peak increment / input bytes (24 per row)
JOB_TARGET_S = 10.0  # the whole main job on the largest size
VARIANTS = ("clvrs_pandas", "clvrs_polars", "clvrs_str", "polars_groupby", "polars_packed")
LABEL = {
    "clvrs_pandas": "clvrs, pandas DataFrame",
    "clvrs_polars": "clvrs, polars DataFrame",
    "clvrs_str": "clvrs, pandas, string customer ids",
    "polars_groupby": "polars lazy group_by on (customer, week)",
    "polars_packed": "polars lazy group_by on a packed int64 key",
    "lifetimes": "lifetimes `summary_data_from_transaction_data`",
}
QUIET_WAIT = 0.0  # set from --quiet-wait
DOC_BEGIN = (
    "<!-- bench_transactions:start (generated by bench/bench_transactions.py; "
    "do not edit by hand) -->"
)
DOC_END = "<!-- bench_transactions:end -->"
DOC_HEADING = "## Transaction summaries and the main job"
log = bg.log
median = bg.median
fmt_s = bg.fmt_s
fmt_ratio = bg.fmt_ratio


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
def parse_rows(token: str) -> int:
    n = bg.parse_size(token)
    if n is None or n < 1000:
        raise argparse.ArgumentTypeError(f"bad size {token!r}: use 100k, 1m, 10m or a number")
    return n


def rows_label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def size_label(n: int) -> str:
    return f"{rows_label(n).upper()} rows"


def tx_path(n: int) -> Path:
    return DATA_DIR / f"tx_{rows_label(n)}.parquet"


def gen_command(n: int) -> list[str]:
    customers = int(round(n * CUSTOMERS_PER_ROW))
    return [
        "python",
        str(SHARED / "gen_synth.py"),
        "transactions",
        "-n",
        str(customers),
        "--rows",
        str(n),
        *GEN_ARGS,
        "-o",
        str(tx_path(n).relative_to(REPO)),
    ]


def ensure_tx(n: int) -> Path:
    path = tx_path(n)
    if path.exists():
        rows = pq.ParquetFile(path).metadata.num_rows
        if rows != n:
            raise SystemExit(f"{path} has {rows:,} rows, expected {n:,}: remove it to regenerate")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    cmd = gen_command(n)
    log(f"generating {path.name}: {' '.join(cmd)}")
    cmd[0] = sys.executable
    cmd[-1] = str(path)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=REPO)
    return path


def load_pandas(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path, columns=list(COLS))


def string_ids(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(customer_id=df.customer_id.astype(str))


def core_built() -> str:
    """Modification time of the clvrs extension file on disk (what a fresh process loads)."""
    mtime = Path(_core.__file__).stat().st_mtime
    return _dt.datetime.fromtimestamp(mtime).strftime("%Y-%m-%d %H:%M")


def quiet(where: str, window: float = 3.0) -> None:
    bv.quiet(QUIET_WAIT, where, window=window)


# ---------------------------------------------------------------------------------------------
# the timed calls
# ---------------------------------------------------------------------------------------------
def clvrs_summary(frame: Any) -> Any:
    return clvrs.summarize_transactions(
        frame, "customer_id", "date", monetary_value_col="amount", freq=FREQ
    )


WEEK_MS = 7 * 86_400_000
MONDAY_SHIFT_MS = 3 * 86_400_000  # 1970-01-01 was a Thursday: +3 days puts Mondays on k * 7 days


def _week() -> pl.Expr:
    """Index of the week (Monday to Sunday) of each date: integer arithmetic, faster than
    ``dt.truncate("1w")`` (which gives the same weeks)."""
    return (pl.col("date").dt.epoch("ms") + MONDAY_SHIFT_MS) // WEEK_MS


def _per_customer(weekly: pl.LazyFrame, end_week: Any) -> pl.LazyFrame:
    """From (customer_id, week, amount = weekly sum) rows to the summary columns.

    The mean of the weekly sums after the first is (total - first week's sum) / (weeks - 1):
    one pass, no filtering; the amounts are positive, so the subtraction loses nothing that
    matters (checked against clvrs below).
    """
    return (
        weekly.group_by("customer_id")
        .agg(
            n=pl.len(),
            first=pl.col("week").min(),
            last=pl.col("week").max(),
            total=pl.col("amount").sum(),
            first_amount=pl.col("amount").get(pl.col("week").arg_min()),
        )
        .select(
            "customer_id",
            frequency=(pl.col("n") - 1).cast(pl.Float64),
            recency=(pl.col("last") - pl.col("first")).cast(pl.Float64),
            T=(end_week - pl.col("first")).cast(pl.Float64),
            monetary_value=pl.when(pl.col("n") > 1)
            .then((pl.col("total") - pl.col("first_amount")) / (pl.col("n") - 1))
            .otherwise(0.0),
        )
        .sort("customer_id")
    )


def polars_groupby(frame: pl.DataFrame) -> pl.DataFrame:
    """Group by (customer, week), then by customer: any customer id type."""
    end_week = frame.select(_week().max()).item()
    weekly = frame.lazy().group_by("customer_id", _week().alias("week")).agg(pl.col("amount").sum())
    return _per_customer(weekly, pl.lit(end_week)).collect()


def polars_packed(frame: pl.DataFrame) -> pl.DataFrame:
    """The same with (customer, week) packed into one int64 key: integer ids only."""
    lo, hi = frame.select(_week().min(), _week().max().alias("hi")).row(0)
    span = 1 << max(1, int(hi - lo).bit_length())
    key = pl.col("customer_id") * span + (_week() - lo)
    weekly = (
        frame.lazy()
        .group_by(key.alias("key"))
        .agg(pl.col("amount").sum())
        .select(customer_id=pl.col("key") // span, week=pl.col("key") % span, amount="amount")
    )
    return _per_customer(weekly, pl.lit(hi - lo)).collect()


def as_indexed(result: Any) -> pd.DataFrame:
    """A summary (pandas indexed by id, or polars with the id column) as pandas, by id."""
    if isinstance(result, pl.DataFrame):
        return result.to_pandas().set_index("customer_id")
    return result


# ---------------------------------------------------------------------------------------------
# agreement
# ---------------------------------------------------------------------------------------------
def compare(ref: pd.DataFrame, other: pd.DataFrame) -> dict[str, Any]:
    """Same customers; frequency, recency and T equal; monetary value to MONETARY_RTOL."""
    out: dict[str, Any] = {"n_ref": int(len(ref)), "n_other": int(len(other))}
    same = len(ref) == len(other) and bool((np.asarray(ref.index) == np.asarray(other.index)).all())
    out["same_customers"] = same
    if not same:
        missing = ref.index.difference(other.index)
        extra = other.index.difference(ref.index)
        out["missing"] = int(len(missing))
        out["extra"] = int(len(extra))
        if len(missing) == 0 and len(extra) == 0:
            out["note"] = "same customers in a different order: compared after sorting"
            other = other.loc[ref.index]
        else:
            out["passed"] = False
            return out
    out["mismatches"] = {
        c: int((ref[c].to_numpy() != other[c].to_numpy()).sum()) for c in OUT_COLS[:3]
    }
    a = other["monetary_value"].to_numpy(dtype=float)
    b = ref["monetary_value"].to_numpy(dtype=float)
    d = bv.rel_diff(a, b)
    out["monetary_max_rel"] = float(np.nanmax(d)) if len(d) else 0.0
    out["monetary_nan"] = int(np.isnan(a).sum())
    out["monetary_above_rtol"] = int((d > MONETARY_RTOL).sum())
    out["passed"] = bool(
        not any(out["mismatches"].values())
        and out["monetary_above_rtol"] == 0
        and out["monetary_nan"] == 0
    )
    return out


def compare_str(ref: pd.DataFrame, other: pd.DataFrame) -> dict[str, Any]:
    """String-id result vs the integer-id one: ids mapped to str, rows put in the same order."""
    keyed = ref.copy()
    keyed.index = keyed.index.astype(str)
    res = {"sorted_as_strings": bool(other.index.is_monotonic_increasing)}
    if len(keyed) == len(other) and set(keyed.index) == set(other.index):
        other = other.loc[keyed.index]
    res.update(compare(keyed, other))
    return res


# ---------------------------------------------------------------------------------------------
# clvrs and polars timings
# ---------------------------------------------------------------------------------------------
def time_in_process(
    frames: dict[str, Any], repeats: int
) -> tuple[dict[str, Any], dict[str, pd.DataFrame]]:
    calls: dict[str, Callable[[], Any]] = {
        "clvrs_pandas": lambda: clvrs_summary(frames["pandas"]),
        "clvrs_polars": lambda: clvrs_summary(frames["polars"]),
        "clvrs_str": lambda: clvrs_summary(frames["str"]),
        "polars_groupby": lambda: polars_groupby(frames["polars"]),
        "polars_packed": lambda: polars_packed(frames["polars"]),
    }
    times: dict[str, list[float]] = {k: [] for k in calls}
    results: dict[str, Any] = {}
    # Round-robin: each repeat times every variant, so slow drifts of the machine hit all alike.
    for i in range(repeats):
        quiet(f"repeat {i + 1}", window=1.0)
        for key, fn in calls.items():
            results[key] = None
            gc.collect()
            with bg.Tracked():
                t0 = time.perf_counter()
                res = fn()
                times[key].append(time.perf_counter() - t0)
            results[key] = res
        del res
    out = {
        "times": times,
        "median": {k: median(v) for k, v in times.items()},
        "polars_threads": pl.thread_pool_size(),
    }
    return out, {k: as_indexed(v) for k, v in results.items()}


def phases(frames: dict[str, Any], repeats: int) -> dict[str, Any]:
    """Where clvrs' summary time goes: input conversion, the Rust core, the result frame."""
    try:  # private: the steps summarize_transactions takes
        from clvrs.data import _frame, _read_log, _summarize
    except ImportError:
        return {}
    names = ("customer_id", "date", "amount")

    def read(kind: str) -> Any:
        return _read_log(frames[kind], "customer_id", "date", "amount", None)

    def core(lg: Any, n_jobs: int | None) -> dict[str, Any]:
        return _summarize(
            lg,
            names,
            freq=FREQ,
            freq_multiplier=1.0,
            end_ns=None,
            include_first=False,
            exclude_after_end=False,
            allow_negative=False,
            n_jobs=n_jobs,
        )

    logs = {k: read(k) for k in ("pandas", "polars", "str")}
    res = core(logs["pandas"], None)
    cols = {k: res[k] for k in OUT_COLS}
    calls: dict[str, Callable[[], Any]] = {
        "read_pandas": lambda: read("pandas"),
        "read_polars": lambda: read("polars"),
        "polars_to_pandas": lambda: frames["polars"].to_pandas(),
        "read_str": lambda: read("str"),
        "factorize_str": lambda: pd.factorize(frames["str"]["customer_id"], sort=False),
        "core": lambda: core(logs["pandas"], None),
        "core_1thread": lambda: core(logs["pandas"], 1),
        "core_str": lambda: core(logs["str"], None),
        "frame_pandas": lambda: _frame(logs["pandas"], "customer_id", cols, res["customer"]),
        "frame_polars": lambda: _frame(logs["polars"], "customer_id", cols, res["customer"]),
        "frame_str": lambda: _frame(logs["str"], "customer_id", cols, res["customer"]),
    }
    times: dict[str, list[float]] = {k: [] for k in calls}
    for i in range(repeats):
        quiet(f"phases repeat {i + 1}", window=1.0)
        for key, fn in calls.items():
            gc.collect()
            with bg.Tracked():
                t0 = time.perf_counter()
                fn()
                times[key].append(time.perf_counter() - t0)
    return {
        "median": {k: median(v) for k, v in times.items()},
        "threads": _core.resolve_n_jobs(None),
        "customers": int(len(res["customer"])),
        "str_dtype": str(frames["str"]["customer_id"].dtype),
        "date_dtype": str(frames["pandas"]["date"].dtype),
    }


# ---------------------------------------------------------------------------------------------
# lifetimes (peer) timings
# ---------------------------------------------------------------------------------------------
# Run by the peer venv's python: argv = data file, output .parquet path ("-" for none), freq.
# Prints JSON lines: "start" (wall clock when the call starts, so that a run stopped by the
# timeout still gives a lower bound) and "result". Only the call is timed.
PEER_SUMMARY = r"""
import json, os, platform, resource, sys, time
from importlib.metadata import version as _version
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import lifetimes
from lifetimes.utils import summary_data_from_transaction_data

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return -1

data, out, freq = sys.argv[1], sys.argv[2], sys.argv[3]
t = pq.read_table(data, columns=["customer_id", "date", "amount"])
df = pd.DataFrame({  # pandas 1.5 keeps datetimes in ns
    "customer_id": t.column("customer_id").to_numpy(),
    "date": t.column("date").to_numpy().astype("datetime64[ns]"),
    "amount": t.column("amount").to_numpy(),
})
del t
pa.default_memory_pool().release_unused()
rss_loaded = rss("VmRSS")
try:  # reset the peak RSS (VmHWM) so that the call's own peak is measured
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    hwm_reset = True
except OSError:
    hwm_reset = False
print(json.dumps({"event": "start", "wall": time.time()}), flush=True)
t0 = time.perf_counter()
s = summary_data_from_transaction_data(
    df, "customer_id", "date", monetary_value_col="amount", freq=freq
)
wall = time.perf_counter() - t0
res = {
    "event": "result",
    "summary_s": wall,
    "rows": int(len(df)),
    "customers": int(len(s)),
    "columns": list(s.columns),
    "sums": {c: float(s[c].sum()) for c in s.columns},
    "rss_loaded": rss_loaded,
    "peak": rss("VmHWM") if hwm_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10,
    "hwm_reset": hwm_reset,
    "lib_version": lifetimes.__version__,
    "env": {"python": platform.python_version(), "numpy": np.__version__,
            "pandas": pd.__version__},
}
if out != "-":
    s = s.sort_index()
    cols = {"customer_id": s.index.to_numpy()}
    cols.update({c: s[c].to_numpy() for c in s.columns})
    pq.write_table(pa.table(cols), out)
print(json.dumps(res), flush=True)
"""


def time_peer(
    path: Path, runs: int, args: argparse.Namespace, values_out: Path | None
) -> dict[str, Any]:
    times: list[float] = []
    errors: list[str] = []
    lower_bound = None
    last: dict[str, Any] = {}
    for i in range(runs):
        out = str(values_out) if (values_out is not None and i == 0) else "-"
        cmd = [str(args.peer_python), "-c", PEER_SUMMARY, str(path), out, FREQ]
        quiet(f"lifetimes run {i + 1} on {path.name}")
        try:
            with bg.Tracked():
                proc = subprocess.run(
                    cmd, capture_output=True, text=True, timeout=args.peer_timeout
                )
        except subprocess.TimeoutExpired as exc:
            stopped = time.time()
            partial = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
            start = next((e["wall"] for e in _events(partial) if e.get("event") == "start"), None)
            bound = stopped - start if start is not None else None
            lower_bound = max(lower_bound or 0.0, bound or 0.0) if bound else lower_bound
            errors.append(
                f"run {i + 1}: stopped after {args.peer_timeout:g} s (--peer-timeout)"
                + (f", {bound:.1f} s into the call" if bound else ", before the call started")
            )
            log(f"  lifetimes run {i + 1}/{runs}: {errors[-1]}")
            break
        result = next((e for e in _events(proc.stdout) if e.get("event") == "result"), None)
        if result is None:
            tail = proc.stderr.strip().splitlines()[-1:] or [""]
            errors.append(f"run {i + 1}: no result (exit {proc.returncode}) {tail[0][:300]}")
            log(f"  lifetimes run {i + 1}/{runs}: {errors[-1]}")
            continue
        times.append(float(result["summary_s"]))
        last = result
        log(f"  lifetimes run {i + 1}/{runs}: {times[-1]:.3f} s")
    return {
        "cmd": f"{args.peer_python} -c PEER_SUMMARY {path} OUT.parquet {FREQ}",
        "times": times,
        "median": median(times),
        "lower_bound": lower_bound,
        "customers": last.get("customers"),
        "sums": last.get("sums"),
        "memory": {k: last.get(k) for k in ("rss_loaded", "peak", "hwm_reset")} if last else {},
        "env": last.get("env", {}),
        "lib_version": last.get("lib_version"),
        "errors": errors,
    }


def _events(stdout: str) -> list[dict[str, Any]]:
    out = []
    for line in stdout.splitlines():
        try:
            ev = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(ev, dict):
            out.append(ev)
    return out


# ---------------------------------------------------------------------------------------------
# memory probe (runs in its own process: python bench_transactions.py --memprobe PATH KIND)
# ---------------------------------------------------------------------------------------------
def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return -1


def _reset_peak() -> bool:
    """Reset this process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def memprobe(path: Path, kind: str) -> None:
    """RSS after loading the input vs the peak during the summary. Prints one JSON line."""
    import pyarrow as pa

    out: dict[str, Any] = {"kind": kind, "maxrss_start": bg._maxrss_bytes()}
    out["core_built"] = core_built()
    if kind == "polars":
        frame: Any = pl.read_parquet(path, columns=list(COLS))
        rows = frame.height
        out["input_bytes_actual"] = int(frame.estimated_size())
    else:
        frame = load_pandas(path)
        if kind == "str":
            frame = string_ids(frame)
        rows = len(frame)
        out["input_bytes_actual"] = int(frame.memory_usage(index=False, deep=True).sum())
    gc.collect()
    pa.default_memory_pool().release_unused()
    out["rows"] = rows
    out["input_bytes"] = INPUT_BYTES_PER_ROW * rows
    out["rss_loaded"] = _status("VmRSS")
    out["maxrss_loaded"] = bg._maxrss_bytes()
    out["hwm_reset"] = _reset_peak()
    t0 = time.perf_counter()
    result = clvrs_summary(frame)
    out["seconds"] = time.perf_counter() - t0
    out["peak"] = _status("VmHWM") if out["hwm_reset"] else bg._maxrss_bytes()
    out["maxrss_end"] = bg._maxrss_bytes()
    out["rss_end"] = _status("VmRSS")
    out["customers"] = int(len(result))
    print(json.dumps(out))


def measure_memory(path: Path, kinds: tuple[str, ...]) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for kind in kinds:
        quiet(f"memory probe ({kind})")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--memprobe", str(path), kind]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-1:] or [""]
            res[kind] = {"error": f"exit {proc.returncode}: {tail[0][:300]}"}
            continue
        m = json.loads(proc.stdout.strip().splitlines()[-1])
        m["increment"] = m["peak"] - m["rss_loaded"]
        m["ratio"] = m["increment"] / m["input_bytes"]
        # The ru_maxrss view (what bench_bgnbd reports): the loading peak can hide the call's.
        m["increment_maxrss"] = m["maxrss_end"] - m["maxrss_loaded"]
        res[kind] = m
        log(f"  memory ({kind}): +{m['increment'] / 2**20:.0f} MiB = {m['ratio']:.2f}x input")
    return res


# ---------------------------------------------------------------------------------------------
# the main job (fresh processes)
# ---------------------------------------------------------------------------------------------
# Runs a command and writes its wall time, exit code, CPU time and peak RSS to argv[1] (JSON).
# The peak RSS must come from a small parent: Linux keeps the pre-exec RSS high-water mark of a
# child, which for a child forked (or vforked) from this big benchmark process is this process's
# RSS, so os.wait4 here would report this process's size, not the job's.
JOB_WRAPPER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
rc = subprocess.call(sys.argv[2:])
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
res = {"wall": wall, "rc": rc, "maxrss": ru.ru_maxrss * 1024, "cpu": ru.ru_utime + ru.ru_stime}
with open(sys.argv[1], "w") as f:
    json.dump(res, f)
"""


def _run_timed(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Run a command in a fresh process; wall time (timed by a small wrapper process around
    it, whose own start-up is not counted), exit code, stdout, stderr and its peak RSS."""
    with tempfile.TemporaryDirectory(prefix="bench_job_") as tmp:
        res_file = Path(tmp) / "result.json"
        out_file, err_file = Path(tmp) / "stdout", Path(tmp) / "stderr"
        with out_file.open("wb") as out, err_file.open("wb") as err:
            wrapper = [sys.executable, "-c", JOB_WRAPPER, str(res_file), *cmd]
            subprocess.run(wrapper, stdout=out, stderr=err, env=env, cwd=REPO, check=False)
        stderr = err_file.read_text(errors="replace")
        try:
            res = json.loads(res_file.read_text())
        except (OSError, json.JSONDecodeError):
            res = {"wall": float("nan"), "rc": -1, "maxrss": 0, "cpu": float("nan")}
        res["stdout"] = out_file.read_text(errors="replace")
        res["stderr"] = stderr
        return res


STAGE_RE = re.compile(r"^\[\s*([0-9.]+)s\] (.*)$")


def _stages(stderr: str, wall: float) -> list[dict[str, Any]]:
    marks = []
    for line in stderr.splitlines():
        m = STAGE_RE.match(line.strip())
        if m:
            marks.append((float(m.group(1)), m.group(2)))
    stages = []
    for (t, msg), nxt in zip(marks, marks[1:] + [(None, None)]):
        if nxt[0] is None:
            break
        stages.append({"stage": msg, "start": t, "seconds": nxt[0] - t})
    if marks:
        stages.append(
            {
                "stage": "interpreter start-up, imports, argument parsing and exit "
                "(wall time of the process minus the span of the messages)",
                "start": None,
                "seconds": wall - (marks[-1][0] - marks[0][0]),
            }
        )
    return stages


def main_job(path: Path, repeats: int, out_dir: Path) -> dict[str, Any]:
    out_file = out_dir / "scores.parquet"
    base = [sys.executable, "-m", "clvrs", "score", str(path)]
    base += ["--customer-col", "customer_id", "--date-col", "date", "--amount-col", "amount"]
    base += ["--freq", FREQ]
    env = {k: v for k, v in os.environ.items() if k != "CLVRS_PROGRESS"}
    quiet_cmd = [*base, "--quiet", "--out", str(out_file)]
    runs = []
    for i in range(repeats):
        quiet(f"main job run {i + 1}")
        with bg.Tracked():
            r = _run_timed(quiet_cmd, env)
        runs.append(r)
        log(f"  main job run {i + 1}/{repeats}: {r['wall']:.2f} s (exit {r['rc']})")
        if r["rc"] != 0:
            break
    res: dict[str, Any] = {
        "core_built": core_built(),
        "cmd": "python -m clvrs score "
        + " ".join(quiet_cmd[4:-1]).replace(str(REPO) + "/", "")
        + " scores.parquet",
        "times": [r["wall"] for r in runs],
        "median": median([r["wall"] for r in runs if r["rc"] == 0]),
        "maxrss": max(r["maxrss"] for r in runs),
        "cpu": median([r["cpu"] for r in runs]),
        "errors": [r["stderr"].strip()[-300:] for r in runs if r["rc"] != 0],
    }
    if out_file.exists():
        scores = pd.read_parquet(out_file)
        res["output"] = {
            "rows": int(len(scores)),
            "columns": list(scores.columns),
            "index": scores.index.name,
            "nan": int(scores.isna().sum().sum()),
        }
    # With --quiet the job prints nothing, CLVRS_PROGRESS=1 or not: drop --quiet for the
    # stage timings (the job then also prints the fitted parameters on stdout).
    quiet("main job with CLVRS_PROGRESS=1")
    prog_cmd = [*base, "--out", str(out_file)]
    with bg.Tracked():
        r = _run_timed(prog_cmd, {**env, "CLVRS_PROGRESS": "1"})
    stderr = r["stderr"].replace(str(out_file), "scores.parquet").replace(str(REPO) + "/", "")
    res["progress"] = {
        "wall": r["wall"],
        "rc": r["rc"],
        "stderr": stderr,
        "stdout": r["stdout"],
        "stages": _stages(stderr, r["wall"]),
    }
    log(f"  main job with CLVRS_PROGRESS=1: {r['wall']:.2f} s")
    # Just starting python and importing clvrs, for scale.
    imports = []
    for _ in range(3):
        quiet("import clvrs")
        imports.append(_run_timed([sys.executable, "-c", "import clvrs"], env)["wall"])
    res["import_s"] = median(imports)
    return res


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def _e(x: float | None) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.1e}"


def _check_cell(c: dict[str, Any] | None) -> str:
    if not c:
        return "not checked"
    if not c.get("same_customers") and "mismatches" not in c:
        return (
            f"**FAIL**: {c['n_other']:,} customers vs {c['n_ref']:,} "
            f"({c.get('missing', '?')} missing, {c.get('extra', '?')} extra)"
        )
    mism = sum(c["mismatches"].values())
    verdict = "PASS" if c["passed"] else "**FAIL**"
    text = (
        f"{verdict}: {c['n_other']:,} customers, frequency/recency/T mismatches {mism}, "
        f"monetary max rel. diff {_e(c['monetary_max_rel'])}"
    )
    if c.get("note"):
        text += f" ({c['note']})"
    return text


def _verdict(ok: bool, near: bool = False) -> str:
    v = "**MET**" if ok else "**NOT MET**"
    return v + (" (within 10% of the target: inside the run-to-run noise)" if near else "")


def report(args: argparse.Namespace, info: dict[str, Any], results: list[dict[str, Any]]) -> str:
    L: list[str] = []
    peers = [r["peer"] for r in results if r.get("peer")]
    peer_env = next((p["env"] for p in peers if p.get("env")), {})
    peer_ver = next((p["lib_version"] for p in peers if p.get("lib_version")), None)
    L.append(f"Run: {info['date']}; command: `{info['command']}`")
    L.append("")
    L.append(
        'Timed: `clvrs.summarize_transactions(df, "customer_id", "date", '
        f'monetary_value_col="amount", freq="{FREQ}")` on a pandas DataFrame, on a polars '
        "DataFrame, and on the pandas frame with string customer ids "
        "(`df.assign(customer_id=df.customer_id.astype(str))`, conversion not timed); the same "
        "summary by a polars lazy `group_by` pipeline (weeks from Monday by integer arithmetic "
        "on the epoch, amounts summed per (customer, week), then per customer: weeks - 1, "
        "first/last week, (total - first week's sum) / (weeks - 1), T to the last week overall; "
        "grouped on the two columns, and on one packed int64 key); and lifetimes' "
        f'`summary_data_from_transaction_data(df, "customer_id", "date", '
        f'monetary_value_col="amount", freq="{FREQ}")`.'
    )
    L.append("")
    L.append("Machine and software:")
    L.append("")
    L.append(f"- CPU: {info['cpu']}; nproc = {info['nproc']}; {info['os']}")
    L.append(
        f"- load average at start: {info['loadavg_start']}; at end: {info['loadavg_end']}; "
        f"CPU used by other processes during the timed runs: {info['other_cpu_cores']:.2f} "
        "cores on average ("
        + ", ".join(f"{r['label']}: {r['other_cpu_cores']:.2f}" for r in results)
        + (
            f", main job: {info['job_other_cpu_cores']:.2f}"
            if "job_other_cpu_cores" in info
            else ""
        )
        + "; anything well above 0 means the timings are disturbed)"
    )
    if info.get("quiet_not_reached"):
        L.append(
            "- the machine did not go quiet within --quiet-wait before: "
            + "; ".join(info["quiet_not_reached"])
            + " (ran anyway)"
        )
    if info.get("core_rebuilt"):
        fresh = [
            f"memory probe ({k}): {m['core_built']}"
            for k, m in info.get("memory", {}).items()
            if m.get("core_built")
        ]
        if info.get("job"):
            fresh.append(f"main job: {info['job']['core_built']}")
        L.append(
            f"- note: the clvrs extension file was replaced at {info['core_rebuilt']}, during the "
            "run; the in-process timings are for the build loaded at the start "
            f"({info['clvrs_core_built']}); the fresh processes loaded the build on disk when "
            "they started (" + "; ".join(fresh) + ")"
        )
    L.append(
        f"- clvrs {info['clvrs']} (commit {info['clvrs_commit']}, core built "
        f"{info['clvrs_core_built']}), threads (n_jobs) = {info['clvrs_threads']}; "
        f"Python {info['python']}, numpy {info['numpy']}, pandas {info['pandas']}, polars "
        f"{info['polars']} ({info['polars_threads']} threads), pyarrow {info['pyarrow']}"
    )
    if peer_env:
        L.append(
            f"- lifetimes {peer_ver}: Python {peer_env.get('python')}, numpy "
            f"{peer_env.get('numpy')}, pandas {peer_env.get('pandas')} "
            f"(single-threaded; `{info['peer_python']}`)"
        )
    L.append(
        f"- runs: clvrs and polars {args.repeats} each (round-robin), lifetimes "
        + (
            "skipped"
            if args.skip_peer
            else f"{args.peer_repeats} (below {BIG_ROWS // 1_000_000}M rows) / "
            f"{args.peer_repeats_big} (from {BIG_ROWS // 1_000_000}M rows), each in a fresh "
            f"process, stopped after {args.peer_timeout:.0f} s"
        )
        + "; medians shown. Only the call is timed (data loading excluded); clvrs' time "
        "includes its input conversion and the DataFrame it returns"
    )
    L.append(
        "- data (gitignored; `customer_id` int64, `date` datetime64[ms], `amount` float64, "
        "sorted by date; generator seed 42, its default): "
        + "; ".join(
            f"{r['label']}: `{r['file']}`, {r['customers']:,} customers, from "
            f"`{' '.join(r['gen_command'])}`"
            for r in results
        )
    )
    L.append("")
    L.append(
        "| data | rows | customers | call | median s | min s | rows/s | "
        "lifetimes / this | this / clvrs pandas |"
    )
    L.append("|---|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in results:
        c = r["timings"]
        base = c["median"]["clvrs_pandas"]
        p = r.get("peer")
        pmed = p["median"] if p else None
        pbound = p.get("lower_bound") if p else None
        for v in VARIANTS:
            t = c["median"][v]
            vs_peer = pmed / t if pmed is not None and np.isfinite(pmed) else None
            vs_peer_s = fmt_ratio(vs_peer)
            if vs_peer is None and pbound:
                vs_peer_s = f">= {fmt_ratio(pbound / t)}"
            L.append(
                f"| {r['label']} | {r['rows']:,} | {r['customers']:,} | {LABEL[v]} | "
                f"{fmt_s(t)} | {fmt_s(min(c['times'][v]))} | {r['rows'] / t / 1e6:.1f}M | "
                f"{vs_peer_s} | {t / base:.2f}x |"
            )
        if p:
            if p["times"]:
                t = pmed
                cell = fmt_s(t)
                mn = fmt_s(min(p["times"]))
                rate = f"{r['rows'] / t / 1e6:.2f}M"
                rel = f"{t / base:.1f}x"
            elif pbound:
                cell = f">= {fmt_s(pbound)} (stopped)"
                mn, rate, rel = "n/a", f"<= {r['rows'] / pbound / 1e6:.2f}M", ""
                rel = f">= {pbound / base:.1f}x"
            else:
                cell, mn, rate, rel = "failed", "n/a", "n/a", ""
            L.append(
                f"| {r['label']} | {r['rows']:,} | {r['customers']:,} | {LABEL['lifetimes']} "
                f"({len(p['times'])} run{'s' if len(p['times']) != 1 else ''}) | {cell} | "
                f"{mn} | {rate} | 1 | {rel} |"
            )
    L.append("")

    L.append(
        f"Agreement (frequency, recency and T must be equal, monetary value within "
        f"{MONETARY_RTOL:g} relative; the reference is clvrs on the pandas frame):"
    )
    L.append("")
    L.append("| data | compared | result |")
    L.append("|---|---|---|")
    for r in results:
        for key, what in (
            ("clvrs_polars", "clvrs, polars input"),
            ("clvrs_str", "clvrs, string ids (ids mapped to str)"),
            ("polars_groupby", "polars group_by (customer, week)"),
            ("polars_packed", "polars packed key"),
            ("lifetimes", "lifetimes (first run)"),
        ):
            chk = r["checks"].get(key)
            if chk is None and key == "lifetimes" and not r.get("peer"):
                continue
            L.append(f"| {r['label']} | {what} | {_check_cell(chk)} |")
    L.append("")
    notes = []
    for r in results:
        s = r["checks"].get("clvrs_str") or {}
        if s and not s.get("sorted_as_strings", True):
            notes.append(f"{r['label']}: the string-id result is not sorted by id")
        p = r.get("peer")
        if p:
            for e in p["errors"]:
                notes.append(f"lifetimes on {r['label']}: {e}")
            mem = p.get("memory") or {}
            if mem.get("peak") and mem.get("rss_loaded"):
                inc = mem["peak"] - mem["rss_loaded"]
                notes.append(
                    f"lifetimes on {r['label']}: peak RSS {mem['peak'] / 2**20:,.0f} MiB, "
                    f"{inc / 2**20:,.0f} MiB over its loaded input = "
                    f"{inc / (INPUT_BYTES_PER_ROW * r['rows']):.1f}x the 24 bytes/row (its "
                    "dates are datetime64[ns]; same method as the clvrs memory probe below)"
                )
    if notes:
        L.extend(f"- {x}" for x in notes)
        L.append("")

    mem = info.get("memory")
    if mem:
        big = info["memory_rows"]
        L.append(
            f"Peak memory of the clvrs summary on {big:,} rows (fresh process per input; the "
            "peak RSS (`VmHWM`, reset with `/proc/self/clear_refs` after loading, so that the "
            "parquet reader's own peak does not hide the call's) minus the RSS with the input "
            f"loaded; input = {INPUT_BYTES_PER_ROW} bytes/row = "
            f"{INPUT_BYTES_PER_ROW * big / 2**20:.0f} MiB):"
        )
        L.append("")
        L.append(
            "| input | RSS loaded MiB | peak MiB | increment MiB | increment / input | "
            "input's own size MiB | call s |"
        )
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for kind, what in (
            ("pandas", "pandas, int64 ids"),
            ("polars", "polars, int64 ids"),
            ("str", "pandas, string ids"),
        ):
            m = mem.get(kind)
            if not m:
                continue
            if "error" in m:
                L.append(f"| {what} | failed: {m['error']} |" + " |" * 5)
                continue
            mib = 2**20
            L.append(
                f"| {what} | {m['rss_loaded'] / mib:,.0f} | {m['peak'] / mib:,.0f} | "
                f"{m['increment'] / mib:,.0f} | {m['ratio']:.2f}x | "
                f"{m['input_bytes_actual'] / mib:,.0f} | {m['seconds']:.3f} |"
            )
        L.append("")
        if not all(m.get("hwm_reset", False) for m in mem.values() if "error" not in m):
            L.append("(Peak RSS could not be reset here: the increments are `ru_maxrss` based.)")
            L.append("")

    ph = info.get("phases")
    if ph:
        m = ph["median"]
        L.append(
            f"Where clvrs' summary time goes on {info['phases_rows']:,} rows "
            f"({ph['customers']:,} customers; median of {args.repeats}; private steps of "
            f"`summarize_transactions`; threads = {ph['threads']} unless stated; the string "
            f"ids are `{ph['str_dtype']}`):"
        )
        L.append("")
        L.append("| step | median s |")
        L.append("|---|---:|")
        rows = [
            (
                "input to arrays, pandas int64 ids (`_read_log`: dense ids need no hashing)",
                m["read_pandas"],
            ),
            ("input to arrays, polars (`_read_log`, converts to pandas first)", m["read_polars"]),
            ("  of which `polars.DataFrame.to_pandas()`", m["polars_to_pandas"]),
            (
                "input to arrays, string ids (`_read_log`: factorise + sort the distinct ids)",
                m["read_str"],
            ),
            ("  of which `pd.factorize` of the string ids", m["factorize_str"]),
            ("Rust core (`_core.summarize_transactions`)", m["core"]),
            ("Rust core, 1 thread", m["core_1thread"]),
            ("Rust core on the string-id codes", m["core_str"]),
            ("result frame, pandas", m["frame_pandas"]),
            ("result frame, polars", m["frame_polars"]),
            ("result frame, string ids", m["frame_str"]),
        ]
        L.extend(f"| {name} | {fmt_s(v)} |" for name, v in rows)
        L.append("")

    job = info.get("job")
    if job:
        L.append(
            f"The main job on {info['job_rows']:,} rows: `{job['cmd']}` (fresh process each run, "
            "wall time from start to exit, so it includes interpreter start-up, imports and "
            "reading the parquet file; timed by a small wrapper process, which also gives the "
            f"job's peak RSS): median {fmt_s(job['median'])} s over "
            f"{len(job['times'])} runs ("
            + ", ".join(f"{t:.2f}" for t in job["times"])
            + f"), CPU {job['cpu']:.1f} s, peak RSS {job['maxrss'] / 2**20:,.0f} MiB "
            f"({job['maxrss'] / (INPUT_BYTES_PER_ROW * info['job_rows']):.1f}x the input's "
            f"{INPUT_BYTES_PER_ROW} bytes/row)"
            + (
                f"; output {job['output']['rows']:,} rows x {len(job['output']['columns'])} "
                f"columns ({', '.join(job['output']['columns'])}), {job['output']['nan']} NaN"
                if job.get("output")
                else ""
            )
            + f'. `python -c "import clvrs"` alone takes {job["import_s"]:.2f} s.'
        )
        for e in job["errors"]:
            L.append(f"- main job ERROR: {e}")
        L.append("")
        pr = job.get("progress")
        if pr:
            L.append(
                f"Stage timings with `CLVRS_PROGRESS=1` (one run without `--quiet`, which "
                f"turns the progress messages off even with the variable set; wall "
                f"{pr['wall']:.2f} s, exit {pr['rc']}):"
            )
            L.append("")
            L.append("| stage (progress message) | s |")
            L.append("|---|---:|")
            for s in pr["stages"]:
                L.append(f"| {s['stage'].replace('|', '/')} | {s['seconds']:.2f} |")
            L.append("")
            L.append("```text")
            L.append(pr["stderr"].rstrip())
            L.append("```")
            L.append("")

    # targets, on the largest size
    if results:
        r = max(results, key=lambda x: x["rows"])
        c = r["timings"]["median"]
        L.append(f"Targets (from the issue), on {r['label']}:")
        L.append("")
        p = r.get("peer")
        if p and p["times"]:
            ratio = p["median"] / c["clvrs_pandas"]
            near = abs(ratio / SPEED_TARGET - 1) < 0.1
            L.append(
                f"- summary at least {SPEED_TARGET:.0f}x faster than lifetimes: "
                f"{fmt_ratio(ratio)} -> {_verdict(ratio >= SPEED_TARGET, near)}"
            )
        elif p and p.get("lower_bound"):
            ratio = p["lower_bound"] / c["clvrs_pandas"]
            L.append(
                f"- summary at least {SPEED_TARGET:.0f}x faster than lifetimes: lifetimes did "
                f"not finish; at least {fmt_ratio(ratio)} -> "
                + (_verdict(True) if ratio >= SPEED_TARGET else "**UNDECIDED** (lower bound)")
            )
        fastest = min(("polars_groupby", "polars_packed"), key=lambda k: c[k])
        ratio = c[fastest] / c["clvrs_pandas"]
        near = abs(ratio - 1) < 0.1
        L.append(
            f"- summary no slower than the fastest polars group_by ({LABEL[fastest]}): "
            f"polars / clvrs = {ratio:.2f}x -> {_verdict(ratio >= 1.0, near)}"
        )
        pm = (info.get("memory") or {}).get("pandas")
        if pm and "ratio" in pm and info["memory_rows"] == r["rows"]:
            L.append(
                f"- peak memory at most {MEMORY_TARGET:.0f}x the input: {pm['ratio']:.2f}x "
                f"(+{pm['increment'] / 2**20:,.0f} MiB) -> {_verdict(pm['ratio'] <= MEMORY_TARGET)}"
            )
        if job and info.get("job_rows") == r["rows"]:
            med = job["median"]
            ok = np.isfinite(med) and med < JOB_TARGET_S
            L.append(f"- main job under {JOB_TARGET_S:.0f} s: {fmt_s(med)} s -> {_verdict(ok)}")
        L.append("")
    return "\n".join(L)


def update_doc(path: Path, text: str) -> None:
    replace_block(path, text, DOC_BEGIN, DOC_END, DOC_HEADING)
    log(f"updated {path}")


# ---------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    global QUIET_WAIT
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--sizes",
        default="1m,10m",
        help="comma-separated log sizes in rows (100k, 1m, 10m, 250000); default %(default)s",
    )
    ap.add_argument(
        "--repeats", type=int, default=5, help="clvrs and polars runs per variant (default 5)"
    )
    ap.add_argument(
        "--peer-repeats", type=int, default=3, help="lifetimes runs below 5M rows (default 3)"
    )
    ap.add_argument(
        "--peer-repeats-big",
        type=int,
        default=2,
        help="lifetimes runs from 5M rows on (default 2)",
    )
    ap.add_argument("--skip-peer", action="store_true", help="do not run lifetimes")
    ap.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON)
    ap.add_argument(
        "--peer-timeout",
        type=float,
        default=900,
        help="seconds per lifetimes run; a stopped run is reported as a lower bound",
    )
    ap.add_argument("--skip-memory", action="store_true", help="skip the peak-memory probes")
    ap.add_argument("--skip-phases", action="store_true", help="skip the clvrs time breakdown")
    ap.add_argument("--skip-job", action="store_true", help="skip the main-job timings")
    ap.add_argument("--job-repeats", type=int, default=3, help="main-job runs (default 3)")
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="on a shared machine: before each timed block, wait up to this long for other "
        "processes to use < 0.25 cores (default 0: do not wait)",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write raw results here")
    ap.add_argument(
        "--update-doc",
        type=Path,
        default=None,
        help="rewrite this benchmark's generated section of this Markdown file "
        "(e.g. BENCHMARKS.md)",
    )
    ap.add_argument("--memprobe", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.memprobe is not None:
        memprobe(Path(args.memprobe[0]), args.memprobe[1])
        return 0
    QUIET_WAIT = args.quiet_wait
    sizes = [parse_rows(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes:
        ap.error("--sizes: nothing to run")
    if not args.skip_peer and not args.peer_python.exists():
        ap.error(
            f"peer python {args.peer_python} not found: run "
            f"`bash {SHARED}/setup_peer.sh {DEFAULT_PEER_PYTHON.parent.parent}` or --skip-peer"
        )
    import pyarrow

    info = bg.machine_info(None, args.peer_python)
    info.update(polars=pl.__version__, polars_threads=pl.thread_pool_size())
    info["pyarrow"] = pyarrow.__version__
    info["command"] = "python " + " ".join(
        [os.path.relpath(Path(__file__).resolve(), Path.cwd())] + sys.argv[1:]
    )
    # Prepare every data file first, so that no timed section waits for one.
    paths = {n: ensure_tx(n) for n in sizes}
    biggest = max(sizes)
    # The memory probes run first, before this process holds any large data.
    if not args.skip_memory:
        log(f"memory probes on {biggest:,} rows")
        info["memory"] = measure_memory(paths[biggest], ("pandas", "polars", "str"))
        info["memory_rows"] = biggest

    results: list[dict[str, Any]] = []
    whole = {"other_s": 0.0, "wall_s": 0.0}
    with tempfile.TemporaryDirectory(prefix="bench_transactions_") as tmp:
        tmpdir = Path(tmp)
        for n in sizes:
            label = size_label(n)
            path = paths[n]
            bg.disturbance_reset()
            frames: dict[str, Any] = {"pandas": load_pandas(path)}
            frames["polars"] = pl.read_parquet(path, columns=list(COLS))
            frames["str"] = string_ids(frames["pandas"])
            entry: dict[str, Any] = {
                "label": label,
                "rows": n,
                "file": str(path.relative_to(REPO)),
                "gen_command": gen_command(n),
            }
            log(f"{label}: clvrs and polars x{args.repeats}")
            timings, outputs = time_in_process(frames, args.repeats)
            entry["timings"] = timings
            log("  medians: " + ", ".join(f"{k} {v:.3f}s" for k, v in timings["median"].items()))
            ref = outputs["clvrs_pandas"]
            entry["customers"] = int(len(ref))
            entry["checks"] = {
                "clvrs_polars": compare(ref, outputs["clvrs_polars"]),
                "clvrs_str": compare_str(ref, outputs["clvrs_str"]),
                "polars_groupby": compare(ref, outputs["polars_groupby"]),
                "polars_packed": compare(ref, outputs["polars_packed"]),
            }
            for k, chk in entry["checks"].items():
                log(f"  check {k}: {'pass' if chk.get('passed') else 'FAIL'}")
            del outputs
            if n == biggest and not args.skip_phases:
                log("  clvrs time breakdown")
                info["phases"] = phases(frames, args.repeats)
                info["phases_rows"] = n
            del frames
            gc.collect()
            if not args.skip_peer:
                runs = args.peer_repeats_big if n >= BIG_ROWS else args.peer_repeats
                log(f"  lifetimes x{runs}")
                out = tmpdir / f"lifetimes_{rows_label(n)}.parquet"
                entry["peer"] = time_peer(path, runs, args, out)
                if out.exists():
                    peer = pd.read_parquet(out).set_index("customer_id")
                    entry["checks"]["lifetimes"] = compare(ref, peer)
                    log(
                        "  check lifetimes: "
                        + ("pass" if entry["checks"]["lifetimes"]["passed"] else "FAIL")
                    )
                    del peer
            whole["other_s"] += bg.DISTURBANCE["other_s"]
            whole["wall_s"] += bg.DISTURBANCE["wall_s"]
            entry["other_cpu_cores"] = bg.disturbance_reset()
            results.append(entry)
            del ref
            gc.collect()
        if not args.skip_job:
            log(f"main job on {biggest:,} rows x{args.job_repeats}")
            info["job"] = main_job(paths[biggest], args.job_repeats, tmpdir)
            info["job_rows"] = biggest
            info["job_other_cpu_cores"] = bg.disturbance_reset()

    built_end = core_built()
    if built_end != info["clvrs_core_built"]:
        info["core_rebuilt"] = built_end
        log(f"note: the clvrs core was rebuilt during the run ({built_end}); not measured")
    info["quiet_not_reached"] = list(bv.NOT_QUIET)
    info["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    info["other_cpu_cores"] = whole["other_s"] / whole["wall_s"] if whole["wall_s"] else 0.0
    text = report(args, info, results)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"info": info, "results": results}, indent=1, default=str))
    if args.update_doc:
        update_doc(args.update_doc, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
