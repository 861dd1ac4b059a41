#!/usr/bin/env python3
"""Small data: the notebook round trip on CDNOW (2,357 customers), clvrs and lifetimes, one run.

The round trip a user types in a notebook, timed step by step with time.perf_counter:

  fit                 BG/NBD fit on the CDNOW summary (clvrs ``BetaGeoModel().fit(df)``;
                      lifetimes ``BetaGeoFitter().fit(frequency, recency, T)``)
  expected purchases  ``expected_purchases(df, t=52)`` /
                      ``conditional_expected_number_of_purchases_up_to_time(52, f, r, T)``
  P(alive)            ``probability_alive(df)`` / ``conditional_probability_alive(f, r, T)``
  Gamma-Gamma fit     ``GammaGammaModel().fit(df)`` / ``GammaGammaFitter().fit`` on the repeat
                      buyers
  CLV                 ``customer_lifetime_value(bg, gg, df, time=12, discount_rate=0.01)`` /
                      ``gg.customer_lifetime_value(bgf, f, r, T, mv, time=12,
                      discount_rate=0.01, freq="W")``
  round trip          all five, in order (clvrs: the wall time of the sequence)

Both libraries run warm: each process repeats the whole sequence --repeats times and the
medians of the calls are kept, so that one-off costs (imports, the first call's thread pool)
are not counted for either. lifetimes runs in its own virtual environment (--peer-python), one
fresh process per round; clvrs in this process. Rounds alternate (clvrs, lifetimes, clvrs, ...)
so that a change in the machine's load hits both; the report gives the median over all calls
and the lifetimes/clvrs ratio of those medians, and the range of the per-round ratios. Other
sessions may load the machine: read the ratios and medians, not single seconds.

Checked: both libraries' fitted parameters, and the sums of their expected purchases, P(alive)
and CLV (relative differences).

Examples
  python bench/bench_small.py                     # 5 rounds of 50 (clvrs) and 10 (lifetimes)
  python bench/bench_small.py --rounds 3 --repeats 20 --peer-repeats 5 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PEER_CANDIDATES = (
    REPO / ".venv-peer" / "bin" / "python",
    Path("/work/main/.venv-peer/bin/python"),
)
STEPS = ("fit", "expected_purchases", "probability_alive", "gg_fit", "clv")
LABEL = {
    "fit": "BG/NBD fit",
    "expected_purchases": "expected purchases (t = 52)",
    "probability_alive": "P(alive)",
    "gg_fit": "Gamma-Gamma fit",
    "clv": "CLV (12 months, 1% a month)",
    "round_trip": "round trip (all five)",
}
ROUND_TRIP_TARGET_S = 0.005
PREDICTION_TARGET = 10.0  # lifetimes / clvrs for each prediction


def peer(repeats: int) -> None:
    """The lifetimes side, run in the peer environment: prints one JSON line."""
    import warnings

    import numpy as np
    from lifetimes import BetaGeoFitter, GammaGammaFitter
    from lifetimes.datasets import load_cdnow_summary_data_with_monetary_value

    df = load_cdnow_summary_data_with_monetary_value()
    f, r, T, mv = df["frequency"], df["recency"], df["T"], df["monetary_value"]
    times: dict[str, list[float]] = {k: [] for k in (*STEPS, "round_trip")}
    out: dict[str, Any] = {}
    for _ in range(repeats):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            bgf = BetaGeoFitter().fit(f, r, T)
            t1 = time.perf_counter()
            expected = bgf.conditional_expected_number_of_purchases_up_to_time(52, f, r, T)
            t2 = time.perf_counter()
            alive = bgf.conditional_probability_alive(f, r, T)
            t3 = time.perf_counter()
            repeat = df[df["frequency"] > 0]
            ggf = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"])
            t4 = time.perf_counter()
            clv = ggf.customer_lifetime_value(
                bgf, f, r, T, mv, time=12, discount_rate=0.01, freq="W"
            )
            t5 = time.perf_counter()
        for key, (a, b) in zip(STEPS, [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5)]):
            times[key].append(b - a)
        times["round_trip"].append(t5 - t0)
        out = {
            "params": {k: float(v) for k, v in bgf.params_.items()},
            "gg_params": {k: float(v) for k, v in ggf.params_.items()},
            "sums": {
                "expected_purchases": float(np.sum(expected)),
                "probability_alive": float(np.sum(alive)),
                "clv": float(np.sum(clv)),
            },
        }
    import lifetimes

    out.update(times=times, version=lifetimes.__version__, n=int(len(df)))
    print(json.dumps(out))


def clvrs_round(repeats: int) -> dict[str, Any]:
    import numpy as np

    import clvrs

    data = clvrs.datasets.load_cdnow_summary()
    times: dict[str, list[float]] = {k: [] for k in (*STEPS, "round_trip")}
    out: dict[str, Any] = {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        bg = clvrs.BetaGeoModel().fit(data)
        t1 = time.perf_counter()
        expected = bg.expected_purchases(data, t=52)
        t2 = time.perf_counter()
        alive = bg.probability_alive(data)
        t3 = time.perf_counter()
        gg = clvrs.GammaGammaModel().fit(data)
        t4 = time.perf_counter()
        clv = clvrs.customer_lifetime_value(bg, gg, data, time=12, discount_rate=0.01)
        t5 = time.perf_counter()
        for key, (a, b) in zip(STEPS, [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5)]):
            times[key].append(b - a)
        times["round_trip"].append(t5 - t0)
        out = {
            "params": {k: float(v) for k, v in bg.params_.items()},
            "gg_params": {k: float(v) for k, v in gg.params_.items()},
            "sums": {
                "expected_purchases": float(np.sum(expected)),
                "probability_alive": float(np.sum(alive)),
                "clv": float(np.sum(clv)),
            },
        }
    out.update(times=times, version=clvrs.__version__, n=int(len(data)))
    return out


def machine() -> str:
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        return "\n".join(text.splitlines()[:10])
    except (OSError, subprocess.CalledProcessError):
        return platform.processor()


def fmt(seconds: float) -> str:
    return f"{seconds * 1e3:.3f} ms" if seconds < 1 else f"{seconds:.3f} s"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=50, help="clvrs sequences per round")
    ap.add_argument("--peer-repeats", type=int, default=10, help="lifetimes sequences per round")
    ap.add_argument("--peer-python", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--peer", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.peer is not None:
        peer(args.peer)
        return 0
    peer_python = args.peer_python or next((p for p in PEER_CANDIDATES if p.exists()), None)
    if peer_python is None:
        raise SystemExit("no lifetimes environment: run /work/shared/bench/setup_peer.sh")
    import clvrs
    from clvrs import _core

    command = "python " + " ".join([os.path.relpath(__file__)] + (argv or sys.argv[1:]))
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_start = os.getloadavg()
    ours: dict[str, list[float]] = {k: [] for k in (*STEPS, "round_trip")}
    theirs: dict[str, list[float]] = {k: [] for k in (*STEPS, "round_trip")}
    round_ratios: dict[str, list[float]] = {k: [] for k in (*STEPS, "round_trip")}
    clvrs_round(3)  # warm-up: imports, thread pool, first calls
    last: dict[str, Any] = {}
    for i in range(args.rounds):
        mine = clvrs_round(args.repeats)
        proc = subprocess.run(
            [str(peer_python), __file__, "--peer", str(args.peer_repeats)],
            capture_output=True,
            text=True,
            check=True,
        )
        other = json.loads(proc.stdout.strip().splitlines()[-1])
        for key in ours:
            ours[key] += mine["times"][key]
            theirs[key] += other["times"][key]
            round_ratios[key].append(
                statistics.median(other["times"][key]) / statistics.median(mine["times"][key])
            )
        last = {"clvrs": mine, "lifetimes": other}
        print(
            f"round {i + 1}/{args.rounds}: round trip clvrs "
            f"{fmt(statistics.median(mine['times']['round_trip']))}, lifetimes "
            f"{fmt(statistics.median(other['times']['round_trip']))}",
            file=sys.stderr,
        )
    load_end = os.getloadavg()
    lines = [
        f"Run: {started}; command: `{command}`; clvrs {clvrs.__version__} "
        f"(core `{Path(_core.__file__).name}`), threads = {_core.resolve_n_jobs(None)}; "
        f"lifetimes {last['lifetimes']['version']} (`{peer_python}`); "
        f"{args.rounds} alternating rounds, clvrs {args.repeats} and lifetimes "
        f"{args.peer_repeats} sequences per round (warm: medians of all calls); load average "
        f"{load_start[0]:.2f} at start, {load_end[0]:.2f} at end.",
        "",
        "```text",
        machine(),
        "```",
        "",
        "| step | clvrs median | lifetimes median | lifetimes / clvrs | per-round ratios |",
        "|---|---:|---:|---:|---|",
    ]
    result: dict[str, Any] = {"command": command, "started": started, "steps": {}}
    for key in (*STEPS, "round_trip"):
        a, b = statistics.median(ours[key]), statistics.median(theirs[key])
        rr = round_ratios[key]
        lines.append(
            f"| {LABEL[key]} | {fmt(a)} | {fmt(b)} | {b / a:.1f}x | "
            f"{min(rr):.1f}x - {max(rr):.1f}x |"
        )
        result["steps"][key] = {"clvrs_s": a, "lifetimes_s": b, "ratio": b / a, "rounds": rr}
    lines.append("")
    mine, other = last["clvrs"], last["lifetimes"]
    agreement = []
    for key in ("expected_purchases", "probability_alive", "clv"):
        x, y = mine["sums"][key], other["sums"][key]
        agreement.append(f"{key} sum {x:,.6f} vs {y:,.6f} (rel. {abs(x - y) / abs(y):.1e})")
    params = ", ".join(
        f"{k} {mine['params'][k]:.6g} / {other['params'][k]:.6g}" for k in mine["params"]
    )
    lines.append(f"Agreement (clvrs / lifetimes): {params}; " + "; ".join(agreement) + ".")
    lines.append("")
    trip = result["steps"]["round_trip"]["clvrs_s"]
    lines.append(
        f"- round trip under {fmt(ROUND_TRIP_TARGET_S)}: {fmt(trip)} -> "
        + ("**MET**" if trip < ROUND_TRIP_TARGET_S else "**NOT MET**")
    )
    for key in ("expected_purchases", "probability_alive", "clv"):
        ratio = result["steps"][key]["ratio"]
        lines.append(
            f"- {LABEL[key]} at least {PREDICTION_TARGET:.0f}x lifetimes: {ratio:.1f}x -> "
            + ("**MET**" if ratio >= PREDICTION_TARGET else "**NOT MET**")
        )
    text = "\n".join(lines)
    print(text)
    if args.json:
        result.update(clvrs=mine, lifetimes=other, report=text)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
