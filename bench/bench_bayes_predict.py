"""Time predictions from Bayesian fits on many customers, and a Bayesian BG/NBD fit on them.

    python bench/bench_bayes_predict.py predict --data /tmp/s1m.parquet --draws 200 [--level 0.9]
        [--whole-days]
    python bench/bench_bayes_predict.py fit --data /tmp/s1m.parquet --draws 20 --tune 20
    python bench/bench_bayes_predict.py purchases --data /tmp/s1m.parquet --n 100000

``predict``: BG/NBD and Gamma-Gamma posteriors from NUTS on CDNOW (4 chains, draws per chain
``--draws / 4``, the fits not timed) score the customers of ``--data`` (made by
``python /work/shared/bench/gen_synth.py summary -n 1000000 --seed 1 -o /tmp/s1m.parquet``):
``customer_lifetime_value(bg, gg, data, time=12, discount_rate=0.01, level=...)`` (the
posterior mean with its credible interval, both models' draws paired) and, in the same run,
the mean only, with wall and processor seconds (all threads; on a loaded machine the
processor time per customer and draw is the steadier figure). Peak RSS of the process
(``ru_maxrss``) is read before and after each call: the growth is the prediction's memory,
which must not depend on the number of draws.

``fit``: ``BetaGeoModel().fit(data, method="nuts", chains=4, ...)`` on the customers of
``--data``; prints wall time, leapfrog steps and seconds per gradient evaluation (to
extrapolate to 4 x 1000 draws after 1000 tuning steps).

One JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np
import pandas as pd

import clvrs


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cpu_seconds() -> float:
    """Processor time of this process (all threads), user and system."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def predict(args: argparse.Namespace) -> None:
    data = pd.read_parquet(args.data, columns=["frequency", "recency", "T", "monetary_value"])
    data["frequency"] = data["frequency"].astype(float)
    if args.whole_days:
        # As a transaction log with daily dates yields: T and recency in whole days (in weeks).
        data["T"] = np.ceil(data["T"] * 7.0) / 7.0
        data["recency"] = np.minimum(np.round(data["recency"] * 7.0) / 7.0, data["T"])
    cdnow = clvrs.datasets.load_cdnow_summary()
    per_chain = max(1, args.draws // 4)
    bg = clvrs.BetaGeoModel(n_jobs=args.threads).fit(
        cdnow, method="nuts", chains=4, draws=per_chain, tune=500, seed=1
    )
    gg = clvrs.GammaGammaModel(n_jobs=args.threads).fit(
        cdnow, method="nuts", chains=4, draws=per_chain, tune=500, seed=1
    )
    options = {"time": 12, "discount_rate": 0.01}
    for level in (args.level, None):
        before = peak_rss_mb()
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        out = clvrs.customer_lifetime_value(bg, gg, data, level=level, **options)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
        after = peak_rss_mb()
        total = float(np.sum(out["estimate"] if level is not None else out))
        print(
            json.dumps(
                {
                    "what": "posterior CLV" + (f" with {level:.0%} intervals" if level else ""),
                    "customers": len(data),
                    "whole_days": args.whole_days,
                    "draws": 4 * per_chain,
                    "threads": args.threads,
                    "wall_s": round(wall, 3),
                    "s_per_draw": round(wall / (4 * per_chain), 5),
                    "cpu_s": round(cpu, 3),
                    "cpu_ns_per_customer_draw": round(cpu / (len(data) * 4 * per_chain) * 1e9, 2),
                    "peak_rss_mb_before": round(before, 1),
                    "peak_rss_mb_after": round(after, 1),
                    "sum_of_means": round(total, 2),
                }
            ),
            flush=True,
        )


def purchases(args: argparse.Namespace) -> None:
    """The peer's call (bench/peer_pymc_predict.py): posterior-mean expected purchases in 52
    weeks from 4 x 1000 draws of BG/NBD on CDNOW, for the first ``--n`` customers; then the
    same with its 90% credible interval."""
    data = pd.read_parquet(args.data, columns=["frequency", "recency", "T"]).iloc[: args.n]
    data["frequency"] = data["frequency"].astype(float)
    cdnow = clvrs.datasets.load_cdnow_summary()
    bg = clvrs.BetaGeoModel(n_jobs=args.threads, on_failure="ignore")
    # PyMC-Marketing's default priors, as the peer uses.
    bg.fit(
        cdnow,
        method="nuts",
        chains=4,
        draws=1000,
        tune=1000,
        seed=1,
        priors=clvrs.priors.pymc_marketing(bg),
    )
    for level in (None, args.level):
        before = peak_rss_mb()
        t0 = time.perf_counter()
        if level is None:
            mean = bg.expected_purchases(data, t=52)
        else:
            mean = clvrs.prediction_interval(bg, "expected_purchases", data, t=52, level=level)[
                "estimate"
            ]
        wall = time.perf_counter() - t0
        after = peak_rss_mb()
        print(
            json.dumps(
                {
                    "lib": "clvrs",
                    "what": "posterior mean expected_purchases(t=52)"
                    + (f" with {level:.0%} interval" if level else ""),
                    "customers": len(data),
                    "draws": 4000,
                    "threads": args.threads,
                    "wall_s": round(wall, 3),
                    "peak_rss_mb_growth": round(after - before, 1),
                    "sum_of_means": round(float(np.sum(mean)), 2),
                }
            ),
            flush=True,
        )


def fit(args: argparse.Namespace) -> None:
    data = pd.read_parquet(args.data, columns=["frequency", "recency", "T"])
    t0 = time.perf_counter()
    model = clvrs.BetaGeoModel(n_jobs=args.threads, on_failure="ignore").fit(
        data, method="nuts", chains=4, draws=args.draws, tune=args.tune, seed=1
    )
    wall = time.perf_counter() - t0
    steps = int(np.sum(model._draws["sample_stats"]["n_steps"]))
    print(
        json.dumps(
            {
                "what": "BG/NBD NUTS fit",
                "customers": len(data),
                "chains": 4,
                "draws": args.draws,
                "tune": args.tune,
                "threads": args.threads,
                "wall_s": round(wall, 2),
                "leapfrog_steps_kept_draws": steps,
                "divergences": int(model.fit_info_["divergences"]),
                "r_hat_max": round(float(model.fit_info_["r_hat_max"]), 4),
                "means": {k: round(float(v), 4) for k, v in model.params_.items()},
            }
        ),
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=["predict", "purchases", "fit"])
    parser.add_argument("--data", required=True)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--tune", type=int, default=20)
    parser.add_argument("--level", type=float, default=0.9)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--whole-days",
        action="store_true",
        help="predict: round T and recency to whole days (as a daily transaction log gives)",
    )
    args = parser.parse_args()
    print(json.dumps({"load_average": os.getloadavg(), "clvrs": clvrs.__version__}), flush=True)
    {"predict": predict, "purchases": purchases, "fit": fit}[args.what](args)


if __name__ == "__main__":
    main()
