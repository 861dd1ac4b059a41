#!/usr/bin/env python3
"""Fit times of the regularity models against BG/NBD and MBG/NBD on the same simulated customers.

No other library fits BG/CNBD-k or MBG/CNBD-k (BTYDplus is R); the issue's target is a fit within
3x of BG/NBD's on the same data, so the peers here are clvrs' own BG/NBD and MBG/NBD fitted to
the same customers, in the same process, alternating, medians of ``--repeats`` runs:

  bgnbd     BetaGeoModel().fit(df)
  bgcnbd-2  BetaGeoCNBDModel(k=2).fit(df)
  mbgnbd    ModifiedBetaGeoModel().fit(df)
  mbgcnbd-2 ModifiedBetaGeoCNBDModel(k=2).fit(df)
  mbgcnbd-k ModifiedBetaGeoCNBDModel(max_k=4).fit(df)  (k = 1..4 profile, with --profile)

Data: ``--customers`` drawn from MBG/CNBD-k with k = 2 and the published grocery estimates
(r, alpha, a, b = 1.33, 2.81, 0.42, 0.79), T ~ Uniform{26..78} weeks (seed 1), by the model's own
simulator. The recency of simulated customers is continuous, so rows hardly compress: this is
the worst case for every model.

Example
  python bench/bench_regularity.py --customers 1000000 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

import clvrs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also time the k = 1..4 search")
    args = parser.parse_args()

    rng = np.random.default_rng(1)
    ages = rng.integers(26, 79, args.customers).astype(float)
    generator = clvrs.ModifiedBetaGeoCNBDModel.from_params(r=1.33, alpha=2.81, a=0.42, b=0.79, k=2)
    data = generator.simulate(ages, seed=1)
    models = {
        "bgnbd": lambda: clvrs.BetaGeoModel(),
        "bgcnbd-2": lambda: clvrs.BetaGeoCNBDModel(k=2),
        "mbgnbd": lambda: clvrs.ModifiedBetaGeoModel(),
        "mbgcnbd-2": lambda: clvrs.ModifiedBetaGeoCNBDModel(k=2),
    }
    if args.profile:
        models["mbgcnbd-k"] = lambda: clvrs.ModifiedBetaGeoCNBDModel(max_k=4)
    times: dict[str, list[float]] = {name: [] for name in models}
    iterations: dict[str, int] = {}
    for _ in range(args.repeats):
        for name, make in models.items():
            model = make()
            start = time.perf_counter()
            model.fit(data)
            times[name].append(time.perf_counter() - start)
            iterations[name] = model.n_iter_
    print(
        f"# {args.customers:,} customers, {args.repeats} runs, {platform.processor() or 'cpu'}, "
        f"{os.cpu_count()} cores, clvrs {clvrs.__version__}"
    )
    print("| model | median fit (s) | runs (s) | iterations | vs its Poisson peer |")
    print("|---|---|---|---|---|")
    peers = {"bgcnbd-2": "bgnbd", "mbgcnbd-2": "mbgnbd", "mbgcnbd-k": "mbgnbd"}
    for name, runs in times.items():
        median = statistics.median(runs)
        peer = peers.get(name)
        ratio = f"{median / statistics.median(times[peer]):.2f}x" if peer else ""
        listed = ", ".join(f"{v:.2f}" for v in runs)
        print(f"| {name} | {median:.2f} | {listed} | {iterations[name]} | {ratio} |")


if __name__ == "__main__":
    main()
