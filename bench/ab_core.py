"""Time a few core calls on 1M synthetic customers, for an A/B of two builds of clvrs.

Run once per build in its own process, alternating, e.g. with an older wheel unpacked into
``/tmp/old_pkg`` (``pip install --no-deps --target /tmp/old_pkg clvrs-*.whl``)::

    for i in 1 2 3; do
        PYTHONPATH=/tmp/old_pkg python bench/ab_core.py old
        python bench/ab_core.py new
    done

Data: ``gen_synth.py summary -n 1000000 --seed 1 -o /tmp/s1m.parquet`` (``--data`` to change).
Prints one JSON line per run: the median of ``--repeats`` calls, and for the two cheap
predictions also the least and median of 25 calls.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import pandas as pd

import clvrs


def timed(call: Callable[[], Any], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("label")
    ap.add_argument("--data", default="/tmp/s1m.parquet")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    data = pd.read_parquet(args.data)
    rfm = data[["frequency", "recency", "T"]]
    arrays = {c: rfm[c].to_numpy(float) for c in rfm}
    bg = clvrs.BetaGeoModel.from_params(r=0.243, alpha=4.414, a=0.793, b=2.426)
    pnbd = clvrs.ParetoNBDModel.from_params(r=0.55, alpha=10.58, s=0.61, beta=11.67)
    buyers = data[data["frequency"] > 0][["frequency", "monetary_value"]]
    median = lambda call, n=args.repeats: statistics.median(timed(call, n))  # noqa: E731
    spread = lambda call: (min(t := timed(call, 25)), statistics.median(t))  # noqa: E731
    result = {
        "label": args.label,
        "clvrs": clvrs.__file__,
        "bgnbd_fit": median(lambda: clvrs.BetaGeoModel().fit(rfm)),
        "bgnbd_expected_least_median": spread(lambda: bg.expected_purchases(**arrays, t=52)),
        "bgnbd_alive_least_median": spread(lambda: bg.probability_alive(**arrays)),
        "pnbd_alive": median(lambda: pnbd.probability_alive(rfm), 3),
        "pnbd_fit": median(lambda: clvrs.ParetoNBDModel().fit(rfm), 3),
        "gamma_gamma_fit": median(lambda: clvrs.GammaGammaModel().fit(buyers)),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
