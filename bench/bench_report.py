#!/usr/bin/env python3
"""How long ``clvrs.report`` takes for a million customers beyond scoring them, and how big the
file is (issue 24: under 10 s beyond scoring; a small file of aggregates and samples).

Data: 1M customers drawn from the BG/NBD + Gamma-Gamma process (``/work/shared/bench/
gen_synth.py summary -n 1000000 --seed 1``, written to bench/data/synth_1m.parquet, gitignored)
in weeks. Models: the published CDNOW fits from ``from_params`` (BG/NBD r, alpha, a, b = 0.243,
4.414, 0.793, 2.426; Gamma-Gamma p, q, gamma = 6.25, 3.74, 15.44), so only the report is timed.

Per run (time.perf_counter, median of ``--repeats``):

  scoring  ``customer_lifetime_value(bg, gg, df, time=12)`` and ``bg.probability_alive(df)``,
           the two per-customer scores the report itself computes
  report   ``clvrs.report(bg, gg, df, path)`` with figures, and with ``figures=False``

"Beyond scoring" is report minus scoring. Usage::

    python bench/bench_report.py [--n 1000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

import clvrs

HERE = Path(__file__).parent
GENERATOR = Path("/work/shared/bench/gen_synth.py")


def data(n: int) -> pd.DataFrame:
    path = HERE / "data" / f"synth_report_{n}.parquet"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        subprocess.run(
            [sys.executable, str(GENERATOR), "summary", "-n", str(n), "--seed", "1", "-o",
             str(path)],
            check=True,
        )  # fmt: skip
    frame = pd.read_parquet(path)
    frame.attrs["time_unit"] = "W"
    return frame


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    frame = data(args.n)
    bg = clvrs.BetaGeoModel.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426)
    gg = clvrs.GammaGammaModel.from_params(p=6.25, q=3.74, gamma=15.44)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.html"

        def score() -> None:
            clvrs.customer_lifetime_value(bg, gg, frame, time=12)
            bg.probability_alive(frame)

        scoring, full, bare = [], [], []
        for _ in range(args.repeats):
            scoring.append(timed(score))
            full.append(timed(lambda: clvrs.report(bg, gg, frame, out)))
            size = out.stat().st_size
            bare.append(timed(lambda: clvrs.report(bg, gg, frame, out, figures=False)))
            bare_size = out.stat().st_size
    s, f, b = (statistics.median(x) for x in (scoring, full, bare))
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if "model name" in line),
        platform.processor(),
    )
    print(f"{len(frame):,} customers; {os.cpu_count()} cores ({cpu}); clvrs {clvrs.__version__}")
    print(f"scoring (CLV + P(alive))          {s:6.2f} s")
    print(f"report with figures               {f:6.2f} s  -> beyond scoring {f - s:5.2f} s, "
          f"file {size / 1024:.0f} KiB")  # fmt: skip
    print(f"report without figures            {b:6.2f} s  -> beyond scoring {b - s:5.2f} s, "
          f"file {bare_size / 1024:.0f} KiB")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
