#!/usr/bin/env python3
"""Transaction summaries of a log written as text (string customer ids, ISO date strings):
this build of clvrs against another build (by default main's, ``/work/venv``) and polars, in
one run.

Timed, median of --repeats calls per process, processes alternating between the two builds
(--rounds of each) so that the machine's load hits both alike:

  clvrs, text ids + text dates   ``clvrs.summarize_transactions(df, "customer_id", "date",
                                 monetary_value_col="amount", freq="W")`` on a pandas frame whose
                                 ``customer_id`` and ``date`` are ``str`` (what ``read_csv`` and
                                 ``read_parquet`` give), dates as ``YYYY-MM-DD``
  clvrs, text ids                the same with ``date`` as datetime64
  clvrs, polars text             the text frame as a polars DataFrame (String columns)
  polars                         the fastest polars pipeline found for the same columns on the
                                 text frame: dates parsed with ``str.to_date("%Y-%m-%d")``, weeks
                                 from Monday by integer arithmetic, amounts summed per
                                 (customer, week), then per customer (see
                                 bench_transactions.py) -- and on the frame with datetime dates

Checked: every clvrs result of both builds is the same frame (index, columns, values, dtypes)
as this build's result on the log with integer ids and datetime dates (ids mapped to str), and
polars' result agrees with it (frequency, recency, T equal; monetary value to 1e-9).

Data: bench/data/tx_10m.parquet (see bench_transactions.py), with the ids and dates written
as text once into bench/data/tx_10m_text.parquet (gitignored).

Examples
  python bench/bench_text_intake.py --rows 1m --rounds 2 --repeats 2
  python bench/bench_text_intake.py --json bench/data/text_intake.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "bench" / "data"
SHARED = Path("/work/shared/bench")
GEN_ARGS = ("--alpha", "2.0", "--a", "0.3", "--b", "6", "--r", "0.5")
FREQ = "W"
LABEL = {
    "clvrs_text": "clvrs, pandas, text ids + text dates",
    "clvrs_text_ids": "clvrs, pandas, text ids + datetime dates",
    "clvrs_polars_text": "clvrs, polars, text ids + text dates",
    "polars_text": "polars lazy group_by, text ids + text dates",
    "polars_text_ids": "polars lazy group_by, text ids + datetime dates",
}


def rows_label(n: int) -> str:
    return f"{n // 1_000_000}m" if n % 1_000_000 == 0 else f"{n // 1000}k"


def paths(n: int) -> tuple[Path, Path]:
    label = rows_label(n)
    return DATA / f"tx_{label}.parquet", DATA / f"tx_{label}_text.parquet"


def ensure_data(n: int) -> None:
    raw, text = paths(n)
    if not raw.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        customers = str(int(round(n * 0.12)))
        cmd = [sys.executable, str(SHARED / "gen_synth.py"), "transactions", "-n", customers]
        cmd += ["--rows", str(n), *GEN_ARGS, "-o", str(raw)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    if not text.exists():
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        table = pq.read_table(raw, columns=["customer_id", "date", "amount"])
        out = pa.table(
            {
                "customer_id": pc.cast(table["customer_id"], pa.string()),
                "date": pc.strftime(table["date"], format="%Y-%m-%d"),
                "amount": table["amount"],
            }
        )
        pq.write_table(out, text)


def load(n: int) -> dict[str, Any]:
    import pandas as pd
    import polars as pl

    raw, text = paths(n)
    frame = pd.read_parquet(text)
    dated = frame.assign(date=pd.read_parquet(raw, columns=["date"])["date"])
    return {"text": frame, "text_ids": dated, "polars_text": pl.from_pandas(frame)}


def child(n: int, repeats: int, out: Path | None, polars: bool) -> None:
    """Time this interpreter's clvrs (and polars) on the text log; print one JSON line."""
    import gc

    import clvrs

    frames = load(n)

    def summary(frame: Any) -> Any:
        return clvrs.summarize_transactions(
            frame, "customer_id", "date", monetary_value_col="amount", freq=FREQ
        )

    calls = {
        "clvrs_text": lambda: summary(frames["text"]),
        "clvrs_text_ids": lambda: summary(frames["text_ids"]),
        "clvrs_polars_text": lambda: summary(frames["polars_text"]),
    }
    if polars:
        calls["polars_text"] = lambda: polars_summary(frames["polars_text"], parse=True)
        calls["polars_text_ids"] = lambda: polars_summary(pl_frame(frames["text_ids"]), parse=False)
    times: dict[str, list[float]] = {k: [] for k in calls}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for key, call in calls.items():
            gc.collect()
            start = time.perf_counter()
            results[key] = call()
            times[key].append(time.perf_counter() - start)
    if out is not None:
        results["clvrs_text"].to_parquet(out)
        if polars:
            results["polars_text"].write_parquet(str(out) + ".polars")
    print(
        json.dumps(
            {
                "times": times,
                "clvrs": clvrs.__file__,
                "ids_dtype": str(frames["text"]["customer_id"].dtype),
            }
        )
    )


_PL_CACHE: dict[int, Any] = {}


def pl_frame(frame: Any) -> Any:
    import polars as pl

    key = id(frame)
    if key not in _PL_CACHE:
        _PL_CACHE[key] = pl.from_pandas(frame)
    return _PL_CACHE[key]


def polars_summary(frame: Any, *, parse: bool) -> Any:
    import polars as pl

    week_ms, shift_ms = 7 * 86_400_000, 3 * 86_400_000
    date = pl.col("date").str.to_date("%Y-%m-%d") if parse else pl.col("date")
    week = ((date.cast(pl.Datetime("ms")).dt.epoch("ms") + shift_ms) // week_ms).alias("week")
    lazy = frame.lazy().with_columns(week)
    end_week = lazy.select(pl.col("week").max()).collect().item()
    return (
        lazy.group_by("customer_id", "week")
        .agg(pl.col("amount").sum())
        .group_by("customer_id")
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
        .collect()
    )


def run_child(python: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    proc = subprocess.run(
        [python, __file__, *args], capture_output=True, text=True, check=True, env=env
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", default="10m", help="10m (default) or 1m")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-python", default="/work/venv/bin/python")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    n = {"10m": 10_000_000, "1m": 1_000_000}[args.rows]
    if args.child is not None:
        out = None if args.child[1] == "-" else Path(args.child[1])
        child(n, int(args.child[0]), out, args.child[2] == "polars")
        return 0
    ensure_data(n)
    import pandas as pd

    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    builds = {"baseline": args.baseline_python, "this build": sys.executable}
    medians: dict[str, dict[str, list[float]]] = {b: {} for b in builds}
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        outs = {b: Path(tmp) / f"{i}.parquet" for i, b in enumerate(builds)}
        files: dict[str, str] = {}
        for r in range(args.rounds):
            for build, python in builds.items():
                polars = "polars" if build == "this build" else "no"
                out = str(outs[build]) if r == 0 else "-"
                res = run_child(
                    python, ["--rows", args.rows, "--child", str(args.repeats), out, polars], env
                )
                files[build] = res["clvrs"]
                for key, values in res["times"].items():
                    medians[build].setdefault(key, []).append(statistics.median(values))
                print(
                    f"round {r + 1} {build}: "
                    + ", ".join(
                        f"{k} {statistics.median(v):.3f} s" for k, v in res["times"].items()
                    ),
                    file=sys.stderr,
                )
        # Agreement: both builds' text summaries against this build's integer-id summary.
        import numpy as np

        import clvrs

        raw, _ = paths(n)
        reference = clvrs.summarize_transactions(
            pd.read_parquet(raw), "customer_id", "date", monetary_value_col="amount", freq=FREQ
        )
        reference.index = reference.index.astype(str)
        reference = reference.sort_index()
        checks = []
        for build, path in outs.items():
            got = pd.read_parquet(path)
            same = got.index.equals(reference.index) and all(
                np.array_equal(got[c].to_numpy(), reference[c].to_numpy()) for c in got.columns
            )
            checks.append(f"{build}: {'identical' if same else 'DIFFERENT'} ({len(got):,} rows)")
        polars_out = pd.read_parquet(str(outs["this build"]) + ".polars").set_index("customer_id")
        equal = all(
            np.array_equal(polars_out[c].to_numpy(), reference[c].to_numpy())
            for c in ("frequency", "recency", "T")
        ) and polars_out.index.equals(reference.index)
        rel = np.max(
            np.abs(polars_out["monetary_value"].to_numpy() - reference["monetary_value"])
            / np.maximum(np.abs(reference["monetary_value"].to_numpy()), 1e-300)
        )
        checks.append(
            f"polars: frequency/recency/T {'equal' if equal else 'DIFFERENT'}, monetary value "
            f"max rel. diff {rel:.1e}"
        )
    load_end = os.getloadavg()[0]
    command = " ".join([os.path.relpath(__file__)] + (argv or sys.argv[1:]))
    lines = [
        f"Run: {started}; command: `python {command}`;"
        f" {n:,} rows; {args.rounds} rounds alternating the two builds, each a fresh process "
        f"timing every call {args.repeats} times (median per process; the table gives the "
        f"median over rounds and the range); load average {load_start:.2f} at start, "
        f"{load_end:.2f} at end. Baseline: `{files['baseline']}` (`{builds['baseline']}`); "
        f"this build: `{files['this build']}`.",
        "",
        "| call | baseline s | this build s | baseline / this build | rounds (this build) |",
        "|---|---:|---:|---:|---|",
    ]
    out: dict[str, Any] = {"medians": medians, "checks": checks}
    for key in LABEL:
        new = medians["this build"].get(key)
        if not new:
            continue
        old = medians["baseline"].get(key)
        b = statistics.median(new)
        a = statistics.median(old) if old else float("nan")
        lines.append(
            f"| {LABEL[key]} | {a:.3f} | {b:.3f} | {a / b:.2f}x | {min(new):.3f} - {max(new):.3f} |"
        )
    lines += [
        "",
        "Agreement with the summary of the same log with integer ids and datetime "
        "dates (ids mapped to str): " + "; ".join(checks) + ".",
    ]
    text = "\n".join(lines)
    print(text)
    if args.json:
        out["report"] = text
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
